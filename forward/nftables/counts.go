package nftables

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/specs"

	gnft "github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// Counts are what each named counter of a table counted, by its name:
// in nsrun's table (forward.Counts) a publication's counter of its
// chain's name counts its connections in packets; in the counting table
// (forward.Traffic) those of wayCounter count each way of its traffic.
type Counts map[string]forward.Flow

// Connections returns the count of the port's publication.
func (c Counts) Connections(project string, ns forward.Namespace, port specs.Port) (uint64, bool) {
	chain, ok := chainOf(project, ns, port)
	n, found := c[chain]
	return n.Packets, ok && found
}

// Traffic returns the counts of each way of the port's connections.
func (c Counts) Traffic(project string, ns forward.Namespace, port specs.Port) (in, out forward.Flow, ok bool) {
	chain, ok := chainOf(project, ns, port)
	in, okIn := c[wayCounter(chain, wayIn)]
	out, okOut := c[wayCounter(chain, wayOut)]
	return in, out, ok && okIn && okOut
}

// chainOf names the chain of the port's publication; false when no rule
// DNATs the port.
func chainOf(project string, ns forward.Namespace, port specs.Port) (string, bool) {
	to, ok := forward.DNATTo(ns, port)
	if !ok {
		return "", false
	}
	return publicationOf(project, ns.Name, to.String(), port).chain, true
}

// Counts reads the named counters of the projects' publications in
// nsrun's table; every one when projects is nil. None when the table is
// not there.
func (f *Firewall) Counts(ctx context.Context, projects []forward.Project) (forward.Counts, error) {
	c, err := f.run.counters(ctx, counterNames(projects, func(p forward.Project) (names []string) {
		_, pubs := render(p)
		for _, pub := range pubs {
			if pub.counter != "" {
				names = append(names, pub.counter)
			}
		}
		return names
	}))
	if err != nil {
		return nil, fmt.Errorf("reading the counters of table %s %s: %w", Family, Table, err)
	}
	return Counts(c), nil
}

// counterNames lists the counters that of names for each project; nil
// (every counter) for projects nil.
func counterNames(projects []forward.Project, of func(forward.Project) []string) []string {
	if projects == nil {
		return nil
	}
	names := []string{}
	for _, p := range projects {
		names = append(names, of(p)...)
	}
	return names
}

// counters reads the table's named counters, in this process (nft list
// counters takes 27 ms whatever the table holds: it reads much of the
// ruleset first): those named by name (getCounters), every one (names
// nil) in one netlink dump of the table's objects.
func (p *program) counters(ctx context.Context, names []string) (map[string]forward.Flow, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if names != nil {
		return getCounters(p.tableName(), names)
	}
	conn, err := gnft.New()
	if err != nil {
		return nil, err
	}
	objs, err := conn.GetObjects(&gnft.Table{Name: p.tableName(), Family: gnft.TableFamilyINet})
	if errors.Is(err, unix.ENOENT) {
		return map[string]forward.Flow{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := make(map[string]forward.Flow, len(objs))
	for _, o := range objs {
		if c, ok := o.(*gnft.CounterObj); ok {
			out[c.Name] = forward.Flow{Packets: c.Packets, Bytes: c.Bytes}
		}
	}
	return out, nil
}

// counters of the fake: it keeps the counters but does not count.
func (f fake) counters(ctx context.Context, names []string) (map[string]forward.Flow, error) {
	f.f.RLock()
	defer f.f.RUnlock()
	out := map[string]forward.Flow{}
	if f.f.Table != nil {
		for name := range f.f.Table.Counters {
			if names == nil || slices.Contains(names, name) {
				out[name] = forward.Flow{}
			}
		}
	}
	return out, ctx.Err()
}
