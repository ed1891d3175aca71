package veth

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/nsrun/nsrun/netns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Link is a host link as a dump shows it.
type Link struct {
	Name, Alias, Type string
	Index             int
	Up                bool
	Addrs             []netip.Prefix // IPv4
}

// HostLinks returns the host's links by name with their IPv4 addresses,
// from one dump of the links and one of the addresses.
func HostLinks() (map[string]Link, error) {
	links, err := dump(netlink.LinkList)
	if err != nil {
		return nil, fmt.Errorf("listing links: %w", err)
	}
	addrs, err := dump(func() ([]netlink.Addr, error) { return netlink.AddrList(nil, unix.AF_INET) })
	if err != nil {
		return nil, fmt.Errorf("listing addresses: %w", err)
	}
	out := make(map[string]Link, len(links))
	names := make(map[int]string, len(links))
	for _, l := range links {
		a := l.Attrs()
		out[a.Name] = Link{Name: a.Name, Alias: a.Alias, Type: l.Type(), Index: a.Index, Up: a.Flags&net.FlagUp != 0}
		names[a.Index] = a.Name
	}
	for _, a := range addrs {
		if p, ok := prefixOf(a.IPNet); ok {
			l := out[names[a.LinkIndex]]
			l.Addrs = append(l.Addrs, p)
			out[names[a.LinkIndex]] = l
		}
	}
	return out, nil
}

// Peer is the namespace side of a pair, as its namespace shows it.
type Peer struct {
	Exists      bool
	ParentIndex int // the index of the link it pairs with on the host
	Up          bool
	Addrs       []netip.Prefix // IPv4
	Gateways    []netip.Addr   // of its IPv4 default routes
}

// ObservePeer reads the link named peer inside a namespace: one netlink
// socket there, one request each for the link, its addresses and its
// routes.
func ObservePeer(ns, peer string) (Peer, error) {
	h, err := netns.Netlink(ns)
	if err != nil {
		return Peer{}, err
	}
	defer h.Close()
	l, err := h.LinkByName(peer)
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) {
		return Peer{}, nil
	}
	if err != nil {
		return Peer{}, fmt.Errorf("looking up %q in netns %q: %w", peer, ns, err)
	}
	out := Peer{Exists: true, ParentIndex: l.Attrs().ParentIndex, Up: l.Attrs().Flags&net.FlagUp != 0}
	addrs, err := dump(func() ([]netlink.Addr, error) { return h.AddrList(l, unix.AF_INET) })
	if err != nil {
		return Peer{}, fmt.Errorf("listing addresses of %q in netns %q: %w", peer, ns, err)
	}
	for _, a := range addrs {
		if p, ok := prefixOf(a.IPNet); ok {
			out.Addrs = append(out.Addrs, p)
		}
	}
	routes, err := dump(func() ([]netlink.Route, error) { return h.RouteList(l, unix.AF_INET) })
	if err != nil {
		return Peer{}, fmt.Errorf("listing routes in netns %q: %w", ns, err)
	}
	for _, r := range routes {
		if gw, ok := netip.AddrFromSlice(r.Gw); ok && (r.Dst == nil || r.Dst.IP.IsUnspecified()) {
			out.Gateways = append(out.Gateways, gw.Unmap())
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
	return out
}
