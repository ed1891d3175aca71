package forward

import (
	"context"
	"net/netip"

	"github.com/nsrun/nsrun/specs"
)

// Counts are what a backend's counters said at one read: the
// connections each publication has DNAT'd.
type Counts interface {
	// Connections returns the connections that the port's publication in
	// the project's namespace has DNAT'd since its rule was made (a
	// connection's first packet is the only one the nat hooks see); false
	// when the backend holds no counter for it.
	Connections(project string, ns Namespace, port specs.Port) (uint64, bool)
}

// Traffic is what the counting table's counters said at one read.
type Traffic interface {
	// Traffic returns the packets and bytes of the port's connections that
	// the host forwarded, into the namespace (in) and out of it (out):
	// those from other machines and from namespaces, not those of the
	// host itself; false when no counter of them is there.
	Traffic(project string, ns Namespace, port specs.Port) (in, out Flow, ok bool)
}

// Flow is what a counter counted of one way of some traffic.
type Flow struct {
	Packets, Bytes uint64
}

// Counting counts each way of the traffic of every project's published
// ports, whichever backend DNATs them, in a table of its own (package
// nftables): a map lookup per forwarded packet, whatever the number of
// ports and projects, where rules would walk a list. Where nft is not
// installed it does nothing, and no traffic is counted.
type Counting interface {
	Installed() bool
	// Prepare reads the table now, and returns the write that makes the
	// project's counters those its ports need, run when called (nil:
	// nothing differs); counters already there keep their counts.
	Prepare(ctx context.Context, p Project) (func(context.Context) error, error)
	// Remove removes the project's counters.
	Remove(ctx context.Context, project string) error
	// Sweep removes the counting table, whatever it holds.
	Sweep(ctx context.Context) error
	// Read takes one look at the counting table, for its drift.
	Read(ctx context.Context) (CountingState, error)
	// Traffic reads the counters of the projects' published ports; every
	// counter when projects is nil.
	Traffic(ctx context.Context, projects []Project) (Traffic, error)
}

// CountingState is the counting table as one Read saw it.
type CountingState interface {
	// Drift reports how the project's counting differs from what its
	// ports need, one line per difference.
	Drift(p Project) []string
}

// Counter is a backend whose publications count their connections.
type Counter interface {
	Backend() Backend
	// Counts reads the counters of the projects whose rules it holds, in
	// one read.
	Counts(ctx context.Context, projects []Project) (Counts, error)
}

// DNATTo returns the namespace address a published port is DNAT'd to,
// of the port's family; false for a port no rule DNATs: one on IPv6 in a
// namespace without IPv6, or on [::1], the loopback shortcut's alone.
func DNATTo(ns Namespace, port specs.Port) (netip.Addr, bool) {
	switch {
	case port.HostIP == netip.IPv6Loopback():
		return netip.Addr{}, false
	case port.Is6():
		return ns.Address6.Addr(), ns.Address6.IsValid()
	}
	return ns.Address.Addr(), ns.Address.IsValid()
}
