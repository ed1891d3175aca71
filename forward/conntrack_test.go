package forward

import (
	"net/netip"
	"testing"

	"github.com/nsrun/nsrun/specs"
)

func TestUDPPortsMatch(t *testing.T) {
	p := Project{Name: "blog", Namespaces: []Namespace{{Name: "ns1", Address: netip.MustParsePrefix("10.203.45.214/30"),
		Ports: []specs.Port{specs.MustParsePort("6000:8080"), specs.MustParsePort("127.0.0.1:6100:9090/udp")}}}}
	u := udpPorts(UDPPorts(p))
	if len(u) != 1 || u[0] != (specs.PortRange{First: 6100, Last: 6100}) {
		t.Fatalf("UDPPorts = %v", u)
	}
}
