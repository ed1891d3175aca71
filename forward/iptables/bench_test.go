package iptables

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/specs"
)

// bigProject has n namespaces with one published port each.
func bigProject(b *testing.B, n int) forward.Project {
	p := forward.Project{Name: "big"}
	for i := 0; i < n; i++ {
		port, err := specs.ParsePort(fmt.Sprintf("%d:8080", 20000+i))
		if err != nil {
			b.Fatal(err)
		}
		a := netip.AddrFrom4([4]byte{10, 203, byte(i / 64), byte(i%64*4 + 2)})
		p.Namespaces = append(p.Namespaces, forward.Namespace{Name: fmt.Sprintf("ns%d", i), Link: fmt.Sprintf("nsr-ns%d", i),
			Address: netip.PrefixFrom(a, 30), Egress: i%2 == 0, Ports: []specs.Port{port}})
	}
	return p
}

func BenchmarkRules1000(b *testing.B) {
	p := bigProject(b, 1000)
	b.ReportAllocs()
	for b.Loop() {
		Rules(p)
	}
}

func BenchmarkUpScript1000(b *testing.B) {
	p := bigProject(b, 1000)
	empty := &Snapshot{}
	b.ReportAllocs()
	for b.Loop() {
		UpScript(empty, p)
	}
}

// BenchmarkUpScriptUnchanged1000 is a second up of 1,000 namespaces: the
// diff against iptables-save finds nothing to do.
func BenchmarkUpScriptUnchanged1000(b *testing.B) {
	p := bigProject(b, 1000)
	snap := savedSnapshot(b, p)
	b.ReportAllocs()
	for b.Loop() {
		UpScript(snap, p)
	}
}

// savedSnapshot is what iptables-save prints once p's rules are in place.
func savedSnapshot(b *testing.B, p forward.Project) *Snapshot {
	snap, err := ParseSave("*nat\n" + filterTable(Rules(p), "nat") + "COMMIT\n*filter\n" + filterTable(Rules(p), "filter") + "COMMIT\n")
	if err != nil {
		b.Fatal(err)
	}
	return snap
}

func filterTable(rules []Rule, table string) string {
	var out string
	for _, r := range rules {
		if r.Table == table {
			out += r.String() + "\n"
		}
	}
	return out
}

func BenchmarkDrift1000(b *testing.B) {
	p := bigProject(b, 1000)
	snap := savedSnapshot(b, p)
	b.ReportAllocs()
	for b.Loop() {
		snap.Drift(p, false)
	}
}
