package forward

import (
	"fmt"
	"slices"
)

// Drift reports how the firewall differs from what a project needs: each
// missing rule, and each rule in the project's own chains that nsrun did
// not render, one line per difference.
func Drift(snap *Snapshot, p Project) []string {
	var out []string
	missing := func(r Rule) {
		if !snap.Has(r) {
			out = append(out, fmt.Sprintf("rule missing from %s/%s: %s", r.Table, r.Chain, r))
		}
	}
	for _, b := range Base() {
		missing(b.Rule)
	}
	missing(Guard())
	for _, j := range Jumps(p.Name) {
		missing(j)
	}
	rules := Rules(p)
	for _, r := range rules {
		missing(r)
	}
	for _, tc := range projectChainsIn(snap, p.Name) {
		want := lines(inChain(rules, tc[1]))
		for _, have := range snap.Chain(tc[0], tc[1]).rules() {
			if !slices.Contains(want, have) {
				out = append(out, fmt.Sprintf("rule not made by nsrun in %s/%s: %s", tc[0], tc[1], have))
			}
		}
	}
	return out
}

func lines(rules []Rule) []string {
	out := make([]string, len(rules))
	for i, r := range rules {
		out[i] = r.String()
	}
	return out
}
