package nftables

import (
	"context"
	"net/netip"
	"testing"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/specs"
)

// TestCounts: each publication has three named counters, of its chain's
// name, which its rule counts with, and of each way of its traffic, which
// the count maps hold; they are made before what uses them and removed
// with the project; a port finds its own.
func TestCounts(t *testing.T) {
	ctx := context.Background()
	fw := NewFake()
	p := project("p1", 0)
	if err := fw.Ensure(ctx, p, false); err != nil {
		t.Fatal(err)
	}
	got, err := fw.Counts(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := got.(Counts)
	pubs := 0
	for _, ns := range p.Namespaces {
		for _, port := range ns.Ports {
			if _, ok := forward.DNATTo(ns, port); !ok {
				continue
			}
			pubs++
			if _, ok := c.Connections(p.Name, ns, port); !ok {
				t.Errorf("no counter for %s/%s %s; the counters: %v", p.Name, ns.Name, port.Full(), c)
			}
			if _, _, ok := c.Traffic(p.Name, ns, port); !ok {
				t.Errorf("no traffic counters for %s/%s %s; the counters: %v", p.Name, ns.Name, port.Full(), c)
			}
		}
	}
	if len(c) != 3*pubs {
		t.Errorf("%d counters for %d publications: %v", len(c), pubs, c)
	}
	if err := fw.Remove(ctx, p.Name); err != nil {
		t.Fatal(err)
	}
	if got, _ := fw.Counts(ctx, nil); len(got.(Counts)) != 0 {
		t.Errorf("counters after the project was removed: %v", got)
	}

	ns := forward.Namespace{Name: "a", Address: netip.MustParsePrefix("10.1.0.2/30"), Address6: netip.MustParsePrefix("fd00::2/64")}
	counts := Counts{"port/p/a/tcp/6000": {Packets: 152, Bytes: 9120}, "port/p/a/ip6/udp/6001": {Packets: 3},
		"port/p/a/tcp/6000/in": {Packets: 160, Bytes: 9000}, "port/p/a/tcp/6000/out": {Packets: 150, Bytes: 250000}}
	for _, tc := range []struct {
		port string
		n    uint64
		ok   bool
	}{
		{"6000:8080", 152, true},
		{"[::]:6001:53/udp", 3, true},
		{"6003:8080", 0, false},       // no counter
		{"[::1]:6004:8080", 0, false}, // the loopback shortcut's alone
	} {
		port, err := specs.ParsePort(tc.port)
		if err != nil {
			t.Fatal(err)
		}
		if n, ok := counts.Connections("p", ns, port); n != tc.n || ok != tc.ok {
			t.Errorf("Connections(%s) = %d, %t; want %d, %t", tc.port, n, ok, tc.n, tc.ok)
		}
	}
	in, out, ok := counts.Traffic("p", ns, specs.MustParsePort("6000:8080"))
	if in != (forward.Flow{Packets: 160, Bytes: 9000}) || out != (forward.Flow{Packets: 150, Bytes: 250000}) || !ok {
		t.Errorf("Traffic(6000) = %+v, %+v, %t", in, out, ok)
	}
	if _, _, ok := counts.Traffic("p", ns, specs.MustParsePort("[::]:6001:53/udp")); ok {
		t.Error("Traffic of a port without way counters says it has them")
	}
}
