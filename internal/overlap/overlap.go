// Package overlap finds, among many prefixes, those that overlap a given
// one without comparing it with each.
package overlap

import (
	"net/netip"
	"slices"
)

// Index holds prefixes. Two prefixes overlap when the shorter contains the
// longer, so Of looks the given prefix up cut to each length the index
// holds (those that contain it), and the index's longer prefixes cut to
// the given one's length (those it contains). A project of 1,000
// namespaces beside 9,000 others is checked in 1,000 lookups, not nine
// million comparisons.
type Index struct {
	all     []netip.Prefix                 // masked, in the order added
	exact   map[netip.Prefix][]int         // prefix -> indexes into all
	lengths []int                          // the lengths in all
	cut     map[int]map[netip.Prefix][]int // length -> prefixes longer than it, cut to it
}

// New indexes prefixes; the indexes Of returns are theirs, in order.
func New(prefixes ...netip.Prefix) *Index {
	x := &Index{exact: map[netip.Prefix][]int{}, cut: map[int]map[netip.Prefix][]int{}}
	for _, p := range prefixes {
		x.Add(p)
	}
	return x
}

// Add adds a prefix, at the next index. An invalid prefix is never found.
func (x *Index) Add(p netip.Prefix) {
	p = p.Masked()
	i := len(x.all)
	x.all = append(x.all, p)
	if !p.IsValid() {
		return
	}
	x.exact[p] = append(x.exact[p], i)
	if !slices.Contains(x.lengths, p.Bits()) {
		x.lengths = append(x.lengths, p.Bits())
	}
	for bits, m := range x.cut {
		if q, err := p.Addr().Prefix(bits); err == nil && p.Bits() > bits {
			m[q] = append(m[q], i)
		}
	}
}

// Prefix is the prefix at index i, masked.
func (x *Index) Prefix(i int) netip.Prefix { return x.all[i] }

// Of returns the indexes of the prefixes that overlap p, in order.
func (x *Index) Of(p netip.Prefix) []int {
	p = p.Masked()
	if !p.IsValid() {
		return nil
	}
	var found []int
	for _, bits := range x.lengths {
		if bits <= p.Bits() {
			if q, err := p.Addr().Prefix(bits); err == nil {
				found = append(found, x.exact[q]...) // q and p of another family never match
			}
		}
	}
	found = append(found, x.longer(p.Bits())[p]...)
	slices.Sort(found)
	return slices.Compact(found)
}

// First returns the first prefix that overlaps p.
func (x *Index) First(p netip.Prefix) (netip.Prefix, bool) {
	if found := x.Of(p); len(found) > 0 {
		return x.all[found[0]], true
	}
	return netip.Prefix{}, false
}

// longer returns the prefixes longer than bits, cut to bits, made once per
// length asked and kept up to date by Add.
func (x *Index) longer(bits int) map[netip.Prefix][]int {
	if m, ok := x.cut[bits]; ok {
		return m
	}
	m := map[netip.Prefix][]int{}
	for i, p := range x.all {
		if p.IsValid() && p.Bits() > bits {
			if q, err := p.Addr().Prefix(bits); err == nil {
				m[q] = append(m[q], i)
			}
		}
	}
	x.cut[bits] = m
	return m
}
