// Package netns manages named network namespaces the way iproute2 does:
// each is a bind mount of a namespace file at /run/netns/NAME, under a
// /run/netns that is a shared mount, so `ip netns list` and
// `ip netns exec` see them and nsrun sees theirs.
package netns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"

	"github.com/nsrun/nsrun/internal/nsexec"
	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// RunDir is where iproute2 keeps named namespaces (/var/run/netns is a
// link to it on current systems).
const RunDir = nsexec.RunDir

// Path returns the namespace file of a named namespace.
func Path(name string) string { return filepath.Join(RunDir, name) }

// Exists reports whether a named namespace exists.
func Exists(name string) (bool, error) {
	var st unix.Statfs_t
	err := unix.Statfs(Path(name), &st)
	switch {
	case errors.Is(err, unix.ENOENT):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("checking netns %q: %w", name, err)
	}
	// A file left behind without its mount is not a namespace.
	return st.Type == unix.NSFS_MAGIC, nil
}

// List returns the names of the named namespaces, sorted.
func List() ([]string, error) {
	entries, err := os.ReadDir(RunDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", RunDir, err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names, nil
}

// Create makes a new named network namespace with lo up. It fails with an
// error wrapping os.ErrExist when the name is taken.
func Create(name string) error {
	if err := prepareRunDir(); err != nil {
		return err
	}
	path := Path(name)
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0)
	if err != nil {
		return fmt.Errorf("creating netns %q: %w", name, err)
	}
	f.Close()
	if err := mountNew(path); err != nil {
		os.Remove(path)
		return fmt.Errorf("creating netns %q: %w", name, err)
	}
	if err := setLoopbackUp(name); err != nil {
		Delete(name)
		return err
	}
	return nil
}

// runDirMu serialises prepareRunDir: namespaces are created in parallel,
// and two binds of /run/netns onto itself would stack. runDirShared is
// the /run/netns this process made a shared mount (device and inode):
// doing it again walks every namespace mounted there (MS_REC), which for
// each of thousands of namespaces is a cost in their square.
var (
	runDirMu     sync.Mutex
	runDirShared unix.Stat_t
)

// prepareRunDir makes /run/netns a shared mount, as iproute2 does, so a
// namespace mounted there appears in every mount namespace.
func prepareRunDir() error {
	runDirMu.Lock()
	defer runDirMu.Unlock()
	var st unix.Stat_t
	if unix.Stat(RunDir, &st) == nil && st.Ino != 0 && st.Dev == runDirShared.Dev && st.Ino == runDirShared.Ino {
		return nil
	}
	if err := os.MkdirAll(RunDir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", RunDir, err)
	}
	for bound := false; ; bound = true {
		err := unix.Mount("", RunDir, "none", unix.MS_SHARED|unix.MS_REC, "")
		if err == nil {
			unix.Stat(RunDir, &runDirShared) // zero when it fails: done again next time
			return nil
		}
		if !errors.Is(err, unix.EINVAL) || bound {
			return fmt.Errorf("making %s a shared mount: %w", RunDir, err)
		}
		// Not a mount point yet: bind it onto itself, then try again.
		if err := unix.Mount(RunDir, RunDir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind-mounting %s: %w", RunDir, err)
		}
	}
}

// mountNew creates a network namespace on a dedicated OS thread and
// bind-mounts it at path. The thread is never switched back: it stays
// locked and the Go runtime discards it when the goroutine ends.
func mountNew(path string) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked after unshare: the thread dies with the goroutine
		if unix.Gettid() == unix.Getpid() {
			// The main thread cannot be discarded, and /proc/PID/ns/net shows
			// its namespace. Hold it so the work lands on another thread.
			errc <- mountNew(path)
			runtime.UnlockOSThread()
			return
		}
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		src := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		if err := unix.Mount(src, path, "none", unix.MS_BIND, ""); err != nil {
			errc <- fmt.Errorf("bind-mounting %s on %s: %w", src, path, err)
			return
		}
		errc <- nil
	}()
	return <-errc
}

// Delete removes a named namespace: it unmounts and removes its file. The
// namespace itself lives on while processes are inside it. A namespace that
// does not exist is not an error.
func Delete(name string) error {
	path := Path(name)
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmounting netns %q: %w", name, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing netns %q: %w", name, err)
	}
	return nil
}

// Handle opens a named namespace. The caller closes it.
func Handle(name string) (vnetns.NsHandle, error) {
	h, err := vnetns.GetFromPath(Path(name))
	if err != nil {
		return vnetns.None(), fmt.Errorf("opening netns %q: %w", name, err)
	}
	return h, nil
}

// Netlink returns a netlink handle bound to a named namespace, so callers
// work inside it without switching any thread. The caller closes it.
func Netlink(name string) (*netlink.Handle, error) {
	ns, err := Handle(name)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE) // one socket; the default opens one per family
	if err != nil {
		return nil, fmt.Errorf("netlink handle in netns %q: %w", name, err)
	}
	return h, nil
}

func setLoopbackUp(name string) error {
	h, err := Netlink(name)
	if err != nil {
		return err
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		return fmt.Errorf("setting lo up in netns %q: %w", name, err)
	}
	return nil
}

// Do runs fn with the calling goroutine's thread inside the named
// namespace, as CNI's ns.Do does: on a locked thread, switched back
// afterwards. If switching back fails the thread stays locked, and the Go
// runtime discards it rather than reuse a thread in the wrong namespace.
// Only short-lived commands use it; the supervisor never does.
func Do(name string, fn func() error) error {
	target, err := Handle(name)
	if err != nil {
		return err
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := vnetns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("opening the current netns: %w", err)
			return
		}
		defer orig.Close()
		if err := vnetns.Set(target); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("entering netns %q: %w", name, err)
			return
		}
		ferr := fn()
		if err := vnetns.Set(orig); err != nil {
			errc <- fmt.Errorf("leaving netns %q: %w", name, err) // thread stays locked: discarded
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
