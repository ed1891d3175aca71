package rtnl_test

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nsrun/nsrun/internal/rtnl"
	"github.com/nsrun/nsrun/netns"
	"github.com/nsrun/nsrun/netns/nstest"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { nstest.Main(m) }

func ipBatch(t *testing.T, ns string, cmds []string) {
	t.Helper()
	cmd := exec.Command("ip", "-n", ns, "-batch", "-")
	cmd.Stdin = strings.NewReader(strings.Join(cmds, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ip -n %s -batch: %v\n%s", ns, err, out)
	}
}

// TestReadsWhatTheLibraryReads builds a namespace with a veth peer that
// has hundreds of addresses (more than one buffer of a dump), a
// point-to-point address, default routes of both families and routes that
// must not count as its default ones, and compares what Conn reads with
// what the netlink library reads.
func TestReadsWhatTheLibraryReads(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.DumpOnFailure(t)
	ns := nstest.Name("rt-")
	host := "h" + ns
	if err := netns.Create(ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := netns.Delete(ns); err != nil {
			t.Error(err)
		}
		if l, err := netlink.LinkByName(host); err == nil {
			netlink.LinkDel(l)
		}
	})
	if out, err := exec.Command("ip", "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip link add: %v\n%s", err, out)
	}
	cmds := []string{
		"link set eth0 up",
		"link add d1 type veth peer name d2",
		"link set d1 up",
		"link set d2 up",
		"addr add 10.231.9.2/24 dev eth0",
		"addr add 10.231.10.1 peer 10.231.10.2/32 dev eth0",
		"addr add fd00:231:9::2/64 dev eth0 nodad",
		"addr add 10.231.11.1/24 dev d1",
		"route add default via 10.231.9.1 dev eth0",
		"route add default via fd00:231:9::1 dev eth0",
		"route add default via 10.231.9.254 dev eth0 table 100",
		"route add default via 10.231.11.254 dev d1 metric 50",
		"route add 10.99.0.0/16 via 10.231.9.5 dev eth0",
		"route add 10.98.0.0/16 nexthop via 10.231.9.6 dev eth0 nexthop via 10.231.11.6 dev d1",
		"route add blackhole 10.97.0.0/16",
		"route add fd00:97::/64 via fd00:231:9::7 dev eth0 proto ra",
	}
	for i := range 700 {
		cmds = append(cmds, fmt.Sprintf("addr add 10.232.%d.%d/32 dev eth0", i/200, i%200+1))
	}
	ipBatch(t, ns, cmds)

	f, err := os.Open(netns.Path(ns))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := rtnl.Dial(f, make([]byte, rtnl.BufferSize))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h, err := netns.Netlink(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()

	// Frames out of eth0 for its counters: ARP requests for an address on
	// its subnet that nothing holds.
	if out, err := exec.Command("ip", "link", "set", host, "up").CombinedOutput(); err != nil {
		t.Fatalf("ip link set %s up: %v\n%s", host, err, out)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) { // a carrier: frames leave
		if out, _ := exec.Command("ip", "-n", ns, "link", "show", "eth0").Output(); strings.Contains(string(out), "LOWER_UP") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("eth0 has no carrier 10 s after both sides were up")
		}
	}
	// A datagram to an address of eth0's subnet that nothing holds: ARP
	// requests leave eth0.
	if err := netns.Do(ns, func() error {
		c, err := net.Dial("udp4", "10.231.9.7:9")
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("x"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if l, err := h.LinkByName("eth0"); err == nil && l.Attrs().Statistics != nil && l.Attrs().Statistics.TxPackets > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no frame left eth0 within 10 s")
		}
	}
	l, ok, err := c.Link("eth0")
	if err != nil || !ok {
		t.Fatalf("Link(eth0) = %v, %v, %v", l, ok, err)
	}
	lib, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	hostLink, err := netlink.LinkByName(host)
	if err != nil {
		t.Fatal(err)
	}
	if l.Index != lib.Attrs().Index || l.ParentIndex != hostLink.Attrs().Index || !l.Up {
		t.Errorf("Link(eth0) = %+v, want index %d, parent %d, up", l, lib.Attrs().Index, hostLink.Attrs().Index)
	}
	// Its counters, between two reads of the library's (the link may
	// send as the test runs).
	again, _, err := c.Link("eth0")
	libAfter, err2 := h.LinkByName("eth0")
	if err != nil || err2 != nil {
		t.Fatal(err, err2)
	}
	b, a := lib.Attrs().Statistics, libAfter.Attrs().Statistics
	if s := again.Stats; s == nil || s.RxPackets < b.RxPackets || s.RxPackets > a.RxPackets || s.TxPackets < b.TxPackets || s.TxPackets > a.TxPackets ||
		s.RxBytes < b.RxBytes || s.RxBytes > a.RxBytes || s.TxBytes < b.TxBytes || s.TxBytes > a.TxBytes || s.TxPackets == 0 ||
		s.RxDropped < b.RxDropped+b.RxMissedErrors || s.RxDropped > a.RxDropped+a.RxMissedErrors || s.TxDropped < b.TxDropped || s.TxDropped > a.TxDropped {
		t.Errorf("Link(eth0).Stats = %+v; want between the library's %+v and %+v", s, b, a)
	}
	if _, ok, err := c.Link("nosuch"); ok || err != nil {
		t.Errorf("Link(nosuch) = %v, %v; want not found, no error", ok, err)
	}

	addrs, err := c.Addrs(l.Index)
	if err != nil {
		t.Fatal(err)
	}
	libAddrs, err := h.AddrList(lib, unix.AF_UNSPEC)
	if err != nil {
		t.Fatal(err)
	}
	var want []netip.Prefix
	for _, a := range libAddrs {
		ip, _ := netip.AddrFromSlice(a.IP)
		ones, _ := a.Mask.Size()
		want = append(want, netip.PrefixFrom(ip.Unmap(), ones))
	}
	less := func(a, b netip.Prefix) int { return strings.Compare(a.String(), b.String()) }
	slices.SortFunc(addrs, less)
	slices.SortFunc(want, less)
	if !slices.Equal(addrs, want) {
		t.Errorf("Addrs read %d, the library %d:\n%v\n%v", len(addrs), len(want), addrs, want)
	}
	for _, p := range []string{"10.231.9.2/24", "10.231.10.1/32", "fd00:231:9::2/64", "10.232.3.100/32"} {
		if !slices.Contains(addrs, netip.MustParsePrefix(p)) {
			t.Errorf("Addrs lacks %s", p)
		}
	}
	if slices.Contains(addrs, netip.MustParsePrefix("10.231.11.1/24")) {
		t.Error("Addrs lists d1's address")
	}

	gws, err := c.DefaultGateways(l.Index)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(gws, netip.Addr.Compare)
	wantGWs := []netip.Addr{netip.MustParseAddr("10.231.9.1"), netip.MustParseAddr("fd00:231:9::1")}
	if !slices.Equal(gws, wantGWs) {
		t.Errorf("DefaultGateways = %v, want %v (main table, eth0, default only)", gws, wantGWs)
	}

	routes, err := c.UnicastRoutes()
	if err != nil {
		t.Fatal(err)
	}
	libRoutes, err := h.RouteListFiltered(unix.AF_UNSPEC, &netlink.Route{Type: unix.RTN_UNICAST}, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_TYPE)
	if err != nil {
		t.Fatal(err)
	}
	var got, wantRoutes []string
	for _, r := range routes {
		got = append(got, fmt.Sprintf("%s table %d proto %d links %v", r.Dst, r.Table, r.Protocol, r.Links))
	}
	for _, r := range libRoutes {
		dst := netip.IPv4Unspecified()
		if r.Family == unix.AF_INET6 {
			dst = netip.IPv6Unspecified()
		}
		p := netip.PrefixFrom(dst, 0)
		if r.Dst != nil {
			a, _ := netip.AddrFromSlice(r.Dst.IP)
			ones, _ := r.Dst.Mask.Size()
			p = netip.PrefixFrom(a.Unmap(), ones)
		}
		var links []int
		if r.LinkIndex != 0 {
			links = append(links, r.LinkIndex)
		}
		for _, nh := range r.MultiPath {
			links = append(links, nh.LinkIndex)
		}
		wantRoutes = append(wantRoutes, fmt.Sprintf("%s table %d proto %d links %v", p, r.Table, r.Protocol, links))
	}
	slices.Sort(got)
	slices.Sort(wantRoutes)
	if !slices.Equal(got, wantRoutes) {
		t.Errorf("UnicastRoutes read\n%s\nthe library\n%s", strings.Join(got, "\n"), strings.Join(wantRoutes, "\n"))
	}
	d1, err := h.LinkByName("d1")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{
		"0.0.0.0/0 table 100 proto 3 links [" + fmt.Sprint(l.Index) + "]",
		"::/0 table 254 proto 3 links [" + fmt.Sprint(l.Index) + "]",
		"fd00:97::/64 table 254 proto 9 links [" + fmt.Sprint(l.Index) + "]",
		fmt.Sprintf("10.98.0.0/16 table 254 proto 3 links [%d %d]", l.Index, d1.Attrs().Index),
	} {
		if !slices.Contains(got, w) {
			t.Errorf("UnicastRoutes lacks %q", w)
		}
	}
	for _, r := range got {
		if strings.HasPrefix(r, "10.97.") {
			t.Errorf("UnicastRoutes lists the blackhole route %q", r)
		}
	}

	cookie, err := c.Cookie()
	if err != nil {
		t.Fatal(err)
	}
	if want, err := netns.Cookie(ns); err != nil || cookie != want {
		t.Errorf("Cookie = %d, want %d (%v)", cookie, want, err)
	}
}

func TestDialRefusesASmallBuffer(t *testing.T) {
	nstest.RequireRoot(t)
	f, err := os.Open("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if c, err := rtnl.Dial(f, make([]byte, 4096)); err == nil {
		c.Close()
		t.Fatal("Dial took a buffer a dump can overflow")
	}
}
