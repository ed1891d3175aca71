package project

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/forward/iptables"
	"github.com/nsrun/nsrun/forward/nftables"
	"github.com/nsrun/nsrun/host"
	"github.com/nsrun/nsrun/internal/atomicfile"
	"github.com/nsrun/nsrun/internal/sysctl"
	"github.com/nsrun/nsrun/netns"
	"github.com/nsrun/nsrun/specs"
	"github.com/nsrun/nsrun/state"
)

func spec(t *testing.T, src string) *specs.Spec {
	t.Helper()
	s, err := specs.Parse("demo.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const twoNamespaces = `namespaces:
  ns1: {ports: ["6000:8080", "6100:9090/udp"]}
  ns2: {ports: ["6001:8080"]}
`

func newEngine(t *testing.T, sys *fakeSystem) *Engine {
	return &Engine{Store: state.Store{Dir: filepath.Join(t.TempDir(), "nsrun")}, System: sys, Publisher: sys, Sweeper: sys, Supervision: &fakeSupervision{},
		Keeper: &fakeKeeper{}, Observe: sys.observe}
}

func TestUpAndDown(t *testing.T) {
	sys := newFake()
	e := newEngine(t, sys)
	ctx := context.Background()
	clean := sys.fingerprint()
	out, err := e.Up(ctx, spec(t, twoNamespaces))
	if err != nil {
		t.Fatal(err)
	}
	st := out.State
	if len(sys.namespaces) != 2 || len(sys.links) != 2 || len(sys.projects()) != 1 || sys.ipForward != "1" {
		t.Fatalf("after up: %s", sys.fingerprint())
	}
	loaded, err := e.Store.Load("demo")
	if err != nil || len(loaded.Namespaces) != 2 || loaded.Backend != iptables.NFT || loaded.Namespace("ns1").Address != st.Namespace("ns1").Address {
		t.Fatalf("recorded state %+v, %v", loaded, err)
	}
	info, err := os.Stat(filepath.Join(e.Store.Dir, "demo"))
	if err != nil || info.Mode().Perm() != 0o700 {
		t.Errorf("state directory mode %v, %v; want 0700", info.Mode().Perm(), err)
	}
	// A second up changes nothing at all, and says so.
	sys.log = nil
	again, err := e.Up(ctx, spec(t, twoNamespaces))
	if err != nil {
		t.Fatal(err)
	}
	if !again.UpToDate || len(sys.log) > 0 {
		t.Errorf("second up: up to date %v, changes %v; want none", again.UpToDate, sys.log)
	}
	found, err := e.Down(ctx, "demo")
	if err != nil || !found {
		t.Fatalf("Down = %v, %v", found, err)
	}
	if sys.fingerprint() != clean {
		t.Errorf("after down: %s, want %s", sys.fingerprint(), clean)
	}
	if _, err := os.Stat(e.Store.Dir); !os.IsNotExist(err) {
		t.Errorf("state directory left after the last down: %v", err)
	}
	if found, err := e.Down(ctx, "demo"); err != nil || found {
		t.Errorf("down of a vanished project = %v, %v; want false, nil", found, err)
	}
}

// TestRollbackAfterEveryStep fails the k-th change of an up for every k
// and checks that the host and the record are as before.
func TestRollbackAfterEveryStep(t *testing.T) {
	t.Run("ipv4", func(t *testing.T) { rollbackAfterEveryStep(t, twoNamespaces) })
	// With IPv6: forwarding and accept_ra go back too.
	t.Run("ipv6", func(t *testing.T) { rollbackAfterEveryStep(t, "ipv6: true\n"+twoNamespaces) })
	// With resource limits: the cgroups go too.
	t.Run("limits", func(t *testing.T) { rollbackAfterEveryStep(t, limitedSpec) })
}

func rollbackAfterEveryStep(t *testing.T, src string) {
	for k := 1; ; k++ {
		sys := newFake()
		sys.raLinks = map[string]bool{"eth1": true}
		sys.sysctls["net/ipv6/conf/eth1/accept_ra"] = "1"
		e := newEngine(t, sys)
		clean := sys.fingerprint()
		sys.failAt = k
		_, err := e.Up(context.Background(), spec(t, src))
		if err == nil {
			if k < 3 {
				t.Fatal("no change was made at all")
			}
			return // k is past the last change
		}
		if !strings.Contains(err.Error(), "injected failure") || !strings.Contains(err.Error(), "what this run created was removed") {
			t.Errorf("k=%d: error %v", k, err)
		}
		if sys.fingerprint() != clean {
			t.Errorf("k=%d: after rollback %s, want %s (changes: %v)", k, sys.fingerprint(), clean, sys.log)
		}
		if _, err := os.Stat(e.Store.Dir); !os.IsNotExist(err) {
			t.Errorf("k=%d: state left behind", k)
		}
	}
}

// TestRollbackOfAReconcile fails a reconcile at every step: the project
// must be as it was, its first namespaces untouched.
func TestRollbackOfAReconcile(t *testing.T) {
	edited := `namespaces:
  ns1: {ports: ["6000:8080"]}
  ns3: {ports: ["6003:8080"]}
`
	for k := 1; ; k++ {
		sys := newFake()
		e := newEngine(t, sys)
		if _, err := e.Up(context.Background(), spec(t, twoNamespaces)); err != nil {
			t.Fatal(err)
		}
		before := sys.fingerprint()
		sys.calls, sys.failAt = 0, k
		_, err := e.Up(context.Background(), spec(t, edited))
		if err == nil {
			if !sys.namespaces["ns3"] || sys.namespaces["ns2"] {
				t.Errorf("reconcile result %s", sys.fingerprint())
			}
			return
		}
		st, lerr := e.Store.Load("demo")
		if lerr != nil || st.Namespace("ns2") == nil || st.Namespace("ns3") != nil {
			t.Errorf("k=%d: record after a failed reconcile: %+v, %v", k, st, lerr)
		}
		// A failure among the removals at the end leaves ns2 half-removed;
		// everything else must be as before.
		if !strings.Contains(strings.Join(sys.log, ","), "del ns2") && sys.fingerprint() != before {
			t.Errorf("k=%d: %s, want %s (changes %v)", k, sys.fingerprint(), before, sys.log)
		}
		if sys.namespaces["ns3"] || sys.links["nsr-ns3"].Host != "" {
			t.Errorf("k=%d: ns3 left after rollback", k)
		}
	}
}

func TestDownAfterACrash(t *testing.T) {
	// up killed after recording and creating a namespace: the record holds
	// both namespaces, and down removes what exists.
	sys := newFake()
	e := newEngine(t, sys)
	want := FromSpec(spec(t, twoNamespaces))
	if err := e.Store.Save(want); err != nil {
		t.Fatal(err)
	}
	sys.CreateNamespace("ns1")
	if found, err := e.Down(context.Background(), "demo"); err != nil || !found {
		t.Fatalf("Down = %v, %v", found, err)
	}
	if len(sys.namespaces) != 0 {
		t.Errorf("left: %s", sys.fingerprint())
	}
}

func TestDownWithoutStateSweepsLabels(t *testing.T) {
	sys := newFake()
	e := newEngine(t, sys)
	if _, err := e.Up(context.Background(), spec(t, twoNamespaces)); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(e.Store.Dir) // state lost
	found, err := e.Down(context.Background(), "demo")
	if err != nil || !found || len(sys.namespaces) != 0 || len(sys.links) != 0 || len(sys.projects()) != 0 {
		t.Errorf("Down = %v, %v; left %s", found, err, sys.fingerprint())
	}
}

func TestDownAllWithCorruptState(t *testing.T) {
	sys := newFake()
	e := newEngine(t, sys)
	if _, err := e.Up(context.Background(), spec(t, twoNamespaces)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.Store.Dir, "demo", "state.json"), []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Down(context.Background(), "demo"); err == nil || !strings.Contains(err.Error(), "corrupt") || !strings.Contains(err.Error(), "down --all") {
		t.Errorf("Down with corrupt state: %v", err)
	}
	if err := e.DownAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(sys.namespaces) != 0 || len(sys.links) != 0 || sys.ipForward != "0" {
		t.Errorf("down --all left %s", sys.fingerprint())
	}
}

func TestPreflightStopsBeforeAnyChange(t *testing.T) {
	sys := newFake()
	sys.namespaces["ns1"] = true // made by someone else
	e := newEngine(t, sys)
	_, err := e.Up(context.Background(), spec(t, twoNamespaces))
	var pf *PreflightError
	if !errors.As(err, &pf) || !strings.Contains(err.Error(), `namespace "ns1" already exists and was not made by project "demo"`) {
		t.Fatalf("Up = %v; want a preflight error about ns1", err)
	}
	if sys.calls != 0 {
		t.Errorf("preflight failure changed things: %v", sys.log)
	}
	if _, err := os.Stat(e.Store.Dir); !os.IsNotExist(err) {
		t.Errorf("preflight failure left the state directory: %v", err)
	}
}

func TestTwoProjects(t *testing.T) {
	sys := newFake()
	e := newEngine(t, sys)
	ctx := context.Background()
	if _, err := e.Up(ctx, spec(t, twoNamespaces)); err != nil {
		t.Fatal(err)
	}
	other, _ := specs.Parse("other.yaml", []byte("namespaces: {o1: {ports: [\"6000:80\"]}}\n"))
	if _, err := e.Up(ctx, other); err == nil || !strings.Contains(err.Error(), `host port 6000/tcp is already published by project "demo" (namespace "ns1")`) {
		t.Errorf("second project on a taken port: %v", err)
	}
	other, _ = specs.Parse("other.yaml", []byte("namespaces: {o1: {ports: [\"7000:80\"]}}\n"))
	if _, err := e.Up(ctx, other); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Down(ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	if sys.ipForward != "1" || len(sys.projects()) != 1 {
		t.Errorf("down of one project undid shared settings: %s", sys.fingerprint())
	}
	if _, err := e.Down(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	if sys.ipForward != "0" {
		t.Error("the last down did not restore ip_forward")
	}
}

func TestLockWaitsAndTimesOut(t *testing.T) {
	sys := newFake()
	e := newEngine(t, sys)
	e.LockTimeout = 200 * time.Millisecond
	waited := false
	e.Waiting = func() { waited = true }
	held, err := e.Store.Lock(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Up(context.Background(), spec(t, twoNamespaces))
	if err == nil || !waited || !strings.Contains(err.Error(), "another nsrun up or down holds") {
		t.Errorf("Up while locked: %v (waited %v)", err, waited)
	}
	if sys.calls != 0 {
		t.Errorf("changes made without the lock: %v", sys.log)
	}
	held.Unlock()
	if _, err := e.Up(context.Background(), spec(t, twoNamespaces)); err != nil {
		t.Errorf("Up after the lock was released: %v", err)
	}
}

func TestDownAfterUpKilledBeforeItsRecord(t *testing.T) {
	sys := newFake()
	e := newEngine(t, sys)
	// up got as far as the lock and the project's directory, with a
	// temporary file but no state.json.
	dir := e.Store.ProjectDir("demo")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, atomicfile.TempPrefix+"state.json-123"), []byte("{"), 0o600)
	if found, err := e.Down(context.Background(), "demo"); err != nil || found {
		t.Errorf("Down = %v, %v", found, err)
	}
	if _, err := os.Stat(e.Store.Dir); !os.IsNotExist(err) {
		t.Errorf("state directory left: %v", err)
	}
}

// TestRollbackAfterCtrlC: an up interrupted (its context cancelled) after
// the forwards were applied still removes them and the rest.
func TestRollbackAfterCtrlC(t *testing.T) {
	sys := newFake()
	e := newEngine(t, sys)
	clean := sys.fingerprint()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sys.failAt, sys.onFail = 9, cancel // the UDP conntrack flush, after the forwards
	if _, err := e.Up(ctx, spec(t, twoNamespaces)); err == nil {
		t.Fatal("up did not fail")
	}
	if sys.fingerprint() != clean {
		t.Errorf("after an interrupted up: %s, want %s (changes %v)", sys.fingerprint(), clean, sys.log)
	}
}

// TestUpWithoutAnyFirewall: no backend installed is refused before any
// change, and leaves no state directory.
func TestUpWithoutAnyFirewall(t *testing.T) {
	sys := newFake()
	sys.fw = map[forward.Backend]forward.Firewall{}
	e := newEngine(t, sys)
	_, err := e.Up(context.Background(), spec(t, twoNamespaces))
	var pf *PreflightError
	if !errors.As(err, &pf) || !strings.Contains(err.Error(), "apt-get install iptables") || !strings.Contains(err.Error(), "apt-get install nftables") {
		t.Errorf("Up = %v; want a preflight error saying how to install iptables or nftables", err)
	}
	if sys.calls != 0 {
		t.Errorf("changes: %v", sys.log)
	}
	if _, err := os.Stat(e.Store.Dir); !os.IsNotExist(err) {
		t.Errorf("state directory left: %v", err)
	}
}

// TestProbeFailure: with no iptables, an nftables that fails its probe
// is refused before any change, saying what to do.
func TestProbeFailure(t *testing.T) {
	sys := newFake()
	delete(sys.fw, iptables.NFT)
	delete(sys.fw, iptables.Legacy)
	sys.probeErr = map[forward.Backend]error{nftables.Backend: errors.New("nft: Operation not supported")}
	e := newEngine(t, sys)
	_, err := e.Up(context.Background(), spec(t, twoNamespaces))
	var pf *PreflightError
	want := "firewall nftables does not work here: no iptables is installed, and nft: Operation not supported; install iptables"
	if !errors.As(err, &pf) || !strings.Contains(err.Error(), want) {
		t.Errorf("Up = %v; want a preflight error containing %q", err, want)
	}
	if sys.calls != 0 {
		t.Errorf("changes: %v", sys.log)
	}
}

// TestFirewallChoice: auto takes iptables where it is installed and
// nftables where it is not; an explicit choice is kept, and moves a
// project's rules when it changes, leaving nothing in the old backend.
func TestFirewallChoice(t *testing.T) {
	ctx := context.Background()
	sys := newFake()
	delete(sys.fw, iptables.NFT)
	delete(sys.fw, iptables.Legacy)
	e := newEngine(t, sys)
	out, err := e.Up(ctx, spec(t, twoNamespaces))
	if err != nil || out.State.Backend != nftables.Backend {
		t.Fatalf("auto without iptables: %v, %v; want nftables", out, err)
	}
	if _, err := e.Down(ctx, out.State.Project); err != nil {
		t.Fatal(err)
	}

	sys = newFake()
	e = newEngine(t, sys)
	if out, err = e.Up(ctx, spec(t, twoNamespaces)); err != nil || out.State.Backend != iptables.NFT {
		t.Fatalf("auto with both: %v, %v; want iptables-nft", out, err)
	}
	e.FirewallChoice = forward.NFTables
	if out, err = e.Up(ctx, spec(t, twoNamespaces)); err != nil || out.State.Backend != nftables.Backend {
		t.Fatalf("--firewall nftables: %v, %v; want the project moved to nftables", out, err)
	}
	if got := sys.tables(iptables.NFT); strings.Contains(got, "NSR") {
		t.Errorf("the move left rules in iptables-nft:\n%s", got)
	}
	e.FirewallChoice = forward.Auto
	if out, err = e.Up(ctx, spec(t, twoNamespaces)); err != nil || out.State.Backend != nftables.Backend || !out.UpToDate {
		t.Errorf("auto after the move: %+v, %v; want it to stay in nftables, up to date", out, err)
	}
	e.FirewallChoice = forward.IPTables
	if out, err = e.Up(ctx, spec(t, twoNamespaces)); err != nil || out.State.Backend != iptables.NFT {
		t.Fatalf("--firewall iptables: %v, %v; want the project moved back", out, err)
	}
	if p := sys.projects(); len(p) != 1 {
		t.Errorf("projects in the backends: %v; want one, in iptables-nft", p)
	}
	if t2, _ := sys.fw[nftables.Backend].Read(ctx); t2.InUse() {
		t.Errorf("the move back left nsrun's table in nftables: %+v", t2)
	}
}

// TestStatusAll: one report per project, from one look at the host; an
// unreadable record is reported as such, and the others still are.
func TestStatusAll(t *testing.T) {
	sys := newFake()
	e := newEngine(t, sys)
	ctx := context.Background()
	looks := 0
	e.Observe = func(ctx context.Context, q host.Query) (host.Observed, error) { looks++; return sys.observe(ctx, q) }
	if _, err := e.Up(ctx, spec(t, twoNamespaces)); err != nil {
		t.Fatal(err)
	}
	other, _ := specs.Parse("other.yaml", []byte("namespaces: {o1: {ports: [\"7000:80\"]}}\n"))
	if _, err := e.Up(ctx, other); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(e.Store.ProjectDir("broken"), 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(e.Store.ProjectDir("broken"), "state.json"), []byte("{garbage"), 0o600)
	sys.mu.Lock()
	delete(sys.namespaces, "o1") // drift in one project
	sys.mu.Unlock()
	looks = 0
	reports, err := e.StatusAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if looks != 1 || len(reports) != 3 {
		t.Fatalf("%d reports from %d looks at the host; want 3 from 1", len(reports), looks)
	}
	for _, r := range reports {
		switch r.Project {
		case "broken":
			if r.Err == nil || !strings.Contains(r.Err.Error(), "corrupt") {
				t.Errorf("broken: %v", r.Err)
			}
		case "demo":
			if r.Err != nil || len(r.Drift) != 0 {
				t.Errorf("demo: %v, drift %+v", r.Err, r.Drift)
			}
		case "other":
			if r.Err != nil || len(r.Drift) != 1 || r.Drift[0].Kind != DriftNamespace {
				t.Errorf("other: %v, drift %+v", r.Err, r.Drift)
			}
		}
	}
}

// TestRestartRecordsItsGeneration: an up that only restarts processes (the
// supervisor is gone) records the new generation, so that each later one
// asks the supervisor for a generation it does not run yet.
func TestRestartRecordsItsGeneration(t *testing.T) {
	sys := newFake()
	e := newEngine(t, sys)
	sup := &fakeSupervision{}
	e.Supervision = sup
	src := "namespaces:\n  ns1: {run: [{command: [sleep, \"60\"]}]}\n"
	ctx := context.Background()
	for round := 1; round <= 3; round++ {
		sup.plans = sup.plans[:0] // the supervisor is gone: nothing runs
		if _, err := e.Up(ctx, spec(t, src)); err != nil {
			t.Fatal(err)
		}
		st, err := e.Store.Load("demo")
		if err != nil {
			t.Fatal(err)
		}
		if len(sup.plans) != 1 || sup.plans[0].Generation != round || st.Generation != round {
			t.Fatalf("round %d: plans %+v, recorded generation %d; want generation %d in both", round, sup.plans, st.Generation, round)
		}
	}
}

// TestSupervisorToldOnlyOfProcessChanges: a namespace that runs nothing,
// added or removed, is no reason to reload the supervisor; a changed ready
// check is.
func TestSupervisorToldOnlyOfProcessChanges(t *testing.T) {
	sys := newFake()
	e := newEngine(t, sys)
	sup := &fakeSupervision{}
	e.Supervision = sup
	ctx := context.Background()
	base := "namespaces:\n  ns1: {run: [{command: [sleep, \"60\"], ready: {tcp: 80}}]}\n"
	for i, tc := range []struct {
		src    string
		reload bool
	}{
		{base, true}, // the first up starts it
		{base + "  ns2: {}\n", false},
		{base, false},
		{"namespaces:\n  ns1: {run: [{command: [sleep, \"60\"], ready: {tcp: 81}}]}\n", true},
	} {
		before := len(sup.plans)
		if _, err := e.Up(ctx, spec(t, tc.src)); err != nil {
			t.Fatal(err)
		}
		if reloaded := len(sup.plans) > before; reloaded != tc.reload {
			t.Errorf("up %d: supervisor told %v; want %v", i, reloaded, tc.reload)
		}
	}
}

// TestUpAndDownIPv6: a spec with ipv6: true on the fake host: IPv6
// addresses from a default pool of the machine, IPv6 forwarding turned on
// after accept_ra=2 on the link with an RA-learned default route, the
// warning that [::1] is not served where the shortcut cannot run, a second
// up that changes nothing, and a down that puts every sysctl back.
func TestUpAndDownIPv6(t *testing.T) {
	sys := newFake()
	sys.raLinks = map[string]bool{"eth1": true}
	sys.sysctls["net/ipv6/conf/eth1/accept_ra"] = "1"
	e := newEngine(t, sys)
	ctx := context.Background()
	clean := sys.fingerprint()
	src := "ipv6: true\nnamespaces:\n  ns1: {ports: [\"6000:8080\"]}\n  ns2: {address6: \"fd00:9:2::2/64\", ports: [\"[::1]:6001:8080\"]}\n"
	out, err := e.Up(ctx, spec(t, src))
	if err != nil {
		t.Fatal(err)
	}
	ns1, ns2 := out.State.Namespace("ns1"), out.State.Namespace("ns2")
	if pool := specs.DefaultPool6("", 0); !out.State.IPv6 || out.State.Subnet6 != pool || !pool.Contains(ns1.Address6.Addr()) || !ns1.AutoAddress6 {
		t.Errorf("ns1's IPv6 address %v (pool %v); want one of %v", ns1.Address6, out.State.Subnet6, pool)
	}
	if ns2.Address6 != netip.MustParsePrefix("fd00:9:2::2/64") || sys.links["nsr-ns2"].PeerAddr6 != ns2.Address6 || sys.links["nsr-ns2"].HostAddr6 != netip.MustParsePrefix("fd00:9:2::1/64") {
		t.Errorf("ns2: recorded %v, link %+v", ns2.Address6, sys.links["nsr-ns2"])
	}
	if sys.sysctls[sysctl.IPv6Forward] != "1" || sys.sysctls["net/ipv6/conf/eth1/accept_ra"] != "2" {
		t.Errorf("after up: %v", sys.sysctls)
	}
	if !slices.ContainsFunc(out.Warnings, func(w string) bool {
		return strings.Contains(w, "[::1] is not served") || strings.Contains(w, Loopback6NotServed)
	}) {
		t.Errorf("warnings %q; want that [::1] is not served (the fake host has no shortcut)", out.Warnings)
	}
	again, err := e.Up(ctx, spec(t, src))
	if err != nil || !again.UpToDate {
		t.Errorf("second up: up to date %v, %v", again != nil && again.UpToDate, err)
	}
	if _, err := e.Down(ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	if got := sys.fingerprint(); got != clean {
		t.Errorf("after down:\n%s\nwant:\n%s", got, clean)
	}
}

// TestExecGrantRecords: up publishes each granted namespace's exec grant,
// readable by all and written by root only, naming the namespace as it is
// (a namespace made again gets a new record); an up without the grant
// withdraws it, and down removes it.
func TestExecGrantRecords(t *testing.T) {
	sys := newFake()
	e := newEngine(t, sys)
	ctx := context.Background()
	parse := func(src string) *specs.Spec {
		s := spec(t, src)
		if err := specs.ResolveExec(s, func(string) (uint32, error) { return 1000, nil }, func(string) (uint32, error) { return 900, nil }); err != nil {
			t.Fatal(err)
		}
		return s
	}
	granted := "exec: {users: [alice], groups: [devs]}\nnamespaces:\n  ns1: {}\n  ns2: {exec: {}}\n"
	if _, err := e.Up(ctx, parse(granted)); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(e.Store.Dir+"-exec", "ns1")
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o644 {
		t.Fatalf("grant of ns1: %v, %v; want a file of mode 0644", info, err)
	}
	if dir, _ := os.Stat(e.Store.Dir); dir.Mode().Perm() != 0o700 {
		t.Errorf("state directory mode %v; want 0700 (the grants are not in it)", dir.Mode().Perm())
	}
	if proj, _ := os.Stat(e.Store.ProjectDir("demo")); proj.Mode().Perm() != 0o700 {
		t.Errorf("project directory mode %v; want 0700", proj.Mode().Perm())
	}
	g := e.Store.Grants([]string{"ns1", "ns2"})
	if first := g["ns1"]; fmt.Sprint(first.UIDs, first.GIDs) != "[1000] [900]" || first.Cookie != sys.nsIDs["ns1"] || first.Version != netns.GrantVersion {
		t.Errorf("grant of ns1: %+v", first)
	}
	if _, ok := g["ns2"]; ok {
		t.Error("ns2 (exec: {}) was granted")
	}
	if again, err := e.Up(ctx, parse(granted)); err != nil || !again.UpToDate {
		t.Errorf("second up: %v", err)
	}
	// The namespace deleted and made again: the grant follows.
	sys.DeleteNamespace("ns1")
	if _, err := e.Up(ctx, parse(granted)); err != nil {
		t.Fatal(err)
	}
	if g := e.Store.Grants([]string{"ns1", "ns2"})["ns1"]; g.Cookie != sys.nsIDs["ns1"] {
		t.Errorf("grant after the namespace was made again names cookie %d; it is %d", g.Cookie, sys.nsIDs["ns1"])
	}
	// A record of the first version (the namespace's inode, which the
	// kernel reuses) is written again in this version.
	os.WriteFile(path, []byte(`{"version": 1, "namespace": "ns1", "dev": 4, "ino": 1, "uids": [1000], "gids": [900]}`), 0o644)
	if _, err := e.Up(ctx, parse(granted)); err != nil {
		t.Fatal(err)
	}
	if g := e.Store.Grants([]string{"ns1", "ns2"})["ns1"]; g.Version != netns.GrantVersion || g.Cookie != sys.nsIDs["ns1"] {
		t.Errorf("a record of version 1 was left as it was: %+v", g)
	}
	if _, err := e.Up(ctx, parse("namespaces:\n  ns1: {}\n  ns2: {}\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("the grant stays after the spec withdrew it: %v", err)
	}
	if _, err := e.Up(ctx, parse(granted)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Down(ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(e.Store.Dir); !os.IsNotExist(err) {
		t.Errorf("state left after down: %v", err)
	}
}

// TestDownOfAProjectNotUpChangesNothing: down of a name with no record
// removes a directory an interrupted up left (files being written), and
// leaves one holding anything else as it is, with its files; the grants
// of other projects stay.
func TestDownOfAProjectNotUpChangesNothing(t *testing.T) {
	sys := newFake()
	e := newEngine(t, sys)
	ctx := context.Background()
	s := spec(t, "exec: {users: [alice]}\nnamespaces:\n  ns1: {}\n")
	if err := specs.ResolveExec(s, func(string) (uint32, error) { return 1000, nil }, func(string) (uint32, error) { return 900, nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Up(ctx, s); err != nil {
		t.Fatal(err)
	}
	grant := filepath.Join(e.Store.Dir+"-exec", "ns1")
	foreign := filepath.Join(e.Store.ProjectDir("exec"), "ns9")
	os.MkdirAll(filepath.Dir(foreign), 0o755)
	os.WriteFile(foreign, []byte("not nsrun's"), 0o644)
	interrupted := filepath.Join(e.Store.ProjectDir("half"), atomicfile.TempPrefix+"state.json-1")
	os.MkdirAll(filepath.Dir(interrupted), 0o700)
	os.WriteFile(interrupted, nil, 0o600)
	for _, name := range []string{"exec", "half"} {
		if removed, err := e.Down(ctx, name); removed || err != nil {
			t.Errorf("down of %s, not up: %v, %v; want nothing removed", name, removed, err)
		}
	}
	if _, err := os.Stat(foreign); err != nil {
		t.Errorf("down of a project not up removed a directory it did not make: %v", err)
	}
	if _, err := os.Stat(filepath.Dir(interrupted)); !os.IsNotExist(err) {
		t.Errorf("the directory of an interrupted up stays: %v", err)
	}
	if _, err := os.Stat(grant); err != nil {
		t.Errorf("down of a project not up withdrew another project's grant: %v", err)
	}
}

// TestDownSaysWhoHoldsANamespace: a namespace another process holds open
// is named in a warning with the process (its name quoted), and down goes
// on; the others are not mentioned.
func TestDownSaysWhoHoldsANamespace(t *testing.T) {
	sys := newFake()
	e := newEngine(t, sys)
	var warnings []string
	e.Warn = func(s string) { warnings = append(warnings, s) }
	ctx := context.Background()
	if _, err := e.Up(ctx, spec(t, twoNamespaces)); err != nil {
		t.Fatal(err)
	}
	sys.holders = map[string][]netns.Holder{"ns1": {{PID: 4242, UID: 1000, Comm: "\x1b[31mPWN"}}}
	if _, err := e.Down(ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], `namespace ns1 is held open by pid 4242 ("\x1b[31mPWN", uid 1000)`) {
		t.Errorf("warnings %q; want one naming ns1 and pid 4242, its name quoted", warnings)
	}
	if len(sys.namespaces) != 0 {
		t.Errorf("down left namespaces %v", sys.namespaces)
	}
}

// TestDecideUp: what an up does, decided from the record it wants, the
// one saved, the host and the drift, without any change.
func TestDecideUp(t *testing.T) {
	sys := newFake()
	e := newEngine(t, sys)
	ctx := context.Background()
	src := "namespaces:\n  ns1: {ports: [\"6000:8080\"], run: [{command: [sleep, \"60\"]}]}\n"
	if _, err := e.Up(ctx, spec(t, src)); err != nil {
		t.Fatal(err)
	}
	saved, err := e.Store.Load("demo")
	if err != nil {
		t.Fatal(err)
	}
	q := host.Query{Namespaces: []string{"ns1"}}
	up, err := sys.observe(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	clean, err := newFake().observe(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	clone := func(change func(*state.Record)) *state.Record {
		var s state.Record
		data, _ := json.Marshal(saved)
		if err := json.Unmarshal(data, &s); err != nil {
			t.Fatal(err)
		}
		if change != nil {
			change(&s)
		}
		return &s
	}
	for _, tc := range []struct {
		name           string
		want, recorded *state.Record
		obs            host.Observed
		drift          []Drift
		steps, restart bool
		changed        bool
		generation     int
	}{
		{name: "the first up", want: clone(func(s *state.Record) { s.Generation = 0 }), obs: clean,
			steps: true, restart: true, changed: true, generation: 1},
		{name: "nothing changed", want: clone(nil), recorded: saved, obs: up, generation: saved.Generation},
		{name: "a process's command changed", want: clone(func(s *state.Record) { s.Namespaces[0].Run[0].Command = []string{"sleep", "61"} }),
			recorded: saved, obs: up, restart: true, changed: true, generation: saved.Generation + 1},
		{name: "a process is not running", want: clone(nil), recorded: saved, obs: up,
			drift:   []Drift{{Kind: DriftProcess, Namespace: "ns1", Message: "the supervisor is not running"}},
			restart: true, changed: true, generation: saved.Generation + 1},
		{name: "only the record differs", want: clone(func(s *state.Record) { s.NoHeal = !s.NoHeal }), recorded: saved, obs: up,
			changed: true, generation: saved.Generation},
		{name: "the namespace is gone", want: clone(nil), recorded: saved, obs: clean,
			drift: []Drift{{Kind: DriftNamespace, Namespace: "ns1", Message: "namespace ns1 is missing"}},
			steps: true, generation: saved.Generation},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := clone(nil)
			*before = *tc.want
			c := decideUp(tc.want, tc.recorded, nil, tc.obs, tc.drift)
			if (len(c.Steps) > 0) != tc.steps || c.Restart != tc.restart || c.Changed != tc.changed || c.Record.Generation != tc.generation {
				t.Errorf("decideUp: %d steps, restart %v, changed %v, generation %d; want steps %v, restart %v, changed %v, generation %d",
					len(c.Steps), c.Restart, c.Changed, c.Record.Generation, tc.steps, tc.restart, tc.changed, tc.generation)
			}
			if c.upToDate() != (!tc.steps && !tc.restart && !tc.changed) {
				t.Errorf("upToDate = %v", c.upToDate())
			}
			if !sameRecord(before, tc.want) {
				t.Error("decideUp changed the record it was given")
			}
		})
	}
}

// TestUpReadsListenersOfNewPortsOnly: the host sockets bound to a port
// matter only for a port the project does not publish yet (DNAT would
// take its traffic); an up reads them for those ports only.
func TestUpReadsListenersOfNewPortsOnly(t *testing.T) {
	sys := newFake()
	e := newEngine(t, sys)
	var asked []string
	e.Observe = func(ctx context.Context, q host.Query) (host.Observed, error) {
		var ports []string
		for _, p := range q.Published {
			ports = append(ports, p.Full())
		}
		asked = append(asked, strings.Join(ports, ","))
		return sys.observe(ctx, q)
	}
	ctx := context.Background()
	for i, tc := range []struct{ src, want string }{
		{twoNamespaces, "0.0.0.0:6000:8080/tcp,0.0.0.0:6100:9090/udp,0.0.0.0:6001:8080/tcp"},
		{twoNamespaces, ""},
		{twoNamespaces + "  ns3: {ports: [\"6002:8080\"]}\n", "0.0.0.0:6002:8080/tcp"},
		// A port moved to another namespace is new there.
		{"namespaces:\n  ns1: {ports: [\"6000:8080\"]}\n  ns2: {ports: [\"6100:9090/udp\"]}\n", "0.0.0.0:6100:9090/udp"},
	} {
		asked = nil
		if _, err := e.Up(ctx, spec(t, tc.src)); err != nil {
			t.Fatal(err)
		}
		if len(asked) != 1 || asked[0] != tc.want {
			t.Errorf("up %d asked for the listeners of %q; want %q", i, asked, tc.want)
		}
	}
}

// TestOthersMatter: an up reads the other projects' records for a new
// project and for whatever its record does not hold yet (a namespace, an
// address, a subnet, IPv6, a port, a network, an external network), and
// not for a spec its record holds already, nor for one that only drops a
// namespace.
func TestOthersMatter(t *testing.T) {
	sys := newFake()
	e := newEngine(t, sys)
	const base = `name: p
networks:
  back: {}
  front: {}
namespaces:
  a: {ports: ["6000:8080", "127.0.0.1:6001:9090/udp", "6100-6101:7000-7001"]}
  b: {address: 10.77.0.6/30, networks: [back]}
  c: {}
`
	if _, err := e.Up(context.Background(), spec(t, base)); err != nil {
		t.Fatal(err)
	}
	recorded, err := e.Store.Load("p")
	if err != nil {
		t.Fatal(err)
	}
	if !othersMatter(spec(t, base), nil) {
		t.Error("no record: the others do not matter")
	}
	for _, tc := range []struct {
		name, src string
		matter    bool
	}{
		{"the same spec", base, false},
		{"a namespace dropped", strings.Replace(base, "  c: {}\n", "", 1), false},
		{"a namespace more", base + "  d: {}\n", true},
		{"a port more", strings.Replace(base, `"6000:8080", `, `"6000:8080", "6002:80", `, 1), true},
		{"a port changed", strings.Replace(base, `"6000:8080"`, `"6003:8080"`, 1), true},
		{"an address changed", strings.Replace(base, "10.77.0.6/30", "10.77.0.10/30", 1), true},
		{"an automatic address made explicit", strings.Replace(base, "  c: {}", "  c: {address: 10.78.0.2/30}", 1), true},
		{"a subnet", strings.Replace(base, "name: p\n", "name: p\nsubnet: 10.79.0.0/16\n", 1), true},
		{"IPv6", strings.Replace(base, "name: p\n", "name: p\nipv6: true\n", 1), true},
		{"another network", strings.Replace(base, "networks: [back]", "networks: [back, front]", 1), true},
		{"an external network", strings.Replace(strings.Replace(base, "networks: [back]", "networks: [back, shared]", 1), "  front: {}\n", "  front: {}\n  shared: {external: true}\n", 1), true},
	} {
		if got := othersMatter(spec(t, tc.src), recorded); got != tc.matter {
			t.Errorf("%s: the others matter %t; want %t", tc.name, got, tc.matter)
		}
	}
	// On an external network, its hosts files name the others' namespaces
	// there: the same spec reads them.
	const shared = "name: q\nnetworks:\n  shared: {external: true}\nnamespaces:\n  q1: {networks: [shared]}\n"
	if _, err := e.Up(context.Background(), spec(t, shared)); err != nil {
		t.Fatal(err)
	}
	if q, err := e.Store.Load("q"); err != nil || !othersMatter(spec(t, shared), q) {
		t.Errorf("the same spec on an external network: the others do not matter (%v)", err)
	}
}

// TestSameAddresses: a desired record whose namespaces all have their
// recorded addresses, and one that does not (one moved, one new).
func TestSameAddresses(t *testing.T) {
	rec := func(addrs ...string) *state.Record {
		r := &state.Record{}
		for i, a := range addrs {
			r.Namespaces = append(r.Namespaces, &state.Namespace{Name: fmt.Sprintf("n%d", i), Address: netip.MustParsePrefix(a)})
		}
		return r
	}
	recorded := rec("10.1.0.2/30", "10.1.0.6/30")
	for _, tc := range []struct {
		want *state.Record
		same bool
	}{
		{rec("10.1.0.2/30", "10.1.0.6/30"), true},
		{rec("10.1.0.2/30"), true},
		{rec("10.1.0.2/30", "10.1.0.10/30"), false},
		{rec("10.1.0.2/30", "10.1.0.6/30", "10.1.0.14/30"), false},
	} {
		if got := sameAddresses(tc.want, recorded); got != tc.same {
			t.Errorf("%d namespaces: same %t; want %t", len(tc.want.Namespaces), got, tc.same)
		}
	}
}

// TestChangedSpecMeetsTheOthers: a project's up that adds what another
// project holds (a published port, an overlapping address) is refused, as
// a new project's would be; the unchanged spec stays up to date.
func TestChangedSpecMeetsTheOthers(t *testing.T) {
	sys := newFake()
	e := newEngine(t, sys)
	ctx := context.Background()
	const mine = "name: mine\nnamespaces:\n  m1: {address: 10.77.1.2/30, ports: [\"6500:80\"]}\n"
	if _, err := e.Up(ctx, spec(t, mine)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Up(ctx, spec(t, "name: theirs\nnamespaces:\n  t1: {address: 10.77.2.2/30, ports: [\"6600:80\"]}\n")); err != nil {
		t.Fatal(err)
	}
	before := sys.fingerprint()
	for _, tc := range []struct{ name, src, want string }{
		{"their port", strings.Replace(mine, `"6500:80"`, `"6500:80", "6600:81"`, 1), `host port 6600/tcp is already published by project "theirs"`},
		{"their address", mine + "  m2: {address: 10.77.2.2/30}\n", `overlaps namespace "t1" of project "theirs"`},
	} {
		if _, err := e.Up(ctx, spec(t, tc.src)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want it refused: %s", tc.name, err, tc.want)
		}
		if sys.fingerprint() != before {
			t.Errorf("%s: the refused up changed the host", tc.name)
		}
	}
	if out, err := e.Up(ctx, spec(t, mine)); err != nil || !out.UpToDate {
		t.Errorf("the unchanged spec: %+v, %v; want it up to date", out, err)
	}
}
