// Package proc names processes by PID and start time, so that a recycled
// PID is never mistaken for the process it named: their liveness, their
// signals, and stopping them.
package proc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Process is a process, with its start time (in clock ticks since boot) so that a recycled PID is never mistaken for it.
type Process struct {
	PID       int
	StartTime uint64
}

// StartTime returns a process's start time in clock ticks since boot
// (field 22 of /proc/PID/stat).
func StartTime(pid int) (uint64, error) {
	_, start, err := stat(pid)
	return start, err
}

// stat returns a process's state letter (R, S, Z, ...) and start time.
func stat(pid int) (byte, uint64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) may hold spaces and parentheses: count
	// fields from the last ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	fields := bytes.Fields(data[i+1:])
	if len(fields) < 20 || len(fields[0]) != 1 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	start, err := strconv.ParseUint(string(fields[19]), 10, 64)
	return fields[0][0], start, err
}

// Signal sends sig to p only if p is still the same process: the PID is
// pinned with a pidfd and its start time checked before signalling. A
// process that is gone is not an error.
func Signal(p Process, sig unix.Signal) error {
	fd, err := unix.PidfdOpen(p.PID, 0)
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("pidfd_open %d: %w", p.PID, err)
	}
	defer unix.Close(fd)
	if start, err := StartTime(p.PID); err != nil || start != p.StartTime {
		return nil // exited, or the PID now names another process
	}
	if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("signalling %d: %w", p.PID, err)
	}
	return nil
}

// Alive reports whether p is still running: not exited, not a zombie
// waiting for its parent, and its PID not recycled.
func Alive(p Process) bool {
	state, start, err := stat(p.PID)
	return err == nil && start == p.StartTime && state != 'Z' && state != 'X'
}

// Stop ends processes: SIGTERM to each, up to grace for all to exit, then
// SIGKILL to those left, and a short wait for them to go. Each signal
// checks that the PID is still the process it names.
func Stop(procs []Process, grace time.Duration) error {
	for _, p := range procs {
		if err := Signal(p, unix.SIGTERM); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) && anyAlive(procs) {
		time.Sleep(20 * time.Millisecond)
	}
	for _, p := range procs {
		if err := Signal(p, unix.SIGKILL); err != nil {
			return err
		}
	}
	for i := 0; i < 100 && anyAlive(procs); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

func anyAlive(procs []Process) bool {
	for _, p := range procs {
		if Alive(p) {
			return true
		}
	}
	return false
}
