// Package specs holds the nsrun spec (version 1): its schema, parsing with
// source positions, defaults and validation. It is pure: it reads the spec
// file and nothing else, and it never changes the system.
package specs

import (
	"fmt"
	"github.com/nsrun/nsrun/internal/words"
	"net/netip"
	"path/filepath"
	"time"
)

// Spec is a parsed, defaulted and validated spec.
type Spec struct {
	File string // the path the spec was read from, for messages
	Name string // project name
	// Dir is the absolute directory of the spec file: a process starts
	// there unless it has a workdir, and a relative workdir is resolved
	// against it, so a project runs the same from wherever up is run.
	Dir string

	// Subnet is the pool automatic addresses come from. SubnetSet reports
	// whether the spec chose it; when it did not, Subnet is the first of
	// DefaultPools and the caller may pick another with AssignAddresses.
	Subnet    netip.Prefix
	SubnetSet bool

	// IPv6 gives every namespace an IPv6 address too, and publishes ports
	// given without a host address on both families. Subnet6 is the pool
	// of the automatic IPv6 addresses when Subnet6Set; otherwise the
	// system layer picks one (see DefaultPool6).
	IPv6       bool
	Subnet6    netip.Prefix
	Subnet6Set bool

	// Exec is who may run nsrun exec, without root, in every namespace
	// of the project; nil grants nobody. A namespace's own Exec replaces it.
	Exec *ExecGrant

	// Networks are the networks the spec declares, in its order; the
	// default network is there only when declared (see Spec.Network).
	Networks []*Network

	// Namespaces in the order the spec lists them.
	Namespaces []*Namespace
}

// Namespace is one named network namespace and what lives in it.
type Namespace struct {
	Name     string
	HostLink string // host side of the veth pair, derived from Name

	// Address is the namespace side (eth0) with its prefix length;
	// HostAddress the host side, the first usable address of the prefix.
	// AutoAddress reports that the spec gave no address and one was
	// assigned from the pool.
	Address     netip.Prefix
	HostAddress netip.Prefix
	AutoAddress bool

	// Address6 and HostAddress6 are the IPv6 twins of Address and
	// HostAddress, in a spec with ipv6: true (invalid otherwise, and until
	// an automatic one is assigned: see AssignAddresses6).
	Address6     netip.Prefix
	HostAddress6 netip.Prefix
	AutoAddress6 bool

	Egress bool
	// Networks are the names of the namespace's networks, in the spec's
	// order: [default] when the spec names none, empty for networks: [].
	Networks []string
	Ports    []Port
	Run      []Process
	// Exec is the namespace's own exec grant (exec: {} grants nobody);
	// nil when the spec gives none, and the project's applies.
	Exec *ExecGrant
	// Resources bound everything that runs in the namespace together.
	Resources Resources
	// Bandwidth limits its link each way; Netem adds delay and loss to
	// what leaves it (nil: none).
	Bandwidth Bandwidth
	Netem     *Netem

	pos, addressPos, address6Pos position
	networkPos                   []position
}

// Protocol is a transport protocol a port is published for.
type Protocol string

const (
	TCP Protocol = "tcp"
	UDP Protocol = "udp"
)

// PortRange is an inclusive range of ports; a single port has First == Last.
type PortRange struct {
	First, Last uint16
}

// Len is the number of ports in the range.
func (r PortRange) Len() int { return int(r.Last) - int(r.First) + 1 }

// Overlaps reports whether the two ranges share a port.
func (r PortRange) Overlaps(o PortRange) bool { return r.First <= o.Last && o.First <= r.Last }

func (r PortRange) String() string {
	if r.First == r.Last {
		return fmt.Sprint(r.First)
	}
	return fmt.Sprintf("%d-%d", r.First, r.Last)
}

// Port publishes host ports on ports inside a namespace, over one family:
// that of HostIP.
type Port struct {
	HostIP    netip.Addr // 0.0.0.0 publishes on every IPv4 host address, :: on every IPv6 one
	Published PortRange  // on the host
	Target    PortRange  // inside the namespace; same length as Published
	Protocol  Protocol
	// Both: the spec gave no host address, so a spec with ipv6: true
	// publishes the port on :: as well (a twin port is added).
	Both bool

	pos  position
	item int // its index in the spec's list, which a twin shares

}

// String returns the port in the short form, leaving out the defaults.
func (p Port) String() string {
	s := p.Published.String() + ":" + p.Target.String()
	if p.HostIP != netip.IPv4Unspecified() {
		s = HostIPText(p.HostIP) + ":" + s
	}
	if p.Protocol != TCP {
		s += "/" + string(p.Protocol)
	}
	return s
}

// Restart says when the supervisor restarts a process that exited.
type Restart string

const (
	RestartNo        Restart = "no"
	RestartOnFailure Restart = "on-failure"
	RestartAlways    Restart = "always"
)

// Process is one `run` entry: a command kept running inside a namespace.
type Process struct {
	Name string

	// Command is the argv to execute. A command written as a string is run
	// by /bin/sh -c, and Shell is true.
	Command []string
	Shell   bool

	// Workdir is the directory as the spec wrote it: absolute, relative
	// to the spec's directory, or empty for the spec's directory (see
	// Spec.WorkdirOf).
	Workdir string
	Env     []string // "KEY=value", sorted by key
	User    string   // name or uid, optionally ":group"; empty means root
	Restart Restart
	Ready   *Ready // nil when the process has no readiness check
	// Health is checked for as long as the process runs; nil for none.
	Health *Health
	// DependsOn are the processes (NAMESPACE/PROCESS) that must be ready
	// and healthy before this one starts.
	DependsOn []string
	// Resources bound this process (and its children) inside the
	// namespace's own limits.
	Resources Resources

	pos, resourcesPos position
	dependsPos        []position
}

// Ready is a readiness check: the TCP port accepts a connection inside the
// namespace within Timeout.
type Ready struct {
	TCP     uint16
	Timeout time.Duration
}

// DefaultReadyTimeout applies when a ready check gives no timeout.
const DefaultReadyTimeout = 30 * time.Second

// ExecGrant names the users and groups that may run nsrun exec in a
// namespace as themselves (see nsexec.ExecGranted): names or numeric ids,
// as the spec wrote them, and the ids they resolve to (ResolveExec).
type ExecGrant struct {
	Users, Groups []string
	UIDs, GIDs    []uint32

	userPos, groupPos []position
}

// ExecFor is the grant that applies to a namespace: its own, else the
// project's; nil grants nobody.
func (s *Spec) ExecFor(ns *Namespace) *ExecGrant {
	if ns.Exec != nil {
		return ns.Exec
	}
	return s.Exec
}

// Namespace returns the namespace with the given name, or nil.
func (s *Spec) Namespace(name string) *Namespace {
	for _, ns := range s.Namespaces {
		if ns.Name == name {
			return ns
		}
	}
	return nil
}

// Summary is a one-line description of the spec for people.
func (s *Spec) Summary() string {
	var ports, procs int
	for _, ns := range s.Namespaces {
		ports += len(ns.Ports)
		procs += len(ns.Run)
	}
	return fmt.Sprintf("project %q: %s, %s, %s",
		s.Name, words.Plural(len(s.Namespaces), "namespace"), words.Plural(ports, "published port"), words.Plural(procs, "process"))
}

// WorkdirOf is the absolute directory a process starts in: its workdir,
// resolved against the spec's directory, or the spec's directory itself.
func (s *Spec) WorkdirOf(p Process) string {
	if filepath.IsAbs(p.Workdir) {
		return filepath.Clean(p.Workdir)
	}
	return filepath.Join(s.Dir, p.Workdir)
}
