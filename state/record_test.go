package state

import (
	"slices"
	"testing"
)

func names(r *Record) []string {
	var out []string
	for _, ns := range r.Namespaces {
		out = append(out, ns.Name)
	}
	return out
}

func record(project string, links ...string) *Record {
	r := &Record{Project: project}
	for _, l := range links {
		r.Namespaces = append(r.Namespaces, &Namespace{Name: l, Link: "nsr-" + l})
	}
	return r
}

func TestMergeKeepsBothSidesOnce(t *testing.T) {
	a, b := record("p", "ns1", "ns2", "ns3"), record("p", "ns3", "ns4")
	got := Merge(a, b)
	if want := []string{"ns3", "ns4", "ns1", "ns2"}; !slices.Equal(names(got), want) {
		t.Errorf("Merge = %v, want %v (b's, then a's that b lacks)", names(got), want)
	}
	if got.Namespace("ns3") != b.Namespaces[0] {
		t.Error("Merge took a's ns3, want b's")
	}
	if !slices.Equal(names(b), []string{"ns3", "ns4"}) {
		t.Errorf("Merge changed b: %v", names(b))
	}
	if Merge(nil, b) != b {
		t.Error("Merge(nil, b) is not b")
	}
}

func TestByNameFindsWhatNamespaceFinds(t *testing.T) {
	r := record("p", "a", "b", "c")
	idx := r.ByName()
	if len(idx) != 3 {
		t.Fatalf("ByName has %d entries, want 3", len(idx))
	}
	for _, n := range []string{"a", "b", "c", "d"} {
		if idx[n] != r.Namespace(n) {
			t.Errorf("ByName[%q] = %v, Namespace = %v", n, idx[n], r.Namespace(n))
		}
	}
	var none *Record
	if got := none.ByName(); got == nil || len(got) != 0 {
		t.Errorf("nil record's ByName = %v, want empty", got)
	}
}
