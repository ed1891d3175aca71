// Command hoststate prints the host state nsrun could leave behind, as the
// test suite compares it before and after (nstest.Snapshot): namespaces,
// links, both iptables backends, nsrun's nftables tables, sysctls, the programs on the root
// cgroup's connect and getpeername hooks, nsrun's cgroups and /run/nsrun. scripts/chaos.sh
// compares it before and after each run.
package main

import (
	"fmt"

	"github.com/nsrun/nsrun/netns/nstest"
)

func main() {
	fmt.Print(nstest.Snapshot())
}
