package hostfw

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nsrun/nsrun/netns/nstest"
)

func TestMain(m *testing.M) { nstest.Main(m) }

func TestFirewalldZones(t *testing.T) {
	f := Firewalld{Running: true, DefaultZone: "public", Interfaces: map[string]string{"nsr-a": Zone, "nsr-b": "public", "eth1": "external"}}
	if got := f.ZoneOf("eth0"); got != "public" {
		t.Errorf("an interface in no zone meets %q; want the default zone", got)
	}
	if got := f.ZoneOf("eth1"); got != "external" {
		t.Errorf("eth1 meets %q; want its own zone", got)
	}
	if got := f.Unbound([]string{"nsr-a", "nsr-b", "nsr-c"}); !slices.Equal(got, []string{"nsr-b", "nsr-c"}) {
		t.Errorf("unbound %v; want nsr-b (in another zone) and nsr-c (in none)", got)
	}
	if got := f.Zoned(); !slices.Equal(got, []string{"nsr-a"}) {
		t.Errorf("zoned %v", got)
	}
}

func TestReadUFW(t *testing.T) {
	root := t.TempDir()
	if u := ReadUFW(root); u.Installed {
		t.Errorf("no ufw.conf reads as %+v", u)
	}
	write := func(name, text string) {
		path := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("etc/ufw/ufw.conf", "# comment\nENABLED=yes\nLOGLEVEL=low\n")
	write("etc/default/ufw", "IPV6=yes\nDEFAULT_FORWARD_POLICY=\"DROP\"\n")
	if u := ReadUFW(root); u != (UFW{Installed: true, Enabled: true, Forward: "DROP"}) {
		t.Errorf("got %+v", u)
	}
}

// A ruleset as nft 1.0.6 prints it (nft -j list ruleset), cut down.
const ruleset = `{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
{"table": {"family": "inet", "name": "firewalld", "handle": 1}},
{"chain": {"family": "inet", "table": "firewalld", "name": "filter_FORWARD", "type": "filter", "hook": "forward", "prio": 10, "policy": "accept"}},
{"rule": {"family": "inet", "table": "firewalld", "chain": "filter_FORWARD", "expr": [{"reject": {"type": "icmpx", "expr": "admin-prohibited"}}]}},
{"chain": {"family": "ip", "table": "filter", "name": "FORWARD", "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}},
{"chain": {"family": "inet", "table": "nsrun", "name": "filter-forward", "type": "filter", "hook": "forward", "prio": 0, "policy": "accept"}},
{"rule": {"family": "inet", "table": "nsrun", "chain": "filter-forward", "expr": [{"drop": null}]}},
{"chain": {"family": "inet", "table": "filter", "name": "forward", "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}},
{"rule": {"family": "inet", "table": "filter", "chain": "forward", "expr": [{"match": {"op": "==", "left": {"ct": {"key": "state"}}, "right": {"set": ["established", "related"]}}}, {"accept": null}]}},
{"chain": {"family": "inet", "table": "filter", "name": "input", "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}},
{"rule": {"family": "inet", "table": "filter", "chain": "input", "expr": [{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "nsr-*"}}, {"accept": null}]}},
{"rule": {"family": "inet", "table": "filter", "chain": "input", "expr": [{"counter": {"packets": 0, "bytes": 0}}, {"drop": null}]}},
{"chain": {"family": "inet", "table": "filter", "name": "output", "type": "filter", "hook": "output", "prio": 0, "policy": "drop"}},
{"chain": {"family": "ip", "table": "admin", "name": "fwd", "type": "filter", "hook": "forward", "prio": 0, "policy": "accept"}},
{"rule": {"family": "ip", "table": "admin", "chain": "fwd", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}}, {"drop": null}]}},
{"chain": {"family": "ip", "table": "admin", "name": "nat", "type": "nat", "hook": "prerouting", "prio": -100, "policy": "accept"}}
]}`

func TestParseNFT(t *testing.T) {
	got, err := ParseNFT([]byte(ruleset), false)
	if err != nil {
		t.Fatal(err)
	}
	want := []Chain{
		{Family: "inet", Table: "filter", Name: "forward", Hook: "forward", Ends: "policy drop", AcceptsEstablished: true},
		{Family: "inet", Table: "filter", Name: "input", Hook: "input", Ends: "drop", AcceptsLinks: true},
	}
	// firewalld's, iptables-nft's and nsrun's tables are read on their
	// own; an output hook, a conditional drop and a nat chain do not count.
	if !slices.Equal(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if fix := want[0].Fix(); fix != "nft insert rule inet filter forward iifname 'nsr-*' accept; nft insert rule inet filter forward iifname 'nsh-*' accept; "+
		"nft insert rule inet filter forward oifname 'nsr-*' accept; nft insert rule inet filter forward oifname 'nsh-*' accept" {
		t.Errorf("fix: %s", fix)
	}
	if all, _ := ParseNFT([]byte(ruleset), true); len(all) != 3 { // and admin's fwd, which does not end in a drop
		t.Errorf("every foreign base chain on forward and input: %+v", all)
	}
	if _, err := ParseNFT([]byte("not json"), false); err == nil {
		t.Error("bad JSON read without an error")
	}
}

// TestReadNFTKernel reads a table of the test's own from the kernel, and
// runs the command its finding gives: the chain then accepts nsrun's links.
func TestReadNFTKernel(t *testing.T) {
	nstest.RequireRoot(t)
	table := strings.ToLower(nstest.Name("hf"))
	nft(t, "add table inet "+table)
	t.Cleanup(func() { exec.Command("nft", "delete", "table", "inet", table).Run() })
	nft(t, "add chain inet "+table+" fchain { type filter hook forward priority 5; policy accept; }")
	nft(t, "add rule inet "+table+" fchain reject with icmpx admin-prohibited")
	chain := findChain(t, table)
	if chain == nil || chain.Ends != "reject" || chain.AcceptsLinks {
		t.Fatalf("the test's chain reads as %+v", chain)
	}
	for _, cmd := range strings.Split(chain.Fix(), "; ") {
		if out, err := exec.Command("sh", "-c", cmd).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v %s", cmd, err, out)
		}
	}
	if c := findChain(t, table); c == nil || !c.AcceptsLinks {
		t.Errorf("after the fix the chain reads as %+v; want it to accept nsrun's links", c)
	}
}

func nft(t *testing.T, cmd string) {
	t.Helper()
	if out, err := exec.Command("nft", strings.Fields(cmd)...).CombinedOutput(); err != nil {
		t.Fatalf("nft %s: %v %s", cmd, err, out)
	}
}

func findChain(t *testing.T, table string) *Chain {
	t.Helper()
	chains, err := ReadNFT(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range chains {
		if c.Table == table {
			return &c
		}
	}
	return nil
}

// TestWatcher: a change to nftables and an opening of the lock file are
// events; the watcher ends with its context.
func TestWatcher(t *testing.T) {
	nstest.RequireRoot(t)
	lock := filepath.Join(t.TempDir(), "xtables.lock")
	if err := os.WriteFile(lock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := NewWatcher()
	w.Lock, w.Bus = lock, filepath.Join(t.TempDir(), "no-bus")
	if err := w.Run(ctx, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	table := strings.ToLower(nstest.Name("hw"))
	nft(t, "add table inet "+table)
	nft(t, "delete table inet "+table)
	expect(t, w, NFTablesChanged)
	// The lock's watch is put in place in the watcher's own time: open
	// the lock until an opening is seen.
	for deadline := time.Now().Add(10 * time.Second); ; {
		f, err := os.Open(lock)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		if seen(w, XtablesLock, 100*time.Millisecond) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q event", XtablesLock)
		}
	}
}

func expect(t *testing.T, w *Watcher, want Event) {
	t.Helper()
	if !seen(w, want, 10*time.Second) {
		t.Fatalf("no %q event", want)
	}
}

// seen waits up to d for the event, passing over others.
func seen(w *Watcher, want Event, d time.Duration) bool {
	timeout := time.After(d)
	for {
		select {
		case ev := <-w.C:
			if ev == want {
				return true
			}
		case <-timeout:
			return false
		}
	}
}

// TestFirewalldBus runs against a real firewalld: scripts/hostfw.sh starts
// one and sets NSRUN_FIREWALLD=1.
func TestFirewalldBus(t *testing.T) {
	ctx := context.Background()
	if f, err := (FirewalldBus{Socket: filepath.Join(t.TempDir(), "none")}).Read(ctx); err != nil || f.Running {
		t.Errorf("with no bus: %+v, %v; want firewalld not running, no error", f, err)
	}
	if os.Getenv("NSRUN_FIREWALLD") != "1" {
		t.Skip("needs a running firewalld: scripts/hostfw.sh runs this test with one")
	}
	b := FirewalldBus{}
	f, err := b.Read(ctx)
	if err != nil || !f.Running || f.Version == "" || f.DefaultZone == "" || f.Backend == "" {
		t.Fatalf("read %+v, %v", f, err)
	}
	// Interfaces need not exist to be bound, as nsrun binds before a
	// link is made.
	a, other := "nsr-bus"+nstest.Name("")[:4], "nsr-bus2"
	t.Cleanup(func() {
		exec.Command("firewall-cmd", "--zone=trusted", "--remove-interface="+a).Run()
		exec.Command("firewall-cmd", "--zone=public", "--remove-interface="+other).Run()
		exec.Command("firewall-cmd", "--zone=trusted", "--remove-interface="+other).Run()
	})
	if out, err := exec.Command("firewall-cmd", "--zone=public", "--add-interface="+other).CombinedOutput(); err != nil {
		t.Fatalf("firewall-cmd: %v %s", err, out)
	}
	for range 2 { // the second time changes nothing, without an error
		if err := b.Bind(ctx, []string{a, other}); err != nil {
			t.Fatal(err)
		}
	}
	if f, _ = b.Read(ctx); f.Interfaces[a] != Zone || f.Interfaces[other] != Zone {
		t.Errorf("after Bind: %v", f.Interfaces)
	}
	for range 2 {
		if err := b.Unbind(ctx, []string{a, other}); err != nil {
			t.Fatal(err)
		}
	}
	if f, _ = b.Read(ctx); f.Interfaces[a] != "" || f.Interfaces[other] != "" {
		t.Errorf("after Unbind: %v", f.Interfaces)
	}
}
