// Package nsexec is what running a command inside a named network
// namespace takes, shared by nsrun (as root) and by nsrun-exec, the small
// helper that holds capabilities to run one for a user a namespace's
// grant lists. It links the standard library and golang.org/x/sys/unix
// alone: a privileged program should carry no more code than it runs.
package nsexec

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// RunDir is where iproute2 keeps named namespaces (/var/run/netns is a
// link to it on current systems).
const RunDir = "/run/netns"

// EtcDir holds per-namespace configuration files: each file in
// /etc/netns/NAME/ is bind-mounted over the same name in /etc for commands
// run in namespace NAME (as `ip netns exec` does).
const EtcDir = "/etc/netns"

// ExitError is a failure with the exit status it calls for: 127 when the
// command is not found, 126 when it cannot be executed.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// CheckName rejects names that are not a file in /run/netns, as iproute2
// does.
func CheckName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') || len(name) > 255 {
		return fmt.Errorf("invalid namespace name %q", name)
	}
	return nil
}

// Open opens a named namespace's file; when there is none, the error says
// which namespaces there are.
func Open(name string) (*os.File, error) {
	for _, dir := range []string{RunDir, "/var/run/netns"} {
		f, err := os.Open(filepath.Join(dir, name))
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("opening netns %q: %w", name, err)
		}
	}
	entries, _ := os.ReadDir(RunDir)
	var names []string
	for _, e := range entries {
		names = append(names, fmt.Sprintf("%q", e.Name()))
	}
	slices.Sort(names)
	if len(names) == 0 {
		return nil, fmt.Errorf("namespace %q does not exist, and there are none (ip netns list is empty); create it with 'nsrun up SPEC' or 'ip netns add %s'", name, name)
	}
	return nil, fmt.Errorf("namespace %q does not exist; the ones that do: %s", name, strings.Join(names, ", "))
}

// Enter moves the calling thread, which the caller has locked and never
// unlocks, into the namespace f is, and into a mount namespace of its own
// where /sys shows the namespace's interfaces and /etc/netns/NAME/* stand
// in for /etc/*.
func Enter(name string, f *os.File) error {
	if err := EnterNet(name, f); err != nil {
		return err
	}
	return EnterMounts(name)
}

// EnterNet moves the calling (locked) thread into the network namespace
// f is.
func EnterNet(name string, f *os.File) error {
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("entering netns %q: %w", name, err)
	}
	return nil
}

// EnterMounts gives the calling (locked) thread, already in the network
// namespace, a mount namespace of its own as `ip netns exec` does.
func EnterMounts(name string) error {
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("making a mount namespace for netns %q: %w", name, err)
	}
	if err := unix.Mount("", "/", "none", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("making / a slave mount: %w", err)
	}
	if err := remountSys(name); err != nil {
		return err
	}
	bindEtc(name)
	return nil
}

// remountSys replaces /sys with a sysfs of the namespace, read-only if the
// old one was.
func remountSys(name string) error {
	var st unix.Statfs_t
	flags := uintptr(0)
	if unix.Statfs("/sys", &st) == nil && st.Flags&unix.ST_RDONLY != 0 {
		flags = unix.MS_RDONLY
	}
	if err := unix.Unmount("/sys", unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("detaching /sys: %w", err)
	}
	if err := unix.Mount(name, "/sys", "sysfs", flags, ""); err != nil {
		return fmt.Errorf("mounting the sysfs of netns %q: %w", name, err)
	}
	return nil
}

// bindEtc bind-mounts each file of /etc/netns/NAME over /etc. A file that
// cannot be bound is reported and skipped, as iproute2 does.
func bindEtc(name string) {
	dir := filepath.Join(EtcDir, name)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		src, dst := filepath.Join(dir, e.Name()), filepath.Join("/etc", e.Name())
		if err := unix.Mount(src, dst, "none", unix.MS_BIND, ""); err != nil {
			fmt.Fprintf(os.Stderr, "nsrun: bind %q -> %q failed: %v\n", src, dst, err)
		}
	}
}

// Exec replaces the process with argv and that environment, the program
// looked up in the environment's PATH. It returns only on failure.
func Exec(argv, env []string) error {
	prog, err := LookPath(argv[0], env)
	if err != nil {
		return err
	}
	err = syscall.Exec(prog, argv, env)
	if errors.Is(err, syscall.ENOENT) {
		return &ExitError{Code: 127, Err: fmt.Errorf("%s: not found", argv[0])}
	}
	return &ExitError{Code: 126, Err: fmt.Errorf("%s: cannot execute: %w", argv[0], err)}
}

// LookPath finds the program in the PATH of the environment it will run
// with; 127 when there is none, 126 when it cannot be executed.
func LookPath(prog string, env []string) (string, error) {
	path := os.Getenv("PATH")
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	if strings.Contains(prog, "/") {
		st, err := os.Stat(prog)
		switch {
		case err != nil:
			return "", &ExitError{Code: 127, Err: fmt.Errorf("%s: not found", prog)}
		case st.IsDir() || st.Mode()&0o111 == 0:
			return "", &ExitError{Code: 126, Err: fmt.Errorf("%s: permission denied (not an executable file)", prog)}
		}
		return prog, nil
	}
	found := false
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, prog)
		st, err := os.Stat(p)
		if err != nil || st.IsDir() {
			continue
		}
		if st.Mode()&0o111 != 0 {
			return p, nil
		}
		found = true
	}
	if found {
		return "", &ExitError{Code: 126, Err: fmt.Errorf("%s: permission denied (not executable)", prog)}
	}
	return "", &ExitError{Code: 127, Err: fmt.Errorf("%s: not found in PATH", prog)}
}
