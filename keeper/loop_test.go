package keeper

import (
	"context"
	"errors"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nsrun/nsrun/hostfw"
	"github.com/nsrun/nsrun/internal/atomicfile"
)

// fakeHealer records the causes of each Heal; fail makes the next
// repairs fail, heals is what Heals answers.
type fakeHealer struct {
	mu    sync.Mutex
	calls [][]string
	fail  int
	busy  int // the first looks find an up or down running
	heals bool
}

func (f *fakeHealer) Heal(_ context.Context, causes []string) ([]Repair, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, slices.Clone(causes))
	if f.busy > 0 {
		f.busy--
		return nil, ErrBusy
	}
	r := Repair{Project: "p", At: time.Now(), Fixed: []string{"rule"}}
	if f.fail > 0 {
		f.fail--
		r.Err = errors.New("iptables: resource busy")
	}
	return []Repair{r}, nil
}

func (f *fakeHealer) Keeps() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.heals
}

func (f *fakeHealer) set(fn func(*fakeHealer)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// looks returns the causes of each Heal so far.
func (f *fakeHealer) looks() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// waitCalls waits (up to 20 s) until the healer was called n times and
// returns the causes of those calls.
func (f *fakeHealer) waitCalls(t *testing.T, n int) [][]string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		calls := f.looks()
		if len(calls) >= n {
			return calls
		}
		if time.Now().After(deadline) {
			t.Fatalf("the keeper looked %d times within 20 s; want %d: %q", len(calls), n, calls)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// loop runs Run in the background; it returns the events channel, the
// quiet fingerprint's setter and a channel that gets Run's result.
func loop(t *testing.T, dir string, h Healer, period time.Duration) (chan hostfw.Event, func(string), chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan hostfw.Event, 16)
	var mu sync.Mutex
	fingerprint := "a"
	quiet := func(context.Context) string {
		mu.Lock()
		defer mu.Unlock()
		return fingerprint
	}
	done := make(chan error, 1)
	go func() { done <- Run(ctx, dir, h, events, period, quiet) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("Run did not return within 20 s of its context ending")
		}
	})
	return events, func(s string) { mu.Lock(); fingerprint = s; mu.Unlock() }, done
}

// TestRunLooksAtStartAndAfterEachBurst: the keeper looks once at start,
// writes its status, and looks again once per burst of events, each
// cause once.
func TestRunLooksAtStartAndAfterEachBurst(t *testing.T) {
	dir := t.TempDir()
	h := &fakeHealer{heals: true}
	events, _, _ := loop(t, dir, h, time.Hour)
	calls := h.waitCalls(t, 1)
	if want := []string{"the keeper started"}; !slices.Equal(calls[0], want) {
		t.Errorf("first look's causes %q; want %q", calls[0], want)
	}
	var st Status
	if err := atomicfile.ReadJSON(StatusFile(dir), &st); err != nil || st.PID != os.Getpid() || st.StartTime == 0 {
		t.Errorf("keeper.json = %+v, %v; want this process with its start time", st, err)
	}
	// A burst: the same event three times and another, sent together.
	events <- hostfw.NFTablesChanged
	events <- hostfw.NFTablesChanged
	events <- hostfw.FirewalldChanged
	events <- hostfw.NFTablesChanged
	calls = h.waitCalls(t, 2)
	want := []string{string(hostfw.NFTablesChanged), string(hostfw.FirewalldChanged)}
	if !slices.Equal(calls[1], want) {
		t.Errorf("causes after the burst %q; want each once: %q", calls[1], want)
	}
	// Nothing more comes of it (debounced into one look).
	time.Sleep(3 * maxSettle)
	if n := len(h.looks()); n != 2 {
		t.Errorf("the keeper looked %d times after one burst; want 2", n)
	}
}

// TestRunEndsWhileAnUpOrDownRuns: stopped while every look finds an up or
// down running (the last down stops the keeper, holding the lock), the
// keeper returns at once, without looking again.
func TestRunEndsWhileAnUpOrDownRuns(t *testing.T) {
	h := &fakeHealer{heals: true, busy: 1 << 30}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, t.TempDir(), h, make(chan hostfw.Event), time.Hour, func(context.Context) string { return "a" })
	}()
	h.waitCalls(t, 1)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v; want nil", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("Run did not return within 20 s of its context ending; it looked %d times", len(h.looks()))
	}
	if n := len(h.looks()); n > 2 {
		t.Errorf("the keeper looked %d times; want no look after its context ended (at most the one under way)", n)
	}
}

// TestRunRetriesAFailedRepair: a repair that fails is tried again, with
// that as the cause, until it works; then the keeper waits for events.
// TestRunLooksAgainAfterAnUp: a look that finds an up or down running
// is made again shortly, as its own changes, not a failure.
func TestRunLooksAgainAfterAnUp(t *testing.T) {
	h := &fakeHealer{heals: true, busy: 2}
	loop(t, t.TempDir(), h, time.Hour)
	calls := h.waitCalls(t, 3)
	again := []string{"an up or down changed the host"}
	if !slices.Equal(calls[1], again) || !slices.Equal(calls[2], again) {
		t.Errorf("causes %q; want two looks again after the busy first one", calls)
	}
}

func TestRunRetriesAFailedRepair(t *testing.T) {
	h := &fakeHealer{heals: true, fail: 2}
	loop(t, t.TempDir(), h, time.Hour)
	calls := h.waitCalls(t, 3)
	retry := []string{"retrying a failed repair"}
	if !slices.Equal(calls[1], retry) || !slices.Equal(calls[2], retry) {
		t.Errorf("causes %q; want two retries after the failed first look", calls)
	}
	time.Sleep(2 * firstRetry)
	if n := len(h.looks()); n != 3 {
		t.Errorf("the keeper looked %d times; want 3 (no retry after the repair worked)", n)
	}
}

// TestRunLooksWhenQuietChanges: what sends no events is looked at every
// period, and a changed fingerprint makes the keeper look.
func TestRunLooksWhenQuietChanges(t *testing.T) {
	h := &fakeHealer{heals: true}
	_, setQuiet, _ := loop(t, t.TempDir(), h, 10*time.Millisecond)
	h.waitCalls(t, 1)
	setQuiet("b")
	calls := h.waitCalls(t, 2)
	if want := []string{quietChanged}; !slices.Equal(calls[1], want) {
		t.Errorf("causes %q; want %q", calls[1], want)
	}
}

// TestRunExitsWhenNothingHeals: the keeper returns (nil) once no
// project heals, or its directory is gone.
func TestRunExitsWhenNothingHeals(t *testing.T) {
	for _, c := range []struct {
		name string
		end  func(h *fakeHealer, dir string)
	}{
		{"no project heals", func(h *fakeHealer, _ string) { h.set(func(h *fakeHealer) { h.heals = false }) }},
		{"the directory is gone", func(_ *fakeHealer, dir string) { os.RemoveAll(dir) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			h := &fakeHealer{heals: true}
			_, _, done := loop(t, dir, h, 10*time.Millisecond)
			h.waitCalls(t, 1)
			select {
			case err := <-done:
				t.Fatalf("Run returned %v while a project heals", err)
			case <-time.After(50 * time.Millisecond):
			}
			c.end(h, dir)
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run = %v; want nil", err)
				}
				done <- nil // for the cleanup
			case <-time.After(20 * time.Second):
				t.Fatal("Run did not return within 20 s")
			}
		})
	}
}
