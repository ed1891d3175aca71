// Command nsrun turns a YAML spec into running, port-published Linux
// network namespaces.
package main

import (
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
