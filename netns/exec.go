package netns

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// EtcDir holds per-namespace configuration files: each file in
// /etc/netns/NAME/ is bind-mounted over the same name in /etc for commands
// run in namespace NAME (as `ip netns exec` does).
const EtcDir = "/etc/netns"

// ExecOptions say how to run a command inside a namespace.
type ExecOptions struct {
	User    string   // name or uid, optionally ":group" or ":gid"; empty: stay root
	Env     []string // KEY=VALUE, added to (or replacing in) the current environment
	Workdir string   // empty: stay in the current directory
}

// ExitError is a failure with the exit status it calls for: 127 when the
// command is not found, 126 when it cannot be executed.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// Exec replaces the current process with argv, run inside the named
// network namespace the way `ip netns exec` runs it: in a mount namespace
// of its own where /sys shows the namespace's interfaces and the files of
// /etc/netns/NAME/ stand in for those in /etc. It returns only on failure.
//
// This is the one place where nsrun enters a namespace to run something:
// the supervisor starts its processes through it, so no thread of a
// long-running process ever changes namespace.
func Exec(name string, argv []string, o ExecOptions) error {
	if err := checkExecName(name); err != nil {
		return err
	}
	f, err := openNamed(name)
	if err != nil {
		return err
	}
	defer f.Close()
	// The thread that enters the namespace is the one that calls execve;
	// it is never unlocked (we exec, or the process exits).
	runtime.LockOSThread()
	if err := enter(name, f); err != nil {
		return err
	}
	return execAs(argv, o)
}

// enter moves the calling (locked) thread into the namespace f is, and
// into a mount namespace of its own where /sys shows the namespace's
// interfaces and /etc/netns/NAME/* stand in for /etc/*.
func enter(name string, f *os.File) error {
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("entering netns %q: %w", name, err)
	}
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

// checkExecName rejects names that are not a file in /run/netns, as
// iproute2 does.
func checkExecName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') || len(name) > 255 {
		return fmt.Errorf("invalid namespace name %q", name)
	}
	return nil
}

func openNamed(name string) (*os.File, error) {
	for _, dir := range []string{RunDir, "/var/run/netns"} {
		f, err := os.Open(filepath.Join(dir, name))
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("opening netns %q: %w", name, err)
		}
	}
	names, _ := List()
	if len(names) == 0 {
		return nil, fmt.Errorf("namespace %q does not exist, and there are none (ip netns list is empty); create it with 'nsrun up SPEC' or 'ip netns add %s'", name, name)
	}
	return nil, fmt.Errorf("namespace %q does not exist; the ones that do: %s", name, strings.Join(names, ", "))
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
		if e.Name() == "." || e.Name() == ".." {
			continue
		}
		src, dst := filepath.Join(dir, e.Name()), filepath.Join("/etc", e.Name())
		if err := unix.Mount(src, dst, "none", unix.MS_BIND, ""); err != nil {
			fmt.Fprintf(os.Stderr, "nsrun: bind %s -> %s failed: %v\n", src, dst, err)
		}
	}
}

// execAs drops to the user, changes to the directory, applies the
// environment, and replaces the process with the command. The program is
// looked up last, as the user and in the directory: a relative path such
// as ./app.py names a file of the workdir.
func execAs(argv []string, o ExecOptions) error {
	env := os.Environ()
	if o.User != "" {
		env = userEnv(env, o.User)
	}
	env = mergeEnv(env, o.Env)
	if o.User != "" {
		if err := setUser(o.User); err != nil {
			return err
		}
	}
	if o.Workdir != "" {
		if err := os.Chdir(o.Workdir); err != nil {
			return fmt.Errorf("changing to workdir: %w", err)
		}
	}
	prog, err := lookPath(argv[0], env)
	if err != nil {
		return err
	}
	err = syscall.Exec(prog, argv, env)
	if errors.Is(err, syscall.ENOENT) {
		return &ExitError{Code: 127, Err: fmt.Errorf("%s: not found", argv[0])}
	}
	return &ExitError{Code: 126, Err: fmt.Errorf("%s: cannot execute: %w", argv[0], err)}
}

// lookPath finds the program in the PATH of the environment it will run
// with; 127 when there is none, 126 when it cannot be executed.
func lookPath(prog string, env []string) (string, error) {
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

// setUser switches to a user given as name or uid, with ":group" or
// ":gid", and the user's supplementary groups.
func setUser(spec string) error {
	uid, gid, groups, err := LookupUser(spec)
	if err != nil {
		return err
	}
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("setting groups for %q: %w", spec, err)
	}
	if err := syscall.Setgid(gid); err != nil {
		return fmt.Errorf("setting group id %d: %w", gid, err)
	}
	if err := syscall.Setuid(uid); err != nil {
		return fmt.Errorf("setting user id %d: %w", uid, err)
	}
	return nil
}

// LookupUser resolves name-or-uid[:group-or-gid] to ids and the user's
// supplementary groups. A uid with no passwd entry runs with gid = uid's
// group given, or the same number, and no supplementary groups.
func LookupUser(spec string) (uid, gid int, groups []int, err error) {
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	u, lerr := user.Lookup(userPart)
	if lerr != nil {
		u, lerr = user.LookupId(userPart)
	}
	switch {
	case lerr == nil:
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		ids, _ := u.GroupIds()
		for _, g := range ids {
			if n, err := strconv.Atoi(g); err == nil {
				groups = append(groups, n)
			}
		}
	case isNumber(userPart):
		uid, _ = strconv.Atoi(userPart)
		gid = uid
	default:
		return 0, 0, nil, fmt.Errorf("user %q does not exist; give an existing name or a numeric uid", userPart)
	}
	if hasGroup {
		if g, err := user.LookupGroup(groupPart); err == nil {
			gid, _ = strconv.Atoi(g.Gid)
		} else if isNumber(groupPart) {
			gid, _ = strconv.Atoi(groupPart)
		} else {
			return 0, 0, nil, fmt.Errorf("group %q does not exist; give an existing name or a numeric gid", groupPart)
		}
		groups = []int{gid}
	}
	if len(groups) == 0 {
		groups = []int{gid}
	}
	return uid, gid, groups, nil
}

func isNumber(s string) bool {
	_, err := strconv.ParseUint(s, 10, 32)
	return err == nil
}

// mergeEnv returns env with each KEY=VALUE of extra set.
func mergeEnv(env, extra []string) []string {
	out := append([]string(nil), env...)
	for _, kv := range extra {
		key, _, _ := strings.Cut(kv, "=")
		out = setEnv(out, key, kv)
	}
	return out
}

func setEnv(env []string, key, kv string) []string {
	for i, e := range env {
		if k, _, _ := strings.Cut(e, "="); k == key {
			env[i] = kv
			return env
		}
	}
	return append(env, kv)
}

// userEnv sets HOME, USER and LOGNAME for a named user.
func userEnv(env []string, spec string) []string {
	name, _, _ := strings.Cut(spec, ":")
	u, err := user.Lookup(name)
	if err != nil {
		if u, err = user.LookupId(name); err != nil {
			return env
		}
	}
	for key, value := range map[string]string{"HOME": u.HomeDir, "USER": u.Username, "LOGNAME": u.Username} {
		env = setEnv(env, key, key+"="+value)
	}
	return env
}
