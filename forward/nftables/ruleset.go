package nftables

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/specs"
	"sigs.k8s.io/knftables"
)

// Backend is the name records and status give this backend.
const Backend forward.Backend = "nftables"

// The table: family inet, so that IPv6 needs no second one.
const (
	Family       = knftables.InetFamily
	Table        = "nsrun"
	tableComment = "nsrun: published ports of network namespaces"
)

// nsrun's chains, sets and maps in its table.
const (
	chainPrerouting  = "nat-prerouting"  // nat, prerouting: published ports at the host's addresses
	chainOutput      = "nat-output"      // nat, output: published ports from the host itself
	chainPublish     = "publish"         // the verdict maps of ports published on IPv4
	chainPublish6    = "publish6"        // the verdict maps of ports published on IPv6
	chainPostrouting = "nat-postrouting" // nat, postrouting: sources the namespaces can answer
	chainForward     = "filter-forward"  // filter, forward: what reaches and leaves the namespaces
	chainInput       = "filter-input"    // filter, input: the route_localnet guard

	setLinks    = "links"               // the host side of every namespace's veth
	setIsolated = "no-egress"           // the links of namespaces with egress: false
	setEgress   = "egress"              // the subnets of namespaces with egress
	setHairpin  = "hairpin"             // each namespace's address twice: to its own published port
	mapReach    = "reach"               // each namespace's link: the chain of the networks it reaches
	mapAddr     = "publish-addr"        // ports published on one host address
	mapAny      = "publish-any"         // ports published on every host address
	mapAddrs    = "publish-addr-ranges" // port ranges published on one host address
	mapAnys     = "publish-any-ranges"  // port ranges published on every host address

	// The IPv6 twins.
	setEgress6  = "egress6"
	setHairpin6 = "hairpin6"
	mapAddr6    = "publish6-addr"
	mapAny6     = "publish6-any"
	mapAddrs6   = "publish6-addr-ranges"
	mapAnys6    = "publish6-any-ranges"
)

// publicationPrefix starts the name of every publication chain,
// reachPrefix that of every chain of the networks a namespace reaches,
// networkPrefix that of every network's set of links.
const (
	publicationPrefix = "port/"
	reachPrefix       = "reach/"
	networkPrefix     = "net/"
)

// chainDef is one of nsrun's fixed chains and its rules.
type chainDef struct {
	name     string
	hook     knftables.BaseChainHook // "" for a regular chain
	kind     knftables.BaseChainType
	priority knftables.BaseChainPriority
	rules    []rule
}

// rule is one rule: its text as nsrun writes it, and its comment, which
// identifies it.
type rule struct {
	text, comment string
}

// setDef is one of nsrun's sets or maps.
type setDef struct {
	name     string
	typ      string
	isMap    bool
	interval bool
	comment  string
}

// sets are nsrun's sets and maps.
var sets = []setDef{
	{name: setLinks, typ: "ifname", comment: "nsrun: the host side of each namespace's link"},
	{name: setIsolated, typ: "ifname", comment: "nsrun: the links of namespaces without egress"},
	{name: setEgress, typ: "ipv4_addr", interval: true, comment: "nsrun: the subnets of namespaces with egress"},
	{name: setHairpin, typ: "ipv4_addr . ipv4_addr", comment: "nsrun: each namespace's address, to and from itself"},
	{name: mapReach, typ: "ifname : verdict", isMap: true, comment: "nsrun: each namespace's link, to the chain of the networks it is on"},
	// Single ports in hash maps; ranges in interval maps, looked up only
	// when no single port matched (an interval lookup costs more).
	{name: mapAddr, typ: "ipv4_addr . inet_proto . inet_service : verdict", isMap: true, comment: "nsrun: ports published on one host address"},
	{name: mapAny, typ: "inet_proto . inet_service : verdict", isMap: true, comment: "nsrun: ports published on every host address"},
	{name: mapAddrs, typ: "ipv4_addr . inet_proto . inet_service : verdict", isMap: true, interval: true, comment: "nsrun: port ranges published on one host address"},
	{name: mapAnys, typ: "inet_proto . inet_service : verdict", isMap: true, interval: true, comment: "nsrun: port ranges published on every host address"},
	{name: setEgress6, typ: "ipv6_addr", interval: true, comment: "nsrun: the IPv6 subnets of namespaces with egress"},
	{name: setHairpin6, typ: "ipv6_addr . ipv6_addr", comment: "nsrun: each namespace's IPv6 address, to and from itself"},
	{name: mapAddr6, typ: "ipv6_addr . inet_proto . inet_service : verdict", isMap: true, comment: "nsrun: ports published on one host IPv6 address"},
	{name: mapAny6, typ: "inet_proto . inet_service : verdict", isMap: true, comment: "nsrun: ports published on every host IPv6 address"},
	{name: mapAddrs6, typ: "ipv6_addr . inet_proto . inet_service : verdict", isMap: true, interval: true, comment: "nsrun: port ranges published on one host IPv6 address"},
	{name: mapAnys6, typ: "inet_proto . inet_service : verdict", isMap: true, interval: true, comment: "nsrun: port ranges published on every host IPv6 address"},
}

// noDNAT6 are the IPv6 sources and destinations never DNAT'd: link-local
// ones (an address of one link only), and ::1, which the kernel does not
// let leave the loopback (ip6_rcv_core); [::1] is the loopback shortcut's.
const noDNAT6 = "ip6 saddr != fe80::/10 ip6 daddr != fe80::/10 ip6 daddr != ::1 "

// Comments of the guard, which tests and people look for.
const guardComment = "nsrun: drop non-loopback traffic to 127.0.0.0/8 (CVE-2020-8558)"

// chains are nsrun's fixed chains, the same whatever it publishes. Only
// a connection's first packet meets the nat chains; in filter-forward,
// the traffic of accepted connections is accepted by the first two rules,
// so the cost of a packet does not depend on the number of namespaces.
// An accept here ends only this table's chain: a drop in another table,
// or in an iptables backend, still drops (see forward.Placement).
var chains = []chainDef{
	{name: chainPrerouting, hook: knftables.PreroutingHook, kind: knftables.NATType, priority: knftables.DNATPriority, rules: []rule{
		// fib daddr type local: only what is addressed to this host, never
		// traffic passing through to other machines; 127.0.0.0/8 is left
		// alone, so a neighbour routing 127.0.0.1 via this host reaches nothing.
		{"ip daddr != 127.0.0.0/8 fib daddr type local jump " + chainPublish, "nsrun: published ports at the host's addresses"},
		{noDNAT6 + "fib daddr type local jump " + chainPublish6, "nsrun: published ports at the host's IPv6 addresses"},
	}},
	{name: chainOutput, hook: knftables.OutputHook, kind: knftables.NATType, priority: "-100", rules: []rule{
		{"meta nfproto ipv4 fib daddr type local jump " + chainPublish, "nsrun: published ports, from the host itself over IPv4"},
		{noDNAT6 + "fib daddr type local jump " + chainPublish6, "nsrun: published ports, from the host itself over IPv6"},
	}},
	{name: chainPublish, rules: []rule{
		{"ip daddr . meta l4proto . th dport vmap @" + mapAddr, "nsrun: ports published on one host address"},
		{"meta l4proto . th dport vmap @" + mapAny, "nsrun: ports published on every host address"},
		{"ip daddr . meta l4proto . th dport vmap @" + mapAddrs, "nsrun: port ranges published on one host address"},
		{"meta l4proto . th dport vmap @" + mapAnys, "nsrun: port ranges published on every host address"},
	}},
	{name: chainPublish6, rules: []rule{
		{"ip6 daddr . meta l4proto . th dport vmap @" + mapAddr6, "nsrun: ports published on one host IPv6 address"},
		{"meta l4proto . th dport vmap @" + mapAny6, "nsrun: ports published on every host IPv6 address"},
		{"ip6 daddr . meta l4proto . th dport vmap @" + mapAddrs6, "nsrun: port ranges published on one host IPv6 address"},
		{"meta l4proto . th dport vmap @" + mapAnys6, "nsrun: port ranges published on every host IPv6 address"},
	}},
	{name: chainPostrouting, hook: knftables.PostroutingHook, kind: knftables.NATType, priority: knftables.SNATPriority, rules: []rule{
		{"ip saddr . ip daddr @" + setHairpin + " masquerade", "nsrun: a namespace to its own published port"},
		{"ip saddr 127.0.0.0/8 oifname @" + setLinks + " masquerade", "nsrun: from the loopback of the host"},
		{"ip saddr @" + setEgress + " masquerade", "nsrun: egress of the namespaces"},
		{"ip6 saddr . ip6 daddr @" + setHairpin6 + " masquerade", "nsrun: a namespace to its own published port over IPv6"},
		{"ip6 saddr @" + setEgress6 + " masquerade", "nsrun: IPv6 egress of the namespaces"},
	}},
	{name: chainForward, hook: knftables.ForwardHook, kind: knftables.FilterType, priority: knftables.FilterPriority, rules: []rule{
		{"ct state established,related oifname @" + setLinks + " accept", "nsrun: traffic of accepted connections, to a namespace"},
		{"ct state established,related iifname @" + setLinks + " accept", "nsrun: traffic of accepted connections, from a namespace"},
		{"oifname @" + setLinks + " ct status dnat accept", "nsrun: a published port"},
		// A neighbour routing nsrun's subnets via this host reaches only
		// what is published (as Docker 28 drops "direct routing").
		{"oifname @" + setLinks + " iifname != @" + setLinks + " drop", "nsrun: only published ports are reachable from other machines"},
		// From one namespace to another: through the chain of the networks
		// the first is on (one map lookup, then one set lookup per network),
		// which accepts only links on one of them.
		{"oifname @" + setLinks + " iifname vmap @" + mapReach, "nsrun: namespaces on a shared network"},
		{"oifname @" + setLinks + " drop", "nsrun: namespaces on no shared network"},
		{"iifname @" + setIsolated + " oifname != @" + setLinks + " drop", "nsrun: a namespace without egress reaches only namespaces"},
		{"iifname @" + setLinks + " accept", "nsrun: a namespace's own connections"},
	}},
	{name: chainInput, hook: knftables.InputHook, kind: knftables.FilterType, priority: knftables.FilterPriority, rules: []rule{
		// route_localnet on nsrun's links would let a namespace reach
		// services bound to the host's loopback by routing 127.0.0.1 via
		// the host; drop such packets unless they belong to nsrun's own
		// DNAT'd connections (as kube-proxy does). "ct status & dnat == 0":
		// "ct status != dnat" would compare the whole status word.
		{"ip saddr != 127.0.0.0/8 ip daddr 127.0.0.0/8 ct state != { established, related } ct status & dnat == 0 drop", guardComment},
	}},
}

// element is one element of a set or map, as nsrun writes it and as nft
// prints it: ports "6000" or "7000-7010", subnets "10.0.0.0/30",
// verdicts "goto CHAIN".
type element struct {
	set        string
	key, value []string
	comment    string
}

// id identifies an element within its set.
func (e element) id() string { return e.set + " " + strings.Join(e.key, " . ") }

// String shows an element as nft writes it.
func (e element) String() string {
	s := strings.Join(e.key, " . ")
	if len(e.value) > 0 {
		s += " : " + strings.Join(e.value, " . ")
	}
	return s
}

// publication is a chain of a project's own: that of one published port
// (one rule), or of the networks some of its namespaces are on (one rule
// per network).
type publication struct {
	chain string
	rules []rule
	// counter is the named counter of a published port's chain, of the
	// same name, which counts its connections; "" for a reach chain. It
	// outlives the rule: a chain written again keeps counting on.
	counter string
}

// Comment is the comment on each element of a project's namespace.
func Comment(project, ns string) string { return "nsrun " + project + "/" + ns }

// projectOf reads the project from an element's comment; "" when the
// comment is not nsrun's.
func projectOf(comment string) string {
	rest, ok := strings.CutPrefix(comment, "nsrun ")
	if !ok {
		return ""
	}
	project, _, ok := strings.Cut(rest, "/")
	if !ok {
		return ""
	}
	return project
}

// chainPrefixes start the names of a project's own chains.
func chainPrefixes(project string) []string {
	return []string{publicationPrefix + project + "/", reachPrefix + project + "/"}
}

// isProjectChain reports whether a chain is one of the project's own.
func isProjectChain(project, chain string) bool {
	return slices.ContainsFunc(chainPrefixes(project), func(prefix string) bool { return strings.HasPrefix(chain, prefix) })
}

// render returns what a project needs in the table: its elements, and
// its publication and reach chains.
func render(p forward.Project) ([]element, []publication) {
	var elems []element
	var pubs []publication
	reaches := map[string]bool{}
	for _, ns := range p.Namespaces {
		c := Comment(p.Name, ns.Name)
		addr := ns.Address.Addr().String()
		elems = append(elems,
			element{set: setLinks, key: []string{ns.Link}, comment: c},
			element{set: setHairpin, key: []string{addr, addr}, comment: c})
		reach := reachOf(p.Name, ns.Networks)
		elems = append(elems, element{set: mapReach, key: []string{ns.Link}, value: []string{reach.verdict()}, comment: c})
		if reach.chain != "" && !reaches[reach.chain] {
			reaches[reach.chain] = true
			pubs = append(pubs, reach)
		}
		for _, key := range ns.Networks {
			elems = append(elems, element{set: NetworkSet(key), key: []string{ns.Link}, comment: c})
		}
		if ns.Egress {
			elems = append(elems, element{set: setEgress, key: []string{ns.Address.Masked().String()}, comment: c})
		} else {
			elems = append(elems, element{set: setIsolated, key: []string{ns.Link}, comment: c})
		}
		addr6 := ns.Address6.Addr().String()
		if ns.Address6.IsValid() {
			elems = append(elems, element{set: setHairpin6, key: []string{addr6, addr6}, comment: c})
			if ns.Egress {
				elems = append(elems, element{set: setEgress6, key: []string{ns.Address6.Masked().String()}, comment: c})
			}
		}
		for _, port := range ns.Ports {
			if port.Is6() && !ns.Address6.IsValid() || port.HostIP == netip.IPv6Loopback() {
				continue // [::1] is the loopback shortcut's alone (see noDNAT6)
			}
			key := []string{string(port.Protocol), portsText(port.Published)}
			to := addr
			if port.Is6() {
				to = addr6
			}
			if !port.HostIP.IsUnspecified() {
				key = append([]string{port.HostIP.String()}, key...)
			}
			pub := publicationOf(p.Name, ns.Name, to, port)
			pubs = append(pubs, pub)
			publish, _ := mapsOf(port)
			elems = append(elems, element{set: publish, key: key, value: []string{"goto " + pub.chain}, comment: c})
		}
	}
	return elems, pubs
}

// mapsOf returns the maps of a published port: the verdict map that
// sends it to its chain, and the map of its counters, named alike:
// publish[6]-addr|any[-ranges] and count[6]-...
func mapsOf(port specs.Port) (publish, count string) {
	suffix := "-any"
	if !port.HostIP.IsUnspecified() {
		suffix = "-addr"
	}
	if port.Published.Len() > 1 {
		suffix += "-ranges"
	}
	if port.Is6() {
		suffix = "6" + suffix
	}
	return "publish" + suffix, "count" + suffix
}

// publicationOf renders the chain of one published port:
// port/PROJECT/NS[/ip6][/HOSTIP]/PROTO/PORTS, which DNATs to the
// namespace's address addr (an IPv6 host address is written with dots
// for colons, which chain names cannot hold).
func publicationOf(project, ns, addr string, port specs.Port) publication {
	name := publicationPrefix + project + "/" + ns + "/"
	family, to := "ip", addr
	if port.Is6() {
		name += "ip6/"
		family, to = "ip6", "["+addr+"]"
	}
	if !port.HostIP.IsUnspecified() {
		name += strings.ReplaceAll(port.HostIP.String(), ":", ".") + "/"
	}
	name += string(port.Protocol) + "/" + portsText(port.Published)
	proto := string(port.Protocol)
	var text string
	switch {
	case port.Target.Len() == 1:
		text = fmt.Sprintf("meta l4proto %s dnat %s to %s:%d", proto, family, to, port.Target.First)
	case port.Target == port.Published:
		text = fmt.Sprintf("dnat %s to %s", family, addr) // each port to the same port
	default: // each port to the one at the same offset in the target range
		var m []string
		for i := 0; i < port.Published.Len(); i++ {
			m = append(m, fmt.Sprintf("%d : %s . %d", int(port.Published.First)+i, addr, int(port.Target.First)+i))
		}
		text = fmt.Sprintf("meta l4proto %s dnat %s addr . port to th dport map { %s }", proto, family, strings.Join(m, ", "))
	}
	// The named counter counts the connections: only a connection's first
	// packet meets a nat chain. The comment says where it goes, so a
	// changed target is a changed rule, and that it counts, so that a rule
	// of an nsrun from before counters is one too.
	return publication{chain: name, counter: name,
		rules: []rule{{"counter name " + name + " " + text, "nsrun -> " + to + ":" + portsText(port.Target) + ", counted"}}}
}

// NetworkSet names the set of the links on a network (its key, see
// specs.NetworkKey): net/PROJECT/NAME, or net/NAME for an external one,
// shared by the projects on it.
func NetworkSet(key string) string { return networkPrefix + key }

// reachOf renders the chain of the networks a namespace is on:
// reach/PROJECT/NAME[/NAME...], by their names in order, one rule per
// network that accepts its links. The namespaces of a project on the same
// networks share one. A namespace on no network has none.
func reachOf(project string, keys []string) publication {
	if len(keys) == 0 {
		return publication{}
	}
	sorted := slices.Clone(keys)
	slices.Sort(sorted)
	var names []string
	var rules []rule
	for _, key := range sorted {
		names = append(names, key[strings.LastIndex(key, "/")+1:])
		rules = append(rules, rule{"oifname @" + NetworkSet(key) + " accept", "nsrun: network " + key})
	}
	name := reachPrefix + project + "/" + strings.Join(names, "/")
	if len(name) > 200 { // nft's limit is 255
		sum := sha256.Sum256([]byte(strings.Join(sorted, " ")))
		name = reachPrefix + project + "/" + hex.EncodeToString(sum[:8])
	}
	return publication{chain: name, rules: rules}
}

// verdict is what the reach map gives a namespace's link: a jump to the
// chain of its networks, back to filter-forward's drop when none accepts;
// on no network, the drop itself.
func (p publication) verdict() string {
	if p.chain == "" {
		return "drop"
	}
	return "jump " + p.chain
}

func portsText(r specs.PortRange) string {
	if r.Len() == 1 {
		return fmt.Sprint(r.First)
	}
	return fmt.Sprintf("%d-%d", r.First, r.Last)
}
