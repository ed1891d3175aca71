package state

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nsrun/nsrun/internal/atomicfile"
	"golang.org/x/sys/unix"
)

// Lock is held around every up and down, so they never interleave on the
// shared chains, sysctls and state.
type Lock struct {
	f *os.File
}

// Lock takes the exclusive lock, waiting while another nsrun holds it. It
// calls waiting once if it has to wait, and gives up when ctx ends.
func (st Store) Lock(ctx context.Context, waiting func()) (*Lock, error) {
	if err := os.MkdirAll(st.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", st.Dir, err)
	}
	path := filepath.Join(st.Dir, "lock")
	told := false
	for {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return nil, fmt.Errorf("opening lock %s: %w", path, err)
		}
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil && sameFile(f, path) {
			return &Lock{f: f}, nil
		}
		f.Close()
		if err != nil && !errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		if err != nil && !told && waiting != nil {
			waiting()
			told = true
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("another nsrun up or down holds %s: %w; wait for it to finish and try again", path, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TryLock takes the lock if no one holds it; ok is false when another
// nsrun does. It never waits, and makes nothing when the state directory
// is gone.
func (st Store) TryLock() (l *Lock, ok bool, err error) {
	path := filepath.Join(st.Dir, "lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil // no state directory: nothing to keep
	}
	if err != nil {
		return nil, false, fmt.Errorf("opening lock %s: %w", path, err)
	}
	err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if err == nil && sameFile(f, path) {
		return &Lock{f: f}, true, nil
	}
	f.Close()
	if err != nil && !errors.Is(err, unix.EWOULDBLOCK) {
		return nil, false, fmt.Errorf("locking %s: %w", path, err)
	}
	return nil, false, nil
}

// Busy reports whether an up or down holds the lock now, without taking
// it: from the kernel's table of the locks held (/proc/locks), which
// names each by its file's device and inode. The keeper asks before it
// reads the host: what it would see while an up or down runs is their
// own changes, and a read of every project's rules beside thousands of
// namespaces takes the CPU they need. A lock taken just after is not
// seen (the keeper looks again under the lock before it repairs).
func (st Store) Busy() (bool, error) {
	var file unix.Stat_t
	err := unix.Stat(filepath.Join(st.Dir, "lock"), &file)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading the lock %s: %w", filepath.Join(st.Dir, "lock"), err)
	}
	locks, err := os.ReadFile("/proc/locks")
	if err != nil {
		return false, fmt.Errorf("reading the locks held: %w", err)
	}
	return flockHeld(string(locks), file.Dev, file.Ino), nil
}

// flockHeld reports whether /proc/locks lists a held flock on the file of
// device dev and inode ino: "1: FLOCK  ADVISORY  WRITE 1234 fe:00:5678 0
// EOF", the device as major:minor in hex; a waiter's line has "->" after
// the number.
func flockHeld(locks string, dev, ino uint64) bool {
	file := fmt.Sprintf("%02x:%02x:%d", unix.Major(dev), unix.Minor(dev), ino)
	for line := range strings.Lines(locks) {
		f := strings.Fields(line)
		if len(f) >= 6 && f[1] == "FLOCK" && f[5] == file {
			return true
		}
	}
	return false
}

// generationFile counts the ups and downs that changed the host.
func (st Store) generationFile() string { return filepath.Join(st.Dir, "generation") }

// Generation is the count of ups and downs that changed the host so far
// (see Changed); 0 before the first.
func (st Store) Generation() uint64 {
	data, _ := os.ReadFile(st.generationFile())
	n, _ := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
	return n
}

// Changed counts an up or down that changed the host: called under the
// lock, once its changes are made, so that a reader who saw the host
// change meanwhile knows the change was nsrun's. Without a state
// directory (the last down removed it) there is nothing to count.
func (st Store) Changed() error {
	if _, err := os.Stat(st.Dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return atomicfile.Write(st.generationFile(), []byte(strconv.FormatUint(st.Generation()+1, 10)+"\n"), 0o600)
}

// sameFile reports whether f is still the file at path: the last down
// removes the lock file, and a lock on a removed file protects nothing.
func sameFile(f *os.File, path string) bool {
	a, err1 := f.Stat()
	b, err2 := os.Stat(path)
	return err1 == nil && err2 == nil && os.SameFile(a, b)
}

// Unlock releases the lock.
func (l *Lock) Unlock() {
	l.f.Close()
}
