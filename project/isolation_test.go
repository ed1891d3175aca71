package project

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/forward/iptables"
	"github.com/nsrun/nsrun/forward/nftables"
	"github.com/nsrun/nsrun/internal/daemon"
	"github.com/nsrun/nsrun/internal/proc"
	"github.com/nsrun/nsrun/keeper"
	"github.com/nsrun/nsrun/netns"
	"github.com/nsrun/nsrun/netns/nstest"
	"github.com/nsrun/nsrun/state"
)

// tenants are two projects of one lab, with IPv6: t{ID} has x[front],
// y[front,back] (publishing P0), z[back] and e on the external network
// shared{ID}; u{ID} has w on its default network (publishing P1) and v on
// shared{ID}.
func tenants(p []int) (string, string) {
	return fmt.Sprintf(`name: t{ID}
ipv6: true
networks:
  front: {}
  back: {}
  shared{ID}: {external: true}
namespaces:
  x{ID}: {networks: [front]}
  y{ID}: {networks: [front, back], ports: ["%d:8080", "%d:9090/udp"]}
  z{ID}: {networks: [back]}
  e{ID}: {networks: [shared{ID}]}
`, p[0], p[2]), fmt.Sprintf(`name: u{ID}
ipv6: true
networks:
  shared{ID}: {external: true}
namespaces:
  w{ID}: {ports: ["%d:8080"]}
  v{ID}: {networks: [shared{ID}]}
`, p[1])
}

// eachBackend runs a test once per firewall backend: iptables-nft,
// iptables-legacy (each chosen by holding nsrun's chain first, as a host
// where nsrun published before) and nftables.
func eachBackend(t *testing.T, test func(t *testing.T, l *lab)) {
	for _, b := range iptables.Backends {
		t.Run(string(b), func(t *testing.T) {
			nstest.RequireRoot(t)
			run(t, string(b), "-t", "nat", "-N", iptables.ChainPost)
			t.Cleanup(func() { exec.Command(string(b), "-t", "nat", "-X", iptables.ChainPost).Run() })
			l := newLab(t)
			if got := l.backend(); got != b {
				t.Fatalf("a new project goes to %s; want %s", got, b)
			}
			test(t, l)
		})
	}
	t.Run("nftables", func(t *testing.T) { test(t, newLabWith(t, forward.NFTables)) })
}

// TestIsolation: namespaces reach each other's addresses directly only on
// a network they share, over IPv4 and IPv6, TCP and UDP, in every backend;
// across projects only on an external network; every project's published
// ports, egress and hairpin stay as they were.
func TestIsolation(t *testing.T) {
	eachBackend(t, func(t *testing.T, l *lab) {
		ports := freePorts(t, 3)
		one, two := tenants(ports)
		st, other := l.up(one), l.up(two)
		isolated(t, l, ports, st, other)
		// e's hosts file names v, on the external network, since u came
		// up; no other namespace of u; and not v once u is down.
		names := func(ns string) string {
			data, err := os.ReadFile(filepath.Join(netns.EtcDir, l.ns(ns), "hosts"))
			if err != nil {
				t.Fatal(err)
			}
			return string(data)
		}
		if h := names("e"); !strings.Contains(h, "\t"+l.ns("v")+"\n") || strings.Contains(h, l.ns("w")) || strings.Contains(h, l.ns("x")) {
			t.Errorf("e's hosts:\n%s", h)
		}
		if _, err := l.e.Down(context.Background(), other.Project); err != nil {
			t.Fatal(err)
		}
		if h := names("e"); strings.Contains(h, l.ns("v")) {
			t.Errorf("e's hosts after u's down:\n%s", h)
		}
	})
}

// isolated checks TestIsolation's cases on the projects of tenants.
func isolated(t *testing.T, l *lab, ports []int, st, other *state.Record) {
	t.Helper()
	names := []string{"x", "y", "z", "e", "w", "v"}
	addrs := map[string][2]netip.Addr{}
	for _, n := range names {
		ns := st.Namespace(l.ns(n))
		if ns == nil {
			ns = other.Namespace(l.ns(n))
		}
		addrs[n] = [2]netip.Addr{ns.Address.Addr(), ns.Address6.Addr()}
		nstest.StartServer(t, l.ns(n), l.ns(n), "8080", "9090")
	}
	nstest.StartServer(t, l.outside, l.outside, "9999", "")
	// Each pair is dialled at both addresses, TCP and UDP, all at once: a
	// refused dial waits for its timeout.
	var wg sync.WaitGroup
	reach := func(from, to string, want bool) {
		for _, a := range addrs[to] {
			for _, proto := range []string{"tcp", "udp"} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					port := map[string]int{"tcp": 8080, "udp": 9090}[proto]
					r, err := nstest.DialFrom(t, l.ns(from), proto, addr(a, port), "")
					what := fmt.Sprintf("%s -> %s %s/%s directly", from, to, a, proto)
					if want {
						l.expect(r, err, l.ns(to), what)
					} else {
						l.refuse(r, err, what)
					}
				}()
			}
		}
	}
	// Within t: x-y on front, y-z on back; x and z share none.
	for _, pair := range [][2]string{{"x", "y"}, {"y", "x"}, {"y", "z"}, {"z", "y"}} {
		reach(pair[0], pair[1], true)
	}
	reach("x", "z", false)
	reach("z", "x", false)
	// Across projects: only e and v, on the external network.
	reach("e", "v", true)
	reach("v", "e", true)
	for _, pair := range [][2]string{{"w", "y"}, {"y", "w"}, {"w", "x"}, {"x", "w"}, {"e", "w"}, {"v", "y"}, {"z", "v"}} {
		reach(pair[0], pair[1], false)
	}
	// e is on no network with x, in its own project.
	reach("e", "x", false)
	wg.Wait()
	// Published ports of either project, through the host, from anywhere.
	for _, from := range []string{"w", "x", "z", "v"} {
		r, err := nstest.DialFrom(t, l.ns(from), "tcp", addr(l.outHost, ports[0]), "")
		l.expect(r, err, l.ns("y"), from+" -> host:P0 (t's y)")
		r, err = nstest.DialFrom(t, l.ns(from), "tcp", addr(l.outHost6, ports[0]), "")
		l.expect(r, err, l.ns("y"), from+" -> [host]:P0 (t's y)")
		r, err = nstest.DialFrom(t, l.ns(from), "udp", addr(l.outHost, ports[2]), "")
		l.expect(r, err, l.ns("y"), from+" -> host:P2/udp (t's y)")
	}
	r, err := nstest.DialFrom(t, l.ns("y"), "tcp", addr(l.outHost, ports[1]), "")
	l.expect(r, err, l.ns("w"), "y -> host:P1 (u's w)")
	r, err = nstest.DialFrom(t, l.ns("y"), "tcp", addr(l.outHost, ports[0]), "")
	l.expect(r, err, l.ns("y"), "y -> host:P0 (itself, hairpin)")
	r, err = nstest.DialFrom(t, l.ns("w"), "tcp", addr(l.outHost, ports[1]), "")
	l.expect(r, err, l.ns("w"), "w -> host:P1 (itself, hairpin)")
	// Egress, and its replies.
	for _, from := range []string{"x", "w"} {
		r, err := nstest.DialFrom(t, l.ns(from), "tcp", addr(l.outPeer, 9999), "")
		l.expect(r, err, l.outside, from+" -> outside (egress)")
	}
	// From outside, published ports only, as before.
	r, err = nstest.DialFrom(t, l.outside, "tcp", addr(l.outHost, ports[1]), "")
	l.expect(r, err, l.ns("w"), "outside -> host:P1")
}

// TestKeeperHealsIsolation: the keeper puts back the isolation rules when
// they are flushed behind its back: the namespaces that share no network
// are kept apart again, and those that share one still connect.
func TestKeeperHealsIsolation(t *testing.T) {
	eachFirewall(t, func(t *testing.T, l *lab) {
		l.e.NoHeal = false
		ports := freePorts(t, 3)
		one, _ := tenants(ports)
		st := l.up(one)
		x, y, z := l.ns("x"), l.ns("y"), l.ns("z")
		zAddr := st.Namespace(z).Address.Addr()
		for _, ns := range []string{y, z} {
			nstest.StartServer(t, ns, ns, "8080", "")
		}
		apart := func(what string) {
			t.Helper()
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				_, errXZ := nstest.DialFrom(t, x, "tcp", addr(zAddr, 8080), "")
				r, errXY := nstest.DialFrom(t, x, "tcp", addr(st.Namespace(y).Address.Addr(), 8080), "")
				if errXZ != nil && errXY == nil {
					l.expect(r, errXY, y, what+": x -> y (front)")
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: x -> z answers (%v) or x -> y does not (%v) after 10 s", what, errXZ, errXY)
				}
			}
		}
		apart("after up")
		before := l.e.Store.Repairs("t" + l.id).Repairs
		if st.Backend.IsIPTables() {
			run(t, string(st.Backend), "-F", iptables.ProjectChains("t"+l.id).Forward)
		} else {
			run(t, "nft", "flush", "chain", "inet", nftables.Table, "filter-forward")
		}
		apart("after the isolation rules were flushed")
		if h := l.e.Store.Repairs("t" + l.id); h.Repairs <= before {
			t.Errorf("repairs recorded: %+v; want more than %d", h, before)
		}
	})
}

// TestHeldPorts: from up until down, a host process cannot bind a
// published port (TCP or UDP, IPv4 or IPv6, a port of a range, one bound
// to 127.0.0.1), and what was reachable still is; the keeper, killed,
// holds them again from the next up; after down they bind.
func TestHeldPorts(t *testing.T) {
	l := newLab(t) // up --no-heal: the keeper runs to hold the ports all the same
	p := freePorts(t, 4)
	st := l.up(fmt.Sprintf(`name: t{ID}
ipv6: true
namespaces:
  a{ID}: {ports: ["%d:8080", "%d:9090/udp", "%d-%d:7000-7001", "127.0.0.1:%d:8080"]}
`, p[0], p[1], p[2], p[2]+1, p[3]))
	a := l.ns("a")
	nstest.StartServer(t, a, a, "8080 7001", "9090")
	type bind struct{ network, addr string }
	binds := []bind{
		{"tcp4", fmt.Sprintf("0.0.0.0:%d", p[0])},
		{"tcp4", fmt.Sprintf("%s:%d", l.outHost, p[0])}, // one host address of the published 0.0.0.0
		{"tcp6", fmt.Sprintf("[::]:%d", p[0])},
		{"udp4", fmt.Sprintf("0.0.0.0:%d", p[1])},
		{"udp6", fmt.Sprintf("[::]:%d", p[1])},
		{"tcp4", fmt.Sprintf("0.0.0.0:%d", p[2]+1)},
		{"tcp4", fmt.Sprintf("127.0.0.1:%d", p[3])},
		{"tcp4", fmt.Sprintf("0.0.0.0:%d", p[3])},
	}
	tryBind := func(b bind) error {
		var c io.Closer
		var err error
		if strings.HasPrefix(b.network, "udp") {
			c, err = net.ListenPacket(b.network, b.addr)
		} else {
			c, err = net.Listen(b.network, b.addr)
		}
		if err == nil {
			c.Close()
		}
		return err
	}
	held := func(when string) {
		t.Helper()
		for _, b := range binds {
			if err := tryBind(b); !errors.Is(err, syscall.EADDRINUSE) {
				t.Errorf("%s: bind %s %s: %v; want address in use", when, b.network, b.addr, err)
			}
		}
		// Holding changes no way in.
		r, err := nstest.DialFrom(t, l.outside, "tcp", addr(l.outHost, p[0]), "")
		l.expect(r, err, a, when+": outside -> host:P0")
		r, err = nstest.DialFrom(t, l.outside, "tcp", addr(l.outHost6, p[0]), "")
		l.expect(r, err, a, when+": outside -> [host]:P0")
		r, err = nstest.DialFrom(t, l.outside, "udp", addr(l.outHost, p[1]), "")
		l.expect(r, err, a, when+": outside -> host:P1/udp")
		r, err = nstest.DialFrom(t, l.outside, "tcp", addr(l.outHost, p[2]+1), "")
		l.expect(r, err, a, when+": outside -> host:P2+1 (a range)")
		r, err = hostDial("tcp", addr(localhost, p[0]), "")
		l.expect(r, err, a, when+": host -> 127.0.0.1:P0")
		r, err = hostDial("tcp", addr(localhost, p[3]), "")
		l.expect(r, err, a, when+": host -> 127.0.0.1:P3")
		r, err = hostDial("udp", addr(localhost, p[1]), "")
		l.expect(r, err, a, when+": host -> 127.0.0.1:P1/udp")
	}
	held("after up")
	k := keeper.Daemon{Self: nstest.Binary(t)}
	kp, ok := k.Running(l.e.Store.Dir)
	if !ok {
		t.Fatal("no keeper runs to hold the published ports")
	}
	syscall.Kill(kp.PID, syscall.SIGKILL)
	if !daemon.Await(context.Background(), 10*time.Second, 20*time.Millisecond, func() bool { return !proc.Alive(kp) }) {
		t.Fatal("the keeper outlived SIGKILL for 10 s")
	}
	// The port is free once the keeper's last thread is gone (the group
	// leader shows as a zombie before that).
	if !daemon.Await(context.Background(), 10*time.Second, 20*time.Millisecond, func() bool { return tryBind(binds[0]) == nil }) {
		t.Errorf("bind %s with the keeper killed: %v; want it free (the hold went with the keeper)", binds[0].addr, tryBind(binds[0]))
	}
	l.up(fmt.Sprintf(`name: t{ID}
ipv6: true
namespaces:
  a{ID}: {ports: ["%d:8080", "%d:9090/udp", "%d-%d:7000-7001", "127.0.0.1:%d:8080"]}
`, p[0], p[1], p[2], p[2]+1, p[3]))
	held("after the keeper was killed and up ran again")
	// A port the project no longer publishes is let go at once.
	l.up(fmt.Sprintf("name: t{ID}\nipv6: true\nnamespaces:\n  a{ID}: {ports: [\"%d:9090/udp\"]}\n", p[1]))
	if err := tryBind(binds[0]); err != nil {
		t.Errorf("bind %s once no longer published: %v", binds[0].addr, err)
	}
	if err := tryBind(binds[3]); !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("bind %s, still published: %v; want address in use", binds[3].addr, err)
	}
	if _, err := l.e.Down(context.Background(), st.Project); err != nil {
		t.Fatal(err)
	}
	for _, b := range binds {
		if err := tryBind(b); err != nil {
			t.Errorf("after down: bind %s %s: %v", b.network, b.addr, err)
		}
	}
}
