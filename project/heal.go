package project

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/forward/shortcut"
	"github.com/nsrun/nsrun/host"
	"github.com/nsrun/nsrun/hostfw"
	"github.com/nsrun/nsrun/keeper"
	"github.com/nsrun/nsrun/state"
)

// Heal checks the firewall state of every project that heals (not
// up --no-heal, not being taken down) against its record: its rules, the
// FORWARD accepts other backends need, its loopback shortcuts and its
// links' firewalld zone. It does not look while an up or down holds the
// lock (ErrBusy: what it would see are their changes, and reading beside
// thousands of namespaces takes the CPU they need). It looks without the
// lock, and takes it only to repair, where a project differs, no up or
// down runs, and none changed the host since it looked: an up or down
// that began meanwhile, or just ended, made the changes it saw (ErrBusy:
// look again after it). Under the lock it looks again and re-applies
// exactly what differs, and records each repair. causes say what the
// keeper was told since its last look.
func (e *Engine) Heal(ctx context.Context, causes []string) ([]keeper.Repair, error) {
	gen := e.Store.Generation()
	if busy, err := e.Store.Busy(); err != nil || busy {
		return nil, errors.Join(err, keeper.ErrBusy)
	}
	if drifted, err := e.keptDrifted(ctx); err != nil || !drifted {
		return nil, err
	}
	lock, ok, err := e.Store.TryLock()
	if err != nil || !ok {
		return nil, errors.Join(err, keeper.ErrBusy)
	}
	defer lock.Unlock()
	if e.Store.Generation() != gen {
		return nil, keeper.ErrBusy
	}
	states := e.Store.Healing()
	obs, err := e.Observe(ctx, host.Query{FirewallOnly: true, Shaped: ShapedLinks(states...)})
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
		errs = append(errs, e.Store.RecordRepair(r))
	}
	return out, errors.Join(errs...)
}

// keptDrifted reports whether what the keeper keeps differs from a
// record, as read without the lock.
func (e *Engine) keptDrifted(ctx context.Context) (bool, error) {
	states := e.Store.Healing()
	if len(states) == 0 {
		return false, nil
	}
	obs, err := e.Observe(ctx, host.Query{FirewallOnly: true, Shaped: ShapedLinks(states...)})
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(states, func(st *state.Record) bool { return len(keptDrift(st, obs)) > 0 }), nil
}

// Keeps reports whether the keeper has anything to keep: a project that
// heals, or that publishes a port (which it holds).
func (e *Engine) Keeps() bool {
	return e.Store.HealsFrom(e.Between) || e.Store.PublishesFrom(e.Between)
}

// BetweenLooks is a record cut to what the keeper reads of it between its
// looks (Keeps, ShapedLinks), every few seconds: whether it heals, the
// first namespace that publishes a port, and its shaped namespaces.
// Whole, the records of 10,000 namespaces are tens of MB to keep, or to
// decode again at each tick.
func BetweenLooks(r *state.Record) *state.Record {
	out := *r
	out.Namespaces = nil
	publishes := false
	for _, ns := range r.Namespaces {
		if shaped(ns) || (!publishes && len(ns.Ports) > 0) {
			out.Namespaces = append(out.Namespaces, ns)
			publishes = publishes || len(ns.Ports) > 0
		}
	}
	return &out
}

// Held are the host ports the projects publish, but those whose down
// began: the keeper holds them.
func (e *Engine) Held() []keeper.HeldPort {
	var out []keeper.HeldPort
	for _, st := range e.Store.Publishing() {
		out = append(out, heldPorts(st)...)
	}
	return out
}

// repair re-applies a project's firewall state: its rules where its
// backend and the drops of the others now say, its links' shaping and
// their zone.
func (e *Engine) repair(ctx context.Context, st *state.Record, obs host.Observed, drift []Drift) error {
	if hasKind(drift, DriftFirewall) {
		at, err := forward.Place(st.Backend, forward.Auto, obs.Backends, obs.Tables)
		if err != nil {
			return err
		}
		if err := e.Publisher.Apply(ctx, at, st.ForwardProject()); err != nil {
			return err
		}
		if !slices.Equal(at.Accepts, st.Accepts) {
			st.Accepts = at.Accepts
			if err := e.Store.Save(st); err != nil {
				return err
			}
		}
	}
	var errs []error
	for _, ns := range st.Namespaces {
		if len(messages(drift, ns.Name, DriftShaping)) > 0 {
			errs = append(errs, e.System.Shape(ns.Name, ns.Link, shaping(ns)))
		}
	}
	if hasKind(drift, DriftZone) {
		errs = append(errs, e.System.BindZone(ctx, obs.Host.Firewalld.Unbound(hostLinks(st))))
	}
	return errors.Join(errs...)
}

// keptDrift is the drift of what the keeper keeps: the project's
// rules and accepts, its loopback shortcuts, the counters of its ports'
// traffic, its links' shaping, and their zone.
func keptDrift(st *state.Record, obs host.Observed) []Drift {
	out := firewallDrift(st, obs.Tables)
	for _, m := range shortcut.Drift(obs.Shortcuts, st.Project, shortcut.Of(st.ForwardProject())) {
		out = append(out, Drift{Kind: DriftFirewall, Message: m})
	}
	if obs.Counting != nil {
		for _, m := range obs.Counting.Drift(st.ForwardProject()) {
			out = append(out, Drift{Kind: DriftFirewall, Message: m})
		}
	}
	for _, ns := range st.Namespaces {
		for _, m := range shapingDrift(ns, obs) {
			out = append(out, Drift{Kind: DriftShaping, Namespace: ns.Name, Message: m})
		}
	}
	return append(out, zoneDrift(st, obs.Host.Firewalld)...)
}

// zoneDrift reports the project's links that a running firewalld does not
// have in nsrun's zone: their forwarded traffic meets the zone of the
// uplink, which rejects it.
func zoneDrift(st *state.Record, f hostfw.Firewalld) []Drift {
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
