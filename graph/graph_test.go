package graph

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// sample has what the picture marks: a 127.0.0.1-only port, a range, a
// namespace without egress, processes with and without a state, and
// names that need quoting; a network of the project's own, an external
// one, and a namespace on none.
var sample = Topology{Project: "blog", Namespaces: []Namespace{
	{Name: "ns1", Address: "10.203.45.214/30", HostLink: "nsr-ns1", HostAddress: "10.203.45.213/30", Egress: true,
		Networks:  []string{"front", "shared (external)"},
		Ports:     []Port{{"0.0.0.0", "6000", "tcp", "8080"}, {"127.0.0.1", "6100", "udp", "9090"}},
		Processes: []Process{{"web", "running"}, {"worker", "backoff"}}},
	{Name: "db.\"x\"", Address: "10.203.26.242/30", HostLink: "nsh-dbx1a2b3c4d", HostAddress: "10.203.26.241/30", Egress: false,
		Networks: []string{"front"}, Ports: []Port{{"0.0.0.0", "7000-7002", "tcp", "8000-8002"}}, Processes: []Process{{"pg", ""}}},
	{Name: "lone", Address: "10.203.9.2/30", HostLink: "nsr-lone", HostAddress: "10.203.9.1/30", Egress: true},
}}

func TestGolden(t *testing.T) {
	for name, render := range map[string]func(Topology) string{"sample.mmd": Mermaid, "sample.dot": DOT} {
		got := render(sample)
		path := filepath.Join("testdata", name)
		if *update {
			os.WriteFile(path, []byte(got), 0o644)
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if got != string(want) {
			t.Errorf("%s:\n%s\nwant:\n%s", name, got, want)
		}
	}
}
