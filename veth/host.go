package veth

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

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

// Host is one read of the host: the links asked for with their
// addresses, and what the host's addresses and routes say.
type Host struct {
	Links map[string]Link // the links asked for that exist, by name
	// Prefixes are the host's routes of both families (all tables,
	// default routes and link-local ones left out) and its links'
	// addresses, for overlap checks before any change.
	Prefixes []HostPrefix
	// Uplinks are the links of the IPv4 default routes of the main table;
	// RADefault those of IPv6 default routes there learned from router
	// advertisements (proto ra). Both sorted.
	Uplinks, RADefault []string
}

// HostDump is what the host's address and route dumps say, whatever
// links are asked for: each link's addresses by index (link-local ones
// left out), the host's prefixes, and the links of its default routes.
// With thousands of namespaces the dumps are most of a read of the host:
// a caller may keep one while nothing changed (see ReadHost).
type HostDump struct {
	Addrs              map[int][]netip.Prefix
	Prefixes           []HostPrefix
	Uplinks, RADefault []string
}

// ReadHost reads the host links named (those that exist), and every
// address and unicast route of the host: one request per link named, one
// dump of the addresses and one of the routes. It dumps no links: for
// each veth in a dump the kernel walks every namespace id the host holds
// to name its peer's, so with thousands of namespaces a dump of the links
// takes the square of their number, and the project's own links are all
// it needs whole. The links of the other prefixes are named by their
// IPv4 addresses' labels, else asked for by index. Given a dump kept
// from an earlier read (nil: none), it dumps nothing; it returns the dump
// it used.
func ReadHost(names []string, kept *HostDump) (Host, HostDump, error) {
	c, err := rtnl.Dial(nil, make([]byte, rtnl.BufferSize))
	if err != nil {
		return Host{}, HostDump{}, fmt.Errorf("reading the host's links: %w", err)
	}
	defer c.Close()
	links := make(map[string]Link, len(names))
	for _, name := range names {
		if _, done := links[name]; done {
			continue
		}
		l, ok, err := c.Link(name)
		if err != nil {
			return Host{}, HostDump{}, fmt.Errorf("reading link %q: %w", name, err)
		}
		if ok {
			links[name] = Link{Name: l.Name, Alias: l.Alias, Type: linkType(l.Kind), Index: l.Index, Up: l.Up, RouteLocalnet: l.RouteLocalnet, Stats: l.Stats}
		}
	}
	var d HostDump
	if kept != nil {
		d = *kept
	} else if d, err = readDump(c, links); err != nil {
		return Host{}, HostDump{}, err
	}
	return HostOf(links, d), d, nil
}

// readDump dumps the addresses and routes, and names the links they name:
// those read by name, the others by their IPv4 addresses' labels, else
// asked for by index.
func readDump(c *rtnl.Conn, links map[string]Link) (HostDump, error) {
	addrs, err := c.Addresses()
	if err != nil {
		return HostDump{}, fmt.Errorf("listing addresses: %w", err)
	}
	routes, err := c.UnicastRoutes()
	if err != nil {
		return HostDump{}, fmt.Errorf("listing routes: %w", err)
	}
	linkNames := namesOf(links, addrs)
	for _, i := range unnamed(linkNames, addrs, routes) {
		l, ok, err := c.LinkByIndex(i)
		if err != nil {
			return HostDump{}, fmt.Errorf("reading link %d: %w", i, err)
		}
		if ok {
			linkNames[i] = l.Name
		}
	}
	return dumpOf(linkNames, addrs, routes), nil
}

// namesOf names links by index: those read by name, then the others by
// their IPv4 addresses' labels (a label is its link's name, or that name,
// a colon and more). Pure.
func namesOf(links map[string]Link, addrs []rtnl.Addr) map[int]string {
	out := make(map[int]string, len(addrs))
	for _, a := range addrs {
		if name, _, _ := strings.Cut(a.Label, ":"); name != "" {
			out[a.Index] = name
		}
	}
	for name, l := range links {
		out[l.Index] = name
	}
	return out
}

// unnamed lists, once each, the indexes of links that addresses or
// routes name and names does not. Pure.
func unnamed(names map[int]string, addrs []rtnl.Addr, routes []rtnl.Route) []int {
	var out []int
	seen := map[int]bool{}
	add := func(i int) {
		if _, ok := names[i]; !ok && !seen[i] {
			seen[i] = true
			out = append(out, i)
		}
	}
	for _, a := range addrs {
		if !a.Prefix.Addr().IsLinkLocalUnicast() {
			add(a.Index)
		}
	}
	for _, r := range routes {
		for _, i := range r.Links {
			add(i)
		}
	}
	return out
}

// dumpOf is what the addresses and routes say, with the links named.
// Pure.
func dumpOf(names map[int]string, addrs []rtnl.Addr, routes []rtnl.Route) HostDump {
	d := HostDump{Addrs: map[int][]netip.Prefix{}}
	for _, a := range addrs {
		p := a.Prefix
		if p.Addr().IsLinkLocalUnicast() {
			continue
		}
		d.Prefixes = append(d.Prefixes, HostPrefix{Prefix: p.Masked(), Link: names[a.Index], What: "address"})
		d.Addrs[a.Index] = append(d.Addrs[a.Index], p)
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
			d.Prefixes = append(d.Prefixes, HostPrefix{Prefix: r.Dst.Masked(), Link: link, What: "route"})
		case r.Dst.Bits() > 0 || r.Table != unix.RT_TABLE_MAIN:
			// a link-local route, or a default route of another table
		case r.Dst.Addr().Is4():
			addLinks(&d.Uplinks, r.Links)
		case r.Protocol == unix.RTPROT_RA:
			addLinks(&d.RADefault, r.Links)
		}
	}
	slices.Sort(d.Uplinks)
	slices.Sort(d.RADefault)
	return d
}

// HostOf is the links read by name, with their addresses, and what the
// dumps say. Pure.
func HostOf(links map[string]Link, d HostDump) Host {
	h := Host{Links: links, Prefixes: d.Prefixes, Uplinks: d.Uplinks, RADefault: d.RADefault}
	for name, l := range links {
		for _, p := range d.Addrs[l.Index] {
			if p.Addr().Is4() {
				l.Addrs = append(l.Addrs, p)
			} else {
				l.Addrs6 = append(l.Addrs6, p)
			}
		}
		h.Links[name] = l
	}
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
