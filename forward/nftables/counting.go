package nftables

import (
	"context"
	"fmt"
	"strings"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/internal/nftcache"
	"github.com/nsrun/nsrun/specs"
	"sigs.k8s.io/knftables"
)

// CountTable is the table of the counters of the published ports'
// traffic (forward.Counting), whichever backend publishes them: family
// inet, as nsrun's own.
const (
	CountTable        = "nsrun-count"
	countTableComment = "nsrun: the traffic of published ports, each way"
)

// The counting table's chains and maps.
const (
	chainCountForward = "forward" // filter, forward: the packets of DNAT'd connections
	chainCount        = "count"   // the lookups of their counters

	countAny    = "count-any"         // ports published on every host address
	countAddr   = "count-addr"        // ports published on one host address
	countAnys   = "count-any-ranges"  // port ranges published on every host address
	countAddrs  = "count-addr-ranges" // port ranges published on one host address
	countAny6   = "count6-any"
	countAddr6  = "count6-addr"
	countAnys6  = "count6-any-ranges"
	countAddrs6 = "count6-addr-ranges"
)

// countSets are the counting table's maps: each way of each published
// port's connections, keyed by the connection's direction and original
// destination (the publication that DNAT'd it), to its named counter.
var countSets = []setDef{
	{name: countAny, typ: "ct_dir . inet_proto . inet_service : counter", isMap: true, comment: "nsrun: the counters of ports published on every host address"},
	{name: countAddr, typ: "ct_dir . ipv4_addr . inet_proto . inet_service : counter", isMap: true, comment: "nsrun: the counters of ports published on one host address"},
	{name: countAnys, typ: "ct_dir . inet_proto . inet_service : counter", isMap: true, interval: true, comment: "nsrun: the counters of port ranges published on every host address"},
	{name: countAddrs, typ: "ct_dir . ipv4_addr . inet_proto . inet_service : counter", isMap: true, interval: true, comment: "nsrun: the counters of port ranges published on one host address"},
	{name: countAny6, typ: "ct_dir . inet_proto . inet_service : counter", isMap: true, comment: "nsrun: the counters of ports published on every host IPv6 address"},
	{name: countAddr6, typ: "ct_dir . ipv6_addr . inet_proto . inet_service : counter", isMap: true, comment: "nsrun: the counters of ports published on one host IPv6 address"},
	{name: countAnys6, typ: "ct_dir . inet_proto . inet_service : counter", isMap: true, interval: true, comment: "nsrun: the counters of port ranges published on every host IPv6 address"},
	{name: countAddrs6, typ: "ct_dir . ipv6_addr . inet_proto . inet_service : counter", isMap: true, interval: true, comment: "nsrun: the counters of port ranges published on one host IPv6 address"},
}

// countChains: every packet the host forwards of a DNAT'd connection,
// either way, is looked up in the maps, and adds to the counter of the
// publication that DNAT'd it. Other packets meet one rule. The table
// holds no verdict but return: it counts, and changes no packet's fate.
var countChains = []chainDef{
	{name: chainCountForward, hook: knftables.ForwardHook, kind: knftables.FilterType, priority: knftables.FilterPriority, rules: []rule{
		{"ct status dnat jump " + chainCount, "nsrun: count the traffic of published ports"},
	}},
	{name: chainCount, rules: countRules()},
}

// countRules look the counter up, one rule per protocol, family and map:
// TCP first, a port published on every address (most are) before one on
// an address, single ports before ranges. A host port is published once
// (up refuses a port another project publishes, on any address), so one
// map at most holds a connection's key, and the first found ends the
// lookups. nft types ct original proto-dst only after a protocol match,
// hence the rule per protocol.
func countRules() []rule {
	var out []rule
	for _, proto := range []specs.Protocol{specs.TCP, specs.UDP} {
		for _, fam := range []struct{ nfproto, daddr, maps, what string }{
			{"ipv4", "ct original ip daddr . ", "count-", "host address"},
			{"ipv6", "ct original ip6 daddr . ", "count6-", "host IPv6 address"},
		} {
			for _, m := range []struct{ suffix, what string }{
				{"any", "%s ports published on every %s"}, {"addr", "%s ports published on one %s"},
				{"any-ranges", "%s port ranges published on every %s"}, {"addr-ranges", "%s port ranges published on one %s"},
			} {
				key := "ct direction . "
				if strings.HasPrefix(m.suffix, "addr") {
					key += fam.daddr
				}
				out = append(out, rule{
					fmt.Sprintf("meta nfproto %s meta l4proto %s counter name %smeta l4proto . ct original proto-dst map @%s%s return", fam.nfproto, proto, key, fam.maps, m.suffix),
					"nsrun: count " + fmt.Sprintf(m.what, proto, fam.what)})
			}
		}
	}
	return out
}

// The two ways, as the counters' names and the maps' keys have them.
const (
	wayIn  = "in"  // ct direction original: into the namespace
	wayOut = "out" // ct direction reply: out of it
)

// wayCounter names the counter of one way of a publication's traffic:
// CHAIN/in or CHAIN/out, after the publication's chain in nsrun's table
// (see publicationOf), whichever backend publishes it.
func wayCounter(chain, way string) string { return chain + "/" + way }

// renderCounts returns the counting table's elements of a project and
// the counters they name.
func renderCounts(p forward.Project) ([]element, []string) {
	var elems []element
	var counters []string
	for _, ns := range p.Namespaces {
		c := Comment(p.Name, ns.Name)
		for _, port := range ns.Ports {
			to, ok := forward.DNATTo(ns, port)
			if !ok {
				continue
			}
			key := []string{string(port.Protocol), portsText(port.Published)}
			if !port.HostIP.IsUnspecified() {
				key = append([]string{port.HostIP.String()}, key...)
			}
			chain := publicationOf(p.Name, ns.Name, to.String(), port).chain
			in, out := wayCounter(chain, wayIn), wayCounter(chain, wayOut)
			_, count := mapsOf(port)
			counters = append(counters, in, out)
			elems = append(elems,
				element{set: count, key: append([]string{"original"}, key...), value: []string{in}, comment: c},
				element{set: count, key: append([]string{"reply"}, key...), value: []string{out}, comment: c})
		}
	}
	return elems, counters
}

// Counting is the counting table (forward.Counting), run by the nft
// program or held in knftables' fake.
type Counting struct {
	run runner
}

// NewCounting returns the counting table run by the nft program, its
// reads kept in the cache while the nftables generation stays the same.
func NewCounting(cache *nftcache.Cache) *Counting {
	return &Counting{run: &program{cache: cache, table: CountTable}}
}

// NewCountingFake returns the counting table held in knftables' fake.
func NewCountingFake() *Counting { return &Counting{run: fake{knftables.NewFake(Family, CountTable)}} }

func (c *Counting) Installed() bool { return c.run.installed() }

// Ready makes the handle its writes run nft through (forward.Readier).
func (c *Counting) Ready(ctx context.Context) error {
	_, err := c.run.nft(ctx)
	return err
}

// Prepare reads the table now, and returns the write that puts the
// project's counters and their elements in place, in one transaction of
// only what differs, run when called (nil: nothing differs); counters
// there already keep counting.
func (c *Counting) Prepare(ctx context.Context, p forward.Project) (func(context.Context) error, error) {
	return prepare(ctx, c.run, func(tx *knftables.Transaction, s *Snapshot) { ensureCounts(tx, s, p) })
}

// Remove removes the project's elements and counters, and the table with
// the last project.
func (c *Counting) Remove(ctx context.Context, project string) error {
	return change(ctx, c.run, removeOf(project))
}

// Sweep removes the counting table.
func (c *Counting) Sweep(ctx context.Context) error {
	return change(ctx, c.run, func(tx *knftables.Transaction, s *Snapshot) {
		if s.exists {
			tx.Delete(&knftables.Table{})
		}
	})
}

// Read takes a look at the counting table, whose listing is had only
// when a drift the memo does not hold is asked for; a missing table is an
// empty one.
func (c *Counting) Read(ctx context.Context) (forward.CountingState, error) {
	s, err := c.run.readLater(ctx)
	if err != nil {
		return nil, err
	}
	return countingState{s}, nil
}

// Traffic reads the counters of the projects' published ports, by name;
// every counter of the table, in one netlink dump, when projects is nil.
func (c *Counting) Traffic(ctx context.Context, projects []forward.Project) (forward.Traffic, error) {
	got, err := c.run.counters(ctx, counterNames(projects, func(p forward.Project) []string {
		_, counters := renderCounts(p)
		return counters
	}))
	if err != nil {
		return nil, fmt.Errorf("reading the counters of table %s %s: %w", Family, CountTable, err)
	}
	return Counts(got), nil
}

// Script is nft -f with the project's counting, for a clean host.
func (c *Counting) Script(p forward.Project) string {
	tx := knftables.NewFake(Family, CountTable).NewTransaction()
	ensureCounts(tx, emptySnapshot(), p)
	return "nft -f - <<'EOF'\n" + tx.String() + "EOF\n"
}

// countingState is the counting table as one read saw it.
type countingState struct{ s *Snapshot }

// Drift reports how the table differs from what the project's ports need.
func (c countingState) Drift(p forward.Project) []string {
	version := c.s.at
	if version != "" {
		version += "; project " + p.Digest()
	}
	return c.s.memo.Lines(version, "counting drift of project "+p.Name, func() ([]string, bool) {
		if err := c.s.parse(); err != nil {
			return []string{err.Error()}, false
		}
		return compareCounts(c.s, p).messages, c.s.of
	})
}

// compareCounts finds how the counting table differs from what p needs,
// as compare does for nsrun's table: the table, its maps and chains, the
// project's counters and elements.
func compareCounts(s *Snapshot, p forward.Project) *diff {
	d := &diff{}
	elems, counters := renderCounts(p)
	if len(counters) > 0 { // with nothing to count, only what is left of the project
		compareFixed(d, s, CountTable, countSets, countChains)
	}
	in := fmt.Sprintf(" in table %s %s", Family, CountTable)
	compareCounters(d, s, p.Name, counters, in)
	compareElements(d, s, p.Name, elems, in)
	return d
}

// ensureCounts adds to tx what brings the counting table from s to
// holding p's counters: what is referenced first (counters before the
// elements that name them), what is no longer needed after.
func ensureCounts(tx *knftables.Transaction, s *Snapshot, p forward.Project) {
	apply(tx, s, compareCounts(s, p), countTableComment)
}
