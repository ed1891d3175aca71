package traffic

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/forward/shortcut"
	"github.com/nsrun/nsrun/specs"
	"github.com/nsrun/nsrun/state"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fixedCounts counts every publication of namespace "a" n connections,
// of 2n packets and 100n bytes in, n packets and 1000n bytes out.
type fixedCounts uint64

func (c fixedCounts) Connections(project string, ns forward.Namespace, port specs.Port) (uint64, bool) {
	return uint64(c), ns.Name == "a"
}

func (c fixedCounts) Traffic(project string, ns forward.Namespace, port specs.Port) (in, out forward.Flow, ok bool) {
	n := uint64(c)
	return forward.Flow{Packets: 2 * n, Bytes: 100 * n}, forward.Flow{Packets: n, Bytes: 1000 * n}, ns.Name == "a"
}

func record(t *testing.T) *state.Record {
	t.Helper()
	port := func(s string) specs.Port {
		p, err := specs.ParsePort(s)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	return &state.Record{Project: "p", Backend: "nftables", Namespaces: []*state.Namespace{
		{Name: "a", Link: "nsr-a", Address: netip.MustParsePrefix("10.1.0.2/30"), Ports: []specs.Port{port("6000:8080"), port("7000-7001:7000-7001/udp")},
			Run: []state.Process{{}}},
		{Name: "b", Link: "nsr-b", Address: netip.MustParsePrefix("10.1.0.6/30"), Ports: []specs.Port{port("127.0.0.1:6100:80")}},
	}}
}

// TestAssemble: each port gets its backend's count plus the loopback
// shortcut's; each namespace its link's counters, in from the host
// side's transmit; a link not found is marked so.
func TestAssemble(t *testing.T) {
	r := record(t)
	sc := shortcut.Table{Supported: true, Conns: map[netip.AddrPort]uint64{
		netip.MustParseAddrPort("0.0.0.0:6000"):   50,
		netip.MustParseAddrPort("127.0.0.1:6100"): 4,
	}}
	links := map[string]LinkStats{"nsr-a": {RxBytes: 1, RxPackets: 2, RxDropped: 3, TxBytes: 4, TxPackets: 5, TxDropped: 6}}
	procs := map[string][]Process{"p": {{Project: "p", Namespace: "a", Name: "web", Up: true, Restarts: 2, Health: "healthy"}}}
	s := Assemble([]*state.Record{r}, map[forward.Backend]forward.Counts{"nftables": fixedCounts(100)}, fixedCounts(100), sc, links, procs)
	if len(s.Ports) != 3 {
		t.Fatalf("ports: %+v", s.Ports)
	}
	for i, want := range []struct {
		n  uint64
		ok bool
	}{{150, true}, {100, true}, {4, true}} {
		if p := s.Ports[i]; p.Connections != want.n || p.Counted != want.ok {
			t.Errorf("port %s: %d connections, counted %t; want %d, %t", p.Port.Full(), p.Connections, p.Counted, want.n, want.ok)
		}
	}
	// The shortcut's connections never pass the forward hook: the bytes
	// are the backend's alone.
	if p := s.Ports[0]; !p.Measured || p.In != (forward.Flow{Packets: 200, Bytes: 10000}) || p.Out != (forward.Flow{Packets: 100, Bytes: 100000}) {
		t.Errorf("port %s: in %+v, out %+v, measured %t; want the backend's counts", p.Port.Full(), p.In, p.Out, p.Measured)
	}
	if p := s.Ports[2]; p.Measured {
		t.Errorf("port %s of namespace b has no counters of its traffic, but is measured: %+v", p.Port.Full(), p)
	}
	a, b := s.Namespaces[0], s.Namespaces[1]
	if !a.Found || a.In != (LinkCounts{4, 5, 6}) || a.Out != (LinkCounts{1, 2, 3}) {
		t.Errorf("namespace a: %+v; want in from the host side's transmit, out from its receive", a)
	}
	if b.Found {
		t.Errorf("namespace b has no link, but was found: %+v", b)
	}
	if len(s.Processes) != 1 || s.Processes[0].Restarts != 2 {
		t.Errorf("processes: %+v", s.Processes)
	}
}

// TestCollector: the metrics as Prometheus reads them, named and
// labelled as documented, and a failed read is one error gauge.
func TestCollector(t *testing.T) {
	r := record(t)
	s := Assemble([]*state.Record{r}, map[forward.Backend]forward.Counts{"nftables": fixedCounts(7)}, fixedCounts(7), shortcut.Table{},
		map[string]LinkStats{"nsr-a": {RxBytes: 10, TxBytes: 20}},
		map[string][]Process{"p": {{Project: "p", Namespace: "a", Name: "web", Up: true, Restarts: 1, Health: "unhealthy"}}})
	c := &Collector{Read: func(context.Context) (*Sample, error) { return s, nil }}
	want := `# HELP nsrun_published_connections_total Connections a published port has taken: what its DNAT rule counted since it was made.
# TYPE nsrun_published_connections_total counter
nsrun_published_connections_total{host_ip="0.0.0.0",namespace="a",port="6000",project="p",protocol="tcp"} 7
nsrun_published_connections_total{host_ip="0.0.0.0",namespace="a",port="7000-7001",project="p",protocol="udp"} 7
# HELP nsrun_published_bytes_total Bytes of a published port's connections that the host forwarded, into (in) and out of (out) the namespace; not those of connections from the host itself.
# TYPE nsrun_published_bytes_total counter
nsrun_published_bytes_total{direction="in",host_ip="0.0.0.0",namespace="a",port="6000",project="p",protocol="tcp"} 700
nsrun_published_bytes_total{direction="in",host_ip="0.0.0.0",namespace="a",port="7000-7001",project="p",protocol="udp"} 700
nsrun_published_bytes_total{direction="out",host_ip="0.0.0.0",namespace="a",port="6000",project="p",protocol="tcp"} 7000
nsrun_published_bytes_total{direction="out",host_ip="0.0.0.0",namespace="a",port="7000-7001",project="p",protocol="udp"} 7000
# HELP nsrun_published_packets_total Packets of a published port's connections that the host forwarded, into (in) and out of (out) the namespace; not those of connections from the host itself.
# TYPE nsrun_published_packets_total counter
nsrun_published_packets_total{direction="in",host_ip="0.0.0.0",namespace="a",port="6000",project="p",protocol="tcp"} 14
nsrun_published_packets_total{direction="in",host_ip="0.0.0.0",namespace="a",port="7000-7001",project="p",protocol="udp"} 14
nsrun_published_packets_total{direction="out",host_ip="0.0.0.0",namespace="a",port="6000",project="p",protocol="tcp"} 7
nsrun_published_packets_total{direction="out",host_ip="0.0.0.0",namespace="a",port="7000-7001",project="p",protocol="udp"} 7
# HELP nsrun_namespace_bytes_total Bytes into (in) and out of (out) a namespace, counted by the host side of its link.
# TYPE nsrun_namespace_bytes_total counter
nsrun_namespace_bytes_total{direction="in",namespace="a",project="p"} 20
nsrun_namespace_bytes_total{direction="out",namespace="a",project="p"} 10
# HELP nsrun_process_up 1 while the process runs, 0 otherwise.
# TYPE nsrun_process_up gauge
nsrun_process_up{namespace="a",process="web",project="p"} 1
# HELP nsrun_process_restarts_total Times the supervisor started the process again, since its project's supervisor started.
# TYPE nsrun_process_restarts_total counter
nsrun_process_restarts_total{namespace="a",process="web",project="p"} 1
# HELP nsrun_process_healthy 1 while the process's health check finds it healthy, 0 while starting or unhealthy; only for running processes with a check.
# TYPE nsrun_process_healthy gauge
nsrun_process_healthy{namespace="a",process="web",project="p"} 0
`
	names := []string{"nsrun_published_connections_total", "nsrun_published_bytes_total", "nsrun_published_packets_total", "nsrun_namespace_bytes_total", "nsrun_process_up", "nsrun_process_restarts_total", "nsrun_process_healthy"}
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	if err := testutil.CollectAndCompare(c, strings.NewReader("# HELP nsrun_scrape_error 1 when the counters could not be read at this scrape (the error is logged), 0 otherwise.\n# TYPE nsrun_scrape_error gauge\nnsrun_scrape_error 0\n"), "nsrun_scrape_error"); err != nil {
		t.Error(err)
	}
	var logged string
	failing := &Collector{Read: func(context.Context) (*Sample, error) { return nil, errors.New("nft: no") }, Errorf: func(f string, a ...any) { logged = f }}
	if n := testutil.CollectAndCount(failing); n != 1 {
		t.Errorf("a failed read gave %d metrics; want the error gauge alone", n)
	}
	if logged == "" {
		t.Error("a failed read was not logged")
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

// TestNetDev: /proc/net/dev as the kernel writes it, receive and
// transmit counters in their columns.
func TestNetDev(t *testing.T) {
	data := []byte(`Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:  123456     789    0    0    0     0          0         0   123456     789    0    0    0     0       0          0
nsr-a1b2: 18446744073709551615 5 0 7 0 0 0 0 2048 9 0 11 0 0 0 0
`)
	got, err := parseNetDev(data)
	if err != nil {
		t.Fatal(err)
	}
	want := LinkStats{RxBytes: 18446744073709551615, RxPackets: 5, RxDropped: 7, TxBytes: 2048, TxPackets: 9, TxDropped: 11}
	if len(got) != 2 || got["nsr-a1b2"] != want || got["lo"].RxBytes != 123456 {
		t.Errorf("parsed %+v; want lo and nsr-a1b2 %+v", got, want)
	}
	if _, err := parseNetDev([]byte("h1\nh2\nnsr-x: 1 2 3\n")); err == nil {
		t.Error("a short line was read without an error")
	}
	live, err := HostLinks()
	if err != nil || len(live) == 0 {
		t.Errorf("this host's links: %v, %v", live, err)
	}
}
