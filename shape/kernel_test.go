package shape

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nsrun/nsrun/internal/rtnl"
	"github.com/nsrun/nsrun/netns"
	"github.com/nsrun/nsrun/netns/nstest"
	"github.com/nsrun/nsrun/specs"
	"github.com/nsrun/nsrun/veth"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { nstest.Main(m) }

// newPair makes a namespace joined to the host by a veth pair; cleanup
// removes both.
func newPair(t *testing.T, third byte) veth.Pair {
	t.Helper()
	nstest.RequireRoot(t)
	nstest.DumpOnFailure(t)
	name := nstest.Name("sh-")
	if err := netns.Create(name); err != nil {
		t.Fatal(err)
	}
	p := veth.Pair{Host: "h" + name, Namespace: name, Peer: "eth0",
		HostAddr: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 231, third, 1}), 30), PeerAddr: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 231, third, 2}), 30)}
	t.Cleanup(func() {
		if err := veth.Delete(p.Host); err != nil {
			t.Error(err)
		}
		if err := netns.Delete(name); err != nil {
			t.Error(err)
		}
	})
	if err := veth.Ensure(p); err != nil {
		t.Fatal(err)
	}
	return p
}

func tc(t *testing.T, ns string, args ...string) string {
	t.Helper()
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	out, err := exec.Command("tc", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("tc %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func read(t *testing.T, p veth.Pair) Link {
	t.Helper()
	read, err := Read([]Where{{p.Namespace, p.Host}}, p.Peer, make([]byte, rtnl.BufferSize))
	l, found := read[p.Namespace]
	if err != nil || !found {
		t.Fatalf("Read: %+v, %v", read, err)
	}
	return l
}

func matches(have, want Link) bool {
	return have.Host.Matches(want.Host) && have.Peer.Matches(want.Peer)
}

// TestEnsureOnTheKernel: Ensure puts tbf on both ends, as tc shows them
// and Read reads them; a new rate is set in place (the same link, the
// same qdisc, its counters kept); qdiscs deleted by tc are put back;
// what nsrun's plan prints, run by hand, reads as the same; Remove puts
// the links' defaults back.
func TestEnsureOnTheKernel(t *testing.T) {
	p := newPair(t, 11)
	want := Want(specs.Bandwidth{Ingress: 20e6, Egress: 10e6}, nil)
	if err := Ensure(p.Namespace, p.Host, p.Peer, want); err != nil {
		t.Fatal(err)
	}
	host, peer := tc(t, "", "qdisc", "show", "dev", p.Host), tc(t, p.Namespace, "qdisc", "show", "dev", p.Peer)
	if !strings.Contains(host, "qdisc tbf 6e73: root") || !strings.Contains(host, "rate 20Mbit burst 25000b") {
		t.Errorf("host side, as tc shows it:\n%s", host)
	}
	if !strings.Contains(peer, "qdisc tbf 6e73: root") || !strings.Contains(peer, "rate 10Mbit burst 12500b") {
		t.Errorf("namespace side, as tc shows it:\n%s", peer)
	}
	if got := read(t, p); !matches(got, want) {
		t.Errorf("Read: %+v; want %+v", got, want)
	}
	// Traffic through the host side, then a new rate: the same link and
	// qdisc, whose counters keep what it sent.
	conn, err := net.Dial("udp", netip.AddrPortFrom(p.PeerAddr.Addr(), 9).String())
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		conn.Write([]byte("through the host side"))
	}
	conn.Close()
	before, _ := netlink.LinkByName(p.Host)
	faster := Want(specs.Bandwidth{Ingress: 40e6, Egress: 10e6}, nil)
	if err := Ensure(p.Namespace, p.Host, p.Peer, faster); err != nil {
		t.Fatal(err)
	}
	after, _ := netlink.LinkByName(p.Host)
	if before.Attrs().Index != after.Attrs().Index {
		t.Errorf("a new rate made the link again: index %d, then %d", before.Attrs().Index, after.Attrs().Index)
	}
	if got := read(t, p); !matches(got, faster) {
		t.Errorf("Read after the change: %+v; want %+v", got, faster)
	}
	if s := tc(t, "", "-s", "qdisc", "show", "dev", p.Host); !strings.Contains(s, "rate 40Mbit") || strings.Contains(s, "Sent 0 bytes") {
		t.Errorf("the host side after the change (want 40Mbit, its counters kept):\n%s", s)
	}
	// Deleted by hand, each end: drift, then put back.
	tc(t, "", "qdisc", "del", "dev", p.Host, "root")
	tc(t, p.Namespace, "qdisc", "del", "dev", p.Peer, "root")
	if d := Drift(p.Namespace, p.Host, faster, read(t, p)); len(d) != 2 {
		t.Errorf("drift after tc qdisc del on both ends: %q; want two lines", d)
	}
	if err := Ensure(p.Namespace, p.Host, p.Peer, faster); err != nil {
		t.Fatal(err)
	}
	if got := read(t, p); !matches(got, faster) {
		t.Errorf("Read after the repair: %+v; want %+v", got, faster)
	}
	// Someone else's root qdisc on a shaped end is replaced.
	tc(t, "", "qdisc", "replace", "dev", p.Host, "root", "handle", "1:", "tbf", "rate", "1mbit", "burst", "10kb", "latency", "10ms")
	if err := Ensure(p.Namespace, p.Host, p.Peer, faster); err != nil {
		t.Fatal(err)
	}
	if got := read(t, p); !matches(got, faster) {
		t.Errorf("Read after another's qdisc was replaced: %+v; want %+v", got, faster)
	}
	if err := Remove(p.Namespace, p.Host, p.Peer); err != nil {
		t.Fatal(err)
	}
	if got := read(t, p); got.Host.Ours() || got.Peer.Ours() || !matches(got, Link{}) {
		t.Errorf("after Remove: %+v; want the defaults", got)
	}

	// The plan's commands, by hand, on another pair: the same shaping.
	q := newPair(t, 12)
	for _, c := range Commands(q.Namespace, q.Host, q.Peer, want) {
		args := strings.Fields(c)
		if args[0] == "ip" {
			args = append([]string{"-n", args[3]}, args[5:]...)
			tc(t, "", args...)
			continue
		}
		tc(t, "", args[1:]...)
	}
	if got := read(t, q); !matches(got, want) {
		t.Errorf("what the plan's tc commands made reads as %+v; want %+v", got, want)
	}
}

// TestSupported: the kernel's qdisc kinds, tried in a namespace of the
// try's own: tbf everywhere nsrun runs; netem where the kernel has it,
// which then shapes a link for real (runnable on any kernel: here it may
// say the kernel lacks it). Nothing is left behind.
func TestSupported(t *testing.T) {
	nstest.RequireRoot(t)
	before, _ := os.ReadDir(netns.RunDir)
	host, _ := os.Readlink("/proc/thread-self/ns/net")
	kinds, err := Supported([]string{TBF, Netem})
	if err != nil {
		t.Fatal(err)
	}
	// No thread of the process is left in the try's namespace (one was
	// seen to stay, and the process then read iptables-legacy as having no
	// tables).
	tasks, _ := filepath.Glob("/proc/self/task/*/ns/net")
	for _, task := range tasks {
		if n, err := os.Readlink(task); err == nil && n != host {
			t.Errorf("%s is %s after the try; want the host's %s", task, n, host)
		}
	}
	if kinds[TBF] != nil {
		t.Errorf("tbf: %v; want it supported", kinds[TBF])
	}
	after, _ := os.ReadDir(netns.RunDir)
	if len(after) != len(before) {
		t.Errorf("/run/netns held %d entries before the try, %d after", len(before), len(after))
	}
	if err := kinds[Netem]; err != nil {
		if !errors.Is(err, unix.ENOENT) {
			t.Errorf("netem: %v; want supported, or ENOENT (no such qdisc kind)", err)
		}
		t.Logf("this kernel has no netem (%v): its shaping is not tried", err)
		return
	}
	p := newPair(t, 13)
	want := Want(specs.Bandwidth{Egress: 10e6}, &specs.Netem{Delay: 20 * time.Millisecond, Jitter: 5 * time.Millisecond, Loss: 1})
	if err := Ensure(p.Namespace, p.Host, p.Peer, want); err != nil {
		t.Fatal(err)
	}
	if got := read(t, p); !matches(got, want) {
		t.Errorf("Read: %+v; want %+v", got, want)
	}
	if s := tc(t, p.Namespace, "qdisc", "show", "dev", p.Peer); !strings.Contains(s, "netem 6e73: root") || !strings.Contains(s, "tbf 6e74: parent 6e73:1") {
		t.Errorf("namespace side, as tc shows it:\n%s", s)
	}
}
