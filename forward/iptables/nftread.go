package iptables

import (
	"errors"
	"maps"
	"runtime"
	"slices"
	"sync"

	"github.com/nsrun/nsrun/forward"

	gnft "github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// countsInProcess reads the counters of the projects' DNAT rules in
// iptables-nft's nat table of the family, in this process: one netlink
// dump per chain of their DNAT trees (about 65 for 1,000 published
// ports), over a connection per CPU (up to 4) at once, where iptables-nft-save -c prints the whole table (46 ms with
// 1,000 ports, most of it the namespaces' masquerades). A chain's rules
// are matched to what nsrun renders for it by their order: iptables-nft
// keeps them as iptables-restore wrote them. ok is false when a chain
// holds other rules than those (drift, or rules iptables-nft wrote
// another way): the caller reads the counters with iptables-save then.
func countsInProcess(f Family, projects []forward.Project) (counts map[string]uint64, ok bool, err error) {
	byChain := map[string][]Rule{}
	var chains []string
	for _, p := range projects {
		for _, r := range DNATRulesFor(f, p) {
			if _, seen := byChain[r.Chain]; !seen {
				chains = append(chains, r.Chain)
			}
			byChain[r.Chain] = append(byChain[r.Chain], r)
		}
	}
	family := gnft.TableFamilyIPv4
	if f == IPv6 {
		family = gnft.TableFamilyIPv6
	}
	table := &gnft.Table{Name: "nat", Family: family}
	// The dumps wait on the kernel: a few connections at once, each with
	// its share of the chains.
	workers := min(runtime.NumCPU(), 4)
	parts := make([]map[string]uint64, workers)
	oks := make([]bool, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			var mine []string
			for i := w; i < len(chains); i += workers {
				mine = append(mine, chains[i])
			}
			parts[w], oks[w], errs[w] = readCounters(table, mine, byChain)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, false, err
	}
	counts = map[string]uint64{}
	for w := range workers {
		if !oks[w] {
			return nil, false, nil
		}
		maps.Copy(counts, parts[w])
	}
	return counts, true, nil
}

// readCounters reads the DNAT rules' counters of the chains over one
// netlink connection: false when a chain is not what nsrun rendered.
func readCounters(table *gnft.Table, chains []string, byChain map[string][]Rule) (map[string]uint64, bool, error) {
	conn, err := gnft.New(gnft.AsLasting())
	if err != nil {
		return nil, false, err
	}
	defer conn.CloseLasting()
	counts := map[string]uint64{}
	for _, chain := range chains {
		want := byChain[chain]
		if !dnats(want) {
			continue // the project's masquerades: no counter wanted there
		}
		have, err := conn.GetRules(table, &gnft.Chain{Name: chain, Table: table})
		if err != nil || len(have) != len(want) {
			return nil, false, nil // missing, or other rules: iptables-save decides
		}
		for i, r := range want {
			if !isDNAT(r.Args) {
				continue
			}
			packets, found := dnatCounter(have[i].Exprs)
			if !found {
				return nil, false, nil
			}
			counts[joinArgs(r.Args)] = packets
		}
	}
	return counts, true, nil
}

func dnats(rules []Rule) bool {
	for _, r := range rules {
		if isDNAT(r.Args) {
			return true
		}
	}
	return false
}

func isDNAT(args []string) bool {
	i := slices.Index(args, "-j")
	return i >= 0 && i+1 < len(args) && args[i+1] == "DNAT"
}

// dnatCounter returns the packets of a rule's counter, if the rule counts
// and DNATs.
func dnatCounter(exprs []expr.Any) (uint64, bool) {
	var packets uint64
	counted, nat := false, false
	for _, e := range exprs {
		switch e := e.(type) {
		case *expr.Counter:
			packets, counted = e.Packets, true
		case *expr.NAT:
			nat = e.Type == expr.NATTypeDestNAT
		case *expr.Target:
			nat = nat || e.Name == "DNAT" // an iptables-nft that keeps the target as xtables'
		}
	}
	return packets, counted && nat
}
