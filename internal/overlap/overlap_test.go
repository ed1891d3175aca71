package overlap

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

// TestOverlapsAsComparingEach: the index finds exactly the prefixes that
// Overlaps finds comparing each, in order, for prefixes of both families
// and many lengths, equal, containing and contained ones among them,
// with prefixes added between the lookups.
func TestOverlapsAsComparingEach(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	random := func() netip.Prefix {
		if r.IntN(4) == 0 {
			var b [16]byte
			b[0], b[1], b[15] = 0xfd, byte(r.IntN(4)), byte(r.IntN(256))
			return netip.PrefixFrom(netip.AddrFrom16(b), 112+r.IntN(17))
		}
		a := netip.AddrFrom4([4]byte{10, byte(r.IntN(3)), byte(r.IntN(4)), byte(r.IntN(256))})
		return netip.PrefixFrom(a, []int{8, 16, 24, 28, 30, 30, 30, 32}[r.IntN(8)])
	}
	var prefixes []netip.Prefix
	for range 500 {
		prefixes = append(prefixes, random())
	}
	prefixes = append(prefixes, netip.Prefix{}) // one not valid: never found
	o := New(prefixes[:300]...)
	for i := range 2000 {
		if i%10 == 0 && i/10 < len(prefixes)-300 { // some added between the lookups
			o.Add(prefixes[300+i/10])
		}
		known := prefixes[:min(len(prefixes), 300+(i+10)/10)]
		p := random()
		var want []int
		for i, q := range known {
			if q.IsValid() && q.Masked().Overlaps(p) {
				want = append(want, i)
			}
		}
		if got := o.Of(p); !slices.Equal(got, want) {
			t.Fatalf("prefixIndex of %s: %v, want %v", p, got, want)
		}
	}
	if got := o.Of(netip.Prefix{}); got != nil {
		t.Errorf("prefixIndex of an invalid prefix: %v", got)
	}
}
