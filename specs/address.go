package specs

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"github.com/nsrun/nsrun/internal/overlap"
	"hash/fnv"
	"net/netip"
	"sort"
)

// linkBits is the prefix length of each automatic link subnet: a /30 holds
// the host side (first usable address) and the namespace side (the next).
const linkBits = 30

// DefaultPools returns the pools tried, in order, for automatic addresses
// when a spec sets no subnet. The spec layer assumes the first; the system
// layer moves on to the next when one overlaps a host route.
func DefaultPools() []netip.Prefix {
	pools := make([]netip.Prefix, 0, 8)
	for i := byte(0); i < 8; i++ {
		pools = append(pools, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 203 + i, 0, 0}), 16))
	}
	return pools
}

// HostSide returns the host-side address that pairs with a namespace-side
// address: the first usable address of its prefix, with the same length.
func HostSide(ns netip.Prefix) netip.Prefix {
	return netip.PrefixFrom(ns.Masked().Addr().Next(), ns.Bits())
}

// checkNamespaceAddress reports why p cannot be a namespace-side address.
func checkNamespaceAddress(p netip.Prefix) error {
	if !p.Addr().Is4() {
		return fmt.Errorf("address %s is not IPv4; IPv6 addresses go in address6 (with ipv6: true)", p)
	}
	if p.Bits() > linkBits {
		return fmt.Errorf("address %s leaves no room for the host side; use a prefix of /%d or shorter", p, linkBits)
	}
	network := p.Masked().Addr()
	switch p.Addr() {
	case network:
		return fmt.Errorf("address %s is the network address of %s; use e.g. %s", p, p.Masked(), netip.PrefixFrom(network.Next().Next(), p.Bits()))
	case lastAddr(p.Masked()):
		return fmt.Errorf("address %s is the broadcast address of %s; use another", p, p.Masked())
	case network.Next():
		return fmt.Errorf("address %s is the host side's address (the first usable one of %s); use e.g. %s", p, p.Masked(), netip.PrefixFrom(network.Next().Next(), p.Bits()))
	}
	if !p.Addr().IsPrivate() && !p.Addr().IsGlobalUnicast() {
		return fmt.Errorf("address %s is not a unicast address; use a private range such as 10.203.1.2/24", p)
	}
	return nil
}

// checkPool reports why p cannot be the pool of automatic addresses.
func checkPool(p netip.Prefix) error {
	if !p.Addr().Is4() {
		return fmt.Errorf("subnet %s is not IPv4; IPv6 addresses go in subnet6 (with ipv6: true)", p)
	}
	if p.Bits() > linkBits {
		return fmt.Errorf("subnet %s is too small; use a prefix of /%d or shorter", p, linkBits)
	}
	if p.Addr() != p.Masked().Addr() {
		return fmt.Errorf("subnet %s has host bits set; write %s", p, p.Masked())
	}
	if !p.Addr().IsPrivate() && !p.Addr().IsGlobalUnicast() {
		return fmt.Errorf("subnet %s is not a unicast range; use a private range such as 10.203.0.0/16", p)
	}
	return nil
}

// AssignAddresses gives every namespace without an address of its own a
// /30 link subnet from pool, avoiding the reserved prefixes (other
// projects' links, say). A namespace keeps its previous subnet when that is
// still free; otherwise its subnet depends only on its name and on what is
// taken, not on the order of the spec, so the same spec gets the same
// addresses on every run and adding a namespace rarely moves another.
func AssignAddresses(s *Spec, pool netip.Prefix, reserved []netip.Prefix, previous map[string]netip.Prefix) error {
	if err := checkPool(pool); err != nil {
		return err
	}
	taken := overlap.New(reserved...)
	var auto []*Namespace
	for _, ns := range s.Namespaces {
		if ns.AutoAddress {
			auto = append(auto, ns)
		} else {
			taken.Add(ns.Address.Masked())
		}
	}
	sort.Slice(auto, func(i, j int) bool { return auto[i].Name < auto[j].Name })
	var rest []*Namespace
	for _, ns := range auto { // previous subnets first, so none is taken by a newcomer
		prev, ok := previous[ns.Name]
		link := prev.Masked()
		if ok && prev.Bits() == linkBits && pool.Contains(link.Addr()) && len(taken.Of(link)) == 0 {
			setLink(ns, link)
			taken.Add(link)
			continue
		}
		rest = append(rest, ns)
	}
	slots := uint32(1) << (linkBits - pool.Bits())
	base := addrToUint32(pool.Addr())
	for _, ns := range rest {
		link, ok := freeSlot(base, slots, nameHash(ns.Name)%slots, taken)
		if !ok {
			return fmt.Errorf("subnet %s has no room left for namespace %q", pool, ns.Name)
		}
		taken.Add(link)
		setLink(ns, link)
	}
	s.Subnet = pool
	return nil
}

// setLink gives ns the namespace side of a /30 link subnet.
func setLink(ns *Namespace, link netip.Prefix) {
	ns.Address = netip.PrefixFrom(link.Addr().Next().Next(), linkBits)
	ns.HostAddress = HostSide(ns.Address)
}

// freeSlot probes the /30 slots of a pool from start for one that overlaps
// nothing taken. A taken prefix larger than a slot is skipped in one step,
// so a huge pool with a large taken prefix costs no more than a small one.
func freeSlot(base, slots, start uint32, taken *overlap.Index) (netip.Prefix, bool) {
	slot := start
	for probed := uint32(0); probed < slots; {
		addr := base + slot<<(32-linkBits)
		link := netip.PrefixFrom(addrFromUint32(addr), linkBits)
		q, hit := taken.First(link)
		if !hit {
			return link, true
		}
		skip := uint32(1)
		if q.Bits() < linkBits {
			skip = (addrToUint32(lastAddr(q))-addr)>>(32-linkBits) + 1
		}
		skip = min(skip, slots-slot)
		probed += skip
		slot = (slot + skip) % slots
	}
	return netip.Prefix{}, false
}

func addrFromUint32(v uint32) netip.Addr {
	var a [4]byte
	binary.BigEndian.PutUint32(a[:], v)
	return netip.AddrFrom4(a)
}

func addrToUint32(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

func nameHash(name string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(name))
	return h.Sum32()
}

func lastAddr(p netip.Prefix) netip.Addr {
	return addrFromUint32(addrToUint32(p.Masked().Addr()) | (1<<(32-p.Bits()) - 1))
}

// link6Bits is the prefix length of each automatic IPv6 link subnet: a
// /64 per namespace, the host side ::1 of it, the namespace ::2.
const link6Bits = 64

// pool6Bits is the length of the default IPv6 pools: RFC 4193's /48.
const pool6Bits = 48

// DefaultPool6 returns the n-th candidate for the default pool of
// automatic IPv6 addresses of a machine: a unique local /48, fd00::/8 and
// a 40-bit global ID taken from a hash of the machine's id
// (/etc/machine-id), so that it is the same on every run and differs
// between machines (RFC 4193). The system layer takes the first that
// overlaps no host route.
func DefaultPool6(machineID string, n int) netip.Prefix {
	sum := sha256.Sum256([]byte(fmt.Sprintf("nsrun %s %d", machineID, n)))
	var a [16]byte
	a[0] = 0xfd
	copy(a[1:6], sum[:5])
	return netip.PrefixFrom(netip.AddrFrom16(a), pool6Bits)
}

// checkNamespaceAddress6 reports why p cannot be a namespace's IPv6 address.
func checkNamespaceAddress6(p netip.Prefix) error {
	a := p.Addr()
	switch {
	case !a.Is6() || a.Is4In6():
		return fmt.Errorf("address6 %s is not IPv6; write e.g. fd00:1:2:3::2/64 (the IPv4 address goes in address:)", p)
	case a.IsLinkLocalUnicast() || a.Zone() != "":
		return fmt.Errorf("address6 %s is link-local; use a ULA (fd00::/8) or global address", p)
	case !a.IsGlobalUnicast() && !a.IsPrivate():
		return fmt.Errorf("address6 %s is not a unicast address; use a ULA such as fd00:1:2:3::2/64", p)
	case p.Bits() > 126:
		return fmt.Errorf("address6 %s leaves no room for the host side; use a prefix of /126 or shorter, e.g. /64", p)
	}
	network := p.Masked().Addr()
	switch a {
	case network:
		return fmt.Errorf("address6 %s is the subnet-router address of %s; use e.g. %s", p, p.Masked(), netip.PrefixFrom(network.Next().Next(), p.Bits()))
	case network.Next():
		return fmt.Errorf("address6 %s is the host side's address (::1 of %s); use e.g. %s", p, p.Masked(), netip.PrefixFrom(network.Next().Next(), p.Bits()))
	}
	return nil
}

// checkPool6 reports why p cannot be the pool of automatic IPv6 addresses.
func checkPool6(p netip.Prefix) error {
	a := p.Addr()
	switch {
	case !a.Is6() || a.Is4In6():
		return fmt.Errorf("subnet6 %s is not IPv6; write e.g. fd12:3456:789a::/48", p)
	case p.Bits() > link6Bits:
		return fmt.Errorf("subnet6 %s is too small; each namespace takes a /%d, so use a prefix of /%d or shorter", p, link6Bits, link6Bits)
	case p.Bits() < 16:
		return fmt.Errorf("subnet6 %s is too large; use a /48 such as fd12:3456:789a::/48", p)
	case a != p.Masked().Addr():
		return fmt.Errorf("subnet6 %s has host bits set; write %s", p, p.Masked())
	case a.IsLinkLocalUnicast() || (!a.IsGlobalUnicast() && !a.IsPrivate()):
		return fmt.Errorf("subnet6 %s is not a unicast range; use a ULA such as fd12:3456:789a::/48", p)
	}
	return nil
}

// AssignAddresses6 is AssignAddresses for IPv6: every namespace without
// an address6 of its own gets a /64 of pool, chosen from a hash of its
// name, avoiding reserved and keeping its previous one while free.
func AssignAddresses6(s *Spec, pool netip.Prefix, reserved []netip.Prefix, previous map[string]netip.Prefix) error {
	if err := checkPool6(pool); err != nil {
		return err
	}
	taken := overlap.New(reserved...)
	var auto []*Namespace
	for _, ns := range s.Namespaces {
		if ns.AutoAddress6 {
			auto = append(auto, ns)
		} else if ns.Address6.IsValid() {
			taken.Add(ns.Address6.Masked())
		}
	}
	sort.Slice(auto, func(i, j int) bool { return auto[i].Name < auto[j].Name })
	var rest []*Namespace
	for _, ns := range auto {
		prev, ok := previous[ns.Name]
		link := prev.Masked()
		if ok && prev.Bits() == link6Bits && pool.Contains(link.Addr()) && len(taken.Of(link)) == 0 {
			setLink6(ns, link)
			taken.Add(link)
			continue
		}
		rest = append(rest, ns)
	}
	slots := uint64(1) << (link6Bits - pool.Bits()) // pool.Bits() >= 16
	base := binary.BigEndian.Uint64(pool.Addr().AsSlice()[:8])
	for _, ns := range rest {
		link, ok := freeSlot6(base, slots, uint64(nameHash(ns.Name))%slots, taken)
		if !ok {
			return fmt.Errorf("subnet6 %s has no room left for namespace %q", pool, ns.Name)
		}
		taken.Add(link)
		setLink6(ns, link)
	}
	s.Subnet6 = pool
	return nil
}

// setLink6 gives ns the namespace side (::2) of a /64.
func setLink6(ns *Namespace, link netip.Prefix) {
	ns.Address6 = netip.PrefixFrom(link.Addr().Next().Next(), link6Bits)
	ns.HostAddress6 = HostSide(ns.Address6)
}

// freeSlot6 probes the /64 slots of a pool from start for one that
// overlaps nothing taken, skipping a taken prefix larger than a slot in
// one step.
func freeSlot6(base, slots, start uint64, taken *overlap.Index) (netip.Prefix, bool) {
	slot := start
	for probed := uint64(0); probed < slots; {
		var a [16]byte
		binary.BigEndian.PutUint64(a[:8], base+slot)
		link := netip.PrefixFrom(netip.AddrFrom16(a), link6Bits)
		q, hit := taken.First(link)
		if !hit {
			return link, true
		}
		skip := uint64(1)
		if q.Bits() < link6Bits {
			skip = uint64(1) << (link6Bits - q.Bits()) // q is aligned, and holds this slot
			skip -= (base + slot) & (skip - 1)
		}
		skip = min(skip, slots-slot)
		probed += skip
		slot = (slot + skip) % slots
	}
	return netip.Prefix{}, false
}
