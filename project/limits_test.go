package project

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nsrun/nsrun/cgroup"
	"github.com/nsrun/nsrun/netns/nstest"
	"github.com/nsrun/nsrun/specs"
	"github.com/nsrun/nsrun/supervise"
)

// TestOOMKill: a process that allocates beyond its namespace's memory
// limit is killed by the kernel's OOM killer, its neighbour and the host
// untouched; the supervisor says why and, with restart: on-failure,
// brings it back and counts it. Raising the limit in place then lets it
// run, and restarts nothing.
func TestOOMKill(t *testing.T) {
	l := newLab(t)
	helper := helperBinary(t)
	src := func(memory string) string {
		return fmt.Sprintf("name: t{ID}\nnamespaces:\n  a{ID}:\n    resources: {memory: %s}\n    run:\n%s"+
			"      - name: hog\n        command: [%q]\n        env: {NSRUN_TEST_HELPER: alloc, MB: \"200\"}\n        restart: on-failure\n"+
			// After web is up: while web starts (a race-detector build, under
			// load), the OOM killer of the shared limit may find it the bigger
			// and kill it instead (seen once in CI).
			"        depends_on: [web]\n",
			memory, server(helper, "a{ID}", ""), helper)
	}
	st := l.up(src("64M"))
	a := l.ns("a")
	web := l.running(a + "/web").PID
	eventually(t, "an OOM kill of a/hog, counted, and a restart", func() bool {
		p := l.process(a + "/hog")
		return p.OOMKills >= 1 && p.Restarts >= 1
	})
	hog := l.process(a + "/hog")
	if hog.ExitCause != "killed: out of memory (limit 64M)" || hog.ExitCode != 137 {
		t.Errorf("hog's last exit: %d, %q; want 137, killed: out of memory (limit 64M)", hog.ExitCode, hog.ExitCause)
	}
	rep, err := l.e.Status(context.Background(), st.Project)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Processes {
		if p.Name == a+"/hog" && (p.ExitCause != hog.ExitCause || p.OOMKills < 1) {
			t.Errorf("status of hog: %+v", p)
		}
	}
	if u := rep.Usage[a]; u.PIDs == 0 || u.Memory == 0 || u.Memory > 64<<20 {
		t.Errorf("usage of %s: %+v; want some pids and memory, at most the limit", a, u)
	}
	log, _ := os.ReadFile(supervise.LogPath(l.e.Store.ProjectDir(st.Project), a, "hog"))
	if !strings.Contains(string(log), "[nsrun] killed: out of memory (limit 64M)") {
		t.Errorf("hog's log does not say why it died:\n%s", log)
	}
	if p := l.process(a + "/web"); p.PID != web || p.State != supervise.Running {
		t.Errorf("the neighbour was touched: %+v (pid was %d)", p, web)
	}

	// The limit raised (to 1G: a race-detector build of the helper takes twice the memory it writes): set in place, web not restarted, and hog, at its
	// next start, allocates all it wants.
	var progress []string
	l.e.Progress = func(s Step) { progress = append(progress, s.String()) }
	if _, err := l.e.Up(context.Background(), l.parse(src("1G"))); err != nil {
		t.Fatal(err)
	}
	l.e.Progress = nil
	// hog may be between two OOM kills, in its restart's pause: up starts
	// it then (a process not running), which starts no other.
	others := slices.DeleteFunc(slices.Clone(progress), func(s string) bool {
		return strings.HasPrefix(s, "processes of project ") || strings.HasPrefix(s, "process "+a+"/")
	})
	if len(others) != 1 || !strings.HasPrefix(others[0], "cgroup of "+a+": memory 1G") {
		t.Errorf("raising the limit made %q; want the cgroup step alone (and hog's start)", progress)
	}
	if got, _ := cgroup.Host().Limits(a, ""); got.Memory != 1<<30 {
		t.Errorf("the cgroup's memory limit is %d after up; want 1G", got.Memory)
	}
	if p := l.process(a + "/web"); p.PID != web {
		t.Errorf("raising a limit restarted web: pid %d, then %d", web, p.PID)
	}
	eventually(t, "hog to allocate all 200 MiB under the raised limit", func() bool {
		log, _ := os.ReadFile(supervise.LogPath(l.e.Store.ProjectDir(st.Project), a, "hog"))
		return strings.Contains(string(log), "allocated all 200 MiB")
	})
}

// cpuRate is how many cores the namespace's processes use, from its
// cgroup's own CPU time counter, over a few seconds.
func cpuRate(t *testing.T, ns string, over time.Duration) float64 {
	t.Helper()
	l := cgroup.Host()
	u0, err := l.Usage(ns)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	time.Sleep(over)
	u1, err := l.Usage(ns)
	if err != nil {
		t.Fatal(err)
	}
	return (u1.CPUSeconds - u0.CPUSeconds) / time.Since(start).Seconds()
}

// TestCPULimit: two busy threads under cpus: 0.5 use half a core (within
// 15%, by the cgroup's own counter over 3 s); cpus: 2, set in place
// without a restart, lifts them well above it.
func TestCPULimit(t *testing.T) {
	l := newLab(t)
	helper := helperBinary(t)
	src := func(cpus string) string {
		return fmt.Sprintf("name: t{ID}\nnamespaces:\n  a{ID}:\n    resources: {cpus: %s}\n    run:\n"+
			"      - name: spin\n        command: [%q]\n        env: {NSRUN_TEST_HELPER: spin, THREADS: \"2\"}\n", cpus, helper)
	}
	l.up(src("0.5"))
	a := l.ns("a")
	pid := l.running(a + "/spin").PID
	eventually(t, "spin to use CPU", func() bool { return cpuRate(t, a, 200*time.Millisecond) > 0.2 })
	if rate := cpuRate(t, a, 3*time.Second); rate < 0.5*0.85 || rate > 0.5*1.15 {
		t.Errorf("under cpus: 0.5, two busy threads used %.3f cores; want 0.5 +- 15%%", rate)
	} else {
		t.Logf("cpus: 0.5: %.3f cores", rate)
	}
	if _, err := l.e.Up(context.Background(), l.parse(src("2"))); err != nil {
		t.Fatal(err)
	}
	if got, _ := cgroup.Host().Limits(a, ""); got.CPUs != 2 {
		t.Errorf("the cgroup's CPU limit is %v after up; want 2", got.CPUs)
	}
	if p := l.process(a + "/spin"); p.PID != pid {
		t.Errorf("changing the CPU limit restarted spin: pid %d, then %d", pid, p.PID)
	}
	// On an idle 2-core machine this is 2 cores; the other tests' and
	// programs' load only lowers it. Above the old limit by far, it shows
	// the new one in force.
	rate := cpuRate(t, a, 3*time.Second)
	t.Logf("cpus: 2: %.3f cores", rate)
	if rate < 0.5*1.5 || rate > 2*1.15 {
		t.Errorf("under cpus: 2, two busy threads used %.3f cores; want well above 0.5, at most 2", rate)
	}
}

// forksRefused reports whether the pids controller refused a fork in the
// namespace's cgroup or in a process's leaf of it (cgroup v1 counts the
// refusal in the cgroup of the process that forked, v2 where the limit
// is).
func forksRefused(ns, leaf string) bool {
	l := cgroup.Host()
	dir := filepath.Join(l.Root, "pids", "nsrun", ns)
	if l.V2 {
		dir = filepath.Join(l.Root, "nsrun", ns)
	}
	for _, d := range []string{dir, filepath.Join(dir, leaf)} {
		data, _ := os.ReadFile(filepath.Join(d, "pids.events"))
		if f := strings.Fields(string(data)); len(f) == 2 && f[0] == "max" && f[1] != "0" {
			return true
		}
	}
	return false
}

// TestForkLoop: a loop of forks inside a namespace stops at its pids
// limit; the host goes on forking.
func TestForkLoop(t *testing.T) {
	l := newLab(t)
	st := l.up("name: t{ID}\nnamespaces:\n  a{ID}:\n    resources: {pids: 16}\n    run:\n" +
		"      - name: forker\n        command: \"i=0; while [ $i -lt 64 ]; do sleep 300 & i=$((i+1)); done; echo all forked; wait\"\n")
	a := l.ns("a")
	eventually(t, "the fork loop to hit the limit", func() bool { return forksRefused(a, cgroup.RunLeaf("forker")) })
	u, err := cgroup.Host().Usage(a)
	if err != nil || u.PIDs > 16 || u.PIDs < 15 {
		t.Errorf("pids in %s: %+v, %v; want the limit, 16, or one less once the shell gave up", a, u, err)
	}
	log, _ := os.ReadFile(supervise.LogPath(l.e.Store.ProjectDir(st.Project), a, "forker"))
	if strings.Contains(string(log), "all forked") {
		t.Errorf("the loop forked 64 times under pids: 16:\n%s", log)
	}
	if out, err := exec.Command("sh", "-c", "sleep 0 & wait; echo forked").CombinedOutput(); err != nil || !strings.Contains(string(out), "forked") {
		t.Errorf("the host cannot fork: %v %s", err, out)
	}
}

// TestExecInCgroup: nsrun exec NS runs the command in the namespace's
// cgroup for exec, through the C fast path and the Go path alike; a
// supervised process runs in its own leaf; a namespace without limits
// has no cgroup of nsrun's.
func TestExecInCgroup(t *testing.T) {
	l := newLab(t)
	l.up("name: t{ID}\nnamespaces:\n  a{ID}:\n    resources: {memory: 128M, pids: 50}\n    run:\n      - {name: idle, command: [sleep, \"300\"]}\n  b{ID}: {}\n")
	a, b := l.ns("a"), l.ns("b")
	for name, bin := range map[string]string{"C path": nstest.CgoBinary(t), "Go path": nstest.PureGoBinary(t)} {
		if bin == "" {
			continue // no C compiler: no fast path to test
		}
		out, err := exec.Command(bin, "exec", a, "--", "cat", "/proc/self/cgroup").CombinedOutput()
		if err != nil || !strings.Contains(string(out), ":/nsrun/"+a+"/exec\n") {
			t.Errorf("%s: nsrun exec %s -- cat /proc/self/cgroup: %v\n%s", name, a, err, out)
		}
		out, err = exec.Command(bin, "exec", b, "--", "cat", "/proc/self/cgroup").CombinedOutput()
		if err != nil || strings.Contains(string(out), "/nsrun/") {
			t.Errorf("%s: nsrun exec %s (no limits) -- cat /proc/self/cgroup: %v\n%s", name, b, err, out)
		}
	}
	p := l.running(a + "/idle")
	if data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", p.PID)); err != nil || !strings.Contains(string(data), ":/nsrun/"+a+"/run.idle\n") {
		t.Errorf("the supervised process is not in its leaf: %v\n%s", err, data)
	}
	// The cgroup gone behind nsrun's back: exec refuses rather than run
	// the command without its limits... as long as a hierarchy still has
	// it; up puts it back.
	layout := cgroup.Host()
	leaf := filepath.Join(layout.Dirs(a)[0], cgroup.ExecLeaf)
	if err := os.Remove(leaf); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(nstest.Binary(t), "exec", a, "--", "true").CombinedOutput(); err == nil || !strings.Contains(string(out), "joining the cgroup of namespace") {
		t.Errorf("exec with the cgroup's exec leaf gone: %v %s; want a refusal", err, out)
	}
	rep, err := l.e.Status(context.Background(), "t"+l.id)
	if err != nil || !hasKind(rep.Drift, DriftCgroup) {
		t.Errorf("status with a leaf gone: %+v, %v; want cgroup drift", rep.Drift, err)
	}
	l.up("name: t{ID}\nnamespaces:\n  a{ID}:\n    resources: {memory: 128M, pids: 50}\n    run:\n      - {name: idle, command: [sleep, \"300\"]}\n  b{ID}: {}\n")
	if out, err := exec.Command(nstest.Binary(t), "exec", a, "--", "true").CombinedOutput(); err != nil {
		t.Errorf("exec after up repaired the cgroup: %v %s", err, out)
	}
	if got, _ := layout.Limits(a, ""); got != (specs.Resources{Memory: 128 << 20, PIDs: 50}) {
		t.Errorf("limits after the repair: %+v", got)
	}
	// A process dropped from the spec: its leaf stays while it stops, and
	// an up after that has nothing to do.
	l.up("name: t{ID}\nnamespaces:\n  a{ID}:\n    resources: {memory: 128M, pids: 50}\n    run:\n      - {name: idle, command: [sleep, \"300\"]}\n      - {name: idle2, command: [sleep, \"300\"]}\n  b{ID}: {}\n")
	l.running(a + "/idle2")
	l.up("name: t{ID}\nnamespaces:\n  a{ID}:\n    resources: {memory: 128M, pids: 50}\n    run:\n      - {name: idle, command: [sleep, \"300\"]}\n  b{ID}: {}\n")
	if out, err := l.e.Up(context.Background(), l.parse("name: t{ID}\nnamespaces:\n  a{ID}:\n    resources: {memory: 128M, pids: 50}\n    run:\n      - {name: idle, command: [sleep, \"300\"]}\n  b{ID}: {}\n")); err != nil || !out.UpToDate {
		t.Errorf("the up after a process was dropped: %+v, %v; want up to date", out, err)
	}
	if _, err := l.e.Down(context.Background(), "t"+l.id); err != nil {
		t.Fatal(err)
	}
	for _, dir := range layout.Dirs(a) {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s left after down: %v", dir, err)
		}
	}
}
