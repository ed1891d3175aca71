package project

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/specs"
	"github.com/nsrun/nsrun/veth"
)

// System is the thin layer that touches the kernel. Every method is
// idempotent: creating what exists and removing what is gone succeed.
type System interface {
	IPForward() (string, error)
	SetIPForward(value string) error
	CreateNamespace(name string) error
	DeleteNamespace(name string) error
	KillNamespace(name string) error
	EnsureLink(p veth.Pair) error
	DeleteLink(name string) error
	// LinkGone waits a bounded time for a link whose namespace was deleted
	// to go with it, and deletes it if it stays.
	LinkGone(name string) error
	ApplyForwards(ctx context.Context, p forward.Project) error
	RemoveForwards(ctx context.Context, project string) error
	FlushUDP(ports []specs.PortRange) error
	WriteEtc(ns string, files map[string]string) error
	RemoveEtc(ns string) error
}

// executor runs steps, remembering how to undo the ones that created
// something.
type executor struct {
	ctx      context.Context
	sys      System
	store    Store
	progress func(Step)
	mu       sync.Mutex // guards undo while steps run in parallel
	undo     []func() error
}

// stage groups the ops whose steps are independent of each other, so that
// a run of steps of one stage goes to several workers at once: each
// namespace's links and files, and the firewall, once the namespaces exist.
// Steps of other ops run alone.
var stage = map[Op]int{
	OpCreateNamespace: 1,
	OpLink:            2, OpEtc: 2, OpForwards: 2,
	OpKill:            3,
	OpDeleteNamespace: 4, OpRemoveEtc: 4,
	OpLinkGone: 5,
}

// workers bounds how many steps run at once.
const workers = 8

// run runs the steps in order, stopping at the first failure.
func (e *executor) run(steps []Step) error {
	for _, b := range batches(steps) {
		if errs := e.batch(b); len(errs) > 0 {
			return errs[0]
		}
	}
	return nil
}

// runAll runs every step, going on after failures, and reports them all:
// down removes as much as it can.
func (e *executor) runAll(steps []Step) error {
	var errs []error
	for _, b := range batches(steps) {
		errs = append(errs, e.batch(b)...)
	}
	return errors.Join(errs...)
}

// batches splits steps into runs of one stage, and single steps.
func batches(steps []Step) [][]Step {
	var out [][]Step
	for len(steps) > 0 {
		n := 1
		for s := stage[steps[0].Op]; s != 0 && n < len(steps) && stage[steps[n].Op] == s; {
			n++
		}
		out = append(out, steps[:n])
		steps = steps[n:]
	}
	return out
}

// batch runs steps of one op on up to workers goroutines and returns their
// failures in step order, once all have ended; it reports progress for the
// steps that succeeded.
func (e *executor) batch(steps []Step) []error {
	results := make([]error, len(steps))
	sem := make(chan struct{}, workers)
	var wg sync.WaitGroup
	for i, s := range steps {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			results[i] = e.step(s)
		}()
	}
	wg.Wait()
	var errs []error
	for i, s := range steps {
		if results[i] != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.Op, results[i]))
		} else if e.progress != nil {
			e.progress(s)
		}
	}
	return errs
}

func (e *executor) onUndo(f func() error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.undo = append(e.undo, f)
}

// rollback undoes, newest first, what run created; it returns what it
// could not undo. It runs to the end even when the run was interrupted
// (Ctrl-C cancels the context of the run, not of its undoing).
func (e *executor) rollback() error {
	e.ctx = context.WithoutCancel(e.ctx)
	var errs []error
	for i := len(e.undo) - 1; i >= 0; i-- {
		errs = append(errs, e.undo[i]())
	}
	e.undo = nil
	return errors.Join(errs...)
}

func (e *executor) step(s Step) error {
	switch s.Op {
	case OpIPForward:
		return e.ipForward()
	case OpCreateNamespace:
		if err := e.sys.CreateNamespace(s.Namespace); err != nil {
			return err
		}
		e.onUndo(func() error {
			return errors.Join(e.sys.KillNamespace(s.Namespace), e.sys.DeleteNamespace(s.Namespace))
		})
	case OpLink:
		if s.Created {
			e.onUndo(func() error { return e.sys.DeleteLink(s.Pair.Host) })
		}
		return e.sys.EnsureLink(s.Pair)
	case OpForwards:
		e.onUndo(func() error {
			if s.Previous == nil {
				return e.sys.RemoveForwards(e.ctx, s.Firewall.Name)
			}
			return e.sys.ApplyForwards(e.ctx, *s.Previous)
		})
		return e.sys.ApplyForwards(e.ctx, s.Firewall)
	case OpFlushUDP:
		return e.sys.FlushUDP(s.Ports)
	case OpKill:
		return e.sys.KillNamespace(s.Namespace)
	case OpDeleteLink:
		return e.sys.DeleteLink(s.Link)
	case OpLinkGone:
		return e.sys.LinkGone(s.Link)
	case OpDeleteNamespace:
		return e.sys.DeleteNamespace(s.Namespace)
	case OpRemoveForwards:
		return e.sys.RemoveForwards(e.ctx, s.Project)
	case OpEtc:
		if s.Created {
			e.onUndo(func() error { return e.sys.RemoveEtc(s.Namespace) })
		}
		return e.sys.WriteEtc(s.Namespace, s.Files)
	case OpRemoveEtc:
		return e.sys.RemoveEtc(s.Namespace)
	default:
		return fmt.Errorf("unknown step %q", s.Op)
	}
	return nil
}

// ipForward turns forwarding on, first recording the old value so the
// last down can put it back.
func (e *executor) ipForward() error {
	old, err := e.sys.IPForward()
	if err != nil || old == "1" {
		return err
	}
	host, err := e.store.LoadHost()
	if err != nil {
		return err
	}
	if host.IPForward == "" {
		host.IPForward = old
		if err := e.store.SaveHost(host); err != nil {
			return err
		}
	}
	return e.sys.SetIPForward("1")
}
