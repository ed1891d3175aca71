package project

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/nsrun/nsrun/state"
	"github.com/nsrun/nsrun/supervise"
)

// ProcessError is a process that failed to start or to become ready. The
// network stays up so that the user can look.
type ProcessError struct {
	Project, Namespace, Process string
	Reason                      string
	LogPath                     string
	Tail                        []string
}

func (e *ProcessError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "process %s/%s %s", e.Namespace, e.Process, e.Reason)
	if len(e.Tail) > 0 {
		fmt.Fprintf(&b, "\nlast lines of its log (%s):", e.LogPath)
		for _, l := range e.Tail {
			b.WriteString("\n  | " + l)
		}
	} else {
		fmt.Fprintf(&b, "\nits log (%s) is empty", e.LogPath)
	}
	fmt.Fprintf(&b, "\nthe network is up: look with 'nsrun logs -p %s %s/%s'; remove it all with 'sudo nsrun down -p %s'",
		e.Project, e.Namespace, e.Process, e.Project)
	return b.String()
}

// startProcesses hands the processes to the supervisor and waits for every
// ready check; without restart (the processes did not change and run) it
// has nothing to do.
func (e *Engine) startProcesses(ctx context.Context, st *state.Record, restart bool) error {
	if !restart {
		return nil
	}
	dir := e.Store.ProjectDir(st.Project)
	plan := st.Plan()
	if e.ReadyWait > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, e.ReadyWait)
		defer cancel()
	}
	if err := e.Supervision.Apply(ctx, dir, plan); err != nil {
		return err
	}
	if len(plan.Processes) > 0 && e.Progress != nil {
		e.Progress(Step{Op: OpStarted, Project: st.Project})
	}
	return e.waitAllReady(ctx, dir, st)
}

// readyWorkers bounds the ready checks run at once.
const readyWorkers = 16

// waitAllReady waits for every ready check of the record, side by side
// (each in its own time, up to readyWorkers at once), reporting each as
// it passes; the first failure ends the wait and is returned.
func (e *Engine) waitAllReady(ctx context.Context, dir string, st *state.Record) error {
	type check struct {
		ns *state.Namespace
		r  state.Process
	}
	var checks []check
	for _, ns := range st.Namespaces {
		for _, r := range ns.Run {
			if r.ReadyTCP != 0 {
				checks = append(checks, check{ns, r})
			}
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		check
		err error
	}
	results := make(chan result, len(checks))
	sem := make(chan struct{}, readyWorkers)
	for _, c := range checks {
		go func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				results <- result{c, ctx.Err()}
				return
			}
			defer func() { <-sem }()
			results <- result{c, e.waitReady(ctx, dir, st.Project, c.ns, c.r)}
		}()
	}
	var first error
	for range checks {
		res := <-results
		switch {
		case res.err != nil && first == nil:
			first = res.err
			cancel() // the others stop: their results are not waited for in vain
		case res.err == nil && e.Progress != nil:
			e.Progress(Step{Op: OpReady, Namespace: res.ns.Name, Process: res.r.Name})
		}
	}
	return first
}

// waitReady waits until the process's port accepts a connection inside its
// namespace, failing early when the process has exited for good.
func (e *Engine) waitReady(ctx context.Context, dir, project string, ns *state.Namespace, r state.Process) error {
	fail := func(reason string) error {
		logPath := supervise.LogPath(dir, ns.Name, r.Name)
		return &ProcessError{Project: project, Namespace: ns.Name, Process: r.Name, Reason: reason, LogPath: logPath, Tail: supervise.Tail(logPath, 10)}
	}
	deadline := time.Now().Add(r.ReadyTimeout)
	addrs := []netip.Addr{ns.Address.Addr(), netip.MustParseAddr("127.0.0.1")}
	// Most servers listen within milliseconds: look soon, then less often.
	pause := 5 * time.Millisecond
	for {
		if e.Supervision.Dial(ns.Name, addrs, r.ReadyTCP) == nil {
			return nil
		}
		if st, err := supervise.ReadStatus(dir); err == nil {
			for _, p := range st.Processes {
				if p.Namespace == ns.Name && p.Name == r.Name && p.State == supervise.Exited {
					return fail(fmt.Sprintf("exited with status %d before port %d accepted a connection", p.ExitCode, r.ReadyTCP))
				}
			}
		}
		if time.Now().After(deadline) {
			return fail(fmt.Sprintf("is not ready: port %d did not accept a connection inside the namespace within %s", r.ReadyTCP, r.ReadyTimeout))
		}
		select {
		case <-ctx.Done():
			return fail(fmt.Sprintf("is not ready: gave up waiting for port %d (%v)", r.ReadyTCP, ctx.Err()))
		case <-time.After(pause):
		}
		pause = min(2*pause, 100*time.Millisecond)
	}
}
