package project

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nsrun/nsrun/forward"
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

// Host is nsrun's record of the host settings it changed, so that the
// last down can put them back.
type Host struct {
	// IPForward is net.ipv4.ip_forward as it was before nsrun set it to 1;
	// empty when nsrun did not change it.
	IPForward string `json:"ip_forward,omitempty"`
	// IPv6Forward is net.ipv6.conf.all.forwarding as it was before nsrun
	// set it to 1, and AcceptRA each link's accept_ra before nsrun set it
	// to 2 (so that the link keeps its RA-learned default route when
	// forwarding is on); empty when nsrun did not change them.
	IPv6Forward string            `json:"ipv6_forward,omitempty"`
	AcceptRA    map[string]string `json:"accept_ra,omitempty"`
	// Tables are the tables each firewall backend's tools had made before
	// nsrun's first change (see forward.Firewall.MadeTables); nil until
	// recorded. The last down removes the others it finds empty: those
	// iptables-nft made for nsrun.
	Tables map[forward.Backend][]string `json:"tables"`
}

func (st Store) hostPath() string { return filepath.Join(st.Dir, "host.json") }

// LoadHost reads the host record; a missing one is empty.
func (st Store) LoadHost() (Host, error) {
	var h Host
	data, err := os.ReadFile(st.hostPath())
	if errors.Is(err, os.ErrNotExist) {
		return h, nil
	}
	if err != nil {
		return h, fmt.Errorf("reading %s: %w", st.hostPath(), err)
	}
	if err := json.Unmarshal(data, &h); err != nil {
		return Host{}, nil // corrupt: nothing known to restore
	}
	return h, nil
}

// SaveHost writes the host record atomically.
func (st Store) SaveHost(h Host) error {
	return atomicfile.WriteJSON(st.hostPath(), h)
}

// RemoveAll removes the state directory itself, and the exec grants
// beside it, once no project is left. The caller holds the lock; the lock
// file goes too.
func (st Store) RemoveAll() error {
	for _, dir := range []string{st.grantDir(), st.Dir} {
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("removing %s: %w", dir, err)
		}
	}
	return nil
}
