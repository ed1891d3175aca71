package project

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nsrun/nsrun/host"
	"github.com/nsrun/nsrun/internal/rtnl"
	"github.com/nsrun/nsrun/netns"
	"github.com/nsrun/nsrun/netns/nstest"
	"github.com/nsrun/nsrun/shape"
	"github.com/nsrun/nsrun/specs"
	"github.com/vishvananda/netlink"
)

// iperf runs iperf3 from the lab's outside namespace to a published port
// (reverse: the server sends) and returns what the receiver measured, in
// bits per second, the first second (TCP's slow start) left out. A test
// the server refuses while it still closes the last one is run again.
func iperf(t *testing.T, l *lab, port int, reverse bool) float64 {
	t.Helper()
	args := []string{"netns", "exec", l.outside, "iperf3", "-c", l.outHost.String(), "-p", fmt.Sprint(port), "-t", "4", "-O", "1", "-J"}
	if reverse {
		args = append(args, "-R")
	}
	for try := 1; ; try++ {
		out, err := exec.Command("ip", args...).Output()
		var r struct {
			End struct {
				SumReceived struct {
					BitsPerSecond float64 `json:"bits_per_second"`
				} `json:"sum_received"`
			} `json:"end"`
			Error string `json:"error"`
		}
		jerr := json.Unmarshal(out, &r)
		if err == nil && jerr == nil && r.Error == "" {
			t.Logf("iperf3 to port %d (reverse: %t): %.2f Mbit/s", port, reverse, r.End.SumReceived.BitsPerSecond/1e6)
			return r.End.SumReceived.BitsPerSecond
		}
		if try == 5 {
			t.Fatalf("iperf3 %v, %d tries: %v, %v, %q\n%s", args, try, err, jerr, r.Error, out)
		}
		t.Logf("iperf3 %v: %v, %v, %q; again in a second", args, err, jerr, r.Error)
		time.Sleep(time.Second)
	}
}

// within reports whether a rate is within 10% of want.
func within(rate, want float64) bool { return rate >= 0.9*want && rate <= 1.1*want }

// TestBandwidth: iperf3 from another machine through published ports, on
// the real kernel with the real keeper: a namespace with ingress 20mbit
// receives at 20 Mbit/s and one with egress 10mbit sends at 10 Mbit/s
// (+-10%), while an unshaped neighbour is not held to either; a new rate
// in the spec is set by up in place (no process restarted, the link not
// made again) and holds; tc qdisc del on the host side and on the
// namespace side is put back by the keeper.
func TestBandwidth(t *testing.T) {
	l := newLab(t)
	l.e.NoHeal = false
	ports := freePorts(t, 2)
	src := func(ingress string) string {
		return fmt.Sprintf(`name: t{ID}
namespaces:
  a{ID}:
    bandwidth: {ingress: %s, egress: 10mbit}
    ports: ["%d:5201"]
    run: [{name: iperf, command: [iperf3, -s, -p, "5201"], ready: {tcp: 5201}}]
  b{ID}:
    ports: ["%d:5201"]
    run: [{name: iperf, command: [iperf3, -s, -p, "5201"], ready: {tcp: 5201}}]
`, ingress, ports[0], ports[1])
	}
	st := l.up(src("20mbit"))
	a := l.ns("a")
	link := st.Namespace(a).Link
	if in := iperf(t, l, ports[0], false); !within(in, 20e6) {
		t.Errorf("into %s (ingress 20mbit): %.2f Mbit/s; want 20 +-10%%", a, in/1e6)
	}
	if out := iperf(t, l, ports[0], true); !within(out, 10e6) {
		t.Errorf("out of %s (egress 10mbit): %.2f Mbit/s; want 10 +-10%%", a, out/1e6)
	}
	// Unshaped, the same path carries far more (a veth does gigabits).
	if in := iperf(t, l, ports[1], false); in < 100e6 {
		t.Errorf("into the unshaped neighbour: %.2f Mbit/s; want it unshaped (above 100)", in/1e6)
	}

	// A new rate: one step, in place.
	pid := l.running(a + "/iperf").PID
	before, err := netlink.LinkByName(link)
	if err != nil {
		t.Fatal(err)
	}
	var progress []string
	l.e.Progress = func(s Step) { progress = append(progress, s.String()) }
	l.up(src("40mbit"))
	l.e.Progress = nil
	if !slices.Equal(progress, []string{"shaping of " + a + ": ingress 40mbit, egress 10mbit"}) {
		t.Errorf("a new rate made %q; want the shaping step alone", progress)
	}
	after, err := netlink.LinkByName(link)
	if err != nil || after.Attrs().Index != before.Attrs().Index {
		t.Errorf("the link after the new rate: %v, %v; want the same link (index %d)", after, err, before.Attrs().Index)
	}
	if p := l.running(a + "/iperf"); p.PID != pid {
		t.Errorf("a new rate restarted iperf: pid %d, then %d", pid, p.PID)
	}
	if in := iperf(t, l, ports[0], false); !within(in, 40e6) {
		t.Errorf("into %s (ingress 40mbit): %.2f Mbit/s; want 40 +-10%%", a, in/1e6)
	}

	// Deleted by hand on either end: the keeper puts it back (it looks
	// at the qdiscs every 5 s: tc sends it no event).
	want := shape.Want(specs.Bandwidth{Ingress: 40e6, Egress: 10e6}, nil)
	shapedNow := func() bool {
		read, err := shape.Read([]shape.Where{{Namespace: a, Link: link}}, host.PeerName, make([]byte, rtnl.BufferSize))
		have, ok := read[a]
		return err == nil && ok && have.Host.Matches(want.Host) && have.Peer.Matches(want.Peer)
	}
	if !shapedNow() {
		t.Fatal("the shaping is not as wanted after up")
	}
	for _, end := range [][]string{{"tc", "qdisc", "del", "dev", link, "root"}, {"ip", "netns", "exec", a, "tc", "qdisc", "del", "dev", "eth0", "root"}} {
		repairs := l.e.Store.Repairs(st.Project).Repairs
		run(t, end...)
		for deadline := time.Now().Add(60 * time.Second); !shapedNow() || l.e.Store.Repairs(st.Project).Repairs <= repairs; time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the keeper did not put back what %q removed within 60 s", end)
			}
		}
	}
	if in := iperf(t, l, ports[0], false); !within(in, 40e6) {
		t.Errorf("into %s after the repairs: %.2f Mbit/s; want 40 +-10%%", a, in/1e6)
	}
}

// TestNetem: where the kernel has sch_netem, delay on what leaves a
// namespace shows in the TCP connect time to its published port (the
// SYN-ACK waits; median of 21 within 3 ms) and loss in a count of 2,000
// UDP datagrams it sends (within 1 percentage point). Where the kernel
// lacks it (this project's CI machine), up refuses the key before any
// change, naming the module. Runnable on any kernel.
func TestNetem(t *testing.T) {
	l := newLab(t)
	ports := freePorts(t, 1)
	src := fmt.Sprintf("name: t{ID}\nnamespaces:\n  a{ID}:\n    netem: {delay: 20ms, loss: 1%%}\n    ports: [\"%d:8080\"]\n", ports[0])
	kinds, err := shape.Supported([]string{shape.Netem})
	if err != nil {
		t.Fatal(err)
	}
	if kinds[shape.Netem] != nil {
		_, err := l.tryUp(src)
		var pre *PreflightError
		if !errors.As(err, &pre) || !strings.Contains(err.Error(), "has netem, which needs the kernel's netem qdisc") || !strings.Contains(err.Error(), "modprobe sch_netem") {
			t.Errorf("up with netem on a kernel without: %v; want a refusal naming sch_netem", err)
		}
		if _, err := netns.Handle(l.ns("a")); err == nil {
			t.Errorf("the refused up made namespace %s", l.ns("a"))
		}
		t.Logf("this kernel has no netem (%v): the refusal checked, the emulation not measured", kinds[shape.Netem])
		return
	}
	l.up(src)
	a := l.ns("a")
	nstest.StartServer(t, a, a, "8080", "")
	var took []time.Duration
	for range 21 {
		err := netns.Do(l.outside, func() error {
			start := time.Now()
			c, err := net.DialTimeout("tcp", addr(l.outHost, ports[0]), 10*time.Second)
			if err != nil {
				return err
			}
			took = append(took, time.Since(start))
			return c.Close()
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	if median := took[len(took)/2]; median < 17*time.Millisecond || median > 23*time.Millisecond {
		t.Errorf("TCP connect to %s's published port through delay 20ms: median %v of %v; want 20 ms +-3", a, median, took)
	}
	// 2,000 datagrams from the namespace to a server outside, paced.
	var server net.PacketConn
	if err := netns.Do(l.outside, func() (err error) {
		server, err = net.ListenPacket("udp", addr(l.outPeer, 0))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	var client net.Conn
	if err := netns.Do(a, func() (err error) {
		client, err = net.Dial("udp", server.LocalAddr().String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	got := make(chan int)
	go func() {
		n, buf := 0, make([]byte, 64)
		for {
			server.SetReadDeadline(time.Now().Add(2 * time.Second))
			if _, _, err := server.ReadFrom(buf); err != nil {
				got <- n
				return
			}
			n++
		}
	}()
	for i := range 2000 {
		client.Write([]byte(fmt.Sprint(i)))
		if i%50 == 49 {
			time.Sleep(5 * time.Millisecond)
		}
	}
	if n := <-got; n < 1960 || n > 2000 {
		t.Errorf("%d of 2,000 datagrams through loss 1%% arrived; want 1%% +-1 lost (1,960 to 2,000)", n)
	}
}
