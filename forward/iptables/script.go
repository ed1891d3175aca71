package iptables

import (
	"maps"
	"slices"
	"strings"

	"github.com/nsrun/nsrun/forward"
)

// script is iptables-restore --noflush input, built per table in three
// parts so that chains are declared before rules use them and deleted
// after the rules that jump to them are gone.
type script struct {
	tables  []string
	decls   map[string][]string // ":CHAIN - [0:0]": creates, or flushes an existing chain
	rules   map[string][]string // -A / -I / -D lines
	deletes map[string][]string // -X lines
}

func newScript() *script {
	return &script{decls: map[string][]string{}, rules: map[string][]string{}, deletes: map[string][]string{}}
}

func (s *script) table(t string) {
	if !slices.Contains(s.tables, t) {
		s.tables = append(s.tables, t)
	}
}

func (s *script) declare(table, chain string) {
	s.table(table)
	if line := ":" + chain + " - [0:0]"; !slices.Contains(s.decls[table], line) {
		s.decls[table] = append(s.decls[table], line)
	}
}

func (s *script) rule(table, line string) {
	s.table(table)
	s.rules[table] = append(s.rules[table], line)
}

func (s *script) remove(table, chain string) {
	s.declare(table, chain) // flush first: a chain must be empty to go
	s.deletes[table] = append(s.deletes[table], "-X "+chain)
}

// String renders the script; it is empty when there is nothing to do.
func (s *script) String() string {
	var b strings.Builder
	for _, t := range []string{"nat", "filter"} { // a fixed order keeps scripts comparable
		if !slices.Contains(s.tables, t) {
			continue
		}
		b.WriteString("*" + t + "\n")
		for _, part := range [][]string{s.decls[t], s.rules[t], s.deletes[t]} {
			for _, l := range part {
				b.WriteString(l + "\n")
			}
		}
		b.WriteString("COMMIT\n")
	}
	return b.String()
}

// sharedChains are nsrun's shared chains with their tables.
var sharedChains = [][2]string{{"nat", ChainDNAT}, {"nat", ChainPost}, {"filter", ChainForward}, {"filter", ChainIngress}, {"filter", ChainInput}}

// sharedChainsFor are a family's shared chains: IPv6 has no guard.
func sharedChainsFor(f Family) [][2]string {
	if f == IPv6 {
		return sharedChains[:4]
	}
	return sharedChains
}

// UpScript returns the iptables-restore --noflush input that brings snap
// to holding p's rules, the shared chains, their jumps and the guard. Only
// what differs is in it: it is empty when everything is in place.
func UpScript(snap *Snapshot, p forward.Project) string { return upScript(IPv4, snap, p, everything) }

// UpScriptFor is UpScript for a family's tables (snap is that family's).
func UpScriptFor(f Family, snap *Snapshot, p forward.Project) string {
	return upScript(f, snap, p, everything)
}

// AcceptScript is UpScript for a backend that holds only the project's
// FORWARD accepts (see Placement): the jump first in FORWARD,
// NSRUN-FORWARD, and the project's chain of accepts.
func AcceptScript(snap *Snapshot, p forward.Project) string { return upScript(IPv4, snap, p, isAccept) }

// AcceptScriptFor is AcceptScript for a family's tables.
func AcceptScriptFor(f Family, snap *Snapshot, p forward.Project) string {
	return upScript(f, snap, p, isAccept)
}

func everything(table, chain string) bool { return true }

// isAccept tells the chains of the FORWARD accepts: those of the filter
// table but the INPUT guard's.
func isAccept(table, chain string) bool {
	return table == "filter" && chain != "INPUT" && chain != ChainInput
}

// upScript renders UpScript for the chains that keep reports.
func upScript(f Family, snap *Snapshot, p forward.Project, keep func(table, chain string) bool) string {
	s := newScript()
	for _, tc := range sharedChainsFor(f) {
		if snap.Chain(tc[0], tc[1]) == nil && keep(tc[0], tc[1]) {
			s.declare(tc[0], tc[1])
		}
	}
	for _, b := range BaseFor(f) {
		if snap.Has(b.Rule) || !keep(b.Table, b.Chain) {
			continue
		}
		if b.Insert {
			s.rule(b.Table, "-I "+b.Chain+" 1 "+joinArgs(b.Args))
		} else {
			s.rule(b.Table, b.String())
		}
	}
	if keep("filter", ChainInput) && f == IPv4 {
		replaceChain(s, snap, "filter", ChainInput, []Rule{Guard()})
	}
	jumps := Jumps(p.Name)
	dnatJump, postJump, forwardJump := jumps[0], jumps[1], jumps[2] // Jumps' order
	if keep("filter", ChainForward) {
		replaceLines(s, snap, "filter", ChainForward, headFirst(snap, ForwardHead(), forwardJump))
		replaceChain(s, snap, "filter", ChainIngress, Ingress())
	}
	if keep("nat", ChainPost) {
		replaceLines(s, snap, "nat", ChainPost, headFirst(snap, PostHeadFor(f), postJump))
	}
	rules := RulesFor(f, p)
	ch := ProjectChains(p.Name)
	// The project's three chains exist even when empty: the jumps need them.
	chains := [][2]string{{"nat", ch.DNAT}, {"nat", ch.Post}, {"filter", ch.Forward}}
	for _, tc := range ruleChains(rules) {
		if !slices.Contains(chains, tc) {
			chains = append(chains, tc)
		}
	}
	for _, tc := range chains {
		switch {
		case !keep(tc[0], tc[1]):
		case isNetworkChain(tc[1]): // shared with the other projects on the network
			joinNetwork(s, snap, tc[1], p.Name, inChain(rules, tc[1]))
		default:
			replaceChain(s, snap, tc[0], tc[1], inChain(rules, tc[1]))
		}
	}
	// The networks the project has left lose its links.
	for _, name := range slices.Sorted(maps.Keys(snap.Tables["filter"])) {
		if isNetworkChain(name) && !slices.Contains(chains, [2]string{"filter", name}) && keep("filter", name) {
			leaveNetwork(s, snap, name, p.Name)
		}
	}
	// Sub-chains of the dispatch tree that are no longer used go, once the
	// chains that jumped to them are rewritten.
	for name := range snap.Tables["nat"] {
		if isSubChain(ch, name) && len(inChain(rules, name)) == 0 && keep("nat", name) {
			s.remove("nat", name)
		}
	}
	if !snap.Has(dnatJump) && keep(dnatJump.Table, dnatJump.Chain) { // the others are in headFirst
		s.rule(dnatJump.Table, dnatJump.String())
	}
	return s.String()
}

// owns reports whether an iptables-save line is one of the project's
// rules, by its comment.
func owns(project, line string) bool {
	return strings.Contains(line, `--comment "`+Comment(project, ""))
}

// othersIn returns the lines of a network's chain that are not the
// project's, in order.
func othersIn(snap *Snapshot, chain, project string) []string {
	var out []string
	for _, line := range snap.Chain("filter", chain).rules() {
		if !owns(project, line) {
			out = append(out, line)
		}
	}
	return out
}

// joinNetwork puts the project's links in a network's chain, after the
// other projects' (whose rules stay, in their order), unless they are
// there already.
func joinNetwork(s *script, snap *Snapshot, chain, project string, want []Rule) {
	var mine, lines []string
	for _, line := range snap.Chain("filter", chain).rules() {
		if owns(project, line) {
			mine = append(mine, line)
		}
	}
	for _, r := range want {
		lines = append(lines, r.String())
	}
	if !slices.Equal(mine, lines) {
		replaceLines(s, snap, "filter", chain, append(othersIn(snap, chain, project), lines...))
	}
}

// leaveNetwork takes the project's links out of a network's chain, and
// removes the chain when no other project's are left in it (the jumps to
// it, in the chains of the projects on the network, are gone then).
func leaveNetwork(s *script, snap *Snapshot, chain, project string) {
	others := othersIn(snap, chain, project)
	switch {
	case len(others) == len(snap.Chain("filter", chain).rules()):
	case len(others) == 0:
		s.remove("filter", chain)
	default:
		replaceLines(s, snap, "filter", chain, others)
	}
}

// headFirst returns what a shared chain with a head should hold: the head
// first, then whatever else it holds now, in order (other projects' jumps,
// and anything someone added), then the project's jump if not there.
func headFirst(snap *Snapshot, head []Rule, jump Rule) []string {
	var want []string
	isHead := map[string]bool{}
	for _, r := range head {
		want = append(want, r.String())
		isHead[r.String()] = true
	}
	for _, line := range snap.Chain(jump.Table, jump.Chain).rules() {
		if !isHead[line] {
			want = append(want, line)
		}
	}
	if !slices.Contains(want, jump.String()) {
		want = append(want, jump.String())
	}
	return want
}

// replaceChain declares (so creates or flushes) a chain and writes its
// rules, unless it already holds exactly those rules.
func replaceChain(s *script, snap *Snapshot, table, chain string, want []Rule) {
	lines := make([]string, len(want))
	for i, r := range want {
		lines[i] = r.String()
	}
	replaceLines(s, snap, table, chain, lines)
}

func replaceLines(s *script, snap *Snapshot, table, chain string, lines []string) {
	if c := snap.Chain(table, chain); c != nil && slices.Equal(c.Rules, lines) {
		return
	}
	s.declare(table, chain)
	for _, l := range lines {
		s.rule(table, l)
	}
}

// ruleChains lists the (table, chain) pairs the rules are in, in order.
func ruleChains(rules []Rule) [][2]string {
	var out [][2]string
	for _, r := range rules {
		if tc := [2]string{r.Table, r.Chain}; !slices.Contains(out, tc) {
			out = append(out, tc)
		}
	}
	return out
}

// projectChainsIn lists the project's chains that exist in snap, sorted.
func projectChainsIn(snap *Snapshot, project string) [][2]string {
	ch := ProjectChains(project)
	var out [][2]string
	for _, table := range []string{"nat", "filter"} {
		var names []string
		for name := range snap.Tables[table] {
			if name == ch.DNAT || name == ch.Post || name == ch.Forward || isSubChain(ch, name) {
				names = append(names, name)
			}
		}
		slices.Sort(names)
		for _, name := range names {
			out = append(out, [2]string{table, name})
		}
	}
	return out
}

func inChain(rules []Rule, chain string) []Rule {
	var out []Rule
	for _, r := range rules {
		if r.Chain == chain {
			out = append(out, r)
		}
	}
	return out
}

// DownScript returns the input that removes a project's jumps and chains.
// When no other project's jumps remain, it removes the shared chains, the
// jumps to them and the guard too. Rules nsrun did not make are never in it.
func DownScript(snap *Snapshot, project string) string { return DownScriptFor(IPv4, snap, project) }

// DownScriptFor is DownScript for a family's tables.
func DownScriptFor(f Family, snap *Snapshot, project string) string {
	s := newScript()
	others := slices.DeleteFunc(snap.ownProjects(), func(p string) bool { return p == project })
	last := len(others) == 0
	if !last { // when last, the shared chains go whole, with the jumps in them
		for _, j := range Jumps(project) {
			if snap.Has(j) {
				s.rule(j.Table, "-D "+j.Chain+" "+joinArgs(j.Args))
			}
		}
	}
	for _, tc := range projectChainsIn(snap, project) {
		s.remove(tc[0], tc[1])
	}
	for _, name := range slices.Sorted(maps.Keys(snap.Tables["filter"])) {
		switch {
		case !isNetworkChain(name):
		case last:
			s.remove("filter", name)
		default:
			leaveNetwork(s, snap, name, project)
		}
	}
	if !last {
		return s.String()
	}
	// Every jump into a shared chain goes, even one edited by hand: a chain
	// still referenced cannot be deleted, and the whole batch would fail.
	for _, b := range BaseFor(f) {
		for _, r := range snap.Chain(b.Table, b.Chain).rules() {
			if target := jumpTarget(r); slices.Contains(sharedNames(), target) {
				s.rule(b.Table, "-D"+strings.TrimPrefix(r, "-A"))
			}
		}
	}
	for _, tc := range sharedChainsFor(f) {
		if snap.Chain(tc[0], tc[1]) != nil {
			s.remove(tc[0], tc[1])
		}
	}
	return s.String()
}

func sharedNames() []string {
	out := make([]string, len(sharedChains))
	for i, tc := range sharedChains {
		out[i] = tc[1]
	}
	return out
}

// SweepScript removes every chain that looks like nsrun's (NSRUN-* and
// NSR-*) and every rule that jumps to one, for `down --all` when state is
// lost.
func SweepScript(snap *Snapshot) string {
	s := newScript()
	for _, table := range []string{"nat", "filter"} {
		chains := snap.Tables[table]
		for name, c := range chains {
			if isNsrunChain(name) {
				s.remove(table, name)
				continue
			}
			for _, r := range c.Rules {
				if target := jumpTarget(r); isNsrunChain(target) {
					s.rule(table, "-D"+strings.TrimPrefix(r, "-A"))
				}
			}
		}
		slices.Sort(s.decls[table])
		slices.Sort(s.rules[table])
		slices.Sort(s.deletes[table])
	}
	return s.String()
}

func isNsrunChain(name string) bool {
	return strings.HasPrefix(name, "NSRUN-") || strings.HasPrefix(name, "NSR-")
}

func jumpTarget(rule string) string {
	_, target, ok := strings.Cut(rule, " -j ")
	if !ok {
		return ""
	}
	target, _, _ = strings.Cut(target, " ")
	return target
}
