// Package veth joins named namespaces to the host with veth pairs: links,
// addresses, routes, link state and the sysctls that go with them. It
// speaks netlink only (no `ip` binary), through handles bound to each
// namespace, so no thread ever changes namespace.
package veth

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/nsrun/nsrun/internal/sysctl"
	"github.com/nsrun/nsrun/netns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Pair is a veth pair joining the host to a named namespace.
type Pair struct {
	Host      string       // host-side name
	Namespace string       // netns name
	Peer      string       // name inside the namespace, e.g. eth0
	HostAddr  netip.Prefix // host side
	PeerAddr  netip.Prefix // namespace side; its default route goes via HostAddr
	// HostAddr6 and PeerAddr6 are the IPv6 twins, invalid for a pair
	// without IPv6.
	HostAddr6 netip.Prefix
	PeerAddr6 netip.Prefix
	Alias     string // label on the host side, see Label
}

// IPv6 reports whether the pair has IPv6 addresses.
func (p Pair) IPv6() bool { return p.PeerAddr6.IsValid() }

// noAutoconf are the IPv6 sysctls set on both sides of a pair with IPv6
// before its link is up: no duplicate address detection, so that a
// server can bind the address the moment up returns (moby#42830), and no
// router advertisements or addresses of their own making.
var noAutoconf = [][2]string{{"accept_dad", "0"}, {"accept_ra", "0"}, {"autoconf", "0"}}

// ipv6Host sets the host side's IPv6 sysctls, before it is up. A pair
// with IPv6 gets noAutoconf, and IPv6 on (a link made for a project
// without it had it off). One without has IPv6 off on the host side
// (disable_ipv6), set when the pair is made: no link-local address, and
// so no route of its own in the host's IPv6 table, which the kernel walks
// whole each time any link comes up or goes: with thousands of links, one
// such route each made up and down grow with the square of their number.
// A host without IPv6 has no such sysctl, and nothing to turn off.
func ipv6Host(p Pair, fresh bool) error {
	if !p.IPv6() {
		if _, err := sysctl.Get(sysctl.Link6(p.Host, "disable_ipv6")); fresh && err == nil {
			return sysctl.Set(sysctl.Link6(p.Host, "disable_ipv6"), "1")
		}
		return nil
	}
	for _, kv := range noAutoconf {
		if err := sysctl.Set(sysctl.Link6(p.Host, kv[0]), kv[1]); err != nil {
			return err
		}
	}
	if v, err := sysctl.Get(sysctl.Link6(p.Host, "disable_ipv6")); err == nil && v == "1" {
		return sysctl.Set(sysctl.Link6(p.Host, "disable_ipv6"), "0")
	}
	return nil
}

// Label is the alias nsrun puts on a host-side link, so that leftovers can
// be found and attributed even when state is lost.
func Label(project, ns string) string { return "nsrun:" + project + "/" + ns }

// ParseLabel splits a label made by Label.
func ParseLabel(alias string) (project, ns string, ok bool) {
	rest, ok := strings.CutPrefix(alias, "nsrun:")
	if !ok {
		return "", "", false
	}
	project, ns, ok = strings.Cut(rest, "/")
	return project, ns, ok && project != "" && ns != ""
}

// ErrForeign marks a link that exists with nsrun's name but is not a veth
// nsrun could have made; nsrun leaves it alone.
var ErrForeign = errors.New("interface exists and is not an nsrun veth")

// Ensure makes the pair exist as described: it creates what is missing
// (the peer directly inside the namespace), fixes addresses, brings both
// sides up and sets the default routes inside. It changes nothing that is
// already right.
func Ensure(p Pair) error {
	hh, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink handle: %w", err)
	}
	defer hh.Close()
	nh, err := netns.Netlink(p.Namespace)
	if err != nil {
		return err
	}
	defer nh.Close()
	host, fresh, err := ensureLink(p, hh, nh)
	if err != nil {
		return err
	}
	if err := ensureHostSide(p, hh, host, fresh); err != nil {
		return err
	}
	return ensurePeerSide(p, nh, fresh)
}

// ensureLink returns the host side, creating the pair when it is missing
// or when its peer is not inside the namespace; fresh reports a new pair.
func ensureLink(p Pair, hh, nh *netlink.Handle) (link netlink.Link, fresh bool, err error) {
	host, err := hh.LinkByName(p.Host)
	var notFound netlink.LinkNotFoundError
	switch {
	case errors.As(err, &notFound):
		link, err := create(p, hh)
		return link, true, err
	case err != nil:
		return nil, false, fmt.Errorf("looking up link %q: %w", p.Host, err)
	case host.Type() != "veth":
		return nil, false, fmt.Errorf("link %q is a %s: %w; rename the namespace or remove the link", p.Host, host.Type(), ErrForeign)
	}
	if peer, err := nh.LinkByName(p.Peer); err == nil && peer.Attrs().ParentIndex == host.Attrs().Index {
		return host, false, nil
	}
	if host.Attrs().Alias != p.Alias {
		return nil, false, fmt.Errorf("link %q joins another namespace and is labelled %q: %w", p.Host, host.Attrs().Alias, ErrForeign)
	}
	// Ours, but its peer is gone or elsewhere: make it again.
	if err := Delete(p.Host); err != nil {
		return nil, false, err
	}
	link, err = create(p, hh)
	return link, true, err
}

// create makes the pair, the peer directly inside the namespace (moving
// it there afterwards would wait on the network stack), down: its IPv6
// sysctls are set before it is up (see ipv6Host).
func create(p Pair, hh *netlink.Handle) (netlink.Link, error) {
	ns, err := netns.Handle(p.Namespace)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	attrs := netlink.NewLinkAttrs()
	attrs.Name = p.Host
	link := &netlink.Veth{LinkAttrs: attrs, PeerName: p.Peer, PeerNamespace: netlink.NsFd(int(ns))}
	if err := hh.LinkAdd(link); err != nil {
		return nil, fmt.Errorf("creating veth %q with peer %q in netns %q: %w", p.Host, p.Peer, p.Namespace, err)
	}
	// LinkAdd looked the new link up by name for its index; the rest of
	// what another lookup would return is what was asked for (down, no
	// alias, no address). Each lookup of a host side costs the kernel a
	// walk of the ids of every namespace the host knows.
	if link.Index == 0 {
		return nil, fmt.Errorf("veth %q was created but cannot be found; run nsrun up again", p.Host)
	}
	return link, nil
}

func ensureHostSide(p Pair, hh *netlink.Handle, host netlink.Link, fresh bool) error {
	if host.Attrs().Alias != p.Alias {
		if err := hh.LinkSetAlias(host, p.Alias); err != nil {
			return fmt.Errorf("labelling link %q: %w", p.Host, err)
		}
	}
	if err := setAddr(hh, host, p.HostAddr, fresh); err != nil {
		return err
	}
	if err := ipv6Host(p, fresh); err != nil {
		return err
	}
	if p.IPv6() {
		if err := setAddr(hh, host, p.HostAddr6, fresh); err != nil {
			return err
		}
	}
	// route_localnet lets DNAT'd connections from 127.0.0.0/8 leave through
	// this link; the INPUT guard keeps it from exposing the host's loopback.
	if err := sysctl.SetLink(p.Host, "route_localnet", "1"); err != nil {
		return err
	}
	if host.Attrs().Flags&net.FlagUp == 0 {
		if err := hh.LinkSetUp(host); err != nil {
			return fmt.Errorf("setting link %q up: %w", p.Host, err)
		}
	}
	return nil
}

func ensurePeerSide(p Pair, nh *netlink.Handle, fresh bool) error {
	peer, err := nh.LinkByName(p.Peer)
	if err != nil {
		return fmt.Errorf("looking up %q in netns %q: %w", p.Peer, p.Namespace, err)
	}
	if err := setAddr(nh, peer, p.PeerAddr, fresh); err != nil {
		return fmt.Errorf("netns %q: %w", p.Namespace, err)
	}
	if p.IPv6() {
		if err := netns.Do(p.Namespace, func() error {
			for _, kv := range noAutoconf {
				if err := sysctl.Set(sysctl.Link6(p.Peer, kv[0]), kv[1]); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return fmt.Errorf("netns %q: %w", p.Namespace, err)
		}
		if err := setAddr(nh, peer, p.PeerAddr6, fresh); err != nil {
			return fmt.Errorf("netns %q: %w", p.Namespace, err)
		}
	}
	if peer.Attrs().Flags&net.FlagUp == 0 {
		if err := nh.LinkSetUp(peer); err != nil {
			return fmt.Errorf("setting %q up in netns %q: %w", p.Peer, p.Namespace, err)
		}
	}
	if lo, err := nh.LinkByName("lo"); err == nil && lo.Attrs().Flags&net.FlagUp == 0 {
		if err := nh.LinkSetUp(lo); err != nil {
			return fmt.Errorf("setting lo up in netns %q: %w", p.Namespace, err)
		}
	}
	gateways := []netip.Prefix{p.HostAddr}
	if p.IPv6() {
		gateways = append(gateways, p.HostAddr6)
	}
	for _, gw := range gateways {
		route := &netlink.Route{LinkIndex: peer.Attrs().Index, Gw: net.IP(gw.Addr().AsSlice()), Family: family(gw.Addr())}
		if err := nh.RouteReplace(route); err != nil {
			return fmt.Errorf("default route via %s in netns %q: %w", gw.Addr(), p.Namespace, err)
		}
	}
	return nil
}

func family(a netip.Addr) int {
	if a.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

// setAddr gives a link its address: on a fresh link it just adds it, on
// an old one it makes it the only address of its family (link-local IPv6
// addresses aside).
func setAddr(h *netlink.Handle, link netlink.Link, want netip.Prefix, fresh bool) error {
	if !fresh {
		return ensureAddr(h, link, want)
	}
	return addAddr(h, link, want)
}

// ensureAddr makes want the only address of its family on link, leaving
// link-local IPv6 addresses alone.
func ensureAddr(h *netlink.Handle, link netlink.Link, want netip.Prefix) error {
	addrs, err := dump(func() ([]netlink.Addr, error) { return h.AddrList(link, family(want.Addr())) })
	if err != nil {
		return fmt.Errorf("listing addresses of %q: %w", link.Attrs().Name, err)
	}
	have := false
	for _, a := range addrs {
		p, ok := prefixOf(a.IPNet)
		if ok && p.Addr().IsLinkLocalUnicast() {
			continue
		}
		if ok && p == want {
			have = true
			continue
		}
		if err := h.AddrDel(link, &a); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("removing address %s from %q: %w", a.IPNet, link.Attrs().Name, err)
		}
	}
	if have {
		return nil
	}
	return addAddr(h, link, want)
}

// addAddr adds an address to a link; one it already has is no error.
// IPv6 addresses skip duplicate address detection (IFA_F_NODAD): the
// link joins only the host and one namespace, and a tentative address
// cannot be bound.
func addAddr(h *netlink.Handle, link netlink.Link, want netip.Prefix) error {
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: net.IP(want.Addr().AsSlice()), Mask: net.CIDRMask(want.Bits(), want.Addr().BitLen())}}
	if want.Addr().Is6() {
		addr.Flags = unix.IFA_F_NODAD
	}
	if err := h.AddrAdd(link, addr); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("adding address %s to %q: %w", want, link.Attrs().Name, err)
	}
	return nil
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	bits, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), bits), true
}

// Delete removes a host-side link, and with it its peer. A missing link is
// not an error.
func Delete(host string) error {
	link, err := netlink.LinkByName(host)
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("looking up link %q: %w", host, err)
	}
	if err := netlink.LinkDel(link); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("deleting link %q: %w", host, err)
	}
	return nil
}

// WaitGone waits up to timeout for host-side links to go, as they do once
// their peers' namespaces are destroyed, then deletes those still there.
// Letting the kernel remove many pairs with their namespaces is much
// faster than deleting each link, which waits for the network stack to
// settle. Each look is one dump of the host's links, for all of them.
func WaitGone(names []string, timeout time.Duration) error {
	left := names
	for deadline := time.Now().Add(timeout); len(left) > 0 && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		links, err := dump(netlink.LinkList)
		if err != nil {
			return fmt.Errorf("listing links: %w", err)
		}
		present := map[string]bool{}
		for _, l := range links {
			present[l.Attrs().Name] = true
		}
		left = slices.DeleteFunc(slices.Clone(left), func(n string) bool { return !present[n] })
	}
	var errs []error
	for _, name := range left {
		errs = append(errs, Delete(name))
	}
	return errors.Join(errs...)
}
