package veth

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"

	"github.com/nsrun/nsrun/internal/rtnl"
	"github.com/nsrun/nsrun/netns"
	"golang.org/x/sys/unix"
)

// Link is a host link as a dump shows it.
type Link struct {
	Name, Alias, Type string
	Index             int
	Up                bool
	Addrs             []netip.Prefix // IPv4
	Addrs6            []netip.Prefix // IPv6, link-local ones left out
	RouteLocalnet     string         // its route_localnet sysctl; "" when unknown
	Stats             *rtnl.Stats    // its counters, where they were read
}

// linkType names a link's kind as the netlink library does ("device"
// for one without a kind, "tuntap" for tun).
func linkType(kind string) string {
	switch kind {
	case "":
		return "device"
	case "tun":
		return "tuntap"
	}
	return kind
}

// Peer is the namespace side of a pair, as its namespace shows it.
type Peer struct {
	Exists      bool
	ParentIndex int // the index of the link it pairs with on the host
	Up          bool
	Addrs       []netip.Prefix // IPv4
	Gateways    []netip.Addr   // of its IPv4 default routes
	Addrs6      []netip.Prefix // IPv6, link-local ones left out
	Gateways6   []netip.Addr   // of its IPv6 default routes
	Cookie      uint64         // the namespace's (nsexec.Cookie); 0 when unknown
}

// ObservePeer reads the link named peer inside a namespace: one netlink
// socket there, one request each for the link, its addresses and its
// routes, all read through buf (of rtnl.BufferSize bytes at least). It
// reads the namespace's cookie too, from that socket.
func ObservePeer(ns, peer string, buf []byte) (Peer, error) {
	f, err := os.Open(netns.Path(ns))
	if err != nil {
		return Peer{}, fmt.Errorf("opening netns %q: %w", ns, err)
	}
	defer f.Close()
	c, err := rtnl.Dial(f, buf)
	if err != nil {
		return Peer{}, fmt.Errorf("netlink socket in netns %q: %w", ns, err)
	}
	defer c.Close()
	out := Peer{}
	out.Cookie, _ = c.Cookie() // 0 before Linux 5.14
	l, ok, err := c.Link(peer)
	if err != nil {
		return Peer{}, fmt.Errorf("looking up %q in netns %q: %w", peer, ns, err)
	}
	if !ok {
		return out, nil
	}
	out.Exists, out.ParentIndex, out.Up = true, l.ParentIndex, l.Up
	// A link deleted meanwhile is missing, as if the lookup had come later.
	addrs, err := c.Addrs(l.Index)
	if errors.Is(err, unix.ENODEV) {
		return Peer{Cookie: out.Cookie}, nil
	}
	if err != nil {
		return Peer{}, fmt.Errorf("listing addresses of %q in netns %q: %w", peer, ns, err)
	}
	for _, p := range addrs {
		switch {
		case p.Addr().IsLinkLocalUnicast():
		case p.Addr().Is4():
			out.Addrs = append(out.Addrs, p)
		default:
			out.Addrs6 = append(out.Addrs6, p)
		}
	}
	gateways, err := c.DefaultGateways(l.Index)
	if errors.Is(err, unix.ENODEV) {
		return Peer{Cookie: out.Cookie}, nil
	}
	if err != nil {
		return Peer{}, fmt.Errorf("listing routes in netns %q: %w", ns, err)
	}
	for _, gw := range gateways {
		if gw.Is4() {
			out.Gateways = append(out.Gateways, gw)
		} else {
			out.Gateways6 = append(out.Gateways6, gw)
		}
	}
	return out, nil
}

// Drift reports how a pair differs from p, one line per difference, given
// what was observed: its host side (nil when there is no such link), that
// link's route_localnet and its namespace side. Pure.
func Drift(p Pair, host *Link, routeLocalnet string, peer Peer) []string {
	if host == nil {
		return []string{fmt.Sprintf("link %s is missing", p.Host)}
	}
	if host.Type != "veth" {
		return []string{fmt.Sprintf("link %s is a %s, not a veth", p.Host, host.Type)}
	}
	var out []string
	if !host.Up {
		out = append(out, fmt.Sprintf("link %s is down", p.Host))
	}
	if host.Alias != p.Alias {
		out = append(out, fmt.Sprintf("link %s is labelled %q, not %q", p.Host, host.Alias, p.Alias))
	}
	if !slices.Contains(host.Addrs, p.HostAddr) {
		out = append(out, fmt.Sprintf("link %s lacks its address %s", p.Host, p.HostAddr))
	}
	if routeLocalnet != "1" {
		out = append(out, fmt.Sprintf("route_localnet is off on link %s", p.Host))
	}
	switch {
	case !peer.Exists:
		return append(out, fmt.Sprintf("%s in namespace %s is missing", p.Peer, p.Namespace))
	case peer.ParentIndex != host.Index:
		return append(out, fmt.Sprintf("%s in namespace %s is not the peer of %s", p.Peer, p.Namespace, p.Host))
	}
	if !peer.Up {
		out = append(out, fmt.Sprintf("%s in namespace %s is down", p.Peer, p.Namespace))
	}
	if !slices.Contains(peer.Addrs, p.PeerAddr) {
		out = append(out, fmt.Sprintf("%s in namespace %s lacks its address %s", p.Peer, p.Namespace, p.PeerAddr))
	}
	if !slices.Contains(peer.Gateways, p.HostAddr.Addr()) {
		out = append(out, fmt.Sprintf("namespace %s has no default route via %s", p.Namespace, p.HostAddr.Addr()))
	}
	if !p.IPv6() {
		return out
	}
	if !slices.Contains(host.Addrs6, p.HostAddr6) {
		out = append(out, fmt.Sprintf("link %s lacks its address %s", p.Host, p.HostAddr6))
	}
	if !slices.Contains(peer.Addrs6, p.PeerAddr6) {
		out = append(out, fmt.Sprintf("%s in namespace %s lacks its address %s", p.Peer, p.Namespace, p.PeerAddr6))
	}
	if !slices.Contains(peer.Gateways6, p.HostAddr6.Addr()) {
		out = append(out, fmt.Sprintf("namespace %s has no IPv6 default route via %s", p.Namespace, p.HostAddr6.Addr()))
	}
	return out
}
