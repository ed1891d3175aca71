package nsexec

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// GrantDir holds the exec grants that nsrun up publishes: one file per
// namespace, that any user can read and only root can write. It is not
// below /run/nsrun, where every directory is a project's.
const GrantDir = "/run/nsrun-exec"

// GrantVersion is the version of a grant record this code writes and
// reads; records of version 1 named the namespace by its nsfs inode,
// which the kernel reuses, and grant nothing now.
const GrantVersion = 2

// Grant is who may run nsrun exec in a namespace without root, and which
// namespace that is: its cookie, a 64-bit number the kernel gives each
// network namespace when it makes it and never gives again, so that a
// record left from a namespace deleted and made again grants nothing.
type Grant struct {
	Version   int      `json:"version"`
	Namespace string   `json:"namespace"`
	Cookie    uint64   `json:"cookie"`
	UIDs      []uint32 `json:"uids,omitempty"`
	GIDs      []uint32 `json:"gids,omitempty"`
}

// ErrNotGranted means the caller may not exec into the namespace.
var ErrNotGranted = errors.New("not granted")

// CurrentCookie returns the cookie of the calling thread's network
// namespace (SO_NETNS_COOKIE, Linux 5.14 on, of a socket made there).
func CurrentCookie() (uint64, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("reading the network namespace's cookie: %w", err)
	}
	defer unix.Close(fd)
	return SocketCookie(fd)
}

// SocketCookie returns the cookie of the network namespace the socket fd
// was made in.
func SocketCookie(fd int) (uint64, error) {
	cookie, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
	if err != nil {
		return 0, fmt.Errorf("reading the network namespace's cookie (SO_NETNS_COOKIE needs Linux 5.14): %w", err)
	}
	return cookie, nil
}

// Cookie returns the cookie of the network namespace f is, from a socket
// made there.
func Cookie(f *os.File) (uint64, error) {
	fd, err := SocketIn(f, unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	return SocketCookie(fd)
}

// SocketIn makes a socket inside the network namespace f is, from a
// thread that enters it for that and comes back: a socket stays in the
// namespace it was made in.
func SocketIn(f *os.File, domain, typ, proto int) (int, error) {
	runtime.LockOSThread()
	home, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		return -1, err
	}
	defer home.Close()
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return -1, fmt.Errorf("entering the namespace to make a socket there: %w", err)
	}
	fd, serr := unix.Socket(domain, typ, proto)
	if err := unix.Setns(int(home.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread stays locked, in the wrong namespace: it ends with
		// this goroutine.
		if serr == nil {
			unix.Close(fd)
		}
		return -1, fmt.Errorf("coming back from the namespace: %w", err)
	}
	runtime.UnlockOSThread()
	if serr != nil {
		return -1, fmt.Errorf("making a socket in the namespace: %w", serr)
	}
	return fd, nil
}

// CheckGrant reads the grant record of a namespace and checks that it
// lets the caller (uid, with those groups) in: every directory from / to
// dir, opened one at a time without following symbolic links, is root's
// and not writable by group or others; the record is a regular file of
// root's, not writable by group or others, not a symbolic link, a grant
// of this version for that namespace, and lists the uid or one of the
// groups. The namespace's cookie is the caller's to check, inside it.
func CheckGrant(dir, name string, uid int, groups []int) (*Grant, error) {
	refuse := func(format string, args ...any) (*Grant, error) {
		return nil, fmt.Errorf("%w: "+format, append([]any{ErrNotGranted}, args...)...)
	}
	dirFD, err := openRootDir(dir)
	if errors.Is(err, unix.ENOENT) {
		return refuse("no exec grant for namespace %q (%s is missing); a project's spec grants exec with exec: {users: [...]}, and root brings it up", name, dir)
	}
	if err != nil {
		return refuse("%v", err)
	}
	defer unix.Close(dirFD)
	path := filepath.Join(dir, name)
	fd, err := unix.Openat(dirFD, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	switch {
	case errors.Is(err, unix.ENOENT):
		if ns, nerr := Open(name); nerr != nil {
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
	if err := json.Unmarshal(data, &g); err != nil || g.Version != GrantVersion || g.Namespace != name || g.Cookie == 0 {
		return refuse("%s is not a grant record of this nsrun's for namespace %q; ask root to run nsrun up again", path, name)
	}
	if !slices.Contains(g.UIDs, uint32(uid)) && !slices.ContainsFunc(groups, func(gid int) bool { return slices.Contains(g.GIDs, uint32(gid)) }) {
		return refuse("namespace %q does not grant exec to uid %d or its groups; the spec's exec: lists who may", name, uid)
	}
	return &g, nil
}

// ErrGone is the refusal when the namespace of a name is not the one its
// grant names.
func ErrGone(name string) error {
	return fmt.Errorf("%w: the grant for namespace %q is for a namespace of that name that is gone (it was deleted and made again); ask root to run nsrun up again", ErrNotGranted, name)
}

// openRootDir opens an absolute directory path one component at a time,
// never following a symbolic link, and checks each directory on the way
// (/ included) to be root's and not writable by group or others.
func openRootDir(dir string) (int, error) {
	if !filepath.IsAbs(dir) {
		return -1, fmt.Errorf("%s is not an absolute path", dir)
	}
	fd, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	at := "/"
	for _, part := range strings.Split(filepath.Clean(dir), "/") {
		if part != "" {
			next, err := unix.Openat(fd, part, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			unix.Close(fd)
			at = filepath.Join(at, part)
			if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
				return -1, fmt.Errorf("%s is not a directory (a symbolic link?); ask root to remove it and run nsrun up again", at)
			}
			if err != nil {
				return -1, err
			}
			fd = next
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return -1, err
		}
		if st.Uid != 0 || st.Mode&0o022 != 0 {
			unix.Close(fd)
			return -1, fmt.Errorf("%s is not a directory of root's that only root can write; ask root to fix it and run nsrun up again", at)
		}
	}
	return fd, nil
}
