package shortcut

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/internal/nsexec"
	"github.com/nsrun/nsrun/netns"
	"github.com/nsrun/nsrun/netns/nstest"
	"github.com/nsrun/nsrun/specs"
	"golang.org/x/sys/unix"
)

func TestShortcuts(t *testing.T) {
	p := forward.Project{Name: "demo", Namespaces: []forward.Namespace{
		{Name: "a", Address: netip.MustParsePrefix("10.9.1.2/24"), Ports: []specs.Port{
			specs.MustParsePort("6000:8080"), specs.MustParsePort("127.0.0.1:6100:9090/udp"), specs.MustParsePort("7000-7002:8000-8002"),
		}},
		{Name: "b", Address: netip.MustParsePrefix("10.9.2.2/24"), Ports: []specs.Port{
			specs.MustParsePort("192.0.2.1:6001:8080"), specs.MustParsePort("127.0.0.2:6002:80"),
		}},
	}}
	got := Of(p)
	want := []Entry{
		{netip.MustParseAddrPort("0.0.0.0:6000"), netip.MustParseAddrPort("10.9.1.2:8080")},
		{netip.MustParseAddrPort("0.0.0.0:7000"), netip.MustParseAddrPort("10.9.1.2:8000")},
		{netip.MustParseAddrPort("0.0.0.0:7001"), netip.MustParseAddrPort("10.9.1.2:8001")},
		{netip.MustParseAddrPort("0.0.0.0:7002"), netip.MustParseAddrPort("10.9.1.2:8002")},
		{netip.MustParseAddrPort("127.0.0.2:6002"), netip.MustParseAddrPort("10.9.2.2:80")},
	}
	if !slices.Equal(got, want) {
		t.Errorf("Shortcuts:\n got %v\nwant %v (TCP on every address or on loopback only)", got, want)
	}
}

// TestShortcutEntryLayout checks the map entry against struct
// bpf_sock_addr: address bytes in network order, then the port's two
// bytes in network order in the low half of a native 32-bit word.
func TestShortcutEntryLayout(t *testing.T) {
	k, v := entry(Entry{netip.MustParseAddrPort("127.0.0.1:16000"), netip.MustParseAddrPort("10.9.1.2:8080")}, owner("demo"))
	var port [4]byte
	binary.NativeEndian.PutUint32(port[:], uint32(binary.NativeEndian.Uint16([]byte{0x3e, 0x80})))
	want := append([]byte{127, 0, 0, 1}, port[:]...)
	if got, _ := binary.Append(nil, binary.NativeEndian, k); !bytes.Equal(got, want) {
		t.Errorf("key bytes %x; want %x", got, want)
	}
	binary.NativeEndian.PutUint32(port[:], uint32(binary.NativeEndian.Uint16([]byte{0x1f, 0x90})))
	want = append([]byte{10, 9, 1, 2}, port[:]...)
	if got, _ := binary.Append(nil, binary.NativeEndian, v); !bytes.Equal(got[:8], want) || v.Owner != owner("demo") || owner("demo") == owner("demo2") {
		t.Errorf("value bytes %x; want %x and the owner", got, want)
	}
}

// loopbackServer listens on 127.0.0.1 and answers each connection with
// "NAME <the client's address>".
func loopbackServer(t *testing.T, name string) netip.AddrPort {
	t.Helper()
	return server(t, "tcp4", "127.0.0.1:0", name)
}

// freePort returns a TCP port that nothing on 127.0.0.1 listens on.
func freePort(t *testing.T) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return netip.MustParseAddrPort(ln.Addr().String()).Port()
}

// server listens on addr and answers each connection with "NAME <the
// client's address>".
func server(t *testing.T, network, addr, name string) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s %s\n", name, c.RemoteAddr())
			c.Close()
		}
	}()
	return netip.MustParseAddrPort(ln.Addr().String())
}

// dial connects from the host and returns the server's line and the
// peer the socket reports.
func dial(addr string) (string, string, error) { return dialNet("tcp4", addr) }

func dialNet(network, addr string) (string, string, error) {
	c, err := net.DialTimeout(network, addr, 2*time.Second)
	if err != nil {
		return "", "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), c.RemoteAddr().String(), err
}

// dial6 connects an AF_INET6 socket to the v4-mapped address of a, reads
// the server's line and returns it with the peer getpeername gives.
func dial6(t *testing.T, a [4]byte, port uint16) (*unix.SockaddrInet6, string) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "dial6")
	defer f.Close()
	mapped := [16]byte{10: 0xff, 11: 0xff, 12: a[0], 13: a[1], 14: a[2], 15: a[3]}
	if err := unix.Connect(fd, &unix.SockaddrInet6{Addr: mapped, Port: int(port)}); err != nil {
		t.Fatalf("connect to [::ffff:%v]:%d: %v", a, port, err)
	}
	sa, err := unix.Getpeername(fd)
	if err != nil {
		t.Fatal(err)
	}
	f.SetDeadline(time.Now().Add(2 * time.Second))
	line, _ := bufio.NewReader(f).ReadString('\n')
	in6, _ := sa.(*unix.SockaddrInet6)
	if in6 == nil {
		t.Fatalf("getpeername gave %T", sa)
	}
	return in6, strings.TrimSpace(line)
}

func shortcutAttached(t *testing.T) bool {
	t.Helper()
	s, err := openShortcut(false, false)
	if err != nil {
		t.Fatal(err)
	}
	if s != nil {
		s.Close()
	}
	return s != nil
}

// TestShortcutRedirect runs the programs for real, between two loopback
// ports of the host: the published one, where nothing listens, and the
// target.
func TestShortcutRedirect(t *testing.T) {
	nstest.RequireRoot(t)
	project := strings.ToLower(nstest.Name("sc"))
	other := project + "-other"
	t.Cleanup(func() { Set(project, nil); Set(other, nil) })
	if shortcutAttached(t) {
		t.Fatal("nsrun's programs are on the root cgroup before the test; remove them with 'nsrun down --all'")
	}
	target := loopbackServer(t, "target")
	second := loopbackServer(t, "second")
	target6 := server(t, "tcp6", "[::1]:0", "target6")
	pAll, pExact, pOther := freePort(t), freePort(t), freePort(t)
	p6All, p6Exact := freePort(t), freePort(t)
	err := Set(project, []Entry{
		{netip.AddrPortFrom(netip.IPv4Unspecified(), pAll), target},
		{netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), pExact), target},
		{netip.AddrPortFrom(netip.IPv6Unspecified(), p6All), target6},
		{netip.AddrPortFrom(netip.IPv6Loopback(), p6Exact), target6},
	})
	if err != nil {
		t.Fatalf("Set: %v (this kernel should take the programs)", err)
	}
	if err := Set(other, []Entry{{netip.AddrPortFrom(netip.IPv4Unspecified(), pOther), second}}); err != nil {
		t.Fatal(err)
	}

	for _, a := range []string{"127.0.0.1", "127.0.0.3", "127.0.0.2"} {
		at := net.JoinHostPort(a, strconv.Itoa(int(pAll)))
		line, peer, err := dial(at)
		if err != nil || !strings.HasPrefix(line, "target ") || peer != at {
			t.Errorf("host -> %s (published on every address): %q, peer %s, %v; want the target, peer %s", at, line, peer, err, at)
		}
	}
	at := fmt.Sprintf("127.0.0.2:%d", pExact)
	if line, peer, err := dial(at); err != nil || !strings.HasPrefix(line, "target ") || peer != at {
		t.Errorf("host -> %s (published on 127.0.0.2): %q, peer %s, %v; want the target", at, line, peer, err)
	}
	if line, _, err := dial(fmt.Sprintf("127.0.0.1:%d", pExact)); err == nil {
		t.Errorf("host -> 127.0.0.1:%d (published on 127.0.0.2 only) was redirected: %q", pExact, line)
	}
	if line, _, err := dial(fmt.Sprintf("127.0.0.1:%d", pOther)); err != nil || !strings.HasPrefix(line, "second ") {
		t.Errorf("host -> the other project's port: %q, %v", line, err)
	}

	t.Run("udp is left to DNAT", func(t *testing.T) {
		pc, err := net.ListenPacket("udp4", fmt.Sprintf("127.0.0.1:%d", pAll))
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		c, err := net.Dial("udp4", pc.LocalAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("hello"))
		pc.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, _, err := pc.ReadFrom(make([]byte, 16)); err != nil {
			t.Errorf("a datagram to 127.0.0.1:%d did not arrive there: %v", pAll, err)
		}
	})

	t.Run("[::1]", func(t *testing.T) {
		// Published on every IPv6 address (::) or on ::1: redirected, and
		// getpeername gives [::1]:PORT.
		for _, p := range []uint16{p6All, p6Exact} {
			at := fmt.Sprintf("[::1]:%d", p)
			line, peer, err := dialNet("tcp6", at)
			if err != nil || !strings.HasPrefix(line, "target6 ") || peer != at {
				t.Errorf("host -> %s: %q, peer %s, %v; want the target, peer %s", at, line, peer, err, at)
			}
		}
		// A port published on IPv4 only is not IPv6's.
		if line, _, err := dialNet("tcp6", fmt.Sprintf("[::1]:%d", pAll)); err == nil {
			t.Errorf("host -> [::1]:%d (published on IPv4 only) was redirected: %q", pAll, line)
		}
		if line, _, err := dialNet("tcp4", fmt.Sprintf("127.0.0.1:%d", p6All)); err == nil {
			t.Errorf("host -> 127.0.0.1:%d (published on IPv6 only) was redirected: %q", p6All, line)
		}
	})

	t.Run("a dual-stack socket to ::ffff:127.0.0.1", func(t *testing.T) {
		// An AF_INET6 socket talking IPv4 (Java's, Python's dual-stack
		// sockets) meets connect6, not connect4.
		for _, a := range [][4]byte{{127, 0, 0, 1}, {127, 0, 0, 3}} {
			peer, line := dial6(t, a, pAll)
			want := &unix.SockaddrInet6{Port: int(pAll), Addr: [16]byte{10: 0xff, 11: 0xff, 12: a[0], 13: a[1], 14: a[2], 15: a[3]}}
			if !strings.HasPrefix(line, "target ") || peer.Port != want.Port || peer.Addr != want.Addr {
				t.Errorf("[::ffff:%v]:%d: %q, peer %v; want the target, peer the published address", a, pAll, line, peer.Addr)
			}
		}
	})

	t.Run("a socket connected again forgets the published address", func(t *testing.T) {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: int(pAll)}); err != nil {
			t.Fatal(err)
		}
		// connect(2) to an AF_UNSPEC address disconnects a TCP socket.
		var unspec unix.RawSockaddrInet4 // Family 0: AF_UNSPEC
		if _, _, errno := unix.Syscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&unspec)), unsafe.Sizeof(unspec)); errno != 0 {
			t.Fatalf("disconnecting: %v", errno)
		}
		if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: int(second.Port())}); err != nil {
			t.Fatal(err)
		}
		sa, err := unix.Getpeername(fd)
		if err != nil {
			t.Fatal(err)
		}
		if in4, ok := sa.(*unix.SockaddrInet4); !ok || in4.Port != int(second.Port()) {
			t.Errorf("peer after the second connect: %+v; want 127.0.0.1:%d", sa, second.Port())
		}
	})

	t.Run("other network namespaces are left alone", func(t *testing.T) {
		ns := nstest.Name("sc")
		if err := netns.Create(ns); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { netns.Delete(ns) })
		nstest.StartServer(t, ns, "inner", strconv.Itoa(int(pAll)), "")
		r, err := nstest.DialFrom(t, ns, "tcp", fmt.Sprintf("127.0.0.1:%d", pAll), "")
		if err != nil || !strings.HasPrefix(r, "inner from 127.0.0.1:") {
			t.Errorf("in a namespace, 127.0.0.1:%d: %q, %v; want its own server", pAll, r, err)
		}
	})

	// Each redirected connect() was counted under the entry it met (the
	// dual-stack ones under the IPv4 entry), and a Set of the same entries
	// again keeps the counts.
	wantConns := map[netip.AddrPort]uint64{
		netip.AddrPortFrom(netip.IPv4Unspecified(), pAll):            3 + 2 + 1,
		netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), pExact): 1,
		netip.AddrPortFrom(netip.IPv6Unspecified(), p6All):           1,
		netip.AddrPortFrom(netip.IPv6Loopback(), p6Exact):            1,
		netip.AddrPortFrom(netip.IPv4Unspecified(), pOther):          1,
	}
	for round := range 2 {
		table, err := Read()
		if err != nil {
			t.Fatal(err)
		}
		for host, n := range wantConns {
			if table.Conns[host] != n {
				t.Errorf("round %d: connections to %s: %d, want %d (all: %v)", round, host, table.Conns[host], n, table.Conns)
			}
		}
		if n, ok := table.Connections(specs.Port{HostIP: netip.IPv4Unspecified(), Protocol: specs.TCP, Published: specs.PortRange{First: pAll, Last: pAll}}); !ok || n != 6 {
			t.Errorf("round %d: Connections of the port published on every address: %d, %t; want 6", round, n, ok)
		}
		err = Set(project, []Entry{
			{netip.AddrPortFrom(netip.IPv4Unspecified(), pAll), target},
			{netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), pExact), target},
			{netip.AddrPortFrom(netip.IPv6Unspecified(), p6All), target6},
			{netip.AddrPortFrom(netip.IPv6Loopback(), p6Exact), target6},
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	// Removing one project keeps the other's shortcut; the last takes the
	// programs with it.
	if err := Set(project, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := dial(fmt.Sprintf("127.0.0.1:%d", pAll)); err == nil {
		t.Errorf("127.0.0.1:%d is still redirected after its project's shortcuts were removed", pAll)
	}
	if line, _, err := dial(fmt.Sprintf("127.0.0.1:%d", pOther)); err != nil || !strings.HasPrefix(line, "second ") {
		t.Errorf("the other project's port after the first was removed: %q, %v", line, err)
	}
	if err := Set(other, nil); err != nil {
		t.Fatal(err)
	}
	if shortcutAttached(t) {
		t.Error("the programs are still attached after the last shortcut was removed")
	}
}

// TestSweepShortcuts detaches the programs whatever they hold.
func TestSweepShortcuts(t *testing.T) {
	nstest.RequireRoot(t)
	project := strings.ToLower(nstest.Name("sc"))
	t.Cleanup(func() { Set(project, nil) })
	target := loopbackServer(t, "target")
	p := freePort(t)
	if err := Set(project, []Entry{{netip.AddrPortFrom(netip.IPv4Unspecified(), p), target}}); err != nil {
		t.Fatal(err)
	}
	if !shortcutAttached(t) {
		t.Fatal("the programs are not attached")
	}
	if err := Sweep(); err != nil {
		t.Fatal(err)
	}
	if shortcutAttached(t) {
		t.Error("the programs are still attached after the sweep")
	}
	if _, _, err := dial(fmt.Sprintf("127.0.0.1:%d", p)); err == nil {
		t.Errorf("127.0.0.1:%d is still redirected after the sweep", p)
	}
}

// TestShortcutStray: an nsrun killed between attaching its two programs
// leaves the getpeername one alone. Removing a project's shortcuts takes
// it away, and so does adding the first shortcut, which attaches a fresh
// pair.
func TestShortcutStray(t *testing.T) {
	nstest.RequireRoot(t)
	project := strings.ToLower(nstest.Name("sc"))
	t.Cleanup(func() { Sweep() })
	cg, err := openCgroup()
	if err != nil {
		t.Fatal(err)
	}
	defer cg.Close()
	stray := func() {
		t.Helper()
		peers, err := newPeersMap()
		if err != nil {
			t.Fatal(err)
		}
		defer peers.Close()
		if err := attachProgram(cg, progGetpeername, ebpf.AttachCgroupInet4GetPeername, getpeernameProgram(peers, false)); err != nil {
			t.Fatal(err)
		}
	}
	programs := func() []string {
		t.Helper()
		var out []string
		for _, h := range hooks {
			progs, err := attached(cg, h.attach, h.name)
			if err != nil {
				t.Fatal(err)
			}
			closeAll(progs)
			for range progs {
				out = append(out, h.name)
			}
		}
		return out
	}
	stray()
	if err := Set(project, nil); err != nil {
		t.Fatal(err)
	}
	if p := programs(); len(p) != 0 {
		t.Errorf("after removing shortcuts: %v attached; want none", p)
	}
	stray()
	if err := Set(project, []Entry{{netip.MustParseAddrPort("0.0.0.0:1"), netip.MustParseAddrPort("127.0.0.1:1")}}); err != nil {
		t.Fatal(err)
	}
	if p := programs(); !slices.Equal(p, []string{progConnect, progConnect6, progGetpeername, progGetpeername6}) {
		t.Errorf("after the first shortcut: %v attached; want one of each", p)
	}
	if err := Set(project, nil); err != nil {
		t.Fatal(err)
	}
	if p := programs(); len(p) != 0 {
		t.Errorf("after removing the last shortcut: %v attached; want none", p)
	}
}

func TestShortcutDrift(t *testing.T) {
	a := Entry{Host: netip.MustParseAddrPort("0.0.0.0:6000"), Target: netip.MustParseAddrPort("10.203.1.2:8080")}
	b := Entry{Host: netip.MustParseAddrPort("127.0.0.1:6001"), Target: netip.MustParseAddrPort("10.203.2.2:8080")}
	c := Entry{Host: netip.MustParseAddrPort("0.0.0.0:7000"), Target: netip.MustParseAddrPort("10.203.3.2:80")}
	table := Table{Supported: true, Entries: map[Entry]uint64{a: owner("blog"), b: owner("blog"), c: owner("other")}}
	if d := Drift(table, "blog", []Entry{a, b}); len(d) != 0 {
		t.Errorf("drift of a table as wanted: %q", d)
	}
	if d := Drift(table, "blog", []Entry{a}); len(d) != 1 || !strings.Contains(d[0], "127.0.0.1:6001 -> 10.203.2.2:8080 is no longer the project's") {
		t.Errorf("a stale entry: %q", d)
	}
	empty := Table{Supported: true, Entries: map[Entry]uint64{}}
	if d := Drift(empty, "blog", []Entry{a, b}); len(d) != 1 || !strings.Contains(d[0], "is missing, and 1 more") {
		t.Errorf("missing entries: %q", d)
	}
	if d := Drift(Table{}, "blog", []Entry{a}); d != nil {
		t.Errorf("drift where the kernel has no shortcut: %q", d)
	}
	// Entries read back from the map's encoding are what was put there.
	k, v := entry(b, 1)
	if got := (Entry{Host: fromSockAddr(k.Addr, k.Port), Target: fromSockAddr(v.Addr, v.Port)}); got != b {
		t.Errorf("entry read back as %v; want %v", got, b)
	}
	b6 := Entry{Host: netip.MustParseAddrPort("[::]:6001"), Target: netip.MustParseAddrPort("[fd00:1:2:3::2]:8080")}
	k6, v6 := entry6(b6, 1)
	if got := (Entry{Host: fromSockAddr6(k6.Addr, k6.Port), Target: fromSockAddr6(v6.Addr, v6.Port)}); got != b6 {
		t.Errorf("IPv6 entry read back as %v; want %v", got, b6)
	}
}

// memMap is the port maps in memory, as the kernel's behave for
// reconcile: one entry per host address and port.
type memMap map[netip.AddrPort]memEntry

type memEntry struct {
	target netip.AddrPort
	owner  uint64
}

func (m memMap) put(e Entry, own uint64) error    { m[e.Host] = memEntry{e.Target, own}; return nil }
func (m memMap) delete(host netip.AddrPort) error { delete(m, host); return nil }
func (m memMap) each(fn func(Entry, uint64)) error {
	for h, e := range m {
		fn(Entry{Host: h, Target: e.target}, e.owner)
	}
	return nil
}

// TestReconcile: a project's entries become exactly what it wants, other
// projects' stay, and the count left says when the programs can go.
func TestReconcile(t *testing.T) {
	a := Entry{Host: netip.MustParseAddrPort("0.0.0.0:6000"), Target: netip.MustParseAddrPort("10.203.1.2:8080")}
	b := Entry{Host: netip.MustParseAddrPort("127.0.0.1:6001"), Target: netip.MustParseAddrPort("10.203.2.2:8080")}
	c := Entry{Host: netip.MustParseAddrPort("0.0.0.0:7000"), Target: netip.MustParseAddrPort("10.203.3.2:80")}
	a6 := Entry{Host: netip.MustParseAddrPort("[::]:6000"), Target: netip.MustParseAddrPort("[fd00:1::2]:8080")}
	m := memMap{}
	if left, err := reconcile(m, "blog", []Entry{a, b, a6}); err != nil || left != 3 {
		t.Fatalf("first reconcile: %d left, %v", left, err)
	}
	if left, err := reconcile(m, "other", []Entry{c}); err != nil || left != 4 {
		t.Fatalf("another project: %d left, %v", left, err)
	}
	if left, err := reconcile(m, "blog", []Entry{a}); err != nil || left != 2 {
		t.Fatalf("two entries fewer: %d left, %v", left, err)
	}
	table := Table{Supported: true, Entries: map[Entry]uint64{}}
	m.each(func(e Entry, own uint64) { table.Entries[e] = own })
	if d := Drift(table, "blog", []Entry{a}); len(d) != 0 {
		t.Errorf("blog's drift after reconcile: %q", d)
	}
	if d := Drift(table, "other", []Entry{c}); len(d) != 0 {
		t.Errorf("other's drift after blog's reconcile: %q", d)
	}
	if left, err := reconcile(m, "blog", nil); err != nil || left != 1 {
		t.Fatalf("blog removed: %d left, %v", left, err)
	}
	if left, err := reconcile(m, "other", nil); err != nil || left != 0 {
		t.Fatalf("the last removed: %d left, %v", left, err)
	}
}

// TestShortcutUpgrade: programs attached by an nsrun from before [::1]
// was served and connections were counted (a connect4 program and its
// port map, no IPv6 port map, no counters) are replaced by today's when a
// project needs [::1], and their entries are kept.
func TestShortcutUpgrade(t *testing.T) {
	nstest.RequireRoot(t)
	old, project := strings.ToLower(nstest.Name("so")), strings.ToLower(nstest.Name("sn"))
	t.Cleanup(func() { Set(old, nil); Set(project, nil); Sweep() })
	if shortcutAttached(t) {
		t.Fatal("nsrun's programs are on the root cgroup before the test; remove them with 'nsrun down --all'")
	}
	cg, err := openCgroup()
	if err != nil {
		t.Fatal(err)
	}
	defer cg.Close()
	ports, err := ebpf.NewMap(&ebpf.MapSpec{
		Name: mapPorts, Type: ebpf.Hash, MaxEntries: 16, Flags: unix.BPF_F_NO_PREALLOC,
		KeySize: uint32(binary.Size(shortcutKey{})), ValueSize: uint32(binary.Size(shortcutValue{})),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ports.Close()
	peers, err := newPeersMap()
	if err != nil {
		t.Fatal(err)
	}
	defer peers.Close()
	cookie, err := nsexec.CurrentCookie()
	if err != nil {
		t.Fatal(err)
	}
	if err := attachProgram(cg, progConnect, ebpf.AttachCGroupInet4Connect, connect4(ports, nil, peers, cookie)); err != nil {
		t.Fatal(err)
	}
	v4 := Entry{Host: netip.MustParseAddrPort("0.0.0.0:16990"), Target: netip.MustParseAddrPort("10.9.1.2:8080")}
	if err := (kernelMap{v4: ports}).put(v4, owner(old)); err != nil {
		t.Fatal(err)
	}
	v6 := Entry{Host: netip.MustParseAddrPort("[::]:16991"), Target: netip.MustParseAddrPort("[fd00:9::2]:8080")}
	if err := Set(project, []Entry{v6}); err != nil {
		t.Fatalf("Set with an IPv6 entry over the old programs: %v", err)
	}
	table, err := Read()
	if err != nil {
		t.Fatal(err)
	}
	if table.Entries[v4] != owner(old) || table.Entries[v6] != owner(project) || len(table.Entries) != 2 {
		t.Errorf("entries after the upgrade: %v; want the old project's IPv4 one and the new IPv6 one", table.Entries)
	}
	if s, err := openShortcut(false, false); err != nil || s == nil || s.ports6 == nil || s.conns == nil || s.conns6 == nil {
		t.Errorf("after the upgrade: %+v, %v; want today's programs, with the IPv6 port map and the connection counters", s, err)
	} else {
		s.Close()
	}
}

// testPortMaps makes port maps of the test's own, closed when it ends.
func testPortMaps(t *testing.T) kernelMap {
	t.Helper()
	nstest.RequireRoot(t)
	m, err := newPortMaps()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.close)
	return m
}

// TestEachReadsEveryEntry: the port maps read in batches give back every
// entry put in them, of both families, across many batches.
func TestEachReadsEveryEntry(t *testing.T) {
	m := testPortMaps(t)
	want := map[Entry]uint64{}
	for i := range 3*batchSize + 7 {
		e := Entry{Host: netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(20000+i)), Target: netip.MustParseAddrPort(fmt.Sprintf("10.%d.%d.2:8080", i/250, i%250))}
		e6 := Entry{Host: netip.AddrPortFrom(netip.IPv6Unspecified(), uint16(20000+i)), Target: netip.MustParseAddrPort(fmt.Sprintf("[fd00::%x]:8080", i))}
		for _, e := range []Entry{e, e6} {
			want[e] = uint64(i + 1)
			if err := m.put(e, uint64(i+1)); err != nil {
				t.Fatal(err)
			}
		}
	}
	got := map[Entry]uint64{}
	if err := m.each(func(e Entry, own uint64) { got[e] = own }); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("read %d entries, put %d", len(got), len(want))
	}
	for e, own := range want {
		if got[e] != own {
			t.Errorf("entry %v: owner %d, want %d", e, got[e], own)
		}
	}
}

// TestTableKeepsTheProjectsAsked reads the entries and counters of the
// projects asked about, and every project's when none is.
func TestTableKeepsTheProjectsAsked(t *testing.T) {
	m := testPortMaps(t)
	of := map[string][]Entry{}
	for i, p := range []string{"a", "b", "c", "a", "b", "a"} {
		e := Entry{Host: netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(20000+i)), Target: netip.MustParseAddrPort(fmt.Sprintf("10.0.%d.2:8080", i))}
		if i%2 == 1 {
			e = Entry{Host: netip.AddrPortFrom(netip.IPv6Loopback(), uint16(20000+i)), Target: netip.MustParseAddrPort(fmt.Sprintf("[fd00::%d]:8080", i))}
		}
		of[p] = append(of[p], e)
		if err := m.put(e, owner(p)); err != nil {
			t.Fatal(err)
		}
	}
	for _, asked := range [][]string{{"a"}, {"b", "c"}, {"d"}, nil} {
		table, err := m.table(asked)
		if err != nil {
			t.Fatal(err)
		}
		want := map[Entry]uint64{}
		for _, p := range []string{"a", "b", "c"} {
			if asked == nil || slices.Contains(asked, p) {
				for _, e := range of[p] {
					want[e] = owner(p)
				}
			}
		}
		if !maps.Equal(table.Entries, want) {
			t.Errorf("asked about %q: entries %v; want %v", asked, table.Entries, want)
		}
		if len(table.Conns) != len(want) {
			t.Errorf("asked about %q: counters of %v; want those of the %d entries %v", asked, table.Conns, len(want), want)
		}
		for e := range want {
			if n, ok := table.Conns[e.Host]; !ok || n != 0 {
				t.Errorf("asked about %q: the counter of %s is %d, %t; want 0, there", asked, e.Host, n, ok)
			}
		}
		if d := Drift(Table{Supported: true, Entries: table.Entries}, "a", of["a"]); (asked == nil || slices.Contains(asked, "a")) && len(d) > 0 {
			t.Errorf("asked about %q: project a drifts from its own entries: %q", asked, d)
		}
	}
}
