package cgroup

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nsrun/nsrun/netns/nstest"
	"github.com/nsrun/nsrun/specs"
)

func TestMain(m *testing.M) { nstest.Main(m) }

// fakeV2 is a directory laid out as a cgroup v2 root as the kernel shows
// it: the controllers it offers, and the subtree_control file of each
// cgroup on the way to the namespace's (the kernel makes those with the
// directory; a plain directory does not).
func fakeV2(t *testing.T, ns string) Layout {
	t.Helper()
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "cgroup.controllers"), []byte("cpuset cpu io memory hugetlb pids rdma misc\n"), 0o644)
	for _, dir := range []string{root, filepath.Join(root, "nsrun"), filepath.Join(root, "nsrun", ns)} {
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), nil, 0o644)
	}
	return Layout{Root: root, V2: true}
}

func read(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}

// TestV2Layout: on the v2 layout, the namespace's cgroup carries its
// limits, each leaf its own, and a limit taken out of the spec is
// lifted; the controllers are handed down to the leaves.
func TestV2Layout(t *testing.T) {
	l := fakeV2(t, "web")
	tree := Tree{Namespace: "web", Limits: specs.Resources{Memory: 256 << 20, CPUs: 0.5, PIDs: 64},
		Leaves: map[string]specs.Resources{ExecLeaf: {}, RunLeaf("app"): {Memory: 128 << 20}}}
	if err := l.Ensure(tree); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(l.Root, "nsrun", "web")
	for file, want := range map[string]string{
		"memory.max": "268435456", "cpu.max": "50000 100000", "pids.max": "64",
		"run.app/memory.max": "134217728", "run.app/pids.max": "max", "run.app/cpu.max": "max 100000",
		"exec/memory.max": "9223372036854775807", "exec/pids.max": "max",
	} {
		if got := read(t, filepath.Join(dir, file)); got != want {
			t.Errorf("%s: %q; want %q", file, got, want)
		}
	}
	for _, d := range []string{l.Root, filepath.Join(l.Root, "nsrun"), dir} {
		if got := read(t, filepath.Join(d, "cgroup.subtree_control")); !strings.Contains(got, "+memory") || !strings.Contains(got, "+cpu") || !strings.Contains(got, "+pids") {
			t.Errorf("%s/cgroup.subtree_control: %q; want memory, cpu and pids handed down", d, got)
		}
	}
	if got, ok := l.Limits("web", ""); !ok || got != tree.Limits {
		t.Errorf("limits read back: %+v, %v; want %+v", got, ok, tree.Limits)
	}
	if got, _ := l.Limits("web", RunLeaf("app")); got != (specs.Resources{Memory: 128 << 20}) {
		t.Errorf("leaf limits read back: %+v", got)
	}
	if got := l.MemoryLimit("web", RunLeaf("app")); got != 128<<20 {
		t.Errorf("the memory limit binding run.app: %d", got)
	}
	if got := l.MemoryLimit("web", ExecLeaf); got != 256<<20 {
		t.Errorf("the memory limit binding exec: %d", got)
	}

	// Changed in place: the CPU limit lifted, memory raised.
	tree.Limits = specs.Resources{Memory: 512 << 20, PIDs: 64}
	if err := l.Ensure(tree); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(dir, "cpu.max")); got != "max 100000" {
		t.Errorf("cpu.max after the limit went: %q", got)
	}
	if got, _ := l.Limits("web", ""); got != tree.Limits {
		t.Errorf("limits after the change: %+v; want %+v", got, tree.Limits)
	}
	if got := l.Namespaces(); !slices.Equal(got, []string{"web"}) {
		t.Errorf("namespaces with a cgroup: %q", got)
	}
	if st, ok := l.Read("web"); !ok || !st.Complete || st.Limits != tree.Limits || len(st.Leaves) != 2 {
		t.Errorf("the cgroup read back: %+v, %v", st, ok)
	}
	if _, ok := l.Read("other"); ok {
		t.Error("a namespace without a cgroup reads as having one")
	}
}

// TestCommands: plan's commands make the same cgroups on each layout.
func TestCommands(t *testing.T) {
	tree := Tree{Namespace: "web", Limits: specs.Resources{Memory: 256 << 20, CPUs: 0.5, PIDs: 64},
		Leaves: map[string]specs.Resources{ExecLeaf: {}, RunLeaf("app"): {Memory: 128 << 20}}}
	l2 := fakeV2(t, "x")
	v2 := strings.ReplaceAll(strings.Join(l2.Commands(tree), "\n"), l2.Root, "ROOT") + "\n"
	for _, want := range []string{"echo '+memory +cpu +pids' > ROOT/cgroup.subtree_control\n", "mkdir -p ROOT/nsrun/web\n",
		"echo 268435456 > ROOT/nsrun/web/memory.max\n", "echo '50000 100000' > ROOT/nsrun/web/cpu.max\n", "echo 64 > ROOT/nsrun/web/pids.max\n",
		"echo '+memory +cpu +pids' > ROOT/nsrun/web/cgroup.subtree_control\n", "mkdir -p ROOT/nsrun/web/exec\n",
		"echo 134217728 > ROOT/nsrun/web/run.app/memory.max\n"} {
		if !strings.Contains(v2, want) {
			t.Errorf("v2 commands lack %q:\n%s", want, v2)
		}
	}
	l1 := Layout{Root: t.TempDir()}
	for _, c := range []string{"memory", "cpu", "cpuacct", "pids"} {
		os.Mkdir(filepath.Join(l1.Root, c), 0o755)
		os.WriteFile(filepath.Join(l1.Root, c, "cgroup.procs"), nil, 0o644) // a mounted hierarchy's root
	}
	v1 := strings.ReplaceAll(strings.Join(l1.Commands(tree), "\n"), l1.Root, "ROOT") + "\n"
	for _, want := range []string{"mkdir -p ROOT/memory/nsrun/web\n", "echo 268435456 > ROOT/memory/nsrun/web/memory.limit_in_bytes\n",
		"echo 50000 > ROOT/cpu/nsrun/web/cpu.cfs_quota_us\n", "echo 64 > ROOT/pids/nsrun/web/pids.max\n", "mkdir -p ROOT/cpuacct/nsrun/web/exec\n",
		"echo 134217728 > ROOT/memory/nsrun/web/run.app/memory.limit_in_bytes\n"} {
		if !strings.Contains(v1, want) {
			t.Errorf("v1 commands lack %q:\n%s", want, v1)
		}
	}
}

// TestHost: on this host's real hierarchy, a namespace's cgroup is made
// with its limits, holds a process moved into a leaf, counts it, changes
// its limits in place, and goes once the process has.
func TestHost(t *testing.T) {
	nstest.RequireRoot(t)
	l := Host()
	for _, c := range Controllers {
		if !l.Available()[c] {
			t.Fatalf("controller %s is missing on this host (%s)", c, l)
		}
	}
	ns := nstest.Name("cg")
	tree := Tree{Namespace: ns, Limits: specs.Resources{Memory: 64 << 20, CPUs: 0.5, PIDs: 16},
		Leaves: map[string]specs.Resources{ExecLeaf: {}, RunLeaf("app"): {PIDs: 8}}}
	t.Cleanup(func() {
		if err := l.Remove(ns, 5*time.Second); err != nil {
			t.Error(err)
		}
	})
	if err := l.Ensure(tree); err != nil {
		t.Fatal(err)
	}
	if got, ok := l.Limits(ns, ""); !ok || got != tree.Limits {
		t.Errorf("limits in place: %+v, %v; want %+v", got, ok, tree.Limits)
	}
	if got, _ := l.Limits(ns, RunLeaf("app")); got != (specs.Resources{PIDs: 8}) {
		t.Errorf("leaf limits in place: %+v", got)
	}
	if st, ok := l.Read(ns); !slices.Contains(l.Namespaces(), ns) || !ok || !st.Complete {
		t.Errorf("the namespace's cgroup is not listed: %q", l.Namespaces())
	}
	sleep := exec.Command("sleep", "60")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if sleep.ProcessState == nil {
			sleep.Process.Kill()
			sleep.Wait()
		}
	})
	if err := l.Move(ns, RunLeaf("app"), []int{sleep.Process.Pid}); err != nil {
		t.Fatal(err)
	}
	self := read(t, "/proc/"+itoa(sleep.Process.Pid)+"/cgroup")
	if !strings.Contains(self, "/nsrun/"+ns+"/run.app") {
		t.Errorf("the process is not in the leaf:\n%s", self)
	}
	if got := l.Procs(ns); !slices.Equal(got, []int{sleep.Process.Pid}) {
		t.Errorf("processes in the cgroup: %v; want [%d]", got, sleep.Process.Pid)
	}
	if u, err := l.Usage(ns); err != nil || u.PIDs != 1 || u.Memory == 0 {
		t.Errorf("usage: %+v, %v; want one pid and some memory", u, err)
	}
	tree.Limits = specs.Resources{Memory: 128 << 20, PIDs: 16}
	if err := l.Ensure(tree); err != nil {
		t.Fatal(err)
	}
	if got, _ := l.Limits(ns, ""); got != tree.Limits {
		t.Errorf("limits after the change: %+v; want %+v", got, tree.Limits)
	}
	if err := l.Remove(ns, 100*time.Millisecond); err == nil || !strings.Contains(err.Error(), itoa(sleep.Process.Pid)) {
		t.Errorf("removing a cgroup a process is in: %v; want an error naming it", err)
	}
	l.Kill(ns)
	if err := sleep.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("the process in the cgroup after Kill: %v; want killed", err)
	}
	if err := l.Remove(ns, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(l.Namespaces(), ns) {
		t.Errorf("the cgroup is still listed after removal")
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
