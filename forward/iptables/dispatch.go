package iptables

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/nsrun/nsrun/specs"
)

// fanout is the most rules a packet walks in one chain of the DNAT
// dispatch tree.
const fanout = 16

// dnatEntry is a DNAT rule with the port range it matches, for sorting and
// grouping.
type dnatEntry struct {
	proto       specs.Protocol
	first, last uint16
	args        []string // match and target, without the chain
}

// dispatch places a project's rules of one kind in their chain root: its
// DNAT rules in its DNAT chain, its counting rules in its count chain;
// past fanout rules, in a tree of sub-chains subPrefix<n>, each jumped to
// by the port range it covers (as match renders it). A new connection
// then walks about fanout*log16(rules) rules instead of all of them, so
// the last of 1,000 published ports is reached as fast as the first.
func dispatch(table, root, subPrefix, project string, entries []dnatEntry, match func(specs.Protocol, uint16, uint16) []string) []Rule {
	sort.SliceStable(entries, func(i, j int) bool {
		if entries[i].proto != entries[j].proto {
			return entries[i].proto < entries[j].proto
		}
		return entries[i].first < entries[j].first
	})
	var rules []Rule
	next := 1
	level := entries
	for len(level) > fanout {
		var parents []dnatEntry
		for _, group := range groups(level) {
			sub := subPrefix + strconv.Itoa(next)
			next++
			for _, e := range group {
				rules = append(rules, Rule{table, sub, e.args})
			}
			lo, hi := group[0].first, group[0].last
			for _, e := range group {
				hi = max(hi, e.last)
			}
			parents = append(parents, dnatEntry{proto: group[0].proto, first: lo, last: hi,
				args: cat(match(group[0].proto, lo, hi), comment(projectComment(project)), []string{"-j", sub})})
		}
		level = parents
	}
	for _, e := range level {
		rules = append(rules, Rule{table, root, e.args})
	}
	return rules
}

// groups splits sorted entries into runs of at most fanout, never mixing
// protocols in a run.
func groups(entries []dnatEntry) [][]dnatEntry {
	var out [][]dnatEntry
	start := 0
	for i := 1; i <= len(entries); i++ {
		if i == len(entries) || i-start == fanout || entries[i].proto != entries[start].proto {
			out = append(out, entries[start:i])
			start = i
		}
	}
	return out
}

// portMatch matches the packets to a port range.
func portMatch(proto specs.Protocol, first, last uint16) []string {
	return []string{"-p", string(proto), "-m", string(proto), "--dport", portsArg(first, last)}
}

// countPortMatch matches the packets of connections to a port range,
// either way.
func countPortMatch(proto specs.Protocol, first, last uint16) []string {
	return []string{"-p", string(proto), "-m", "conntrack", "--ctorigdstport", portsArg(first, last)}
}

func portsArg(first, last uint16) string {
	if last != first {
		return fmt.Sprintf("%d:%d", first, last)
	}
	return fmt.Sprint(first)
}

// dnatSubPrefix and countSubPrefix start the names of the sub-chains of
// the project's two trees: NSR-<project>-D<n> and NSR-<project>-C<n>.
func dnatSubPrefix(ch Chains) string  { return strings.TrimSuffix(ch.DNAT, "NAT") }
func countSubPrefix(ch Chains) string { return strings.TrimSuffix(ch.Count, "NT") }

// isSubChain reports whether chain is one of the project's sub-chains, of
// either tree.
func isSubChain(ch Chains, chain string) bool {
	return isSubChainOf(dnatSubPrefix(ch), chain) || isSubChainOf(countSubPrefix(ch), chain)
}

func isSubChainOf(prefix, chain string) bool {
	n, ok := strings.CutPrefix(chain, prefix)
	if !ok || n == "" {
		return false
	}
	_, err := strconv.Atoi(n)
	return err == nil
}
