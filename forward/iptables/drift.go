package iptables

import (
	"fmt"

	"github.com/nsrun/nsrun/forward"
)

// Drift reports how the firewall differs from what a project needs: each
// missing rule, and each rule in the project's own chains that nsrun did
// not render, one line per difference. With acceptsOnly, for a backend
// that holds only the project's FORWARD accepts (see AcceptScript).
func (s *Snapshot) Drift(p forward.Project, acceptsOnly bool) []string {
	if acceptsOnly {
		return drift(s, p, isAccept)
	}
	return drift(s, p, everything)
}

func drift(snap *Snapshot, p forward.Project, keep func(table, chain string) bool) []string {
	var out []string
	have := map[[2]string]map[string]bool{} // each chain's rules as a set: chains may hold thousands
	missing := func(r Rule) {
		if !keep(r.Table, r.Chain) {
			return
		}
		key := [2]string{r.Table, r.Chain}
		if have[key] == nil {
			have[key] = map[string]bool{}
			for _, line := range snap.Chain(r.Table, r.Chain).rules() {
				have[key][line] = true
			}
		}
		if !have[key][r.String()] {
			out = append(out, fmt.Sprintf("rule missing from %s/%s: %s", r.Table, r.Chain, r))
		}
	}
	for _, b := range Base() {
		missing(b.Rule)
	}
	missing(Guard())
	for _, r := range cat(ForwardHead(), Ingress(), PostHead()) {
		missing(r)
	}
	for _, j := range Jumps(p.Name) {
		missing(j)
	}
	rules := Rules(p)
	for _, r := range rules {
		missing(r)
	}
	rendered := map[string]bool{}
	for _, r := range rules {
		rendered[r.String()] = true
	}
	for _, tc := range projectChainsIn(snap, p.Name) {
		if !keep(tc[0], tc[1]) {
			continue
		}
		for _, line := range snap.Chain(tc[0], tc[1]).rules() {
			if !rendered[line] {
				out = append(out, fmt.Sprintf("rule not made by nsrun in %s/%s: %s", tc[0], tc[1], line))
			}
		}
	}
	return out
}
