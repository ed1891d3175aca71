package nftables

import (
	"context"
	"errors"
	"fmt"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/specs"

	gnft "github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// Counts are the packets each publication's named counter counted: the
// connections of that published port (forward.Counts), by the counter's
// name, which is its chain's.
type Counts map[string]uint64

// Connections returns the count of the port's publication.
func (c Counts) Connections(project string, ns forward.Namespace, port specs.Port) (uint64, bool) {
	to, ok := forward.DNATTo(ns, port)
	if !ok {
		return 0, false
	}
	n, ok := c[publicationOf(project, ns.Name, to.String(), port).counter]
	return n, ok
}

// Counts reads every named counter of nsrun's table, whichever projects
// ask; none when the table is not there.
func (f *Firewall) Counts(ctx context.Context, _ []forward.Project) (forward.Counts, error) {
	c, err := f.run.counters(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the counters of table %s %s: %w", Family, Table, err)
	}
	return Counts(c), nil
}

// counters reads the named counters of nsrun's table in one netlink dump
// of the table's objects, in this process: nft list counters takes 27 ms
// whatever the table holds (it reads much of the ruleset first), this
// well under one with 1,000.
func (p *program) counters(ctx context.Context) (map[string]uint64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	conn, err := gnft.New()
	if err != nil {
		return nil, err
	}
	objs, err := conn.GetObjects(&gnft.Table{Name: Table, Family: gnft.TableFamilyINet})
	if errors.Is(err, unix.ENOENT) {
		return map[string]uint64{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := make(map[string]uint64, len(objs))
	for _, o := range objs {
		if c, ok := o.(*gnft.CounterObj); ok {
			out[c.Name] = c.Packets
		}
	}
	return out, nil
}

// counters of the fake: it keeps the counters but does not count.
func (f fake) counters(ctx context.Context) (map[string]uint64, error) {
	f.f.RLock()
	defer f.f.RUnlock()
	out := map[string]uint64{}
	if f.f.Table != nil {
		for name := range f.f.Table.Counters {
			out[name] = 0
		}
	}
	return out, ctx.Err()
}
