// Package traffic is what the kernel counted for the projects: each
// published port's connections (the firewall backend's counter of its
// DNAT rule, and the loopback shortcut's) and the packets and bytes of
// those the host forwarded, each way (the counting table's counters),
// each namespace's traffic (its
// host-side link's statistics, one read for all links), and each
// process's restarts and health (its supervisor's status). Assemble puts
// them together, pure; Read gathers them from the host. nsrun metrics,
// status and top show the result.
package traffic

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/forward/shortcut"
	"github.com/nsrun/nsrun/internal/rtnl"
	"github.com/nsrun/nsrun/specs"
	"github.com/nsrun/nsrun/state"
)

// Sample is one reading of every project's counters.
type Sample struct {
	Ports      []Port
	Namespaces []Namespace
	Processes  []Process
}

// Port is one published port of a project's namespace.
type Port struct {
	Project, Namespace string
	Port               specs.Port
	// Connections is what the port's DNAT rule counted since it was made,
	// and the loopback shortcut for the connections it took from the host
	// to 127.0.0.1 or [::1] (a repaired rule or entry starts again from 0,
	// which Prometheus takes as a counter reset); Counted is false where
	// neither holds a counter for it.
	Connections uint64
	Counted     bool
	// In and Out are the packets and bytes of the port's connections that
	// the host forwarded (from other machines and from namespaces), into
	// the namespace and out of it; not those of connections from the host
	// itself, which never pass its forward hook. Measured is false where
	// the counting table holds no counter of them.
	In, Out  forward.Flow
	Measured bool
}

// Namespace is one namespace's link, as the host side counts it: In is
// what went into the namespace (the host side's transmit), Out what came
// out of it (its receive).
type Namespace struct {
	Project, Namespace, Link string
	Found                    bool // the link is there
	In, Out                  LinkCounts
}

// LinkCounts are one direction's counters of a link.
type LinkCounts struct {
	Bytes   uint64 `json:"bytes"`
	Packets uint64 `json:"packets"`
	Drops   uint64 `json:"drops"`
}

// LinkStats are a link's counters as the kernel keeps them, for the side
// that holds them.
type LinkStats = rtnl.Stats

// Process is one run entry of a project, as its supervisor reports it.
type Process struct {
	Project, Namespace, Name string
	Up                       bool // running
	Restarts, OOMKills       int
	Health                   string // healthy, unhealthy, starting; "" without a check or not running
}

// Sources are where Read finds the counters.
type Sources struct {
	// Counters read the firewall backends' counters, by backend.
	Counters map[forward.Backend]forward.Counter
	// Traffic reads the counting table's counters of the projects' ports;
	// nil: none.
	Traffic func(ctx context.Context, projects []forward.Project) (forward.Traffic, error)
	// Shortcut reads the loopback shortcut's entries and counters.
	Shortcut func() (shortcut.Table, error)
	// Links reads the statistics of the host's links, by name, in one read.
	Links func() (map[string]LinkStats, error)
	// Processes reports a project's processes as they are now (the
	// supervisor's status, checked against the running processes).
	Processes func(r *state.Record) []Process
}

// Read gathers the counters of the projects' records: one read of each
// backend the projects' rules are in, one of the counting table, one of
// the links, all at once (each waits on the kernel).
func Read(ctx context.Context, records []*state.Record, src Sources) (*Sample, error) {
	all := make([]forward.Project, 0, len(records))
	projects := map[forward.Backend][]forward.Project{}
	for _, r := range records {
		p := r.ForwardProject()
		all = append(all, p)
		if _, ok := src.Counters[r.Backend]; ok {
			projects[r.Backend] = append(projects[r.Backend], p)
		}
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		errs   []error
		counts = map[forward.Backend]forward.Counts{}
		flows  forward.Traffic
		sc     shortcut.Table
		links  map[string]LinkStats
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		errs = append(errs, err)
	}
	for b, ps := range projects {
		wg.Go(func() {
			got, err := src.Counters[b].Counts(ctx, ps)
			if err != nil {
				fail(fmt.Errorf("reading the counters of %s: %w", b, err))
			}
			mu.Lock()
			defer mu.Unlock()
			counts[b] = got
		})
	}
	if src.Traffic != nil {
		wg.Go(func() {
			var err error
			if flows, err = src.Traffic(ctx, all); err != nil {
				fail(err)
			}
		})
	}
	wg.Go(func() {
		var err error
		if sc, err = src.Shortcut(); err != nil {
			fail(err)
		}
	})
	wg.Go(func() {
		var err error
		if links, err = src.Links(); err != nil {
			fail(fmt.Errorf("reading the links' statistics: %w", err))
		}
	})
	procs := map[string][]Process{}
	for _, r := range records {
		procs[r.Project] = src.Processes(r)
	}
	wg.Wait()
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return Assemble(records, counts, flows, sc, links, procs), nil
}

// Assemble puts the counters together, project by project in the
// records' order; flows may be nil.
func Assemble(records []*state.Record, counts map[forward.Backend]forward.Counts, flows forward.Traffic, sc shortcut.Table, links map[string]LinkStats, procs map[string][]Process) *Sample {
	s := &Sample{}
	for _, r := range records {
		c := counts[r.Backend]
		fp := r.ForwardProject()
		for _, ns := range fp.Namespaces {
			for _, port := range ns.Ports {
				p := Port{Project: r.Project, Namespace: ns.Name, Port: port}
				if c != nil {
					if n, ok := c.Connections(r.Project, ns, port); ok {
						p.Connections, p.Counted = n, true
					}
				}
				if flows != nil {
					p.In, p.Out, p.Measured = flows.Traffic(r.Project, ns, port)
				}
				if n, ok := sc.Connections(port); ok {
					p.Connections, p.Counted = p.Connections+n, true
				}
				s.Ports = append(s.Ports, p)
			}
		}
		for _, ns := range r.Namespaces {
			n := Namespace{Project: r.Project, Namespace: ns.Name, Link: ns.Link}
			if st, ok := links[ns.Link]; ok {
				n.Found = true
				n.In = LinkCounts{st.TxBytes, st.TxPackets, st.TxDropped}
				n.Out = LinkCounts{st.RxBytes, st.RxPackets, st.RxDropped}
			}
			s.Namespaces = append(s.Namespaces, n)
		}
		s.Processes = append(s.Processes, procs[r.Project]...)
	}
	return s
}
