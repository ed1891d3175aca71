package project

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/nsrun/nsrun/cgroup"
	"github.com/nsrun/nsrun/specs"
	"github.com/nsrun/nsrun/state"
	"github.com/nsrun/nsrun/supervise"
	"github.com/nsrun/nsrun/veth"
)

// Desire turns a validated spec into the state up should reach. Automatic
// addresses come from the spec's subnet, else the recorded one, else the
// first default pool that overlaps nothing of the host's (foreign: routes
// and addresses not on nsrun's links, asked for only when a default pool
// is chosen: beside thousands of namespaces they are tens of thousands).
// They avoid other projects' subnets and keep the recorded ones. So do the
// IPv6 ones, whose default pools derive from the machine's id.
func Desire(s *specs.Spec, recorded *state.Record, others []*state.Record, foreign func() []netip.Prefix, machineID string) (*state.Record, error) {
	pool, err := choosePool(s, recorded, foreign)
	if err != nil {
		return nil, err
	}
	var reserved, reserved6 []netip.Prefix
	for _, o := range others {
		for _, ns := range o.Namespaces {
			reserved = append(reserved, ns.Address.Masked())
			if ns.Address6.IsValid() {
				reserved6 = append(reserved6, ns.Address6.Masked())
			}
		}
	}
	previous, previous6 := map[string]netip.Prefix{}, map[string]netip.Prefix{}
	if recorded != nil {
		for _, ns := range recorded.Namespaces {
			if ns.AutoAddress {
				previous[ns.Name] = ns.Address
			}
			if ns.AutoAddress6 {
				previous6[ns.Name] = ns.Address6
			}
		}
	}
	if err := specs.AssignAddresses(s, pool, reserved, previous); err != nil {
		return nil, fmt.Errorf("%w; set subnet: in the spec to a free range", err)
	}
	if s.IPv6 {
		pool6, err := choosePool6(s, recorded, foreign, machineID)
		if err != nil {
			return nil, err
		}
		if err := specs.AssignAddresses6(s, pool6, reserved6, previous6); err != nil {
			return nil, fmt.Errorf("%w; set subnet6: in the spec to a free range", err)
		}
	}
	want := FromSpec(s)
	had := recorded.ByName()
	for _, ns := range want.Namespaces {
		if r := had[ns.Name]; r != nil && r.Cgroup {
			keepCgroup(ns) // made once, it stays until down
		}
	}
	return want, nil
}

// choosePool6 is the IPv6 pool: the spec's subnet6, else the recorded
// one, else the first of the machine's default pools that overlaps no
// host route or address.
func choosePool6(s *specs.Spec, recorded *state.Record, foreign func() []netip.Prefix, machineID string) (netip.Prefix, error) {
	if s.Subnet6Set {
		return s.Subnet6, nil
	}
	if recorded != nil && recorded.Subnet6.IsValid() {
		return recorded.Subnet6, nil
	}
	for i := range 8 {
		if pool := specs.DefaultPool6(machineID, i); !overlaps(pool, foreign()) {
			return pool, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("every default IPv6 pool (%v...) overlaps a host route or address; set subnet6: in the spec to a free range", specs.DefaultPool6(machineID, 0))
}

// FromSpec records a spec's namespaces as they are, addresses included.
func FromSpec(s *specs.Spec) *state.Record {
	st := &state.Record{Version: state.Version, Project: s.Name, SpecFile: s.File, Subnet: s.Subnet, IPv6: s.IPv6, Subnet6: s.Subnet6}
	for _, ns := range s.Namespaces {
		rec := &state.Namespace{
			Name: ns.Name, Link: ns.HostLink, Address: ns.Address, HostAddress: ns.HostAddress,
			AutoAddress: ns.AutoAddress, Egress: ns.Egress, Networks: s.NetworkKeys(ns),
			Address6: ns.Address6, HostAddress6: ns.HostAddress6, AutoAddress6: ns.AutoAddress6,
			Resources: ns.Resources, Bandwidth: ns.Bandwidth, Netem: ns.Netem,
		}
		rec.Ports = append(rec.Ports, ns.Ports...)
		if g := s.ExecFor(ns); g != nil {
			rec.ExecUIDs, rec.ExecGIDs = g.UIDs, g.GIDs
		}
		for _, r := range ns.Run {
			ps := state.Process{Process: supervise.Process{
				Namespace: ns.Name, Name: r.Name, Command: r.Command, Workdir: s.WorkdirOf(r),
				Env: r.Env, User: r.User, Restart: string(r.Restart),
			}}
			if r.Ready != nil {
				ps.ReadyTCP, ps.ReadyTimeout = r.Ready.TCP, r.Ready.Timeout
			}
			if h := r.Health; h != nil {
				ps.Health = &supervise.Health{HTTP: h.HTTP, TCP: h.TCP, Command: h.Command, Interval: h.Interval, Timeout: h.Timeout,
					Retries: h.Retries, StartPeriod: h.StartPeriod, OnFailure: string(h.OnFailure)}
				if h.TCP != 0 {
					ps.Health.Address = ns.Address.Addr().String()
				}
			}
			for _, key := range r.DependsOn {
				ps.DependsOn = append(ps.DependsOn, dependency(s, key))
			}
			ps.Resources = r.Resources
			rec.Run = append(rec.Run, ps)
		}
		if limited(rec) {
			keepCgroup(rec)
		}
		st.Namespaces = append(st.Namespaces, rec)
	}
	return st
}

// dependency is what the supervisor needs to know of a process another
// depends on (NS/NAME, which the spec has): its ready port and address.
func dependency(s *specs.Spec, key string) supervise.Dependency {
	d := supervise.Dependency{Key: key}
	name, proc, _ := strings.Cut(key, "/")
	ns := s.Namespace(name)
	for _, r := range ns.Run {
		if r.Name == proc && r.Ready != nil {
			d.ReadyTCP, d.Address = r.Ready.TCP, ns.Address.Addr().String()
		}
	}
	return d
}

// limited reports whether a namespace or one of its processes has limits.
func limited(ns *state.Namespace) bool {
	return !ns.Resources.IsZero() || slices.ContainsFunc(ns.Run, func(p state.Process) bool { return !p.Resources.IsZero() })
}

// keepCgroup gives the namespace its cgroup, and each process its leaf.
func keepCgroup(ns *state.Namespace) {
	ns.Cgroup = true
	for i := range ns.Run {
		ns.Run[i].Cgroup = cgroup.RunLeaf(ns.Run[i].Name)
	}
}

// cgroupTree is the cgroup a recorded namespace has: its limits, a leaf
// for nsrun exec and one per process with the process's own.
func cgroupTree(ns *state.Namespace) cgroup.Tree {
	t := cgroup.Tree{Namespace: ns.Name, Limits: ns.Resources, Leaves: map[string]specs.Resources{cgroup.ExecLeaf: {}}}
	for _, p := range ns.Run {
		t.Leaves[cgroup.RunLeaf(p.Name)] = p.Resources
	}
	return t
}

func choosePool(s *specs.Spec, recorded *state.Record, foreign func() []netip.Prefix) (netip.Prefix, error) {
	if s.SubnetSet {
		return s.Subnet, nil
	}
	if recorded != nil && recorded.Subnet.IsValid() {
		return recorded.Subnet, nil
	}
	for _, pool := range specs.DefaultPools() {
		if !overlaps(pool, foreign()) {
			return pool, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("every default address pool (%v...) overlaps a host route or address; set subnet: in the spec to a free range", specs.DefaultPools()[0])
}

func overlaps(p netip.Prefix, list []netip.Prefix) bool {
	for _, q := range list {
		if p.Overlaps(q) {
			return true
		}
	}
	return false
}

// pair describes the veth pair of a recorded namespace.
func pair(ns *state.Namespace, project string) veth.Pair {
	return veth.Pair{
		Host: ns.Link, Namespace: ns.Name, Peer: "eth0",
		HostAddr: ns.HostAddress, PeerAddr: ns.Address, HostAddr6: ns.HostAddress6, PeerAddr6: ns.Address6,
		Alias: veth.Label(project, ns.Name),
	}
}
