package specs

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: no input panics; an input is either accepted as a spec that
// keeps every invariant the system layer relies on, or rejected with
// positioned problems.
func FuzzParse(f *testing.F) {
	examples, _ := filepath.Glob("examples/*.yaml")
	for _, file := range examples {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, tc := range badSpecs {
		f.Add([]byte(tc.src))
	}
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("namespaces: {ns1: {ports: [\"1-65535:1-65535/udp\"]}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse("fuzz.yaml", data)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || len(e.Problems) == 0 {
				t.Fatalf("Parse error %T %v; want *Error with problems", err, err)
			}
			return
		}
		checkInvariants(t, s)
	})
}

func checkInvariants(t *testing.T, s *Spec) {
	t.Helper()
	if CheckProjectName(s.Name) != nil || len(s.Namespaces) == 0 {
		t.Fatalf("accepted project %q with %d namespaces", s.Name, len(s.Namespaces))
	}
	links := map[string]bool{}
	for i, ns := range s.Namespaces {
		if CheckNamespaceName(ns.Name) != nil || len(ns.HostLink) > 15 || links[ns.HostLink] {
			t.Fatalf("accepted namespace %q with link %q", ns.Name, ns.HostLink)
		}
		links[ns.HostLink] = true
		if checkNamespaceAddress(ns.Address) != nil || ns.HostAddress != HostSide(ns.Address) {
			t.Fatalf("namespace %q has address %v, host side %v", ns.Name, ns.Address, ns.HostAddress)
		}
		for _, other := range s.Namespaces[:i] {
			if ns.Address.Masked().Overlaps(other.Address.Masked()) {
				t.Fatalf("namespaces %q and %q overlap: %v, %v", ns.Name, other.Name, ns.Address, other.Address)
			}
		}
		if s.IPv6 != ns.Address6.IsValid() && (s.Subnet6Set || !ns.AutoAddress6) {
			t.Fatalf("namespace %q: ipv6 %v but address6 %v", ns.Name, s.IPv6, ns.Address6)
		}
		if ns.Address6.IsValid() {
			if checkNamespaceAddress6(ns.Address6) != nil || ns.HostAddress6 != HostSide(ns.Address6) {
				t.Fatalf("namespace %q has address6 %v, host side %v", ns.Name, ns.Address6, ns.HostAddress6)
			}
			for _, other := range s.Namespaces[:i] {
				if other.Address6.IsValid() && ns.Address6.Masked().Overlaps(other.Address6.Masked()) {
					t.Fatalf("namespaces %q and %q overlap: %v, %v", ns.Name, other.Name, ns.Address6, other.Address6)
				}
			}
		}
		for _, p := range ns.Ports {
			if p.Published.Len() != p.Target.Len() || p.Published.First == 0 || p.Target.First == 0 || !p.HostIP.IsValid() ||
				(p.Is6() && !s.IPv6) || (p.HostIP == netip.IPv6Loopback() && p.Protocol == UDP) || p.HostIP.IsLinkLocalUnicast() {
				t.Fatalf("accepted port %+v", p)
			}
		}
		names := map[string]bool{}
		for _, p := range ns.Run {
			if len(p.Command) == 0 || p.Command[0] == "" || CheckProcessName(p.Name) != nil || names[p.Name] {
				t.Fatalf("accepted process %+v", p)
			}
			names[p.Name] = true
		}
	}
}
