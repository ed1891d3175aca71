package netns

import (
	"github.com/nsrun/nsrun/internal/proc"
	"github.com/nsrun/nsrun/internal/quote"

	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Pids returns the processes whose network namespace is the named one, as
// `ip netns pids` finds them.
func Pids(name string) ([]proc.Process, error) {
	all, err := PidsIn([]string{name})
	return all[name], err
}

// PidsIn returns the processes inside each of the named namespaces, from
// one scan of /proc for all of them. A namespace that does not exist has
// none.
func PidsIn(names []string) (map[string][]proc.Process, error) {
	type ident struct{ dev, ino uint64 }
	want := map[ident]string{}
	for _, name := range names {
		var st unix.Stat_t
		if err := unix.Stat(Path(name), &st); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			return nil, fmt.Errorf("netns %q: %w", name, err)
		}
		want[ident{st.Dev, st.Ino}] = name
	}
	out := map[string][]proc.Process{}
	if len(want) == 0 {
		return out, nil
	}
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("listing processes: %w", err)
	}
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		var st unix.Stat_t
		if unix.Stat(filepath.Join("/proc", d.Name(), "ns", "net"), &st) != nil {
			continue
		}
		name, ok := want[ident{st.Dev, st.Ino}]
		if !ok {
			continue
		}
		start, err := proc.StartTime(pid)
		if err != nil {
			continue // exited meanwhile
		}
		out[name] = append(out[name], proc.Process{PID: pid, StartTime: start})
	}
	return out, nil
}

// KillAll stops every process inside the named namespace (see KillAllIn).
func KillAll(name string, grace time.Duration) error { return KillAllIn([]string{name}, grace) }

// KillAllIn stops every process inside the named namespaces, all at once:
// SIGTERM, up to grace to exit, then SIGKILL. A process may fork while it
// is being stopped, and its child was not in the list: the list is read
// again until it comes back empty, and what appeared meanwhile gets SIGKILL
// at once. It returns once none is left, or an error naming those it could
// not clear.
func KillAllIn(names []string, grace time.Duration) error {
	for round := 0; ; round++ {
		inside, err := PidsIn(names)
		if err != nil {
			return err
		}
		var procs []proc.Process
		for _, ps := range inside {
			procs = append(procs, ps...)
		}
		if len(procs) == 0 {
			return nil
		}
		if round == killRounds {
			for _, name := range names {
				if len(inside[name]) > 0 {
					return fmt.Errorf("processes still in netns %q after %d rounds of SIGKILL: %v", name, killRounds, inside[name])
				}
			}
		}
		if round > 0 {
			grace = 0
		}
		if err := proc.Stop(procs, grace); err != nil {
			return err
		}
	}
}

// killRounds bounds KillAllIn's rounds: each kills what the one before
// left, children forked while it ran included.
const killRounds = 10

// Holder is a process that holds a namespace's file open.
type Holder struct {
	PID, UID int
	Comm     string
}

// String names the process, its name quoted unless plain (it is the
// process's to choose).
func (h Holder) String() string {
	return fmt.Sprintf("pid %d (%s, uid %d)", h.PID, quote.Name(h.Comm), h.UID)
}

// HoldersOf returns, for the named namespaces that exist, the processes
// other than this one that hold a file descriptor of them (open
// /run/netns/NAME or /proc/PID/ns/net): after down removes the name, such
// a namespace stays in the kernel until they close it. One scan of /proc
// for all of them.
func HoldersOf(names []string) map[string][]Holder {
	type id struct{ dev, ino uint64 }
	byID := map[id]string{}
	for _, name := range names {
		var st unix.Stat_t
		if unix.Stat(Path(name), &st) == nil {
			byID[id{st.Dev, st.Ino}] = name
		}
	}
	out := map[string][]Holder{}
	if len(byID) == 0 {
		return out
	}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		seen := map[string]bool{}
		for _, fd := range fds {
			var st unix.Stat_t // of the file the descriptor is, by any path
			if unix.Stat(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()), &st) != nil {
				continue
			}
			if name, ok := byID[id{st.Dev, st.Ino}]; ok && !seen[name] {
				seen[name] = true
				out[name] = append(out[name], holder(pid))
			}
		}
	}
	return out
}

// holder describes a process: its name and real uid.
func holder(pid int) Holder {
	h := Holder{PID: pid, UID: -1}
	comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	h.Comm = strings.TrimSuffix(string(comm), "\n")
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(status), "\n") {
		if ids, ok := strings.CutPrefix(line, "Uid:"); ok {
			if f := strings.Fields(ids); len(f) > 0 {
				h.UID, _ = strconv.Atoi(f[0])
			}
		}
	}
	return h
}
