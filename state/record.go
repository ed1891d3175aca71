package state

import (
	"net/netip"
	"time"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/specs"
	"github.com/nsrun/nsrun/supervise"
)

// Version is the version of state.json this code writes and reads.
const Version = 1

// Record is what nsrun records of a project: enough to remove everything
// it made without the spec.
type Record struct {
	Version  int             `json:"version"`
	Project  string          `json:"project"`
	SpecFile string          `json:"spec_file,omitempty"`
	Backend  forward.Backend `json:"backend,omitempty"` // where the project's rules are
	// Accepts are the other backends that hold the project's FORWARD
	// accepts, because their FORWARD drops (see forward.Placement).
	Accepts []forward.Backend `json:"forward_accepts,omitempty"`
	Subnet  netip.Prefix      `json:"subnet"`
	// IPv6: the namespaces have IPv6 addresses too, from Subnet6.
	IPv6       bool         `json:"ipv6,omitempty"`
	Subnet6    netip.Prefix `json:"subnet6,omitzero"`
	Namespaces []*Namespace `json:"namespaces"`
	// Generation counts the ups; the supervisor reports the generation
	// whose processes it runs.
	Generation int `json:"generation"`
	// NoHeal: the keeper leaves the project's firewall state alone (up --no-heal).
	NoHeal bool `json:"no_heal,omitempty"`
}

// Namespace is one namespace as recorded.
type Namespace struct {
	Name        string       `json:"name"`
	Link        string       `json:"link"`
	Address     netip.Prefix `json:"address"`
	HostAddress netip.Prefix `json:"host_address"`
	AutoAddress bool         `json:"auto_address,omitempty"`
	// The IPv6 twins, in a project with IPv6.
	Address6     netip.Prefix `json:"address6,omitzero"`
	HostAddress6 netip.Prefix `json:"host_address6,omitzero"`
	AutoAddress6 bool         `json:"auto_address6,omitempty"`
	// ExecUIDs and ExecGIDs may run nsrun exec here without root (the
	// spec's exec grant, resolved), published in Store's grant directory.
	ExecUIDs []uint32 `json:"exec_uids,omitempty"`
	ExecGIDs []uint32 `json:"exec_gids,omitempty"`
	Egress   bool     `json:"egress"`
	// Networks are the keys of the namespace's networks (see
	// specs.NetworkKey): [] is on none; a record of nsrun before networks
	// has none recorded (nil), and is on the project's default network.
	Networks []string     `json:"networks"`
	Ports    []specs.Port `json:"ports,omitempty"` // in the full short form, e.g. 127.0.0.1:6000:8080/udp
	Run      []Process    `json:"run,omitempty"`
	// Resources are the namespace's limits. Cgroup: the namespace has a
	// cgroup of nsrun's, holding its processes (see package cgroup); once
	// made, it stays until down, its limits lifted if the spec drops them.
	Resources specs.Resources `json:"resources,omitzero"`
	Cgroup    bool            `json:"cgroup,omitempty"`
	// Bandwidth and Netem are the shaping of the namespace's link (see
	// package shape).
	Bandwidth specs.Bandwidth `json:"bandwidth,omitzero"`
	Netem     *specs.Netem    `json:"netem,omitempty"`
}

// Process is a run entry as recorded.
type Process struct {
	supervise.Process
	ReadyTCP     uint16        `json:"ready_tcp,omitempty"`
	ReadyTimeout time.Duration `json:"ready_timeout,omitempty"`
	// Resources are the process's own limits, in its leaf of the
	// namespace's cgroup; changed in place, they restart nothing.
	Resources specs.Resources `json:"resources,omitzero"`
}

// Plan is what the supervisor should run for this state.
func (s *Record) Plan() supervise.Plan {
	p := supervise.Plan{Generation: s.Generation}
	for _, ns := range s.Namespaces {
		for _, r := range ns.Run {
			p.Processes = append(p.Processes, r.Process)
		}
	}
	return p
}

// ByName indexes the record's namespaces by name (empty for nil): a loop
// over one record's namespaces that looks each up in another uses it, as
// Namespace's scan would make it quadratic.
func (s *Record) ByName() map[string]*Namespace {
	if s == nil {
		return map[string]*Namespace{}
	}
	out := make(map[string]*Namespace, len(s.Namespaces))
	for _, ns := range s.Namespaces {
		out[ns.Name] = ns
	}
	return out
}

// Namespace returns the recorded namespace of that name, or nil.
func (s *Record) Namespace(name string) *Namespace {
	if s == nil {
		return nil
	}
	for _, ns := range s.Namespaces {
		if ns.Name == name {
			return ns
		}
	}
	return nil
}

// ForwardProject returns the project as the forward package sees it.
func (s *Record) ForwardProject() forward.Project {
	p := forward.Project{Name: s.Project}
	for _, ns := range s.Namespaces {
		p.Namespaces = append(p.Namespaces, forward.Namespace{Name: ns.Name, Link: ns.Link, Address: ns.Address, Address6: ns.Address6,
			Egress: ns.Egress, Networks: s.NetworksOf(ns), Ports: ns.Ports})
	}
	return p
}

// NetworksOf returns the keys of a recorded namespace's networks.
func (s *Record) NetworksOf(ns *Namespace) []string {
	if ns.Networks == nil {
		return []string{specs.NetworkKey(s.Project, &specs.Network{Name: specs.DefaultNetwork})}
	}
	return ns.Networks
}

// Placement is where the project's rules are.
func (s *Record) Placement() forward.Placement {
	return forward.Placement{Backend: s.Backend, Accepts: s.Accepts}
}

// Merge returns the state that covers both a and b: b's namespaces, and
// a's that b lacks. It is recorded before a change, so that a down after
// a crash finds everything either side may have made.
func Merge(a, b *Record) *Record {
	if a == nil {
		return b
	}
	out := *b
	out.Namespaces = append([]*Namespace(nil), b.Namespaces...)
	inB := b.ByName()
	for _, ns := range a.Namespaces {
		if inB[ns.Name] == nil {
			out.Namespaces = append(out.Namespaces, ns)
		}
	}
	return &out
}

// backendName reads a recorded backend: nsrun before 2026-12 recorded the
// iptables backends as "nft" and "legacy".
func backendName(b forward.Backend) forward.Backend {
	switch b {
	case "nft":
		return "iptables-nft"
	case "legacy":
		return "iptables-legacy"
	}
	return b
}
