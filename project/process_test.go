package project

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nsrun/nsrun/cgroup"

	"github.com/nsrun/nsrun/host"
	"github.com/nsrun/nsrun/internal/atomicfile"
	"github.com/nsrun/nsrun/internal/proc"
	"github.com/nsrun/nsrun/internal/sysctl"
	"github.com/nsrun/nsrun/netns"
	"github.com/nsrun/nsrun/netns/nstest"
	"github.com/nsrun/nsrun/supervise"
)

// helperBinary copies the test binary (which serves and dials, see
// nstest.Main) where any user may run it.
func helperBinary(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		os.Chmod(d, 0o755)
	}
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "helper")
	if err := os.WriteFile(path, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// server is a run entry that serves NAME on TCP port 8080.
func server(helper, name, extra string) string {
	return fmt.Sprintf(`      - name: web
        command: [%q]
        env: {NSRUN_TEST_HELPER: serve, NAME: %s, TCP: "8080"}
        ready: {tcp: 8080, timeout: 20s}
%s`, helper, name, extra)
}

// status reads the supervisor's status of the lab's project.
func (l *lab) status() supervise.Status {
	l.t.Helper()
	st, err := supervise.ReadStatus(l.e.Store.ProjectDir("t" + l.id))
	if err != nil {
		l.t.Fatal(err)
	}
	return st
}

func (l *lab) process(key string) supervise.ProcessStatus {
	l.t.Helper()
	for _, p := range l.status().Processes {
		if p.Key() == key {
			return p
		}
	}
	l.t.Fatalf("no process %s in %+v", key, l.status())
	return supervise.ProcessStatus{}
}

// running waits until the supervisor runs the process (again, after a
// restart) and returns it.
func (l *lab) running(key string) supervise.ProcessStatus {
	l.t.Helper()
	var p supervise.ProcessStatus
	eventually(l.t, key+" running", func() bool {
		p = l.process(key)
		return p.State == supervise.Running && p.PID != 0
	})
	return p
}

// eventually polls cond for up to 20s: for events the test waits on, not
// for timing goals.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("gave up waiting: %s", what)
}

func TestProcessesServeWhenUpReturns(t *testing.T) {
	l := newLab(t)
	helper := helperBinary(t)
	ports := freePorts(t, 2)
	l.up(fmt.Sprintf("name: t{ID}\nnamespaces:\n  a{ID}:\n    ports: [\"%d:8080\"]\n    run:\n%s  b{ID}:\n    ports: [\"%d:8080\"]\n    run:\n%s",
		ports[0], server(helper, "a{ID}", ""), ports[1], server(helper, "b{ID}", "")))
	a, b := l.ns("a"), l.ns("b")
	// No waiting: up returned, so both answer now.
	r, err := hostDial("tcp", addr(localhost, ports[0]), "")
	l.expect(r, err, a, "127.0.0.1:P0 right after up")
	r, err = hostDial("tcp", addr(localhost, ports[1]), "")
	l.expect(r, err, b, "127.0.0.1:P1 right after up")
	// Each process runs inside its namespace, supervised.
	for _, ns := range []string{a, b} {
		p := l.process(ns + "/web")
		pids, _ := netns.Pids(ns)
		if p.State != supervise.Running || !slices.ContainsFunc(pids, func(q proc.Process) bool { return q.PID == p.PID }) {
			t.Errorf("%s/web: %+v; pids in the namespace %v", ns, p, pids)
		}
	}
	// Names of the project's namespaces resolve inside them.
	out, err := exec.Command(nstest.Binary(t), "exec", a, "--env", "NSRUN_TEST_HELPER=dial", "--env", "PROTO=tcp", "--env", "ADDR="+b+":8080", "--", helper).CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), b+" ") {
		t.Errorf("%s dialling %s:8080 by name: %v %s", a, b, err, out)
	}
	sup := l.status()
	if _, err := l.e.Down(context.Background(), "t"+l.id); err != nil {
		t.Fatal(err)
	}
	for _, pid := range []int{sup.PID, sup.Processes[0].PID, sup.Processes[1].PID} {
		if err := exec.Command("kill", "-0", fmt.Sprint(pid)).Run(); err == nil && processAlive(pid) {
			t.Errorf("process %d is still running after down", pid)
		}
	}
}

// processAlive reports a live process that is not a zombie.
func processAlive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(data), ')')
	return i > 0 && len(data) > i+2 && data[i+2] != 'Z'
}

func TestProcessAsAnotherUser(t *testing.T) {
	l := newLab(t)
	helper := helperBinary(t)
	l.up("name: t{ID}\nnamespaces:\n  a{ID}:\n    run:\n" + server(helper, "a{ID}", "        user: nobody\n        workdir: /tmp\n"))
	p := l.process(l.ns("a") + "/web")
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.PID))
	if err != nil || !strings.Contains(string(status), "Uid:\t65534\t65534\t65534\t65534") {
		t.Errorf("process %d is not running as nobody:\n%s", p.PID, status)
	}
	if cwd, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", p.PID)); cwd != "/tmp" {
		t.Errorf("process runs in %q, want /tmp", cwd)
	}
}

func TestRestartOnFailure(t *testing.T) {
	l := newLab(t)
	l.up(`name: t{ID}
namespaces:
  a{ID}:
    run:
      - name: flaky
        command: echo started; exit 3
        restart: on-failure
      - name: once
        command: echo done
        restart: on-failure
`)
	key := l.ns("a") + "/flaky"
	eventually(t, key+" restarted twice", func() bool { return l.process(key).Restarts >= 2 })
	log := strings.Join(supervise.Tail(supervise.LogPath(l.e.Store.ProjectDir("t"+l.id), l.ns("a"), "flaky"), 100), "\n")
	if strings.Count(log, "started") < 2 || !strings.Contains(log, "exited with status 3; restarting in") {
		t.Errorf("log of %s:\n%s", key, log)
	}
	eventually(t, "once exited", func() bool { return l.process(l.ns("a")+"/once").State == supervise.Exited })
	if p := l.process(l.ns("a") + "/once"); p.Restarts != 0 || p.ExitCode != 0 {
		t.Errorf("a process that succeeded was restarted: %+v", p)
	}
}

func TestReadyFailuresShowTheLog(t *testing.T) {
	l := newLab(t)
	_, err := l.tryUp(`name: t{ID}
namespaces:
  a{ID}:
    run:
      - name: slow
        command: echo booting; echo failing-now >&2; sleep 60
        ready: {tcp: 8080, timeout: 1s}
`)
	var pe *ProcessError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "did not accept a connection inside the namespace within 1s") ||
		!strings.Contains(err.Error(), "| booting") || !strings.Contains(err.Error(), "| failing-now") ||
		!strings.Contains(err.Error(), "sudo nsrun down -p t"+l.id) {
		t.Fatalf("up with a process that never gets ready: %v", err)
	}
	if ok, _ := netns.Exists(l.ns("a")); !ok {
		t.Error("the network was removed; it should stay up for a look")
	}
	_, err = l.tryUp(`name: t{ID}
namespaces:
  a{ID}:
    run:
      - name: crash
        command: echo oops; exit 2
        ready: {tcp: 8080, timeout: 20s}
`)
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "exited with status 2 before port 8080 accepted a connection") || !strings.Contains(err.Error(), "| oops") {
		t.Errorf("up with a process that exits: %v", err)
	}
}

// TestEveryProcessStartedWhenUpReturns: up returns once every process
// has been started, ready check or not, so that a status right after it
// finds nothing "starting" (which it reports as drift).
func TestEveryProcessStartedWhenUpReturns(t *testing.T) {
	l := newLab(t)
	spec := "name: t{ID}\nnamespaces:\n  a{ID}:\n    run:\n"
	for i := range 10 {
		spec += fmt.Sprintf("      - {name: p%d, command: [sleep, \"300\"]}\n", i)
	}
	l.up(spec)
	for _, p := range l.status().Processes {
		if p.State != supervise.Running || p.PID == 0 {
			t.Errorf("%s is %s (pid %d) when up returned; want running", p.Key(), p.State, p.PID)
		}
	}
}

func TestDownAfterTheSupervisorWasKilled(t *testing.T) {
	l := newLab(t)
	l.up("name: t{ID}\nnamespaces:\n  a{ID}:\n    run:\n      - command: [sleep, \"300\"]\n      - command: sh -c 'sleep 300 & sleep 301'\n")
	st := l.status()
	if err := exec.Command("kill", "-9", fmt.Sprint(st.PID)).Run(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "supervisor gone", func() bool { return !processAlive(st.PID) })
	// The shell forks its child in its own time: wait for all three.
	var pids []proc.Process
	eventually(t, "the two commands and the shell's child in the namespace", func() bool {
		pids, _ = netns.Pids(l.ns("a"))
		return len(pids) >= 3
	})
	if _, err := l.e.Down(context.Background(), "t"+l.id); err != nil {
		t.Fatal(err)
	}
	for _, p := range pids {
		if proc.Alive(p) {
			t.Errorf("process %d survived down", p.PID)
		}
	}
}

func TestReconcileRestartsOnlyChangedProcesses(t *testing.T) {
	l := newLab(t)
	spec := func(greeting string) string {
		return fmt.Sprintf("name: t{ID}\nnamespaces:\n  a{ID}:\n    run:\n      - {name: same, command: [sleep, \"300\"]}\n      - {name: changed, command: [sleep, \"300\"], env: {G: %s}}\n      - {name: removed, command: [sleep, \"301\"]}\n", greeting)
	}
	l.up(spec("one"))
	a := l.ns("a")
	same, changed := l.running(a+"/same"), l.running(a+"/changed")
	l.up(strings.Replace(spec("two"), "      - {name: removed, command: [sleep, \"301\"]}\n", "", 1))
	if p := l.running(a + "/same"); p.PID != same.PID {
		t.Errorf("unchanged process was restarted: %+v, was %+v", p, same)
	}
	eventually(t, "the changed process running again", func() bool {
		p := l.process(a + "/changed")
		return p.State == supervise.Running && p.PID != 0 && p.PID != changed.PID
	})
	for _, p := range l.status().Processes {
		if p.Name == "removed" {
			t.Errorf("removed process still listed: %+v", p)
		}
	}
}

func TestEtcFilesOfOthersAreLeftAlone(t *testing.T) {
	l := newLab(t)
	a := l.ns("a")
	dir := filepath.Join(netns.EtcDir, a)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir); os.Remove(netns.EtcDir) })
	mine := "nameserver 192.0.2.53\n"
	if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte(mine), 0o644); err != nil {
		t.Fatal(err)
	}
	l.up("name: t{ID}\nnamespaces:\n  a{ID}: {}\n")
	hosts, _ := os.ReadFile(filepath.Join(dir, "hosts"))
	if !strings.Contains(string(hosts), a) || !strings.HasPrefix(string(hosts), host.EtcMarker) {
		t.Errorf("hosts:\n%s", hosts)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "resolv.conf")); string(got) != mine {
		t.Errorf("a resolv.conf nsrun did not write was changed:\n%s", got)
	}
	if _, err := l.e.Down(context.Background(), "t"+l.id); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "hosts")); !os.IsNotExist(err) {
		t.Error("down left nsrun's hosts file")
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "resolv.conf")); string(got) != mine {
		t.Error("down removed a resolv.conf nsrun did not write")
	}
}

// TestEtcFilesHalfWritten: a file nsrun was killed while writing is
// removed by down, and a write leaves no temporary file behind.
func TestEtcFilesHalfWritten(t *testing.T) {
	nstest.RequireRoot(t)
	ns := nstest.Name("etc")
	dir := filepath.Join(netns.EtcDir, ns)
	t.Cleanup(func() { os.RemoveAll(dir); os.Remove(netns.EtcDir) })
	if err := kernel(0).WriteEtc(ns, map[string]string{"hosts": host.EtcMarker + "\n"}); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 || entries[0].Name() != "hosts" {
		t.Errorf("after writeEtc: %v", entries)
	}
	os.WriteFile(filepath.Join(dir, atomicfile.TempPrefix+"resolv.conf-123"), nil, 0o644) // killed half-way
	if err := kernel(0).RemoveEtc(ns); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s left: %v", dir, err)
	}
}

// TestDownAllAfterTheRecordsWereLost: with /run/nsrun removed under a
// running project, one down --all stops its supervisor and processes, and
// nothing brings the state directory back.
func TestDownAllAfterTheRecordsWereLost(t *testing.T) {
	l := newLab(t)
	// The records go, host.json with them: nothing can tell down --all
	// what net.ipv4.ip_forward was before the first up. The test puts it
	// back itself.
	forwarding, err := sysctl.Get(sysctl.IPForward)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := sysctl.Set(sysctl.IPForward, forwarding); err != nil {
			t.Error(err)
		}
	})
	// a has limits: its cgroup goes too, found by nsrun's parent cgroup.
	l.up("name: t{ID}\nnamespaces:\n  a{ID}:\n    resources: {pids: 100}\n    run:\n      - command: [sleep, \"300\"]\n  b{ID}:\n    run:\n      - command: [sleep, \"301\"]\n        restart: always\n")
	sup := l.status()
	// Each process enters its namespace in its own time (nsrun exec):
	// wait for both.
	var procs []proc.Process
	eventually(t, "a process in each namespace", func() bool {
		procs = nil
		for _, ns := range []string{l.ns("a"), l.ns("b")} {
			pids, _ := netns.Pids(ns)
			procs = append(procs, pids...)
		}
		return len(procs) == 2
	})
	if err := os.RemoveAll(l.e.Store.Dir); err != nil {
		t.Fatal(err)
	}
	if err := l.e.DownAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if proc.Alive(proc.Process{PID: sup.PID, StartTime: sup.StartTime}) {
		t.Errorf("the supervisor (pid %d) survived down --all", sup.PID)
	}
	for _, p := range procs {
		if proc.Alive(p) {
			t.Errorf("process %d survived down --all", p.PID)
		}
	}
	if _, err := os.Stat(l.e.Store.Dir); !os.IsNotExist(err) {
		t.Errorf("%s exists after down --all: %v", l.e.Store.Dir, err)
	}
	if left := cgroup.Host().Namespaces(); len(left) > 0 {
		t.Errorf("cgroups of nsrun's left after down --all: %q", left)
	}
}
