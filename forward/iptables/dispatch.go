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

// dispatch places a project's DNAT rules in its DNAT chain; past fanout
// rules, in a tree of sub-chains NSR-<project>-D<n>, each jumped to by the
// port range it covers. A new connection then walks about
// fanout*log16(rules) rules instead of all of them, so the last of 1,000
// published ports is reached as fast as the first.
func dispatch(ch Chains, project string, entries []dnatEntry) []Rule {
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
			sub := ch.DNAT[:len(ch.DNAT)-len("NAT")] + strconv.Itoa(next) // NSR-<project>-D<n>
			next++
			for _, e := range group {
				rules = append(rules, Rule{"nat", sub, e.args})
			}
			lo, hi := group[0].first, group[0].last
			for _, e := range group {
				hi = max(hi, e.last)
			}
			parents = append(parents, dnatEntry{proto: group[0].proto, first: lo, last: hi,
				args: cat(portMatch(group[0].proto, lo, hi), comment(projectComment(project)), []string{"-j", sub})})
		}
		level = parents
	}
	for _, e := range level {
		rules = append(rules, Rule{"nat", ch.DNAT, e.args})
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

func portMatch(proto specs.Protocol, first, last uint16) []string {
	dport := fmt.Sprint(first)
	if last != first {
		dport = fmt.Sprintf("%d:%d", first, last)
	}
	return []string{"-p", string(proto), "-m", string(proto), "--dport", dport}
}

// isSubChain reports whether chain is one of the project's DNAT sub-chains.
func isSubChain(ch Chains, chain string) bool {
	prefix := ch.DNAT[:len(ch.DNAT)-len("NAT")]
	n, ok := strings.CutPrefix(chain, prefix)
	if !ok || n == "" {
		return false
	}
	_, err := strconv.Atoi(n)
	return err == nil
}
