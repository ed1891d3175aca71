package project

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/host"
	"github.com/nsrun/nsrun/internal/proc"
	"github.com/nsrun/nsrun/internal/sysctl"
	"github.com/nsrun/nsrun/keeper"
	"github.com/nsrun/nsrun/specs"
	"github.com/nsrun/nsrun/state"
	"github.com/nsrun/nsrun/supervise"
	"github.com/nsrun/nsrun/veth"
)

// Sweeper finds and removes nsrun leftovers that no state records.
type Sweeper interface {
	LabelledLinks() ([]veth.Labelled, error)
	SweepFirewall(ctx context.Context) error
	// CgroupNamespaces lists the namespaces with a cgroup of nsrun's.
	CgroupNamespaces() []string
}

// Engine brings projects up and down under the state lock.
type Engine struct {
	Store       state.Store
	System      System
	Publisher   Publisher
	Sweeper     Sweeper
	Supervision Supervision
	// Keeper runs the process that heals the projects' firewall state.
	Keeper   Keeping
	Observe  func(ctx context.Context, q host.Query) (host.Observed, error)
	Progress func(Step)   // called after each step; may be nil
	Waiting  func()       // called once when another nsrun holds the lock; may be nil
	Warn     func(string) // called with what down finds amiss but goes on with; may be nil
	// LockTimeout bounds the wait for another up or down; 0 means 5 minutes.
	LockTimeout time.Duration
	// ReadyWait bounds the wait for all ready checks together; 0: none
	// beyond each check's own timeout.
	ReadyWait time.Duration
	// FirewallChoice is the user's choice of where a project's rules go
	// (--firewall; see forward.Place); "" is auto.
	FirewallChoice forward.Choice
	// NoHeal records that the keeper leaves the project alone (up --no-heal).
	NoHeal bool
	// Between keeps the records the keeper reads between its looks, cut
	// (BetweenLooks); nil: they are loaded whole each time.
	Between *state.Cache
}

// lock takes the state lock, waiting at most LockTimeout.
func (e *Engine) lock(ctx context.Context) (*state.Lock, error) {
	timeout := e.LockTimeout
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return e.Store.Lock(ctx, e.Waiting)
}

// Supervision starts, reloads and stops a project's supervisor.
type Supervision interface {
	// Apply makes the supervisor of dir run plan: it starts one, or tells
	// the running one to reload, and returns once it runs the plan.
	Apply(ctx context.Context, dir string, plan supervise.Plan) error
	// Stop stops the supervisor of dir and, through it, its processes.
	Stop(dir string) error
	// StopAll stops every supervisor of a project below root, recorded or not.
	StopAll(root string) error
	// Status is what the supervisor of dir last reported.
	Status(dir string) (supervise.Status, error)
	// Dial tries once to connect to a TCP port inside a namespace.
	Dial(ns string, addrs []netip.Addr, port uint16) error
}

// Keeping starts and stops the keeper: one process for all the projects
// of a state directory, which keeps their firewall state true (see
// package keeper; it repairs through Engine.Heal). One for all, not one
// per project: a firewall change is one event, read once, repaired in one
// look under one lock, whatever the number of projects.
type Keeping interface {
	// Start starts the keeper of dir unless it runs, and returns once it
	// watches for changes.
	Start(ctx context.Context, dir string) error
	// Stop stops it, and any other keeper found running for dir.
	Stop(dir string) error
	// Running returns the keeper's process, if it runs.
	Running(dir string) (proc.Process, bool)
	// Hold makes the running keeper hold the ports the projects publish
	// now, and returns once it does.
	Hold(ctx context.Context, dir string) error
}

// PreflightError means up found a conflict before changing anything.
type PreflightError struct{ Err error }

func (e *PreflightError) Error() string {
	return e.Err.Error() + "\nnothing was changed"
}
func (e *PreflightError) Unwrap() error { return e.Err }

// Outcome is what an up did.
type Outcome struct {
	State    *state.Record
	UpToDate bool // everything was as the spec says: nothing was changed
	// Warnings are the host's firewalls that drop nsrun's traffic where
	// nsrun cannot help it, each with the command that would.
	Warnings []string

	// portsChanged: the project publishes other host ports than before,
	// which the keeper is to hold.
	portsChanged bool
}

// Up creates or reconciles the project of a validated spec: it changes
// only what is new, changed or drifted, and nothing at all when all is as
// the spec says. On failure it removes what this call created and
// restores the previous record; refused before any change, it leaves the
// host as it found it, /run/nsrun included.
func (e *Engine) Up(ctx context.Context, s *specs.Spec) (*Outcome, error) {
	lock, err := e.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	out, changed, err := e.up(ctx, s)
	if err != nil && !changed {
		// The lock made the state directory: it goes if nothing else is there.
		err = errors.Join(err, e.finishIfLast(ctx))
	}
	if changed {
		err = errors.Join(err, e.Store.Changed())
	}
	if out != nil {
		err = errors.Join(err, e.updateKeeper(ctx, !out.State.NoHeal || len(heldPorts(out.State)) > 0, out.portsChanged))
	}
	return out, err
}

// up does Up's work and reports whether it changed anything.
func (e *Engine) up(ctx context.Context, s *specs.Spec) (*Outcome, bool, error) {
	recorded, err := e.Store.Load(s.Name)
	if errors.Is(err, state.ErrNoRecord) {
		recorded = nil
	} else if err != nil {
		return nil, false, err
	}
	// The other projects' records, where they matter, are decoded while
	// the host is read: with thousands of namespaces that is megabytes of
	// JSON.
	var others []*state.Record
	var othersErr error
	var wg sync.WaitGroup
	readOthers := othersMatter(s, recorded)
	if readOthers {
		wg.Go(func() { others, othersErr = e.Store.Others(s.Name) })
	}
	defer wg.Wait()
	q := host.Query{Published: newPorts(s, recorded), Projects: []string{s.Name}}
	inSpec := map[string]bool{}
	for _, ns := range s.Namespaces {
		q.Namespaces = append(q.Namespaces, ns.Name)
		q.Links = append(q.Links, ns.HostLink)
		inSpec[ns.Name] = true
	}
	if recorded != nil {
		for _, ns := range recorded.Namespaces {
			if !inSpec[ns.Name] { // one the spec no longer has
				q.Namespaces = append(q.Namespaces, ns.Name)
				q.Links = append(q.Links, ns.Link)
			}
		}
	}
	grants := e.Store.Grants(q.Namespaces)
	for _, ns := range q.Namespaces {
		if _, ok := grants[ns]; ok {
			q.Cookies = append(q.Cookies, ns)
		}
	}
	q.Cgroups = cgroupNames(recorded)
	for _, ns := range s.Namespaces {
		if ns.Limited() && !slices.Contains(q.Cgroups, ns.Name) {
			q.Cgroups = append(q.Cgroups, ns.Name)
		}
	}
	shapes := specShaping(s)
	q.Shaped = ShapedLinks(recorded, shapes)
	q.QdiscKinds = newQdiscKinds(shapes, recorded)
	obs, err := e.Observe(ctx, q)
	wg.Wait()
	if err := errors.Join(err, othersErr); err != nil {
		return nil, false, err
	}
	obs.Grants = grants
	if k, ok := e.Keeper.Running(e.Store.Dir); ok && len(obs.Listeners) > 0 {
		// The keeper's sockets hold ports projects publish, or published
		// a moment ago: nsrun's own, which the records judge.
		obs.Listeners = slices.DeleteFunc(obs.Listeners, func(l forward.Listener) bool { return l.PID == k.PID })
	}
	want, err := Desire(s, recorded, others, foreign(obs, others), obs.MachineID)
	if err == nil && !readOthers && !sameAddresses(want, recorded) {
		// A recorded address did not hold (an older record's, outside its
		// pool): the new one is chosen among the others'.
		if others, err = e.Store.Others(s.Name); err != nil {
			return nil, false, err
		}
		want, err = Desire(s, recorded, others, foreign(obs, others), obs.MachineID)
	}
	if err != nil {
		return nil, false, &PreflightError{err}
	}
	at, err := forward.Place(recordedBackend(recorded), e.choice(), obs.Backends, obs.Tables)
	if err != nil {
		return nil, false, &PreflightError{err}
	}
	if at.Backend != recordedBackend(recorded) {
		// A backend new to the project must work before anything changes.
		if err := e.Publisher.Probe(ctx, at.Backend); err != nil {
			if e.choice() == forward.Auto && !at.Backend.IsIPTables() {
				err = fmt.Errorf("no iptables is installed, and %w; install iptables (apt-get install iptables) or make nftables work", err)
			}
			return nil, false, &PreflightError{fmt.Errorf("firewall %s does not work here: %w", at.Backend, err)}
		}
	}
	want.Backend, want.Accepts, want.NoHeal = at.Backend, at.Accepts, e.NoHeal
	warnings := AssessHost(obs, []*state.Record{want}).Warnings()
	if loopback6(want, obs.Shortcuts) == Loopback6NotServed {
		warnings = append(warnings, "ports published on IPv6 are "+Loopback6NotServed)
	}
	if err := Preflight(want, recorded, others, obs); err != nil {
		return nil, false, &PreflightError{err}
	}
	var drift []Drift
	if recorded != nil {
		drift = e.report(recorded, others, obs).Drift
	}
	// Everything above read; all below changes, as decided here.
	c := decideUp(want, recorded, others, obs, drift)
	e.Store.UnmarkRemoving(s.Name)
	if c.upToDate() {
		return &Outcome{State: recorded, UpToDate: true, Warnings: warnings}, false, nil
	}
	if err := e.recordTables(ctx); err != nil {
		return nil, false, err
	}
	if c.Changed {
		// Record everything either side may hold before the first change,
		// so that a down after a crash finds it all.
		if err := e.Store.Save(state.Merge(recorded, c.Record)); err != nil {
			return nil, false, err
		}
	}
	ex := &executor{ctx: ctx, sys: e.System, pub: e.Publisher, store: e.Store, progress: e.Progress}
	if err := ex.run(c.Steps); err != nil {
		return nil, true, e.rollback(ex, err, s.Name, recorded)
	}
	if c.Changed {
		if err := e.Store.Save(c.Record); err != nil {
			return nil, true, err
		}
	}
	// The network is complete. Process failures leave it up for a look.
	out := &Outcome{State: c.Record, Warnings: warnings, portsChanged: !slices.Equal(heldPorts(recorded), heldPorts(c.Record))}
	return out, true, errors.Join(e.refreshNeighbours(recorded, c.Record), e.startProcesses(ctx, c.Record, c.Restart))
}

// upChange is what an up does, decided before its first change.
type upChange struct {
	Steps   []Step        // the changes to the host, in order
	Restart bool          // the processes restart (at the record's new generation)
	Record  *state.Record // the project's record after the up
	Changed bool          // Record differs from the one saved: it is saved
}

// upToDate reports an up with nothing to do.
func (c upChange) upToDate() bool { return len(c.Steps) == 0 && !c.Restart && !c.Changed }

// othersMatter reports whether an up of spec s needs the other projects'
// records: to choose addresses and check them, with the names and ports,
// against the others' for what the project's record does not hold yet
// (all of it for a new project), and to name the others' namespaces on
// the project's external networks. A spec whose namespaces, addresses,
// subnets and ports the record holds already, on no external network,
// needs none of them: every up checked its record against the others'
// and theirs against it, so nothing of theirs conflicts with it, and its
// automatic addresses are the recorded ones (Desire). Anything it cannot
// tell alike counts as new. Pure.
func othersMatter(s *specs.Spec, recorded *state.Record) bool {
	if recorded == nil || len(externalNetworks(recorded)) > 0 || s.IPv6 != recorded.IPv6 ||
		(s.SubnetSet && s.Subnet != recorded.Subnet) || (s.Subnet6Set && s.Subnet6 != recorded.Subnet6) {
		return true
	}
	had := recorded.ByName()
	for _, ns := range s.Namespaces {
		r := had[ns.Name]
		if r == nil || ns.HostLink != r.Link || ns.AutoAddress != r.AutoAddress || (!ns.AutoAddress && ns.Address != r.Address) ||
			ns.AutoAddress6 != r.AutoAddress6 || (!ns.AutoAddress6 && ns.Address6 != r.Address6) ||
			!slices.Equal(s.NetworkKeys(ns), r.Networks) || !slices.EqualFunc(ns.Ports, r.Ports, specs.Port.Same) {
			return true
		}
	}
	return false
}

// sameAddresses reports whether each of want's namespaces has the
// addresses recorded has for it. Pure.
func sameAddresses(want, recorded *state.Record) bool {
	had := recorded.ByName()
	for _, ns := range want.Namespaces {
		if r := had[ns.Name]; r == nil || r.Address != ns.Address || r.Address6 != ns.Address6 {
			return false
		}
	}
	return true
}

// decideUp decides an up from what it read: the record it wants (which
// it does not change), the one saved (nil before the first up), the host
// and the record's drift. Pure. The processes restart on the first up,
// when their definitions change, and when any of them is not running;
// each restart is a new generation of the record.
func decideUp(want, recorded *state.Record, others []*state.Record, obs host.Observed, drift []Drift) upChange {
	next := *want
	if recorded != nil {
		next.Generation = recorded.Generation
	}
	c := upChange{
		Steps:   PlanUp(&next, recorded, others, obs, drift),
		Restart: recorded == nil || processesChanged(recorded, &next) || hasKind(drift, DriftProcess),
		Record:  &next,
	}
	if c.Restart {
		next.Generation++
	}
	c.Changed = recorded == nil || !sameRecord(recorded, &next)
	return c
}

func (e *Engine) rollback(ex *executor, cause error, project string, recorded *state.Record) error {
	if rerr := ex.rollback(); rerr != nil {
		return fmt.Errorf("%w\nundoing the changes failed too: %v\nremove what is left with 'sudo nsrun down -p %s'", cause, rerr, project)
	}
	var err error
	if recorded == nil {
		err = errors.Join(e.Store.Remove(project), e.finishIfLast(context.WithoutCancel(ex.ctx)))
	} else {
		err = e.Store.Save(recorded)
	}
	if err != nil {
		return fmt.Errorf("%w\nthe changes were undone, but: %v", cause, err)
	}
	return fmt.Errorf("%w\nwhat this run created was removed", cause)
}

// Down stops a project's processes and removes everything recorded for
// it. Without a record it removes what is labelled as the project's. It
// reports whether there was anything to remove.
func (e *Engine) Down(ctx context.Context, project string) (bool, error) {
	lock, err := e.lock(ctx)
	if err != nil {
		return false, err
	}
	defer lock.Unlock()
	found, err := e.down(ctx, project)
	if found {
		err = errors.Join(err, e.Store.Changed())
	}
	return found, err
}

func (e *Engine) down(ctx context.Context, project string) (bool, error) {
	recorded, err := e.Store.Load(project)
	if errors.Is(err, state.ErrNoRecord) {
		// Nothing recorded (or only the start of a record, from an up
		// killed before it was written): sweep what is labelled.
		n, err := e.sweep(ctx, project)
		return n > 0, errors.Join(err, e.Store.RemoveUnrecorded(project), e.finishIfLast(ctx))
	}
	if err != nil {
		return false, err
	}
	ex := &executor{ctx: ctx, sys: e.System, pub: e.Publisher, store: e.Store, progress: e.Progress}
	// The supervisor first, so nothing is restarted while it all goes; the
	// namespaces' process lists catch whatever it leaves (say, after kill -9).
	if err := e.Store.MarkRemoving(project); err != nil {
		return false, err
	}
	zoned, err := e.System.ZonedLinks(ctx)
	if err != nil {
		zoned = hostLinks(recorded) // take them out all the same
	}
	e.warnHeld(namespaceNames(recorded))
	err = errors.Join(e.Supervision.Stop(e.Store.ProjectDir(project)), ex.runAll(PlanDown(recorded, zoned)))
	if err != nil {
		return true, fmt.Errorf("%w\nthe record is kept; run 'sudo nsrun down -p %s' again once the cause is fixed", err, project)
	}
	return true, errors.Join(e.Store.Remove(project), e.refreshNeighbours(recorded, nil), e.updateKeeper(ctx, false, true), e.finishIfLast(ctx))
}

// warnHeld says which of the namespaces about to be deleted other
// processes hold open, and by whom: those namespaces stay in the kernel
// after down, their links too until down removes them (after a wait).
func (e *Engine) warnHeld(names []string) {
	if e.Warn == nil {
		return
	}
	held := e.System.NamespaceHolders(names)
	for _, ns := range names {
		if hs := held[ns]; len(hs) > 0 {
			var who []string
			for _, h := range hs {
				who = append(who, h.String())
			}
			e.Warn(fmt.Sprintf("namespace %s is held open by %s: it stays in the kernel until they close it; down removes its name and its link (after waiting 5 s for the link to go by itself)",
				ns, strings.Join(who, ", ")))
		}
	}
}

// DownAll removes every recorded project, then every leftover that is
// recognisably nsrun's: labelled links with their namespaces, and chains.
func (e *Engine) DownAll(ctx context.Context) error {
	lock, err := e.lock(ctx)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	// Every supervisor first, recorded or not: one whose record was lost
	// would otherwise restart what is removed, and write its status back.
	if err := e.Supervision.StopAll(e.Store.Dir); err != nil {
		return err
	}
	projects, err := e.Store.Projects()
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range projects {
		if _, err := e.down(ctx, p); err != nil {
			// A corrupt record: sweep by label, then drop it.
			_, serr := e.sweep(ctx, p)
			errs = append(errs, serr, e.Store.Remove(p))
		}
	}
	_, err = e.sweep(ctx, "")
	errs = append(errs, err, e.Sweeper.SweepFirewall(ctx), e.updateKeeper(ctx, false, true), e.finishIfLast(ctx))
	return errors.Join(errs...)
}

// sweep removes the labelled links of a project ("" for every project),
// with their namespaces and processes, and the project's chains.
func (e *Engine) sweep(ctx context.Context, project string) (int, error) {
	links, err := e.Sweeper.LabelledLinks()
	if err != nil {
		return 0, err
	}
	var errs []error
	if project != "" {
		errs = append(errs, e.Supervision.Stop(e.Store.ProjectDir(project)))
	}
	var names, hosts []string
	for _, l := range links {
		if project == "" || l.Project == project {
			names, hosts = append(names, l.Namespace), append(hosts, l.Name)
		}
	}
	if len(names) > 0 {
		errs = append(errs, e.System.KillNamespaces(names))
		for _, ns := range names {
			errs = append(errs, e.System.DeleteNamespace(ns), e.System.RemoveEtc(ns))
		}
		errs = append(errs, e.System.LinksGone(hosts), e.System.UnbindZone(ctx, hosts))
	}
	// Cgroups are named by their namespace: those of the namespaces
	// swept, and with every project's, every one of nsrun's.
	var cgroups []string
	for _, ns := range e.Sweeper.CgroupNamespaces() {
		if project == "" || slices.Contains(names, ns) {
			cgroups = append(cgroups, ns)
		}
	}
	if len(cgroups) > 0 {
		errs = append(errs, e.System.RemoveCgroups(cgroups))
	}
	if project != "" {
		errs = append(errs, e.Publisher.Remove(ctx, project))
	}
	return len(names), errors.Join(errs...)
}

// updateKeeper runs the keeper while a project heals or publishes a port
// (keeps: the project just brought up does, without reading every record
// again), and stops it once none does. With hold, a keeper that was
// running is made to hold the ports the projects publish now, and this
// returns once it does: after down, a host process may bind them at once.
// A keeper it starts holds them from its start. The caller holds the lock.
func (e *Engine) updateKeeper(ctx context.Context, keeps, hold bool) error {
	dir := e.Store.Dir
	if !keeps && !e.Store.Heals() && !e.Store.Publishes() {
		return e.Keeper.Stop(dir)
	}
	_, running := e.Keeper.Running(dir)
	if err := e.Keeper.Start(ctx, dir); err != nil {
		return err
	}
	if running && hold {
		return e.Keeper.Hold(ctx, dir)
	}
	return nil
}

// heldPorts are the host ports a record publishes, which the keeper
// holds; none for no record.
func heldPorts(st *state.Record) []keeper.HeldPort {
	if st == nil {
		return nil
	}
	var ports []specs.Port
	for _, ns := range st.Namespaces {
		ports = append(ports, ns.Ports...)
	}
	return keeper.HeldPorts(ports)
}

// HostFirewall judges the host's firewalls with no project in mind.
func (e *Engine) HostFirewall(ctx context.Context) (HostReport, error) {
	obs, err := e.Observe(ctx, host.Query{})
	if err != nil {
		return HostReport{}, err
	}
	return AssessHost(obs, nil), nil
}

// finishIfLast stops the keeper, puts back the host settings nsrun
// changed and removes the state directory once no project is left.
func (e *Engine) finishIfLast(ctx context.Context) error {
	projects, err := e.Store.Projects()
	if err != nil || len(projects) > 0 {
		return err
	}
	if err := e.Keeper.Stop(e.Store.Dir); err != nil {
		return err
	}
	host, err := e.Store.LoadHost()
	if err != nil {
		return err
	}
	if host.IPForward != "" {
		if err := e.System.SetIPForward(host.IPForward); err != nil {
			return err
		}
	}
	// Forwarding off first: accept_ra=2 keeps the RA-learned routes until then.
	if host.IPv6Forward != "" {
		if err := e.System.SetSysctl(sysctl.IPv6Forward, host.IPv6Forward); err != nil {
			return err
		}
	}
	for _, l := range slices.Sorted(maps.Keys(host.AcceptRA)) {
		// A link gone since is no error: its setting went with it.
		if _, err := e.System.Sysctl(sysctl.Link6(l, "accept_ra")); err == nil {
			if err := e.System.SetSysctl(sysctl.Link6(l, "accept_ra"), host.AcceptRA[l]); err != nil {
				return err
			}
		}
	}
	if err := e.removeMadeTables(ctx, host.Tables); err != nil {
		return err
	}
	return e.Store.RemoveAll()
}

// recordTables notes, before the first change of the first project, the
// tables the firewalls' tools had made (iptables-nft makes a table the
// first time a rule goes in), so that the last down removes only those
// made since.
func (e *Engine) recordTables(ctx context.Context) error {
	host, err := e.Store.LoadHost()
	if err != nil || host.Tables != nil {
		return err
	}
	if host.Tables, err = e.Publisher.MadeTables(ctx); err != nil {
		return err
	}
	return e.Store.SaveHost(host)
}

// removeMadeTables removes the tables made since they were recorded
// (before: nil when nothing was) that hold nothing now.
func (e *Engine) removeMadeTables(ctx context.Context, before map[forward.Backend][]string) error {
	if before == nil {
		return nil
	}
	now, err := e.Publisher.MadeTables(ctx)
	if err != nil {
		return err
	}
	made := map[forward.Backend][]string{}
	for b, tables := range now {
		for _, t := range tables {
			if !slices.Contains(before[b], t) {
				made[b] = append(made[b], t)
			}
		}
	}
	return e.Publisher.RemoveEmptyTables(ctx, made)
}

// newPorts lists the ports a spec publishes that its namespace does not
// publish already (in the record): preflight looks for host sockets bound
// to those only (checkPorts), so the others are not read.
func newPorts(s *specs.Spec, recorded *state.Record) []specs.Port {
	var out []specs.Port
	byName := recorded.ByName()
	for _, ns := range s.Namespaces {
		var had []specs.Port
		if r := byName[ns.Name]; r != nil {
			had = r.Ports
		}
		for _, p := range ns.Ports {
			if !slices.ContainsFunc(had, p.Same) {
				out = append(out, p)
			}
		}
	}
	return out
}

func (e *Engine) choice() forward.Choice {
	if e.FirewallChoice == "" {
		return forward.Auto
	}
	return e.FirewallChoice
}

// recordedBackend is the backend a record names; "" for no record.
func recordedBackend(s *state.Record) forward.Backend {
	if s == nil {
		return ""
	}
	return s.Backend
}

// processesChanged reports whether two records run different processes,
// or the same ones with other ready checks (which the supervisor's plan
// does not hold). Namespaces that run nothing, and the order of processes,
// do not count.
func processesChanged(a, b *state.Record) bool {
	return !maps.Equal(processDefs(a), processDefs(b))
}

// cgroupNames lists the namespaces of a record that have a cgroup.
func cgroupNames(st *state.Record) []string {
	var out []string
	if st != nil {
		for _, ns := range st.Namespaces {
			if ns.Cgroup {
				out = append(out, ns.Name)
			}
		}
	}
	return out
}

// processDefs maps each process of a record (NS/PROC) to its definition.
func processDefs(s *state.Record) map[string]string {
	out := map[string]string{}
	for _, ns := range s.Namespaces {
		for _, r := range ns.Run {
			out[r.Key()] = fmt.Sprint(r.Hash(), r.ReadyTCP, r.ReadyTimeout)
		}
	}
	return out
}

// sameRecord reports whether writing one record over the other would
// change nothing (the generation included: the supervisor is told to run
// a new one, and waited for, only when the record has it).
func sameRecord(a, b *state.Record) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}
