package project

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/forward/nftables"
	"github.com/nsrun/nsrun/forward/shortcut"
	"github.com/nsrun/nsrun/netns/nstest"
	"github.com/nsrun/nsrun/state"
	"github.com/nsrun/nsrun/traffic"
)

// TestTrafficCounters sends real connections to a published port, 100
// from a neighbour and 50 from the host at 127.0.0.1 (which the loopback
// shortcut takes, where the kernel has it, and DNAT otherwise), and reads
// the counters as nsrun metrics does: the port's connection count grows
// by all 150 in each backend, its packets and bytes grow both ways by
// what the neighbour's 100 at least send (and by no more than the link
// carried), and the namespace's link counters grow both ways; in nftables
// the counts outlive a repair of the rule; the counting table deleted by
// hand is drift that status reports and up repairs.
func TestTrafficCounters(t *testing.T) {
	eachFirewall(t, func(t *testing.T, l *lab) {
		ports := freePorts(t, 1)
		src := fmt.Sprintf("name: t{ID}\nnamespaces:\n  a{ID}:\n    ports: [\"%d:8080\"]\n", ports[0])
		st := l.up(src)
		a := l.ns("a")
		nstest.StartServer(t, a, a, "8080", "")
		before := readTraffic(t, st)
		for i := range 100 {
			r, err := nstest.DialFrom(t, l.outside, "tcp", addr(l.outHost, ports[0]), "")
			l.expect(r, err, a, fmt.Sprintf("neighbour -> host:%d, connection %d", ports[0], i))
		}
		for i := range 50 {
			r, err := hostDial("tcp", fmt.Sprintf("127.0.0.1:%d", ports[0]), "")
			l.expect(r, err, a, fmt.Sprintf("host -> 127.0.0.1:%d, connection %d", ports[0], i))
		}
		after := readTraffic(t, st)
		p0, p1 := before.Ports[0], after.Ports[0]
		if !p1.Counted || p1.Connections-p0.Connections < 150 {
			t.Errorf("port %s: %d connections before, %d after (counted: %t); want at least 150 more", p1.Port.Full(), p0.Connections, p1.Connections, p1.Counted)
		}
		n0, n1 := before.Namespaces[0], after.Namespaces[0]
		// Each of the 100 connections carries at least two packets each
		// way (SYN, request; SYN-ACK, answer), each of at least 40 bytes;
		// what the port counts (IP packets) is within what the link
		// carried (frames), which also carried the 50 from the host.
		for _, w := range []struct {
			way          string
			from, to     forward.Flow
			link0, link1 traffic.LinkCounts
		}{{"in", p0.In, p1.In, n0.In, n1.In}, {"out", p0.Out, p1.Out, n0.Out, n1.Out}} {
			packets, bytes := w.to.Packets-w.from.Packets, w.to.Bytes-w.from.Bytes
			t.Logf("%s: %d packets, %d bytes through the port; %d bytes through the link", w.way, packets, bytes, w.link1.Bytes-w.link0.Bytes)
			if !p1.Measured || packets < 200 || bytes < 40*packets || bytes > w.link1.Bytes-w.link0.Bytes {
				t.Errorf("port %s, %s: %+v before, %+v after (measured: %t), the link carried %d bytes; want at least 200 packets more, of at least 40 bytes, and no more bytes than the link",
					p1.Port.Full(), w.way, w.from, w.to, p1.Measured, w.link1.Bytes-w.link0.Bytes)
			}
		}
		if l.firewall == forward.NFTables {
			// The publication's rule flushed and put back by up: its named
			// counter kept counting.
			run(t, "nft", "flush", "chain", "inet", "nsrun", fmt.Sprintf("port/%s/%s/tcp/%d", st.Project, a, ports[0]))
			l.up(src)
			r, err := nstest.DialFrom(t, l.outside, "tcp", addr(l.outHost, ports[0]), "")
			l.expect(r, err, a, "neighbour -> host:P after the repair")
			again := readTraffic(t, st).Ports[0]
			if again.Connections != p1.Connections+1 {
				t.Errorf("after the rule was repaired and one more connection: %d connections, %d before; want the count kept, and one more", again.Connections, p1.Connections)
			}
			if again.In.Packets < p1.In.Packets+2 || again.Out.Packets < p1.Out.Packets+2 {
				t.Errorf("after the rule was repaired and one more connection: in %+v, out %+v; before in %+v, out %+v; want the counts kept, and more",
					again.In, again.Out, p1.In, p1.Out)
			}
		}
		// The counting table removed by hand: status says so, and up puts
		// it back, counting from 0 again.
		run(t, "nft", "delete", "table", "inet", "nsrun-count")
		rep, err := l.e.Status(context.Background(), st.Project)
		if err != nil || !slices.ContainsFunc(rep.Drift, func(d Drift) bool { return strings.Contains(d.Message, "nsrun-count") }) {
			t.Errorf("status after the counting table was deleted: %v, drift %+v; want it reported", err, rep.Drift)
		}
		l.up(src)
		r, err := nstest.DialFrom(t, l.outside, "tcp", addr(l.outHost, ports[0]), "")
		l.expect(r, err, a, "neighbour -> host:P after the counting table was put back")
		if again := readTraffic(t, st).Ports[0]; !again.Measured || again.In.Packets < 2 || again.Out.Packets < 2 {
			t.Errorf("after the counting table was put back and one more connection: %+v", again)
		}
		if !n1.Found || n1.In.Bytes <= n0.In.Bytes || n1.Out.Bytes <= n0.Out.Bytes || n1.In.Packets < n0.In.Packets+150 || n1.Out.Packets < n0.Out.Packets+150 {
			t.Errorf("namespace %s: link counters before %+v, after %+v; want more bytes both ways, and at least a packet a connection", a, n0, n1)
		}
	})
}

// readTraffic reads the project's counters as nsrun metrics does.
func readTraffic(t *testing.T, st *state.Record) *traffic.Sample {
	t.Helper()
	counters := map[forward.Backend]forward.Counter{}
	for _, fw := range kernel(0).Publisher.Firewalls {
		if c, ok := fw.(forward.Counter); ok {
			counters[fw.Backend()] = c
		}
	}
	s, err := traffic.Read(context.Background(), []*state.Record{st}, traffic.Sources{
		Counters:  counters,
		Traffic:   nftables.NewCounting(nil).Traffic,
		Shortcut:  func() (shortcut.Table, error) { return shortcut.Read(st.Project) },
		Links:     traffic.HostLinks,
		Processes: func(*state.Record) []traffic.Process { return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Ports) != 1 || len(s.Namespaces) != 1 {
		t.Fatalf("sample: %+v; want the project's one port and one namespace", s)
	}
	return s
}
