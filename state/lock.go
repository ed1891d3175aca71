package state

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

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
