package project

import (
	"context"
	"fmt"
	"time"

	"github.com/nsrun/nsrun/cgroup"
	"github.com/nsrun/nsrun/forward/shortcut"
	"github.com/nsrun/nsrun/host"
	"github.com/nsrun/nsrun/internal/proc"
	"github.com/nsrun/nsrun/internal/rtnl"
	"github.com/nsrun/nsrun/state"
	"github.com/nsrun/nsrun/supervise"
)

// Report is what nsrun knows of a project: its record, its supervisor and
// processes as they are now, and every way the host differs from the
// record. status renders it, up acts on its drift, and an up whose report
// shows none, for an unchanged spec, changes nothing.
type Report struct {
	Project    string
	State      *state.Record // nil when the record cannot be read
	Err        error         // why the record cannot be read
	Supervisor *ProcessReport
	Processes  []ProcessReport
	Drift      []Drift
	Heal       state.HealStatus // the keeper's repairs of the project
	// Host is the host's firewalls, judged for the projects reported on.
	Host HostReport
	// Usage is what each namespace with a cgroup uses now.
	Usage map[string]cgroup.Usage
	// LinkStats are the counters of the project's host-side links, by
	// name, and Shortcuts the loopback shortcut's entries and counters, as
	// this read saw them: status shows traffic without reading them again.
	LinkStats map[string]rtnl.Stats
	Shortcuts shortcut.Table
	// Loopback6 says, for a project with TCP ports published on IPv6,
	// whether the host reaches them at [::1] (only the loopback shortcut
	// can serve that); "" for a project without.
	Loopback6 string
}

// Loopback6NotServed is what up and status say where the kernel cannot
// run the loopback shortcut's programs.
const Loopback6NotServed = "not served: this kernel cannot run the loopback shortcut's cgroup programs, and nothing else can serve [::1] (127.0.0.1 and every other address are served)"

// loopback6 says whether a project's IPv6 ports are served at [::1].
func loopback6(st *state.Record, t shortcut.Table) string {
	switch {
	case !shortcut.Serves6(st.ForwardProject()):
		return ""
	case t.Supported:
		return "served by the loopback shortcut"
	}
	return Loopback6NotServed
}

// ProcessReport is one process, or the supervisor, as it is now.
type ProcessReport struct {
	Name string // NS/PROC, or "supervisor"
	// State is the supervisor's word (starting, running, backoff, exited,
	// stopped), or: "not started" (the supervisor does not run it),
	// "gone" (recorded as running, but no such process), "unsupervised"
	// (running, but its supervisor is gone).
	State     string
	PID       int
	Restarts  int
	StartedAt time.Time // when it started, if it runs
	ExitCode  int       // of its last exit
	ExitCause string    // "killed: out of memory (limit 256M)", where the exit status cannot say
	OOMKills  int       // its exits the OOM killer caused
	// Health is what its health check found while it runs; nil without
	// a check or while it does not run.
	Health *supervise.HealthStatus
	// Waiting says what a process held back by depends_on waits for;
	// Failing lists its dependencies that do not run or are unhealthy
	// once it runs (it is not restarted for them, as in compose).
	Waiting string
	Failing []string
}

// Status reports on one project. It only reads, so it takes no lock.
func (e *Engine) Status(ctx context.Context, project string) (*Report, error) {
	st, err := e.Store.Load(project)
	if err != nil {
		return nil, err
	}
	obs, err := e.Observe(ctx, host.Query{Namespaces: namespaceNames(st), Links: hostLinks(st), Cgroups: cgroupNames(st), Usage: true, Shaped: ShapedLinks(st), Projects: []string{st.Project}})
	if err != nil {
		return nil, err
	}
	r := e.report(st, e.neighbourRecords(st), obs)
	r.Host = AssessHost(obs, []*state.Record{st})
	return r, nil
}

// StatusAll reports on every project, reading the host once for all. A
// project whose record cannot be read has a report with Err set.
func (e *Engine) StatusAll(ctx context.Context) ([]*Report, error) {
	names, err := e.Store.Projects()
	if err != nil {
		return nil, err
	}
	out := make([]*Report, len(names))
	q := host.Query{Usage: true}
	for i, name := range names {
		st, err := e.Store.Load(name)
		out[i] = &Report{Project: name, State: st, Err: err}
		if err == nil {
			q.Namespaces = append(q.Namespaces, namespaceNames(st)...)
			q.Links = append(q.Links, hostLinks(st)...)
			q.Cgroups = append(q.Cgroups, cgroupNames(st)...)
			q.Shaped = append(q.Shaped, ShapedLinks(st)...)
		}
	}
	obs, err := e.Observe(ctx, q)
	if err != nil {
		return nil, err
	}
	var states []*state.Record
	for _, r := range out {
		if r.Err == nil {
			states = append(states, r.State)
		}
	}
	for i, r := range out {
		if r.Err == nil {
			out[i] = e.report(r.State, states, obs)
		}
	}
	host := AssessHost(obs, states)
	for _, r := range out {
		r.Host = host
	}
	return out, nil
}

// report puts together what a record, the other projects' records and an
// observation say.
func (e *Engine) report(st *state.Record, others []*state.Record, obs host.Observed) *Report {
	sup, _ := e.Supervision.Status(e.Store.ProjectDir(st.Project))
	r := &Report{Project: st.Project, State: st, Heal: e.Store.Repairs(st.Project)}
	r.Supervisor, r.Processes = ProcessReports(st, sup)
	r.Drift = append(NetworkDrift(st, others, obs), processDrift(st, r)...)
	r.Loopback6 = loopback6(st, obs.Shortcuts)
	r.Shortcuts = obs.Shortcuts
	r.LinkStats = map[string]rtnl.Stats{}
	for _, name := range hostLinks(st) {
		if l, ok := obs.Links[name]; ok && l.Stats != nil {
			r.LinkStats[name] = *l.Stats
		}
	}
	for _, ns := range cgroupNames(st) {
		if u, ok := obs.CgroupUsage[ns]; ok {
			if r.Usage == nil {
				r.Usage = map[string]cgroup.Usage{}
			}
			r.Usage[ns] = u
		}
	}
	return r
}

// neighbourRecords are the other projects' records when the project is on
// an external network (its hosts files name their namespaces there); none
// otherwise, without reading them.
func (e *Engine) neighbourRecords(st *state.Record) []*state.Record {
	if len(externalNetworks(st)) == 0 {
		return nil
	}
	others, _ := e.Store.Others(st.Project)
	return others
}

// ProcessReports tells how the supervisor and each recorded process are,
// from the supervisor's status and the processes' liveness.
func ProcessReports(st *state.Record, sup supervise.Status) (*ProcessReport, []ProcessReport) {
	var supervisor *ProcessReport
	supAlive := sup.PID != 0 && proc.Alive(proc.Process{PID: sup.PID, StartTime: sup.StartTime})
	if sup.PID != 0 {
		state := "running"
		if !supAlive {
			state = "gone"
		}
		supervisor = &ProcessReport{Name: "supervisor", State: state, PID: sup.PID}
	}
	seen := map[string]supervise.ProcessStatus{}
	for _, p := range sup.Processes {
		seen[p.Key()] = p
	}
	out := []ProcessReport{}
	for _, r := range st.Plan().Processes {
		p, ok := seen[r.Key()]
		pr := ProcessReport{Name: r.Key(), State: "not started"}
		if ok {
			pr = ProcessReport{Name: r.Key(), State: p.State, PID: p.PID, Restarts: p.Restarts, ExitCode: p.ExitCode, ExitCause: p.ExitCause, OOMKills: p.OOMKills,
				Health: p.Health, Waiting: p.Waiting}
			if p.State == supervise.Running {
				for _, d := range r.DependsOn {
					if dep := seen[d.Key]; dep.State != supervise.Running {
						pr.Failing = append(pr.Failing, fmt.Sprintf("%s is %s", d.Key, orNone(dep.State, "not started")))
					} else if dep.Health != nil && dep.Health.State == supervise.HealthUnhealthy {
						pr.Failing = append(pr.Failing, d.Key+" is unhealthy")
					}
				}
			}
			if p.State == supervise.Running {
				switch {
				case !proc.Alive(proc.Process{PID: p.PID, StartTime: p.StartTime}):
					pr.State = "gone"
				case !supAlive:
					pr.State, pr.StartedAt = "unsupervised", p.StartedAt
				default:
					pr.StartedAt = p.StartedAt
				}
			}
			if pr.State != supervise.Running {
				pr.Health = nil // what its checks found while it ran, or another supervisor's
			}
		}
		out = append(out, pr)
	}
	return supervisor, out
}

// orNone is s, or none when s is empty.
func orNone(s, none string) string {
	if s == "" {
		return none
	}
	return s
}

func namespaceNames(st *state.Record) []string {
	out := make([]string, len(st.Namespaces))
	for i, ns := range st.Namespaces {
		out[i] = ns.Name
	}
	return out
}
