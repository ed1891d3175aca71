package state

import (
	"context"
	"testing"

	"golang.org/x/sys/unix"
)

// TestFlockHeld reads /proc/locks as the kernel writes it: a held flock
// on the file is found; a waiter for it, a POSIX lock on it, and a flock
// on another file are not.
func TestFlockHeld(t *testing.T) {
	dev := unix.Mkdev(0xfe, 0)
	for _, c := range []struct {
		locks string
		want  bool
	}{
		{"1: FLOCK  ADVISORY  WRITE 5465 fe:00:9977917 0 EOF\n", true},
		{"1: POSIX  ADVISORY  WRITE 5465 fe:00:9977917 0 EOF\n2: FLOCK  ADVISORY  WRITE 12 fe:00:99779170 0 EOF\n", false},
		{"1: FLOCK  ADVISORY  WRITE 12 fe:01:9977917 0 EOF\n", false},
		{"1: FLOCK  ADVISORY  WRITE 5465 fe:00:1 0 EOF\n1: -> FLOCK  ADVISORY  WRITE 5469 fe:00:9977917 0 EOF\n", false},
		{"", false},
	} {
		if got := flockHeld(c.locks, dev, 9977917); got != c.want {
			t.Errorf("flockHeld(%q) = %v, want %v", c.locks, got, c.want)
		}
	}
}

// TestBusy: the lock is seen held while Lock holds it, by this process or
// another, and free once released; no state directory is not busy.
func TestBusy(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	if busy, err := st.Busy(); err != nil || busy {
		t.Fatalf("Busy before any lock = %v, %v", busy, err)
	}
	l, err := st.Lock(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	busy, err := st.Busy()
	l.Unlock()
	if err != nil || !busy {
		t.Fatalf("Busy with the lock held = %v, %v; want true", busy, err)
	}
	if busy, err := st.Busy(); err != nil || busy {
		t.Fatalf("Busy after Unlock = %v, %v; want false", busy, err)
	}
	if busy, err := (Store{Dir: st.Dir + "/gone"}).Busy(); err != nil || busy {
		t.Fatalf("Busy without a state directory = %v, %v; want false", busy, err)
	}
}
