package project

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/specs"
	"github.com/nsrun/nsrun/veth"
)

// Sweeper finds and removes nsrun leftovers that no state records.
type Sweeper interface {
	LabelledLinks() ([]veth.Labelled, error)
	SweepFirewall(ctx context.Context) error
}

// Engine brings projects up and down under the state lock.
type Engine struct {
	Store       Store
	System      System
	Sweeper     Sweeper
	Supervision Supervision
	Observe     func(published []specs.Port) (Observed, error)
	Backend     forward.Backend
	Progress    func(Step) // called after each step; may be nil
	Waiting     func()     // called once when another nsrun holds the lock; may be nil
	// LockTimeout bounds the wait for another up or down; 0 means 5 minutes.
	LockTimeout time.Duration
	// ReadyWait bounds the wait for all ready checks together; 0: none
	// beyond each check's own timeout.
	ReadyWait time.Duration
}

// lock takes the state lock, waiting at most LockTimeout.
func (e *Engine) lock(ctx context.Context) (*Lock, error) {
	timeout := e.LockTimeout
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return e.Store.Lock(ctx, e.Waiting)
}

// PreflightError means up found a conflict before changing anything.
type PreflightError struct{ Err error }

func (e *PreflightError) Error() string {
	return e.Err.Error() + "\nnothing was changed"
}
func (e *PreflightError) Unwrap() error { return e.Err }

// Up creates or reconciles the project of a validated spec. On failure it
// removes what this call created and restores the previous record.
func (e *Engine) Up(ctx context.Context, s *specs.Spec) (*State, error) {
	lock, err := e.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	recorded, err := e.Store.Load(s.Name)
	if errors.Is(err, ErrNoState) {
		recorded = nil
	} else if err != nil {
		return nil, err
	}
	others, err := e.Store.Others(s.Name)
	if err != nil {
		return nil, err
	}
	obs, err := e.Observe(publishedPorts(s))
	if err != nil {
		return nil, err
	}
	want, err := Desire(s, recorded, others, obs.Foreign())
	if err != nil {
		return nil, &PreflightError{err}
	}
	want.Backend = e.Backend
	if recorded != nil {
		want.Generation = recorded.Generation
	}
	want.Generation++
	if err := Preflight(want, recorded, others, obs); err != nil {
		return nil, &PreflightError{err}
	}
	steps, err := PlanUp(want, recorded, obs)
	if err != nil {
		return nil, err
	}
	// Record everything either side may hold before the first change, so
	// that a down after a crash finds it all.
	if err := e.Store.Save(Merge(recorded, want)); err != nil {
		return nil, err
	}
	ex := &executor{ctx: ctx, sys: e.System, store: e.Store, progress: e.Progress}
	if err := ex.run(steps); err != nil {
		return nil, e.rollback(ex, err, s.Name, recorded)
	}
	if err := e.Store.Save(want); err != nil {
		return nil, err
	}
	// The network is complete. Process failures leave it up for a look.
	if err := e.startProcesses(ctx, want); err != nil {
		return nil, err
	}
	return want, nil
}

func (e *Engine) rollback(ex *executor, cause error, project string, recorded *State) error {
	if rerr := ex.rollback(); rerr != nil {
		return fmt.Errorf("%w\nundoing the changes failed too: %v\nremove what is left with 'sudo nsrun down -p %s'", cause, rerr, project)
	}
	var err error
	if recorded == nil {
		err = errors.Join(e.Store.Remove(project), e.finishIfLast())
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
	return e.down(ctx, project)
}

func (e *Engine) down(ctx context.Context, project string) (bool, error) {
	recorded, err := e.Store.Load(project)
	if errors.Is(err, ErrNoState) {
		// Nothing recorded (or only the start of a record, from an up
		// killed before it was written): sweep what is labelled.
		n, err := e.sweep(ctx, project)
		return n > 0, errors.Join(err, e.Store.Remove(project), e.finishIfLast())
	}
	if err != nil {
		return false, err
	}
	ex := &executor{ctx: ctx, sys: e.System, store: e.Store, progress: e.Progress}
	// The supervisor first, so nothing is restarted while it all goes; the
	// namespaces' process lists catch whatever it leaves (say, after kill -9).
	err = errors.Join(e.Supervision.Stop(e.Store.ProjectDir(project)), ex.runAll(PlanDown(recorded)))
	if err != nil {
		return true, fmt.Errorf("%w\nthe record is kept; run 'sudo nsrun down -p %s' again once the cause is fixed", err, project)
	}
	return true, errors.Join(e.Store.Remove(project), e.finishIfLast())
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
	errs = append(errs, err, e.Sweeper.SweepFirewall(ctx), e.finishIfLast())
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
	n := 0
	for _, l := range links {
		if project != "" && l.Project != project {
			continue
		}
		n++
		ns := l.Namespace
		errs = append(errs, e.System.KillNamespace(ns), e.System.DeleteNamespace(ns), e.System.RemoveEtc(ns), e.System.LinkGone(l.Name))
	}
	if project != "" {
		errs = append(errs, e.System.RemoveForwards(ctx, project))
	}
	return n, errors.Join(errs...)
}

// finishIfLast puts back the host settings nsrun changed and removes the
// state directory once no project is left.
func (e *Engine) finishIfLast() error {
	projects, err := e.Store.Projects()
	if err != nil || len(projects) > 0 {
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
	return e.Store.RemoveAll()
}

// publishedPorts lists every port a spec publishes.
func publishedPorts(s *specs.Spec) []specs.Port {
	var out []specs.Port
	for _, ns := range s.Namespaces {
		out = append(out, ns.Ports...)
	}
	return out
}
