package project

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/nsrun/nsrun/shape"
	"github.com/nsrun/nsrun/specs"
	"github.com/nsrun/nsrun/state"
	"golang.org/x/sys/unix"
)

const shapedSpec = `namespaces:
  ns1:
    bandwidth: {ingress: 20mbit, egress: 10mbit}
    run:
      - {name: app, command: [sleep, "100"]}
  ns2: {}
`

// TestShaping: up shapes both ends of a shaped namespace's link and no
// other; a second up changes nothing; a changed rate is set in place (no
// link step, no restart); shaping removed behind nsrun's back is drift
// that status reports, the keeper's look finds, and up repairs; shaping
// dropped from the spec is removed; down takes it with the link.
func TestShaping(t *testing.T) {
	sys := newFake()
	e := newEngine(t, sys)
	ctx := context.Background()
	clean := sys.fingerprint()
	out, err := e.Up(ctx, spec(t, shapedSpec))
	if err != nil {
		t.Fatal(err)
	}
	link := out.State.Namespace("ns1").Link
	want := shape.Want(specs.Bandwidth{Ingress: 20e6, Egress: 10e6}, nil)
	if got := sys.shaping[link]; len(got.Host) != 1 || !got.Host.Matches(want.Host) || !got.Peer.Matches(want.Peer) {
		t.Errorf("shaping of ns1: %+v; want %+v", got, want)
	}
	if _, ok := sys.shaping[out.State.Namespace("ns2").Link]; ok {
		t.Error("ns2, without bandwidth, is shaped")
	}
	gen := out.State.Generation
	sys.log = nil
	if again, err := e.Up(ctx, spec(t, shapedSpec)); err != nil || !again.UpToDate || len(sys.log) > 0 {
		t.Errorf("second up: %v, changes %q; want none", err, sys.log)
	}

	// A changed rate: one step, in place.
	var progress []string
	e.Progress = func(s Step) { progress = append(progress, s.String()) }
	faster := strings.Replace(shapedSpec, "ingress: 20mbit", "ingress: 40mbit", 1)
	if out, err = e.Up(ctx, spec(t, faster)); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(progress, []string{"shaping of ns1: ingress 40mbit, egress 10mbit"}) || out.State.Generation != gen {
		t.Errorf("changing the rate made %q at generation %d (was %d); want the shaping step alone, no restart", progress, out.State.Generation, gen)
	}
	if got := sys.shaping[link].Host; len(got) != 1 || got[0].Rate != 5e6 {
		t.Errorf("the host side after the change: %+v; want 40mbit (5e6 bytes/s)", got)
	}

	// Removed behind nsrun's back: drift, seen by the keeper, repaired by up.
	sys.shaping[link] = shape.Link{}
	rep, err := e.Status(ctx, "demo")
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Drift) != 2 || rep.Drift[0].Kind != DriftShaping || !strings.Contains(rep.Drift[0].Message, "the shaping of what goes into namespace ns1 is missing") ||
		!strings.Contains(rep.Drift[1].Message, "the shaping of what goes out of namespace ns1 is missing") {
		t.Errorf("drift: %+v", rep.Drift)
	}
	progress = nil
	if _, err := e.Up(ctx, spec(t, faster)); err != nil {
		t.Fatal(err)
	}
	if len(progress) != 1 || !strings.Contains(progress[0], "(repaired: the shaping of what goes into namespace ns1 is missing") {
		t.Errorf("repair: %q", progress)
	}

	// Dropped from the spec: removed.
	progress = nil
	plain := strings.Replace(faster, "    bandwidth: {ingress: 40mbit, egress: 10mbit}\n", "", 1)
	if _, err := e.Up(ctx, spec(t, plain)); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(progress, []string{"shaping of ns1 removed"}) || !sys.shaping[link].IsZero() {
		t.Errorf("dropping the bandwidth made %q, left %+v", progress, sys.shaping[link])
	}
	if _, err := e.Down(ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	if sys.fingerprint() != clean {
		t.Errorf("after down: %s; want %s", sys.fingerprint(), clean)
	}
}

// TestHealRepairsShaping: the keeper's look finds a shaped link's qdiscs
// gone and puts them back, and leaves an unshaped project alone.
func TestHealRepairsShaping(t *testing.T) {
	sys := newFake()
	e := newEngine(t, sys)
	ctx := context.Background()
	out, err := e.Up(ctx, spec(t, shapedSpec))
	if err != nil {
		t.Fatal(err)
	}
	link := out.State.Namespace("ns1").Link
	if repairs, err := e.Heal(ctx, nil); err != nil || len(repairs) != 0 {
		t.Fatalf("a look at a kept host: %+v, %v; want nothing done", repairs, err)
	}
	made := sys.shaping[link]
	sys.shaping[link] = shape.Link{Host: made.Host}
	repairs, err := e.Heal(ctx, []string{"a qdisc changed"})
	if err != nil || len(repairs) != 1 || repairs[0].Err != nil || len(repairs[0].Fixed) != 1 ||
		!strings.Contains(repairs[0].Fixed[0], "the shaping of what goes out of namespace ns1 is missing") {
		t.Fatalf("repairs %+v, %v; want the namespace side's shaping put back", repairs, err)
	}
	if got := sys.shaping[link]; !got.Peer.Matches(made.Peer) || !got.Host.Matches(made.Host) {
		t.Errorf("after the repair: %+v; want %+v", got, made)
	}
}

// TestShapingRefused: netem on a kernel without sch_netem is refused
// before any change, naming the module; validate does not know the kernel.
func TestShapingRefused(t *testing.T) {
	sys := newFake()
	sys.noQdisc = map[string]error{shape.Netem: unix.ENOENT}
	e := newEngine(t, sys)
	clean := sys.fingerprint()
	_, err := e.Up(context.Background(), spec(t, "namespaces:\n  ns1:\n    netem: {delay: 20ms}\n    bandwidth: {egress: 10mbit}\n"))
	var pre *PreflightError
	if !errors.As(err, &pre) || !strings.Contains(err.Error(), `namespace "ns1" has netem, which needs the kernel's netem qdisc, and this kernel cannot make one (no such file or directory); load its module (modprobe sch_netem)`) {
		t.Errorf("up with netem on a kernel without: %v", err)
	}
	if sys.fingerprint() != clean || len(sys.log) > 0 {
		t.Errorf("a refused up changed the host: %q", sys.log)
	}
	// The same with the module: netem at the root of the namespace side,
	// the egress limit under it.
	sys.noQdisc = nil
	out, err := e.Up(context.Background(), spec(t, "namespaces:\n  ns1:\n    netem: {delay: 20ms}\n    bandwidth: {egress: 10mbit}\n"))
	if err != nil {
		t.Fatal(err)
	}
	peer := sys.shaping[out.State.Namespace("ns1").Link].Peer
	if len(peer) != 2 || peer[0].Kind != shape.Netem || peer[0].Handle != shape.RootHandle || peer[1].Kind != shape.TBF || peer[1].Parent != shape.ChildParent {
		t.Errorf("the namespace side: %+v; want netem at the root, tbf under it", peer)
	}
}

// TestBetweenLooks: a record cut for the keeper keeps its shaped
// namespaces and its first that publishes a port, in which ShapedLinks
// finds the same links; it heals and publishes as the record does; the
// record stays as it was.
func TestBetweenLooks(t *testing.T) {
	port := specs.MustParsePort("6000:8080")
	st := &state.Record{Project: "p", NoHeal: true, Namespaces: []*state.Namespace{
		{Name: "a", Link: "nsr-a", Bandwidth: specs.Bandwidth{Ingress: 20_000_000}},
		{Name: "b", Link: "nsr-b"},
		{Name: "c", Link: "nsr-c", Ports: []specs.Port{port}},
		{Name: "d", Link: "nsr-d", Ports: []specs.Port{port}},
		{Name: "e", Link: "nsr-e", Netem: &specs.Netem{Loss: 1}},
	}}
	got := BetweenLooks(st)
	var names []string
	for _, ns := range got.Namespaces {
		names = append(names, ns.Name)
	}
	if !slices.Equal(names, []string{"a", "c", "e"}) || !got.NoHeal || got.Project != "p" {
		t.Errorf("BetweenLooks: project %s (no heal %t) with %v; want p (no heal) with a, c, e", got.Project, got.NoHeal, names)
	}
	if want := ShapedLinks(st); !slices.Equal(ShapedLinks(got), want) || len(want) != 2 {
		t.Errorf("ShapedLinks of the cut record: %v; of the record: %v", ShapedLinks(got), want)
	}
	if none := BetweenLooks(&state.Record{Namespaces: []*state.Namespace{{Name: "b", Link: "nsr-b"}}}); len(none.Namespaces) != 0 {
		t.Errorf("a record without ports or shaping, cut: %+v", none.Namespaces)
	}
	if len(st.Namespaces) != 5 {
		t.Errorf("BetweenLooks changed the record: %+v", st)
	}
}
