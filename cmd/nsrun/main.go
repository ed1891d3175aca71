// Command nsrun turns a YAML spec into running, port-published Linux
// network namespaces.
package main

import (
	"os"
	"runtime/debug"

	// 'nsrun exec NS CMD' without starting the Go runtime, when built with cgo.
	_ "github.com/nsrun/nsrun/netns/fastexec"
)

func main() {
	// up, down and status read every namespace through netlink, whose
	// library allocates a 64 KiB buffer per message received: hundreds of
	// MiB of short-lived garbage for 500 namespaces. Collecting half as
	// often takes a sixth off a second up (BENCHMARKS.md); the long-lived
	// supervisor's heap is a few MiB either way.
	debug.SetGCPercent(200)
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
