package project

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/nsrun/nsrun/specs"
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
			if r.ReadyTCP != 0 || r.Health != nil {
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

// waitReady waits until the process is ready: its ready port accepts a
// connection inside its namespace or, without one, its health check
// passed. It fails early when the process has exited for good or turned
// unhealthy. The time allowed counts from when the process stops waiting
// for its dependencies (each of which has its own).
func (e *Engine) waitReady(ctx context.Context, dir, project string, ns *state.Namespace, r state.Process) error {
	fail := func(reason string) error {
		logPath := supervise.LogPath(dir, ns.Name, r.Name)
		return &ProcessError{Project: project, Namespace: ns.Name, Process: r.Name, Reason: reason, LogPath: logPath, Tail: supervise.Tail(logPath, 10)}
	}
	timeout, what := r.ReadyTimeout, fmt.Sprintf("port %d did not accept a connection inside the namespace", r.ReadyTCP)
	if r.ReadyTCP == 0 {
		timeout, what = healthWait(r.Health), "its health check did not pass"
	}
	deadline := time.Now().Add(timeout)
	addrs := []netip.Addr{ns.Address.Addr(), netip.MustParseAddr("127.0.0.1")}
	// Most servers listen within milliseconds: look soon, then less often.
	pause := 5 * time.Millisecond
	for {
		p, _ := processStatus(dir, ns.Name, r.Name)
		switch {
		case p.State == supervise.Exited && r.ReadyTCP != 0:
			return fail(fmt.Sprintf("exited with status %d before port %d accepted a connection", p.ExitCode, r.ReadyTCP))
		case p.State == supervise.Exited:
			return fail(fmt.Sprintf("exited with status %d before its health check passed", p.ExitCode))
		case r.ReadyTCP != 0 && e.Supervision.Dial(ns.Name, addrs, r.ReadyTCP) == nil:
			return nil
		case r.ReadyTCP != 0:
		case p.Health != nil && p.Health.State == supervise.HealthHealthy:
			return nil
		case p.Health != nil && p.Health.State == supervise.HealthUnhealthy:
			return fail(fmt.Sprintf("is unhealthy: its health check failed %d times; the last said: %s", p.Health.Failures, strconv.Quote(p.Health.Output)))
		}
		if p.State == supervise.Waiting {
			deadline = time.Now().Add(timeout)
		}
		if time.Now().After(deadline) {
			reason := fmt.Sprintf("is not ready: %s within %s", what, timeout)
			if p.Health != nil && p.Health.Output != "" && r.ReadyTCP == 0 {
				reason += "; the last check said: " + strconv.Quote(p.Health.Output)
			}
			return fail(reason)
		}
		select {
		case <-ctx.Done():
			return fail(fmt.Sprintf("is not ready: gave up waiting (%v)", ctx.Err()))
		case <-time.After(pause):
		}
		pause = min(2*pause, 100*time.Millisecond)
	}
}

// healthWait is how long up waits for the first healthy result of a
// process without a ready port: its start period and a check's worth of
// failures, and at least the ready checks' default.
func healthWait(h *supervise.Health) time.Duration {
	return max(specs.DefaultReadyTimeout, h.StartPeriod+time.Duration(h.Retries+1)*(h.Interval+h.Timeout))
}

// processStatus is what the supervisor of dir last said of process
// NS/NAME; the zero status when it has said nothing of it.
func processStatus(dir, ns, name string) (supervise.ProcessStatus, bool) {
	st, err := supervise.ReadStatus(dir)
	if err != nil {
		return supervise.ProcessStatus{}, false
	}
	for _, p := range st.Processes {
		if p.Namespace == ns && p.Name == name {
			return p, true
		}
	}
	return supervise.ProcessStatus{}, false
}
