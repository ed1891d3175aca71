package iptables

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/nsrun/nsrun/forward"
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
			}}
			// Enough ports for a dispatch tree, whose jumps must print as rendered too.
			for i := 0; i < 40; i++ {
				p.Namespaces[1].Ports = append(p.Namespaces[1].Ports, specs.MustParsePort(fmt.Sprintf("%d:80", 18000+i)))
			}
			before, err := fw.snapshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if snap, err := fw.snapshot(ctx); err == nil {
					fw.run.restore(ctx, DownScript(snap, project))
				}
			})
			if err := fw.run.restore(ctx, UpScript(before, p)); err != nil {
				t.Fatal(err)
			}
			up, err := fw.snapshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if again := UpScript(up, p); again != "" {
				t.Errorf("iptables-save differs from the rendered rules; a second up would run:\n%s", again)
			}
			if err := fw.run.restore(ctx, DownScript(up, project)); err != nil {
				t.Fatal(err)
			}
			after, err := fw.snapshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !equalSnapshots(withoutEmptyTables(before), withoutEmptyTables(after)) {
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
