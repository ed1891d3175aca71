package project

import (
	"fmt"
	"strings"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/forward/shortcut"
	"github.com/nsrun/nsrun/hostfw"
)

// Script renders, as a shell script, the ip, sysctl and firewall commands
// that build want by hand on a clean machine: what `nsrun plan` prints.
func Script(want *State, firewall forward.Firewall) (string, error) {
	fw := want.Firewall()
	var b strings.Builder
	fmt.Fprintf(&b, "#!/bin/sh\n# The commands equivalent to 'nsrun up' for project %s on a clean machine.\n", want.Project)
	fmt.Fprintf(&b, "# Remove the result with: sudo nsrun down -p %s (it finds the labelled links and chains).\nset -e\n\n", want.Project)
	b.WriteString("sysctl -w net.ipv4.ip_forward=1\n")
	for _, ns := range want.Namespaces {
		p := ns.Pair(want.Project)
		fmt.Fprintf(&b, "\n# namespace %s\n", ns.Name)
		fmt.Fprintf(&b, "ip netns add %s\n", ns.Name)
		fmt.Fprintf(&b, "ip -n %s link set lo up\n", ns.Name)
		fmt.Fprintf(&b, "ip link add %s type veth peer name %s netns %s\n", p.Host, p.Peer, ns.Name)
		fmt.Fprintf(&b, "ip link set %s alias %s\n", p.Host, p.Alias)
		fmt.Fprintf(&b, "ip addr add %s dev %s\n", p.HostAddr, p.Host)
		fmt.Fprintf(&b, "sysctl -w net.ipv4.conf.%s.route_localnet=1\n", strings.ReplaceAll(p.Host, ".", "/"))
		fmt.Fprintf(&b, "ip link set %s up\n", p.Host)
		fmt.Fprintf(&b, "ip -n %s addr add %s dev %s\n", ns.Name, p.PeerAddr, p.Peer)
		fmt.Fprintf(&b, "ip -n %s link set %s up\n", ns.Name, p.Peer)
		fmt.Fprintf(&b, "ip -n %s route add default via %s\n", ns.Name, p.HostAddr.Addr())
	}
	b.WriteString("\n# where firewalld runs, the links go in its zone trusted, at runtime (see README, Host firewalls)\n")
	b.WriteString("if firewall-cmd --state >/dev/null 2>&1; then\n")
	for _, ns := range want.Namespaces {
		fmt.Fprintf(&b, "\tfirewall-cmd --zone=%s --add-interface=%s\n", hostfw.Zone, ns.Link)
	}
	b.WriteString("fi\n")
	b.WriteString("\n# published ports, in nsrun's own chains\n")
	b.WriteString(firewall.Script(fw))
	if n := len(shortcut.Of(fw)); n > 0 {
		fmt.Fprintf(&b, "\n# nsrun up also sends TCP from this host to the %d port(s) published at 127.0.0.0/8\n", n)
		b.WriteString("# straight to the namespaces: its loopback shortcut, cgroup BPF programs that no\n")
		b.WriteString("# command here makes. Without it the rules above carry those connections.\n")
	}
	return b.String(), nil
}
