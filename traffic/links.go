package traffic

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// HostLinks reads the statistics of every link of the caller's network
// namespace (the host's) from /proc/net/dev: one read for all, the same
// 64-bit counters netlink gives (dev_get_stats), at a fifteenth of the
// cost of a netlink dump of 1,000 links (2 ms against 30 ms: the dump
// carries every attribute of every link, and the kernel looks up each
// veth peer's namespace for it).
func HostLinks() (map[string]LinkStats, error) {
	data, err := os.ReadFile("/proc/net/dev")
	if err != nil {
		return nil, err
	}
	return parseNetDev(data)
}

// parseNetDev reads /proc/net/dev: two header lines, then per link
// "NAME: rx bytes packets errs drop fifo frame compressed multicast tx
// bytes packets errs drop fifo colls carrier compressed".
func parseNetDev(data []byte) (map[string]LinkStats, error) {
	out := map[string]LinkStats{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			if n > 2 {
				return nil, fmt.Errorf("/proc/net/dev line %d: no name: %q", n, sc.Text())
			}
			continue // the headers
		}
		f := strings.Fields(rest)
		if len(f) < 12 {
			return nil, fmt.Errorf("/proc/net/dev line %d: %d fields, want 16", n, len(f))
		}
		var v [12]uint64
		for i := range v {
			var err error
			if v[i], err = strconv.ParseUint(f[i], 10, 64); err != nil {
				return nil, fmt.Errorf("/proc/net/dev line %d: %v", n, err)
			}
		}
		out[strings.TrimSpace(name)] = LinkStats{RxBytes: v[0], RxPackets: v[1], RxDropped: v[3], TxBytes: v[8], TxPackets: v[9], TxDropped: v[11]}
	}
	return out, sc.Err()
}
