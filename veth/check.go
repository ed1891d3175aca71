package veth

import (
	"fmt"
	"net"

	"github.com/nsrun/nsrun/netns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Check reports how the pair on the host differs from p, one line per
// difference; none when it is as described.
func Check(p Pair) []string {
	host, err := netlink.LinkByName(p.Host)
	if err != nil {
		return []string{fmt.Sprintf("link %s is missing", p.Host)}
	}
	var out []string
	if host.Type() != "veth" {
		return []string{fmt.Sprintf("link %s is a %s, not a veth", p.Host, host.Type())}
	}
	if host.Attrs().Flags&net.FlagUp == 0 {
		out = append(out, fmt.Sprintf("link %s is down", p.Host))
	}
	if host.Attrs().Alias != p.Alias {
		out = append(out, fmt.Sprintf("link %s is labelled %q, not %q", p.Host, host.Attrs().Alias, p.Alias))
	}
	if !hasAddr(netlink.AddrList, host, p) {
		out = append(out, fmt.Sprintf("link %s lacks its address %s", p.Host, p.HostAddr))
	}
	if v, _ := GetSysctl(LinkSysctl(p.Host, "route_localnet")); v != "1" {
		out = append(out, fmt.Sprintf("route_localnet is off on link %s", p.Host))
	}
	nh, err := netns.Netlink(p.Namespace)
	if err != nil {
		return append(out, fmt.Sprintf("namespace %s cannot be opened", p.Namespace))
	}
	defer nh.Close()
	peer, err := nh.LinkByName(p.Peer)
	switch {
	case err != nil:
		return append(out, fmt.Sprintf("%s in namespace %s is missing", p.Peer, p.Namespace))
	case peer.Attrs().ParentIndex != host.Attrs().Index:
		return append(out, fmt.Sprintf("%s in namespace %s is not the peer of %s", p.Peer, p.Namespace, p.Host))
	}
	if peer.Attrs().Flags&net.FlagUp == 0 {
		out = append(out, fmt.Sprintf("%s in namespace %s is down", p.Peer, p.Namespace))
	}
	peerP := p
	peerP.HostAddr = p.PeerAddr
	if !hasAddr(nh.AddrList, peer, peerP) {
		out = append(out, fmt.Sprintf("%s in namespace %s lacks its address %s", p.Peer, p.Namespace, p.PeerAddr))
	}
	if !hasDefaultRoute(nh, peer, p) {
		out = append(out, fmt.Sprintf("namespace %s has no default route via %s", p.Namespace, p.HostAddr.Addr()))
	}
	return out
}

func hasAddr(list func(netlink.Link, int) ([]netlink.Addr, error), link netlink.Link, p Pair) bool {
	addrs, err := dump(func() ([]netlink.Addr, error) { return list(link, unix.AF_INET) })
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if got, ok := prefixOf(a.IPNet); ok && got == p.HostAddr {
			return true
		}
	}
	return false
}

func hasDefaultRoute(nh *netlink.Handle, peer netlink.Link, p Pair) bool {
	routes, err := dump(func() ([]netlink.Route, error) { return nh.RouteList(peer, unix.AF_INET) })
	if err != nil {
		return false
	}
	gw := net.IP(p.HostAddr.Addr().AsSlice())
	for _, r := range routes {
		if (r.Dst == nil || r.Dst.IP.IsUnspecified()) && r.Gw.Equal(gw) {
			return true
		}
	}
	return false
}
