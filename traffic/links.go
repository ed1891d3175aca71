package traffic

import "github.com/vishvananda/netlink"

// HostLinks reads the statistics of every link of the host's network
// namespace (the caller's), in one netlink dump.
func HostLinks() (map[string]LinkStats, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, err
	}
	out := make(map[string]LinkStats, len(links))
	for _, l := range links {
		a := l.Attrs()
		if s := a.Statistics; s != nil {
			out[a.Name] = LinkStats{
				RxBytes: s.RxBytes, RxPackets: s.RxPackets, RxDropped: s.RxDropped,
				TxBytes: s.TxBytes, TxPackets: s.TxPackets, TxDropped: s.TxDropped,
			}
		}
	}
	return out, nil
}
