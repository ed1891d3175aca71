package project

import (
	"context"
	"fmt"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/netns"
	"github.com/nsrun/nsrun/supervise"
	"github.com/nsrun/nsrun/veth"
)

// Drift reports how the host differs from a project's record, one line per
// difference: namespaces, links, addresses, routes, rules and processes.
// A following up repairs all of it.
func (k Kernel) Drift(ctx context.Context, st *State, sup supervise.Status) ([]string, error) {
	var out []string
	for _, ns := range st.Namespaces {
		if ok, _ := netns.Exists(ns.Name); !ok {
			out = append(out, fmt.Sprintf("namespace %s is missing", ns.Name))
			continue
		}
		out = append(out, veth.Check(ns.Pair(st.Project))...)
	}
	fw := st.Firewall()
	snap, err := k.Firewall.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	out = append(out, forward.Drift(snap, fw)...)
	return append(out, processDrift(st, sup)...), nil
}

// processDrift reports the supervisor or processes that are not running.
func processDrift(st *State, sup supervise.Status) []string {
	plan := st.Plan()
	if len(plan.Processes) == 0 {
		return nil
	}
	if sup.PID == 0 || !netns.Alive(netns.Process{PID: sup.PID, StartTime: sup.StartTime}) {
		return []string{"the supervisor is not running"}
	}
	seen := map[string]supervise.ProcessStatus{}
	for _, p := range sup.Processes {
		seen[p.Key()] = p
	}
	var out []string
	for _, p := range plan.Processes {
		s, ok := seen[p.Key()]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("process %s is not started", p.Key()))
		case s.State == supervise.Running && !netns.Alive(netns.Process{PID: s.PID, StartTime: s.StartTime}):
			out = append(out, fmt.Sprintf("process %s (pid %d) is gone", p.Key(), s.PID))
		case s.State != supervise.Running:
			out = append(out, fmt.Sprintf("process %s is %s (last exit status %d)", p.Key(), s.State, s.ExitCode))
		}
	}
	return out
}
