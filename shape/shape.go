// Package shape limits the bandwidth of a namespace's link and emulates
// delay and loss on it, with the kernel's queueing disciplines on each end
// of the veth pair: what goes into the namespace is shaped as it leaves
// the host side, what comes out as it leaves the namespace side. Both are
// egress queues, so no IFB device is needed (the CNI bandwidth plugin
// needs one because it owns only the host side).
//
// A bandwidth limit is a token bucket filter (tbf); delay and loss are
// the network emulator (netem) at the root of the namespace side, with
// the egress limit's tbf under it (as tc-netem(8) shows). nsrun's qdiscs
// carry its handles (RootHandle, ChildHandle), so that it removes only
// its own. This file is pure; kernel.go reads and changes qdiscs.
package shape

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/nsrun/nsrun/internal/rtnl"
	"github.com/nsrun/nsrun/specs"
)

// Handles of nsrun's qdiscs: the root of each end ("ns": tc shows 6e73:)
// and, under netem, the egress limit's. ChildParent is netem's one class.
const (
	RootHandle  uint32 = 0x6e73 << 16
	ChildHandle uint32 = 0x6e74 << 16
	ChildParent        = RootHandle | 1
)

// Kinds of qdisc nsrun makes, and the kernel module each needs.
const (
	TBF   = "tbf"
	Netem = "netem"
)

// Module names the kernel module of a qdisc kind.
func Module(kind string) string { return "sch_" + kind }

// The bucket and queue of a bandwidth limit. The bucket holds what the
// rate carries in BurstTime, at least MinBurst: tbf sends no packet larger
// than its bucket, and refills it no more often than the kernel's timer
// fires (every 10 ms at HZ=100, the coarsest), so a smaller bucket could
// not reach the rate. The CNI plugin's default bucket of 2^31 bits
// (kubernetes#90838) let a tenant send hundreds of megabytes at line rate
// before any limit held. The queue holds what the rate carries in
// QueueTime beyond the bucket, as tc's `latency 50ms`: enough for TCP to
// fill the link, short enough not to add much delay.
const (
	BurstTime = 10 * time.Millisecond
	MinBurst  = 2 * 1514 // two full Ethernet frames
	QueueTime = 50 * time.Millisecond
	// NetemLimit is netem's queue in packets: tc's default.
	NetemLimit = 1000
)

// psched ticks are 64 ns (PSCHED_SHIFT): tbf's bucket and netem's delays
// reach the kernel in them.
const tickShift = 6

// Qdisc is one qdisc on one end of a pair, in the kernel's terms.
type Qdisc struct {
	Kind           string
	Handle, Parent uint32
	// tbf: Rate in bytes per second, the bucket as the time the rate
	// takes to fill it (Buffer, in psched ticks), the queue in bytes.
	Rate   uint64
	Buffer uint32
	Limit  uint32 // tbf: bytes; netem: packets
	// netem: delay and jitter in psched ticks, loss as a fraction of 2^32-1.
	Latency, Jitter uint32
	Loss            uint32
}

// Side is the qdiscs nsrun keeps on one end of a pair, the root first;
// empty: none of nsrun's (the link's default).
type Side []Qdisc

// Link is a namespace's shaping: the qdiscs of the host side (into the
// namespace) and of the namespace side (out of it).
type Link struct {
	Host, Peer Side
}

// IsZero reports whether the link has no shaping.
func (l Link) IsZero() bool { return len(l.Host) == 0 && len(l.Peer) == 0 }

// Want is the shaping a namespace's bandwidth and netem make. Pure.
func Want(b specs.Bandwidth, n *specs.Netem) Link {
	var l Link
	if b.Ingress > 0 {
		l.Host = Side{tbf(b.Ingress, RootHandle, rootParent)}
	}
	switch {
	case n != nil:
		l.Peer = Side{{Kind: Netem, Handle: RootHandle, Parent: rootParent, Limit: NetemLimit,
			Latency: ticks(n.Delay), Jitter: ticks(n.Jitter), Loss: lossOf(n.Loss)}}
		if b.Egress > 0 {
			l.Peer = append(l.Peer, tbf(b.Egress, ChildHandle, ChildParent))
		}
	case b.Egress > 0:
		l.Peer = Side{tbf(b.Egress, RootHandle, rootParent)}
	}
	return l
}

// rootParent is TC_H_ROOT.
const rootParent uint32 = 0xffffffff

func tbf(bits uint64, handle, parent uint32) Qdisc {
	rate := bits / 8
	burst := max(rate*uint64(BurstTime)/uint64(time.Second), MinBurst)
	limit := burst + rate*uint64(QueueTime)/uint64(time.Second)
	return Qdisc{Kind: TBF, Handle: handle, Parent: parent, Rate: rate, Limit: uint32(min(limit, math.MaxUint32)),
		Buffer: ticks(time.Duration(burst * uint64(time.Second) / rate))}
}

func ticks(d time.Duration) uint32 { return uint32(min(uint64(d)>>tickShift, math.MaxUint32)) }

func durationOf(t uint32) time.Duration { return time.Duration(uint64(t) << tickShift) }

// lossOf is a percentage as netem takes it: a fraction of 2^32-1.
func lossOf(percent float64) uint32 { return uint32(math.Round(percent / 100 * math.MaxUint32)) }

// Burst is the bucket of a tbf in bytes: what its rate carries in its buffer.
func (q Qdisc) Burst() uint64 {
	return q.Rate * uint64(durationOf(q.Buffer)) / uint64(time.Second)
}

// String describes a qdisc as tc's arguments would: tbf rate 20mbit burst
// 25000b limit 150000b; netem delay 20ms 5ms loss 1%.
func (q Qdisc) String() string {
	switch q.Kind {
	case TBF:
		return fmt.Sprintf("tbf rate %s burst %db limit %db", specs.FormatRate(q.Rate*8), q.Burst(), q.Limit)
	case Netem:
		s := "netem"
		if q.Latency > 0 {
			s += " delay " + durationOf(q.Latency).String()
			if q.Jitter > 0 {
				s += " " + durationOf(q.Jitter).String()
			}
		}
		if q.Loss > 0 {
			s += " loss " + strconv.FormatFloat(math.Round(float64(q.Loss)/math.MaxUint32*100*1e4)/1e4, 'f', -1, 64) + "%"
		}
		return s + " limit " + strconv.Itoa(int(q.Limit))
	}
	return q.Kind
}

// Same reports whether a qdisc read from the kernel is the one wanted: its
// kind, place and settings. A tbf bucket set by tc (which rounds it
// through microseconds) may differ from nsrun's by a tick.
func Same(want, have Qdisc) bool {
	if want.Kind != have.Kind || want.Handle != have.Handle || want.Parent != have.Parent || want.Limit != have.Limit {
		return false
	}
	if want.Kind == TBF {
		return want.Rate == have.Rate && absDiff(want.Buffer, have.Buffer) <= max(want.Buffer/1000, 16)
	}
	// tc rounds the loss its own way: within a few parts in 2^32.
	return want.Latency == have.Latency && want.Jitter == have.Jitter && absDiff(want.Loss, have.Loss) <= 2
}

func absDiff(a, b uint32) uint32 {
	if a > b {
		return a - b
	}
	return b - a
}

// Ours reports whether a side has nsrun's root qdisc.
func (s Side) Ours() bool { return len(s) > 0 && s[0].Handle == RootHandle }

// Matches reports whether a side read from the kernel is as wanted: the
// same qdiscs, or for no shaping, none of nsrun's.
func (s Side) Matches(want Side) bool {
	if len(want) == 0 {
		return !s.Ours()
	}
	if len(s) != len(want) {
		return false
	}
	for i := range want {
		if !Same(want[i], s[i]) {
			return false
		}
	}
	return true
}

// Drift says how the shaping of a namespace's link differs from want, one
// line per end, given what each end has (have: nil when it could not be
// read, see Observed). Pure.
func Drift(ns, hostLink string, want Link, have Link) []string {
	var out []string
	for _, e := range []struct {
		way, link  string
		want, have Side
	}{{"into", hostLink, want.Host, have.Host}, {"out of", "eth0 in " + ns, want.Peer, have.Peer}} {
		if e.have.Matches(e.want) {
			continue
		}
		switch {
		case len(e.want) == 0:
			out = append(out, fmt.Sprintf("the link %s has nsrun's qdisc %s, which the record does not", e.link, e.have[0]))
		case !e.have.Ours():
			out = append(out, fmt.Sprintf("the shaping of what goes %s namespace %s is missing: %s has %s, not %s", e.way, ns, e.link, e.have.root(), e.want))
		default:
			out = append(out, fmt.Sprintf("the shaping of what goes %s namespace %s is %s; the record's is %s", e.way, ns, e.have, e.want))
		}
	}
	return out
}

// root names a side's root qdisc for people: its kind, or the default.
func (s Side) root() string {
	if len(s) == 0 || s[0].Kind == "" {
		return "no qdisc"
	}
	return "a " + s[0].Kind + " qdisc"
}

func (s Side) String() string {
	out := ""
	for i, q := range s {
		if i > 0 {
			out += " under "
		}
		out += q.String()
	}
	return out
}

// Kinds lists the qdisc kinds a link's shaping needs.
func (l Link) Kinds() []string {
	var out []string
	for _, s := range []Side{l.Host, l.Peer} {
		for _, q := range s {
			if !slices.Contains(out, q.Kind) {
				out = append(out, q.Kind)
			}
		}
	}
	return out
}

// Parse reads a qdisc as rtnl read it: its kind, place, and the settings
// of the kinds nsrun makes. Pure.
func Parse(r rtnl.Qdisc) (Qdisc, error) {
	q := Qdisc{Kind: r.Kind, Handle: r.Handle, Parent: r.Parent}
	switch r.Kind {
	case TBF:
		// TCA_TBF_PARMS: struct tc_tbf_qopt {rate, peakrate tc_ratespec
		// (12 bytes, the rate last); limit, buffer, mtu u32}; TCA_TBF_RATE64
		// for rates of 2^32 bytes per second and more.
		err := rtnl.EachAttr(r.Options, func(t uint16, v []byte) {
			switch {
			case t == tcaTBFParms && len(v) >= 36:
				q.Rate = uint64(binary.NativeEndian.Uint32(v[8:12]))
				q.Limit = binary.NativeEndian.Uint32(v[24:28])
				q.Buffer = binary.NativeEndian.Uint32(v[28:32])
			case t == tcaTBFRate64 && len(v) >= 8:
				q.Rate = binary.NativeEndian.Uint64(v)
			}
		})
		return q, err
	case Netem:
		// struct tc_netem_qopt {latency, limit, loss, gap, duplicate,
		// jitter u32}, then attributes; delays beyond 2^32 ticks come in
		// TCA_NETEM_LATENCY64/JITTER64 (nanoseconds), which nsrun's bound
		// never reaches.
		if len(r.Options) < 24 {
			return q, fmt.Errorf("a netem qdisc with %d bytes of options", len(r.Options))
		}
		q.Latency = binary.NativeEndian.Uint32(r.Options[0:4])
		q.Limit = binary.NativeEndian.Uint32(r.Options[4:8])
		q.Loss = binary.NativeEndian.Uint32(r.Options[8:12])
		q.Jitter = binary.NativeEndian.Uint32(r.Options[20:24])
	}
	return q, nil
}

// TCA_TBF_PARMS and TCA_TBF_RATE64 (linux/pkt_sched.h).
const (
	tcaTBFParms  = 1
	tcaTBFRate64 = 4
)

// Commands are the tc commands that make a link's shaping by hand on a
// fresh pair (what `nsrun plan` prints).
func Commands(ns, hostLink, peer string, l Link) []string {
	var out []string
	for _, e := range []struct {
		prefix, dev string
		side        Side
	}{{"", hostLink, l.Host}, {"ip netns exec " + ns + " ", peer, l.Peer}} {
		for _, q := range e.side {
			at := "root"
			if q.Parent != rootParent {
				at = "parent " + handle(q.Parent)
			}
			out = append(out, fmt.Sprintf("%stc qdisc replace dev %s %s handle %s %s", e.prefix, e.dev, at, handle(q.Handle), q))
		}
	}
	return out
}

// handle writes a handle as tc does: 6e73: for a qdisc, 6e73:1 for a class.
func handle(h uint32) string {
	if h&0xffff == 0 {
		return fmt.Sprintf("%x:", h>>16)
	}
	return fmt.Sprintf("%x:%x", h>>16, h&0xffff)
}
