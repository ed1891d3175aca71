package forward

import (
	"net/netip"
	"testing"

	"github.com/nsrun/nsrun/specs"
)

// TestDigestFollowsEveryField: the digest of a project changes with
// anything a backend reads of it, and only then; a backend keeps its
// drift answers under it.
func TestDigestFollowsEveryField(t *testing.T) {
	base := func() Project {
		return Project{Name: "p", Namespaces: []Namespace{{
			Name: "ns1", Link: "nsr-a", Address: netip.MustParsePrefix("10.0.0.2/30"),
			Address6: netip.MustParsePrefix("fd00::2/64"), Egress: true, Networks: []string{"p/default"},
			Ports: []specs.Port{specs.MustParsePort("6000:8080")},
		}}}
	}
	if base().Digest() != base().Digest() {
		t.Fatal("the same project has two digests")
	}
	for name, change := range map[string]func(p *Project){
		"name":       func(p *Project) { p.Name = "q" },
		"namespace":  func(p *Project) { p.Namespaces[0].Name = "ns2" },
		"link":       func(p *Project) { p.Namespaces[0].Link = "nsr-b" },
		"address":    func(p *Project) { p.Namespaces[0].Address = netip.MustParsePrefix("10.0.0.6/30") },
		"address6":   func(p *Project) { p.Namespaces[0].Address6 = netip.Prefix{} },
		"egress":     func(p *Project) { p.Namespaces[0].Egress = false },
		"port":       func(p *Project) { p.Namespaces[0].Ports[0] = specs.MustParsePort("6001:8080") },
		"protocol":   func(p *Project) { p.Namespaces[0].Ports[0] = specs.MustParsePort("6000:8080/udp") },
		"both":       func(p *Project) { p.Namespaces[0].Ports[0].Both = !p.Namespaces[0].Ports[0].Both },
		"no ports":   func(p *Project) { p.Namespaces[0].Ports = nil },
		"network":    func(p *Project) { p.Namespaces[0].Networks = []string{"shared"} },
		"no network": func(p *Project) { p.Namespaces[0].Networks = []string{} },
		"another namespace": func(p *Project) {
			p.Namespaces = append(p.Namespaces, Namespace{Name: "ns3", Link: "nsr-c"})
		},
	} {
		p := base()
		change(&p)
		if p.Digest() == base().Digest() {
			t.Errorf("changing the %s leaves the digest as it was", name)
		}
	}
}
