package project

import (
	"fmt"
	"strings"

	"github.com/nsrun/nsrun/cgroup"
	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/forward/nftables"
	"github.com/nsrun/nsrun/forward/shortcut"
	"github.com/nsrun/nsrun/host"
	"github.com/nsrun/nsrun/hostfw"
	"github.com/nsrun/nsrun/shape"
	"github.com/nsrun/nsrun/state"
)

// Script renders, as a shell script, the ip, sysctl and firewall commands
// that build want by hand on a clean machine, and the cgroups of its
// limits on that cgroup layout: what `nsrun plan` prints.
func Script(want *state.Record, firewall forward.Firewall, cg cgroup.Layout) (string, error) {
	fw := want.ForwardProject()
	var b strings.Builder
	fmt.Fprintf(&b, "#!/bin/sh\n# The commands equivalent to 'nsrun up' for project %s on a clean machine.\n", want.Project)
	fmt.Fprintf(&b, "# Remove the result with: sudo nsrun down -p %s (it finds the labelled links and chains).\nset -e\n\n", want.Project)
	b.WriteString("sysctl -w net.ipv4.ip_forward=1\n")
	if want.IPv6 {
		b.WriteString("# with IPv6 forwarding on, a link that learns its default route from router\n")
		b.WriteString("# advertisements keeps it only with accept_ra=2 (nsrun up sets that itself)\n")
		b.WriteString("sysctl -w net.ipv6.conf.all.forwarding=1\n")
	}
	for _, ns := range want.Namespaces {
		p := pair(ns, want.Project)
		fmt.Fprintf(&b, "\n# namespace %s\n", ns.Name)
		fmt.Fprintf(&b, "ip netns add %s\n", ns.Name)
		fmt.Fprintf(&b, "ip -n %s link set lo up\n", ns.Name)
		fmt.Fprintf(&b, "ip link add %s type veth peer name %s netns %s\n", p.Host, p.Peer, ns.Name)
		fmt.Fprintf(&b, "ip link set %s alias %s\n", p.Host, p.Alias)
		fmt.Fprintf(&b, "ip addr add %s dev %s\n", p.HostAddr, p.Host)
		fmt.Fprintf(&b, "sysctl -w net.ipv4.conf.%s.route_localnet=1\n", strings.ReplaceAll(p.Host, ".", "/"))
		if !p.IPv6() {
			// no IPv6 on the host side: no route of its own in the host's IPv6 table
			fmt.Fprintf(&b, "if [ -d /proc/sys/net/ipv6/conf/%s ]; then sysctl -w net.ipv6.conf.%s.disable_ipv6=1; fi\n", p.Host, strings.ReplaceAll(p.Host, ".", "/"))
		}
		if p.IPv6() {
			host := strings.ReplaceAll(p.Host, ".", "/")
			fmt.Fprintf(&b, "sysctl -w net.ipv6.conf.%s.accept_dad=0 net.ipv6.conf.%s.accept_ra=0 net.ipv6.conf.%s.autoconf=0\n", host, host, host)
			fmt.Fprintf(&b, "ip addr add %s dev %s nodad\n", p.HostAddr6, p.Host)
			fmt.Fprintf(&b, "ip netns exec %s sysctl -w net.ipv6.conf.%s.accept_dad=0 net.ipv6.conf.%s.accept_ra=0 net.ipv6.conf.%s.autoconf=0\n", ns.Name, p.Peer, p.Peer, p.Peer)
			fmt.Fprintf(&b, "ip -n %s addr add %s dev %s nodad\n", ns.Name, p.PeerAddr6, p.Peer)
		}
		fmt.Fprintf(&b, "ip link set %s up\n", p.Host)
		fmt.Fprintf(&b, "ip -n %s addr add %s dev %s\n", ns.Name, p.PeerAddr, p.Peer)
		fmt.Fprintf(&b, "ip -n %s link set %s up\n", ns.Name, p.Peer)
		fmt.Fprintf(&b, "ip -n %s route add default via %s\n", ns.Name, p.HostAddr.Addr())
		if p.IPv6() {
			fmt.Fprintf(&b, "ip -n %s -6 route add default via %s\n", ns.Name, p.HostAddr6.Addr())
		}
	}
	for _, ns := range want.Namespaces {
		if !shaped(ns) {
			continue
		}
		fmt.Fprintf(&b, "\n# shaping of namespace %s (%s): into it on %s, out of it on its %s\n", ns.Name, describeShaping(ns), ns.Link, host.PeerName)
		for _, c := range shape.Commands(ns.Name, ns.Link, host.PeerName, shaping(ns)) {
			b.WriteString(c + "\n")
		}
	}
	for _, ns := range want.Namespaces {
		if !ns.Cgroup {
			continue
		}
		fmt.Fprintf(&b, "\n# resource limits of namespace %s: its cgroup (%s), a leaf per process and one for\n", ns.Name, cg)
		fmt.Fprintf(&b, "# commands run in it by hand, which join it first: echo $$ > LEAF/cgroup.procs\n")
		for _, c := range cg.Commands(cgroupTree(ns)) {
			b.WriteString(c + "\n")
		}
	}
	b.WriteString("\n# where firewalld runs, the links go in its zone trusted, at runtime (see docs/firewalls.md, Host firewalls)\n")
	b.WriteString("if firewall-cmd --state >/dev/null 2>&1; then\n")
	for _, ns := range want.Namespaces {
		fmt.Fprintf(&b, "\tfirewall-cmd --zone=%s --add-interface=%s\n", hostfw.Zone, ns.Link)
	}
	b.WriteString("fi\n")
	b.WriteString("\n# published ports, in nsrun's own chains\n")
	b.WriteString(firewall.Script(fw))
	if elems := nftables.NewCountingFake().Script(fw); strings.Contains(elems, "element") {
		b.WriteString("\n# the counters of each way of the published ports' traffic, in table inet nsrun-count\n")
		b.WriteString("# (see docs/firewalls.md, The counting table)\n")
		b.WriteString(elems)
	}
	var n4, n6 int
	for _, e := range shortcut.Of(fw) {
		if e.Host.Addr().Is4() {
			n4++
		} else {
			n6++
		}
	}
	if n4 > 0 {
		fmt.Fprintf(&b, "\n# nsrun up also sends TCP from this host to the %d port(s) published at 127.0.0.0/8\n", n4)
		b.WriteString("# straight to the namespaces: its loopback shortcut, cgroup BPF programs that no\n")
		b.WriteString("# command here makes. Without it the rules above carry those connections.\n")
	}
	if n6 > 0 {
		fmt.Fprintf(&b, "\n# nsrun up also serves the %d TCP port(s) published on IPv6 at [::1], by the same\n", n6)
		b.WriteString("# shortcut. Nothing here can: the kernel lets no packet from ::1 leave the loopback.\n")
	}
	return b.String(), nil
}
