package project

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/forward/iptables"
	"github.com/nsrun/nsrun/forward/nftables"
	"github.com/nsrun/nsrun/host"
	"github.com/nsrun/nsrun/hostfw"
	"github.com/nsrun/nsrun/keeper"
	"github.com/nsrun/nsrun/state"
	"github.com/nsrun/nsrun/supervise"
)

// dropTables is a backend whose FORWARD policy is DROP.
const dropTables = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"

// TestHealRepairsWhatWasRemoved: rules removed behind nsrun's back (as
// iptables -F does) come back in one repair, which is counted and logged;
// a second look finds nothing to do.
func TestHealRepairsWhatWasRemoved(t *testing.T) {
	sys := newFake()
	e := newEngine(t, sys)
	ctx := context.Background()
	if _, err := e.Up(ctx, spec(t, twoNamespaces)); err != nil {
		t.Fatal(err)
	}
	if !e.Keeper.(*fakeKeeper).running {
		t.Error("up of a project that heals did not start the keeper")
	}
	healthy := sys.fingerprint()
	if repairs, err := e.Heal(ctx, nil); err != nil || len(repairs) != 0 {
		t.Fatalf("Heal of a healthy project = %v, %v; want nothing to do", repairs, err)
	}
	sys.fw[iptables.NFT].Remove(ctx, "demo")
	if sys.fingerprint() == healthy {
		t.Fatal("the removal changed nothing")
	}
	repairs, err := e.Heal(ctx, []string{string(hostfw.NFTablesChanged)})
	if err != nil || len(repairs) != 1 || repairs[0].Err != nil || repairs[0].Project != "demo" {
		t.Fatalf("Heal = %+v, %v; want one repair of demo", repairs, err)
	}
	if sys.fingerprint() != healthy {
		t.Errorf("after the repair: %s\nwant %s", sys.fingerprint(), healthy)
	}
	if !strings.Contains(repairs[0].String(), "rule missing from") || !strings.Contains(repairs[0].String(), "(after: nftables changed") {
		t.Errorf("repair line %q", repairs[0].String())
	}
	if again, err := e.Heal(ctx, nil); err != nil || len(again) != 0 {
		t.Errorf("second Heal = %v, %v; want nothing to do", again, err)
	}
	h := e.Store.Repairs("demo")
	if h.Repairs != 1 || h.LastRepair.IsZero() || len(h.LastFixed) == 0 || !slices.Equal(h.LastCause, []string{string(hostfw.NFTablesChanged)}) {
		t.Errorf("recorded %+v", h)
	}
	log, _ := os.ReadFile(supervise.SupervisorLog(e.Store.ProjectDir("demo")))
	if !strings.Contains(string(log), "keeper: repaired project demo") {
		t.Errorf("supervisor.log lacks the repair:\n%s", log)
	}
	if r, err := e.Status(ctx, "demo"); err != nil || r.Heal.Repairs != 1 || len(r.Drift) != 0 {
		t.Errorf("status after the repair: %+v, %v", r, err)
	}
	// A repair that cannot be recorded is still made, and the keeper is
	// told why status will not show it.
	if err := os.Remove(e.Store.RepairsFile("demo")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(e.Store.RepairsFile("demo"), 0o700); err != nil {
		t.Fatal(err)
	}
	sys.fw[iptables.NFT].Remove(ctx, "demo")
	repairs, err = e.Heal(ctx, nil)
	if len(repairs) != 1 || repairs[0].Err != nil || err == nil || !strings.Contains(err.Error(), "recording the repair of project demo") {
		t.Errorf("Heal with repairs.json unwritable = %+v, %v; want the repair made and an error that says it was not recorded", repairs, err)
	}
	if sys.fingerprint() != healthy {
		t.Errorf("after the unrecorded repair: %s\nwant %s", sys.fingerprint(), healthy)
	}
	os.Remove(e.Store.RepairsFile("demo"))
	if _, err := e.Down(ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	if e.Keeper.(*fakeKeeper).running {
		t.Error("the keeper still runs after the last project went")
	}
}

// TestHealDoesNotLookWhileUpOrDownRuns: while an up or down holds the
// lock, Heal reads nothing and says ErrBusy; once it is released, the
// next look repairs what differs.
func TestHealDoesNotLookWhileUpOrDownRuns(t *testing.T) {
	sys := newFake()
	e := newEngine(t, sys)
	ctx := context.Background()
	if _, err := e.Up(ctx, spec(t, twoNamespaces)); err != nil {
		t.Fatal(err)
	}
	healthy := sys.fingerprint()
	looks := 0
	observe := e.Observe
	e.Observe = func(ctx context.Context, q host.Query) (host.Observed, error) {
		looks++
		return observe(ctx, q)
	}
	sys.fw[iptables.NFT].Remove(ctx, "demo")
	lock, err := e.Store.Lock(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lock.Unlock) // a second Unlock does nothing
	if busy, err := e.Store.Busy(); err != nil || !busy {
		t.Fatalf("Busy with the lock held = %v, %v; want true", busy, err)
	}
	if repairs, err := e.Heal(ctx, nil); !errors.Is(err, keeper.ErrBusy) || len(repairs) != 0 || looks != 0 {
		t.Fatalf("Heal with the lock held = %v, %v after %d looks; want ErrBusy and no look", repairs, err, looks)
	}
	lock.Unlock()
	if busy, err := e.Store.Busy(); err != nil || busy {
		t.Fatalf("Busy with the lock released = %v, %v; want false", busy, err)
	}
	if repairs, err := e.Heal(ctx, nil); err != nil || len(repairs) != 1 || looks == 0 {
		t.Fatalf("Heal after the lock was released = %v, %v after %d looks; want one repair", repairs, err, looks)
	}
	if sys.fingerprint() != healthy {
		t.Errorf("after the repair: %s\nwant %s", sys.fingerprint(), healthy)
	}
}

// TestHealRepairsTheCounting: the counters of a project's ports removed
// behind nsrun's back are drift, which status reports and one repair puts
// back.
func TestHealRepairsTheCounting(t *testing.T) {
	sys := newFake()
	e := newEngine(t, sys)
	ctx := context.Background()
	if _, err := e.Up(ctx, spec(t, twoNamespaces)); err != nil {
		t.Fatal(err)
	}
	healthy := sys.fingerprint()
	if err := sys.counting.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if r, err := e.Status(ctx, "demo"); err != nil || !slices.ContainsFunc(r.Drift, func(d Drift) bool { return strings.Contains(d.Message, nftables.CountTable) }) {
		t.Errorf("status after the counting table went: %+v, %v; want its drift", r.Drift, err)
	}
	repairs, err := e.Heal(ctx, []string{string(hostfw.NFTablesChanged)})
	if err != nil || len(repairs) != 1 || repairs[0].Err != nil {
		t.Fatalf("Heal = %+v, %v; want one repair", repairs, err)
	}
	if sys.fingerprint() != healthy {
		t.Errorf("after the repair: %s\nwant %s", sys.fingerprint(), healthy)
	}
	if _, err := e.Down(ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	if dump := sys.countingDump(); dump != "map[]" {
		t.Errorf("counters left after down: %s", dump)
	}
}

// TestHealAddsAcceptsForANewDrop: another backend's FORWARD policy turned
// to DROP after up gets the project's accepts, and the record says so.
func TestHealAddsAcceptsForANewDrop(t *testing.T) {
	sys := newFake()
	e := newEngine(t, sys)
	ctx := context.Background()
	if _, err := e.Up(ctx, spec(t, twoNamespaces)); err != nil {
		t.Fatal(err)
	}
	sys.fw[iptables.Legacy], _ = iptables.NewFake(iptables.Legacy, dropTables)
	repairs, err := e.Heal(ctx, []string{"iptables-legacy changed"})
	if err != nil || len(repairs) != 1 || repairs[0].Err != nil {
		t.Fatalf("Heal = %+v, %v", repairs, err)
	}
	st, _ := e.Store.Load("demo")
	if !slices.Equal(st.Accepts, []forward.Backend{iptables.Legacy}) {
		t.Errorf("recorded accepts %v; want iptables-legacy", st.Accepts)
	}
	tables, _ := sys.fw[iptables.Legacy].Read(ctx)
	if d := tables.Drift(st.ForwardProject(), true); len(d) != 0 {
		t.Errorf("iptables-legacy lacks the accepts: %v", d)
	}
}

// TestHealZone: firewalld running at up gets the links in its zone; a
// reload (which forgets them) is repaired; down takes them out.
func TestHealZone(t *testing.T) {
	sys := newFake()
	sys.firewalld = map[string]string{"eth0": "public"}
	e := newEngine(t, sys)
	ctx := context.Background()
	clean := sys.fingerprint()
	out, err := e.Up(ctx, spec(t, twoNamespaces))
	if err != nil {
		t.Fatal(err)
	}
	if sys.firewalld["nsr-ns1"] != hostfw.Zone || sys.firewalld["nsr-ns2"] != hostfw.Zone {
		t.Fatalf("after up firewalld has %v", sys.firewalld)
	}
	if h := AssessHost(mustObserve(t, sys), []*state.Record{out.State}); !h.Passes || h.Firewalld == nil {
		t.Errorf("host report %+v", h)
	}
	sys.firewalld = map[string]string{"eth0": "public"} // firewall-cmd --reload
	r, _ := e.Status(ctx, "demo")
	if !hasKind(r.Drift, DriftZone) || r.Host.Passes {
		t.Errorf("status after a reload: drift %v, host passes %v", r.Drift, r.Host.Passes)
	}
	repairs, err := e.Heal(ctx, []string{string(hostfw.FirewalldReload)})
	if err != nil || len(repairs) != 1 || sys.firewalld["nsr-ns1"] != hostfw.Zone || sys.firewalld["nsr-ns2"] != hostfw.Zone {
		t.Fatalf("Heal = %+v, %v; firewalld has %v", repairs, err, sys.firewalld)
	}
	if _, err := e.Down(ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	if sys.fingerprint() != clean {
		t.Errorf("after down %s\nwant %s", sys.fingerprint(), clean)
	}
}

// TestHealLeavesAlone: a project up with --no-heal, and one whose down
// began, are not repaired; the keeper runs for one up with --no-heal only
// to hold its published ports.
func TestHealLeavesAlone(t *testing.T) {
	ctx := context.Background()
	quiet := newEngine(t, newFake())
	quiet.NoHeal = true
	if _, err := quiet.Up(ctx, spec(t, "namespaces: {q1: {}}\n")); err != nil {
		t.Fatal(err)
	}
	if quiet.Keeper.(*fakeKeeper).running {
		t.Error("the keeper runs for a project up with --no-heal that publishes no port")
	}
	sys := newFake()
	e := newEngine(t, sys)
	e.NoHeal = true
	if _, err := e.Up(ctx, spec(t, twoNamespaces)); err != nil {
		t.Fatal(err)
	}
	if !e.Keeper.(*fakeKeeper).running {
		t.Error("no keeper runs to hold the ports of a project up with --no-heal")
	}
	e.NoHeal = false
	if _, err := e.Up(ctx, spec(t, "name: other\nnamespaces:\n  ns9: {ports: [\"6009:80\"]}\n")); err != nil {
		t.Fatal(err)
	}
	if err := e.Store.MarkRemoving("other"); err != nil {
		t.Fatal(err)
	}
	if e.Store.Heals() {
		t.Error("heals() counts a project being removed")
	}
	for _, fw := range sys.fw {
		fw.Remove(ctx, "demo")
		fw.Remove(ctx, "other")
	}
	broken := sys.fingerprint()
	if repairs, err := e.Heal(ctx, nil); err != nil || len(repairs) != 0 || sys.fingerprint() != broken {
		t.Errorf("Heal = %v, %v; want nothing repaired", repairs, err)
	}
	// An up takes the project back.
	if _, err := e.Up(ctx, spec(t, "name: other\nnamespaces:\n  ns9: {ports: [\"6009:80\"]}\n")); err != nil || e.Store.Removing("other") {
		t.Errorf("up after a down began: %v, removing %v", err, e.Store.Removing("other"))
	}
}

// TestRollbackTakesLinksOutOfTheZone fails each change of an up on a host
// with firewalld: the zone is as before too.
func TestRollbackTakesLinksOutOfTheZone(t *testing.T) {
	for k := 1; ; k++ {
		sys := newFake()
		sys.firewalld = map[string]string{}
		e := newEngine(t, sys)
		clean := sys.fingerprint()
		sys.failAt = k
		if _, err := e.Up(context.Background(), spec(t, twoNamespaces)); err == nil {
			return
		}
		if sys.fingerprint() != clean {
			t.Errorf("k=%d: after rollback %s, want %s", k, sys.fingerprint(), clean)
		}
	}
}

func mustObserve(t *testing.T, sys *fakeSystem) host.Observed {
	t.Helper()
	obs, err := sys.observe(context.Background(), host.Query{})
	if err != nil {
		t.Fatal(err)
	}
	return obs
}

func TestAssessHost(t *testing.T) {
	st := FromSpec(spec(t, twoNamespaces))
	st.Backend = iptables.NFT
	legacyDrop, _ := iptables.ParseSave(dropTables)
	nftRules, _ := iptables.ParseSave("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n:ufw-before-forward - [0:0]\n:DOCKER-USER - [0:0]\n" +
		"-A FORWARD -i eth9 -j DROP\n-A FORWARD -m comment --comment nsrun -j NSRUN-FORWARD\nCOMMIT\n")
	obs := host.Observed{
		Tables: map[forward.Backend]forward.Tables{iptables.Legacy: legacyDrop, iptables.NFT: nftRules},
		Host: hostfw.Host{
			Firewalld: hostfw.Firewalld{Running: true, Version: "1.3.3", Backend: "nftables", DefaultZone: "public",
				Interfaces: map[string]string{"nsr-ns1": hostfw.Zone, "eth0": "external"}},
			UFW:     hostfw.UFW{Installed: true, Enabled: true, Forward: "DROP"},
			NFT:     []hostfw.Chain{{Family: "inet", Table: "filter", Name: "forward", Hook: "forward", Ends: "policy drop"}},
			Uplinks: []string{"eth0"},
		},
	}
	h := AssessHost(obs, []*state.Record{st})
	byFirewall := map[string]Finding{}
	for _, f := range h.Findings {
		byFirewall[f.Firewall] = f
	}
	for name, want := range map[string]struct {
		passes bool
		text   string
	}{
		"firewalld":       {false, "nsr-ns2 not in zone trusted"}, // nsr-ns2 lost its zone
		"ufw":             {true, "ufw is active in iptables-nft"},
		"docker":          {true, "DOCKER-USER"},
		"iptables-nft":    {false, "drops before nsrun's accepts (-A FORWARD -i eth9 -j DROP)"},
		"iptables-legacy": {false, "FORWARD accepts of project demo are missing"},
		"nftables":        {false, "chain inet filter forward (hook forward) ends in policy drop"},
	} {
		f, ok := byFirewall[name]
		if !ok {
			t.Errorf("no finding for %s in %+v", name, h.Findings)
			continue
		}
		if f.Passes != want.passes || !strings.Contains(f.Found+" "+f.Action, want.text) {
			t.Errorf("%s: %+v; want passes %v and %q", name, f, want.passes, want.text)
		}
	}
	if !strings.Contains(byFirewall["firewalld"].Found, "uplink eth0 in zone external") {
		t.Errorf("firewalld finding %q lacks the uplink's zone", byFirewall["firewalld"].Found)
	}
	if h.Passes {
		t.Error("the host passes with findings that block")
	}
	if w := h.Warnings(); len(w) != 2 || !strings.Contains(strings.Join(w, "\n"), "nft insert rule inet filter forward iifname 'nsr-*' accept") {
		t.Errorf("warnings %q; want the nftables table's and iptables-nft's, with their commands", w)
	}
	clean := AssessHost(host.Observed{}, nil)
	if doc, _ := json.Marshal(clean); !clean.Passes || string(doc) != `{"passes":true,"findings":[],"uplinks":[]}` {
		t.Errorf("a host with nothing: %s", doc)
	}
}

// TestKeepLoop runs the keeper's loop on the fake host: it looks at once,
// repairs after an event with the event as the cause, and ends by itself
// once no project heals.
func TestKeepLoop(t *testing.T) {
	sys := newFake()
	e := newEngine(t, sys)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := e.Up(ctx, spec(t, twoNamespaces)); err != nil {
		t.Fatal(err)
	}
	events := make(chan hostfw.Event, 1)
	done := make(chan error, 1)
	go func() {
		done <- keeper.Run(ctx, e.Store.Dir, e, events, 100*time.Millisecond, func(context.Context) string { return "" })
	}()
	waitFor(t, func() bool { _, err := os.Stat(keeper.StatusFile(e.Store.Dir)); return err == nil }, "keeper.json")
	sys.mu.Lock()
	sys.fw[iptables.NFT].Remove(ctx, "demo")
	sys.mu.Unlock()
	events <- hostfw.FirewalldReload
	waitFor(t, func() bool { return e.Store.Repairs("demo").Repairs == 1 }, "the repair")
	if h := e.Store.Repairs("demo"); !slices.Contains(h.LastCause, string(hostfw.FirewalldReload)) {
		t.Errorf("repair causes %v; want the event", h.LastCause)
	}
	// The project goes (as a down does, here behind the loop's back): the
	// loop ends at its next look.
	if err := e.Store.MarkRemoving("demo"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Error(err)
		}
	case <-ctx.Done():
		t.Fatal("the keeper's loop did not end once no project healed")
	}
}

func waitFor(t *testing.T, ok func() bool, what string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 10 s", what)
		}
	}
}
