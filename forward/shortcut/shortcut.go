// Package shortcut is nsrun's loopback shortcut. A connection from the host to one of its own addresses is DNAT'd in nat
// OUTPUT after its route was chosen, so the kernel routes every packet of
// it a second time (ip_route_me_harder). For TCP to a published port on
// 127.0.0.0/8 nsrun takes a shortcut instead, as Cilium's socket load
// balancing does: a cgroup connect4 program changes the address the
// socket connects to, and the connection goes straight to the namespace.
// A getpeername4 program still gives the address the program asked for.
// connect6 and getpeername6 twins do the same for AF_INET6 sockets that
// talk IPv4 to ::ffff:127.0.0.0/104 (dual-stack clients), sharing the
// maps; other IPv6 connections are left alone.
// The DNAT rules stay, and carry everything else (and these connections
// too where the kernel lacks the programs).
//
// Only 127.0.0.0/8 is taken this way: it is local in every case, whereas
// whether another address is local is known only when the packet is
// routed, and a shortcut taken for an address no longer the host's would
// send its connections to a namespace rather than to the network.
package shortcut

import (
	"fmt"
	"net/netip"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/specs"
)

// Entry is one published TCP host port reached from the host at a
// loopback address. Host's address is 0.0.0.0 for a port published on
// every address, which covers all of 127.0.0.0/8.
type Entry struct {
	Host   netip.AddrPort
	Target netip.AddrPort
}

// Shortcuts lists the project's TCP ports that the shortcut serves: those
// published on every address or on a loopback address, one entry per host
// port of a range.
func Of(p forward.Project) []Entry {
	var out []Entry
	for _, ns := range p.Namespaces {
		for _, port := range ns.Ports {
			if port.Protocol != specs.TCP || !(port.HostIP.IsUnspecified() || port.HostIP.IsLoopback()) {
				continue
			}
			for i := 0; i < port.Published.Len(); i++ {
				out = append(out, Entry{
					Host:   netip.AddrPortFrom(port.HostIP, port.Published.First+uint16(i)),
					Target: netip.AddrPortFrom(ns.Address.Addr(), port.Target.First+uint16(i)),
				})
			}
		}
	}
	return out
}

// Table is what the loopback shortcut's map holds: each entry,
// with the hash of the project that put it there.
type Table struct {
	Supported bool // the kernel can run the programs; when not, none are expected
	Entries   map[Entry]uint64
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
