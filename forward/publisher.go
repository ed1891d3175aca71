package forward

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// Shortcut is the loopback shortcut (package shortcut): connections from
// the host to a port published on a loopback address go straight to the
// namespace. Where the kernel cannot run it, it does nothing, and the
// rules carry those connections alone.
type Shortcut interface {
	// Set makes the project's shortcuts those its ports need.
	Set(p Project) error
	// Remove removes the project's shortcuts.
	Remove(project string) error
	// Sweep removes the shortcut, whatever it holds.
	Sweep() error
}

// Publisher publishes projects' ports: it holds the firewall backends,
// the loopback shortcut and the counting of the ports' traffic, puts a
// project's rules where a placement (Place) says, and takes them away
// again.
type Publisher struct {
	// Firewalls are the backends, in order of preference.
	Firewalls []Firewall
	Shortcut  Shortcut
	// Counting counts the ports' traffic, whichever backend publishes
	// them; nil: none is counted.
	Counting Counting
}

// counting returns the counting table when it can be used here.
func (p Publisher) counting() (Counting, bool) {
	return p.Counting, p.Counting != nil && p.Counting.Installed()
}

// ReadCounting takes one look at the counting table; nil where there is
// none to read.
func (p Publisher) ReadCounting(ctx context.Context) (CountingState, error) {
	c, ok := p.counting()
	if !ok {
		return nil, nil
	}
	return c.Read(ctx)
}

// Read reads each installed backend once, all at once (each is another
// program), and returns them by backend, and the installed ones in order
// of preference.
func (p Publisher) Read(ctx context.Context) (map[Backend]Tables, []Backend, error) {
	var order []Backend
	tables := make([]Tables, len(p.Firewalls))
	errs := make([]error, len(p.Firewalls))
	var wg sync.WaitGroup
	for i, fw := range p.Firewalls {
		if !fw.Installed() {
			continue
		}
		order = append(order, fw.Backend())
		wg.Go(func() { tables[i], errs[i] = fw.Read(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	out := map[Backend]Tables{}
	for i, fw := range p.Firewalls {
		if tables[i] != nil {
			out[fw.Backend()] = tables[i]
		}
	}
	return out, order, nil
}

// Apply puts the project's rules in their backend and its FORWARD accepts
// in the others the placement names, removes whatever of the project any
// other backend holds (a project moved to another backend, accepts no
// longer needed), then puts its loopback shortcuts in place; the counters
// of its ports' traffic are written beside the firewalls, in a table of
// their own. Every table is read before any is written (the counting
// table beside the firewalls): at the nftables generation the keeper last
// looked at, the reads come from its cache (package nftcache), where
// after a write the programs would list every project's rules and
// counters again.
func (p Publisher) Apply(ctx context.Context, at Placement, proj Project) error {
	var count func(context.Context) error
	var countErr error
	var wg sync.WaitGroup
	if c, ok := p.counting(); ok {
		wg.Go(func() { count, countErr = c.Prepare(ctx, proj) })
	}
	writes, err := p.prepare(ctx, at, proj)
	wg.Wait()
	if err := errors.Join(err, countErr); err != nil {
		return err
	}
	if count != nil {
		wg.Go(func() { countErr = count(ctx) })
	}
	for _, write := range writes {
		if err = write(ctx); err != nil {
			break
		}
	}
	if err == nil {
		err = p.Shortcut.Set(proj)
	}
	wg.Wait()
	return errors.Join(err, countErr)
}

// prepare reads the backends for Apply and returns its firewalls' writes,
// in order: the placed backends', then the removals from the others.
func (p Publisher) prepare(ctx context.Context, at Placement, proj Project) ([]func(context.Context) error, error) {
	var writes []func(context.Context) error
	add := func(write func(context.Context) error, err error) error {
		if write != nil {
			writes = append(writes, write)
		}
		return err
	}
	placed := append([]Backend{at.Backend}, at.Accepts...)
	for i, b := range placed {
		fw, err := p.firewall(b)
		if err != nil {
			return nil, err
		}
		if err := add(fw.PrepareEnsure(ctx, proj, i > 0)); err != nil {
			return nil, err
		}
	}
	for _, fw := range p.Firewalls {
		if fw.Installed() && !slices.Contains(placed, fw.Backend()) {
			if err := add(fw.PrepareRemove(ctx, proj.Name)); err != nil {
				return nil, err
			}
		}
	}
	return writes, nil
}

// Readier is a table (a Firewall, the Counting) that makes ready what
// writing it needs, changing nothing: the nft program's handle, whose
// making runs nft twice; beside thousands of rules, nft --check alone
// took 0.2 s.
type Readier interface {
	Ready(ctx context.Context) error
}

// Ready makes ready, in the background, what writing the placement's
// backends and the counting table needs, so that a write that comes
// later (an up's forwards, after its links) does not wait for it. A
// failure is left to the write to report.
func (p Publisher) Ready(ctx context.Context, at Placement) {
	for _, r := range p.readiers(at) {
		go r.Ready(context.WithoutCancel(ctx))
	}
}

// readiers are the tables a write of the placement changes that can be
// readied: the counting table, and the backends placed.
func (p Publisher) readiers(at Placement) []Readier {
	var tables []any
	if c, ok := p.counting(); ok {
		tables = append(tables, c)
	}
	for _, b := range append([]Backend{at.Backend}, at.Accepts...) {
		if fw, err := p.firewall(b); err == nil && fw.Installed() {
			tables = append(tables, fw)
		}
	}
	var out []Readier
	for _, t := range tables {
		if r, ok := t.(Readier); ok {
			out = append(out, r)
		}
	}
	return out
}

// Probe checks that a backend works here, changing nothing.
func (p Publisher) Probe(ctx context.Context, b Backend) error {
	fw, err := p.firewall(b)
	if err != nil {
		return err
	}
	return fw.Probe(ctx)
}

// Remove removes the project's shortcuts, then whatever of its rules any
// installed backend holds, and its counters: removal does not depend on
// which backend up chose, nor on any backend's policy.
func (p Publisher) Remove(ctx context.Context, project string) error {
	if err := p.Shortcut.Remove(project); err != nil {
		return err
	}
	var errs []error
	if c, ok := p.counting(); ok {
		errs = append(errs, c.Remove(ctx, project))
	}
	for _, fw := range p.Firewalls {
		if fw.Installed() {
			errs = append(errs, fw.Remove(ctx, project))
		}
	}
	return errors.Join(errs...)
}

// MadeTables lists, per installed backend, the tables its tools made on
// first use that exist now (see Firewall.MadeTables).
func (p Publisher) MadeTables(ctx context.Context) (map[Backend][]string, error) {
	out := map[Backend][]string{}
	for _, fw := range p.Firewalls {
		if !fw.Installed() {
			continue
		}
		tables, err := fw.MadeTables(ctx)
		if err != nil {
			return nil, err
		}
		out[fw.Backend()] = tables
	}
	return out, nil
}

// RemoveEmptyTables removes those of the tables named, per backend, that
// hold nothing.
func (p Publisher) RemoveEmptyTables(ctx context.Context, tables map[Backend][]string) error {
	var errs []error
	for _, fw := range p.Firewalls {
		if fw.Installed() && len(tables[fw.Backend()]) > 0 {
			errs = append(errs, fw.RemoveEmptyTables(ctx, tables[fw.Backend()]))
		}
	}
	return errors.Join(errs...)
}

// Sweep removes nsrun's chains, and the rules that jump to them, from
// every installed backend, the loopback shortcut and the counting table.
func (p Publisher) Sweep(ctx context.Context) error {
	var errs []error
	if c, ok := p.counting(); ok {
		errs = append(errs, c.Sweep(ctx))
	}
	for _, fw := range p.Firewalls {
		if fw.Installed() {
			errs = append(errs, fw.Sweep(ctx))
		}
	}
	return errors.Join(append(errs, p.Shortcut.Sweep())...)
}

// firewall returns the backend of that name.
func (p Publisher) firewall(b Backend) (Firewall, error) {
	for _, fw := range p.Firewalls {
		if fw.Backend() == b {
			return fw, nil
		}
	}
	return nil, fmt.Errorf("no firewall backend %q", b)
}
