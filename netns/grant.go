package netns

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// GrantDir holds the exec grants that nsrun up publishes: one file per
// namespace, that any user can read and only root can write.
const GrantDir = "/run/nsrun/exec"

// GrantVersion is the version of a grant record this code writes and reads.
const GrantVersion = 1

// Grant is who may run nsrun exec in a namespace without root, and which
// namespace that is: its identity (the device and inode of its nsfs
// file), so that a record left from a namespace deleted and made again
// grants nothing.
type Grant struct {
	Version   int      `json:"version"`
	Namespace string   `json:"namespace"`
	Dev       uint64   `json:"dev"`
	Ino       uint64   `json:"ino"`
	UIDs      []uint32 `json:"uids,omitempty"`
	GIDs      []uint32 `json:"gids,omitempty"`
}

// Identity returns a named namespace's device and inode.
func Identity(name string) (dev, ino uint64, err error) {
	var st unix.Stat_t
	if err := unix.Stat(Path(name), &st); err != nil {
		return 0, 0, fmt.Errorf("reading the identity of netns %q: %w", name, err)
	}
	return st.Dev, st.Ino, nil
}

// Capabilities the unprivileged exec needs in its permitted set (a file
// capability of the nsrun binary: see README, Security): CAP_SYS_ADMIN to
// enter the namespace and make its mount namespace, CAP_SETPCAP to empty
// the bounding set before the command runs.
var execCaps = []uintptr{unix.CAP_SYS_ADMIN, unix.CAP_SETPCAP}

// CanExecUnprivileged reports whether this process holds, in its
// permitted set, the capabilities ExecGranted needs.
func CanExecUnprivileged() bool {
	data, err := capget()
	if err != nil {
		return false
	}
	for _, c := range execCaps {
		if data[c/32].Permitted&(1<<(c%32)) == 0 {
			return false
		}
	}
	return true
}

func capget() ([2]unix.CapUserData, error) {
	var data [2]unix.CapUserData
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	err := unix.Capget(&hdr, &data[0])
	return data, err
}

func capset(data [2]unix.CapUserData) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	return unix.Capset(&hdr, &data[0])
}

// ErrNotGranted means the caller may not exec into the namespace.
var ErrNotGranted = errors.New("not granted")

// ExecGranted is Exec for a caller who is not root, with nsrun's file
// capabilities: it checks the namespace's grant (see CheckGrant), enters
// the network namespace and a new mount namespace as Exec does, then
// gives up every privilege (the effective, permitted, inheritable and
// ambient capabilities and the bounding set, and sets no_new_privs) and
// execs the command as the caller, with the caller's ids and environment.
// It returns only on failure; nothing is entered when the grant refuses.
func ExecGranted(name string, argv []string, env []string) error {
	if err := checkExecName(name); err != nil {
		return err
	}
	f, err := CheckGrant(GrantDir, name, os.Getuid(), callerGroups())
	if err != nil {
		return err
	}
	defer f.Close()
	// Capabilities are a thread's: this one raises them, enters, drops
	// them all and execs; it is never unlocked.
	runtime.LockOSThread()
	data, err := capget()
	if err != nil {
		return fmt.Errorf("reading this process's capabilities: %w", err)
	}
	for i := range data {
		data[i].Effective = data[i].Permitted
	}
	if err := capset(data); err != nil {
		return fmt.Errorf("raising the capabilities of the nsrun binary: %w", err)
	}
	if err := enter(name, f); err != nil {
		return err
	}
	if err := dropPrivileges(); err != nil {
		return err
	}
	return execAs(argv, ExecOptions{Env: env})
}

// dropPrivileges empties the bounding set (CAP_SETPCAP still effective),
// the ambient set and then every other set, and sets no_new_privs: the
// command, running as the caller, has no capability and can gain none.
func dropPrivileges() error {
	last := lastCap()
	for c := 0; c <= last; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("dropping capability %d from the bounding set: %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("clearing the ambient capabilities: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("setting no_new_privs: %w", err)
	}
	if err := capset([2]unix.CapUserData{}); err != nil {
		return fmt.Errorf("dropping every capability: %w", err)
	}
	return nil
}

// lastCap is the highest capability the kernel knows.
func lastCap() int {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if n, perr := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && perr == nil {
		return n
	}
	return 63
}

// callerGroups are the caller's real gid and supplementary groups.
func callerGroups() []int {
	groups, _ := unix.Getgroups()
	return append(groups, os.Getgid())
}

// CheckGrant opens the namespace for a caller (uid, with those groups)
// when its grant allows it: the grant directory and its parent are root's
// and not writable by group or others, the record is a regular file owned
// by root, not writable by group or others and not a symbolic link, names
// the namespace as it is now (its device and inode), and lists the
// caller's uid or one of its groups. It returns the namespace's file,
// checked to be the one the record names.
func CheckGrant(dir, name string, uid int, groups []int) (*os.File, error) {
	refuse := func(format string, args ...any) (*os.File, error) {
		return nil, fmt.Errorf("%w: "+format, append([]any{ErrNotGranted}, args...)...)
	}
	for _, d := range []string{filepath.Dir(dir), dir} {
		var st unix.Stat_t
		if err := unix.Lstat(d, &st); err != nil {
			return refuse("no exec grant for namespace %q (%s: %v); a project's spec grants exec with exec: {users: [...]}, and root brings it up", name, d, err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Uid != 0 || st.Mode&0o022 != 0 {
			return refuse("%s is not a directory of root's that only root can write; ask root to remove it and run nsrun up again", d)
		}
	}
	path := filepath.Join(dir, name)
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	switch {
	case errors.Is(err, unix.ENOENT):
		if ns, nerr := openNamed(name); nerr != nil {
			return nil, nerr // no such namespace: say so, and which there are
		} else {
			ns.Close()
		}
		return refuse("namespace %q grants exec to nobody (no %s); the spec grants it with exec: {users: [...]} or exec: {groups: [...]}", name, path)
	case errors.Is(err, unix.ELOOP):
		return refuse("%s is a symbolic link, not nsrun's record; ask root to remove it and run nsrun up again", path)
	case err != nil:
		return refuse("reading %s: %v", path, err)
	}
	rec := os.NewFile(uintptr(fd), path)
	defer rec.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return refuse("reading %s: %v", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Uid != 0 || st.Mode&0o022 != 0 {
		return refuse("%s is not a file of root's that only root can write (owner %d, mode %o); ask root to run nsrun up again", path, st.Uid, st.Mode&0o7777)
	}
	data, err := io.ReadAll(io.LimitReader(rec, 1<<20))
	if err != nil {
		return refuse("reading %s: %v", path, err)
	}
	var g Grant
	if err := json.Unmarshal(data, &g); err != nil || g.Version != GrantVersion || g.Namespace != name {
		return refuse("%s is not a grant record of nsrun's for namespace %q; ask root to run nsrun up again", path, name)
	}
	if !slices.Contains(g.UIDs, uint32(uid)) && !slices.ContainsFunc(groups, func(gid int) bool { return slices.Contains(g.GIDs, uint32(gid)) }) {
		return refuse("namespace %q does not grant exec to uid %d or its groups; the spec's exec: lists who may", name, uid)
	}
	ns, err := openNamed(name)
	if err != nil {
		return nil, err
	}
	var nst unix.Stat_t
	if err := unix.Fstat(int(ns.Fd()), &nst); err != nil || nst.Dev != g.Dev || nst.Ino != g.Ino {
		ns.Close()
		return refuse("the grant for namespace %q is for a namespace of that name that is gone (it was deleted and made again); ask root to run nsrun up again", name)
	}
	return ns, nil
}
