package forward

import (
	"slices"
	"strings"
	"testing"
)

// stub is what a backend holds, for Place.
type stub struct {
	publishes bool
	drop      string
}

func (s stub) Publishes() bool              { return s.publishes }
func (s stub) InUse() bool                  { return s.publishes || s.drop != "" }
func (s stub) DropReason() string           { return s.drop }
func (s stub) Drift(Project, bool) []string { return nil }
func (s stub) IPv6() bool                   { return true }

const (
	ipnft    Backend = "iptables-nft"
	iplegacy Backend = "iptables-legacy"
	nft      Backend = "nftables"
)

// TestPlaceByChoice: auto takes iptables where it is installed, else
// nftables; an explicit choice is kept and moves a project recorded
// elsewhere; an nftables project puts its accepts in each iptables
// backend that drops; each missing firewall says what to install.
func TestPlaceByChoice(t *testing.T) {
	all := []Backend{ipnft, iplegacy, nft}
	clean := map[Backend]Tables{ipnft: stub{}, iplegacy: stub{}, nft: stub{}}
	legacyDrops := map[Backend]Tables{ipnft: stub{}, iplegacy: stub{drop: "policy DROP"}, nft: stub{}}
	onlyNFT := map[Backend]Tables{nft: stub{}}
	for _, tc := range []struct {
		name     string
		recorded Backend
		choice   Choice
		order    []Backend
		tables   map[Backend]Tables
		want     Placement
		err      string
	}{
		{"auto, all installed", "", Auto, all, clean, Placement{Backend: ipnft}, ""},
		{"auto, only nftables", "", Auto, []Backend{nft}, onlyNFT, Placement{Backend: nft}, ""},
		{"auto, nothing", "", Auto, nil, nil, Placement{}, "install one (apt-get install iptables, or apt-get install nftables)"},
		{"nftables, legacy drops", "", NFTables, all, legacyDrops, Placement{Backend: nft, Accepts: []Backend{iplegacy}}, ""},
		{"nftables, not installed", "", NFTables, []Backend{ipnft}, map[Backend]Tables{ipnft: stub{}}, Placement{}, "apt-get install nftables"},
		{"iptables, only nftables", "", IPTables, []Backend{nft}, onlyNFT, Placement{}, "apt-get install iptables"},
		{"iptables, legacy drops", "", IPTables, all, legacyDrops, Placement{Backend: iplegacy}, ""},
		{"recorded iptables-nft, auto", ipnft, Auto, all, clean, Placement{Backend: ipnft}, ""},
		{"recorded nftables, auto with iptables", nft, Auto, all, clean, Placement{Backend: nft}, ""},
		{"recorded iptables-nft, nftables asked", ipnft, NFTables, all, clean, Placement{Backend: nft}, ""},
		{"recorded nftables, iptables asked", nft, IPTables, all, clean, Placement{Backend: ipnft}, ""},
		{"recorded nftables, gone", nft, Auto, []Backend{ipnft}, map[Backend]Tables{ipnft: stub{}}, Placement{}, "nftables, which is not installed now; install it (apt-get install nftables)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Place(tc.recorded, tc.choice, tc.order, tc.tables)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("Place = %+v, %v; want an error containing %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got.Backend != tc.want.Backend || !slices.Equal(got.Accepts, tc.want.Accepts) {
				t.Errorf("Place = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestParseChoice(t *testing.T) {
	for in, want := range map[string]Choice{"": Auto, "auto": Auto, "nftables": NFTables, "iptables": IPTables} {
		if got, err := ParseChoice(in); got != want || err != nil {
			t.Errorf("ParseChoice(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseChoice("nft"); err == nil || !strings.Contains(err.Error(), "use auto, nftables or iptables") {
		t.Errorf("ParseChoice(nft) = %v", err)
	}
}
