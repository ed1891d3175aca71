package project

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/netns"
	"github.com/nsrun/nsrun/specs"
	"github.com/nsrun/nsrun/veth"
)

// Kernel is the System that changes the real host, through the netns,
// veth and forward packages.
type Kernel struct {
	Firewall forward.Firewall
	// Grace is how long processes get to exit after SIGTERM.
	Grace time.Duration
}

func (k Kernel) IPForward() (string, error)      { return veth.GetSysctl(veth.IPForward) }
func (k Kernel) SetIPForward(value string) error { return veth.SetSysctl(veth.IPForward, value) }
func (k Kernel) CreateNamespace(name string) error {
	return netns.Create(name)
}
func (k Kernel) DeleteNamespace(name string) error { return netns.Delete(name) }
func (k Kernel) KillNamespace(name string) error   { return netns.KillAll(name, k.Grace) }
func (k Kernel) EnsureLink(p veth.Pair) error      { return veth.Ensure(p) }
func (k Kernel) DeleteLink(name string) error      { return veth.Delete(name) }
func (k Kernel) LinkGone(name string) error        { return veth.WaitGone(name, 5*time.Second) }
func (k Kernel) FlushUDP(ports []specs.PortRange) error {
	return forward.DeleteUDPConntrack(ports)
}

func (k Kernel) WriteEtc(ns string, files map[string]string) error { return writeEtc(ns, files) }
func (k Kernel) RemoveEtc(ns string) error                         { return removeEtc(ns) }

// ApplyForwards puts the project's rules in place, then its loopback
// shortcuts (see forward.Shortcut); where the kernel cannot take those,
// the rules carry the connections alone.
func (k Kernel) ApplyForwards(ctx context.Context, p forward.Project) error {
	snap, err := k.Firewall.Snapshot(ctx)
	if err != nil {
		return err
	}
	if err := k.Firewall.Apply(ctx, forward.UpScript(snap, p)); err != nil {
		return err
	}
	return shortcuts(p.Name, forward.Shortcuts(p))
}

// RemoveForwards removes the project's shortcuts, then its rules.
func (k Kernel) RemoveForwards(ctx context.Context, project string) error {
	if err := shortcuts(project, nil); err != nil {
		return err
	}
	snap, err := k.Firewall.Snapshot(ctx)
	if err != nil {
		return err
	}
	return k.Firewall.Apply(ctx, forward.DownScript(snap, project))
}

func shortcuts(project string, want []forward.Shortcut) error {
	if err := forward.SetShortcuts(project, want); err != nil && !errors.Is(err, forward.ErrNoShortcut) {
		return err
	}
	return nil
}

// Observe reads what exists on the host before any change; of the bound
// sockets, those on the ports to be published, with their processes.
func Observe(published []specs.Port) (Observed, error) {
	var obs Observed
	var err error
	if obs.Namespaces, err = netns.List(); err != nil {
		return obs, err
	}
	labelled, err := veth.Links()
	if err != nil {
		return obs, err
	}
	obs.Links = labelled
	if obs.Prefixes, err = veth.HostPrefixes(); err != nil {
		return obs, err
	}
	if obs.Listeners, err = forward.Listeners(published); err != nil {
		return obs, err
	}
	hostResolv, _ := os.ReadFile("/etc/resolv.conf")
	systemdResolv, _ := os.ReadFile("/run/systemd/resolve/resolv.conf")
	obs.HostResolv, obs.SystemdResolv = string(hostResolv), string(systemdResolv)
	return obs, nil
}

// LabelledLinks lists the host links nsrun labelled.
func (k Kernel) LabelledLinks() ([]veth.Labelled, error) { return veth.ListLabelled() }

// SweepFirewall removes nsrun's chains, and the rules that jump to them,
// from every installed iptables backend, and the loopback shortcut.
func (k Kernel) SweepFirewall(ctx context.Context) error {
	var errs []error
	for _, b := range []forward.Backend{forward.NFT, forward.Legacy} {
		if !b.Available() {
			continue
		}
		snap, err := forward.SaveOf(ctx, b)
		if err == nil {
			err = forward.Firewall{Backend: b, Wait: k.Firewall.Wait}.Apply(ctx, forward.SweepScript(snap))
		}
		errs = append(errs, err)
	}
	return errors.Join(append(errs, forward.SweepShortcuts())...)
}
