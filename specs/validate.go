package specs

import (
	"net/netip"
	"sort"
)

// checkProcessNames reports run entries of one namespace sharing a name.
func (d *decoder) checkProcessNames(ns *Namespace, path string) {
	first := make(map[string]int, len(ns.Run))
	for i, p := range ns.Run {
		if j, dup := first[p.Name]; dup {
			d.add(p.pos, index(join(path, "run"), i), "process name %s is already used by run[%d] (line %d); give each a distinct name:",
				quote(p.Name), j, ns.Run[j].pos.Line)
			continue
		}
		first[p.Name] = i
	}
}

// checkIPv6 reports IPv6 keys and host addresses in a spec without
// ipv6: true, and gives every namespace of a spec with it an automatic
// IPv6 address unless it has its own.
func (d *decoder) checkIPv6(s *Spec, subnet6Pos position) {
	const how = "set ipv6: true at the top of the spec to turn IPv6 on"
	for _, ns := range s.Namespaces {
		for _, p := range ns.Ports {
			if p.HostIP == netip.IPv6Loopback() && p.Protocol == UDP {
				d.add(p.pos, index(join(join("namespaces", ns.Name), "ports"), p.item), "UDP cannot be published on [::1]: the kernel lets no packet from ::1 leave the loopback, and the loopback shortcut serves TCP only; publish it on [::] or 127.0.0.1")
			}
		}
	}
	if s.IPv6 {
		for _, ns := range s.Namespaces {
			ns.AutoAddress6 = !ns.Address6.IsValid()
		}
		return
	}
	if s.Subnet6Set {
		d.add(subnet6Pos, "subnet6", "subnet6 is set but IPv6 is off; %s", how)
	}
	for _, ns := range s.Namespaces {
		path := join("namespaces", ns.Name)
		if ns.Address6.IsValid() {
			d.add(ns.address6Pos, join(path, "address6"), "address6 is set but IPv6 is off; %s", how)
		}
		for _, p := range ns.Ports {
			if p.Is6() {
				d.add(p.pos, index(join(path, "ports"), p.item), "port %s is published on IPv6 address %s but IPv6 is off; %s", p, p.HostIP, how)
			}
		}
	}
}

// twinPorts publishes, in a spec with ipv6: true, each port given without
// a host address on :: too, right after its IPv4 twin (as Docker does).
func twinPorts(s *Spec) {
	if !s.IPv6 {
		return
	}
	for _, ns := range s.Namespaces {
		var ports []Port
		for _, p := range ns.Ports {
			ports = append(ports, p)
			if p.Both {
				p.HostIP = netip.IPv6Unspecified()
				ports = append(ports, p)
			}
		}
		ns.Ports = ports
	}
}

// checkSpec checks what involves several namespaces: derived link names,
// overlapping addresses and host ports published twice.
func (d *decoder) checkSpec(s *Spec) {
	d.checkLimits(s)
	links := make(map[string]*Namespace, len(s.Namespaces))
	for _, ns := range s.Namespaces {
		if other, dup := links[ns.HostLink]; dup {
			d.add(ns.pos, join("namespaces", ns.Name), "host link name %s derived from this name is also derived from %s; rename one of them",
				quote(ns.HostLink), quote(other.Name))
		}
		links[ns.HostLink] = ns
	}
	for i, ns := range s.Namespaces {
		if !ns.Address6.IsValid() {
			continue
		}
		for _, other := range s.Namespaces[:i] {
			if other.Address6.IsValid() && ns.Address6.Masked().Overlaps(other.Address6.Masked()) {
				d.add(ns.address6Pos, join(join("namespaces", ns.Name), "address6"),
					"address6 %s overlaps %s of namespace %s (line %d); give each namespace its own subnet",
					ns.Address6, other.Address6.Masked(), quote(other.Name), other.address6Pos.Line)
			}
		}
	}
	for i, ns := range s.Namespaces {
		if ns.AutoAddress {
			continue
		}
		for _, other := range s.Namespaces[:i] {
			if !other.AutoAddress && ns.Address.Masked().Overlaps(other.Address.Masked()) {
				d.add(ns.addressPos, join(join("namespaces", ns.Name), "address"),
					"address %s overlaps %s of namespace %s (line %d); give each namespace its own subnet",
					ns.Address, other.Address.Masked(), quote(other.Name), other.addressPos.Line)
			}
		}
	}
	d.checkPublished(s)
}

// published is a port with the path it was written at, for messages.
type published struct {
	Port
	path string
}

// checkPublished reports host ports published twice for one protocol on
// the same host address (0.0.0.0 covers every address).
func (d *decoder) checkPublished(s *Spec) {
	var all []published
	for _, ns := range s.Namespaces {
		for _, p := range ns.Ports {
			all = append(all, published{p, index(join(join("namespaces", ns.Name), "ports"), p.item)})
		}
	}
	sort.SliceStable(all, func(i, j int) bool {
		if all[i].Protocol != all[j].Protocol {
			return all[i].Protocol < all[j].Protocol
		}
		return all[i].Published.First < all[j].Published.First
	})
	for i, a := range all {
		for _, b := range all[i+1:] {
			if b.Protocol != a.Protocol || b.Published.First > a.Published.Last {
				break
			}
			if sameHostIP(a.HostIP, b.HostIP) {
				first, second := a, b
				if (b.pos.Line < a.pos.Line) || (b.pos.Line == a.pos.Line && b.pos.Col < a.pos.Col) {
					first, second = b, a
				}
				d.add(second.pos, second.path, "host port %s/%s on %s is already published by %s (line %d); publish another host port",
					second.Published, second.Protocol, HostIPText(second.HostIP), first.path, first.pos.Line)
			}
		}
	}
}

// Conflicts reports whether two ports publish a common host port for the
// same protocol on a common host address.
func Conflicts(a, b Port) bool {
	return a.Protocol == b.Protocol && a.Published.Overlaps(b.Published) && sameHostIP(a.HostIP, b.HostIP)
}

// sameHostIP reports whether two host addresses publish on a common
// address: 0.0.0.0 covers every IPv4 address, :: every IPv6 one.
func sameHostIP(a, b netip.Addr) bool {
	return a == b || (a.Is4() == b.Is4() && (a.IsUnspecified() || b.IsUnspecified()))
}

// Limits on the size of a spec: beyond them a spec is a mistake or an
// attack, and would make up slow for everyone.
const (
	MaxNamespaces = 1024
	MaxPorts      = 4096 // port entries (a range counts once)
	MaxProcesses  = 1024
)

func (d *decoder) checkLimits(s *Spec) {
	var ports, procs int
	for _, ns := range s.Namespaces {
		ports += len(ns.Ports)
		procs += len(ns.Run)
	}
	for _, l := range []struct {
		n, max int
		what   string
	}{{len(s.Namespaces), MaxNamespaces, "namespaces"}, {ports, MaxPorts, "port entries"}, {procs, MaxProcesses, "run entries"}} {
		if l.n > l.max {
			d.add(position{1, 1}, "", "spec has %d %s; the limit is %d (use port ranges, or split the spec into projects)", l.n, l.what, l.max)
		}
	}
}
