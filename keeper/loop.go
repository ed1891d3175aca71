package keeper

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/nsrun/nsrun/hostfw"
	"github.com/nsrun/nsrun/internal/atomicfile"
	"github.com/nsrun/nsrun/internal/proc"
	"github.com/nsrun/nsrun/internal/words"
)

// Repair is one repair of a project by the keeper.
type Repair struct {
	Project string
	At      time.Time
	Fixed   []string // what was missing or changed
	Causes  []string // what the keeper was told before it looked
	Err     error    // why the repair failed; nil when it worked
}

// String is the repair as a log line: what was put back (the first few
// differences and their count), and what the keeper was told before.
func (r Repair) String() string {
	what := strings.Join(r.Fixed, "; ")
	if len(r.Fixed) > 3 {
		what = fmt.Sprintf("%s; and %d more", strings.Join(r.Fixed[:3], "; "), len(r.Fixed)-3)
	}
	s := fmt.Sprintf("keeper: repaired project %s (%s): %s", r.Project, words.Plural(len(r.Fixed), "difference"), what)
	if r.Err != nil {
		s = fmt.Sprintf("keeper: repairing project %s failed: %v; it had %s: %s", r.Project, r.Err, words.Plural(len(r.Fixed), "difference"), what)
	}
	if len(r.Causes) > 0 {
		s += " (after: " + strings.Join(r.Causes, ", ") + ")"
	}
	return s
}

// Debounce: the keeper looks once events have stopped for settle, or at
// the latest after maxSettle of them (a firewalld reload is a burst of
// changes over a second).
const (
	settle    = 100 * time.Millisecond
	maxSettle = time.Second
	// A failed repair is tried again after a pause that doubles from
	// firstRetry to maxRetry while it keeps failing.
	firstRetry = time.Second
	maxRetry   = 30 * time.Second
)

// ErrBusy says that a look found differences while an up or down ran, or
// right after one: its own changes, most likely. The keeper looks again
// shortly, rather than wait for the lock (which would make the next up
// or down wait for it).
var ErrBusy = errors.New("an up or down is changing the host")

// After ErrBusy the keeper looks again after a pause that doubles from
// firstBusy to maxBusy while up or down keep running (an up that waits
// for ready checks runs for a while).
const (
	firstBusy = 200 * time.Millisecond
	maxBusy   = 2 * time.Second
)

// quietChanged is the cause of a look after the periodic fingerprint of
// what sends no events changed.
const quietChanged = "iptables-legacy or a shaped link's qdiscs changed"

// Healer is what the keeper keeps: the projects of its directory.
type Healer interface {
	// Heal looks at every project that heals and repairs what differs,
	// under the lock of up and down, which it takes only to repair (ErrBusy
	// when an up or down runs); causes say what the keeper was told since
	// its last look.
	Heal(ctx context.Context, causes []string) ([]Repair, error)
	// Keeps reports whether the keeper has work: any project of the
	// directory heals, or publishes a port it holds.
	Keeps() bool
}

// Run is the keeper's loop (nsrun keep DIR). It looks at once, then
// after each event (a hostfw.Watcher's C), and every period for what sends
// no events: when quiet (a fingerprint of those) changes. It returns when
// ctx ends, or when no project of the directory heals or publishes a port
// any more.
func Run(ctx context.Context, dir string, h Healer, events <-chan hostfw.Event, period time.Duration, quiet func(context.Context) string) error {
	self := Status{PID: os.Getpid()}
	self.StartTime, _ = proc.StartTime(self.PID)
	if err := atomicfile.WriteJSON(StatusFile(dir), self); err != nil {
		return err
	}
	log.Printf("keeper %d watching %s", self.PID, dir)
	tick := time.NewTicker(period)
	defer tick.Stop()
	causes := []string{"the keeper started"}
	last := quiet(ctx)
	pause, busy := firstRetry, firstBusy
	for {
		if ctx.Err() != nil {
			// Stopped, maybe by the last down, which holds the lock: each
			// look would find it busy, and the next begin at once.
			return nil
		}
		if len(causes) > 0 {
			causes = collect(ctx, events, causes)
			// The fingerprint before the look: a change while it looks is
			// looked at again.
			seen := quiet(ctx)
			repairs, err := h.Heal(ctx, causes)
			if errors.Is(err, ErrBusy) {
				// An up or down's own changes: look again after it.
				sleep(ctx, busy)
				busy = min(2*busy, maxBusy)
				causes = []string{"an up or down changed the host"}
				continue
			}
			busy, causes = firstBusy, nil
			// A look reads every healing project's record and the
			// firewalls: tens of MB beside thousands of namespaces, all
			// garbage once it is over. Given back now, not over the
			// minutes the runtime takes, the keeper waits in what it holds.
			debug.FreeOSMemory()
			if err != nil && ctx.Err() == nil {
				log.Printf("looking at the firewalls: %v", err)
			}
			failed := false
			for _, r := range repairs {
				log.Print(r.String())
				failed = failed || r.Err != nil
			}
			last = seen
			if !failed {
				pause = firstRetry
				continue
			}
			sleep(ctx, pause)
			pause = min(2*pause, maxRetry)
			causes = []string{"retrying a failed repair"}
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case ev := <-events:
			causes = append(causes, string(ev))
		case <-tick.C:
			if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) || !h.Keeps() {
				log.Printf("no project heals or publishes a port in %s: exiting", dir)
				return nil
			}
			if now := quiet(ctx); now != last {
				causes = append(causes, quietChanged)
			}
		}
	}
}

// collect collects events until there has been none for settle, or
// maxSettle has passed; it returns the causes, each once.
func collect(ctx context.Context, events <-chan hostfw.Event, causes []string) []string {
	deadline := time.After(maxSettle)
	for {
		select {
		case ev := <-events:
			if !slices.Contains(causes, string(ev)) {
				causes = append(causes, string(ev))
			}
		case <-time.After(settle):
			return causes
		case <-deadline:
			return causes
		case <-ctx.Done():
			return causes
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
