package nftables

import (
	"context"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/netns/nstest"
	"github.com/nsrun/nsrun/specs"
	"sigs.k8s.io/knftables"
)

// TestCounts: each publication has a named counter of its chain's name,
// which its rule counts with, made before the rule and removed with the
// project; a port finds its own, and its counters of each way.
func TestCounts(t *testing.T) {
	ctx := context.Background()
	fw := NewFake()
	p := project("p1", 0)
	if err := fw.Ensure(ctx, p, false); err != nil {
		t.Fatal(err)
	}
	got, err := fw.Counts(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := got.(Counts)
	pubs := 0
	for _, ns := range p.Namespaces {
		for _, port := range ns.Ports {
			if _, ok := forward.DNATTo(ns, port); !ok {
				continue
			}
			pubs++
			if _, ok := c.Connections(p.Name, ns, port); !ok {
				t.Errorf("no counter for %s/%s %s; the counters: %v", p.Name, ns.Name, port.Full(), c)
			}
		}
	}
	if len(c) != pubs {
		t.Errorf("%d counters for %d publications: %v", len(c), pubs, c)
	}
	if got, _ := fw.Counts(ctx, []forward.Project{project("p2", 1)}); len(got.(Counts)) != 0 {
		t.Errorf("counters of a project that has none: %v", got)
	}
	if got, _ := fw.Counts(ctx, []forward.Project{p}); len(got.(Counts)) != pubs {
		t.Errorf("counters of the project, by name: %d; want %d", len(got.(Counts)), pubs)
	}
	if err := fw.Remove(ctx, p.Name); err != nil {
		t.Fatal(err)
	}
	if got, _ := fw.Counts(ctx, nil); len(got.(Counts)) != 0 {
		t.Errorf("counters after the project was removed: %v", got)
	}

	ns := forward.Namespace{Name: "a", Address: netip.MustParsePrefix("10.1.0.2/30"), Address6: netip.MustParsePrefix("fd00::2/64")}
	counts := Counts{"port/p/a/tcp/6000": {Packets: 152, Bytes: 9120}, "port/p/a/ip6/udp/6001": {Packets: 3},
		"port/p/a/tcp/6000/in": {Packets: 160, Bytes: 9000}, "port/p/a/tcp/6000/out": {Packets: 150, Bytes: 250000}}
	for _, tc := range []struct {
		port string
		n    uint64
		ok   bool
	}{
		{"6000:8080", 152, true},
		{"[::]:6001:53/udp", 3, true},
		{"6003:8080", 0, false},       // no counter
		{"[::1]:6004:8080", 0, false}, // the loopback shortcut's alone
	} {
		port, err := specs.ParsePort(tc.port)
		if err != nil {
			t.Fatal(err)
		}
		if n, ok := counts.Connections("p", ns, port); n != tc.n || ok != tc.ok {
			t.Errorf("Connections(%s) = %d, %t; want %d, %t", tc.port, n, ok, tc.n, tc.ok)
		}
	}
	in, out, ok := counts.Traffic("p", ns, specs.MustParsePort("6000:8080"))
	if in != (forward.Flow{Packets: 160, Bytes: 9000}) || out != (forward.Flow{Packets: 150, Bytes: 250000}) || !ok {
		t.Errorf("Traffic(6000) = %+v, %+v, %t", in, out, ok)
	}
	if _, _, ok := counts.Traffic("p", ns, specs.MustParsePort("[::]:6001:53/udp")); ok {
		t.Error("Traffic of a port without way counters says it has them")
	}
}

// TestCounting: the counting table holds two counters per published port
// and an element per counter in the port's map, keyed by the direction
// and the port's host address, protocol and ports; a second Set changes
// nothing; another project's counters stay when one goes, and the table
// goes with the last; a project without published ports makes none.
func TestCounting(t *testing.T) {
	ctx := context.Background()
	c := NewCountingFake()
	p, q := project("p1", 0), project("p2", 1)
	for _, pr := range []forward.Project{p, q} {
		if err := setCounts(ctx, c, pr); err != nil {
			t.Fatal(err)
		}
	}
	st, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := st.Drift(p); len(d) != 0 {
		t.Errorf("drift after Set: %q", d)
	}
	got, err := c.Traffic(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	pubs := 0
	for _, ns := range p.Namespaces {
		for _, port := range ns.Ports {
			if _, ok := forward.DNATTo(ns, port); !ok {
				continue
			}
			pubs++
			if _, _, ok := got.Traffic(p.Name, ns, port); !ok {
				t.Errorf("no counters of %s/%s %s: %v", p.Name, ns.Name, port.Full(), got)
			}
		}
	}
	if pubs == 0 || len(got.(Counts)) != 2*pubs*2 { // two projects alike
		t.Errorf("%d counters for %d publications of each of two projects", len(got.(Counts)), pubs)
	}
	f := c.run.(fake).f
	if elems := len(f.Table.Maps[countAny].Elements) + len(f.Table.Maps[countAddr].Elements) + len(f.Table.Maps[countAnys].Elements) +
		len(f.Table.Maps[countAddrs].Elements) + len(f.Table.Maps[countAny6].Elements) + len(f.Table.Maps[countAddr6].Elements) +
		len(f.Table.Maps[countAnys6].Elements) + len(f.Table.Maps[countAddrs6].Elements); elems != 2*pubs*2 {
		t.Errorf("%d elements in the maps; want one per counter, %d", elems, 2*pubs*2)
	}
	before := f.Dump()
	if write, err := c.Prepare(ctx, p); err != nil || write != nil {
		t.Errorf("Prepare of counting in place = a write %v, %v; want none", write != nil, err)
	}
	if err := setCounts(ctx, c, p); err != nil || f.Dump() != before {
		t.Errorf("a second Set changed the table (%v)", err)
	}
	// A counter deleted by hand is drift, which Set repairs.
	tx := f.NewTransaction()
	name := wayCounter(publicationOf(p.Name, p.Namespaces[0].Name, p.Namespaces[0].Address.Addr().String(), p.Namespaces[0].Ports[0]).chain, wayIn)
	for m, mp := range f.Table.Maps {
		for _, e := range mp.Elements {
			if len(e.Value) == 1 && e.Value[0] == name {
				tx.Delete(&knftables.Element{Map: m, Key: e.Key})
			}
		}
	}
	tx.Delete(&knftables.Counter{Name: name})
	if err := f.Run(ctx, tx); err != nil {
		t.Fatal(err)
	}
	if st, _ := c.Read(ctx); len(st.Drift(p)) != 2 {
		t.Errorf("a counter and its element deleted: drift %q; want both", st.Drift(p))
	}
	if err := setCounts(ctx, c, p); err != nil {
		t.Fatal(err)
	}
	if st, _ := c.Read(ctx); len(st.Drift(p)) != 0 {
		t.Errorf("not repaired: %q", st.Drift(p))
	}
	if got, _ := c.Traffic(ctx, nil); len(got.(Counts)) != 2*pubs*2 {
		t.Errorf("after the repair: %d counters", len(got.(Counts)))
	}
	if err := c.Remove(ctx, p.Name); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Traffic(ctx, nil); len(got.(Counts)) != 2*pubs {
		t.Errorf("after one project went: %d counters; want the other's %d", len(got.(Counts)), 2*pubs)
	}
	if got, _ := c.Traffic(ctx, []forward.Project{p}); len(got.(Counts)) != 0 {
		t.Errorf("the counters of the project that went: %v", got)
	}
	if got, _ := c.Traffic(ctx, []forward.Project{q}); len(got.(Counts)) != 2*pubs {
		t.Errorf("the counters of the project that stayed: %d; want %d", len(got.(Counts)), 2*pubs)
	}
	if err := c.Remove(ctx, q.Name); err != nil {
		t.Fatal(err)
	}
	if f.Table != nil {
		t.Errorf("the table is left after the last project:\n%s", f.Dump())
	}
	none := forward.Project{Name: "bare", Namespaces: []forward.Namespace{{Name: "a", Link: "nsr-bare-a", Address: netip.MustParsePrefix("10.9.0.2/30")}}}
	if err := setCounts(ctx, c, none); err != nil || f.Table != nil {
		t.Errorf("a project without published ports made the table (%v)", err)
	}
	if st, _ := c.Read(ctx); len(st.Drift(none)) != 0 {
		t.Errorf("a project without published ports drifts: %q", st.Drift(none))
	}
}

// TestCountersByName reads counters of the real kernel's counting table
// by name, in more than one batch: what the dump of every counter says
// of them; a name not there, and a table not there, are left out.
func TestCountersByName(t *testing.T) {
	nstest.RequireRoot(t)
	ctx := context.Background()
	c := NewCounting(nil)
	if !c.Installed() {
		t.Fatal("nft is not installed; scripts/install-deps.sh installs it")
	}
	p, q := project(strings.ToLower(nstest.Name("c")), 2), project(strings.ToLower(nstest.Name("d")), 3)
	for _, pr := range []forward.Project{p, q} {
		t.Cleanup(func() {
			if err := c.Remove(ctx, pr.Name); err != nil {
				t.Error(err)
			}
		})
		if err := setCounts(ctx, c, pr); err != nil {
			t.Fatal(err)
		}
	}
	// A counter that has counted, as nft lets one be made.
	counted := "nsrun-test/" + p.Name
	t.Cleanup(func() { exec.Command("nft", "delete", "counter", "inet", CountTable, counted).Run() })
	if out, err := exec.Command("nft", "add", "counter", "inet", CountTable, counted, "{", "packets", "7", "bytes", "7000", "}").CombinedOutput(); err != nil {
		t.Fatalf("nft add counter: %v\n%s", err, out)
	}
	_, names := renderCounts(p)
	_, others := renderCounts(q)
	names = append(slices.Concat(names, others), counted)
	all, err := c.run.counters(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if all[counted] != (forward.Flow{Packets: 7, Bytes: 7000}) || len(names) <= getBatch {
		t.Fatalf("the dump: %v for %s; want 7 packets, 7000 bytes; %d names, want more than %d", all[counted], counted, len(names), getBatch)
	}
	got, err := c.run.counters(ctx, append(names, "no-such-counter"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]forward.Flow{}
	for _, name := range names {
		flow, ok := all[name]
		if !ok {
			t.Fatalf("counter %s is not in the dump", name)
		}
		want[name] = flow
	}
	if !maps.Equal(got, want) {
		t.Errorf("by name: %v\nin the dump: %v", got, want)
	}
	if got, err := getCounters("nsrun-no-such-table", names); err != nil || len(got) != 0 {
		t.Errorf("counters of a table that is not there: %v, %v; want none, no error", got, err)
	}
}

// setCounts prepares the project's counting and writes it, as Apply does.
func setCounts(ctx context.Context, c *Counting, p forward.Project) error {
	write, err := c.Prepare(ctx, p)
	if err != nil || write == nil {
		return err
	}
	return write(ctx)
}

// TestReadyMakesTheHandleOnce: Ready makes the handle the counting
// table's writes run nft through (nft --version and a check), and the
// write after it takes that handle, making none of its own.
func TestReadyMakesTheHandleOnce(t *testing.T) {
	nstest.RequireRoot(t)
	ctx := context.Background()
	real, err := exec.LookPath("nft")
	if err != nil {
		t.Fatalf("nft: %v; scripts/install-deps.sh installs it", err)
	}
	wrappers, calls := t.TempDir(), filepath.Join(t.TempDir(), "calls")
	script := "#!/bin/sh\necho \"$1\" >> " + calls + "\nexec " + real + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(wrappers, "nft"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", wrappers+":"+os.Getenv("PATH"))
	versions := func() int {
		b, _ := os.ReadFile(calls)
		return strings.Count(string(b), "--version\n")
	}
	c := NewCounting(nil)
	p := project(strings.ToLower(nstest.Name("r")), 2)
	t.Cleanup(func() {
		if err := c.Remove(ctx, p.Name); err != nil {
			t.Error(err)
		}
	})
	if err := c.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	if n := versions(); n != 1 {
		t.Fatalf("Ready ran nft --version %d times; want once (the handle made)", n)
	}
	if err := setCounts(ctx, c, p); err != nil {
		t.Fatal(err)
	}
	if n := versions(); n != 1 {
		t.Errorf("after Ready and a write, nft --version ran %d times; want once (the write took the handle made)", n)
	}
	state, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := state.Drift(p); len(d) > 0 {
		t.Errorf("after the write: drift %q", d)
	}
}
