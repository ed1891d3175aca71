package veth

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// HostPrefix is a prefix the host routes or owns, and the link it
// belongs to.
type HostPrefix struct {
	Prefix netip.Prefix
	Link   string
	What   string // "route" or "address"
}

// HostPrefixes lists the host's routes of both families (all tables,
// default routes and link-local ones left out) and the addresses of its links, as HostLinks returned them,
// for overlap checks before any change.
func HostPrefixes(links map[string]Link) ([]HostPrefix, error) {
	names := map[int]string{}
	var out []HostPrefix
	for _, l := range links {
		names[l.Index] = l.Name
		for _, p := range append(slices.Clone(l.Addrs), l.Addrs6...) {
			out = append(out, HostPrefix{Prefix: p.Masked(), Link: l.Name, What: "address"})
		}
	}
	routes, err := routeList()
	if err != nil {
		return nil, err
	}
	for _, r := range routes {
		if r.Dst == nil || r.Type != unix.RTN_UNICAST {
			continue
		}
		if p, ok := prefixOf(r.Dst); ok && p.Bits() > 0 && !p.Addr().IsLinkLocalUnicast() {
			out = append(out, HostPrefix{Prefix: p.Masked(), Link: names[r.LinkIndex], What: "route"})
		}
	}
	return out, nil
}

// routeList lists the unicast routes of both families in every table.
func routeList() ([]netlink.Route, error) {
	filter := &netlink.Route{Table: unix.RT_TABLE_UNSPEC, Type: unix.RTN_UNICAST}
	routes, err := filteredRoutes(unix.AF_UNSPEC, filter, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_TYPE)
	if err != nil {
		return nil, fmt.Errorf("listing routes: %w", err)
	}
	return routes, nil
}

// filteredRoutes dumps the routes of a family that match filter on the
// fields in mask. On a socket that asks for strict checks (Linux 4.20 on)
// the kernel sends only the routes of the filter's table, protocol and
// type, which spares reading the host's local and broadcast routes (most
// of them: three per address); the library filters again, as it does
// where the kernel cannot.
func filteredRoutes(family int, filter *netlink.Route, mask uint64) ([]netlink.Route, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	_ = h.SetStrictCheck(true) // refused by older kernels: the library's filter stays
	return dump(func() ([]netlink.Route, error) { return h.RouteListFiltered(family, filter, mask) })
}

// dump retries a netlink dump that was interrupted by a concurrent change.
func dump[T any](f func() (T, error)) (T, error) {
	for i := 0; ; i++ {
		v, err := f()
		if errors.Is(err, netlink.ErrDumpInterrupted) && i < 5 {
			continue
		}
		return v, err
	}
}

// Labelled is a host link carrying an nsrun label.
type Labelled struct {
	Name, Project, Namespace string
}

// ListLabelled returns the host links labelled by nsrun.
func ListLabelled() ([]Labelled, error) {
	links, err := dump(netlink.LinkList)
	if err != nil {
		return nil, fmt.Errorf("listing links: %w", err)
	}
	var out []Labelled
	for _, l := range links {
		if project, ns, ok := ParseLabel(l.Attrs().Alias); ok {
			out = append(out, Labelled{Name: l.Attrs().Name, Project: project, Namespace: ns})
		}
	}
	return out, nil
}

// RADefaultLinks lists the links that have an IPv6 default route learned
// from router advertisements (proto ra), sorted.
func RADefaultLinks() ([]string, error) {
	filter := &netlink.Route{Table: unix.RT_TABLE_MAIN, Protocol: unix.RTPROT_RA}
	routes, err := filteredRoutes(unix.AF_INET6, filter, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return nil, fmt.Errorf("listing IPv6 routes: %w", err)
	}
	var out []string
	for _, r := range routes {
		if r.Protocol != unix.RTPROT_RA || !isDefault(r) {
			continue
		}
		indexes := []int{r.LinkIndex}
		for _, nh := range r.MultiPath { // several routers
			indexes = append(indexes, nh.LinkIndex)
		}
		for _, i := range indexes {
			if l, err := netlink.LinkByIndex(i); err == nil && !slices.Contains(out, l.Attrs().Name) {
				out = append(out, l.Attrs().Name)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// isDefault reports whether a route is a default route (no destination,
// or ::/0).
func isDefault(r netlink.Route) bool {
	if r.Dst == nil {
		return true
	}
	ones, _ := r.Dst.Mask.Size()
	return ones == 0
}
