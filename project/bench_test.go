package project

import (
	"fmt"
	"strings"
	"testing"

	"github.com/nsrun/nsrun/host"
	"github.com/nsrun/nsrun/specs"
)

// spec1000 is a spec of 1,000 namespaces, each with a published port.
func spec1000(b *testing.B) []byte {
	var sb strings.Builder
	sb.WriteString("name: big\nsubnet: 10.200.0.0/14\nnamespaces:\n")
	for i := 0; i < 1000; i++ {
		fmt.Fprintf(&sb, "  ns%d: {ports: [\"%d:8080\"]}\n", i, 20000+i)
	}
	return []byte(sb.String())
}

func BenchmarkParse1000(b *testing.B) {
	data := spec1000(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := specs.Parse("big.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPlan1000 is everything up computes before touching the kernel:
// desired state, preflight, steps, and the shell script of plan.
func BenchmarkPlan1000(b *testing.B) {
	s, err := specs.Parse("big.yaml", spec1000(b))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		want, err := Desire(s, nil, nil, noPrefixes, "")
		if err != nil {
			b.Fatal(err)
		}
		if err := Preflight(want, nil, nil, host.Observed{}); err != nil {
			b.Fatal(err)
		}
		PlanUp(want, nil, nil, host.Observed{}, nil)
	}
}
