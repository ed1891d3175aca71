package iptables

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/specs"
)

// Counts are what each rule of nsrun's chains that counts counted, by
// family and the rule's arguments after its chain (forward.Counts): a
// port's DNAT rule counts its connections in packets, its two counting
// rules (countEntries) the packets and bytes of each way.
type Counts map[Family]map[string]forward.Flow

// Connections returns the count of the port's DNAT rule.
func (c Counts) Connections(project string, ns forward.Namespace, port specs.Port) (uint64, bool) {
	to, ok := forward.DNATTo(ns, port)
	if !ok {
		return 0, false
	}
	args := cat(dnatMatch(port), comment(Comment(project, ns.Name)), []string{"-j", "DNAT", "--to-destination", dnatTarget(to, port)})
	n, ok := c[familyOf(port)][joinArgs(args)]
	return n.Packets, ok
}

// Traffic returns the counts of the port's two counting rules.
func (c Counts) Traffic(project string, ns forward.Namespace, port specs.Port) (in, out forward.Flow, ok bool) {
	if _, dnat := forward.DNATTo(ns, port); !dnat {
		return in, out, false
	}
	ways := countEntries(port, comment(Comment(project, ns.Name)))
	in, okIn := c[familyOf(port)][joinArgs(ways[0].args)]
	out, okOut := c[familyOf(port)][joinArgs(ways[1].args)]
	return in, out, okIn && okOut
}

func familyOf(port specs.Port) Family {
	if port.Is6() {
		return IPv6
	}
	return IPv4
}

// Counts reads the counters of the projects' rules, of both families,
// never from the cache (counters change with no change of the rules):
// iptables-nft's in process, chain by chain (see countsInProcess), and
// otherwise, as iptables-legacy's, from BACKEND-save -c of the nat and
// filter tables.
func (f *Firewall) Counts(ctx context.Context, projects []forward.Project) (forward.Counts, error) {
	c := Counts{}
	for fam, r := range map[Family]runner{IPv4: f.run, IPv6: f.run6} {
		if fam == IPv6 && !r.installed() {
			continue
		}
		if _, kernel := r.(programs); kernel && f.backend == NFT {
			if got, ok, err := countsInProcess(fam, projects); err == nil && ok {
				c[fam] = got
				continue
			}
		}
		c[fam] = map[string]forward.Flow{}
		for _, table := range []string{"nat", "filter"} {
			out, err := r.counted(ctx, table)
			if err != nil {
				return nil, err
			}
			if err := parseCounts(out, c[fam]); err != nil {
				return nil, fmt.Errorf("%s: %w", fam.program(f.backend), err)
			}
		}
	}
	return c, nil
}

// parseCounts reads the counters of the rules that what iptables-save -c
// prints holds ("[PACKETS:BYTES] -A CHAIN ARGS") into out, by ARGS.
func parseCounts(text string, out map[string]forward.Flow) error {
	n := 0
	for line := range strings.Lines(text) {
		n++
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "[") {
			continue
		}
		counters, rule, ok := strings.Cut(line[1:], "] -A ")
		packets, bytes, ok2 := strings.Cut(counters, ":")
		_, args, ok3 := strings.Cut(rule, " ")
		if !ok || !ok2 || !ok3 {
			return fmt.Errorf("line %d: not a counted rule: %q", n, line)
		}
		p, err := strconv.ParseUint(packets, 10, 64)
		if err != nil {
			return fmt.Errorf("line %d: packet count %q: %v", n, packets, err)
		}
		b, err := strconv.ParseUint(bytes, 10, 64)
		if err != nil {
			return fmt.Errorf("line %d: byte count %q: %v", n, bytes, err)
		}
		sum := out[args]
		out[args] = forward.Flow{Packets: sum.Packets + p, Bytes: sum.Bytes + b}
	}
	return nil
}
