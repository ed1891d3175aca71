// Package shortcut is nsrun's loopback shortcut. A connection from the host to one of its own addresses is DNAT'd in nat
// OUTPUT after its route was chosen, so the kernel routes every packet of
// it a second time (ip_route_me_harder). For TCP to a published port on
// 127.0.0.0/8 nsrun takes a shortcut instead, as Cilium's socket load
// balancing does: a cgroup connect4 program changes the address the
// socket connects to, and the connection goes straight to the namespace.
// A getpeername4 program still gives the address the program asked for.
// connect6 and getpeername6 twins do the same for AF_INET6 sockets: to
// [::1] for ports published on IPv6, which no DNAT can serve (the kernel
// lets no packet from ::1 leave the loopback, and IPv6 has no
// route_localnet), and to ::ffff:127.0.0.0/104 for ports published on
// IPv4 (dual-stack clients of 127.0.0.1); other IPv6 connections are left
// alone.
// The DNAT rules stay, and carry everything else (and these connections
// too where the kernel lacks the programs).
//
// Only 127.0.0.0/8 and ::1 are taken this way: it is local in every case, whereas
// whether another address is local is known only when the packet is
// routed, and a shortcut taken for an address no longer the host's would
// send its connections to a namespace rather than to the network.
package shortcut

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/specs"
)

// Entry is one published TCP host port reached from the host at a
// loopback address. Host's address is 0.0.0.0 for a port published on
// every IPv4 address, which covers all of 127.0.0.0/8, and :: for one
// published on every IPv6 address, which covers ::1.
type Entry struct {
	Host   netip.AddrPort
	Target netip.AddrPort
}

// Shortcuts lists the project's TCP ports that the shortcut serves: those
// published on every address or on a loopback address, one entry per host
// port of a range; those published on IPv6 go to the namespace's IPv6
// address.
func Of(p forward.Project) []Entry {
	var out []Entry
	for _, ns := range p.Namespaces {
		for _, port := range ns.Ports {
			if port.Protocol != specs.TCP || !(port.HostIP.IsUnspecified() || port.HostIP.IsLoopback()) {
				continue
			}
			to := ns.Address.Addr()
			if port.Is6() {
				if !ns.Address6.IsValid() {
					continue
				}
				to = ns.Address6.Addr()
			}
			for i := 0; i < port.Published.Len(); i++ {
				out = append(out, Entry{
					Host:   netip.AddrPortFrom(port.HostIP, port.Published.First+uint16(i)),
					Target: netip.AddrPortFrom(to, port.Target.First+uint16(i)),
				})
			}
		}
	}
	return out
}

// Serves6 reports whether a project has ports that only the shortcut
// serves from the host at [::1]: TCP ports published on :: or ::1.
func Serves6(p forward.Project) bool {
	return slices.ContainsFunc(Of(p), func(e Entry) bool { return e.Host.Addr().Is6() })
}

// Table is what the loopback shortcut's map holds (of the projects Read
// was asked about): each entry, with the hash of the project that put it
// there.
type Table struct {
	Supported bool // the kernel can run the programs; when not, none are expected
	Entries   map[Entry]uint64
	// Conns are the connections each entry took since it was made, by its
	// host address and port (none where an older nsrun's programs count
	// nothing).
	Conns map[netip.AddrPort]uint64
}

// Connections returns the connections the shortcut took for a published
// port (all its host ports); false for one it does not serve, or has no
// counter of.
func (t Table) Connections(port specs.Port) (uint64, bool) {
	if port.Protocol != specs.TCP || !(port.HostIP.IsUnspecified() || port.HostIP.IsLoopback()) {
		return 0, false
	}
	var sum uint64
	found := false
	for i := 0; i < port.Published.Len(); i++ {
		if n, ok := t.Conns[netip.AddrPortFrom(port.HostIP, port.Published.First+uint16(i))]; ok {
			sum, found = sum+n, true
		}
	}
	return sum, found
}

// Drift reports how the table differs from the project's
// shortcuts: those missing, and entries of the project that it no longer
// has. Pure.
func Drift(t Table, project string, want []Entry) []string {
	if !t.Supported {
		return nil
	}
	own := owner(project)
	wanted := map[Entry]bool{}
	var missing, stale int
	var first string
	for _, s := range want {
		wanted[s] = true
		if t.Entries[s] != own {
			if missing++; first == "" {
				first = fmt.Sprintf("loopback shortcut %s -> %s is missing", s.Host, s.Target)
			}
		}
	}
	for s, o := range t.Entries {
		if o == own && !wanted[s] {
			if stale++; first == "" {
				first = fmt.Sprintf("loopback shortcut %s -> %s is no longer the project's", s.Host, s.Target)
			}
		}
	}
	switch n := missing + stale; {
	case n == 0:
		return nil
	case n == 1:
		return []string{first}
	default:
		return []string{fmt.Sprintf("%s, and %d more loopback shortcut entries differ", first, n-1)}
	}
}

// Loopback is the shortcut as forward.Publisher holds it. Where the
// kernel cannot take the programs it does nothing: the rules carry
// loopback connections alone.
type Loopback struct{}

func (Loopback) Set(p forward.Project) error { return unlessUnavailable(Set(p.Name, Of(p))) }
func (Loopback) Remove(project string) error { return unlessUnavailable(Set(project, nil)) }
func (Loopback) Sweep() error                { return Sweep() }

func unlessUnavailable(err error) error {
	if errors.Is(err, ErrUnavailable) {
		return nil
	}
	return err
}
