package iptables

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/internal/nftcache"
	"github.com/nsrun/nsrun/netns/nstest"
	"github.com/nsrun/nsrun/specs"
)

// TestRestoreRoundTrip applies a project to each real backend and checks
// that iptables-save prints the rules exactly as rendered (so a second up
// changes nothing), and that down leaves the tables as they were.
func TestRestoreRoundTrip(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.DumpOnFailure(t)
	ctx := context.Background()
	for _, b := range Backends {
		t.Run(string(b), func(t *testing.T) {
			fw := New(b, 0)
			if !fw.Installed() {
				t.Fatalf("%s is not installed; scripts/install-deps.sh installs it", b)
			}
			project := strings.ToLower(nstest.Name("ft"))
			p := forward.Project{Name: project, Namespaces: []forward.Namespace{
				{Name: "a", Link: "nsr-a" + project[2:6], Address: netip.MustParsePrefix("10.231.1.2/24"), Egress: true,
					Ports: []specs.Port{specs.MustParsePort("16000:8080"), specs.MustParsePort("127.0.0.1:16100:9090/udp"), specs.MustParsePort("17000-17002:8000-8002")}},
				{Name: "b", Link: "nsh-b" + project[2:6], Address: netip.MustParsePrefix("10.231.2.2/24"), Egress: false,
					Ports: []specs.Port{specs.MustParsePort("192.0.2.1:16001:8080")}},
				{Name: "c", Link: "nsr-c" + project[2:6], Address: netip.MustParsePrefix("10.231.3.2/24"),
					Address6: netip.MustParsePrefix("fd00:231:3::2/64"), Egress: true,
					Ports: []specs.Port{specs.MustParsePort("16002:8080"), specs.MustParsePort("[::]:16002:8080"), specs.MustParsePort("[::1]:16003:8080"),
						specs.MustParsePort("[2001:db8::1]:16004:53/udp"), specs.MustParsePort("[::]:17100-17102:8000-8002")}},
			}}
			// Enough ports for a dispatch tree, whose jumps must print as rendered too.
			for i := 0; i < 40; i++ {
				p.Namespaces[1].Ports = append(p.Namespaces[1].Ports, specs.MustParsePort(fmt.Sprintf("%d:80", 18000+i)))
			}
			before, err := fw.snapshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if before.V6 == nil {
				t.Fatalf("%s is not installed; scripts/install-deps.sh installs it", IPv6.program(b))
			}
			t.Cleanup(func() { fw.Remove(ctx, project) })
			if err := fw.Ensure(ctx, p, false); err != nil {
				t.Fatal(err)
			}
			up, err := fw.snapshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, fam := range []struct {
				f    Family
				snap *Snapshot
			}{{IPv4, up}, {IPv6, up.V6}} {
				if again := UpScriptFor(fam.f, fam.snap, p); again != "" {
					t.Errorf("%s-save differs from the rendered rules; a second up would run:\n%s", fam.f.program(b), again)
				}
			}
			if d := up.Drift(p, false); len(d) > 0 {
				t.Errorf("drift right after Ensure: %q", d)
			}
			// The IPv6 rules are ip6tables', with the namespace's IPv6 address.
			v6 := up.V6.String()
			for _, want := range []string{"--to-destination [fd00:231:3::2]:8080", "-d 2001:db8::1/128 -p udp -m udp --dport 16004", "! -s fe80::/10 ! -d ::1/128 -m addrtype --dst-type LOCAL"} {
				if !strings.Contains(v6, want) {
					t.Errorf("ip6tables lacks %q:\n%s", want, v6)
				}
			}
			if strings.Contains(v6, "16003") || strings.Contains(up.String(), "fd00:") {
				t.Errorf("[::1] is DNAT'd, or IPv6 is in iptables:\n%s", v6)
			}
			// The counters: iptables-nft's read in process give what its
			// save gives, a counter for every published port, each family.
			counts, err := fw.Counts(ctx, []forward.Project{p})
			if err != nil {
				t.Fatal(err)
			}
			for _, ns := range p.Namespaces {
				for _, port := range ns.Ports {
					if _, ok := counts.Connections(p.Name, ns, port); !ok && port.HostIP != netip.IPv6Loopback() {
						t.Errorf("no counter for %s %s", ns.Name, port.Full())
					}
				}
			}
			if b == NFT {
				for _, f := range []Family{IPv4, IPv6} {
					fast, ok, err := countsInProcess(f, []forward.Project{p})
					r := fw.run
					if f == IPv6 {
						r = fw.run6
					}
					text, err2 := r.counted(ctx)
					saved, err3 := parseCounts(text)
					if !ok || err != nil || err2 != nil || err3 != nil {
						t.Fatalf("%s: read in process: ok %t, %v; save: %v %v", f.program(b), ok, err, err2, err3)
					}
					for key, n := range saved {
						if strings.Contains(key, p.Name) && fast[key] != n {
							t.Errorf("%s: %s: %d in process, %d saved", f.program(b), key, fast[key], n)
						}
					}
					if len(fast) == 0 {
						t.Errorf("%s: no counter read in process", f.program(b))
					}
				}
				// A DNAT rule deleted by hand: its chain (the first of the
				// dispatch tree) is not what nsrun wrote, and the save decides.
				dnat := ProjectChains(p.Name).DNAT
				run := exec.Command("iptables-nft", "-t", "nat", "-D", dnat[:len(dnat)-len("NAT")]+"1", "1")
				if out, err := run.CombinedOutput(); err != nil {
					t.Fatalf("%v %s", err, out)
				}
				if _, ok, err := countsInProcess(IPv4, []forward.Project{p}); ok || err != nil {
					t.Errorf("a chain with a rule deleted was read in process: %v", err)
				}
			}
			// down --all's sweep takes it all out of both families too.
			if err := fw.Sweep(ctx); err != nil {
				t.Fatal(err)
			}
			swept, err := fw.snapshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(swept.String(), "NSR") || strings.Contains(swept.V6.String(), "NSR") {
				t.Errorf("the sweep left nsrun's chains:\n%s\n%s", swept, swept.V6)
			}
			if err := fw.Ensure(ctx, p, false); err != nil {
				t.Fatal(err)
			}
			if err := fw.Remove(ctx, project); err != nil {
				t.Fatal(err)
			}
			after, err := fw.snapshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !equalSnapshots(withoutEmptyTables(before), withoutEmptyTables(after)) || !equalSnapshots(withoutEmptyTables(before.V6), withoutEmptyTables(after.V6)) {
				t.Errorf("down did not restore the tables")
			}
		})
	}
}

// withoutEmptyTables drops tables that only exist because a tool looked at
// them (built-in chains with ACCEPT policies, no rules).
func withoutEmptyTables(s *Snapshot) *Snapshot {
	out := &Snapshot{Tables: map[string]map[string]*Chain{}}
	for name, chains := range s.Tables {
		t := &Snapshot{Tables: map[string]map[string]*Chain{name: chains}}
		if t.InUse() || t.Publishes() {
			out.Tables[name] = chains
		}
	}
	return out
}

// TestProbe: each real backend passes the probe (its program's version,
// read through go-iptables); an old iptables does not.
func TestProbe(t *testing.T) {
	nstest.RequireRoot(t)
	for _, b := range Backends {
		if err := New(b, 0).Probe(context.Background()); err != nil {
			t.Errorf("%s: %v", b, err)
		}
	}
	for v, ok := range map[[3]int]bool{{1, 6, 1}: false, {1, 4, 21}: false, {1, 6, 2}: true, {1, 8, 9}: true, {2, 0, 0}: true} {
		if err := checkVersion(NFT, v); (err == nil) != ok {
			t.Errorf("version %v: %v", v, err)
		}
	}
}

// TestRemoveEmptyTables: iptables-nft's tables are listed by their nft
// names, and only those that hold nothing are removed: a rule, a chain of
// its own or a DROP policy keeps a table. iptables-legacy's never go.
func TestRemoveEmptyTables(t *testing.T) {
	ctx := context.Background()
	const tables = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\nCOMMIT\n" +
		"*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j RETURN\nCOMMIT\n" +
		"*mangle\n:FORWARD DROP [0:0]\nCOMMIT\n" +
		"*raw\n:PREROUTING ACCEPT [0:0]\n:MINE - [0:0]\nCOMMIT\n"
	fw, err := NewFake(NFT, tables)
	if err != nil {
		t.Fatal(err)
	}
	made, err := fw.MadeTables(ctx)
	want := "ip filter,ip mangle,ip nat,ip raw,ip6 filter,ip6 mangle,ip6 nat,ip6 raw"
	if err != nil || strings.Join(made, ",") != want {
		t.Fatalf("MadeTables = %v, %v; want %s", made, err, want)
	}
	if err := fw.RemoveEmptyTables(ctx, made); err != nil {
		t.Fatal(err)
	}
	// The fake's ip6tables has the built-in chains and policies only.
	made, _ = fw.MadeTables(ctx)
	if got := strings.Join(made, ","); got != "ip mangle,ip nat,ip raw,ip6 mangle" {
		t.Errorf("after RemoveEmptyTables: %s; want the tables that hold something, and nothing else", got)
	}
	legacy, err := NewFake(Legacy, tables)
	if err != nil {
		t.Fatal(err)
	}
	if made, err := legacy.MadeTables(ctx); err != nil || made != nil {
		t.Errorf("iptables-legacy: MadeTables = %v, %v; want none", made, err)
	}
}

// TestCachedReadsFollowTheRules reads each real backend twice through the
// cache: the second read runs no program while the rules are the same, and
// a change to the rules (here nsrun's own) is read anew. For
// iptables-legacy that rests on the digest of its rules (package xtables),
// for iptables-nft on the nftables generation.
func TestCachedReadsFollowTheRules(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.DumpOnFailure(t)
	ctx := context.Background()
	wrappers, calls := t.TempDir(), filepath.Join(t.TempDir(), "calls")
	for _, b := range Backends {
		for _, fam := range []Family{IPv4, IPv6} {
			prog := fam.program(b) + "-save"
			real, err := exec.LookPath(prog)
			if err != nil {
				t.Fatalf("%s: %v; scripts/install-deps.sh installs it", prog, err)
			}
			script := "#!/bin/sh\necho " + prog + " >> " + calls + "\nexec " + real + " \"$@\"\n"
			if err := os.WriteFile(filepath.Join(wrappers, prog), []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Setenv("PATH", wrappers+":"+os.Getenv("PATH"))
	ran := func() string {
		b, _ := os.ReadFile(calls)
		os.Remove(calls)
		return strings.Join(strings.Fields(string(b)), " ")
	}
	for _, b := range Backends {
		t.Run(string(b), func(t *testing.T) {
			cache := &nftcache.Cache{Dir: filepath.Join(t.TempDir(), "cache")}
			fw := NewCached(b, 0, cache)
			project := strings.ToLower(nstest.Name("fc"))
			p := forward.Project{Name: project, Namespaces: []forward.Namespace{
				{Name: "a", Link: "nsr-a" + project[2:6], Address: netip.MustParsePrefix("10.231.1.2/24"),
					Address6: netip.MustParsePrefix("fd00:231:1::2/64"), Egress: true,
					Ports: []specs.Port{specs.MustParsePort("16000:8080"), specs.MustParsePort("[::]:16000:8080")}},
			}}
			t.Cleanup(func() { fw.Remove(ctx, project) })
			if err := fw.Ensure(ctx, p, false); err != nil {
				t.Fatal(err)
			}
			ran()
			first, err := fw.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want := IPv4.program(b) + "-save " + IPv6.program(b) + "-save"
			if got := ran(); got != want && got != IPv6.program(b)+"-save "+IPv4.program(b)+"-save" {
				t.Fatalf("the first read ran %q; want %s", got, want)
			}
			again, err := fw.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got := ran(); got != "" {
				t.Errorf("a second read of the same rules ran %q; want nothing (the cache)", got)
			}
			if again.Publishes() != first.Publishes() || again.InUse() != first.InUse() || again.DropReason() != first.DropReason() || !again.Publishes() {
				t.Errorf("the cache told another backend: publishes %v, in use %v, drop %q; want %v, %v, %q (publishing)",
					again.Publishes(), again.InUse(), again.DropReason(), first.Publishes(), first.InUse(), first.DropReason())
			}
			if d := again.Drift(p, false); len(d) > 0 {
				t.Errorf("the cache's rules drift from the project: %q", d)
			}
			if got := ran(); got != "" {
				t.Errorf("the drift of the same rules ran %q; want nothing (the cache)", got)
			}
			old := p
			old.Namespaces = slices.Clone(p.Namespaces)
			old.Namespaces[0].Ports = slices.Clone(p.Namespaces[0].Ports)
			p.Namespaces[0].Ports[0] = specs.MustParsePort("16001:8080") // a rule of the same size
			if err := fw.Ensure(ctx, p, false); err != nil {
				t.Fatal(err)
			}
			ran()
			changed, err := fw.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got := ran(); !strings.Contains(got, IPv4.program(b)+"-save") {
				t.Errorf("after a change, the read ran %q; want %s-save run again", got, IPv4.program(b))
			}
			if d, was := changed.Drift(p, false), changed.Drift(old, false); len(d) > 0 || len(was) == 0 {
				t.Errorf("the read after a change does not show it: drift of the project %q, of the project before the change %q", d, was)
			}
			snap, err := fw.snapshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if s := fmt.Sprint(snap); !strings.Contains(s, "16001") || strings.Contains(s, "--dport 16000 ") {
				t.Errorf("the snapshot after a change does not show it:\n%s", s)
			}

			// What the host report asks (another program's chain, a policy,
			// a drop before nsrun's accepts) follows the rules too.
			other := "NSRT-" + project[2:8]
			look := changed.(Tables)
			if look.HasChain("filter", other) || !look.HasChain("filter", ChainForward) {
				t.Errorf("the look has chain %s: %v, %s: %v; want false, true", other, look.HasChain("filter", other), ChainForward, look.HasChain("filter", ChainForward))
			}
			if got := look.Policy("filter", "FORWARD"); got != snap.Policy("filter", "FORWARD") || got == "" {
				t.Errorf("the look's FORWARD policy is %q; the snapshot's %q", got, snap.Policy("filter", "FORWARD"))
			}
			prog := IPv4.program(b)
			if out, err := exec.Command(prog, "-w", "-t", "filter", "-N", other).CombinedOutput(); err != nil {
				t.Fatalf("%s -N %s: %v: %s", prog, other, err, out)
			}
			t.Cleanup(func() { exec.Command(prog, "-w", "-t", "filter", "-X", other).Run() })
			ran()
			for _, round := range []string{"after the chain was made", "again"} {
				look, err := fw.Read(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if !look.(Tables).HasChain("filter", other) {
					t.Errorf("%s: the look does not have chain %s", round, other)
				}
				if got := look.(Tables).DropsBeforeNsrun(); got != "" {
					t.Errorf("%s: the look drops before nsrun: %q; want nothing", round, got)
				}
			}
			if got := ran(); !strings.Contains(got, prog+"-save") || strings.Count(got, prog+"-save") > 1 {
				t.Errorf("two looks after a change ran %q; want %s-save once", got, prog)
			}
		})
	}
}
