package project

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/forward/shortcut"
	"github.com/nsrun/nsrun/host"
	"github.com/nsrun/nsrun/hostfw"
	"github.com/nsrun/nsrun/internal/atomicfile"
	"github.com/nsrun/nsrun/keeper"
	"github.com/nsrun/nsrun/supervise"
)

// Heal checks the firewall state of every project that heals (not
// up --no-heal, not being taken down) against its record: its rules, the
// FORWARD accepts other backends need, its loopback shortcuts and its
// links' firewalld zone. It re-applies exactly that of a project which
// differs, under the lock of up and down, and records each repair.
// causes say what the keeper was told since its last look.
func (e *Engine) Heal(ctx context.Context, causes []string) ([]keeper.Repair, error) {
	lock, err := e.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	states := e.Store.healing()
	if len(states) == 0 {
		return nil, nil
	}
	obs, err := e.Observe(ctx, host.Query{FirewallOnly: true})
	if err != nil {
		return nil, err
	}
	var out []keeper.Repair
	var errs []error
	for _, st := range states {
		drift := keptDrift(st, obs)
		if len(drift) == 0 {
			continue
		}
		r := keeper.Repair{Project: st.Project, At: time.Now(), Causes: causes}
		for _, d := range drift {
			r.Fixed = append(r.Fixed, d.Message)
		}
		r.Err = e.repair(ctx, st, obs, drift)
		out = append(out, r)
		errs = append(errs, e.Store.recordRepair(r))
	}
	return out, errors.Join(errs...)
}

// Heals reports whether any project is kept by the keeper.
func (e *Engine) Heals() bool { return e.Store.heals() }

// repair re-applies a project's firewall state: its rules where its
// backend and the drops of the others now say, and its links' zone.
func (e *Engine) repair(ctx context.Context, st *State, obs host.Observed, drift []Drift) error {
	if hasKind(drift, DriftFirewall) {
		at, err := forward.Place(st.Backend, forward.Auto, obs.Backends, obs.Tables)
		if err != nil {
			return err
		}
		if err := e.System.ApplyForwards(ctx, at, st.ForwardProject()); err != nil {
			return err
		}
		if !slices.Equal(at.Accepts, st.Accepts) {
			st.Accepts = at.Accepts
			if err := e.Store.Save(st); err != nil {
				return err
			}
		}
	}
	if hasKind(drift, DriftZone) {
		return e.System.BindZone(ctx, obs.Host.Firewalld.Unbound(hostLinks(st)))
	}
	return nil
}

// keptDrift is the drift of what the keeper keeps: the project's
// rules and accepts, its loopback shortcuts, and its links' zone.
func keptDrift(st *State, obs host.Observed) []Drift {
	out := firewallDrift(st, obs.Tables)
	for _, m := range shortcut.Drift(obs.Shortcuts, st.Project, shortcut.Of(st.ForwardProject())) {
		out = append(out, Drift{Kind: DriftFirewall, Message: m})
	}
	return append(out, zoneDrift(st, obs.Host.Firewalld)...)
}

// zoneDrift reports the project's links that a running firewalld does not
// have in nsrun's zone: their forwarded traffic meets the zone of the
// uplink, which rejects it.
func zoneDrift(st *State, f hostfw.Firewalld) []Drift {
	if !f.Running {
		return nil
	}
	var out []Drift
	for _, ns := range st.Namespaces {
		if z := f.Interfaces[ns.Link]; z != hostfw.Zone {
			where := "in no zone"
			if z != "" {
				where = "in zone " + z
			}
			out = append(out, Drift{Kind: DriftZone, Namespace: ns.Name, Message: fmt.Sprintf(
				"firewalld has link %s %s, not in zone %s: it rejects what namespace %s sends through the host", ns.Link, where, hostfw.Zone, ns.Name)})
		}
	}
	return out
}

// HealStatus is what status shows of a project's repairs.
type HealStatus struct {
	Repairs    int       `json:"repairs"`
	LastRepair time.Time `json:"last_repair,omitzero"`
	// LastFixed says what the last repair put back.
	LastFixed []string `json:"last_fixed,omitempty"`
	LastCause []string `json:"last_cause,omitempty"`
	LastError string   `json:"last_error,omitempty"`
}

func (st Store) repairsPath(project string) string {
	return filepath.Join(st.ProjectDir(project), "repairs.json")
}

// Repairs reads a project's repair count; none when it never had one.
func (st Store) Repairs(project string) HealStatus {
	var h HealStatus
	if data, err := os.ReadFile(st.repairsPath(project)); err == nil {
		json.Unmarshal(data, &h)
	}
	return h
}

// recordRepair counts a repair and logs it to the project's
// supervisor.log, beside its supervisor's own lines.
func (st Store) recordRepair(r keeper.Repair) error {
	h := st.Repairs(r.Project)
	h.Repairs++
	h.LastRepair, h.LastFixed, h.LastCause, h.LastError = r.At, r.Fixed, r.Causes, ""
	if r.Err != nil {
		h.LastError = r.Err.Error()
	}
	err := atomicfile.WriteJSON(st.repairsPath(r.Project), h)
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

// unmarkRemoving: an up takes the project back.
func (st Store) unmarkRemoving(project string) {
	os.Remove(st.removingPath(project))
}

// healing loads the records of the projects the keeper keeps: not up
// --no-heal, no down begun. Unreadable records are down --all's.
func (st Store) healing() []*State { return st.kept(false) }

// heals reports whether any project is kept by the keeper; it stops at
// the first (the keeper asks every few seconds).
func (st Store) heals() bool { return len(st.kept(true)) > 0 }

func (st Store) kept(first bool) []*State {
	names, _ := st.Projects()
	var out []*State
	for _, name := range names {
		if s, err := st.Load(name); err == nil && !s.NoHeal && !st.Removing(name) {
			out = append(out, s)
			if first {
				break
			}
		}
	}
	return out
}
