package forward

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
)

// memoryFirewall holds, per project, what Ensure put there: "rules" or
// "accepts".
type memoryFirewall struct {
	backend   Backend
	installed bool
	held      map[string]string
	swept     bool
	log       *events // when not nil, each read and write is noted
}

// events notes what happened, from any goroutine.
type events struct {
	mu   sync.Mutex
	list []string
}

func (e *events) note(what string) {
	if e == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, what)
}

func (m *memoryFirewall) Backend() Backend { return m.backend }
func (m *memoryFirewall) Installed() bool  { return m.installed }
func (m *memoryFirewall) Read(context.Context) (Tables, error) {
	return stub{publishes: len(m.held) > 0}, nil
}
func (m *memoryFirewall) Script(Project) string                        { return "" }
func (m *memoryFirewall) Probe(context.Context) error                  { return nil }
func (m *memoryFirewall) MadeTables(context.Context) ([]string, error) { return nil, nil }
func (m *memoryFirewall) RemoveEmptyTables(context.Context, []string) error {
	return nil
}
func (m *memoryFirewall) PrepareEnsure(_ context.Context, p Project, acceptsOnly bool) (func(context.Context) error, error) {
	m.log.note(string(m.backend) + " read")
	return func(context.Context) error {
		m.held[p.Name] = map[bool]string{false: "rules", true: "accepts"}[acceptsOnly]
		m.log.note(string(m.backend) + " written")
		return nil
	}, nil
}
func (m *memoryFirewall) PrepareRemove(_ context.Context, project string) (func(context.Context) error, error) {
	m.log.note(string(m.backend) + " read")
	if _, ok := m.held[project]; !ok {
		return nil, nil
	}
	return func(context.Context) error {
		delete(m.held, project)
		m.log.note(string(m.backend) + " written")
		return nil
	}, nil
}
func (m *memoryFirewall) Remove(_ context.Context, project string) error {
	delete(m.held, project)
	return nil
}
func (m *memoryFirewall) Sweep(context.Context) error {
	m.held, m.swept = map[string]string{}, true
	return nil
}

// memoryShortcut holds the projects that have shortcuts.
type memoryShortcut struct {
	set   []string
	swept bool
}

func (m *memoryShortcut) Set(p Project) error {
	if !slices.Contains(m.set, p.Name) {
		m.set = append(m.set, p.Name)
	}
	return nil
}
func (m *memoryShortcut) Remove(project string) error {
	m.set = slices.DeleteFunc(m.set, func(s string) bool { return s == project })
	return nil
}
func (m *memoryShortcut) Sweep() error { m.set, m.swept = nil, true; return nil }

// TestPublisherPutsRulesWhereThePlacementSays: the project's rules go to
// its backend, its accepts to the others named, nothing of it stays in
// another installed backend, and its shortcuts follow; Remove takes it
// from every installed backend whatever the placement was; Sweep sweeps
// them all. A backend that is not installed is never asked.
func TestPublisherPutsRulesWhereThePlacementSays(t *testing.T) {
	ctx := context.Background()
	nftFW := &memoryFirewall{backend: nft, installed: true, held: map[string]string{}}
	ipnftFW := &memoryFirewall{backend: ipnft, installed: true, held: map[string]string{}}
	legacyFW := &memoryFirewall{backend: iplegacy, installed: false, held: map[string]string{"p": "rules"}}
	sc := &memoryShortcut{}
	pub := Publisher{Firewalls: []Firewall{ipnftFW, legacyFW, nftFW}, Shortcut: sc}
	held := func() string {
		return strings.Join([]string{ipnftFW.held["p"], legacyFW.held["p"], nftFW.held["p"]}, ",")
	}

	p := Project{Name: "p"}
	if err := pub.Apply(ctx, Placement{Backend: nft, Accepts: []Backend{ipnft}}, p); err != nil {
		t.Fatal(err)
	}
	if got := held(); got != "accepts,rules,rules" || !slices.Equal(sc.set, []string{"p"}) {
		t.Errorf("after Apply to nftables with accepts in iptables-nft: %q, shortcuts %q; want accepts,rules,rules (iptables-legacy not installed: untouched) and [p]", got, sc.set)
	}
	if err := pub.Apply(ctx, Placement{Backend: ipnft}, p); err != nil {
		t.Fatal(err)
	}
	if got := held(); got != "rules,rules," {
		t.Errorf("after moving to iptables-nft: %q; want rules,rules, (nftables' copy removed)", got)
	}
	if err := pub.Apply(ctx, Placement{Backend: "iptables-other"}, p); err == nil || !strings.Contains(err.Error(), "no firewall backend") {
		t.Errorf("Apply to a backend that does not exist: %v", err)
	}
	if err := pub.Remove(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	if got := held(); got != ",rules," || len(sc.set) != 0 {
		t.Errorf("after Remove: %q, shortcuts %q; want ,rules, and none", got, sc.set)
	}
	if err := pub.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if !ipnftFW.swept || !nftFW.swept || legacyFW.swept || !sc.swept {
		t.Errorf("Sweep swept iptables-nft %v, nftables %v, iptables-legacy (not installed) %v, the shortcut %v", ipnftFW.swept, nftFW.swept, legacyFW.swept, sc.swept)
	}
	tables, order, err := pub.Read(ctx)
	if err != nil || len(tables) != 2 || !slices.Equal(order, []Backend{ipnft, nft}) {
		t.Errorf("Read: %v %v %v; want the two installed backends, in order", tables, order, err)
	}
}

// memoryCounting notes when the table is read and when written.
type memoryCounting struct {
	log *events
}

func (m memoryCounting) Installed() bool { return true }
func (m memoryCounting) Prepare(_ context.Context, p Project) (func(context.Context) error, error) {
	m.log.note("counting read")
	return func(context.Context) error {
		m.log.note("counting written")
		return nil
	}, nil
}
func (m memoryCounting) Remove(context.Context, string) error                { return nil }
func (m memoryCounting) Sweep(context.Context) error                         { return nil }
func (m memoryCounting) Read(context.Context) (CountingState, error)         { return nil, nil }
func (m memoryCounting) Traffic(context.Context, []Project) (Traffic, error) { return nil, nil }

// TestApplyReadsEveryTableBeforeAnyWrite: every table Apply changes, the
// counting table's too, is read before any is written (so at the
// generation the keeper cached), and then each is written.
func TestApplyReadsEveryTableBeforeAnyWrite(t *testing.T) {
	log := &events{}
	ipt := &memoryFirewall{backend: ipnft, installed: true, held: map[string]string{}, log: log}
	nf := &memoryFirewall{backend: nft, installed: true, held: map[string]string{"p": "rules"}, log: log}
	pub := Publisher{Firewalls: []Firewall{ipt, nf}, Shortcut: &memoryShortcut{}, Counting: memoryCounting{log: log}}
	if err := pub.Apply(context.Background(), Placement{Backend: ipnft}, Project{Name: "p"}); err != nil {
		t.Fatal(err)
	}
	reads, writes := log.list[:3], log.list[3:]
	slices.Sort(reads)
	if want := []string{"counting read", string(ipnft) + " read", string(nft) + " read"}; !slices.Equal(reads, want) {
		t.Errorf("Apply did %q; want first the reads %q", log.list, want)
	}
	if !slices.Contains(writes, "counting written") || slices.Index(writes, string(ipnft)+" written") > slices.Index(writes, string(nft)+" written") || len(writes) != 3 {
		t.Errorf("Apply did %q; want then the writes: the counting, and %s before the removal from %s", log.list, ipnft, nft)
	}
	if ipt.held["p"] != "rules" || nf.held["p"] != "" {
		t.Errorf("after Apply: %s holds %q, %s %q; want rules and nothing", ipnft, ipt.held["p"], nft, nf.held["p"])
	}
}

// readyFirewall is a memoryFirewall that can be readied.
type readyFirewall struct{ *memoryFirewall }

func (readyFirewall) Ready(context.Context) error { return nil }

// readyCounting is a memoryCounting that can be readied.
type readyCounting struct{ memoryCounting }

func (readyCounting) Ready(context.Context) error { return nil }

// TestReadyNamesWhatTheWriteChanges: what Ready readies are the counting
// table and the backends placed, those that can be readied and are
// installed; not the others, which a write only reads.
func TestReadyNamesWhatTheWriteChanges(t *testing.T) {
	ipt := readyFirewall{&memoryFirewall{backend: ipnft, installed: true}}
	nf := readyFirewall{&memoryFirewall{backend: nft, installed: true}}
	legacy := &memoryFirewall{backend: iplegacy, installed: true} // cannot be readied
	count := readyCounting{}
	pub := Publisher{Firewalls: []Firewall{ipt, nf, legacy}, Shortcut: &memoryShortcut{}, Counting: count}
	for _, c := range []struct {
		at   Placement
		want []Readier
	}{
		{Placement{Backend: ipnft}, []Readier{count, ipt}},
		{Placement{Backend: nft}, []Readier{count, nf}},
		{Placement{Backend: iplegacy, Accepts: []Backend{nft}}, []Readier{count, nf}},
	} {
		if got := pub.readiers(c.at); !slices.Equal(got, c.want) {
			t.Errorf("placed %+v: readied %v; want %v", c.at, got, c.want)
		}
	}
	nf.installed = false
	if got := pub.readiers(Placement{Backend: nft}); !slices.Equal(got, []Readier{count}) {
		t.Errorf("with nft not installed: readied %v; want the counting table alone", got)
	}
	pub.Counting = memoryCounting{}
	if got := pub.readiers(Placement{Backend: ipnft}); !slices.Equal(got, []Readier{ipt}) {
		t.Errorf("with a counting table that cannot be readied: %v; want %s alone", got, ipnft)
	}
}
