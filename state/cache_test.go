package state

import (
	"errors"
	"testing"

	"github.com/nsrun/nsrun/specs"
)

// TestCache: a record is decoded once while its file stays the same, and
// again once Save wrote it anew; a removed record is ErrNoRecord.
func TestCache(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	r := &Record{Version: Version, Project: "p"}
	if err := st.Save(r); err != nil {
		t.Fatal(err)
	}
	var c Cache
	first, err := c.Load(st, "p")
	if err != nil {
		t.Fatal(err)
	}
	if again, err := c.Load(st, "p"); err != nil || again != first {
		t.Errorf("a second Load of the same file decoded it again (%v)", err)
	}
	r.Backend = "nftables"
	if err := st.Save(r); err != nil {
		t.Fatal(err)
	}
	if changed, err := c.Load(st, "p"); err != nil || changed == first || changed.Backend != "nftables" {
		t.Errorf("after Save: %+v, %v; want the new record", changed, err)
	}
	if err := st.Remove("p"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Load(st, "p"); !errors.Is(err, ErrNoRecord) {
		t.Errorf("a removed record: %v; want ErrNoRecord", err)
	}
}

// TestCacheTrim: a cache with Trim keeps and returns what Trim keeps of a
// record, trimmed once while the file stays the same.
func TestCacheTrim(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	r := &Record{Version: Version, Project: "p", Namespaces: []*Namespace{{Name: "a", Link: "nsr-a"}, {Name: "b", Link: "nsr-b"}}}
	if err := st.Save(r); err != nil {
		t.Fatal(err)
	}
	trims := 0
	c := Cache{Trim: func(r *Record) *Record {
		trims++
		out := *r
		out.Namespaces = r.Namespaces[1:]
		return &out
	}}
	for range 2 {
		got, err := c.Load(st, "p")
		if err != nil || len(got.Namespaces) != 1 || got.Namespaces[0].Name != "b" || trims != 1 {
			t.Errorf("Load: %+v, %v after %d trims; want namespace b alone, trimmed once", got, err, trims)
		}
	}
}

// TestHealingFrom: the keeper's cached read keeps what Healing keeps: not
// the project up --no-heal, not the one whose down began.
func TestHealingFrom(t *testing.T) {
	st := Store{Dir: t.TempDir()}
	for _, r := range []*Record{{Version: Version, Project: "kept"}, {Version: Version, Project: "noheal", NoHeal: true}, {Version: Version, Project: "going"}} {
		if err := st.Save(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.MarkRemoving("going"); err != nil {
		t.Fatal(err)
	}
	var c Cache
	for _, got := range [][]*Record{st.Healing(), st.HealingFrom(&c), st.HealingFrom(&c)} {
		if len(got) != 1 || got[0].Project != "kept" {
			t.Errorf("healing records: %+v; want kept alone", got)
		}
	}
	if !st.Heals() || !st.HealsFrom(&c) || st.Publishes() || st.PublishesFrom(&c) {
		t.Errorf("heals %t, through the cache %t; publishes %t, through the cache %t; want heals, publishes not", st.Heals(), st.HealsFrom(&c), st.Publishes(), st.PublishesFrom(&c))
	}
	pub := &Record{Version: Version, Project: "noheal", NoHeal: true, Namespaces: []*Namespace{{Name: "a", Link: "nsr-a", Ports: []specs.Port{specs.MustParsePort("6000:8080")}}}}
	if err := st.Save(pub); err != nil {
		t.Fatal(err)
	}
	if !st.Publishes() || !st.PublishesFrom(&c) {
		t.Errorf("a project that publishes, not healed: publishes %t, through the cache %t", st.Publishes(), st.PublishesFrom(&c))
	}
}
