package iptables

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/specs"
)

// nsrun's shared chains, one of each per host and backend.
const (
	ChainDNAT    = "NSRUN-DNAT"        // nat: from PREROUTING and OUTPUT, for local destinations
	ChainPost    = "NSRUN-POSTROUTING" // nat: from POSTROUTING
	ChainForward = "NSRUN-FORWARD"     // filter: from FORWARD, first
	ChainIngress = "NSRUN-INGRESS"     // filter: from NSRUN-FORWARD: new connections to nsrun's links not DNAT'd
	ChainInput   = "NSRUN-INPUT"       // filter: from INPUT, first: the route_localnet guard
)

// linkPatterns match every host-side link nsrun makes (see specs' names).
var linkPatterns = []string{"nsr-+", "nsh-+"}

const loopback = "127.0.0.0/8"

// Family is the address family of one of a backend's two programs:
// iptables (IPv4) and ip6tables (IPv6), each with tables of its own.
type Family int

const (
	IPv4 Family = 4
	IPv6 Family = 6
)

// program is the family's program name for a backend: iptables-nft,
// ip6tables-nft, ...
func (f Family) program(b forward.Backend) string {
	if f == IPv6 {
		return "ip6" + strings.TrimPrefix(string(b), "ip")
	}
	return string(b)
}

// Rule is one iptables rule: its table, chain and match/target arguments,
// written the way iptables-save prints them.
type Rule struct {
	Table, Chain string
	Args         []string
}

// String renders the rule as an iptables-save line: -A CHAIN args...
func (r Rule) String() string {
	return "-A " + r.Chain + " " + joinArgs(r.Args)
}

// joinArgs quotes arguments with spaces the way iptables-save does.
func joinArgs(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, " \t\"'") {
			a = `"` + strings.ReplaceAll(a, `"`, `\"`) + `"`
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

// Chains are the names of one project's own chains.
type Chains struct {
	DNAT, Post, Forward string
}

// ProjectChains names a project's chains: NSR-<project>-DNAT and so on
// (and NSR-<project>-D<n> for the DNAT dispatch tree), within iptables' 28
// characters. Long project names are shortened with a hash in upper case,
// which no project name can contain.
func ProjectChains(project string) Chains {
	base := project
	if len(base) > 17 {
		sum := sha256.Sum256([]byte(project))
		base = project[:9] + strings.ToUpper(hex.EncodeToString(sum[:4]))
	}
	return Chains{DNAT: "NSR-" + base + "-DNAT", Post: "NSR-" + base + "-POST", Forward: "NSR-" + base + "-FWD"}
}

// NetworkChain names the filter chain of the links on a network (its key,
// see specs.NetworkKey): NSR-N-<hash>, in upper case, which no project's
// chain can be named. The projects on a network share its chain, each
// rule commented with the project and namespace it is for.
func NetworkChain(key string) string {
	sum := sha256.Sum256([]byte(key))
	return networkChainPrefix + strings.ToUpper(hex.EncodeToString(sum[:6]))
}

const networkChainPrefix = "NSR-N-"

func isNetworkChain(name string) bool { return strings.HasPrefix(name, networkChainPrefix) }

// Comment is the comment on every rule of a project's namespace.
func Comment(project, ns string) string { return "nsrun " + project + "/" + ns }

func projectComment(project string) string { return "nsrun " + project }

func comment(c string) []string { return []string{"-m", "comment", "--comment", c} }

// Base returns the jumps from the built-in chains into nsrun's shared
// chains, and the guard, in the order they are applied. Insert reports the
// jumps that go first in their built-in chain.
func Base() []BaseRule { return BaseFor(IPv4) }

// BaseFor is Base for a family. IPv6 DNATs neither link-local sources nor
// destinations (an address of one link only), nor ::1, which the kernel
// does not let leave the loopback (the loopback shortcut serves [::1]);
// it has no guard, having no route_localnet.
func BaseFor(f Family) []BaseRule {
	c := comment("nsrun")
	if f == IPv6 {
		return []BaseRule{
			{Rule: Rule{"nat", "PREROUTING", cat([]string{"!", "-s", linkLocal6, "!", "-d", linkLocal6, "-m", "addrtype", "--dst-type", "LOCAL"}, c, []string{"-j", ChainDNAT})}},
			{Rule: Rule{"nat", "OUTPUT", cat([]string{"!", "-s", linkLocal6, "!", "-d", "::1/128", "-m", "addrtype", "--dst-type", "LOCAL"}, c, []string{"-j", ChainDNAT})}},
			{Rule: Rule{"nat", "POSTROUTING", cat(c, []string{"-j", ChainPost})}},
			{Rule: Rule{"filter", "FORWARD", cat(c, []string{"-j", ChainForward})}, Insert: true},
		}
	}
	return []BaseRule{
		// DNAT only for local destinations, so forwarded traffic to other
		// addresses is never caught; PREROUTING leaves 127.0.0.0/8 alone,
		// so a neighbour routing 127.0.0.1 via this host reaches nothing.
		{Rule: Rule{"nat", "PREROUTING", cat([]string{"!", "-d", loopback, "-m", "addrtype", "--dst-type", "LOCAL"}, c, []string{"-j", ChainDNAT})}},
		{Rule: Rule{"nat", "OUTPUT", cat([]string{"-m", "addrtype", "--dst-type", "LOCAL"}, c, []string{"-j", ChainDNAT})}},
		{Rule: Rule{"nat", "POSTROUTING", cat(c, []string{"-j", ChainPost})}},
		{Rule: Rule{"filter", "FORWARD", cat(c, []string{"-j", ChainForward})}, Insert: true},
		{Rule: Rule{"filter", "INPUT", cat(c, []string{"-j", ChainInput})}, Insert: true},
	}
}

// BaseRule is a jump from a built-in chain.
type BaseRule struct {
	Rule
	Insert bool // first in the chain rather than last
}

// Guard is the only rule of NSRUN-INPUT. route_localnet on nsrun's links
// would let a namespace reach services bound to the host's loopback by
// routing 127.0.0.1 via the host (CVE-2020-8558); as kube-proxy does, drop
// such packets unless they belong to nsrun's own DNAT'd connections.
func Guard() Rule {
	return Rule{"filter", ChainInput, cat(
		[]string{"!", "-s", loopback, "-d", loopback, "-m", "conntrack", "!", "--ctstate", "RELATED,ESTABLISHED,DNAT"},
		comment("nsrun: drop non-loopback traffic to 127.0.0.0/8 (CVE-2020-8558)"),
		[]string{"-j", "DROP"})}
}

// ForwardHead is what NSRUN-FORWARD holds before the projects' jumps, the
// same few rules whatever the number of namespaces. Traffic of accepted
// connections, to and from any of nsrun's links, and new connections that
// a published port DNAT'd to one of them, are accepted here: what enters a
// namespace meets no rule of its own, and only the first packet of a
// namespace's own outgoing connection meets its namespace's rules, so the
// cost of a packet does not grow with the number of namespaces. Any other
// new connection to one of nsrun's links goes to NSRUN-INGRESS, which
// drops it unless it comes from one of nsrun's own links: a neighbour
// routing nsrun's subnets via this host reaches only what is published (as
// Docker 28 drops "direct routing").
func ForwardHead() []Rule {
	var out []Rule
	established := comment("nsrun: traffic of accepted connections")
	for _, l := range linkPatterns {
		out = append(out,
			Rule{"filter", ChainForward, cat([]string{"-o", l, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED"}, established, []string{"-j", "ACCEPT"})},
			Rule{"filter", ChainForward, cat([]string{"-i", l, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED"}, established, []string{"-j", "ACCEPT"})})
	}
	for _, l := range linkPatterns {
		out = append(out, Rule{"filter", ChainForward, cat([]string{"-o", l, "-m", "conntrack", "--ctstate", "DNAT"},
			comment("nsrun: a published port"), []string{"-j", "ACCEPT"})})
	}
	for _, l := range linkPatterns {
		out = append(out, Rule{"filter", ChainForward, cat([]string{"-o", l},
			comment("nsrun: new connections to a namespace not by a published port"), []string{"-j", ChainIngress})})
	}
	return out
}

// Ingress is what NSRUN-INGRESS holds: new connections from a namespace
// go on, to its project's chain, which lets through only those to
// namespaces on one of its networks; nothing else new reaches them
// unless published.
func Ingress() []Rule {
	var out []Rule
	for _, l := range linkPatterns {
		out = append(out, Rule{"filter", ChainIngress, cat([]string{"-i", l}, comment("nsrun: from a namespace"), []string{"-j", "RETURN"})})
	}
	return append(out, Rule{"filter", ChainIngress, cat(comment("nsrun: only published ports are reachable from other machines"), []string{"-j", "DROP"})})
}

// Jumps returns the rules that jump from the shared chains into the
// project's own chains: from NSRUN-DNAT, NSRUN-POSTROUTING and
// NSRUN-FORWARD, in that order.
func Jumps(project string) []Rule {
	ch, c := ProjectChains(project), comment(projectComment(project))
	return []Rule{
		{"nat", ChainDNAT, cat(c, []string{"-j", ch.DNAT})},
		{"nat", ChainPost, cat(c, []string{"-j", ch.Post})},
		{"filter", ChainForward, cat(c, []string{"-j", ch.Forward})},
	}
}

// Rules renders the contents of the project's own chains.
func Rules(p forward.Project) []Rule { return RulesFor(IPv4, p) }

// RulesFor renders the contents of the project's own chains in a
// family's tables: the ports published on that family, to the
// namespaces' addresses of that family.
func RulesFor(f Family, p forward.Project) []Rule {
	ch := ProjectChains(p.Name)
	var entries []dnatEntry
	var post, fwd []Rule
	var addrs []netip.Prefix
	for _, ns := range p.Namespaces {
		c := comment(Comment(p.Name, ns.Name))
		prefix, host := ns.Address, "/32"
		if f == IPv6 {
			prefix, host = ns.Address6, "/128"
		}
		if !prefix.IsValid() {
			continue // no IPv6 here
		}
		addrs = append(addrs, prefix)
		addr := prefix.Addr().String()
		entries = append(entries, nsDNATs(f, prefix, p.Name, ns)...)
		// A namespace reaching its own published port needs a source it can
		// answer (connections from the host's loopback get one in PostHead).
		post = append(post, Rule{"nat", ch.Post, cat([]string{"-s", addr + host, "-d", addr + host}, c, []string{"-j", "MASQUERADE"})})
		if ns.Egress {
			post = append(post, Rule{"nat", ch.Post, cat([]string{"-s", prefix.Masked().String(), "!", "-o", ns.Link}, c, []string{"-j", "MASQUERADE"})})
		}
		fwd = append(fwd, forwardRules(ch.Forward, ns, c)...)
		for _, key := range ns.Networks {
			fwd = append(fwd, Rule{"filter", NetworkChain(key), cat([]string{"-o", ns.Link}, c, []string{"-j", "ACCEPT"})})
		}
	}
	if cover := covering(addrs); cover.Bits() > 0 && len(post) > 0 {
		// Every rule here matches a namespace's source: a connection from
		// anywhere else (every one from outside) passes them all in one.
		post = append([]Rule{{"nat", ch.Post, cat([]string{"!", "-s", cover.String()}, comment(projectComment(p.Name)), []string{"-j", "RETURN"})}}, post...)
	}
	return cat(dispatch(ch, p.Name, entries), post, fwd)
}

// DNATRulesFor renders only the project's DNAT rules in a family's nat
// table, their dispatch tree with them: those whose counters count its
// connections.
func DNATRulesFor(f Family, p forward.Project) []Rule {
	var entries []dnatEntry
	for _, ns := range p.Namespaces {
		prefix := ns.Address
		if f == IPv6 {
			prefix = ns.Address6
		}
		if prefix.IsValid() {
			entries = append(entries, nsDNATs(f, prefix, p.Name, ns)...)
		}
	}
	return dispatch(ProjectChains(p.Name), p.Name, entries)
}

// nsDNATs are the DNAT rules of a namespace's ports of the family, to its
// address of the family (prefix).
func nsDNATs(f Family, prefix netip.Prefix, project string, ns forward.Namespace) []dnatEntry {
	var out []dnatEntry
	c := comment(Comment(project, ns.Name))
	for _, port := range ns.Ports {
		if port.Is6() != (f == IPv6) || port.HostIP == netip.IPv6Loopback() {
			continue // another family's, or [::1], the loopback shortcut's alone
		}
		out = append(out, dnatEntry{proto: port.Protocol, first: port.Published.First, last: port.Published.Last,
			args: cat(dnatMatch(port), c, []string{"-j", "DNAT", "--to-destination", dnatTarget(prefix.Addr(), port)})})
	}
	return out
}

// covering returns the smallest prefix that holds every one of the
// namespaces' subnets; /0 when there is none smaller.
func covering(addrs []netip.Prefix) netip.Prefix {
	var out netip.Prefix
	for _, a := range addrs {
		p := a.Masked()
		if !out.IsValid() {
			out = p
			continue
		}
		for !out.Overlaps(p) || out.Bits() > p.Bits() {
			out, _ = out.Addr().Prefix(out.Bits() - 1)
		}
	}
	return out
}

const linkLocal6 = "fe80::/10"

// PostHeadFor is PostHead for a family: IPv6 has none, since nothing from
// ::1 is DNAT'd.
func PostHeadFor(f Family) []Rule {
	if f == IPv6 {
		return nil
	}
	return PostHead()
}

// PostHead is what NSRUN-POSTROUTING holds before the projects' jumps:
// connections from the host's loopback (any 127.0.0.0/8 source) DNAT'd to
// a namespace need a source it can answer.
func PostHead() []Rule {
	var out []Rule
	for _, l := range linkPatterns {
		out = append(out, Rule{"nat", ChainPost, cat([]string{"-s", loopback, "-o", l}, comment("nsrun: from the loopback of the host"), []string{"-j", "MASQUERADE"})})
	}
	return out
}

// forwardRules decide the first packet of a namespace's own outgoing
// connections (the rest, and what comes in, the head of NSRUN-FORWARD
// accepts): to another namespace, the chain of each of its networks
// accepts it when that namespace is on the network, and it is dropped
// otherwise; beyond the host, it is accepted with egress and dropped
// without, so a DROP policy (as Docker sets) does not block it.
func forwardRules(chain string, ns forward.Namespace, c []string) []Rule {
	var out []Rule
	for _, key := range ns.Networks {
		out = append(out, Rule{"filter", chain, cat([]string{"-i", ns.Link}, c, []string{"-j", NetworkChain(key)})})
	}
	if !ns.Egress {
		return append(out, Rule{"filter", chain, cat([]string{"-i", ns.Link}, c, []string{"-j", "DROP"})})
	}
	for _, l := range linkPatterns {
		out = append(out, Rule{"filter", chain, cat([]string{"-i", ns.Link, "-o", l}, c, []string{"-j", "DROP"})})
	}
	return append(out, Rule{"filter", chain, cat([]string{"-i", ns.Link}, c, []string{"-j", "ACCEPT"})})
}

func dnatMatch(p specs.Port) []string {
	var m []string
	if !p.HostIP.IsUnspecified() {
		m = append(m, "-d", netip.PrefixFrom(p.HostIP, p.HostIP.BitLen()).String())
	}
	proto := string(p.Protocol)
	dport := fmt.Sprint(p.Published.First)
	if p.Published.Len() > 1 {
		dport = fmt.Sprintf("%d:%d", p.Published.First, p.Published.Last)
	}
	return append(m, "-p", proto, "-m", proto, "--dport", dport)
}

// dnatTarget maps a host port (range) onto the namespace; a range keeps
// each port's offset (ADDR:FIRST-LAST/BASE); IPv6 in brackets.
func dnatTarget(to netip.Addr, p specs.Port) string {
	addr := specs.HostIPText(to)
	if p.Target.Len() == 1 {
		return fmt.Sprintf("%s:%d", addr, p.Target.First)
	}
	return fmt.Sprintf("%s:%d-%d/%d", addr, p.Target.First, p.Target.Last, p.Published.First)
}

func cat[T any](parts ...[]T) []T {
	var out []T
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
