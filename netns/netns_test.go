package netns

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nsrun/nsrun/internal/proc"
	"github.com/nsrun/nsrun/netns/nstest"
	"golang.org/x/sys/unix"
)

// newNamespace creates a throwaway namespace removed at cleanup.
func newNamespace(t *testing.T) string {
	t.Helper()
	nstest.RequireRoot(t)
	name := nstest.Name("nst-")
	if err := Create(name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		KillAll(name, time.Second)
		if err := Delete(name); err != nil {
			t.Error(err)
		}
	})
	return name
}

func TestCreateIsSeenByIproute2(t *testing.T) {
	name := newNamespace(t)
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil || !strings.Contains(string(out), name) {
		t.Fatalf("ip netns list: %v\n%s", err, out)
	}
	out, err = exec.Command("ip", "netns", "exec", name, "ip", "-o", "link", "show", "lo").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "UP") {
		t.Errorf("lo inside %s is not up: %v\n%s", name, err, out)
	}
	out, err = exec.Command("ip", "netns", "exec", name, "ip", "-o", "link").CombinedOutput()
	if err != nil || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 {
		t.Errorf("a new namespace should hold only lo: %v\n%s", err, out)
	}
	if ok, err := Exists(name); !ok || err != nil {
		t.Errorf("Exists(%q) = %v, %v", name, ok, err)
	}
	names, err := List()
	if err != nil || !slices.Contains(names, name) {
		t.Errorf("List() = %v, %v; want it to contain %q", names, err, name)
	}
}

func TestCreateTwiceFails(t *testing.T) {
	name := newNamespace(t)
	if err := Create(name); !errors.Is(err, os.ErrExist) {
		t.Errorf("second Create(%q) = %v; want an error wrapping os.ErrExist", name, err)
	}
}

func TestNamespacesAreDistinct(t *testing.T) {
	a, b := newNamespace(t), newNamespace(t)
	var sa, sb, self unix.Stat_t
	unix.Stat(Path(a), &sa)
	unix.Stat(Path(b), &sb)
	unix.Stat("/proc/self/ns/net", &self)
	if sa.Ino == sb.Ino || sa.Ino == self.Ino || sb.Ino == self.Ino {
		t.Errorf("namespaces share an inode: %d %d (self %d)", sa.Ino, sb.Ino, self.Ino)
	}
	// The test's own threads must still be in the host namespace.
	var now unix.Stat_t
	unix.Stat("/proc/thread-self/ns/net", &now)
	if now.Ino != self.Ino {
		t.Error("the calling thread was left in another namespace")
	}
}

func TestDeleteIsIdempotent(t *testing.T) {
	nstest.RequireRoot(t)
	name := nstest.Name("nst-")
	if err := Delete(name); err != nil {
		t.Errorf("Delete of a missing namespace: %v", err)
	}
	if err := Create(name); err != nil {
		t.Fatal(err)
	}
	if err := Delete(name); err != nil {
		t.Fatal(err)
	}
	if ok, _ := Exists(name); ok {
		t.Errorf("%s still exists after Delete", name)
	}
}

func TestPidsAndKillAll(t *testing.T) {
	name := newNamespace(t)
	cmd := exec.Command("ip", "netns", "exec", name, "sleep", "300")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })

	var procs []proc.Process
	for i := 0; i < 200 && len(procs) == 0; i++ {
		procs, _ = Pids(name)
		time.Sleep(10 * time.Millisecond)
	}
	if len(procs) != 1 || procs[0].PID != cmd.Process.Pid {
		t.Fatalf("Pids(%q) = %v; want the sleep, pid %d", name, procs, cmd.Process.Pid)
	}

	// A stale start time stands for a recycled PID: it must not be signalled.
	stale := procs[0]
	stale.StartTime--
	if err := proc.Signal(stale, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if !proc.Alive(procs[0]) {
		t.Fatal("a process was signalled although its start time did not match")
	}

	if err := KillAll(name, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the sleep inside the namespace did not exit")
	}
	if left, _ := Pids(name); len(left) != 0 {
		t.Errorf("processes left: %v", left)
	}
}

// TestKillAllCatchesChildrenForkedMeanwhile: a process that forks as it
// is being stopped leaves a child the first list did not have; KillAll
// stops it too.
func TestKillAllCatchesChildrenForkedMeanwhile(t *testing.T) {
	name := newNamespace(t)
	cmd := exec.Command("ip", "netns", "exec", name, "sh", "-c", `trap 'sleep 300 & exit 0' TERM; echo ready; while :; do sleep 0.1; done`)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
		t.Fatalf("the shell inside %s said %q", name, line)
	}
	if err := KillAll(name, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if left, _ := Pids(name); len(left) != 0 {
		t.Errorf("processes left: %v", left)
	}
}

// TestParallelCreateMountsRunDirOnce: namespaces made at once bind
// /run/netns onto itself once, not once per caller.
func TestParallelCreateMountsRunDirOnce(t *testing.T) {
	nstest.RequireRoot(t)
	before := runDirMounts(t)
	var names []string
	for i := 0; i < 8; i++ {
		names = append(names, nstest.Name("npc"))
	}
	errs := make(chan error, len(names))
	for _, n := range names {
		go func() { errs <- Create(n) }()
	}
	for range names {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	for _, n := range names {
		Delete(n)
	}
	if after := runDirMounts(t); after > max(before, 1) {
		t.Errorf("/run/netns is mounted %d times (was %d)", after, before)
	}
}

// TestRunDirSharedAgainOnceRemoved: this process makes /run/netns a
// shared mount once, not for each namespace (that walks every namespace
// mounted there); but when /run/netns went since, the next namespace
// makes it a shared mount again.
func TestRunDirSharedAgainOnceRemoved(t *testing.T) {
	nstest.RequireRoot(t)
	first, second := nstest.Name("nrs"), nstest.Name("nrs")
	if err := Create(first); err != nil {
		t.Fatal(err)
	}
	Delete(first)
	if entries, _ := os.ReadDir(RunDir); len(entries) > 0 {
		t.Skipf("%s holds other namespaces: it stays", RunDir)
	}
	for runDirMounts(t) > 0 {
		if err := unix.Unmount(RunDir, unix.MNT_DETACH); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(RunDir); err != nil {
		t.Fatal(err)
	}
	if err := Create(second); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Delete(second) })
	data, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 6 && f[4] == RunDir && strings.HasPrefix(f[6], "shared:") {
			return
		}
	}
	t.Errorf("%s made again is not a shared mount:\n%s", RunDir, data)
}

func runDirMounts(t *testing.T) int {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == RunDir {
			n++
		}
	}
	return n
}

// TestHoldersOf: a process of another user that holds a namespace's file
// open is found, with its uid and name; a namespace nobody holds has
// none.
func TestHoldersOf(t *testing.T) {
	nstest.RequireRoot(t)
	held, free := nstest.Name("hd-"), nstest.Name("hf-")
	for _, name := range []string{held, free} {
		if err := Create(name); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { Delete(name) })
	}
	cmd := exec.Command("sh", "-c", "exec 3<"+Path(held)+"; echo ready; exec sleep 300")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("the holder did not start: %q %v", line, err)
	}
	var got map[string][]Holder
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if got = HoldersOf([]string{held, free}); len(got[held]) > 0 && got[held][0].Comm == "sleep" {
			break
		}
	}
	want := Holder{PID: cmd.Process.Pid, UID: 65534, Comm: "sleep"}
	if len(got[held]) != 1 || got[held][0] != want || len(got[free]) != 0 {
		t.Errorf("HoldersOf = %v; want %s holding %s, and none for %s", got, want, held, free)
	}
}
