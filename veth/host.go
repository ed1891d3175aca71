package veth

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/nsrun/nsrun/internal/rtnl"
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

// Host is one read of the host: its links with their addresses, and
// what its routes say.
type Host struct {
	Links map[string]Link
	// Prefixes are the host's routes of both families (all tables,
	// default routes and link-local ones left out) and its links'
	// addresses, for overlap checks before any change.
	Prefixes []HostPrefix
	// Uplinks are the links of the IPv4 default routes of the main table;
	// RADefault those of IPv6 default routes there learned from router
	// advertisements (proto ra). Both sorted.
	Uplinks, RADefault []string
}

// ReadHost reads the host's links, addresses and unicast routes: one
// dump of each.
func ReadHost() (Host, error) {
	c, err := rtnl.Dial(nil, make([]byte, rtnl.BufferSize))
	if err != nil {
		return Host{}, fmt.Errorf("listing links: %w", err)
	}
	defer c.Close()
	links, err := hostLinks(c)
	if err != nil {
		return Host{}, err
	}
	routes, err := c.UnicastRoutes()
	if err != nil {
		return Host{}, fmt.Errorf("listing routes: %w", err)
	}
	return hostOf(links, routes), nil
}

// hostOf is what the links and the routes say.
func hostOf(links map[string]Link, routes []rtnl.Route) Host {
	h := Host{Links: links}
	names := map[int]string{}
	for _, l := range links {
		names[l.Index] = l.Name
		for _, p := range append(slices.Clone(l.Addrs), l.Addrs6...) {
			h.Prefixes = append(h.Prefixes, HostPrefix{Prefix: p.Masked(), Link: l.Name, What: "address"})
		}
	}
	addLinks := func(to *[]string, indexes []int) {
		for _, i := range indexes {
			if name, ok := names[i]; ok && !slices.Contains(*to, name) {
				*to = append(*to, name)
			}
		}
	}
	for _, r := range routes {
		switch {
		case r.Dst.Bits() > 0 && !r.Dst.Addr().IsLinkLocalUnicast():
			link := ""
			if len(r.Links) > 0 {
				link = names[r.Links[0]]
			}
			h.Prefixes = append(h.Prefixes, HostPrefix{Prefix: r.Dst.Masked(), Link: link, What: "route"})
		case r.Dst.Bits() > 0 || r.Table != unix.RT_TABLE_MAIN:
			// a link-local route, or a default route of another table
		case r.Dst.Addr().Is4():
			addLinks(&h.Uplinks, r.Links)
		case r.Protocol == unix.RTPROT_RA:
			addLinks(&h.RADefault, r.Links)
		}
	}
	slices.Sort(h.Uplinks)
	slices.Sort(h.RADefault)
	return h
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
