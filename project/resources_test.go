package project

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/nsrun/nsrun/cgroup"
	"github.com/nsrun/nsrun/specs"
)

const limitedSpec = `namespaces:
  ns1:
    resources: {memory: 256M, cpus: 0.5, pids: 64}
    run:
      - {name: app, command: [sleep, "100"], resources: {memory: 128M}}
      - {name: side, command: [sleep, "100"]}
  ns2: {}
`

// TestResources: up makes a cgroup for the namespace with limits, with a
// leaf for exec and one per process carrying its own limits; a changed
// limit is set in place, restarting nothing; down removes it.
func TestResources(t *testing.T) {
	sys := newFake()
	e := newEngine(t, sys)
	sup := e.Supervision.(*fakeSupervision)
	ctx := context.Background()
	clean := sys.fingerprint()
	out, err := e.Up(ctx, spec(t, limitedSpec))
	if err != nil {
		t.Fatal(err)
	}
	want := cgroup.Tree{Namespace: "ns1", Limits: specs.Resources{Memory: 256 << 20, CPUs: 0.5, PIDs: 64},
		Leaves: map[string]specs.Resources{cgroup.ExecLeaf: {}, "run.app": {Memory: 128 << 20}, "run.side": {}}}
	if got := sys.cgroups["ns1"]; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("cgroup of ns1: %+v; want %+v", got, want)
	}
	if _, ok := sys.cgroups["ns2"]; ok {
		t.Error("ns2, without limits, has a cgroup")
	}
	for _, p := range sup.plans[len(sup.plans)-1].Processes {
		if p.Cgroup != cgroup.RunLeaf(p.Name) {
			t.Errorf("process %s runs in leaf %q; want %q", p.Key(), p.Cgroup, cgroup.RunLeaf(p.Name))
		}
	}
	gen := out.State.Generation

	// A changed limit: one step, in place, no new generation.
	var progress []string
	e.Progress = func(s Step) { progress = append(progress, s.String()) }
	out, err = e.Up(ctx, spec(t, strings.Replace(limitedSpec, "memory: 256M", "memory: 512M", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(progress, []string{"cgroup of ns1: memory 512M, cpus 0.5, pids 64"}) || out.State.Generation != gen {
		t.Errorf("changing a limit made %q at generation %d (was %d); want the cgroup step alone, no restart", progress, out.State.Generation, gen)
	}
	if got := sys.cgroups["ns1"].Limits.Memory; got != 512<<20 {
		t.Errorf("memory after the change: %d", got)
	}

	// Limits dropped from the spec: the cgroup stays, its limits lifted,
	// the processes where they are.
	progress = nil
	noLimits := strings.NewReplacer("    resources: {memory: 256M, cpus: 0.5, pids: 64}\n", "", `, resources: {memory: 128M}`, "").Replace(limitedSpec)
	out, err = e.Up(ctx, spec(t, noLimits))
	if err != nil {
		t.Fatal(err)
	}
	if got := sys.cgroups["ns1"]; !got.Limits.IsZero() || !got.Leaves["run.app"].IsZero() || out.State.Generation != gen {
		t.Errorf("after the limits went: %+v, generation %d; want the cgroup kept with none, no restart", got, out.State.Generation)
	}

	// The cgroup removed behind nsrun's back: status says so, up repairs.
	delete(sys.cgroups, "ns1")
	rep, err := e.Status(ctx, "demo")
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Drift) != 1 || rep.Drift[0].Kind != DriftCgroup || !strings.Contains(rep.Drift[0].Message, "the cgroup of ns1 is missing") {
		t.Errorf("drift: %+v", rep.Drift)
	}
	progress = nil
	if _, err := e.Up(ctx, spec(t, noLimits)); err != nil {
		t.Fatal(err)
	}
	if len(progress) != 1 || !strings.Contains(progress[0], "repaired: the cgroup of ns1 is missing") {
		t.Errorf("repair: %q", progress)
	}
	if _, err := e.Down(ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	if sys.fingerprint() != clean {
		t.Errorf("after down: %s; want %s", sys.fingerprint(), clean)
	}
}

// TestResourcesAddedLater: a namespace that gains limits gets its cgroup,
// the processes already in it move in, and the supervised ones restart in
// their own leaves.
func TestResourcesAddedLater(t *testing.T) {
	sys := newFake()
	e := newEngine(t, sys)
	ctx := context.Background()
	plain := "namespaces:\n  ns1:\n    run:\n      - {name: app, command: [sleep, \"100\"]}\n"
	out, err := e.Up(ctx, spec(t, plain))
	if err != nil {
		t.Fatal(err)
	}
	gen := out.State.Generation
	sys.log = nil
	out, err = e.Up(ctx, spec(t, strings.Replace(plain, "ns1:\n", "ns1:\n    resources: {pids: 10}\n", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(sys.log, "cgroup ns1") || !slices.Contains(sys.log, "adopt ns1") || out.State.Generation != gen+1 {
		t.Errorf("changes %q at generation %d; want the cgroup made, the namespace's processes adopted, a restart", sys.log, out.State.Generation)
	}
}

// TestResourcesRefused: limits this host cannot enforce are refused
// before any change, naming the controller; so are more CPUs than it has.
func TestResourcesRefused(t *testing.T) {
	sys := newFake()
	delete(sys.controllers, "pids")
	e := newEngine(t, sys)
	clean := sys.fingerprint()
	_, err := e.Up(context.Background(), spec(t, limitedSpec))
	var pre *PreflightError
	if !errors.As(err, &pre) || !strings.Contains(err.Error(), `namespace "ns1" has resource limits that need the pids cgroup controller, which this host lacks`) {
		t.Errorf("up without the pids controller: %v", err)
	}
	if sys.fingerprint() != clean || len(sys.log) > 0 {
		t.Errorf("a refused up changed the host: %q", sys.log)
	}
	sys = newFake()
	e = newEngine(t, sys)
	many := fmt.Sprintf("namespaces:\n  ns1: {resources: {cpus: %d}}\n", runtime.NumCPU()+1)
	if _, err := e.Up(context.Background(), spec(t, many)); !errors.As(err, &pre) || !strings.Contains(err.Error(), "more than the") {
		t.Errorf("up with more cpus than the host has: %v", err)
	}
	if len(sys.log) > 0 {
		t.Errorf("a refused up changed the host: %q", sys.log)
	}
}

// TestDownAllSweepsCgroups: down --all removes every cgroup of nsrun's,
// those of lost records too.
func TestDownAllSweepsCgroups(t *testing.T) {
	sys := newFake()
	e := newEngine(t, sys)
	if _, err := e.Up(context.Background(), spec(t, limitedSpec)); err != nil {
		t.Fatal(err)
	}
	sys.cgroups["lost"] = cgroup.Tree{Namespace: "lost"}
	if err := e.DownAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(sys.cgroups) > 0 {
		t.Errorf("cgroups left after down --all: %v", sys.cgroups)
	}
}
