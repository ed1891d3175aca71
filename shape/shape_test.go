package shape

import (
	"encoding/binary"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nsrun/nsrun/internal/rtnl"
	"github.com/nsrun/nsrun/specs"
)

// TestWant: a limit is a tbf at the root of its end, its bucket what the
// rate carries in 10 ms (at least two frames), its queue 50 ms more;
// netem is the namespace side's root with the egress limit under it.
func TestWant(t *testing.T) {
	l := Want(specs.Bandwidth{Ingress: 20e6, Egress: 8e3}, nil)
	if len(l.Host) != 1 || len(l.Peer) != 1 {
		t.Fatalf("%+v; want one qdisc each end", l)
	}
	in, out := l.Host[0], l.Peer[0]
	if in.Kind != TBF || in.Handle != RootHandle || in.Parent != rootParent || in.Rate != 2.5e6 || in.Burst() != 25000 || in.Limit != 25000+125000 {
		t.Errorf("ingress 20mbit: %+v (burst %d); want tbf at the root, 2.5e6 bytes/s, burst 25000, limit 150000", in, in.Burst())
	}
	if in.Buffer != uint32(10*time.Millisecond>>tickShift) {
		t.Errorf("ingress bucket: %d ticks; want 10 ms", in.Buffer)
	}
	// 8kbit: 10 ms is 10 bytes; the bucket holds two full frames.
	if out.Rate != 1000 || out.Burst() < MinBurst-1 || out.Burst() > MinBurst {
		t.Errorf("egress 8kbit: %+v (burst %d); want 1000 bytes/s, a bucket of %d", out, out.Burst(), MinBurst)
	}
	if got := in.String(); got != "tbf rate 20mbit burst 25000b limit 150000b" {
		t.Errorf("String: %q", got)
	}
	n := Want(specs.Bandwidth{Egress: 10e6}, &specs.Netem{Delay: 20 * time.Millisecond, Jitter: 5 * time.Millisecond, Loss: 1})
	if len(n.Host) != 0 || len(n.Peer) != 2 {
		t.Fatalf("%+v; want nothing on the host side, two qdiscs on the namespace side", n)
	}
	if root, child := n.Peer[0], n.Peer[1]; root.Kind != Netem || root.Handle != RootHandle || child.Kind != TBF || child.Handle != ChildHandle || child.Parent != ChildParent {
		t.Errorf("namespace side: %+v; want netem at the root, tbf under its class", n.Peer)
	}
	if got := n.Peer[0].String(); got != "netem delay 20ms 5ms loss 1% limit 1000" {
		t.Errorf("String: %q", got)
	}
	if got := Want(specs.Bandwidth{}, nil); !got.IsZero() {
		t.Errorf("no shaping: %+v", got)
	}
	if got := n.Kinds(); !slices.Equal(got, []string{Netem, TBF}) {
		t.Errorf("Kinds: %q", got)
	}
}

// TestDrift: an end as wanted is no drift; nsrun's qdisc missing, other
// settings, or one left where none is wanted each are, in one line.
func TestDrift(t *testing.T) {
	want := Want(specs.Bandwidth{Ingress: 20e6, Egress: 10e6}, nil)
	noqueue := Side{{Kind: "noqueue"}}
	if d := Drift("ns1", "nsr-ns1", want, want); len(d) != 0 {
		t.Errorf("as wanted: %q", d)
	}
	if d := Drift("ns1", "nsr-ns1", Link{}, Link{Host: noqueue, Peer: noqueue}); len(d) != 0 {
		t.Errorf("unshaped, as wanted: %q", d)
	}
	d := Drift("ns1", "nsr-ns1", want, Link{Host: noqueue, Peer: want.Peer})
	if len(d) != 1 || d[0] != "the shaping of what goes into namespace ns1 is missing: nsr-ns1 has a noqueue qdisc, not tbf rate 20mbit burst 25000b limit 150000b" {
		t.Errorf("host side gone: %q", d)
	}
	slower := Want(specs.Bandwidth{Ingress: 20e6, Egress: 5e6}, nil)
	d = Drift("ns1", "nsr-ns1", want, slower)
	if len(d) != 1 || !strings.HasPrefix(d[0], "the shaping of what goes out of namespace ns1 is tbf rate 5mbit") {
		t.Errorf("other rate: %q", d)
	}
	d = Drift("ns1", "nsr-ns1", Link{}, Link{Host: want.Host, Peer: noqueue})
	if len(d) != 1 || !strings.HasPrefix(d[0], "the link nsr-ns1 has nsrun's qdisc tbf") {
		t.Errorf("left behind: %q", d)
	}
	// A bucket tc made from the same burst (rounded through microseconds) is the same.
	tc := want.Host[0]
	tc.Buffer -= 3
	if !Same(want.Host[0], tc) {
		t.Errorf("a bucket 3 ticks off is another: %+v, %+v", want.Host[0], tc)
	}
	tc.Buffer -= 1000
	if Same(want.Host[0], tc) {
		t.Errorf("a bucket 1003 ticks off is the same: %+v, %+v", want.Host[0], tc)
	}
}

// TestParse reads a tbf and a netem as the kernel sends them.
func TestParse(t *testing.T) {
	parms := make([]byte, 36)
	binary.NativeEndian.PutUint32(parms[8:], 2500000)
	binary.NativeEndian.PutUint32(parms[24:], 150000)
	binary.NativeEndian.PutUint32(parms[28:], 156250)
	opts := attr(tcaTBFParms, parms)
	q, err := Parse(rtnl.Qdisc{Kind: TBF, Handle: RootHandle, Parent: rootParent, Options: opts})
	if want := Want(specs.Bandwidth{Ingress: 20e6}, nil).Host[0]; err != nil || q != want {
		t.Errorf("tbf: %+v, %v; want %+v", q, err, want)
	}
	// A rate of 2^32 bytes/s and more comes in TCA_TBF_RATE64.
	binary.NativeEndian.PutUint32(parms[8:], 0xffffffff)
	q, err = Parse(rtnl.Qdisc{Kind: TBF, Options: append(attr(tcaTBFParms, parms), attr(tcaTBFRate64, binary.NativeEndian.AppendUint64(nil, 5e9))...)})
	if err != nil || q.Rate != 5e9 {
		t.Errorf("tbf at 40gbit: %+v, %v", q, err)
	}
	n := Want(specs.Bandwidth{}, &specs.Netem{Delay: 20 * time.Millisecond, Loss: 1}).Peer[0]
	qopt := make([]byte, 24)
	binary.NativeEndian.PutUint32(qopt[0:], n.Latency)
	binary.NativeEndian.PutUint32(qopt[4:], n.Limit)
	binary.NativeEndian.PutUint32(qopt[8:], n.Loss)
	q, err = Parse(rtnl.Qdisc{Kind: Netem, Handle: RootHandle, Parent: rootParent, Options: qopt})
	if err != nil || !Same(n, q) {
		t.Errorf("netem: %+v, %v; want %+v", q, err, n)
	}
}

func attr(typ uint16, v []byte) []byte {
	b := binary.NativeEndian.AppendUint16(nil, uint16(4+len(v)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, v...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func TestCommands(t *testing.T) {
	l := Want(specs.Bandwidth{Ingress: 20e6, Egress: 10e6}, &specs.Netem{Delay: 20 * time.Millisecond})
	got := Commands("ns1", "nsr-ns1", "eth0", l)
	want := []string{
		"tc qdisc replace dev nsr-ns1 root handle 6e73: tbf rate 20mbit burst 25000b limit 150000b",
		"ip netns exec ns1 tc qdisc replace dev eth0 root handle 6e73: netem delay 20ms limit 1000",
		"ip netns exec ns1 tc qdisc replace dev eth0 parent 6e73:1 handle 6e74: tbf rate 10mbit burst 12500b limit 75000b",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Commands:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
