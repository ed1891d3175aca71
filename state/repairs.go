package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/nsrun/nsrun/internal/atomicfile"
	"github.com/nsrun/nsrun/keeper"
	"github.com/nsrun/nsrun/supervise"
)

// HealStatus is what status shows of a project's repairs.
type HealStatus struct {
	Repairs    int       `json:"repairs"`
	LastRepair time.Time `json:"last_repair,omitzero"`
	// LastFixed says what the last repair put back.
	LastFixed []string `json:"last_fixed,omitempty"`
	LastCause []string `json:"last_cause,omitempty"`
	LastError string   `json:"last_error,omitempty"`
}

func (st Store) RepairsFile(project string) string {
	return filepath.Join(st.ProjectDir(project), "repairs.json")
}

// Repairs reads a project's repair count; none when it never had one.
func (st Store) Repairs(project string) HealStatus {
	var h HealStatus
	if data, err := os.ReadFile(st.RepairsFile(project)); err == nil {
		json.Unmarshal(data, &h)
	}
	return h
}

// RecordRepair counts a repair and logs it to the project's
// supervisor.log, beside its supervisor's own lines.
func (st Store) RecordRepair(r keeper.Repair) error {
	h := st.Repairs(r.Project)
	h.Repairs++
	h.LastRepair, h.LastFixed, h.LastCause, h.LastError = r.At, r.Fixed, r.Causes, ""
	if r.Err != nil {
		h.LastError = r.Err.Error()
	}
	err := atomicfile.WriteJSON(st.RepairsFile(r.Project), h)
	logPath := supervise.SupervisorLog(st.ProjectDir(r.Project))
	f, ferr := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if ferr == nil {
		_, ferr = fmt.Fprintln(f, r.At.Format(time.RFC3339), r.String())
		ferr = errors.Join(ferr, f.Close())
	}
	if err := errors.Join(err, ferr); err != nil {
		return fmt.Errorf("recording the repair of project %s (status will not show it): %w; is %s writable?", r.Project, err, st.ProjectDir(r.Project))
	}
	return nil
}

func (st Store) removingPath(project string) string {
	return filepath.Join(st.ProjectDir(project), "removing")
}

// MarkRemoving records that a down of the project began: the keeper
// leaves it alone from then on, also when the down fails half-way.
func (st Store) MarkRemoving(project string) error {
	if err := os.WriteFile(st.removingPath(project), nil, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("marking project %s as being removed: %w", project, err)
	}
	return nil
}

// Removing reports whether a down of the project began.
func (st Store) Removing(project string) bool {
	_, err := os.Stat(st.removingPath(project))
	return err == nil
}

// UnmarkRemoving: an up takes the project back.
func (st Store) UnmarkRemoving(project string) {
	os.Remove(st.removingPath(project))
}

// Healing loads the records of the projects the keeper keeps: not up
// --no-heal, no down begun. Unreadable records are down --all's.
func (st Store) Healing() []*Record { return st.kept(false) }

// HealingFrom is Healing, the records loaded through c: decoded again
// only when their files change (for the keeper's periodic look).
func (st Store) HealingFrom(c *Cache) []*Record {
	return st.matchingWith(c.loader(st), false, heals)
}

// Heals reports whether any project is kept by the keeper; it stops at
// the first (the keeper asks every few seconds).
func (st Store) Heals() bool { return st.HealsFrom(nil) }

// HealsFrom is Heals, the records loaded through c (nil: none).
func (st Store) HealsFrom(c *Cache) bool {
	return len(st.matchingWith(c.loader(st), true, heals)) > 0
}

// Publishing loads the records of the projects whose ports the keeper
// holds: those that publish any, no down begun.
func (st Store) Publishing() []*Record { return st.matching(false, publishes) }

// Publishes reports whether any project publishes a port the keeper
// holds; it stops at the first.
func (st Store) Publishes() bool { return st.PublishesFrom(nil) }

// PublishesFrom is Publishes, the records loaded through c (nil: none).
func (st Store) PublishesFrom(c *Cache) bool {
	return len(st.matchingWith(c.loader(st), true, publishes)) > 0
}

func publishes(r *Record) bool {
	return slices.ContainsFunc(r.Namespaces, func(ns *Namespace) bool { return len(ns.Ports) > 0 })
}

func (st Store) kept(first bool) []*Record { return st.matching(first, heals) }

// heals reports whether the keeper keeps a project: not up --no-heal.
func heals(r *Record) bool { return !r.NoHeal }

// matching loads the records that match, of projects whose down has not
// begun; with first, only the first.
func (st Store) matching(first bool, match func(*Record) bool) []*Record {
	return st.matchingWith(st.Load, first, match)
}

// matchingWith is matching, the records loaded by load.
func (st Store) matchingWith(load func(string) (*Record, error), first bool, match func(*Record) bool) []*Record {
	names, _ := st.Projects()
	var out []*Record
	for _, name := range names {
		if s, err := load(name); err == nil && match(s) && !st.Removing(name) {
			out = append(out, s)
			if first {
				break
			}
		}
	}
	return out
}
