package iptables

import (
	"slices"
	"strings"

	"github.com/nsrun/nsrun/forward"

	gnft "github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// countsInProcess reads the counters of the projects' rules that count
// (see Counts) in iptables-nft's nat and filter tables of the family, in
// this process: one netlink dump per chain of their DNAT and counting
// trees (about 200 for 1,000 published ports), where iptables-nft-save
// -c prints the whole tables (46 ms for the nat table alone with 1,000
// ports, most of it the namespaces' masquerades). A chain's rules are
// matched to what nsrun renders for it by their order: iptables-nft keeps
// them as iptables-restore wrote them. ok is false when a chain holds
// other rules than those (drift, or rules iptables-nft wrote another
// way): the caller reads the counters with iptables-save then.
func countsInProcess(f Family, projects []forward.Project) (counts map[string]forward.Flow, ok bool, err error) {
	type chainKey struct{ table, chain string }
	byChain := map[chainKey][]Rule{}
	var chains []chainKey
	for _, p := range projects {
		for _, r := range RulesFor(f, p) {
			k := chainKey{r.Table, r.Chain}
			if _, seen := byChain[k]; !seen {
				chains = append(chains, k)
			}
			byChain[k] = append(byChain[k], r)
		}
	}
	conn, err := gnft.New(gnft.AsLasting())
	if err != nil {
		return nil, false, err
	}
	defer conn.CloseLasting()
	family := gnft.TableFamilyIPv4
	if f == IPv6 {
		family = gnft.TableFamilyIPv6
	}
	counts = map[string]forward.Flow{}
	for _, k := range chains {
		want := byChain[k]
		if !slices.ContainsFunc(want, func(r Rule) bool { return countingKind(r.Args) != notCounting }) {
			continue // the masquerades, the accepts: no counter wanted there
		}
		table := &gnft.Table{Name: k.table, Family: family}
		have, err := conn.GetRules(table, &gnft.Chain{Name: k.chain, Table: table})
		if err != nil || len(have) != len(want) {
			return nil, false, nil // missing, or other rules: iptables-save decides
		}
		for i, r := range want {
			kind := countingKind(r.Args)
			if kind == notCounting {
				continue
			}
			flow, found := ruleCounter(have[i].Exprs, kind)
			if !found {
				return nil, false, nil
			}
			counts[joinArgs(r.Args)] = flow
		}
	}
	return counts, true, nil
}

// The kinds of rules whose counters Counts reads.
type counting int

const (
	notCounting counting = iota
	dnatRule             // a port's DNAT rule: its connections
	wayRule              // one of a port's counting rules: one way of its traffic
)

func countingKind(args []string) counting {
	text := joinArgs(args)
	switch {
	case strings.Contains(text, " -j DNAT "):
		return dnatRule
	case strings.Contains(text, " --ctdir ") && strings.HasSuffix(text, " -j RETURN"):
		return wayRule
	}
	return notCounting
}

// ruleCounter returns a rule's counter, if the rule counts and is of the
// kind: it DNATs, or it RETURNs.
func ruleCounter(exprs []expr.Any, kind counting) (forward.Flow, bool) {
	var flow forward.Flow
	counted, is := false, false
	for _, e := range exprs {
		switch e := e.(type) {
		case *expr.Counter:
			flow, counted = forward.Flow{Packets: e.Packets, Bytes: e.Bytes}, true
		case *expr.NAT:
			is = is || kind == dnatRule && e.Type == expr.NATTypeDestNAT
		case *expr.Target:
			is = is || kind == dnatRule && e.Name == "DNAT" // an iptables-nft that keeps the target as xtables'
		case *expr.Verdict:
			is = is || kind == wayRule && e.Kind == expr.VerdictReturn
		}
	}
	return flow, counted && is
}
