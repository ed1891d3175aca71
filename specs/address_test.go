package specs

import (
	"net/netip"
	"strings"
	"testing"
)

func TestDefaultPoolCoveredByAnAddress(t *testing.T) {
	// c's explicit /16 covers the whole default pool: nothing is left.
	_, err := Parse("demo.yaml", []byte("namespaces: {a: {}, c: {address: 10.203.0.2/16}}\n"))
	want := `demo.yaml:1:1: subnet: the default subnet 10.203.0.0/16 has no room left for namespace "a"; set subnet: to a free range`
	if err == nil || err.Error() != want {
		t.Errorf("pool covered by an explicit address: %v; want %s", err, want)
	}
}

func TestAutomaticAddressesAreStable(t *testing.T) {
	one := mustParse(t, "subnet: 10.77.0.0/16\nnamespaces: {alpha: {}, beta: {}, gamma: {address: 10.77.1.2/24}}\n")
	two := mustParse(t, "subnet: 10.77.0.0/16\nnamespaces: {gamma: {address: 10.77.1.2/24}, delta: {}, beta: {}, alpha: {}}\n")
	for _, name := range []string{"alpha", "beta", "gamma"} {
		a, b := one.Namespace(name), two.Namespace(name)
		if a.Address != b.Address || a.HostAddress != b.HostAddress {
			t.Errorf("%s: %v/%v in one spec, %v/%v in the other; want the same", name, a.Address, a.HostAddress, b.Address, b.HostAddress)
		}
	}
	seen := map[netip.Prefix]string{}
	pool := netip.MustParsePrefix("10.77.0.0/16")
	for _, ns := range two.Namespaces {
		if !ns.AutoAddress {
			continue
		}
		link := ns.Address.Masked()
		if ns.Address.Bits() != 30 || !pool.Contains(ns.Address.Addr()) {
			t.Errorf("%s got %v; want a /30 from %v", ns.Name, ns.Address, pool)
		}
		if ns.HostAddress.Addr() != link.Addr().Next() || ns.Address.Addr() != link.Addr().Next().Next() {
			t.Errorf("%s: host %v, namespace %v; want the first and second usable addresses of %v", ns.Name, ns.HostAddress, ns.Address, link)
		}
		if link.Overlaps(netip.MustParsePrefix("10.77.1.0/24")) {
			t.Errorf("%s got %v, inside gamma's explicit subnet", ns.Name, link)
		}
		if other, dup := seen[link]; dup {
			t.Errorf("%s and %s share %v", ns.Name, other, link)
		}
		seen[link] = ns.Name
	}
}

func TestAssignAddressesFillsASmallPool(t *testing.T) {
	// A /28 holds exactly four /30s; four namespaces must all fit, whatever
	// their hashes, and a fifth must not.
	src := "subnet: 10.1.2.0/28\nnamespaces: {a: {}, b: {}, c: {}, d: {}}\n"
	s := mustParse(t, src)
	seen := map[netip.Prefix]bool{}
	for _, ns := range s.Namespaces {
		seen[ns.Address.Masked()] = true
	}
	if len(seen) != 4 {
		t.Errorf("four namespaces got %d distinct links", len(seen))
	}
	if _, err := Parse("demo.yaml", []byte("subnet: 10.1.2.0/28\nnamespaces: {a: {}, b: {}, c: {}, d: {}, e: {}}\n")); err == nil {
		t.Error("a fifth namespace fitted into a /28")
	}
}

func TestAssignAddressesWithAnotherPool(t *testing.T) {
	s := mustParse(t, "namespaces: {a: {}, b: {address: 10.50.0.2/24}}\n")
	pool := DefaultPools()[3]
	if err := AssignAddresses(s, pool, nil, nil); err != nil {
		t.Fatal(err)
	}
	if a := s.Namespace("a"); !pool.Contains(a.Address.Addr()) || s.Subnet != pool {
		t.Errorf("a = %v, subnet %v; want both from %v", a.Address, s.Subnet, pool)
	}
	if b := s.Namespace("b"); b.Address != netip.MustParsePrefix("10.50.0.2/24") {
		t.Errorf("explicit address moved to %v", b.Address)
	}
	if err := AssignAddresses(s, netip.MustParsePrefix("fd00::/64"), nil, nil); err == nil {
		t.Error("an IPv6 pool was accepted")
	}
}

func TestHostSide(t *testing.T) {
	for ns, want := range map[string]string{
		"10.203.1.2/24":   "10.203.1.1/24",
		"10.203.1.200/24": "10.203.1.1/24",
		"10.9.0.6/30":     "10.9.0.5/30",
	} {
		if got := HostSide(netip.MustParsePrefix(ns)); got.String() != want {
			t.Errorf("HostSide(%s) = %s, want %s", ns, got, want)
		}
	}
	if len(DefaultPools()) == 0 || DefaultPools()[0] != netip.MustParsePrefix("10.203.0.0/16") {
		t.Errorf("DefaultPools() = %v", DefaultPools())
	}
}

func TestHugePoolCoveredByAnAddress(t *testing.T) {
	// 2^29 slots, all inside one explicit prefix: must answer at once, not
	// after probing every slot.
	_, err := Parse("demo.yaml", []byte("subnet: 128.0.0.0/1\nnamespaces: {a: {}, b: {address: 128.0.0.2/1}}\n"))
	if err == nil || !strings.Contains(err.Error(), "no room left") {
		t.Errorf("Parse: %v; want no room left", err)
	}
	s := mustParse(t, "subnet: 10.0.0.0/8\nnamespaces: {a: {}, b: {address: 10.0.0.2/9}, c: {address: 10.128.0.2/10}}\n")
	if a := s.Namespace("a").Address; !netip.MustParsePrefix("10.192.0.0/10").Contains(a.Addr()) {
		t.Errorf("a got %v; want the only free quarter, 10.192.0.0/10", a)
	}
}

func TestAssignAddressesKeepsPreviousAndAvoidsReserved(t *testing.T) {
	s := mustParse(t, "subnet: 10.60.0.0/24\nnamespaces: {a: {}, b: {}, c: {}}\n")
	first := map[string]netip.Prefix{}
	for _, ns := range s.Namespaces {
		first[ns.Name] = ns.Address
	}
	// Reserve a's subnet (another project took it) and ask again, with the
	// previous addresses: b and c keep theirs, a moves.
	reserved := []netip.Prefix{first["a"].Masked()}
	if err := AssignAddresses(s, netip.MustParsePrefix("10.60.0.0/24"), reserved, first); err != nil {
		t.Fatal(err)
	}
	if s.Namespace("b").Address != first["b"] || s.Namespace("c").Address != first["c"] {
		t.Errorf("b or c moved: %v %v, were %v %v", s.Namespace("b").Address, s.Namespace("c").Address, first["b"], first["c"])
	}
	if a := s.Namespace("a").Address; a == first["a"] || a.Masked().Overlaps(reserved[0]) {
		t.Errorf("a got %v, inside the reserved %v", a, reserved[0])
	}
	// A previous address outside the pool is not kept.
	prev := map[string]netip.Prefix{"a": netip.MustParsePrefix("10.99.0.2/30")}
	if err := AssignAddresses(s, netip.MustParsePrefix("10.60.0.0/24"), nil, prev); err != nil || s.Namespace("a").Address == prev["a"] {
		t.Errorf("a kept %v from outside the pool (%v)", s.Namespace("a").Address, err)
	}
}

func TestDefaultPool6(t *testing.T) {
	a, b, a1 := DefaultPool6("0123456789abcdef", 0), DefaultPool6("fedcba9876543210", 0), DefaultPool6("0123456789abcdef", 1)
	ula := netip.MustParsePrefix("fd00::/8")
	for _, p := range []netip.Prefix{a, b, a1} {
		if p.Bits() != 48 || !ula.Contains(p.Addr()) || p.Masked() != p || checkPool6(p) != nil {
			t.Errorf("pool %v is not a ULA /48 (%v)", p, checkPool6(p))
		}
	}
	if a == b || a == a1 || a != DefaultPool6("0123456789abcdef", 0) {
		t.Errorf("pools %v %v %v: want one per machine and candidate, the same on every call", a, b, a1)
	}
}

func TestAssignAddresses6(t *testing.T) {
	pool := netip.MustParsePrefix("fd12:3456:789a::/48")
	spec := func() *Spec {
		s := &Spec{IPv6: true}
		for _, n := range []string{"web", "db", "cache"} {
			s.Namespaces = append(s.Namespaces, &Namespace{Name: n, AutoAddress6: true})
		}
		return s
	}
	s := spec()
	if err := AssignAddresses6(s, pool, nil, nil); err != nil {
		t.Fatal(err)
	}
	first := map[string]netip.Prefix{}
	for _, ns := range s.Namespaces {
		first[ns.Name] = ns.Address6
		if !pool.Contains(ns.Address6.Addr()) || ns.Address6.Bits() != 64 || HostSide(ns.Address6) != ns.HostAddress6 {
			t.Errorf("%s: %v host %v", ns.Name, ns.Address6, ns.HostAddress6)
		}
	}
	// The same on every run, whatever the order.
	s = spec()
	s.Namespaces[0], s.Namespaces[2] = s.Namespaces[2], s.Namespaces[0]
	if err := AssignAddresses6(s, pool, nil, nil); err != nil {
		t.Fatal(err)
	}
	for _, ns := range s.Namespaces {
		if ns.Address6 != first[ns.Name] {
			t.Errorf("%s moved from %v to %v", ns.Name, first[ns.Name], ns.Address6)
		}
	}
	// A reserved /56 holding web's /64 moves web out of it, and only web;
	// a previous address is kept.
	reserved := []netip.Prefix{netip.PrefixFrom(first["web"].Addr(), 56).Masked()}
	s = spec()
	prev := netip.MustParsePrefix("fd12:3456:789a:7::2/64")
	if err := AssignAddresses6(s, pool, reserved, map[string]netip.Prefix{"db": prev}); err != nil {
		t.Fatal(err)
	}
	for _, ns := range s.Namespaces {
		switch {
		case ns.Name == "web" && (ns.Address6.Overlaps(reserved[0]) || !pool.Contains(ns.Address6.Addr())):
			t.Errorf("web got %v, in reserved %v", ns.Address6, reserved[0])
		case ns.Name == "db" && ns.Address6 != prev:
			t.Errorf("db got %v, want its previous %v", ns.Address6, prev)
		case ns.Name == "cache" && ns.Address6 != first["cache"] && !first["cache"].Overlaps(reserved[0]):
			t.Errorf("cache moved to %v", ns.Address6)
		}
	}
	// A /64 pool holds one namespace.
	s = spec()
	if err := AssignAddresses6(s, netip.MustParsePrefix("fd12::/64"), nil, nil); err == nil || !strings.Contains(err.Error(), "no room left") {
		t.Errorf("three namespaces in a /64: %v", err)
	}
}
