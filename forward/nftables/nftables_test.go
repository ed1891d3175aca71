package nftables

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/internal/nftcache"
	"github.com/nsrun/nsrun/netns/nstest"
	"github.com/nsrun/nsrun/specs"
	"sigs.k8s.io/knftables"
)

// project has every kind of publication: one port, one bound to an
// address, a range to another range, a range to itself, UDP, and a
// namespace without egress; networks of its own and one shared with
// every other project. Projects of different n have different links,
// addresses and ports.
func project(name string, n int) forward.Project {
	port := func(format string, args ...any) specs.Port {
		return specs.MustParsePort(fmt.Sprintf(format, args...))
	}
	o := 10000 * n
	return forward.Project{Name: name, Namespaces: []forward.Namespace{
		{Name: "a", Link: fmt.Sprintf("nsr-a%d", n), Address: netip.MustParsePrefix(fmt.Sprintf("10.231.%d.2/30", 2*n)), Egress: true,
			Networks: []string{name + "/front", "shared"},
			Ports: []specs.Port{port("%d:8080", 16000+o), port("127.0.0.1:%d:9090/udp", 16100+o),
				port("%d-%d:8000-8002", 17000+o, 17002+o), port("%d-%d:%d-%d", 17100+o, 17101+o, 17100+o, 17101+o)}},
		{Name: "b", Link: fmt.Sprintf("nsh-b%d", n), Address: netip.MustParsePrefix(fmt.Sprintf("10.231.%d.2/30", 2*n+1)), Egress: false,
			Networks: []string{name + "/front"},
			Ports:    []specs.Port{port("192.0.2.1:%d:8080", 16001+o)}},
		{Name: "c", Link: fmt.Sprintf("nsr-c%d", n), Address: netip.MustParsePrefix(fmt.Sprintf("10.231.%d.6/30", 2*n)),
			Address6: netip.MustParsePrefix(fmt.Sprintf("fd00:231:%d::2/64", n)), Egress: true, Networks: []string{},
			Ports: []specs.Port{port("%d:8080", 16002+o), port("[::]:%d:8080", 16002+o), port("[2001:db8::1]:%d:53/udp", 16003+o),
				port("[::]:%d-%d:8000-8002", 17200+o, 17202+o), port("[::]:%d-%d:%d-%d", 17300+o, 17301+o, 17300+o, 17301+o),
				port("[2001:db8::1]:%d-%d:9000-9001", 17400+o, 17401+o)}},
	}}
}

func fakeWith(t *testing.T, projects ...forward.Project) (*Firewall, *knftables.Fake) {
	t.Helper()
	fw := NewFake()
	for _, p := range projects {
		if err := fw.Ensure(context.Background(), p, false); err != nil {
			t.Fatal(err)
		}
	}
	return fw, fw.run.(fake).f
}

func read(t *testing.T, fw *Firewall) *Snapshot {
	t.Helper()
	s, err := fw.run.read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// runTx applies nft commands to the fake, as a person would with nft.
func runTx(t *testing.T, f *knftables.Fake, build func(tx *knftables.Transaction)) {
	t.Helper()
	tx := f.NewTransaction()
	build(tx)
	if err := f.Run(context.Background(), tx); err != nil {
		t.Fatal(err)
	}
}

// TestEnsure: a project's table has no drift once applied; applying it
// again runs no transaction; the table holds one element per port and
// per-namespace set, and a chain per publication.
func TestEnsure(t *testing.T) {
	p := project("p1", 0)
	fw, f := fakeWith(t)
	if d := read(t, fw).Drift(p, false); len(d) != 1 || !strings.Contains(d[0], "table inet nsrun is missing") {
		t.Errorf("drift of an empty host: %q; want only the missing table", d)
	}
	if err := fw.Ensure(context.Background(), p, false); err != nil {
		t.Fatal(err)
	}
	if d := read(t, fw).Drift(p, false); len(d) != 0 {
		t.Errorf("drift after Ensure: %q", d)
	}
	last := f.LastTransaction
	if err := fw.Ensure(context.Background(), p, false); err != nil {
		t.Fatal(err)
	}
	if f.LastTransaction != last {
		t.Errorf("a second Ensure ran:\n%s", f.LastTransaction)
	}
	if n, r := len(f.Table.Maps[mapAny].Elements), len(f.Table.Maps[mapAnys].Elements); n != 2 || r != 2 {
		t.Errorf("%s holds %d elements, %s %d; want 2 and 2 (the ranges)", mapAny, n, mapAnys, r)
	}
	// The IPv6 ports in the IPv6 maps, DNAT'd to the namespace's IPv6 address.
	if n, r := len(f.Table.Maps[mapAny6].Elements), len(f.Table.Maps[mapAnys6].Elements); n != 1 || r != 2 {
		t.Errorf("%s holds %d elements, %s %d; want 1 and 2", mapAny6, n, mapAnys6, r)
	}
	if e := f.Table.Maps[mapAddr6].FindElement("2001:db8::1", "udp", "16003"); e == nil || !slices.Equal(e.Value, []string{"goto port/p1/c/ip6/2001.db8..1/udp/16003"}) {
		t.Errorf("the IPv6 address's port: %+v", e)
	}
	if c := f.Table.Chains["port/p1/c/ip6/tcp/16002"]; c == nil || len(c.Rules) != 1 || c.Rules[0].Rule != "counter name port/p1/c/ip6/tcp/16002 meta l4proto tcp dnat ip6 to [fd00:231:0::2]:8080" && c.Rules[0].Rule != "counter name port/p1/c/ip6/tcp/16002 meta l4proto tcp dnat ip6 to [fd00:231::2]:8080" {
		t.Errorf("the IPv6 publication chain: %+v", c)
	}
	if f.Table.Sets[setHairpin6].FindElement("fd00:231::2", "fd00:231::2") == nil || f.Table.Sets[setEgress6].FindElement("fd00:231::/64") == nil {
		t.Error("the IPv6 hairpin or egress element is missing")
	}
	if e := f.Table.Maps[mapAddr].FindElement("127.0.0.1", "udp", "16100"); e == nil || !slices.Equal(e.Value, []string{"goto port/p1/a/127.0.0.1/udp/16100"}) {
		t.Errorf("the address-bound port's element: %+v", e)
	}
	if f.Table.Sets[setIsolated].FindElement("nsh-b0") == nil || f.Table.Sets[setIsolated].FindElement("nsr-a0") != nil {
		t.Errorf("%s holds %v; want only b's link", setIsolated, f.Table.Sets[setIsolated].Elements)
	}
	if err := fw.Ensure(context.Background(), p, true); err == nil {
		t.Error("Ensure of accepts only succeeded; this backend never holds them")
	}
}

// TestDrift: each kind of change behind nsrun's back is reported, and the
// next Ensure repairs exactly it.
func TestDrift(t *testing.T) {
	p := project("p1", 0)
	for _, tc := range []struct {
		name   string
		break_ func(tx *knftables.Transaction)
		want   string
	}{
		{"element deleted", func(tx *knftables.Transaction) {
			tx.Delete(&knftables.Element{Map: mapAny, Key: []string{"tcp", "16000"}})
		}, "element missing from publish-any: tcp . 16000 : goto port/p1/a/tcp/16000"},
		{"base chain flushed", func(tx *knftables.Transaction) { tx.Flush(&knftables.Chain{Name: chainForward}) },
			`rule missing from chain filter-forward: "nsrun: a published port"`},
		{"rule added", func(tx *knftables.Transaction) { tx.Add(&knftables.Rule{Chain: chainForward, Rule: "accept"}) },
			`rule not made by nsrun in chain filter-forward: "(no comment)"`},
		{"publication retargeted", func(tx *knftables.Transaction) {
			tx.Flush(&knftables.Chain{Name: "port/p1/a/tcp/16000"})
			tx.Add(&knftables.Rule{Chain: "port/p1/a/tcp/16000", Rule: "meta l4proto tcp dnat ip to 10.9.9.9:1", Comment: knftables.PtrTo("nsrun -> 10.9.9.9:1")})
		}, `rule missing from chain port/p1/a/tcp/16000: "nsrun -> 10.231.0.2:8080, counted"`},
		{"set deleted", func(tx *knftables.Transaction) {
			tx.Flush(&knftables.Chain{Name: chainForward})
			tx.Delete(&knftables.Set{Name: setIsolated})
		}, "set no-egress is missing"},
		{"table deleted", func(tx *knftables.Transaction) { tx.Delete(&knftables.Table{}) }, "table inet nsrun is missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fw, f := fakeWith(t, p, project("other", 1))
			runTx(t, f, tc.break_)
			d := read(t, fw).Drift(p, false)
			if !slices.ContainsFunc(d, func(m string) bool { return strings.HasPrefix(m, tc.want) }) {
				t.Errorf("drift %q; want it to contain %q", d, tc.want)
			}
			if err := fw.Ensure(context.Background(), p, false); err != nil {
				t.Fatal(err)
			}
			if d := read(t, fw).Drift(p, false); len(d) != 0 {
				t.Errorf("drift after the repair: %q\n%s", d, f.Dump())
			}
			if !strings.Contains(tc.name, "table") && strings.Contains(f.LastTransaction.String(), "add table") {
				t.Errorf("the repair re-made the table:\n%s", f.LastTransaction)
			}
		})
	}
}

// TestChangedProject: an edited project changes only its own elements
// and chains; the other project's stay as they were.
func TestChangedProject(t *testing.T) {
	p := project("p1", 0)
	fw, f := fakeWith(t, p, project("p2", 1))
	other := read(t, fw).Drift(project("p2", 1), false)
	p.Namespaces[0].Ports = p.Namespaces[0].Ports[1:] // 16000 goes
	p.Namespaces[1].Egress = true
	if err := fw.Ensure(context.Background(), p, false); err != nil {
		t.Fatal(err)
	}
	tx := f.LastTransaction.String()
	for _, want := range []string{"delete element inet nsrun publish-any { tcp . 16000 }", "delete chain inet nsrun port/p1/a/tcp/16000",
		"delete element inet nsrun no-egress { nsh-b0 }", "add element inet nsrun egress { 10.231.1.0/30"} {
		if !strings.Contains(tx, want) {
			t.Errorf("transaction lacks %q:\n%s", want, tx)
		}
	}
	if strings.Contains(tx, "p2") || strings.Contains(tx, "add rule") {
		t.Errorf("transaction touches more than p1's elements and chains:\n%s", tx)
	}
	if d := read(t, fw).Drift(p, false); len(d) != 0 || len(other) != 0 {
		t.Errorf("drift: %q, other project's before: %q", d, other)
	}
}

// TestRemove: removing one project leaves the other's table whole;
// removing the last deletes the table; Sweep deletes it whatever it holds.
func TestRemove(t *testing.T) {
	ctx := context.Background()
	fw, f := fakeWith(t, project("p1", 0), project("p2", 1))
	if err := fw.Remove(ctx, "p1"); err != nil {
		t.Fatal(err)
	}
	s := read(t, fw)
	if got := s.Projects(); !slices.Equal(got, []string{"p2"}) {
		t.Errorf("projects after removing p1: %v\n%s", got, f.Dump())
	}
	if d := s.Drift(project("p2", 1), false); len(d) != 0 {
		t.Errorf("p2 after removing p1: %q", d)
	}
	// The shared network's set keeps p2's link; p1's own network goes.
	if got := s.elements[NetworkSet("shared")]; len(got) != 1 || got[0].key[0] != "nsr-a1" {
		t.Errorf("the shared network after removing p1: %v", got)
	}
	if _, ok := s.elements[NetworkSet("p1/front")]; ok {
		t.Errorf("p1's network stays after p1:\n%s", f.Dump())
	}
	if err := fw.Remove(ctx, "p1"); err != nil {
		t.Errorf("removing p1 again: %v", err)
	}
	if err := fw.Remove(ctx, "p2"); err != nil {
		t.Fatal(err)
	}
	if read(t, fw).exists {
		t.Errorf("the table stays after the last project:\n%s", f.Dump())
	}
	fw, _ = fakeWith(t, project("p1", 0))
	if err := fw.Sweep(ctx); err != nil || read(t, fw).exists {
		t.Errorf("Sweep: %v; table exists %v", err, read(t, fw).exists)
	}
	if err := fw.Sweep(ctx); err != nil {
		t.Errorf("Sweep of nothing: %v", err)
	}
}

// TestNetworks: a namespace's link goes to the chain of its networks,
// which accepts the links on each; namespaces on the same networks share
// the chain; one on none is dropped; a network's set goes with its last
// link, and only then.
func TestNetworks(t *testing.T) {
	ctx := context.Background()
	fw, f := fakeWith(t, project("p1", 0), project("p2", 1))
	s := read(t, fw)
	reach := map[string]string{}
	for _, e := range s.elements[mapReach] {
		reach[e.key[0]] = e.value[0]
	}
	want := map[string]string{"nsr-a0": "jump reach/p1/front/shared", "nsh-b0": "jump reach/p1/front", "nsr-c0": "drop",
		"nsr-a1": "jump reach/p2/front/shared", "nsh-b1": "jump reach/p2/front", "nsr-c1": "drop"}
	if fmt.Sprint(reach) != fmt.Sprint(want) {
		t.Errorf("the reach map: %v\nwant %v", reach, want)
	}
	if got := s.chains["reach/p1/front/shared"]; !slices.Equal(got, []string{"nsrun: network p1/front", "nsrun: network shared"}) {
		t.Errorf("reach/p1/front/shared holds %q", got)
	}
	rules := f.Table.Chains["reach/p1/front/shared"].Rules
	if len(rules) != 2 || rules[0].Rule != "oifname @net/p1/front accept" || rules[1].Rule != "oifname @net/shared accept" {
		t.Errorf("reach/p1/front/shared: %v", f.Dump())
	}
	members := func(set string) []string {
		var out []string
		for _, e := range read(t, fw).elements[set] {
			out = append(out, e.key[0])
		}
		slices.Sort(out)
		return out
	}
	if got := members("net/p1/front"); !slices.Equal(got, []string{"nsh-b0", "nsr-a0"}) {
		t.Errorf("net/p1/front: %v", got)
	}
	if got := members("net/shared"); !slices.Equal(got, []string{"nsr-a0", "nsr-a1"}) {
		t.Errorf("net/shared: %v", got)
	}
	// p1's a leaves the shared network: the set stays for p2's a; then p2's
	// a leaves it too, and the set goes.
	p1, p2 := project("p1", 0), project("p2", 1)
	p1.Namespaces[0].Networks = []string{"p1/front"}
	if err := fw.Ensure(ctx, p1, false); err != nil {
		t.Fatal(err)
	}
	if got := members("net/shared"); !slices.Equal(got, []string{"nsr-a1"}) {
		t.Errorf("net/shared after p1/a left: %v", got)
	}
	if _, ok := read(t, fw).chains["reach/p1/front/shared"]; ok {
		t.Error("p1's chain of front and shared stays unused")
	}
	p2.Namespaces[0].Networks = []string{"p2/front"}
	if err := fw.Ensure(ctx, p2, false); err != nil {
		t.Fatal(err)
	}
	if _, ok := read(t, fw).elements["net/shared"]; ok {
		t.Errorf("net/shared stays with no link on it:\n%s", f.Dump())
	}
	for _, p := range []forward.Project{p1, p2} {
		if d := read(t, fw).Drift(p, false); len(d) != 0 {
			t.Errorf("drift of %s: %q", p.Name, d)
		}
	}
}

// TestScript: the nft -f input plan prints builds exactly what Ensure
// does.
func TestScript(t *testing.T) {
	p := project("p1", 0)
	script := NewFake().Script(p)
	body, ok := strings.CutPrefix(script, "nft -f - <<'EOF'\n")
	body, ok2 := strings.CutSuffix(body, "EOF\n")
	if !ok || !ok2 {
		t.Fatalf("not an nft -f heredoc:\n%s", script)
	}
	f := knftables.NewFake(Family, Table)
	if err := f.ParseDump(body); err != nil {
		t.Fatalf("the script does not parse: %v\n%s", err, body)
	}
	if d := fromFake(f).Drift(p, false); len(d) != 0 {
		t.Errorf("drift of what the script builds: %q", d)
	}
}

// TestParseValue: the JSON forms nft prints for elements.
func TestParseElement(t *testing.T) {
	for _, tc := range []struct {
		json  string
		isMap bool
		want  element
	}{
		{`"nsr-a"`, false, element{key: []string{"nsr-a"}}},
		{`{"elem": {"val": "nsr-a", "comment": "nsrun p/a"}}`, false, element{key: []string{"nsr-a"}, comment: "nsrun p/a"}},
		{`{"elem": {"val": {"prefix": {"addr": "10.0.0.0", "len": 30}}, "comment": "c"}}`, false, element{key: []string{"10.0.0.0/30"}, comment: "c"}},
		{`[{"elem": {"val": {"concat": ["tcp", {"range": [7000, 7010]}]}, "comment": "c"}}, {"goto": {"target": "port/p/a/tcp/7000-7010"}}]`, true,
			element{key: []string{"tcp", "7000-7010"}, value: []string{"goto port/p/a/tcp/7000-7010"}, comment: "c"}},
		{`[{"concat": ["127.0.0.1", "udp", 16100]}, {"jump": {"target": "x"}}]`, true, element{key: []string{"127.0.0.1", "udp", "16100"}, value: []string{"jump x"}}},
	} {
		doc := fmt.Sprintf(`{"nftables": [{"table": {"family": "inet", "name": "nsrun"}}, {"%s": {"family": "inet", "table": "nsrun", "name": "s", "elem": [%s]}}]}`,
			map[bool]string{false: "set", true: "map"}[tc.isMap], tc.json)
		s, err := parseList([]byte(doc), Table)
		if err != nil {
			t.Errorf("%s: %v", tc.json, err)
			continue
		}
		tc.want.set = "s"
		if got := s.elements["s"]; len(got) != 1 || got[0].String() != tc.want.String() || got[0].comment != tc.want.comment {
			t.Errorf("%s: %+v; want %+v", tc.json, got, tc.want)
		}
	}
}

// badListing reads a listing nft would never print.
type badListing struct{ fake }

func (b badListing) read(context.Context) (*Snapshot, error) {
	return &Snapshot{listing: func() (nftcache.Result, error) { return nftcache.Result{Stdout: `{"nftables": [`}, nil }, table: Table}, nil
}

// TestParsedOnNeed: what nft printed is had and parsed only when the memo
// does not hold the drift asked for; a drift computed from a listing of
// another version than the read's, or from one that cannot be parsed, is
// not kept; a listing that cannot be parsed is said as the drift, and a
// change refuses it.
func TestParsedOnNeed(t *testing.T) {
	memo := &nftcache.Cache{Dir: filepath.Join(t.TempDir(), "memo")}
	p := project("p", 0)
	empty := `{"nftables": [{"table": {"family": "inet", "name": "nsrun"}}]}`
	bad := `{"nftables": [`
	loads := 0
	listed := func(out, at, of string) *Snapshot {
		return &Snapshot{listing: func() (nftcache.Result, error) { loads++; return nftcache.Result{Stdout: out, At: of}, nil }, table: Table, at: at, memo: memo}
	}
	drift := listed(empty, "generation 1", "generation 1").Drift(p, false)
	if len(drift) == 0 || loads != 1 {
		t.Fatalf("drift of an empty table: %q after %d listings; want lines, after one", drift, loads)
	}
	loads = 0
	if got := listed(bad, "generation 1", "generation 1").Drift(p, false); !slices.Equal(got, drift) || loads != 0 {
		t.Errorf("the same generation: drift %q after %d listings; want %q from the memo, with none", got, loads, drift)
	}
	for _, at := range []string{"generation 2", "generation 3"} {
		got := listed(bad, at, at).Drift(p, false)
		if len(got) != 1 || !strings.Contains(got[0], "nft -j list table inet nsrun") {
			t.Errorf("%s, a listing that cannot be parsed: drift %q; want the parse error, each time", at, got)
		}
	}
	// A listing of a later generation than the read's: what it gives is
	// not kept for the read's.
	loads = 0
	if got := listed(empty, "generation 4", "").Drift(p, false); !slices.Equal(got, drift) || loads != 1 {
		t.Errorf("a listing of another generation: drift %q after %d listings", got, loads)
	}
	if got := listed(bad, "generation 4", "generation 4").Drift(p, false); len(got) != 1 || loads != 2 {
		t.Errorf("generation 4 again: drift %q after %d listings; want the listing had and its error, not what another generation gave", got, loads)
	}
	if got := listed(bad, "generation 5", "generation 5").Projects(); got != nil {
		t.Errorf("projects of a listing that cannot be parsed: %q", got)
	}
	err := change(context.Background(), badListing{fake{knftables.NewFake(Family, Table)}}, func(tx *knftables.Transaction, s *Snapshot) { ensure(tx, s, p) })
	if err == nil || !strings.Contains(err.Error(), "nft -j list table inet nsrun") {
		t.Errorf("a change on a listing that cannot be parsed: %v; want the parse error", err)
	}
}

// TestRealTable applies projects to the real kernel: nft -j list table
// reads back exactly what was written (no drift, a second Ensure runs
// nothing), nft list ruleset and nft -j list ruleset print all of it with
// nothing they cannot decode, removing one project leaves the other, and
// the probe leaves nothing.
func TestRealTable(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.DumpOnFailure(t)
	ctx := context.Background()
	fw := New()
	if !fw.Installed() {
		t.Fatal("nft is not installed; scripts/install-deps.sh installs it")
	}
	p1, p2 := project(strings.ToLower(nstest.Name("n")), 0), project(strings.ToLower(nstest.Name("m")), 1)
	t.Cleanup(func() { fw.Sweep(ctx) })
	for _, p := range []forward.Project{p1, p2} {
		if err := fw.Ensure(ctx, p, false); err != nil {
			t.Fatal(err)
		}
	}
	s := read(t, fw)
	for _, p := range []forward.Project{p1, p2} {
		if d := s.Drift(p, false); len(d) != 0 {
			t.Errorf("drift of %s as nft -j prints it: %q", p.Name, d)
		}
	}
	nft, _ := fw.run.nft(ctx)
	tx := nft.NewTransaction()
	ensure(tx, s, p1)
	if tx.NumOperations() != 0 {
		t.Errorf("a second Ensure would run:\n%s", tx)
	}
	text, err := exec.Command("nft", "list", "ruleset").CombinedOutput()
	if err != nil || !strings.Contains(string(text), "table inet nsrun") {
		t.Fatalf("nft list ruleset: %v\n%s", err, text)
	}
	for _, bad := range []string{"unknown", "invalid", "Error"} {
		if strings.Contains(string(text), bad) {
			t.Errorf("nft list ruleset prints %q:\n%s", bad, text)
		}
	}
	js, err := exec.Command("nft", "-j", "list", "ruleset").Output()
	if err != nil {
		t.Fatal(err)
	}
	whole, err := parseList(js, Table)
	if err != nil {
		t.Fatalf("nft -j list ruleset: %v", err)
	}
	if s.parse() != nil || whole.exists != s.exists || fmt.Sprint(whole.contents) != fmt.Sprint(s.contents) {
		t.Errorf("nsrun's table in nft -j list ruleset differs from nft -j list table:\n%+v\n%+v", whole.contents, s.contents)
	}
	if err := fw.Remove(ctx, p1.Name); err != nil {
		t.Fatal(err)
	}
	if s := read(t, fw); !slices.Equal(s.Projects(), []string{p2.Name}) || len(s.Drift(p2, false)) != 0 {
		t.Errorf("after removing %s: projects %v, drift of %s %q", p1.Name, s.Projects(), p2.Name, s.Drift(p2, false))
	}
	if err := fw.Probe(ctx); err != nil {
		t.Errorf("probe: %v", err)
	}
	if out, _ := exec.Command("nft", "list", "tables").Output(); strings.Contains(string(out), probeTable) {
		t.Errorf("the probe left its table:\n%s", out)
	}
	if err := fw.Remove(ctx, p2.Name); err != nil {
		t.Fatal(err)
	}
	if read(t, fw).exists {
		t.Error("the table stays after the last project")
	}
}
