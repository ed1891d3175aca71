package project

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/nsrun/nsrun/hostfw"
	"github.com/nsrun/nsrun/internal/atomicfile"
	"github.com/nsrun/nsrun/netns"
)

// Keeping starts and stops the keeper: one process for all the projects
// of a state directory, which keeps their firewall state true (see
// Engine.Keep). One for all, not one per project: a firewall change is one
// event, read once, repaired in one look under one lock, whatever the
// number of projects.
type Keeping interface {
	// Start starts the keeper of dir unless it runs, and returns once it
	// watches for changes.
	Start(ctx context.Context, dir string) error
	// Stop stops it, and any other keeper found running for dir.
	Stop(dir string) error
	// Running returns the keeper's process, if it runs.
	Running(dir string) (netns.Process, bool)
}

// KeeperStatus is what the keeper writes once it watches.
type KeeperStatus struct {
	PID       int    `json:"pid"`
	StartTime uint64 `json:"start_time"`
}

func keeperPath(dir string) string { return filepath.Join(dir, "keeper.json") }

// KeeperLog is the keeper's own output; each repair is logged to its
// project's supervisor.log.
func KeeperLog(dir string) string { return filepath.Join(dir, "keeper.log") }

// Keeper is the real Keeping: it runs `Self keep DIR` as a detached
// process (its own session, output to DIR/keeper.log).
type Keeper struct {
	Self string // the nsrun binary
}

func (k Keeper) Running(dir string) (netns.Process, bool) {
	var st KeeperStatus
	if err := atomicfile.ReadJSON(keeperPath(dir), &st); err != nil || st.PID == 0 {
		return netns.Process{}, false
	}
	p := netns.Process{PID: st.PID, StartTime: st.StartTime}
	return p, netns.Alive(p)
}

func (k Keeper) Start(ctx context.Context, dir string) error {
	if _, ok := k.Running(dir); ok {
		return nil
	}
	if err := k.Stop(dir); err != nil { // one without a status must not go on beside it
		return err
	}
	pid, err := startDaemon(KeeperLog(dir), k.Self, "keep", dir)
	if err != nil {
		return fmt.Errorf("starting the keeper: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		if p, ok := k.Running(dir); ok && p.PID == pid {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the keeper did not start; see %s, or run up with --no-heal", KeeperLog(dir))
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (k Keeper) Stop(dir string) error {
	procs := daemons(k.Self, "keep", func(d string) bool { return d == dir })
	if p, ok := k.Running(dir); ok {
		procs = append(procs, p)
	}
	err := netns.Stop(procs, 5*time.Second)
	os.Remove(keeperPath(dir))
	os.Remove(keeperSocket(dir))
	return err
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

// Keep is the keeper's loop (nsrun keep DIR). It looks at once, then
// after each event of w, and every period for what sends no events: when
// quiet (a fingerprint of those) changes. It returns when ctx ends, or
// when no project of the directory heals any more.
func (e *Engine) Keep(ctx context.Context, w *hostfw.Watcher, period time.Duration, quiet func(context.Context) string) error {
	if err := w.Run(ctx, period); err != nil {
		return fmt.Errorf("watching the firewalls: %w", err)
	}
	self := KeeperStatus{PID: os.Getpid()}
	self.StartTime, _ = netns.StartTime(self.PID)
	if err := atomicfile.WriteJSON(keeperPath(e.Store.Dir), self); err != nil {
		return err
	}
	log.Printf("keeper %d watching %s", self.PID, e.Store.Dir)
	tick := time.NewTicker(period)
	defer tick.Stop()
	causes := []string{"the keeper started"}
	last := quiet(ctx)
	pause := firstRetry
	for {
		if len(causes) > 0 {
			causes = e.settle(ctx, w, causes)
			repairs, err := e.Heal(ctx, causes)
			causes = nil
			if err != nil && ctx.Err() == nil {
				log.Printf("looking at the firewalls: %v", err)
			}
			failed := false
			for _, r := range repairs {
				log.Print(r.String())
				failed = failed || r.Err != nil
			}
			last = quiet(ctx)
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
		case ev := <-w.C:
			causes = append(causes, string(ev))
		case <-tick.C:
			if _, err := os.Stat(e.Store.Dir); errors.Is(err, os.ErrNotExist) || !e.Store.heals() {
				log.Printf("no project heals in %s: exiting", e.Store.Dir)
				return nil
			}
			if now := quiet(ctx); now != last {
				causes = append(causes, "iptables-legacy changed")
			}
		}
	}
}

// settle collects events until there has been none for settle, or
// maxSettle has passed; it returns the causes, each once.
func (e *Engine) settle(ctx context.Context, w *hostfw.Watcher, causes []string) []string {
	deadline := time.After(maxSettle)
	for {
		select {
		case ev := <-w.C:
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
