package iptables

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/specs"
)

func blog(t *testing.T) forward.Project {
	return forward.Project{Name: "blog", Namespaces: []forward.Namespace{
		{Name: "ns1", Link: "nsr-ns1", Address: netip.MustParsePrefix("10.203.45.214/30"), Egress: true, Networks: []string{"blog/default", "shared"},
			Ports: []specs.Port{specs.MustParsePort("6000:8080"), specs.MustParsePort("127.0.0.1:6100:9090/udp"), specs.MustParsePort("7000-7002:8000-8002")}},
		{Name: "ns2", Link: "nsr-ns2", Address: netip.MustParsePrefix("10.203.26.242/30"), Egress: false, Networks: []string{"blog/default"},
			Ports: []specs.Port{specs.MustParsePort("6001:8080")}},
	}}
}

func TestRules(t *testing.T) {
	got := lines(Rules(blog(t)))
	want := []string{
		`-A NSR-blog-DNAT -p tcp -m tcp --dport 6000 -m comment --comment "nsrun blog/ns1" -j DNAT --to-destination 10.203.45.214:8080`,
		`-A NSR-blog-DNAT -p tcp -m tcp --dport 6001 -m comment --comment "nsrun blog/ns2" -j DNAT --to-destination 10.203.26.242:8080`,
		`-A NSR-blog-DNAT -p tcp -m tcp --dport 7000:7002 -m comment --comment "nsrun blog/ns1" -j DNAT --to-destination 10.203.45.214:8000-8002/7000`,
		`-A NSR-blog-DNAT -d 127.0.0.1/32 -p udp -m udp --dport 6100 -m comment --comment "nsrun blog/ns1" -j DNAT --to-destination 10.203.45.214:9090`,
		`-A NSR-blog-POST ! -s 10.203.0.0/18 -m comment --comment "nsrun blog" -j RETURN`,
		`-A NSR-blog-POST -s 10.203.45.214/32 -d 10.203.45.214/32 -m comment --comment "nsrun blog/ns1" -j MASQUERADE`,
		`-A NSR-blog-POST -s 10.203.45.212/30 ! -o nsr-ns1 -m comment --comment "nsrun blog/ns1" -j MASQUERADE`,
		`-A NSR-blog-POST -s 10.203.26.242/32 -d 10.203.26.242/32 -m comment --comment "nsrun blog/ns2" -j MASQUERADE`,
		// From a namespace: each of its networks' chains, then no other
		// namespace, then beyond the host with egress only.
		`-A NSR-blog-FWD -i nsr-ns1 -m comment --comment "nsrun blog/ns1" -j NSR-N-D00ABF7437B9`,
		`-A NSR-blog-FWD -i nsr-ns1 -m comment --comment "nsrun blog/ns1" -j NSR-N-A4D26868017C`,
		`-A NSR-blog-FWD -i nsr-ns1 -o nsr-+ -m comment --comment "nsrun blog/ns1" -j DROP`,
		`-A NSR-blog-FWD -i nsr-ns1 -o nsh-+ -m comment --comment "nsrun blog/ns1" -j DROP`,
		`-A NSR-blog-FWD -i nsr-ns1 -m comment --comment "nsrun blog/ns1" -j ACCEPT`,
		// A network's chain accepts its links.
		`-A NSR-N-D00ABF7437B9 -o nsr-ns1 -m comment --comment "nsrun blog/ns1" -j ACCEPT`,
		`-A NSR-N-A4D26868017C -o nsr-ns1 -m comment --comment "nsrun blog/ns1" -j ACCEPT`,
		`-A NSR-blog-FWD -i nsr-ns2 -m comment --comment "nsrun blog/ns2" -j NSR-N-D00ABF7437B9`,
		`-A NSR-blog-FWD -i nsr-ns2 -m comment --comment "nsrun blog/ns2" -j DROP`,
		`-A NSR-N-D00ABF7437B9 -o nsr-ns2 -m comment --comment "nsrun blog/ns2" -j ACCEPT`,
		// Each way of each published port's connections is counted, by
		// the connection's original destination.
		`-A NSR-blog-CNT -p tcp -m conntrack --ctorigdstport 6000 --ctdir ORIGINAL -m comment --comment "nsrun blog/ns1" -j RETURN`,
		`-A NSR-blog-CNT -p tcp -m conntrack --ctorigdstport 6000 --ctdir REPLY -m comment --comment "nsrun blog/ns1" -j RETURN`,
		`-A NSR-blog-CNT -p tcp -m conntrack --ctorigdstport 6001 --ctdir ORIGINAL -m comment --comment "nsrun blog/ns2" -j RETURN`,
		`-A NSR-blog-CNT -p tcp -m conntrack --ctorigdstport 6001 --ctdir REPLY -m comment --comment "nsrun blog/ns2" -j RETURN`,
		`-A NSR-blog-CNT -p tcp -m conntrack --ctorigdstport 7000:7002 --ctdir ORIGINAL -m comment --comment "nsrun blog/ns1" -j RETURN`,
		`-A NSR-blog-CNT -p tcp -m conntrack --ctorigdstport 7000:7002 --ctdir REPLY -m comment --comment "nsrun blog/ns1" -j RETURN`,
		`-A NSR-blog-CNT -p udp -m conntrack --ctorigdst 127.0.0.1 --ctorigdstport 6100 --ctdir ORIGINAL -m comment --comment "nsrun blog/ns1" -j RETURN`,
		`-A NSR-blog-CNT -p udp -m conntrack --ctorigdst 127.0.0.1 --ctorigdstport 6100 --ctdir REPLY -m comment --comment "nsrun blog/ns1" -j RETURN`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("rules:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestProjectChains(t *testing.T) {
	if c := ProjectChains("blog"); c != (Chains{"NSR-blog-DNAT", "NSR-blog-POST", "NSR-blog-FWD", "NSR-blog-CNT"}) {
		t.Errorf("ProjectChains(blog) = %+v", c)
	}
	long := strings.Repeat("p", 32)
	a, b := ProjectChains(long), ProjectChains(long[:31]+"q")
	for _, c := range []Chains{a, b, ProjectChains(strings.Repeat("x", 17)), ProjectChains(strings.Repeat("y", 18))} {
		for _, name := range []string{c.DNAT, c.Post, c.Forward, c.Count, c.DNAT[:len(c.DNAT)-3] + "9999", c.Count[:len(c.Count)-2] + "9999"} {
			if len(name) > 28 {
				t.Errorf("chain %q is longer than 28 characters", name)
			}
		}
	}
	if a == b {
		t.Errorf("two long project names share chains %+v", a)
	}
}

// emptySnapshot is a host with the built-in chains and nothing else.
func emptySnapshot(t *testing.T) *Snapshot {
	t.Helper()
	s, err := ParseSave(`# Generated by iptables-nft-save v1.8.9
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -o docker0 -j DOCKER
COMMIT
`)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestUpScriptOnACleanHost(t *testing.T) {
	p := forward.Project{Name: "blog", Namespaces: []forward.Namespace{{Name: "ns1", Link: "nsr-ns1", Address: netip.MustParsePrefix("10.203.1.2/24"), Egress: true,
		Networks: []string{"blog/default"}, Ports: []specs.Port{specs.MustParsePort("6000:8080")}}}}
	got := UpScript(emptySnapshot(t), p)
	want := `*nat
:NSRUN-DNAT - [0:0]
:NSRUN-POSTROUTING - [0:0]
:NSR-blog-DNAT - [0:0]
:NSR-blog-POST - [0:0]
-A PREROUTING ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -m comment --comment nsrun -j NSRUN-DNAT
-A OUTPUT -m addrtype --dst-type LOCAL -m comment --comment nsrun -j NSRUN-DNAT
-A POSTROUTING -m comment --comment nsrun -j NSRUN-POSTROUTING
-A NSRUN-POSTROUTING -s 127.0.0.0/8 -o nsr-+ -m comment --comment "nsrun: from the loopback of the host" -j MASQUERADE
-A NSRUN-POSTROUTING -s 127.0.0.0/8 -o nsh-+ -m comment --comment "nsrun: from the loopback of the host" -j MASQUERADE
-A NSRUN-POSTROUTING -m comment --comment "nsrun blog" -j NSR-blog-POST
-A NSR-blog-DNAT -p tcp -m tcp --dport 6000 -m comment --comment "nsrun blog/ns1" -j DNAT --to-destination 10.203.1.2:8080
-A NSR-blog-POST ! -s 10.203.1.0/24 -m comment --comment "nsrun blog" -j RETURN
-A NSR-blog-POST -s 10.203.1.2/32 -d 10.203.1.2/32 -m comment --comment "nsrun blog/ns1" -j MASQUERADE
-A NSR-blog-POST -s 10.203.1.0/24 ! -o nsr-ns1 -m comment --comment "nsrun blog/ns1" -j MASQUERADE
-A NSRUN-DNAT -m comment --comment "nsrun blog" -j NSR-blog-DNAT
COMMIT
*filter
:NSRUN-FORWARD - [0:0]
:NSRUN-INGRESS - [0:0]
:NSRUN-COUNT - [0:0]
:NSRUN-INPUT - [0:0]
:NSR-blog-FWD - [0:0]
:NSR-blog-CNT - [0:0]
:NSR-N-D00ABF7437B9 - [0:0]
-I FORWARD 1 -m comment --comment nsrun -j NSRUN-FORWARD
-I INPUT 1 -m comment --comment nsrun -j NSRUN-INPUT
-A NSRUN-INPUT ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -m comment --comment "nsrun: drop non-loopback traffic to 127.0.0.0/8 (CVE-2020-8558)" -j DROP
-A NSRUN-FORWARD -m conntrack --ctstate DNAT -m comment --comment "nsrun: count the traffic of published ports" -j NSRUN-COUNT
-A NSRUN-FORWARD -o nsr-+ -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "nsrun: traffic of accepted connections" -j ACCEPT
-A NSRUN-FORWARD -i nsr-+ -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "nsrun: traffic of accepted connections" -j ACCEPT
-A NSRUN-FORWARD -o nsh-+ -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "nsrun: traffic of accepted connections" -j ACCEPT
-A NSRUN-FORWARD -i nsh-+ -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "nsrun: traffic of accepted connections" -j ACCEPT
-A NSRUN-FORWARD -o nsr-+ -m conntrack --ctstate DNAT -m comment --comment "nsrun: a published port" -j ACCEPT
-A NSRUN-FORWARD -o nsh-+ -m conntrack --ctstate DNAT -m comment --comment "nsrun: a published port" -j ACCEPT
-A NSRUN-FORWARD -o nsr-+ -m comment --comment "nsrun: new connections to a namespace not by a published port" -j NSRUN-INGRESS
-A NSRUN-FORWARD -o nsh-+ -m comment --comment "nsrun: new connections to a namespace not by a published port" -j NSRUN-INGRESS
-A NSRUN-FORWARD -m comment --comment "nsrun blog" -j NSR-blog-FWD
-A NSRUN-INGRESS -i nsr-+ -m comment --comment "nsrun: from a namespace" -j RETURN
-A NSRUN-INGRESS -i nsh-+ -m comment --comment "nsrun: from a namespace" -j RETURN
-A NSRUN-INGRESS -m comment --comment "nsrun: only published ports are reachable from other machines" -j DROP
-A NSR-blog-FWD -i nsr-ns1 -m comment --comment "nsrun blog/ns1" -j NSR-N-D00ABF7437B9
-A NSR-blog-FWD -i nsr-ns1 -o nsr-+ -m comment --comment "nsrun blog/ns1" -j DROP
-A NSR-blog-FWD -i nsr-ns1 -o nsh-+ -m comment --comment "nsrun blog/ns1" -j DROP
-A NSR-blog-FWD -i nsr-ns1 -m comment --comment "nsrun blog/ns1" -j ACCEPT
-A NSR-blog-CNT -p tcp -m conntrack --ctorigdstport 6000 --ctdir ORIGINAL -m comment --comment "nsrun blog/ns1" -j RETURN
-A NSR-blog-CNT -p tcp -m conntrack --ctorigdstport 6000 --ctdir REPLY -m comment --comment "nsrun blog/ns1" -j RETURN
-A NSR-N-D00ABF7437B9 -o nsr-ns1 -m comment --comment "nsrun blog/ns1" -j ACCEPT
-A NSRUN-COUNT -m comment --comment "nsrun blog" -j NSR-blog-CNT
COMMIT
`
	if got != want {
		t.Errorf("UpScript:\n%s\nwant:\n%s", got, want)
	}
}

// applied returns what iptables-save would print after the script ran on
// snap (see Snapshot.Restore), failing the test where iptables-restore
// would fail.
func applied(t *testing.T, snap *Snapshot, script string) *Snapshot {
	t.Helper()
	out, err := snap.Restore(script)
	if err != nil {
		t.Fatalf("iptables-restore would fail: %v\nscript:\n%s", err, script)
	}
	return out
}

func mustChain(t *testing.T, s *Snapshot, table, chain string) *Chain {
	t.Helper()
	c := s.Tables[table][chain]
	if c == nil {
		t.Fatalf("chain %s/%s does not exist", table, chain)
	}
	return c
}

func TestUpIsIdempotentAndDownRestores(t *testing.T) {
	clean := emptySnapshot(t)
	p := blog(t)
	up := applied(t, clean, UpScript(clean, p))
	if again := UpScript(up, p); again != "" {
		t.Errorf("second UpScript is not empty:\n%s", again)
	}
	// The FORWARD jump goes first, before Docker's rules.
	if fwd := up.Chain("filter", "FORWARD").Rules; !strings.HasSuffix(fwd[0], "-j NSRUN-FORWARD") {
		t.Errorf("FORWARD = %v; want nsrun's jump first", fwd)
	}
	// A changed project rewrites its own chains only.
	p.Namespaces = p.Namespaces[:1]
	change := UpScript(up, p)
	if strings.Contains(change, "NSRUN-INPUT") || strings.Contains(change, "PREROUTING") || !strings.Contains(change, ":NSR-blog-DNAT") {
		t.Errorf("reconcile script touches more than the project's chains:\n%s", change)
	}
	down := applied(t, up, DownScript(up, "blog"))
	if !equalSnapshots(down, clean) {
		t.Errorf("down did not restore the clean host:\n%s", DownScript(up, "blog"))
	}
}

func TestDownKeepsSharedChainsForOtherProjects(t *testing.T) {
	clean := emptySnapshot(t)
	a, b := blog(t), blog(t)
	b.Name = "other"
	both := applied(t, clean, UpScript(clean, a))
	both = applied(t, both, UpScript(both, b))
	if got := both.Projects(); !slices.Equal(got, []string{"blog", "other"}) {
		t.Errorf("Projects() = %v", got)
	}
	afterA := applied(t, both, DownScript(both, "blog"))
	if afterA.Chain("nat", ChainDNAT) == nil || !afterA.Has(Guard()) || afterA.Chain("nat", "NSR-blog-DNAT") != nil {
		t.Error("down of one project removed the shared chains or kept its own")
	}
	if UpScript(afterA, b) != "" {
		t.Errorf("down of blog disturbed other:\n%s", UpScript(afterA, b))
	}
	if final := applied(t, afterA, DownScript(afterA, "other")); !equalSnapshots(final, clean) {
		t.Error("down of the last project left something")
	}
	if DownScript(clean, "blog") != "" {
		t.Errorf("down of an absent project is not empty: %s", DownScript(clean, "blog"))
	}
}

// TestNetworkChainsAcrossProjects: projects on an external network share
// its chain, each keeping only its own rules in it; a network's chain goes
// with its last link.
func TestNetworkChainsAcrossProjects(t *testing.T) {
	clean := emptySnapshot(t)
	a := blog(t)
	b := forward.Project{Name: "other", Namespaces: []forward.Namespace{
		{Name: "o1", Link: "nsr-o1", Address: netip.MustParsePrefix("10.204.0.2/30"), Egress: true, Networks: []string{"other/default", "shared"}}}}
	shared, own := NetworkChain("shared"), NetworkChain("blog/default")
	both := applied(t, clean, UpScript(clean, a))
	both = applied(t, both, UpScript(both, b))
	if got := mustChain(t, both, "filter", shared).Rules; len(got) != 2 || !strings.Contains(got[0], "-o nsr-ns1 ") || !strings.Contains(got[1], "-o nsr-o1 ") {
		t.Errorf("the shared network's chain: %q", got)
	}
	for _, p := range []forward.Project{a, b} {
		if d := both.Drift(p, false); len(d) != 0 {
			t.Errorf("drift of %s: %q", p.Name, d)
		}
		if again := UpScript(both, p); again != "" {
			t.Errorf("a second up of %s changes:\n%s", p.Name, again)
		}
	}
	afterA := applied(t, both, DownScript(both, "blog"))
	if got := mustChain(t, afterA, "filter", shared).Rules; len(got) != 1 || !strings.Contains(got[0], "-o nsr-o1 ") {
		t.Errorf("the shared network's chain after blog's down: %q", got)
	}
	if afterA.Chain("filter", own) != nil {
		t.Error("blog's own network's chain stays after its down")
	}
	if d := afterA.Drift(b, false); len(d) != 0 {
		t.Errorf("drift of other after blog's down: %q", d)
	}
	// A project that leaves a network takes its links out; the last one
	// out removes the chain.
	both = applied(t, afterA, UpScript(afterA, a))
	left := b
	left.Namespaces = []forward.Namespace{b.Namespaces[0]}
	left.Namespaces[0].Networks = []string{"other/default"}
	if d := both.Drift(left, false); len(d) == 0 || !strings.Contains(strings.Join(d, "\n"), "rule of project other not needed in filter/"+shared) {
		t.Errorf("drift of other leaving the shared network: %q", d)
	}
	both = applied(t, both, UpScript(both, left))
	if got := mustChain(t, both, "filter", shared).Rules; len(got) != 1 || !strings.Contains(got[0], "-o nsr-ns1 ") {
		t.Errorf("the shared network's chain once other left it: %q", got)
	}
	a.Namespaces[0].Networks = []string{"blog/default"}
	both = applied(t, both, UpScript(both, a))
	if both.Chain("filter", shared) != nil {
		t.Error("the shared network's chain stays with no link on it")
	}
	final := applied(t, both, DownScript(both, "blog"))
	if final = applied(t, final, DownScript(final, "other")); !equalSnapshots(final, clean) {
		t.Errorf("down of both left something:\n%s", final)
	}
}

func TestDownRemovesAJumpEditedByHand(t *testing.T) {
	clean := emptySnapshot(t)
	up := applied(t, clean, UpScript(clean, blog(t)))
	pre := up.Chain("nat", "PREROUTING")
	pre.Rules[0] = "-A PREROUTING -m addrtype --dst-type LOCAL -j NSRUN-DNAT" // someone edited it
	if down := applied(t, up, DownScript(up, "blog")); !equalSnapshots(down, clean) {
		t.Errorf("down left the edited jump or a chain:\n%s", DownScript(up, "blog"))
	}
}

func TestSweepScript(t *testing.T) {
	clean := emptySnapshot(t)
	up := applied(t, clean, UpScript(clean, blog(t)))
	swept := applied(t, up, SweepScript(up))
	if !equalSnapshots(swept, clean) {
		t.Errorf("sweep left something:\n%s", SweepScript(up))
	}
}

func equalSnapshots(a, b *Snapshot) bool {
	for _, pair := range [][2]*Snapshot{{a, b}, {b, a}} {
		for table, chains := range pair[0].Tables {
			for name, c := range chains {
				o := pair[1].Tables[table][name]
				if o == nil || o.Policy != c.Policy || !slices.Equal(o.Rules, c.Rules) {
					return false
				}
			}
		}
	}
	return true
}

func TestChoose(t *testing.T) {
	empty := mustParseSave(t, "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\nCOMMIT\n")
	drop := mustParseSave(t, "*filter\n:FORWARD DROP [0:0]\nCOMMIT\n")
	used := mustParseSave(t, "*nat\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -j MASQUERADE\nCOMMIT\n")
	ours := mustParseSave(t, "*nat\n:NSRUN-DNAT - [0:0]\nCOMMIT\n")
	dropRule := mustParseSave(t, "*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -i eth9 -j DROP\nCOMMIT\n")
	tests := []struct {
		name        string
		nft, legacy *Snapshot
		want        forward.Backend
		err         string
	}{
		{"nothing anywhere", empty, empty, NFT, ""},
		{"only legacy installed", nil, empty, Legacy, ""},
		{"only nft installed", empty, nil, NFT, ""},
		{"none installed", nil, nil, "", "apt-get install iptables"},
		{"legacy in use", empty, used, Legacy, ""},
		{"both in use", used, used, NFT, ""},
		{"drop in legacy", empty, drop, Legacy, ""},
		{"drop in nft", drop, used, NFT, ""},
		{"drop rule in legacy", used, dropRule, Legacy, ""},
		{"ours stay in legacy", empty, ours, Legacy, ""},
		{"ours in nft but legacy drops", ours, drop, NFT, ""},
		{"drops in both", drop, drop, NFT, ""},
		{"ours in both", ours, ours, "", "nsrun down --all"},
		{"only our accepts in legacy", empty, mustParseSave(t, "*filter\n:NSRUN-FORWARD - [0:0]\nCOMMIT\n"), NFT, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := forward.Choose(Backends, tablesOf(tc.nft, tc.legacy))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("Choose = %v, %v; want an error containing %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("Choose = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestParseSaveReadsEveryLine(t *testing.T) {
	text := "# Generated by iptables-nft-save\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [12:345]\n:NSR-p - [0:0]\n" +
		"-A FORWARD -j NSR-p\n-A NSR-p -d 10.0.0.2/32 -j ACCEPT\r\n  -A NSR-p -j RETURN  \nCOMMIT\n" +
		"*nat\n:PREROUTING ACCEPT [0:0]\n\n-A LATE -p tcp -j DNAT --to-destination 10.0.0.2:80\nCOMMIT" // no newline at the end
	got, err := ParseSave(text)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]*Chain{
		"filter": {
			"INPUT":   {Policy: "ACCEPT"},
			"FORWARD": {Policy: "DROP", Rules: []string{"-A FORWARD -j NSR-p"}},
			"NSR-p":   {Policy: "-", Rules: []string{"-A NSR-p -d 10.0.0.2/32 -j ACCEPT", "-A NSR-p -j RETURN"}},
		},
		"nat": {
			"PREROUTING": {Policy: "ACCEPT"},
			"LATE":       {Policy: "-", Rules: []string{"-A LATE -p tcp -j DNAT --to-destination 10.0.0.2:80"}},
		},
	}
	if !reflect.DeepEqual(got.Tables, want) {
		t.Errorf("ParseSave =\n%#v\nwant\n%#v", got.Tables, want)
	}
}

func TestParseSaveErrors(t *testing.T) {
	for _, bad := range []string{"-A X -j ACCEPT\n", "*nat\n:\n", "*nat\nbogus line\n"} {
		if _, err := ParseSave(bad); err == nil {
			t.Errorf("ParseSave(%q) accepted it", bad)
		}
	}
}

// manyPorts is a project publishing n TCP ports and n/10 UDP ranges.
func manyPorts(t *testing.T, n int) forward.Project {
	ns := forward.Namespace{Name: "ns1", Link: "nsr-ns1", Address: netip.MustParsePrefix("10.9.0.2/24"), Egress: true}
	for i := 0; i < n; i++ {
		ns.Ports = append(ns.Ports, specs.MustParsePort(fmt.Sprintf("%d:8080", 20000+i)))
	}
	for i := 0; i < n/10; i++ {
		ns.Ports = append(ns.Ports, specs.MustParsePort(fmt.Sprintf("%d-%d:9000-9001/udp", 40000+2*i, 40001+2*i)))
	}
	return forward.Project{Name: "many", Namespaces: []forward.Namespace{ns}}
}

// walk follows a new connection through the DNAT chains as the kernel
// would (for rules matching on protocol and destination port only) and
// returns the DNAT target and how many rules it was matched against.
// walk follows a packet of a connection to dport through the tree from
// chain: a new one's through the DNAT tree (way ""), one of either way
// through the counting tree (way ORIGINAL or REPLY). It returns the DNAT
// target or the counting rule's way, and the rules evaluated.
func walk(rules []Rule, chain, proto string, dport int, way string) (string, int) {
	evaluated := 0
	match := "--dport "
	if way != "" {
		match = "--ctorigdstport "
	}
	for _, r := range rules {
		if r.Chain != chain {
			continue
		}
		evaluated++
		args := strings.Join(r.Args, " ")
		if !strings.Contains(args, "-p "+proto+" ") || way != "" && strings.Contains(args, "--ctdir ") && !strings.Contains(args, "--ctdir "+way+" ") {
			continue
		}
		var lo, hi int
		f := strings.Fields(args[strings.Index(args, match)+len(match):])[0]
		if _, err := fmt.Sscanf(f, "%d:%d", &lo, &hi); err != nil {
			fmt.Sscanf(f, "%d", &lo)
			hi = lo
		}
		if dport < lo || dport > hi {
			continue
		}
		target := r.Args[slices.Index(r.Args, "-j")+1]
		switch target {
		case "DNAT":
			return r.Args[len(r.Args)-1], evaluated
		case "RETURN":
			return way, evaluated
		}
		got, n := walk(rules, target, proto, dport, way)
		if got != "" {
			return got, evaluated + n
		}
	}
	return "", evaluated
}

func TestDispatchTree(t *testing.T) {
	for _, n := range []int{10, 16, 17, 100, 1000, 4000} {
		p := manyPorts(t, n)
		rules := Rules(p)
		ch := ProjectChains("many")
		perChain := map[string]int{}
		for _, r := range rules {
			if r.Table == "nat" && r.Chain != ch.Post || isCountChain(r.Chain) {
				perChain[r.Chain]++
			}
		}
		for chain, count := range perChain {
			if count > fanout {
				t.Errorf("n=%d: chain %s holds %d rules; want at most %d", n, chain, count, fanout)
			}
			if len(chain) > 28 {
				t.Errorf("chain name %s is too long", chain)
			}
		}
		worst, worstCount := 0, 0
		for i := 0; i < n; i++ {
			target, evaluated := walk(rules, ch.DNAT, "tcp", 20000+i, "")
			if target != "10.9.0.2:8080" {
				t.Fatalf("n=%d: port %d reaches %q", n, 20000+i, target)
			}
			worst = max(worst, evaluated)
			for _, way := range []string{WayIn, WayOut} {
				counted, evaluated := walk(rules, ch.Count, "tcp", 20000+i, way)
				if counted != way {
					t.Fatalf("n=%d: a packet of port %d's connections, way %s, is counted by %q", n, 20000+i, way, counted)
				}
				worstCount = max(worstCount, evaluated)
			}
		}
		if target, _ := walk(rules, ch.DNAT, "udp", 40001, ""); n >= 10 && target != "10.9.0.2:9000-9001/40000" {
			t.Errorf("n=%d: udp 40001 reaches %q", n, target)
		}
		if counted, _ := walk(rules, ch.Count, "udp", 40001, WayOut); n >= 10 && counted != WayOut {
			t.Errorf("n=%d: udp 40001 out is counted by %q", n, counted)
		}
		if target, _ := walk(rules, ch.DNAT, "tcp", 20000+n, ""); target != "" {
			t.Errorf("n=%d: an unpublished port reaches %q", n, target)
		}
		if counted, _ := walk(rules, ch.Count, "tcp", 20000+n, WayIn); counted != "" {
			t.Errorf("n=%d: an unpublished port is counted by %q", n, counted)
		}
		// At most fanout rules per level of a tree of fanout-wide chains;
		// the counting tree holds two rules per port.
		levels := func(entries int) int {
			l := 1
			for size := fanout; size < entries; size *= fanout {
				l++
			}
			return l
		}
		if want := fanout * levels(n+n/10); worst > want {
			t.Errorf("n=%d: a connection is matched against %d rules; want at most %d", n, worst, want)
		}
		if want := fanout * levels(2*(n+n/10)); worstCount > want {
			t.Errorf("n=%d: a packet is matched against %d counting rules; want at most %d", n, worstCount, want)
		}
	}
}

func TestDispatchTreeShrinks(t *testing.T) {
	clean := emptySnapshot(t)
	big := applied(t, clean, UpScript(clean, manyPorts(t, 100)))
	small := applied(t, big, UpScript(big, manyPorts(t, 3)))
	for _, table := range []string{"nat", "filter"} {
		for name := range small.Tables[table] {
			if isSubChain(ProjectChains("many"), name) {
				t.Errorf("sub-chain %s/%s left after the project shrank", table, name)
			}
		}
	}
	if again := UpScript(small, manyPorts(t, 3)); again != "" {
		t.Errorf("not settled:\n%s", again)
	}
	if down := applied(t, big, DownScript(big, "many")); !equalSnapshots(down, clean) {
		t.Error("down of a project with a dispatch tree left chains")
	}
}

func TestProjectWithoutPorts(t *testing.T) {
	clean := emptySnapshot(t)
	p := forward.Project{Name: "quiet", Namespaces: []forward.Namespace{{Name: "ns1", Link: "nsr-ns1", Address: netip.MustParsePrefix("10.9.0.2/24"), Egress: true}}}
	up := applied(t, clean, UpScript(clean, p))
	if up.Chain("nat", "NSR-quiet-DNAT") == nil || UpScript(up, p) != "" {
		t.Errorf("a project without ports: %s", UpScript(clean, p))
	}
}

func lines(rules []Rule) []string {
	out := make([]string, len(rules))
	for i, r := range rules {
		out[i] = r.String()
	}
	return out
}

func TestDrift(t *testing.T) {
	clean := emptySnapshot(t)
	p := blog(t)
	up := applied(t, clean, UpScript(clean, p))
	if d := up.Drift(p, false); len(d) != 0 {
		t.Fatalf("drift right after up: %v", d)
	}
	dnat := up.Chain("nat", "NSR-blog-DNAT")
	removed := dnat.Rules[0]
	dnat.Rules = append(dnat.Rules[1:], "-A NSR-blog-DNAT -p tcp -m tcp --dport 1 -j DNAT --to-destination 10.0.0.1:1")
	d := up.Drift(p, false)
	want := []string{
		"rule missing from nat/NSR-blog-DNAT: " + removed,
		"rule not made by nsrun in nat/NSR-blog-DNAT: -A NSR-blog-DNAT -p tcp -m tcp --dport 1 -j DNAT --to-destination 10.0.0.1:1",
	}
	if !slices.Equal(d, want) {
		t.Errorf("Drift = %q\nwant %q", d, want)
	}
	if d := clean.Drift(p, false); len(d) < 10 {
		t.Errorf("Drift of a clean host lists %d missing rules", len(d))
	}
}

func TestRestoreFailsAsIptablesRestore(t *testing.T) {
	base := emptySnapshot(t)
	for name, script := range map[string]string{
		"undeclared chain":      "*nat\n-A NSRUN-NOPE -j ACCEPT\nCOMMIT\n",
		"delete a missing rule": "*filter\n-D FORWARD -j ACCEPT\nCOMMIT\n",
		"delete a full chain":   "*filter\n:X - [0:0]\n-A X -j ACCEPT\n-X X\nCOMMIT\n",
		"no table":              "-A FORWARD -j ACCEPT\n",
	} {
		if _, err := base.Restore(script); err == nil {
			t.Errorf("%s: Restore accepted\n%s", name, script)
		}
	}
	before := base.String()
	if _, err := base.Restore("*filter\n:X - [0:0]\n-A X -j ACCEPT\n-D FORWARD -j NOPE\nCOMMIT\n"); err == nil || base.String() != before {
		t.Errorf("a failed batch changed the snapshot (err %v)", err)
	}
}

func TestPlace(t *testing.T) {
	accept := mustParseSave(t, "*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n")
	drop := mustParseSave(t, "*filter\n:FORWARD DROP [0:0]\nCOMMIT\n")
	ours := mustParseSave(t, "*nat\n:NSRUN-DNAT - [0:0]\nCOMMIT\n*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n")
	tests := []struct {
		name        string
		recorded    forward.Backend
		nft, legacy *Snapshot
		want        forward.Placement
		err         string
	}{
		{"new, nothing drops", "", accept, accept, forward.Placement{Backend: NFT}, ""},
		{"new, legacy drops", "", accept, drop, forward.Placement{Backend: Legacy}, ""},
		{"new, ours in nft, legacy drops", "", ours, drop, forward.Placement{Backend: NFT, Accepts: []forward.Backend{Legacy}}, ""},
		{"recorded nft, legacy drops since", NFT, accept, drop, forward.Placement{Backend: NFT, Accepts: []forward.Backend{Legacy}}, ""},
		{"recorded legacy, nft drops since", Legacy, drop, accept, forward.Placement{Backend: Legacy, Accepts: []forward.Backend{NFT}}, ""},
		{"recorded nft, both drop", NFT, drop, drop, forward.Placement{Backend: NFT, Accepts: []forward.Backend{Legacy}}, ""},
		{"recorded backend gone", Legacy, accept, nil, forward.Placement{}, "iptables-legacy, which is not installed"},
		{"nothing installed", "", nil, nil, forward.Placement{}, "apt-get install iptables"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := forward.Place(tc.recorded, forward.Auto, Backends, tablesOf(tc.nft, tc.legacy))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("Place = %v, %v; want an error containing %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got.Backend != tc.want.Backend || !slices.Equal(got.Accepts, tc.want.Accepts) {
				t.Errorf("Place = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// The FORWARD accepts in a backend that drops: only the filter table's
// forward chains, first in FORWARD; no drift once applied; removed whole
// by DownScript, leaving the backend as it was.
func TestAcceptScript(t *testing.T) {
	p := blog(t)
	clean, err := ParseSave("*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n-A FORWARD -o docker0 -j DOCKER\nCOMMIT\n")
	if err != nil {
		t.Fatal(err)
	}
	if d := clean.Drift(p, true); len(d) == 0 {
		t.Error("AcceptDrift of a backend without the accepts reports nothing")
	}
	script := AcceptScript(clean, p)
	if strings.Contains(script, "*nat") || strings.Contains(script, ChainInput) || strings.Contains(script, ChainCount) || strings.Contains(script, "-CNT") {
		t.Errorf("the accepts touch more than filter FORWARD:\n%s", script)
	}
	up := applied(t, clean, script)
	if c := up.Chain("filter", "FORWARD"); c.Rules[0] != "-A FORWARD -m comment --comment nsrun -j NSRUN-FORWARD" {
		t.Errorf("nsrun's jump is not first in FORWARD: %q", c.Rules)
	}
	if d := up.Drift(p, true); len(d) != 0 {
		t.Errorf("drift after the accepts were applied: %q", d)
	}
	if again := AcceptScript(up, p); again != "" {
		t.Errorf("a second AcceptScript is not empty:\n%s", again)
	}
	if !up.DropsForward() || up.Publishes() {
		t.Error("a backend with only the accepts must still drop elsewhere and not count as publishing")
	}
	down := applied(t, up, DownScript(up, p.Name))
	if down.String() != clean.String() {
		t.Errorf("down left:\n%s\nwant:\n%s", down, clean)
	}
}

// An NSRUN-FORWARD made by an older nsrun (only the projects' jumps) or
// edited by hand gets the head back on top, every rule it held kept in
// order; a second project's jump goes after the first's.
func TestForwardHeadComesFirst(t *testing.T) {
	old, err := ParseSave("*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n" +
		"*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:NSRUN-FORWARD - [0:0]\n-A FORWARD -m comment --comment nsrun -j NSRUN-FORWARD\n" +
		"-A NSRUN-FORWARD -m comment --comment \"nsrun other\" -j NSR-other-FWD\n-A NSRUN-FORWARD -i eth9 -j ACCEPT\nCOMMIT\n")
	if err != nil {
		t.Fatal(err)
	}
	old.Tables["filter"]["NSR-other-FWD"] = &Chain{Policy: "-"}
	up := applied(t, old, UpScript(old, blog(t)))
	got := up.Chain("filter", ChainForward).Rules
	head := lines(ForwardHead())
	want := append(head, `-A NSRUN-FORWARD -m comment --comment "nsrun other" -j NSR-other-FWD`, "-A NSRUN-FORWARD -i eth9 -j ACCEPT",
		`-A NSRUN-FORWARD -m comment --comment "nsrun blog" -j NSR-blog-FWD`)
	if !slices.Equal(got, want) {
		t.Errorf("NSRUN-FORWARD:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if again := UpScript(up, blog(t)); again != "" {
		t.Errorf("a second UpScript is not empty:\n%s", again)
	}
	if d := up.Drift(blog(t), false); len(d) != 0 {
		t.Errorf("drift: %q", d)
	}
	// Removing the head is drift, and up puts it back first.
	broken := applied(t, up, "*filter\n-D NSRUN-FORWARD "+strings.TrimPrefix(head[0], "-A NSRUN-FORWARD ")+"\nCOMMIT\n")
	if d := broken.Drift(blog(t), false); len(d) != 1 || !strings.Contains(d[0], "rule missing from filter/NSRUN-FORWARD") {
		t.Errorf("drift without the first head rule: %q", d)
	}
	if fixed := applied(t, broken, UpScript(broken, blog(t))); !slices.Equal(fixed.Chain("filter", ChainForward).Rules, want) {
		t.Errorf("after the repair: %q", fixed.Chain("filter", ChainForward).Rules)
	}
}

func TestCovering(t *testing.T) {
	ns := func(cidrs ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, c := range cidrs {
			out = append(out, netip.MustParsePrefix(c))
		}
		return out
	}
	for _, tc := range []struct {
		in   []netip.Prefix
		want string
	}{
		{ns("10.203.45.214/30"), "10.203.45.212/30"},
		{ns("10.203.45.214/30", "10.203.26.242/30"), "10.203.0.0/18"},
		{ns("10.203.1.2/24", "10.203.1.6/30"), "10.203.1.0/24"},
		{ns("10.203.1.2/30", "192.168.7.2/24"), "0.0.0.0/0"},
		{ns("fd12:3456:789a:1::2/64", "fd12:3456:789a:3::2/64"), "fd12:3456:789a::/62"},
	} {
		if got := covering(tc.in); got.String() != tc.want {
			t.Errorf("covering(%v) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// tablesOf is what Observe passes to the choice: the installed backends
// (a nil snapshot is one that is not).
func tablesOf(nft, legacy *Snapshot) map[forward.Backend]forward.Tables {
	out := map[forward.Backend]forward.Tables{}
	if nft != nil {
		out[NFT] = nft
	}
	if legacy != nil {
		out[Legacy] = legacy
	}
	return out
}

func mustParseSave(t *testing.T, s string) *Snapshot {
	t.Helper()
	snap, err := ParseSave(s)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}
