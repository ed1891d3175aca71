package project

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nsrun/nsrun/netns"
	"github.com/nsrun/nsrun/supervise"
	"golang.org/x/sys/unix"
)

// Supervision starts, reloads and stops a project's supervisor.
type Supervision interface {
	// Apply makes the supervisor of dir run plan: it starts one, or tells
	// the running one to reload, and returns once it runs the plan.
	Apply(ctx context.Context, dir string, plan supervise.Plan) error
	// Stop stops the supervisor of dir and, through it, its processes.
	Stop(dir string) error
	// StopAll stops every supervisor of a project below root, recorded or not.
	StopAll(root string) error
	// Status is what the supervisor of dir last reported.
	Status(dir string) (supervise.Status, error)
	// Dial tries once to connect to a TCP port inside a namespace.
	Dial(ns string, addrs []netip.Addr, port uint16) error
}

// Supervisor is the real Supervision: it runs `Self supervise DIR` as a
// detached process (its own session, output to DIR/supervisor.log).
type Supervisor struct {
	Self  string        // the nsrun binary
	Grace time.Duration // the supervisor's own grace for its processes
}

func (s Supervisor) Apply(ctx context.Context, dir string, plan supervise.Plan) error {
	if err := supervise.WritePlan(dir, plan); err != nil {
		return err
	}
	st, err := supervise.ReadStatus(dir)
	running := err == nil && netns.Alive(netns.Process{PID: st.PID, StartTime: st.StartTime})
	switch {
	case len(plan.Processes) == 0:
		if running {
			return s.Stop(dir)
		}
		return nil
	case running:
		if err := netns.Signal(netns.Process{PID: st.PID, StartTime: st.StartTime}, unix.SIGHUP); err != nil {
			return err
		}
	default:
		// One that runs without a status (its up was killed before it wrote
		// one) must not go on beside the new one.
		if err := s.Stop(dir); err != nil {
			return err
		}
		os.Remove(supervise.StatusPath(dir))
		if err := s.start(dir); err != nil {
			return err
		}
	}
	return waitGeneration(ctx, dir, plan.Generation)
}

func (s Supervisor) start(dir string) error {
	_, err := startDaemon(supervise.SupervisorLog(dir), s.Self, "supervise", "--grace", s.Grace.String(), dir)
	if err != nil {
		return fmt.Errorf("starting the supervisor: %w", err)
	}
	return nil
}

// startDaemon starts one of nsrun's own daemons, detached (its own
// session), its output appended to log, and returns its PID.
func startDaemon(log, self string, args ...string) (int, error) {
	logf, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	cmd := exec.Command(self, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	go cmd.Wait() // reaps it if it exits while this process lives
	return cmd.Process.Pid, nil
}

// waitGeneration waits until the supervisor reports the plan's generation.
func waitGeneration(ctx context.Context, dir string, gen int) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		st, err := supervise.ReadStatus(dir)
		if err == nil && st.Generation == gen && netns.Alive(netns.Process{PID: st.PID, StartTime: st.StartTime}) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the supervisor did not take up the new processes; see %s", supervise.SupervisorLog(dir))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Stop stops the supervisor of dir: the one its status names, and any
// other found running for dir (one started by an up that was killed
// before the supervisor wrote its status).
func (s Supervisor) Stop(dir string) error {
	procs := daemons(s.Self, "supervise", func(d string) bool { return d == dir })
	// A missing or corrupt status names none: the scan above and the
	// namespaces' process lists catch what is left.
	if st, err := supervise.ReadStatus(dir); err == nil && st.PID != 0 {
		procs = append(procs, netns.Process{PID: st.PID, StartTime: st.StartTime})
	}
	return netns.Stop(procs, s.Grace+5*time.Second)
}

// StopAll stops every supervisor of a project directory below root,
// recorded or not: down --all after the records were lost.
func (s Supervisor) StopAll(root string) error {
	return netns.Stop(daemons(s.Self, "supervise", func(d string) bool { return filepath.Dir(d) == root }), s.Grace+5*time.Second)
}

// daemons finds nsrun's own running daemons by their command line, NSRUN
// COMMAND [FLAGS] DIR (supervise for the supervisors, keep for the
// keeper), for the directories that match; only root's processes that run
// self (see runsAsRoot), whatever another user's process calls itself.
func daemons(self, command string, match func(dir string) bool) []netns.Process {
	var out []netns.Process
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		if len(args) < 3 || args[1] != command || !match(args[len(args)-1]) || !runsAsRoot(pid, self) {
			continue
		}
		if start, err := netns.StartTime(pid); err == nil {
			out = append(out, netns.Process{PID: pid, StartTime: start})
		}
	}
	return out
}

// runsAsRoot reports whether a process is root's (real and effective uid 0) and
// runs self: the same file, or, once that file was replaced or removed (an
// upgrade while a project is up), a file that was at the same path.
func runsAsRoot(pid int, self string) bool {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false
	}
	rootOwned := false
	for _, line := range strings.Split(string(status), "\n") {
		if ids, ok := strings.CutPrefix(line, "Uid:"); ok {
			f := strings.Fields(ids)
			rootOwned = len(f) >= 2 && f[0] == "0" && f[1] == "0"
		}
	}
	if !rootOwned || self == "" {
		return false
	}
	exe := fmt.Sprintf("/proc/%d/exe", pid)
	if a, err := os.Stat(exe); err == nil {
		if b, err := os.Stat(self); err == nil && os.SameFile(a, b) {
			return true
		}
	}
	path, err := os.Readlink(exe)
	if err != nil {
		return false
	}
	resolved, err := filepath.EvalSymlinks(self)
	if err != nil {
		resolved = self
	}
	return strings.TrimSuffix(path, " (deleted)") == resolved
}

func (s Supervisor) Status(dir string) (supervise.Status, error) { return supervise.ReadStatus(dir) }

func (s Supervisor) Dial(ns string, addrs []netip.Addr, port uint16) error {
	return netns.Do(ns, func() error {
		var err error
		for _, a := range addrs {
			var c net.Conn
			c, err = net.DialTimeout("tcp4", net.JoinHostPort(a.String(), strconv.Itoa(int(port))), 200*time.Millisecond)
			if err == nil {
				c.Close()
				return nil
			}
		}
		return err
	})
}
