package iptables

import (
	"fmt"
	"maps"
	"slices"

	"github.com/nsrun/nsrun/forward"
)

// Drift reports how the firewall differs from what a project needs: each
// missing rule, and each rule in the project's own chains that nsrun did
// not render, one line per difference. With acceptsOnly, for a backend
// that holds only the project's FORWARD accepts (see AcceptScript).
// A project with IPv6 is compared in ip6tables' tables too. The answer is
// kept in the cache the tables were read through, for as long as they and
// the project stay the same.
func (s *Snapshot) Drift(p forward.Project, acceptsOnly bool) []string {
	version := s.versions()
	if version != "" {
		version += "; project " + p.Digest()
	}
	return s.memo.Lines(version, driftKey(s.backend, p, acceptsOnly), func() ([]string, bool) { return s.drift(p, acceptsOnly), true })
}

// versions names the outputs the snapshot was read from, both families'
// ("" when one is not known): what answers drawn from it are kept under.
func (s *Snapshot) versions() string {
	switch {
	case s.V6 == nil:
		return s.at
	case s.V6.at == "":
		return ""
	}
	return s.at + "; " + s.V6.at
}

// driftKey is what a project's drift in a backend is kept as.
func driftKey(b forward.Backend, p forward.Project, acceptsOnly bool) string {
	return fmt.Sprintf("%s drift of project %s, accepts only: %t", b, p.Name, acceptsOnly)
}

func (s *Snapshot) drift(p forward.Project, acceptsOnly bool) []string {
	keep := everything
	if acceptsOnly {
		keep = isAccept
	}
	out := drift(IPv4, s, p, keep)
	if !HasIPv6(p) {
		return out
	}
	if s.V6 == nil {
		return append(out, "ip6tables is not installed: nothing publishes the project's IPv6 ports")
	}
	for _, d := range drift(IPv6, s.V6, p, keep) {
		out = append(out, "ip6tables: "+d)
	}
	return out
}

// HasIPv6 reports whether a project has IPv6 addresses.
func HasIPv6(p forward.Project) bool {
	return slices.ContainsFunc(p.Namespaces, func(ns forward.Namespace) bool { return ns.Address6.IsValid() })
}

func drift(f Family, snap *Snapshot, p forward.Project, keep func(table, chain string) bool) []string {
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
	for _, b := range BaseFor(f) {
		missing(b.Rule)
	}
	if f == IPv4 {
		missing(Guard())
	}
	for _, r := range cat(ForwardHead(), Ingress(), PostHeadFor(f)) {
		missing(r)
	}
	for _, j := range Jumps(p.Name) {
		missing(j)
	}
	rules := RulesFor(f, p)
	for _, r := range rules {
		missing(r)
	}
	rendered := map[string]bool{}
	for _, r := range rules {
		rendered[r.String()] = true
	}
	for _, name := range slices.Sorted(maps.Keys(snap.Tables["filter"])) {
		if !isNetworkChain(name) || !keep("filter", name) {
			continue
		}
		for _, line := range snap.Chain("filter", name).rules() {
			if owns(p.Name, line) && !rendered[line] {
				out = append(out, fmt.Sprintf("rule of project %s not needed in filter/%s: %s", p.Name, name, line))
			}
		}
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
