package project

import (
	"context"
	"errors"
	"time"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/forward/shortcut"
	"github.com/nsrun/nsrun/netns"
	"github.com/nsrun/nsrun/specs"
	"github.com/nsrun/nsrun/veth"
)

// Kernel is the System that changes the real host, through the netns,
// veth and forward packages.
type Kernel struct {
	// Wait bounds how long iptables-restore waits for the xtables lock.
	Wait time.Duration
	// Grace is how long processes get to exit after SIGTERM.
	Grace time.Duration
}

func (k Kernel) IPForward() (string, error)        { return veth.GetSysctl(veth.IPForward) }
func (k Kernel) SetIPForward(value string) error   { return veth.SetSysctl(veth.IPForward, value) }
func (k Kernel) CreateNamespace(name string) error { return netns.Create(name) }
func (k Kernel) DeleteNamespace(name string) error { return netns.Delete(name) }
func (k Kernel) KillNamespaces(names []string) error {
	return netns.KillAllIn(names, k.Grace)
}
func (k Kernel) EnsureLink(p veth.Pair) error   { return veth.Ensure(p) }
func (k Kernel) DeleteLink(name string) error   { return veth.Delete(name) }
func (k Kernel) LinksGone(names []string) error { return veth.WaitGone(names, 5*time.Second) }
func (k Kernel) FlushUDP(ports []specs.PortRange) error {
	return forward.DeleteUDPConntrack(ports)
}

func (k Kernel) WriteEtc(ns string, files map[string]string) error { return writeEtc(ns, files) }
func (k Kernel) RemoveEtc(ns string) error                         { return removeEtc(ns) }

func (k Kernel) firewall(b forward.Backend) forward.Firewall {
	return forward.Firewall{Backend: b, Wait: k.Wait}
}

// ApplyForwards puts the project's rules in their backend and its FORWARD
// accepts in the others the placement names, then its loopback shortcuts
// (see shortcut.Entry); where the kernel cannot take those, the rules
// carry the connections alone.
func (k Kernel) ApplyForwards(ctx context.Context, at forward.Placement, p forward.Project) error {
	if err := k.apply(ctx, at.Backend, func(snap *forward.Snapshot) string { return forward.UpScript(snap, p) }); err != nil {
		return err
	}
	for _, b := range at.Accepts {
		if err := k.apply(ctx, b, func(snap *forward.Snapshot) string { return forward.AcceptScript(snap, p) }); err != nil {
			return err
		}
	}
	return shortcuts(p.Name, shortcut.Of(p))
}

// RemoveForwards removes the project's shortcuts, then whatever of its
// rules any installed backend holds: removal does not depend on which
// backend up chose, nor on any backend's policy.
func (k Kernel) RemoveForwards(ctx context.Context, project string) error {
	if err := shortcuts(project, nil); err != nil {
		return err
	}
	var errs []error
	for _, b := range forward.Backends {
		if b.Available() {
			errs = append(errs, k.apply(ctx, b, func(snap *forward.Snapshot) string { return forward.DownScript(snap, project) }))
		}
	}
	return errors.Join(errs...)
}

// apply reads a backend and applies the script rendered from what it holds.
func (k Kernel) apply(ctx context.Context, b forward.Backend, script func(*forward.Snapshot) string) error {
	fw := k.firewall(b)
	snap, err := fw.Snapshot(ctx)
	if err != nil {
		return err
	}
	return fw.Apply(ctx, script(snap))
}

func shortcuts(project string, want []shortcut.Entry) error {
	if err := shortcut.Set(project, want); err != nil && !errors.Is(err, shortcut.ErrUnavailable) {
		return err
	}
	return nil
}

// LabelledLinks lists the host links nsrun labelled.
func (k Kernel) LabelledLinks() ([]veth.Labelled, error) { return veth.ListLabelled() }

// SweepFirewall removes nsrun's chains, and the rules that jump to them,
// from every installed iptables backend, and the loopback shortcut.
func (k Kernel) SweepFirewall(ctx context.Context) error {
	var errs []error
	for _, b := range forward.Backends {
		if b.Available() {
			errs = append(errs, k.apply(ctx, b, forward.SweepScript))
		}
	}
	return errors.Join(append(errs, shortcut.Sweep())...)
}
