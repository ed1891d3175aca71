// Command fwbench times each firewall backend applying, reading and
// removing a project's rules on the real kernel, through nsrun's own code
// (forward.Firewall): one namespace with N published ports, for each N
// given. scripts/bench.sh prints its figures side by side; it prints one
// line per backend and N:
//
//	BACKEND N ENSURE_MS READ_MS REMOVE_MS   (medians of the runs)
//
// Run as root on a host with no nsrun project up: it uses project
// "fwbench" and removes what it made.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/forward/iptables"
	"github.com/nsrun/nsrun/forward/nftables"
	"github.com/nsrun/nsrun/specs"
)

// firewall is a backend as both nsrun's backends are: with Ensure, the
// read and the write that nsrun's up does in one.
type firewall interface {
	forward.Firewall
	Ensure(ctx context.Context, p forward.Project, acceptsOnly bool) error
}

func main() {
	runs := flag.Int("runs", 5, "runs per backend and size")
	flag.Parse()
	ctx := context.Background()
	backends := []firewall{iptables.New(iptables.NFT, 30*time.Second), nftables.New()}
	for _, arg := range flag.Args() {
		n, err := strconv.Atoi(arg)
		if err != nil || n < 1 || n > 20000 {
			fail(fmt.Errorf("size %q: want a number of ports, 1-20000", arg))
		}
		p := project(n)
		for _, fw := range backends {
			var ensure, read, remove []float64
			for i := 0; i < *runs; i++ {
				ensure = append(ensure, timed(func() error { return fw.Ensure(ctx, p, false) }))
				read = append(read, timed(func() error { _, err := fw.Read(ctx); return err }))
				remove = append(remove, timed(func() error { return fw.Remove(ctx, p.Name) }))
			}
			fmt.Printf("%s %d %.1f %.1f %.1f\n", fw.Backend(), n, median(ensure), median(read), median(remove))
		}
	}
}

// project is one namespace with n ports published, 20000 and up.
func project(n int) forward.Project {
	ns := forward.Namespace{Name: "fwbench", Link: "nsr-fwbench", Address: netip.MustParsePrefix("10.249.0.2/30"), Egress: true, Networks: []string{"fwbench/default"}}
	for i := 0; i < n; i++ {
		ns.Ports = append(ns.Ports, specs.MustParsePort(fmt.Sprintf("%d:8080", 20000+i)))
	}
	return forward.Project{Name: "fwbench", Namespaces: []forward.Namespace{ns}}
}

func timed(f func() error) float64 {
	start := time.Now()
	if err := f(); err != nil {
		fail(err)
	}
	return float64(time.Since(start).Microseconds()) / 1000
}

func median(xs []float64) float64 {
	slices.Sort(xs)
	return xs[len(xs)/2]
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "fwbench:", err)
	os.Exit(1)
}
