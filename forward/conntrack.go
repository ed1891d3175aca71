package forward

import (
	"errors"
	"fmt"

	"github.com/nsrun/nsrun/specs"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// udpPorts matches conntrack flows of UDP datagrams sent to any of the
// host ports.
type udpPorts []specs.PortRange

func (u udpPorts) MatchConntrackFlow(f *netlink.ConntrackFlow) bool {
	if f.Forward.Protocol != unix.IPPROTO_UDP {
		return false
	}
	for _, r := range u {
		if f.Forward.DstPort >= r.First && f.Forward.DstPort <= r.Last {
			return true
		}
	}
	return false
}

// UDPPorts returns the published host ports of the UDP forwards.
func UDPPorts(p Project) []specs.PortRange {
	var out []specs.PortRange
	for _, ns := range p.Namespaces {
		for _, port := range ns.Ports {
			if port.Protocol == specs.UDP {
				out = append(out, port.Published)
			}
		}
	}
	return out
}

// DeleteUDPConntrack removes the conntrack entries of UDP flows to the
// given host ports, of both families. A UDP "connection" lives on in conntrack while
// datagrams keep coming, so without this a forward added or removed would
// go on sending them to the old place (or to none).
func DeleteUDPConntrack(ports []specs.PortRange) error {
	if len(ports) == 0 {
		return nil
	}
	for _, family := range []netlink.InetFamily{unix.AF_INET, unix.AF_INET6} {
		_, err := netlink.ConntrackDeleteFilters(netlink.ConntrackTable, family, udpPorts(ports))
		if err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EAFNOSUPPORT) {
			return fmt.Errorf("deleting UDP conntrack entries for ports %v: %w", ports, err)
		}
	}
	return nil
}
