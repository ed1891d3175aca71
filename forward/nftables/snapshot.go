package nftables

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/internal/nftcache"
	"sigs.k8s.io/knftables"
)

// Snapshot is nsrun's table as one read saw it: each chain's rules by
// their comments, and each set's and map's elements. It is forward.Tables
// for this backend.
type Snapshot struct {
	exists bool
	contents

	// listing is how to have what nft -j list prints of the table, parsed
	// into contents on first need (parse): a read whose drift the memo
	// answers needs none of it, and with thousands of publications having
	// and parsing it was most of an unchanged up.
	listing func() (nftcache.Result, error)
	table   string
	once    sync.Once
	err     error
	of      bool // the listing is of version at

	// at is the version the table was read at ("" when unknown), memo the
	// cache that keeps what Drift computes from it (nil: none).
	at   string
	memo *nftcache.Cache
}

// contents are a table's chains, sets, maps and counters.
type contents struct {
	chains   map[string][]string  // chain -> the comments of its rules, in order ("" for none)
	elements map[string][]element // set or map -> its elements
	counters map[string]bool      // the named counters
}

func emptySnapshot() *Snapshot {
	return &Snapshot{contents: contents{chains: map[string][]string{}, elements: map[string][]element{}, counters: map[string]bool{}}, of: true}
}

// parse has the listing and fills the contents from it, once; a snapshot
// made otherwise has them already.
func (s *Snapshot) parse() error {
	s.once.Do(func() {
		if s.listing == nil {
			return
		}
		r, err := s.listing()
		s.listing, s.of = nil, r.At == s.at
		var parsed *Snapshot
		switch {
		case err != nil:
			s.err = err
		case r.Code != 0 && strings.Contains(r.Stderr, "No such file or directory"):
			parsed = emptySnapshot() // no table
		case r.Code != 0:
			s.err = r.Err(listArgv(s.table)...)
		default:
			parsed, s.err = parseList([]byte(r.Stdout), s.table)
		}
		if parsed != nil {
			s.exists, s.contents = parsed.exists, parsed.contents
		}
	})
	return s.err
}

// Publishes reports whether nsrun's table exists: it holds only
// publications (this backend never holds another one's accepts).
func (s *Snapshot) Publishes() bool { return s.parse() == nil && s.exists }

// InUse reports whether nsrun's table exists; other tables are not read.
func (s *Snapshot) InUse() bool { return s.parse() == nil && s.exists }

// DropReason is always "": nsrun's table drops only what nsrun means to.
func (s *Snapshot) DropReason() string { return "" }

// IPv6 is always true: nsrun's table is of the inet family.
func (s *Snapshot) IPv6() bool { return true }

// Projects returns the projects with elements in the table, sorted.
func (s *Snapshot) Projects() []string {
	if s.parse() != nil {
		return nil // Drift says why
	}
	seen := map[string]bool{}
	for _, elems := range s.elements {
		for _, e := range elems {
			if p := projectOf(e.comment); p != "" {
				seen[p] = true
			}
		}
	}
	for name := range s.chains {
		for _, prefix := range []string{publicationPrefix, reachPrefix} {
			if rest, ok := strings.CutPrefix(name, prefix); ok {
				p, _, _ := strings.Cut(rest, "/")
				seen[p] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// diff is how the table differs from what a project needs.
type diff struct {
	table     bool          // the table is missing
	sets      []setDef      // missing sets and maps (the fixed ones and networks')
	chains    []chainDef    // fixed chains missing or holding other rules
	newChains []string      // of those, the missing ones
	pubs      []publication // the project's chains missing or holding other rules
	newPubs   []string      // of those, the missing ones
	oldPubs   []string      // the project's publication chains it no longer needs
	counters  []string      // the named counters of its publications that are missing
	oldCounts []string      // the project's named counters it no longer needs
	add, del  []element     // the project's elements to add and to delete
	messages  []string      // each difference, for status
}

func (d *diff) empty() bool { return len(d.messages) == 0 }

func (d *diff) say(format string, args ...any) {
	d.messages = append(d.messages, fmt.Sprintf(format, args...))
}

// compare finds how s differs from what p needs.
func compare(s *Snapshot, p forward.Project) *diff {
	d := &diff{}
	compareFixed(d, s, Table, sets, chains)
	elems, pubs := render(p)
	for _, e := range elems {
		if _, ok := s.elements[e.set]; ok || !strings.HasPrefix(e.set, networkPrefix) || slices.ContainsFunc(d.sets, func(def setDef) bool { return def.name == e.set }) {
			continue
		}
		d.sets = append(d.sets, setDef{name: e.set, typ: "ifname", comment: "nsrun: the links on network " + strings.TrimPrefix(e.set, networkPrefix)})
		if s.exists {
			d.say("set %s is missing from table %s %s", e.set, Family, Table)
		}
	}
	wanted := map[string]bool{}
	var counters []string
	for _, pub := range pubs {
		wanted[pub.chain] = true
		if pub.counter != "" {
			counters = append(counters, pub.counter)
		}
		have, ok := s.chains[pub.chain]
		switch {
		case !ok:
			d.pubs, d.newPubs = append(d.pubs, pub), append(d.newPubs, pub.chain)
			if s.exists {
				d.say("chain %s is missing", pub.chain)
			}
		case !slices.Equal(have, comments(pub.rules)):
			d.pubs = append(d.pubs, pub)
			sayRules(d, pub.chain, have, comments(pub.rules))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(s.chains)) {
		if isProjectChain(p.Name, name) && !wanted[name] {
			d.oldPubs = append(d.oldPubs, name)
			d.say("chain %s is not needed by project %s", name, p.Name)
		}
	}
	compareCounters(d, s, p.Name, counters, "")
	compareElements(d, s, p.Name, elems, "")
	return d
}

// compareElements notes the project's elements missing from a table,
// and those it holds that the project does not need; in names the table
// in the messages (" in table inet nsrun-count"), "" for nsrun's.
func compareElements(d *diff, s *Snapshot, project string, want []element, in string) {
	d.add, d.del = elementDiff(s, project, want)
	for _, e := range d.add {
		if s.exists {
			d.say("element missing from %s%s: %s", e.set, in, e)
		}
	}
	for _, e := range d.del {
		d.say("element of project %s not needed in %s%s: %s", project, e.set, in, e)
	}
}

// elementDiff returns the elements to add and the project's elements to
// delete (those it does not need, or needs with another value).
func elementDiff(s *Snapshot, project string, want []element) (add, del []element) {
	have := map[string]element{}
	for _, set := range slices.Sorted(maps.Keys(s.elements)) {
		for _, e := range s.elements[set] {
			if projectOf(e.comment) == project {
				have[e.id()] = e
			}
		}
	}
	wanted := map[string]bool{}
	for _, w := range want {
		wanted[w.id()] = true
		h, ok := have[w.id()]
		if ok && slices.Equal(h.value, w.value) && h.comment == w.comment {
			continue
		}
		if ok {
			del = append(del, h)
		}
		add = append(add, w)
	}
	for _, set := range slices.Sorted(maps.Keys(s.elements)) {
		for _, e := range s.elements[set] {
			if projectOf(e.comment) == project && !wanted[e.id()] {
				del = append(del, e)
			}
		}
	}
	return add, del
}

// compareFixed notes how a table, its fixed sets and maps, and its fixed
// chains differ from what they should be.
func compareFixed(d *diff, s *Snapshot, table string, sets []setDef, chains []chainDef) {
	where := fmt.Sprintf("table %s %s", Family, table)
	if !s.exists {
		d.table = true
		d.say("%s is missing", where)
	}
	for _, def := range sets {
		if _, ok := s.elements[def.name]; !ok {
			d.sets = append(d.sets, def)
			if s.exists {
				d.say("set %s is missing from %s", def.name, where)
			}
		}
	}
	for _, c := range chains {
		have, ok := s.chains[c.name]
		want := comments(c.rules)
		switch {
		case !ok:
			d.chains, d.newChains = append(d.chains, c), append(d.newChains, c.name)
			if s.exists {
				d.say("chain %s is missing from %s", c.name, where)
			}
		case !slices.Equal(have, want):
			d.chains = append(d.chains, c)
			sayRules(d, c.name, have, want)
		}
	}
}

// compareCounters notes the named counters of the project that are
// missing from a table, and those it holds that the project does not
// need; in names the table as for compareElements.
func compareCounters(d *diff, s *Snapshot, project string, want []string, in string) {
	needed := map[string]bool{}
	for _, name := range want {
		needed[name] = true
		if !s.counters[name] {
			d.counters = append(d.counters, name)
			if s.exists {
				d.say("counter %s%s is missing", name, in)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(s.counters)) {
		if isProjectChain(project, name) && !needed[name] {
			d.oldCounts = append(d.oldCounts, name)
			d.say("counter %s%s is not needed by project %s", name, in, project)
		}
	}
}

func sayRules(d *diff, chain string, have, want []string) {
	n := len(d.messages)
	for _, c := range want {
		if !slices.Contains(have, c) {
			d.say("rule missing from chain %s: %q", chain, c)
		}
	}
	for _, c := range have {
		if !slices.Contains(want, c) {
			if c == "" {
				c = "(no comment)"
			}
			d.say("rule not made by nsrun in chain %s: %q", chain, c)
		}
	}
	if len(d.messages) == n {
		d.say("rules of chain %s are out of order", chain)
	}
}

func comments(rules []rule) []string {
	out := make([]string, len(rules))
	for i, r := range rules {
		out[i] = r.comment
	}
	return out
}

// Drift reports how the table differs from what the project needs, one
// line per difference. This backend never holds only the accepts.
func (s *Snapshot) Drift(p forward.Project, acceptsOnly bool) []string {
	if acceptsOnly {
		return nil
	}
	version := s.at
	if version != "" {
		version += "; project " + p.Digest()
	}
	return s.memo.Lines(version, "nftables drift of project "+p.Name, func() ([]string, bool) {
		if err := s.parse(); err != nil {
			return []string{err.Error()}, false
		}
		return compare(s, p).messages, s.of
	})
}

// ensure adds to tx what brings the table from s to holding p's
// publications: only what differs, in an order nft accepts (what is
// referenced exists first; what references a chain goes before it).
func ensure(tx *knftables.Transaction, s *Snapshot, p forward.Project) {
	apply(tx, s, compare(s, p), tableComment)
}

// apply adds to tx what d says the table (commented comment, when it is
// made) lacks or holds too much of.
func apply(tx *knftables.Transaction, s *Snapshot, d *diff, comment string) {
	if d.empty() {
		return
	}
	if d.table {
		tx.Add(&knftables.Table{Comment: knftables.PtrTo(comment)})
	}
	for _, def := range d.sets {
		if def.isMap {
			tx.Add(&knftables.Map{Name: def.name, Type: def.typ, Flags: flags(def), Comment: knftables.PtrTo(def.comment)})
		} else {
			tx.Add(&knftables.Set{Name: def.name, Type: def.typ, Flags: flags(def), Comment: knftables.PtrTo(def.comment)})
		}
	}
	for _, name := range d.counters { // before the rules that count with them
		tx.Add(&knftables.Counter{Name: name})
	}
	for _, pub := range d.pubs {
		fill(tx, &knftables.Chain{Name: pub.chain}, slices.Contains(d.newPubs, pub.chain), pub.rules)
	}
	for _, c := range d.chains { // regular chains first: the base chains jump to them
		if c.hook == "" {
			fill(tx, &knftables.Chain{Name: c.name}, slices.Contains(d.newChains, c.name), c.rules)
		}
	}
	for _, c := range d.chains {
		if c.hook != "" {
			fill(tx, &knftables.Chain{Name: c.name, Type: knftables.PtrTo(c.kind), Hook: knftables.PtrTo(c.hook), Priority: knftables.PtrTo(c.priority)},
				slices.Contains(d.newChains, c.name), c.rules)
		}
	}
	for _, e := range d.del {
		tx.Delete(e.object())
	}
	for _, e := range d.add {
		tx.Add(e.object())
	}
	for _, name := range d.oldPubs {
		tx.Delete(&knftables.Chain{Name: name})
	}
	for _, name := range d.oldCounts { // once no rule counts with them
		tx.Delete(&knftables.Counter{Name: name})
	}
	deleteEmptyNetworks(tx, s, d.add, d.del)
}

// deleteEmptyNetworks deletes the sets of networks that no link is on
// once the elements are added and deleted: the chains that used them are
// gone by then (a chain uses a network's set only while one of its
// project's links is on it).
func deleteEmptyNetworks(tx *knftables.Transaction, s *Snapshot, add, del []element) {
	left := map[string]int{}
	for name, elems := range s.elements {
		if strings.HasPrefix(name, networkPrefix) {
			left[name] = len(elems)
		}
	}
	for _, e := range del {
		if _, ok := left[e.set]; ok {
			left[e.set]--
		}
	}
	for _, e := range add {
		left[e.set]++
	}
	for _, name := range slices.Sorted(maps.Keys(left)) {
		if left[name] == 0 {
			tx.Delete(&knftables.Set{Name: name})
		}
	}
}

// fill creates a chain, or flushes it, and writes its rules.
func fill(tx *knftables.Transaction, c *knftables.Chain, create bool, rules []rule) {
	if create {
		tx.Add(c)
	} else {
		tx.Flush(c)
	}
	for _, r := range rules {
		tx.Add(&knftables.Rule{Chain: c.Name, Rule: r.text, Comment: knftables.PtrTo(r.comment)})
	}
}

func flags(def setDef) []knftables.SetFlag {
	if def.interval {
		return []knftables.SetFlag{knftables.IntervalFlag}
	}
	return nil
}

func (e element) object() *knftables.Element {
	out := &knftables.Element{Key: e.key, Value: e.value, Comment: knftables.PtrTo(e.comment)}
	if len(e.value) > 0 {
		out.Map = e.set
	} else {
		out.Set = e.set
	}
	return out
}

// remove adds to tx what removes a project from a table (nsrun's or the
// counting table): the whole table when no other project has anything in
// it, else the project's elements, chains and counters.
func remove(tx *knftables.Transaction, s *Snapshot, project string) {
	if !s.exists {
		return
	}
	if others := slices.DeleteFunc(s.Projects(), func(p string) bool { return p == project }); len(others) == 0 {
		tx.Delete(&knftables.Table{})
		return
	}
	_, del := elementDiff(s, project, nil)
	for _, e := range del {
		tx.Delete(e.object())
	}
	for _, name := range slices.Sorted(maps.Keys(s.chains)) {
		if isProjectChain(project, name) {
			tx.Delete(&knftables.Chain{Name: name})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(s.counters)) {
		if isProjectChain(project, name) {
			tx.Delete(&knftables.Counter{Name: name})
		}
	}
	deleteEmptyNetworks(tx, s, nil, del)
}

// listed is one object of nft's JSON listing, as far as nsrun reads it.
type listed struct {
	Table *struct {
		Family string `json:"family"`
		Name   string `json:"name"`
	} `json:"table"`
	Chain *struct {
		Family string `json:"family"`
		Table  string `json:"table"`
		Name   string `json:"name"`
	} `json:"chain"`
	Rule *struct {
		Family  string `json:"family"`
		Table   string `json:"table"`
		Chain   string `json:"chain"`
		Comment string `json:"comment"`
	} `json:"rule"`
	Set     *listedSet `json:"set"`
	Map     *listedSet `json:"map"`
	Counter *struct {
		Family string `json:"family"`
		Table  string `json:"table"`
		Name   string `json:"name"`
	} `json:"counter"`
}

type listedSet struct {
	Family string `json:"family"`
	Table  string `json:"table"`
	Name   string `json:"name"`
	Elem   []any  `json:"elem"`
}

// parseList parses what nft -j list table inet TABLE (or list ruleset)
// prints, in one pass; other tables' objects are passed over.
func parseList(out []byte, table string) (*Snapshot, error) {
	var doc struct {
		Nftables []listed `json:"nftables"`
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("nft -j list table %s %s: %w", Family, table, err)
	}
	ours := func(family, name string) bool { return family == string(Family) && name == table }
	s := emptySnapshot()
	for _, o := range doc.Nftables {
		switch {
		case o.Table != nil && ours(o.Table.Family, o.Table.Name):
			s.exists = true
		case o.Chain != nil && ours(o.Chain.Family, o.Chain.Table):
			if s.chains[o.Chain.Name] == nil {
				s.chains[o.Chain.Name] = []string{}
			}
		case o.Rule != nil && ours(o.Rule.Family, o.Rule.Table):
			s.chains[o.Rule.Chain] = append(s.chains[o.Rule.Chain], o.Rule.Comment)
		case o.Set != nil && ours(o.Set.Family, o.Set.Table):
			if err := s.parseSet(o.Set, false, table); err != nil {
				return nil, err
			}
		case o.Map != nil && ours(o.Map.Family, o.Map.Table):
			if err := s.parseSet(o.Map, true, table); err != nil {
				return nil, err
			}
		case o.Counter != nil && ours(o.Counter.Family, o.Counter.Table):
			s.counters[o.Counter.Name] = true
		}
	}
	return s, nil
}

func (s *Snapshot) parseSet(set *listedSet, isMap bool, table string) error {
	elems := make([]element, 0, len(set.Elem))
	for _, raw := range set.Elem {
		e, err := parseElement(set.Name, isMap, raw)
		if err != nil {
			return fmt.Errorf("nft -j list table %s %s: %w", Family, table, err)
		}
		elems = append(elems, e)
	}
	s.elements[set.Name] = elems
	return nil
}

// parseElement reads one element: a value, {"elem": {"val", "comment"}},
// or for a map [key, value].
func parseElement(set string, isMap bool, raw any) (element, error) {
	e := element{set: set}
	key := raw
	var value any
	if isMap {
		pair, ok := raw.([]any)
		if !ok || len(pair) != 2 {
			return e, fmt.Errorf("map %s: element %v is not [key, value]", set, raw)
		}
		key, value = pair[0], pair[1]
	}
	if obj, ok := key.(map[string]any); ok {
		if inner, ok := obj["elem"].(map[string]any); ok {
			key = inner["val"]
			e.comment, _ = inner["comment"].(string)
		}
	}
	var err error
	if e.key, err = parseValue(key); err != nil {
		return e, err
	}
	if value != nil {
		e.value, err = parseValue(value)
	}
	return e, err
}

// parseValue renders a JSON value as nft writes it.
func parseValue(v any) ([]string, error) {
	switch v := v.(type) {
	case string:
		return []string{v}, nil
	case json.Number:
		return []string{v.String()}, nil
	case map[string]any:
		for kind, inner := range v {
			switch kind {
			case "concat":
				parts, _ := inner.([]any)
				var out []string
				for _, p := range parts {
					s, err := parseValue(p)
					if err != nil {
						return nil, err
					}
					out = append(out, s...)
				}
				return out, nil
			case "prefix":
				m, _ := inner.(map[string]any)
				return []string{fmt.Sprintf("%v/%v", m["addr"], m["len"])}, nil
			case "range":
				r, _ := inner.([]any)
				if len(r) != 2 {
					return nil, fmt.Errorf("bad range %v", inner)
				}
				return []string{fmt.Sprintf("%v-%v", r[0], r[1])}, nil
			case "goto", "jump":
				m, _ := inner.(map[string]any)
				return []string{fmt.Sprintf("%s %v", kind, m["target"])}, nil
			case "accept", "drop", "continue", "return":
				return []string{kind}, nil
			}
		}
	}
	return nil, fmt.Errorf("unexpected value %v", v)
}

// fromFake reads the fake's table as nft -j list would print it.
func fromFake(f *knftables.Fake) *Snapshot {
	f.RLock()
	defer f.RUnlock()
	s := emptySnapshot()
	t := f.Table
	if t == nil {
		return s
	}
	s.exists = true
	for name, c := range t.Chains {
		s.chains[name] = []string{}
		for _, r := range c.Rules {
			s.chains[name] = append(s.chains[name], deref(r.Comment))
		}
	}
	for name, set := range t.Sets {
		s.elements[name] = fakeElements(name, set.Elements)
	}
	for name, m := range t.Maps {
		s.elements[name] = fakeElements(name, m.Elements)
	}
	for name := range t.Counters {
		s.counters[name] = true
	}
	return s
}

func fakeElements(set string, in []*knftables.Element) []element {
	out := []element{}
	for _, e := range in {
		out = append(out, element{set: set, key: e.Key, value: e.Value, comment: deref(e.Comment)})
	}
	return out
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
