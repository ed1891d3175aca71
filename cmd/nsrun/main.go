// Command nsrun turns a YAML spec into running, port-published Linux
// network namespaces.
package main

import (
	"os"

	// 'nsrun exec NS CMD' without starting the Go runtime, when built with cgo.
	_ "github.com/nsrun/nsrun/netns/fastexec"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
