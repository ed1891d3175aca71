package veth

import (
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/nsrun/nsrun/internal/rtnl"
	"github.com/nsrun/nsrun/internal/sysctl"
	"github.com/nsrun/nsrun/netns"
	"github.com/nsrun/nsrun/netns/nstest"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// newPair creates a namespace and describes a pair into it; cleanup removes both.
func newPair(t *testing.T) Pair {
	t.Helper()
	nstest.RequireRoot(t)
	nstest.DumpOnFailure(t)
	name := nstest.Name("vt-")
	if err := netns.Create(name); err != nil {
		t.Fatal(err)
	}
	p := Pair{
		Host: "h" + name, Namespace: name, Peer: "eth0",
		HostAddr: netip.MustParsePrefix("10.231.7.1/30"), PeerAddr: netip.MustParsePrefix("10.231.7.2/30"),
		Alias: Label("test", name),
	}
	t.Cleanup(func() {
		if err := Delete(p.Host); err != nil {
			t.Error(err)
		}
		if err := netns.Delete(name); err != nil {
			t.Error(err)
		}
	})
	return p
}

func ip(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func TestEnsureBuildsThePair(t *testing.T) {
	p := newPair(t)
	if err := Ensure(p); err != nil {
		t.Fatal(err)
	}
	host := ip(t, "-d", "addr", "show", "dev", p.Host)
	for _, want := range []string{"veth", "state UP", "inet 10.231.7.1/30", "alias nsrun:test/" + p.Namespace} {
		if !strings.Contains(host, want) {
			t.Errorf("host side lacks %q:\n%s", want, host)
		}
	}
	peer := ip(t, "-n", p.Namespace, "addr", "show", "dev", "eth0")
	if !strings.Contains(peer, "inet 10.231.7.2/30") || !strings.Contains(peer, "state UP") {
		t.Errorf("namespace side:\n%s", peer)
	}
	if routes := ip(t, "-n", p.Namespace, "route"); !strings.Contains(routes, "default via 10.231.7.1 dev eth0") {
		t.Errorf("routes inside:\n%s", routes)
	}
	if v, _ := sysctl.Get(sysctl.Link(p.Host, "route_localnet")); v != "1" {
		t.Errorf("route_localnet on %s = %q, want 1", p.Host, v)
	}
	if v, _ := sysctl.Get("net/ipv4/conf/all/route_localnet"); v != "0" {
		t.Errorf("route_localnet on all = %q; nsrun must never set it", v)
	}
	// IPv4 only: no IPv6 on the host side, so no route of its own in the
	// host's IPv6 table; given IPv6 later, the same link gets it.
	if v, _ := sysctl.Get(sysctl.Link6(p.Host, "disable_ipv6")); v != "1" {
		t.Errorf("disable_ipv6 on %s = %q, want 1 for a pair without IPv6", p.Host, v)
	}
	if strings.Contains(host, "inet6") || strings.Contains(ip(t, "-6", "route", "show", "table", "all", "dev", p.Host), "fe80") {
		t.Errorf("the host side of a pair without IPv6 has IPv6 addresses or routes:\n%s", host)
	}
	before, _ := netlink.LinkByName(p.Host)
	p6 := p
	p6.HostAddr6, p6.PeerAddr6 = netip.MustParsePrefix("fd00:231:7::1/64"), netip.MustParsePrefix("fd00:231:7::2/64")
	if err := Ensure(p6); err != nil {
		t.Fatal(err)
	}
	after, _ := netlink.LinkByName(p.Host)
	if v, _ := sysctl.Get(sysctl.Link6(p.Host, "disable_ipv6")); v != "0" || before.Attrs().Index != after.Attrs().Index ||
		!strings.Contains(ip(t, "addr", "show", "dev", p.Host), "inet6 fd00:231:7::1/64") {
		t.Errorf("the pair given IPv6: disable_ipv6 %q, index %d then %d, addresses:\n%s", v, before.Attrs().Index, after.Attrs().Index, ip(t, "addr", "show", "dev", p.Host))
	}
	// The host reaches the namespace over the link.
	if out, err := exec.Command("ip", "netns", "exec", p.Namespace, "ip", "neigh").CombinedOutput(); err != nil {
		t.Errorf("ip neigh: %v %s", err, out)
	}
}

func TestEnsureIsIdempotentAndRepairs(t *testing.T) {
	p := newPair(t)
	if err := Ensure(p); err != nil {
		t.Fatal(err)
	}
	before, _ := netlink.LinkByName(p.Host)
	if err := Ensure(p); err != nil {
		t.Fatal(err)
	}
	after, _ := netlink.LinkByName(p.Host)
	if before.Attrs().Index != after.Attrs().Index {
		t.Error("a second Ensure recreated the link")
	}

	// Drift: a stray address, a lost route, the link down.
	ip(t, "addr", "add", "10.231.9.1/24", "dev", p.Host)
	ip(t, "-n", p.Namespace, "route", "del", "default")
	ip(t, "link", "set", p.Host, "down")
	if err := Ensure(p); err != nil {
		t.Fatal(err)
	}
	host := ip(t, "addr", "show", "dev", p.Host)
	if strings.Contains(host, "10.231.9.1") || !strings.Contains(host, "10.231.7.1/30") || !strings.Contains(host, "UP") {
		t.Errorf("host side not repaired:\n%s", host)
	}
	if routes := ip(t, "-n", p.Namespace, "route"); !strings.Contains(routes, "default via 10.231.7.1") {
		t.Errorf("default route not repaired:\n%s", routes)
	}

	// The peer deleted from inside: the pair is made again.
	ip(t, "-n", p.Namespace, "link", "del", "eth0")
	if err := Ensure(p); err != nil {
		t.Fatal(err)
	}
	if peer := ip(t, "-n", p.Namespace, "addr", "show", "dev", "eth0"); !strings.Contains(peer, "10.231.7.2/30") {
		t.Errorf("pair not recreated:\n%s", peer)
	}
}

func TestEnsureRefusesAForeignLink(t *testing.T) {
	p := newPair(t)
	ip(t, "link", "add", p.Host, "type", "bridge")
	if err := Ensure(p); err == nil || !strings.Contains(err.Error(), "is a bridge") {
		t.Errorf("Ensure over a dummy link: %v", err)
	}
}

func TestDeleteRemovesBothSides(t *testing.T) {
	p := newPair(t)
	if err := Ensure(p); err != nil {
		t.Fatal(err)
	}
	if err := Delete(p.Host); err != nil {
		t.Fatal(err)
	}
	host, _, err := ReadHost([]string{p.Host}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := host.Links[p.Host]; ok {
		t.Error("host side still exists")
	}
	if out := ip(t, "-n", p.Namespace, "-o", "link"); strings.Contains(out, "eth0") {
		t.Errorf("peer still inside:\n%s", out)
	}
	if err := Delete(p.Host); err != nil {
		t.Errorf("second Delete: %v", err)
	}
}

func TestHostPrefixesAndLabels(t *testing.T) {
	p := newPair(t)
	if err := Ensure(p); err != nil {
		t.Fatal(err)
	}
	// Not asked for, the link is named by its address's label.
	host, _, err := ReadHost(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(host.Links) != 0 {
		t.Errorf("links read, none asked for: %v", host.Links)
	}
	var route, addr bool
	for _, hp := range host.Prefixes {
		if hp.Link == p.Host && hp.Prefix == netip.MustParsePrefix("10.231.7.0/30") {
			route = route || hp.What == "route"
			addr = addr || hp.What == "address"
		}
	}
	if !route || !addr {
		t.Errorf("ReadHost's prefixes lack the link's route (%v) or address (%v): %v", route, addr, host.Prefixes)
	}
	labelled, err := ListLabelled()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, l := range labelled {
		found = found || (l.Name == p.Host && l.Project == "test" && l.Namespace == p.Namespace)
	}
	if !found {
		t.Errorf("ListLabelled() = %v; want %s", labelled, p.Host)
	}
}

func TestParseLabel(t *testing.T) {
	for alias, want := range map[string][2]string{
		"nsrun:blog/ns1": {"blog", "ns1"},
		"nsrun:a/b/c":    {"a", "b/c"},
	} {
		project, ns, ok := ParseLabel(alias)
		if !ok || project != want[0] || ns != want[1] {
			t.Errorf("ParseLabel(%q) = %q %q %v", alias, project, ns, ok)
		}
	}
	for _, alias := range []string{"", "docker0", "nsrun:", "nsrun:/x", "nsrun:x/", "nsrun:x"} {
		if _, _, ok := ParseLabel(alias); ok {
			t.Errorf("ParseLabel(%q) accepted it", alias)
		}
	}
}

// observe reads a pair the way status and up do, in bulk.
func observe(t *testing.T, p Pair) []string {
	t.Helper()
	read, _, err := ReadHost([]string{p.Host}, nil)
	if err != nil {
		t.Fatal(err)
	}
	links := read.Links
	peer, err := ObservePeer(p.Namespace, p.Peer, make([]byte, rtnl.BufferSize))
	if err != nil {
		t.Fatal(err)
	}
	localnet, _ := sysctl.Get(sysctl.Link(p.Host, "route_localnet"))
	var host *Link
	if l, ok := links[p.Host]; ok {
		host = &l
	}
	return Drift(p, host, localnet, peer)
}

func TestObserveAndDrift(t *testing.T) {
	p := newPair(t)
	if d := observe(t, p); len(d) != 1 || d[0] != "link "+p.Host+" is missing" {
		t.Errorf("drift before Ensure: %q", d)
	}
	if err := Ensure(p); err != nil {
		t.Fatal(err)
	}
	if d := observe(t, p); len(d) != 0 {
		t.Fatalf("drift of a pair just made: %q", d)
	}
	ip(t, "link", "set", p.Host, "down")
	ip(t, "-n", p.Namespace, "addr", "flush", "dev", "eth0") // takes the default route with it
	if err := sysctl.SetLink(p.Host, "route_localnet", "0"); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"link " + p.Host + " is down",
		"route_localnet is off on link " + p.Host,
		"eth0 in namespace " + p.Namespace + " lacks its address 10.231.7.2/30",
		"namespace " + p.Namespace + " has no default route via 10.231.7.1",
	}
	if d := observe(t, p); strings.Join(d, "\n") != strings.Join(want, "\n") {
		t.Errorf("drift:\n%s\nwant:\n%s", strings.Join(d, "\n"), strings.Join(want, "\n"))
	}
	if err := Ensure(p); err != nil {
		t.Fatal(err)
	}
	if d := observe(t, p); len(d) != 0 {
		t.Errorf("drift after Ensure repaired it: %q", d)
	}
	ip(t, "-n", p.Namespace, "link", "del", "eth0")
	if d := observe(t, p); len(d) != 1 || !strings.Contains(d[0], "link "+p.Host+" is missing") {
		t.Errorf("drift after the peer was deleted (the pair goes whole): %q", d)
	}
}

// TestReadHostFromTheRoutes: of a namespace with unicast routes in the
// main table and another, local, broadcast, blackhole and link-local
// ones, IPv4 default routes (one through two next hops) and an IPv6 one
// learned from a router, ReadHost keeps the unicast prefixes, the uplinks
// and the RA-learned default route's link. The links are named though
// only va is asked for: eth0 by its addresses' label, vb (only IPv6) by
// its index.
func TestReadHostFromTheRoutes(t *testing.T) {
	p := newPair(t)
	if err := Ensure(p); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"link", "add", "va", "type", "veth", "peer", "name", "vb"},
		{"link", "set", "va", "up"},
		{"link", "set", "vb", "up"},
		{"addr", "add", "10.231.8.1/24", "dev", "eth0"},
		{"addr", "add", "10.231.11.1/24", "dev", "va"},
		{"route", "add", "10.231.9.0/24", "dev", "eth0", "table", "100"},
		{"route", "add", "blackhole", "10.231.10.0/24"},
		{"route", "replace", "default", "nexthop", "via", "10.231.8.254", "dev", "eth0", "nexthop", "via", "10.231.11.254", "dev", "va"},
		{"route", "add", "default", "via", "10.231.8.253", "dev", "eth0", "table", "100"},
		{"-6", "addr", "add", "fd31:8::1/64", "dev", "eth0", "nodad"},
		{"-6", "route", "add", "default", "via", "fd31:8::2", "dev", "eth0", "proto", "ra"},
		{"-6", "route", "add", "fd31:9::/64", "via", "fd31:8::3", "dev", "eth0", "proto", "static"},
		{"-6", "addr", "add", "fd31:b::1/64", "dev", "vb", "nodad"},
	} {
		ip(t, append([]string{"-n", p.Namespace}, args...)...)
	}
	var host Host
	if err := netns.Do(p.Namespace, func() (err error) { host, _, err = ReadHost([]string{"va"}, nil); return err }); err != nil {
		t.Fatal(err)
	}
	var routes []string
	for _, hp := range host.Prefixes {
		if hp.What == "route" {
			routes = append(routes, hp.Prefix.String()+" "+hp.Link)
		}
	}
	slices.Sort(routes)
	want := []string{"10.231.11.0/24 va", "10.231.7.0/30 eth0", "10.231.8.0/24 eth0", "10.231.9.0/24 eth0", "fd31:8::/64 eth0", "fd31:9::/64 eth0", "fd31:b::/64 vb"}
	if !slices.Equal(routes, want) {
		t.Errorf("routes among the prefixes:\n%q\nwant\n%q", routes, want)
	}
	if !slices.Equal(host.Uplinks, []string{"eth0", "va"}) || !slices.Equal(host.RADefault, []string{"eth0"}) {
		t.Errorf("uplinks %q, RA default %q; want [eth0 va] (both next hops, main table only) and [eth0]", host.Uplinks, host.RADefault)
	}
	if _, ok := host.Links["va"]; !ok || len(host.Links) != 1 {
		t.Errorf("links %v: want va alone", host.Links)
	}
}

// withoutStats is l without its counters, which differ from read to read.
func withoutStats(l Link) Link {
	l.Stats = nil
	return l
}

// TestHostLinksMatchTheLibrary: ReadHost reads through internal/rtnl what
// the netlink library reads of the links asked for (names, aliases,
// kinds, indexes, state and addresses), here inside a namespace with a
// veth pair, a labelled link, link-local, point-to-point, labelled and
// IPv6 addresses; each address's prefix is named by its link. A dump kept
// from an earlier read gives the same.
func TestHostLinksMatchTheLibrary(t *testing.T) {
	p := newPair(t)
	if err := Ensure(p); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"link", "add", "va", "type", "veth", "peer", "name", "vb"},
		{"link", "set", "va", "alias", "nsrun:test/va"},
		{"link", "set", "va", "up"},
		{"link", "set", "vb", "up"},
		{"addr", "add", "10.231.20.1/24", "dev", "va"},
		{"addr", "add", "10.231.21.1", "peer", "10.231.21.2/32", "dev", "va"},
		{"-6", "addr", "add", "fd31:20::1/64", "dev", "va", "nodad"},
		{"addr", "add", "10.231.22.1/24", "dev", "lo"},
		{"addr", "add", "10.231.23.1/24", "dev", "vb", "label", "vb:x"},
	} {
		ip(t, append([]string{"-n", p.Namespace}, args...)...)
	}
	var got, want map[string]Link
	var prefixes []HostPrefix
	err := netns.Do(p.Namespace, func() error {
		if err := sysctl.SetLink("va", "route_localnet", "1"); err != nil {
			return err
		}
		links, err := netlink.LinkList()
		if err != nil {
			return err
		}
		var asked []string
		for _, l := range links {
			asked = append(asked, l.Attrs().Name)
		}
		host, kept, err := ReadHost(asked, nil)
		if err != nil {
			return err
		}
		got, prefixes = host.Links, host.Prefixes
		// The same through the dump that read kept.
		again, _, err := ReadHost(asked, &kept)
		if err != nil {
			return err
		}
		for name, l := range again.Links {
			if g := host.Links[name]; l.Stats == nil || g.Stats == nil || fmt.Sprint(withoutStats(l)) != fmt.Sprint(withoutStats(g)) {
				t.Errorf("link %s through a kept dump: %+v\nread whole: %+v", name, l, g)
			}
		}
		if fmt.Sprint(again.Prefixes) != fmt.Sprint(host.Prefixes) {
			t.Errorf("prefixes through a kept dump: %v\nread whole: %v", again.Prefixes, host.Prefixes)
		}
		addrs, err := netlink.AddrList(nil, unix.AF_UNSPEC)
		if err != nil {
			return err
		}
		want = map[string]Link{}
		names := map[int]string{}
		for _, l := range links {
			a := l.Attrs()
			localnet, err := sysctl.Get(sysctl.Link(a.Name, "route_localnet"))
			if err != nil {
				return err
			}
			want[a.Name] = Link{Name: a.Name, Alias: a.Alias, Type: l.Type(), Index: a.Index, Up: a.Flags&1 != 0, RouteLocalnet: localnet}
			names[a.Index] = a.Name
		}
		for _, a := range addrs {
			ip, _ := netip.AddrFromSlice(a.IP)
			ones, _ := a.Mask.Size()
			pfx := netip.PrefixFrom(ip.Unmap(), ones)
			if pfx.Addr().IsLinkLocalUnicast() {
				continue
			}
			l := want[names[a.LinkIndex]]
			if pfx.Addr().Is4() {
				l.Addrs = append(l.Addrs, pfx)
			} else {
				l.Addrs6 = append(l.Addrs6, pfx)
			}
			want[names[a.LinkIndex]] = l
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) || len(got) < 4 {
		t.Fatalf("ReadHost: %d links, the library %d:\n%v\n%v", len(got), len(want), got, want)
	}
	for name, w := range want {
		if g := got[name]; g.Stats == nil || fmt.Sprint(withoutStats(g)) != fmt.Sprint(w) {
			t.Errorf("link %s: ReadHost %+v\nthe library %+v", name, g, w)
		}
		for _, p := range append(slices.Clone(w.Addrs), w.Addrs6...) {
			if !slices.Contains(prefixes, HostPrefix{Prefix: p.Masked(), Link: name, What: "address"}) {
				t.Errorf("prefixes lack %s's address %s: %v", name, p, prefixes)
			}
		}
	}
	if va, vb := got["va"], got["vb"]; va.Type != "veth" || va.Alias != "nsrun:test/va" || !slices.Contains(va.Addrs, netip.MustParsePrefix("10.231.21.1/32")) ||
		va.RouteLocalnet != "1" || vb.RouteLocalnet != "0" {
		t.Errorf("va: %+v", va)
	}
	if lo := got["lo"]; lo.Type != "device" {
		t.Errorf("lo's type %q, want device (as the library says)", lo.Type)
	}
}
