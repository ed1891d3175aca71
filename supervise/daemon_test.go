package supervise

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nsrun/nsrun/internal/atomicfile"
	"github.com/nsrun/nsrun/internal/daemon"
	"github.com/nsrun/nsrun/internal/proc"
	"github.com/nsrun/nsrun/netns/nstest"
)

// TestDaemonsAreRootsRunningNsrun: down looks for supervisors by their
// command line, but stops only root's processes running nsrun itself: a
// process of another user that calls itself "nsrun supervise DIR", from
// a copy of a program named nsrun, and one of root's from another
// program of that name, are neither found nor stopped.
func TestDaemonsAreRootsRunningNsrun(t *testing.T) {
	nstest.RequireRoot(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("/var/tmp", "nsrun-impostor-") // one that nobody can reach
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	fake := filepath.Join(dir, "nsrun") // not nsrun: this test's own program, serving
	if out, err := exec.Command("cp", self, fake).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	os.Chmod(fake, 0o755)
	projectDir := filepath.Join(dir, "state", "sectb")
	start := func(cred *syscall.Credential) *exec.Cmd {
		t.Helper()
		cmd := exec.Command(fake, "supervise", "--grace", "1s", projectDir)
		cmd.Env = []string{"NSRUN_TEST_HELPER=serve", "NAME=impostor"}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		ready := make([]byte, 6)
		if _, err := out.Read(ready); err != nil || string(ready) != "ready\n" {
			t.Fatalf("the impostor did not start: %q %v", ready, err)
		}
		return cmd
	}
	nobody := start(&syscall.Credential{Uid: 65534, Gid: 65534})
	roots := start(nil)
	sup := Daemon{Self: nstest.Binary(t), Grace: time.Second}
	if found := daemon.Find(sup.Self, "supervise", func(d string) bool { return d == projectDir }); len(found) != 0 {
		t.Errorf("daemons found %v; want none: neither runs nsrun as root", found)
	}
	if err := sup.Stop(projectDir); err != nil {
		t.Fatal(err)
	}
	for what, cmd := range map[string]*exec.Cmd{"another user's": nobody, "root's other program": roots} {
		if err := cmd.Process.Signal(syscall.Signal(0)); err != nil {
			t.Errorf("%s process was stopped by down: %v", what, err)
		}
	}
	// The control: the same program as nsrun itself is found.
	if found := daemon.Find(fake, "supervise", func(d string) bool { return d == projectDir }); len(found) != 1 || found[0].PID != roots.Process.Pid {
		t.Errorf("daemons with self = the impostor's program found %v; want root's one, pid %d", found, roots.Process.Pid)
	}
}

// TestWaitGenerationWhileProcessesStart: up waits as long as the
// supervisor keeps starting processes, however long all of them take,
// and gives up once it starts none for the stall time.
func TestWaitGenerationWhileProcessesStart(t *testing.T) {
	defer func(old time.Duration) { startStall = old }(startStall)
	startStall = 2 * time.Second
	dir := t.TempDir()
	self := os.Getpid()
	start, err := proc.StartTime(self)
	if err != nil {
		t.Fatal(err)
	}
	status := func(running int) {
		st := Status{PID: self, StartTime: start, Generation: 2}
		for i := range 10 {
			state := Starting
			if i < running {
				state = Running
			}
			st.Processes = append(st.Processes, ProcessStatus{Namespace: "n", Name: fmt.Sprint(i), State: state})
		}
		if err := atomicfile.WriteJSON(StatusPath(dir), st); err != nil {
			t.Error(err)
		}
	}
	status(0)
	go func() {
		// One more started every 250 ms: 2.5 s in all, past the stall.
		for i := 1; i <= 10; i++ {
			time.Sleep(250 * time.Millisecond)
			status(i)
		}
	}()
	if err := waitGeneration(context.Background(), dir, 2); err != nil {
		t.Errorf("processes starting one by one for 2.5 s: %v", err)
	}
	status(3) // a supervisor stuck with seven processes to start
	if err := waitGeneration(context.Background(), dir, 2); err == nil || !strings.Contains(err.Error(), "none started for") {
		t.Errorf("a stuck supervisor: %v; want an error", err)
	}
}
