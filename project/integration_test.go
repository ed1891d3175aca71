package project

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/netns"
	"github.com/nsrun/nsrun/netns/nstest"
	"github.com/vishvananda/netlink"
)

var localhost = netip.MustParseAddr("127.0.0.1")

// twoServers is the blog scenario with a UDP port and a namespace without
// egress: ports P0 (ns a) and P1 (ns b) publish 8080, P2 publishes a's 9090/udp.
func twoServers(ports []int) string {
	return fmt.Sprintf(`name: t{ID}
namespaces:
  a{ID}:
    ports: ["%d:8080", "%d:9090/udp"]
  b{ID}:
    egress: false
    ports: ["%d:8080"]
`, ports[0], ports[2], ports[1])
}

func TestReachability(t *testing.T) {
	l := newLab(t)
	ports := freePorts(t, 3)
	st := l.up(twoServers(ports))
	a, b := l.ns("a"), l.ns("b")
	nstest.StartServer(t, a, a, "8080", "9090")
	nstest.StartServer(t, b, b, "8080", "")
	nstest.StartServer(t, l.outside, l.outside, "9999", "")
	gwA := st.Namespace(a).HostAddress.Addr()

	// 1. From another machine, to a host address (nat PREROUTING).
	r, err := nstest.DialFrom(t, l.outside, "tcp", addr(l.outHost, ports[0]), "")
	l.expect(r, err, a, "outside -> host:P0")
	if !strings.Contains(r, l.outPeer.String()) {
		t.Errorf("outside client's address not kept: %q", r)
	}
	r, err = nstest.DialFrom(t, l.outside, "tcp", addr(l.outHost, ports[1]), "")
	l.expect(r, err, b, "outside -> host:P1")

	// 2. From the host itself (nat OUTPUT): loopback and a host address.
	r, err = hostDial("tcp", addr(localhost, ports[0]), "")
	l.expect(r, err, a, "host -> 127.0.0.1:P0")
	r, err = hostDial("tcp", addr(localhost, ports[1]), "")
	l.expect(r, err, b, "host -> 127.0.0.1:P1")
	r, err = hostDial("tcp", addr(l.outHost, ports[0]), "")
	l.expect(r, err, a, "host -> host address:P0")
	r, err = hostDial("tcp", addr(localhost, ports[0]), "127.0.0.2:0")
	l.expect(r, err, a, "host, client bound to 127.0.0.2 -> 127.0.0.1:P0")

	// 3. Hairpin: a namespace to its own published port, and to another's.
	r, err = nstest.DialFrom(t, a, "tcp", addr(gwA, ports[0]), "")
	l.expect(r, err, a, "a -> its gateway:P0 (itself)")
	r, err = nstest.DialFrom(t, a, "tcp", addr(l.outHost, ports[0]), "")
	l.expect(r, err, a, "a -> host address:P0 (itself)")
	r, err = nstest.DialFrom(t, b, "tcp", addr(l.outHost, ports[0]), "")
	l.expect(r, err, a, "b -> host address:P0")
	r, err = nstest.DialFrom(t, a, "tcp", addr(l.outHost, ports[1]), "")
	l.expect(r, err, b, "a -> host address:P1")

	// Egress: a reaches the outside machine, masqueraded; b has no egress.
	r, err = nstest.DialFrom(t, a, "tcp", addr(l.outPeer, 9999), "")
	l.expect(r, err, l.outside, "a -> outside (egress)")
	if !strings.Contains(r, l.outHost.String()) {
		t.Errorf("egress not masqueraded to the host's address: %q", r)
	}
	r, err = nstest.DialFrom(t, b, "tcp", addr(l.outPeer, 9999), "")
	l.refuse(r, err, "b (egress: false) -> outside")

	// 6. UDP, from the host and from outside.
	r, err = hostDial("udp", addr(localhost, ports[2]), "")
	l.expect(r, err, a, "host -> 127.0.0.1:P2/udp")
	r, err = nstest.DialFrom(t, l.outside, "udp", addr(l.outHost, ports[2]), "")
	l.expect(r, err, a, "outside -> host:P2/udp")
}

func TestForwardPolicyDrop(t *testing.T) {
	for _, backend := range []forward.Backend{forward.NFT, forward.Legacy} {
		t.Run(string(backend), func(t *testing.T) {
			nstest.RequireRoot(t)
			tool := "iptables-" + string(backend)
			run(t, tool, "-P", "FORWARD", "DROP")
			t.Cleanup(func() { exec.Command(tool, "-P", "FORWARD", "ACCEPT").Run() })
			l := newLab(t)
			ports := freePorts(t, 3)
			if st := l.up(twoServers(ports)); st.Backend != backend || len(st.Accepts) != 0 {
				t.Fatalf("placement chosen: %s, accepts in %v; want all in %s, where FORWARD drops", st.Backend, st.Accepts, backend)
			}
			a := l.ns("a")
			nstest.StartServer(t, a, a, "8080", "")
			nstest.StartServer(t, l.outside, l.outside, "9999", "")
			r, err := nstest.DialFrom(t, l.outside, "tcp", addr(l.outHost, ports[0]), "")
			l.expect(r, err, a, "outside -> host:P0 with FORWARD DROP")
			r, err = nstest.DialFrom(t, a, "tcp", addr(l.outPeer, 9999), "")
			l.expect(r, err, l.outside, "a -> outside with FORWARD DROP")
		})
	}
}

func TestLocalhostOnlyPort(t *testing.T) {
	l := newLab(t)
	ports := freePorts(t, 1)
	l.up(fmt.Sprintf("name: t{ID}\nnamespaces:\n  a{ID}: {ports: [\"127.0.0.1:%d:8080\"]}\n", ports[0]))
	a := l.ns("a")
	nstest.StartServer(t, a, a, "8080", "")
	r, err := hostDial("tcp", addr(localhost, ports[0]), "")
	l.expect(r, err, a, "host -> 127.0.0.1:P")
	r, err = hostDial("tcp", addr(l.outHost, ports[0]), "")
	l.refuse(r, err, "host -> host address:P (published on 127.0.0.1 only)")
	r, err = nstest.DialFrom(t, l.outside, "tcp", addr(l.outHost, ports[0]), "")
	l.refuse(r, err, "outside -> host:P")

	// A neighbour that routes 127.0.0.1 via this host, with route_localnet
	// on its link, as if it were one of nsrun's: still no answer.
	run(t, "sysctl", "-qw", "net.ipv4.conf."+l.outLink+".route_localnet=1")
	run(t, "ip", "-n", l.outside, "addr", "flush", "dev", "lo")
	run(t, "ip", "-n", l.outside, "route", "add", "127.0.0.0/8", "via", l.outHost.String())
	r, err = nstest.DialFrom(t, l.outside, "tcp", addr(localhost, ports[0]), "")
	l.refuse(r, err, "neighbour routing 127.0.0.1 via the host -> 127.0.0.1:P")
}

// TestLoopbackShortcut: TCP from the host to a published port on
// 127.0.0.1 goes straight to the namespace at connect(), so the socket's
// own address is the link's while its peer is still 127.0.0.1:P. Without
// the programs the same connection goes through DNAT, from 127.0.0.1, and
// the next up puts them back.
func TestLoopbackShortcut(t *testing.T) {
	l := newLab(t)
	ports := freePorts(t, 2)
	src := fmt.Sprintf("name: t{ID}\nnamespaces:\n  a{ID}: {ports: [\"%d:8080\", \"127.0.0.1:%d:8080\"]}\n", ports[0], ports[1])
	st := l.up(src)
	a := l.ns("a")
	nstest.StartServer(t, a, a, "8080", "")
	link := st.Namespace(a).HostAddress.Addr()
	check := func(port int, want netip.Addr, what string) {
		t.Helper()
		c, err := net.DialTimeout("tcp4", addr(localhost, port), time.Second)
		if err != nil {
			t.Errorf("%s: %v", what, err)
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		l.expect(strings.TrimSpace(line), err, a, what)
		local := netip.MustParseAddrPort(c.LocalAddr().String()).Addr()
		if local != want || c.RemoteAddr().String() != addr(localhost, port) {
			t.Errorf("%s: socket %s -> %s; want %s -> %s", what, c.LocalAddr(), c.RemoteAddr(), want, addr(localhost, port))
		}
	}
	check(ports[0], link, "host -> 127.0.0.1:P0 by the shortcut")
	check(ports[1], link, "host -> 127.0.0.1:P1 (loopback only) by the shortcut")
	if err := forward.SweepShortcuts(); err != nil {
		t.Fatal(err)
	}
	check(ports[0], localhost, "host -> 127.0.0.1:P0 by DNAT, without the programs")
	check(ports[1], localhost, "host -> 127.0.0.1:P1 by DNAT, without the programs")
	l.up(src)
	check(ports[0], link, "host -> 127.0.0.1:P0 by the shortcut after up again")
}

// TestRouteLocalnetGuard is the CVE-2020-8558 attack from inside a
// namespace: route 127.0.0.1 via the host (whose nsrun link has
// route_localnet on) and reach a service bound to the host's loopback.
func TestRouteLocalnetGuard(t *testing.T) {
	l := newLab(t)
	st := l.up("name: t{ID}\nnamespaces:\n  a{ID}: {}\n")
	a := l.ns("a")
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintln(c, "host-secret from loopback")
			c.Close()
		}
	}()
	// The attacker is root in its namespace: its own sysctls are its to set.
	run(t, "ip", "netns", "exec", a, "sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1", "net.ipv4.conf.eth0.route_localnet=1")
	run(t, "ip", "-n", a, "addr", "flush", "dev", "lo")
	run(t, "ip", "-n", a, "route", "add", "127.0.0.0/8", "via", st.Namespace(a).HostAddress.Addr().String())
	r, err := nstest.DialFrom(t, a, "tcp", ln.Addr().String(), "")
	l.refuse(r, err, "namespace -> host loopback service via route_localnet")
}

// TestUDPStaleConntrack: datagrams sent to a port before it is published
// leave a conntrack entry that would keep them from the namespace; up and
// down remove such entries.
func TestUDPStaleConntrack(t *testing.T) {
	l := newLab(t)
	ports := freePorts(t, 2) // ports[1]: the client's fixed source port
	src := fmt.Sprintf("127.0.0.1:%d", ports[1])
	spec := func(ns string) string {
		return fmt.Sprintf("name: t{ID}\nnamespaces:\n  %s{ID}: {ports: [\"%d:9090/udp\"]}\n", ns, ports[0])
	}
	// Before up: nothing answers, but the flow is tracked.
	r, err := hostDial("udp", addr(localhost, ports[0]), src)
	l.refuse(r, err, "udp before up")
	l.up(spec("a"))
	a, b := l.ns("a"), l.ns("b")
	nstest.StartServer(t, a, a, "", "9090")
	r, err = hostDial("udp", addr(localhost, ports[0]), src)
	l.expect(r, err, a, "udp after up, same source port")

	// Down, then the port published by another namespace: the flow must
	// not stick to the old one.
	if _, err := l.e.Down(context.Background(), "t"+l.id); err != nil {
		t.Fatal(err)
	}
	l.up(spec("b"))
	nstest.StartServer(t, b, b, "", "9090")
	r, err = hostDial("udp", addr(localhost, ports[0]), src)
	l.expect(r, err, b, "udp after down and up elsewhere, same source port")
}

func TestSecondUpChangesNothing(t *testing.T) {
	l := newLab(t)
	ports := freePorts(t, 3)
	l.up(twoServers(ports))
	link, _ := netlink.LinkByName("nsr-a" + l.id)
	before := nstest.Snapshot()
	l.up(twoServers(ports))
	if after := nstest.Snapshot(); after != before {
		t.Errorf("second up changed the host:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	again, _ := netlink.LinkByName("nsr-a" + l.id)
	if link == nil || again == nil || link.Attrs().Index != again.Attrs().Index {
		t.Error("second up recreated a link")
	}
}

func TestReconcile(t *testing.T) {
	l := newLab(t)
	ports := freePorts(t, 5)
	l.up(twoServers(ports))
	a, b, c := l.ns("a"), l.ns("b"), l.ns("c")
	nstest.StartServer(t, a, a, "8080 8081", "")
	linkA, _ := netlink.LinkByName("nsr-" + a)

	// A connection to a that must survive the reconcile.
	conn, err := net.DialTimeout("tcp4", addr(localhost, ports[0]), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rd := bufio.NewReader(conn)
	if greeting, err := rd.ReadString('\n'); err != nil || !strings.HasPrefix(greeting, a) {
		t.Fatalf("greeting %q, %v", greeting, err)
	}

	// b removed, c added, a gets a second port.
	l.up(fmt.Sprintf(`name: t{ID}
namespaces:
  a{ID}:
    ports: ["%d:8080", "%d:8081"]
  c{ID}:
    ports: ["%d:8080"]
`, ports[0], ports[3], ports[4]))
	nstest.StartServer(t, c, c, "8080", "")
	names, _ := netns.List()
	if slices.Contains(names, b) || !slices.Contains(names, c) || !slices.Contains(names, a) {
		t.Errorf("namespaces after reconcile: %v", names)
	}
	if again, _ := netlink.LinkByName("nsr-" + a); linkA == nil || again == nil || again.Attrs().Index != linkA.Attrs().Index {
		t.Error("reconcile recreated the untouched namespace's link")
	}
	conn.SetDeadline(time.Now().Add(time.Second))
	fmt.Fprintln(conn, "still there")
	if echo, err := rd.ReadString('\n'); err != nil || echo != "still there\n" {
		t.Errorf("connection to the untouched namespace broke: %q, %v", echo, err)
	}
	r, err := hostDial("tcp", addr(localhost, ports[3]), "")
	l.expect(r, err, a, "added port")
	r, err = hostDial("tcp", addr(localhost, ports[4]), "")
	l.expect(r, err, c, "added namespace")
	r, err = hostDial("tcp", addr(localhost, ports[1]), "")
	l.refuse(r, err, "removed namespace's port")
}

func TestBusyPortPreflight(t *testing.T) {
	l := newLab(t)
	ln, err := net.Listen("tcp4", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := ln.Addr().(*net.TCPAddr).Port
	before := nstest.Snapshot()
	_, err = l.tryUp(fmt.Sprintf("name: t{ID}\nnamespaces:\n  a{ID}: {ports: [\"%d:8080\"]}\n", busy))
	var pf *PreflightError
	want := fmt.Sprintf("port %d/tcp is already in use by %s (pid %d) on the host; stop it or publish another port", busy, processName(), os.Getpid())
	if !errors.As(err, &pf) || !strings.Contains(err.Error(), want) {
		t.Errorf("up on a busy port: %v; want %q", err, want)
	}
	if after := nstest.Snapshot(); after != before {
		t.Errorf("a failed preflight changed the host:\n%s\n%s", before, after)
	}
}

func processName() string {
	comm, _ := os.ReadFile("/proc/self/comm")
	return strings.TrimSpace(string(comm))
}

// failingForwards fails after applying the forwards, as if iptables broke
// half-way.
type failingForwards struct{ Kernel }

func (f failingForwards) ApplyForwards(ctx context.Context, at forward.Placement, p forward.Project) error {
	if err := f.Kernel.ApplyForwards(ctx, at, p); err != nil {
		return err
	}
	return errors.New("injected failure after applying forwards")
}

func TestRollbackOfAFailedUp(t *testing.T) {
	l := newLab(t)
	before := nstest.Snapshot()
	l.e.System = failingForwards{l.e.System.(Kernel)}
	_, err := l.tryUp(twoServers(freePorts(t, 3)))
	if err == nil || !strings.Contains(err.Error(), "what this run created was removed") {
		t.Fatalf("up: %v", err)
	}
	if after := nstest.Snapshot(); after != before {
		t.Errorf("a failed up left changes:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestPlanScriptBuildsTheSameSetup runs the output of plan by hand, then
// removes it with down, which finds it by its labels.
func TestPlanScriptBuildsTheSameSetup(t *testing.T) {
	l := newLab(t)
	ports := freePorts(t, 1)
	src := strings.ReplaceAll(fmt.Sprintf("name: t{ID}\nsubnet: 10.213.0.0/16\nnamespaces:\n  a{ID}: {ports: [\"%d:8080\"]}\n", ports[0]), "{ID}", l.id)
	s, err := specsParse(src)
	if err != nil {
		t.Fatal(err)
	}
	script, err := Script(FromSpec(s))
	if err != nil {
		t.Fatal(err)
	}
	// The script uses the default iptables; use the backend nsrun chose.
	script = strings.ReplaceAll(script, "iptables-restore ", "iptables-"+string(l.backend())+"-restore ")
	l.remember(s.Name)
	// The script turns forwarding on without a record for down to undo.
	forwarding, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	t.Cleanup(func() { os.WriteFile("/proc/sys/net/ipv4/ip_forward", forwarding, 0o644) })
	if out, err := exec.Command("sh", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("running the plan: %v\n%s", err, out)
	}
	a := l.ns("a")
	nstest.StartServer(t, a, a, "8080", "")
	r, err := hostDial("tcp", addr(localhost, ports[0]), "")
	l.expect(r, err, a, "host -> 127.0.0.1:P after running the plan by hand")
	r, err = nstest.DialFrom(t, l.outside, "tcp", addr(l.outHost, ports[0]), "")
	l.expect(r, err, a, "outside -> host:P after running the plan by hand")
	found, err := l.e.Down(context.Background(), s.Name)
	if err != nil || !found {
		t.Errorf("down of the hand-made project: %v, %v", found, err)
	}
}

func TestDownOfAVanishedProject(t *testing.T) {
	l := newLab(t)
	found, err := l.e.Down(context.Background(), "t"+l.id)
	if err != nil || found {
		t.Errorf("Down of a project that never was = %v, %v", found, err)
	}
	// Up, then everything removed behind nsrun's back: down still succeeds.
	l.up("name: t{ID}\nnamespaces:\n  a{ID}: {}\n")
	exec.Command("ip", "link", "del", "nsr-"+l.ns("a")).Run()
	exec.Command("ip", "netns", "del", l.ns("a")).Run()
	if _, err := l.e.Down(context.Background(), "t"+l.id); err != nil {
		t.Errorf("down after removals behind its back: %v", err)
	}
}

// TestForeignRulesAreLeftAlone: other tools' chains and rules, and their
// order, are the same after up and after down.
func TestForeignRulesAreLeftAlone(t *testing.T) {
	l := newLab(t)
	tool := "iptables-" + string(l.backend())
	foreign := [][]string{
		{"-t", "nat", "-N", "FOREIGN-" + l.id},
		{"-t", "nat", "-A", "FOREIGN-" + l.id, "-p", "tcp", "--dport", "9", "-j", "RETURN"},
		{"-t", "nat", "-A", "PREROUTING", "-p", "tcp", "--dport", "9", "-j", "FOREIGN-" + l.id},
		{"-t", "nat", "-A", "POSTROUTING", "-o", "nowhere0", "-j", "MASQUERADE"},
		{"-A", "FORWARD", "-i", "nowhere0", "-j", "DROP"},
		{"-A", "FORWARD", "-o", "nowhere0", "-j", "ACCEPT"},
		{"-A", "INPUT", "-i", "nowhere0", "-j", "DROP"},
	}
	before := nstest.Snapshot()
	for _, args := range foreign {
		run(t, append([]string{tool}, args...)...)
	}
	t.Cleanup(func() {
		for i := len(foreign) - 1; i >= 0; i-- {
			args := append([]string(nil), foreign[i]...)
			for j, a := range args {
				switch a {
				case "-A":
					args[j] = "-D"
				case "-N":
					args[j] = "-X"
				}
			}
			exec.Command(tool, args...).Run()
		}
		if after := nstest.Snapshot(); after != before {
			t.Errorf("foreign rules not cleaned up:\n%s\n%s", before, after)
		}
	})
	theirs := func() string {
		out, _ := exec.Command(tool + "-save").Output()
		var keep []string
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, "-A ") && !strings.Contains(line, "nsrun") {
				keep = append(keep, line)
			}
		}
		return strings.Join(keep, "\n")
	}
	want := theirs()
	ports := freePorts(t, 3)
	l.up(twoServers(ports))
	if got := theirs(); got != want {
		t.Errorf("up changed other rules:\nbefore:\n%s\nafter:\n%s", want, got)
	}
	if _, err := l.e.Down(context.Background(), "t"+l.id); err != nil {
		t.Fatal(err)
	}
	if got := theirs(); got != want {
		t.Errorf("down changed other rules:\nbefore:\n%s\nafter:\n%s", want, got)
	}
}
