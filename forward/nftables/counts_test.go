package nftables

import (
	"net/netip"
	"testing"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/specs"
)

// TestCounts: the counters of the publication chains' rules are read
// from nft's JSON, other tables' and chains' are passed over, and a port
// finds its own chain's.
func TestCounts(t *testing.T) {
	out := []byte(`{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
{"table": {"family": "inet", "name": "nsrun", "handle": 1}},
{"rule": {"family": "inet", "table": "nsrun", "chain": "port/p/a/tcp/6000", "handle": 5, "comment": "nsrun -> 10.1.0.2:8080, counted",
  "expr": [{"counter": {"packets": 152, "bytes": 9120}}, {"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}},
           {"dnat": {"family": "ip", "addr": "10.1.0.2", "port": 8080}}]}},
{"rule": {"family": "inet", "table": "nsrun", "chain": "port/p/a/ip6/udp/6001", "handle": 6,
  "expr": [{"counter": {"packets": 3, "bytes": 180}}, {"dnat": {"family": "ip6", "addr": "fd00::2", "port": 53}}]}},
{"rule": {"family": "inet", "table": "nsrun", "chain": "filter-forward", "handle": 7, "expr": [{"counter": {"packets": 99, "bytes": 1}}]}},
{"rule": {"family": "inet", "table": "other", "chain": "port/p/a/tcp/6002", "handle": 8, "expr": [{"counter": {"packets": 7, "bytes": 1}}]}}
]}`)
	c, err := parseCounts(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(c) != 2 || c["port/p/a/tcp/6000"] != 152 || c["port/p/a/ip6/udp/6001"] != 3 {
		t.Errorf("counts: %v; want the two publication chains of table inet nsrun", c)
	}
	ns := forward.Namespace{Name: "a", Address: netip.MustParsePrefix("10.1.0.2/30"), Address6: netip.MustParsePrefix("fd00::2/64")}
	for _, tc := range []struct {
		port string
		n    uint64
		ok   bool
	}{
		{"6000:8080", 152, true},
		{"[::]:6001:53/udp", 3, true},
		{"6003:8080", 0, false}, // no chain
		{"[::1]:6004:8080", 0, false}, // the loopback shortcut's alone
	} {
		port, err := specs.ParsePort(tc.port)
		if err != nil {
			t.Fatal(err)
		}
		if n, ok := c.Connections("p", ns, port); n != tc.n || ok != tc.ok {
			t.Errorf("Connections(%s) = %d, %t; want %d, %t", tc.port, n, ok, tc.n, tc.ok)
		}
	}
	if c, err := parseCounts(nil); err != nil || len(c) != 0 {
		t.Errorf("no table: %v, %v; want none", c, err)
	}
	if _, err := parseCounts([]byte("{")); err == nil {
		t.Error("broken JSON was read without an error")
	}
}
