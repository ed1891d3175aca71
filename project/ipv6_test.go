package project

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/forward/iptables"
	"github.com/nsrun/nsrun/forward/nftables"
	"github.com/nsrun/nsrun/internal/sysctl"
	"github.com/nsrun/nsrun/netns/nstest"
	"github.com/nsrun/nsrun/state"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// dualStack publishes, with ipv6: true: P0 on both families (a), P1 on
// both (b), P2/udp on both (a), P3 on IPv4 only, P4 on IPv6 only (a), P5
// on ::1 only (b).
func dualStack(p []int) string {
	return fmt.Sprintf(`name: t{ID}
ipv6: true
namespaces:
  a{ID}:
    ports: ["%d:8080", "%d:9090/udp", "0.0.0.0:%d:8080", "[::]:%d:8080"]
  b{ID}:
    ports: ["%d:8080", {published: %d, target: 8080, host_ip: "::1"}]
`, p[0], p[2], p[3], p[4], p[1], p[5])
}

// TestReachability6 is TestReachability over IPv6, in both backends.
func TestReachability6(t *testing.T) {
	eachFirewall(t, func(t *testing.T, l *lab) {
		forwarding, _ := sysctl.Get(sysctl.IPv6Forward)
		ports := freePorts(t, 6)
		st := l.up(dualStack(ports))
		a, b := l.ns("a"), l.ns("b")
		a6 := st.Namespace(a).Address6.Addr()
		if !a6.Is6() || !st.Namespace(b).Address6.IsValid() {
			t.Fatalf("no IPv6 addresses recorded: %+v", st.Namespace(a))
		}
		// A server binds its IPv6 address the moment up returns: the
		// address is not tentative (no duplicate address detection).
		nstest.StartServer(t, a, a+"-bound", fmt.Sprintf("[%s]:7777", a6), "")
		nstest.StartServer(t, a, a, "8080", "9090")
		nstest.StartServer(t, b, b, "8080", "")
		nstest.StartServer(t, l.outside, l.outside, "9999", "9998")

		// From another machine, to the host's IPv6 address; the source is kept.
		r, err := nstest.DialFrom(t, l.outside, "tcp", addr(l.outHost6, ports[0]), "")
		l.expect(r, err, a, "outside -> [host]:P0")
		if !strings.Contains(r, l.outPeer6.String()) {
			t.Errorf("outside client's IPv6 address not kept: %q", r)
		}
		r, err = nstest.DialFrom(t, l.outside, "tcp", addr(l.outHost6, ports[1]), "")
		l.expect(r, err, b, "outside -> [host]:P1")
		r, err = nstest.DialFrom(t, l.outside, "tcp", addr(l.outHost, ports[0]), "")
		l.expect(r, err, a, "outside -> host:P0 over IPv4 (both families)")

		// [::]:P4 is IPv6 only, 0.0.0.0:P3 IPv4 only, [::1]:P5 this machine only.
		r, err = nstest.DialFrom(t, l.outside, "tcp", addr(l.outHost6, ports[4]), "")
		l.expect(r, err, a, "outside -> [host]:P4 ([::] only)")
		r, err = nstest.DialFrom(t, l.outside, "tcp", addr(l.outHost, ports[4]), "")
		l.refuse(r, err, "outside -> host:P4 over IPv4 ([::] only)")
		r, err = nstest.DialFrom(t, l.outside, "tcp", addr(l.outHost, ports[3]), "")
		l.expect(r, err, a, "outside -> host:P3 (0.0.0.0 only)")
		r, err = nstest.DialFrom(t, l.outside, "tcp", addr(l.outHost6, ports[3]), "")
		l.refuse(r, err, "outside -> [host]:P3 over IPv6 (0.0.0.0 only)")
		r, err = nstest.DialFrom(t, l.outside, "tcp", addr(l.outHost6, ports[5]), "")
		l.refuse(r, err, "outside -> [host]:P5 (host_ip ::1)")

		// From the host: [::1] by the loopback shortcut (no DNAT can carry
		// it: the kernel lets nothing from ::1 leave the loopback), so
		// getpeername is the published address and the DNAT rules count
		// nothing; a dual-stack socket to ::ffff:127.0.0.1; the host's own
		// IPv6 address, by DNAT.
		dnatBefore := dnatPackets(t, st)
		for _, p := range []struct {
			port int
			from string
		}{{ports[0], a}, {ports[1], b}, {ports[4], a}, {ports[5], b}} {
			at := addr(netip.IPv6Loopback(), p.port)
			r, peer, err := dialPeer("tcp6", at)
			l.expect(r, err, p.from, "host -> "+at)
			if err == nil && peer != at {
				t.Errorf("host -> %s: getpeername gives %s", at, peer)
			}
		}
		r, peer, err := dialMapped(uint16(ports[0]))
		l.expect(r, err, a, "host, AF_INET6 socket -> ::ffff:127.0.0.1:P0")
		if err == nil && peer != fmt.Sprintf("[::ffff:127.0.0.1]:%d", ports[0]) {
			t.Errorf("AF_INET6 socket to ::ffff:127.0.0.1: getpeername gives %s", peer)
		}
		if r, _, err := dialPeer("tcp6", addr(netip.IPv6Loopback(), ports[3])); err == nil {
			t.Errorf("host -> [::1]:P3 (published on IPv4 only) answered %q", r)
		}
		if after := dnatPackets(t, st); after != dnatBefore {
			t.Errorf("the DNAT rules counted %d packets for [::1]; want none (the shortcut)", after-dnatBefore)
		}
		r, err = hostDial("tcp", addr(l.outHost6, ports[0]), "")
		l.expect(r, err, a, "host -> [its own address]:P0")
		if after := dnatPackets(t, st); st.Backend.IsIPTables() && after == dnatBefore {
			t.Error("the DNAT rules counted nothing for the host's own address either: the counters say nothing")
		}

		// Hairpin: a namespace to its own published port, and to another's.
		r, err = nstest.DialFrom(t, a, "tcp", addr(l.outHost6, ports[0]), "")
		l.expect(r, err, a, "a -> [host]:P0 (itself)")
		r, err = nstest.DialFrom(t, a, "tcp", addr(st.Namespace(a).HostAddress6.Addr(), ports[0]), "")
		l.expect(r, err, a, "a -> [its gateway]:P0 (itself)")
		r, err = nstest.DialFrom(t, b, "tcp", addr(l.outHost6, ports[0]), "")
		l.expect(r, err, a, "b -> [host]:P0")

		// Egress over IPv6, masqueraded to the host's address.
		r, err = nstest.DialFrom(t, a, "tcp", addr(l.outPeer6, 9999), "")
		l.expect(r, err, l.outside, "a -> [outside] (egress)")
		if !strings.Contains(r, l.outHost6.String()) {
			t.Errorf("IPv6 egress not masqueraded to the host's address: %q", r)
		}

		// UDP both ways over IPv6.
		r, err = nstest.DialFrom(t, l.outside, "udp", addr(l.outHost6, ports[2]), "")
		l.expect(r, err, a, "outside -> [host]:P2/udp")
		r, err = hostDial("udp", addr(l.outHost6, ports[2]), "")
		l.expect(r, err, a, "host -> [its own address]:P2/udp")
		r, err = nstest.DialFrom(t, a, "udp", addr(l.outPeer6, 9998), "")
		l.expect(r, err, l.outside, "a -> [outside]:9998/udp (egress)")

		// The record says what up made, and the second up changes nothing.
		if v, _ := sysctl.Get(sysctl.IPv6Forward); v != "1" {
			t.Errorf("net.ipv6.conf.all.forwarding is %s while the project is up", v)
		}
		out, err := l.e.Up(context.Background(), l.parse(dualStack(ports)))
		if err != nil || !out.UpToDate {
			t.Errorf("second up: up to date %v, %v", out != nil && out.UpToDate, err)
		}
		if _, err := l.e.Down(context.Background(), st.Project); err != nil {
			t.Fatal(err)
		}
		for _, n := range []string{a, b} {
			if _, err := os.Stat(filepath.Join("/run/netns", n)); err == nil {
				t.Errorf("namespace %s still there after down", n)
			}
		}
		if v, _ := sysctl.Get(sysctl.IPv6Forward); v != forwarding {
			t.Errorf("down left net.ipv6.conf.all.forwarding %s; it was %s", v, forwarding)
		}
	})
}

// dnatPackets sums the packet counters of the project's ip6tables DNAT
// rules; 0 in nftables, whose rules have no counters.
func dnatPackets(t *testing.T, st *state.Record) int {
	t.Helper()
	if !st.Backend.IsIPTables() {
		return 0
	}
	out, err := exec.Command("ip6"+strings.TrimPrefix(string(st.Backend), "ip")+"-save", "-c", "-t", "nat").Output()
	if err != nil {
		t.Fatal(err)
	}
	chains := iptables.ProjectChains(st.Project)
	sum := 0
	for _, line := range strings.Split(string(out), "\n") {
		var pkts, bytes int
		var chain string
		if n, _ := fmt.Sscanf(line, "[%d:%d] -A %s", &pkts, &bytes, &chain); n == 3 && strings.HasPrefix(chain, strings.TrimSuffix(chains.DNAT, "DNAT")) && strings.Contains(line, "-j DNAT") {
			sum += pkts
		}
	}
	return sum
}

// dialPeer connects over TCP and returns the server's line and the peer
// the socket reports (getpeername).
// dialMapped connects an AF_INET6 socket (as a dual-stack client does) to
// ::ffff:127.0.0.1:port and returns the server's line and getpeername.
func dialMapped(port uint16) (string, string, error) {
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return "", "", err
	}
	f := os.NewFile(uintptr(fd), "mapped")
	defer f.Close()
	// A blocking socket takes no deadline from f: bound the read itself.
	tv := unix.NsecToTimeval(time.Second.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return "", "", err
	}
	mapped := netip.AddrFrom4([4]byte{127, 0, 0, 1}).As16()
	if err := unix.Connect(fd, &unix.SockaddrInet6{Addr: mapped, Port: int(port)}); err != nil {
		return "", "", err
	}
	sa, err := unix.Getpeername(fd)
	if err != nil {
		return "", "", err
	}
	in6, ok := sa.(*unix.SockaddrInet6)
	if !ok {
		return "", "", fmt.Errorf("getpeername gave %T", sa)
	}
	buf := make([]byte, 256)
	n, err := f.Read(buf)
	return strings.TrimSpace(string(buf[:n])), netip.AddrPortFrom(netip.AddrFrom16(in6.Addr), uint16(in6.Port)).String(), err
}

func dialPeer(network, at string) (string, string, error) {
	c, err := net.DialTimeout(network, at, time.Second)
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 256)
	n, err := c.Read(buf)
	return strings.TrimSpace(string(buf[:n])), c.RemoteAddr().String(), err
}

// TestRouterAdvertisedDefaultRoute: a host that learns an IPv6 default
// route from router advertisements keeps it through up (which turns IPv6
// forwarding on, and with it the kernel would drop such routes) and down,
// and down puts forwarding and accept_ra back. radvd in the outside
// namespace advertises the route on the outside link, at low preference
// and a high metric, so the host's real default route stays preferred.
func TestRouterAdvertisedDefaultRoute(t *testing.T) {
	radvd, err := exec.LookPath("radvd")
	if err != nil {
		if os.Getenv("NSRUN_REQUIRE_ROOT") == "1" {
			t.Fatal("radvd is missing; scripts/test.sh installs it (NSRUN_TEST_DEPS=1 scripts/install-deps.sh)")
		}
		t.Skip("no radvd")
	}
	l := newLab(t)
	forwarding, _ := sysctl.Get(sysctl.IPv6Forward)
	if forwarding == "1" {
		t.Skip("IPv6 forwarding is on before the test: there is nothing for up to turn on")
	}
	// The host side of the outside link takes router advertisements, as an
	// uplink would; their route gets a metric far above any real one.
	for _, kv := range [][2]string{{"ra_defrtr_metric", "4000000"}, {"accept_ra", "1"}} {
		if err := sysctl.Set(sysctl.Link6(l.outLink, kv[0]), kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "radvd.conf")
	os.WriteFile(conf, []byte(`interface eth0 {
	AdvSendAdvert on;
	MinRtrAdvInterval 3;
	MaxRtrAdvInterval 4;
	AdvDefaultLifetime 120;
	AdvDefaultPreference low;
};
`), 0o644)
	run(t, "ip", "netns", "exec", l.outside, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	cmd := exec.Command("ip", "netns", "exec", l.outside, radvd, "--nodaemon", "--config", conf, "--pidfile", filepath.Join(dir, "radvd.pid"), "--logmethod", "stderr")
	var logs strings.Builder
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	route := func() bool {
		link, err := netlink.LinkByName(l.outLink)
		if err != nil {
			return false
		}
		routes, _ := netlink.RouteList(link, unix.AF_INET6)
		for _, r := range routes {
			if isDefault(r) && r.Protocol == unix.RTPROT_RA {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(30 * time.Second); !route(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no default route from radvd's advertisements on %s; radvd says:\n%s", l.outLink, logs.String())
		}
	}

	ports := freePorts(t, 1)
	l.up(fmt.Sprintf("name: t{ID}\nipv6: true\nnamespaces:\n  a{ID}:\n    ports: [\"%d:8080\"]\n", ports[0]))
	if v, _ := sysctl.Get(sysctl.IPv6Forward); v != "1" {
		t.Fatalf("IPv6 forwarding is %s after up", v)
	}
	if v, _ := sysctl.Get(sysctl.Link6(l.outLink, "accept_ra")); v != "2" {
		t.Errorf("accept_ra on %s is %s after up; want 2", l.outLink, v)
	}
	if !route() {
		t.Errorf("up dropped the RA-learned default route on %s", l.outLink)
	}
	if _, err := l.e.Down(context.Background(), "t"+l.id); err != nil {
		t.Fatal(err)
	}
	if !route() {
		t.Errorf("down dropped the RA-learned default route on %s", l.outLink)
	}
	if v, _ := sysctl.Get(sysctl.IPv6Forward); v != forwarding {
		t.Errorf("down left IPv6 forwarding %s; it was %s", v, forwarding)
	}
	if v, _ := sysctl.Get(sysctl.Link6(l.outLink, "accept_ra")); v != "1" {
		t.Errorf("down left accept_ra on %s %s; it was 1", l.outLink, v)
	}
}

func isDefault(r netlink.Route) bool {
	if r.Dst == nil {
		return true
	}
	ones, _ := r.Dst.Mask.Size()
	return ones == 0 && r.Dst.IP.IsUnspecified()
}

// TestForwardPolicyDrop6: with the FORWARD policy DROP in ip6tables only
// (IPv4 accepting), published IPv6 ports and IPv6 egress still work: an
// iptables project goes into the backend that drops, an nftables one puts
// its FORWARD accepts there, in ip6tables too; down takes them out.
func TestForwardPolicyDrop6(t *testing.T) {
	for _, backend := range []forward.Backend{iptables.NFT, iptables.Legacy} {
		for _, choice := range []forward.Choice{forward.IPTables, forward.NFTables} {
			t.Run(string(backend)+"/"+string(choice), func(t *testing.T) {
				nstest.RequireRoot(t)
				tool := "ip6" + strings.TrimPrefix(string(backend), "ip")
				run(t, tool, "-w", "-P", "FORWARD", "DROP")
				t.Cleanup(func() { exec.Command(tool, "-w", "-P", "FORWARD", "ACCEPT").Run() })
				l := newLabWith(t, choice)
				ports := freePorts(t, 6)
				st := l.up(dualStack(ports))
				want := forward.Placement{Backend: backend}
				if choice == forward.NFTables {
					want = forward.Placement{Backend: nftables.Backend, Accepts: []forward.Backend{backend}}
				}
				if st.Backend != want.Backend || !slices.Equal(st.Accepts, want.Accepts) {
					t.Fatalf("placement chosen: %s, accepts in %v; want %s, accepts in %v", st.Backend, st.Accepts, want.Backend, want.Accepts)
				}
				a := l.ns("a")
				nstest.StartServer(t, a, a, "8080", "")
				nstest.StartServer(t, l.outside, l.outside, "9999", "")
				r, err := nstest.DialFrom(t, l.outside, "tcp", addr(l.outHost6, ports[0]), "")
				l.expect(r, err, a, "outside -> [host]:P0 with ip6tables FORWARD DROP")
				r, err = nstest.DialFrom(t, a, "tcp", addr(l.outPeer6, 9999), "")
				l.expect(r, err, l.outside, "a -> [outside] with ip6tables FORWARD DROP")
				if _, err := l.e.Down(context.Background(), st.Project); err != nil {
					t.Fatal(err)
				}
				if out, _ := exec.Command(tool + "-save").Output(); strings.Contains(string(out), "NSR") {
					t.Errorf("down left nsrun's rules in %s:\n%s", tool, out)
				}
			})
		}
	}
}

// TestKeeperHeals6: the keeper repairs a project's IPv6 rules flushed
// behind its back (ip6tables' DNAT chain, or nftables' IPv6 chain) with no
// command run.
func TestKeeperHeals6(t *testing.T) {
	eachFirewall(t, func(t *testing.T, l *lab) {
		l.e.NoHeal = false
		ports := freePorts(t, 6)
		st := l.up(dualStack(ports))
		a := l.ns("a")
		nstest.StartServer(t, a, a, "8080", "")
		works := func(what string) {
			t.Helper()
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				r, err := nstest.DialFrom(t, l.outside, "tcp", addr(l.outHost6, ports[0]), "")
				if err == nil {
					l.expect(r, err, a, what+": outside -> [host]:P0")
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: not repaired within 10 s: %v", what, err)
				}
			}
		}
		works("after up")
		if st.Backend.IsIPTables() {
			run(t, "ip6"+strings.TrimPrefix(string(st.Backend), "ip"), "-w", "-t", "nat", "-F", iptables.ChainDNAT)
		} else {
			run(t, "nft", "flush", "chain", "inet", "nsrun", "publish6")
		}
		works("after the IPv6 rules were flushed")
		// The count is written once the repair is applied: wait for it.
		for deadline := time.Now().Add(5 * time.Second); l.e.Store.Repairs(st.Project).Repairs < 1; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("repairs recorded: %+v; want at least 1", l.e.Store.Repairs(st.Project))
			}
		}
	})
}

// TestUDPStaleConntrack6 is TestUDPStaleConntrack over IPv6: a UDP flow
// to a published port moves with the port, though its conntrack entry
// would keep it where it was.
func TestUDPStaleConntrack6(t *testing.T) {
	eachFirewall(t, func(t *testing.T, l *lab) {
		ports := freePorts(t, 2) // ports[1]: the client's fixed source port
		src := addr(l.outHost6, ports[1])
		spec := func(ns string) string {
			return fmt.Sprintf("name: t{ID}\nipv6: true\nnamespaces:\n  %s{ID}: {ports: [\"[::]:%d:9090/udp\"]}\n", ns, ports[0])
		}
		r, err := hostDial("udp", addr(l.outHost6, ports[0]), src)
		l.refuse(r, err, "udp before up")
		l.up(spec("a"))
		a, b := l.ns("a"), l.ns("b")
		nstest.StartServer(t, a, a, "", "9090")
		r, err = hostDial("udp", addr(l.outHost6, ports[0]), src)
		l.expect(r, err, a, "udp after up, same source port")
		if _, err := l.e.Down(context.Background(), "t"+l.id); err != nil {
			t.Fatal(err)
		}
		l.up(spec("b"))
		nstest.StartServer(t, b, b, "", "9090")
		r, err = hostDial("udp", addr(l.outHost6, ports[0]), src)
		l.expect(r, err, b, "udp after down and up elsewhere, same source port")
	})
}

// TestDualStackClientRightAfterUp: a dual-stack client (an AF_INET6
// socket to ::ffff:127.0.0.1) answered by a supervised server the moment
// up returns, for fresh projects one after another, with the keeper on as
// a user has it; once per backend. The reachability test dials long after
// up, when whatever up leaves unsettled has settled.
func TestDualStackClientRightAfterUp(t *testing.T) {
	eachFirewall(t, func(t *testing.T, l *lab) {
		l.e.NoHeal = false
		helper := helperBinary(t)
		for round := 0; round < 3; round++ {
			port := freePorts(t, 1)[0]
			name := fmt.Sprintf("t{ID}r%d", round)
			src := fmt.Sprintf("name: %s\nipv6: true\nnamespaces:\n  m%d{ID}:\n    ports: [\"%d:8080\"]\n    run:\n%s", name, round, port, server(helper, fmt.Sprintf("m%d{ID}", round), ""))
			l.up(src)
			ns := fmt.Sprintf("m%d%s", round, l.id)
			r, peer, err := dialMapped(uint16(port))
			l.expect(r, err, ns, fmt.Sprintf("round %d: AF_INET6 socket -> ::ffff:127.0.0.1:%d right after up", round, port))
			if err == nil && peer != fmt.Sprintf("[::ffff:127.0.0.1]:%d", port) {
				t.Errorf("round %d: getpeername gives %s", round, peer)
			}
			r, err = hostDial("tcp", addr(localhost, port), "")
			l.expect(r, err, ns, fmt.Sprintf("round %d: 127.0.0.1:%d right after up", round, port))
			if _, err := l.e.Down(context.Background(), strings.ReplaceAll(name, "{ID}", l.id)); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestDownRemovesTheTablesItMade: ip6tables-nft makes its ip6 nat table
// the first time nsrun puts a rule there; the last down removes it again,
// and leaves alone a table that was there before nsrun's first up.
func TestDownRemovesTheTablesItMade(t *testing.T) {
	l := newLabWith(t, forward.IPTables)
	if b := l.backend(); b != iptables.NFT {
		t.Skipf("the iptables backend here is %s; ip6tables-legacy makes no nftables table", b)
	}
	fw := iptables.New(iptables.NFT, 30*time.Second)
	// The host as a fresh machine has it: no ip6 nat. Its empty ip6 nat
	// and ip6 filter, if any (they change no packet), go, and come back at
	// cleanup; one that holds something is another program's.
	before := nftTables(t)
	for _, table := range []string{"nat", "filter"} {
		if !before["ip6 "+table] {
			continue
		}
		snap, err := fw.Read(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if v6 := snap.(*iptables.Snapshot).V6; v6 == nil || !v6.Empty(table) {
			t.Skipf("ip6 %s holds rules of another program", table)
		}
		run(t, "nft", "delete", "table", "ip6", table)
		t.Cleanup(func() { exec.Command("nft", "add", "table", "ip6", table).Run() })
	}
	// Another program's ip6 filter, made before nsrun's first up.
	run(t, "nft", "add", "table", "ip6", "filter")
	t.Cleanup(func() {
		if !before["ip6 filter"] {
			exec.Command("nft", "delete", "table", "ip6", "filter").Run()
		}
	})
	ports := freePorts(t, 6)
	l.up(dualStack(ports))
	if !nftTables(t)["ip6 nat"] {
		t.Fatal("up of an IPv6 project made no ip6 nat table: the test shows nothing")
	}
	if _, err := l.e.Down(context.Background(), "t"+l.id); err != nil {
		t.Fatal(err)
	}
	after := nftTables(t)
	if after["ip6 nat"] {
		t.Error("down left the ip6 nat table ip6tables-nft made for nsrun")
	}
	if !after["ip6 filter"] {
		t.Error("down removed the ip6 filter table that was there before")
	}
}

// nftTables lists the host's nftables tables ("ip6 nat").
func nftTables(t *testing.T) map[string]bool {
	t.Helper()
	out, err := exec.Command("nft", "list", "tables").Output()
	if err != nil {
		t.Fatalf("nft list tables: %v", err)
	}
	tables := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "table" {
			tables[f[1]+" "+f[2]] = true
		}
	}
	return tables
}
