// Package daemon starts nsrun's own background processes (the
// supervisors, the keeper) detached, and finds them again by their command
// lines: only root's processes that run nsrun itself, whatever another
// user's process calls itself.
package daemon

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nsrun/nsrun/internal/proc"
)

// Start starts one of nsrun's own daemons, detached (its own
// session), its output appended to log, and returns its PID.
func Start(log, self string, args ...string) (int, error) {
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

// Find finds nsrun's own running daemons by their command line, NSRUN
// COMMAND [FLAGS] DIR (supervise for the supervisors, keep for the
// keeper), for the directories that match; only root's processes that run
// self (see runsAsRoot), whatever another user's process calls itself.
func Find(self, command string, match func(dir string) bool) []proc.Process {
	var out []proc.Process
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
		if start, err := proc.StartTime(pid); err == nil {
			out = append(out, proc.Process{PID: pid, StartTime: start})
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

// Await asks ready every interval until it says yes (true), or until
// timeout has passed or ctx ends (false): how a daemon's starter waits for
// the daemon to report.
func Await(ctx context.Context, timeout, interval time.Duration, ready func() bool) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		if ready() {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(interval):
		}
	}
}
