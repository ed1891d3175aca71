package project

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/forward/iptables"
	"github.com/nsrun/nsrun/host"
	"github.com/nsrun/nsrun/specs"
	"github.com/nsrun/nsrun/state"
	"github.com/nsrun/nsrun/veth"
)

func TestPreflightConflicts(t *testing.T) {
	want := FromSpec(spec(t, "namespaces:\n  ns1: {address: 10.9.1.2/24, ports: [\"6000:8080\", \"127.0.0.1:6100:53/udp\"]}\n  ns2: {address: 10.9.2.2/24}\n"))
	other := FromSpec(spec(t, "name: other\nnamespaces:\n  o1: {address: 10.9.2.100/25, ports: [\"6000-6010:7000-7010\"]}\n  taken: {address: 10.77.0.2/24}\n"))
	obs := host.Observed{
		Namespaces: map[string]bool{"ns1": true, "taken": true},
		Links:      map[string]veth.Link{"nsr-ns2": {Name: "nsr-ns2"}, "eth0": {Name: "eth0"}},
		Prefixes:   []veth.HostPrefix{{Prefix: netip.MustParsePrefix("10.9.1.0/24"), Link: "eth0", What: "route"}},
		Listeners:  []forward.Listener{{Protocol: specs.UDP, Addr: netip.MustParseAddr("0.0.0.0"), Port: 6100, PID: 4242, Command: "dnsmasq"}},
	}
	err := Preflight(want, nil, []*state.Record{other}, obs)
	if err == nil {
		t.Fatal("no conflict found")
	}
	for _, msg := range []string{
		`namespace "ns1" already exists and was not made by project "demo"; choose another name, or remove it with 'sudo ip netns del ns1'`,
		`interface "nsr-ns2", which namespace "ns2" needs on the host, already exists`,
		`namespace "ns1"'s subnet 10.9.1.0/24 overlaps the host's route 10.9.1.0/24 on eth0`,
		`namespace "ns2"'s subnet 10.9.2.0/24 overlaps namespace "o1" of project "other" (10.9.2.0/25)`,
		`host port 6000/tcp is already published by project "other" (namespace "o1")`,
		`port 6100/udp is already in use by dnsmasq (pid 4242) on the host; stop it or publish another port`,
	} {
		if !strings.Contains(err.Error(), msg) {
			t.Errorf("missing %q in:\n%v", msg, err)
		}
	}
	// The same project, recorded: its own namespace, link and ports are no conflict.
	ownObs := host.Observed{Namespaces: map[string]bool{"ns1": true}, Links: map[string]veth.Link{"nsr-ns1": {Name: "nsr-ns1", Alias: veth.Label("demo", "ns1")}}, Prefixes: []veth.HostPrefix{
		{Prefix: netip.MustParsePrefix("10.9.1.0/24"), Link: "nsr-ns1", What: "route"}},
		Listeners: obs.Listeners[:0]}
	if err := Preflight(want, want, nil, ownObs); err != nil {
		t.Errorf("re-up of a recorded project: %v", err)
	}
	// A namespace of another nsrun project is named as such.
	clash := FromSpec(spec(t, "namespaces:\n  taken: {}\n"))
	if err := Preflight(clash, nil, []*state.Record{other}, obs); err == nil || !strings.Contains(err.Error(), `namespace "taken" belongs to nsrun project "other"`) {
		t.Errorf("clash with another project: %v", err)
	}
}

// noPrefixes and prefixes are the host's prefixes, as Desire asks for them.
func noPrefixes() []netip.Prefix { return nil }

func prefixes(list ...string) func() []netip.Prefix {
	return func() []netip.Prefix {
		var out []netip.Prefix
		for _, p := range list {
			out = append(out, netip.MustParsePrefix(p))
		}
		return out
	}
}

func TestDesireChoosesAFreePool(t *testing.T) {
	s := spec(t, "namespaces: {a: {}, b: {}}\n")
	pools := specs.DefaultPools()
	st, err := Desire(s, nil, nil, prefixes("10.203.7.0/24"), "")
	if err != nil {
		t.Fatal(err)
	}
	if st.Subnet != pools[1] || !pools[1].Contains(st.Namespace("a").Address.Addr()) {
		t.Errorf("subnet %v, a %v; want the second default pool", st.Subnet, st.Namespace("a").Address)
	}
	// Recorded addresses are kept, even when the first pool is free again;
	// the host's prefixes are not asked for then (beside thousands of
	// namespaces, finding them costs more than the rest of Desire).
	unasked := func() []netip.Prefix {
		t.Error("Desire asked for the host's prefixes with a recorded pool")
		return nil
	}
	again, err := Desire(spec(t, "namespaces: {a: {}, b: {}}\n"), st, nil, unasked, "")
	if err != nil || again.Namespace("a").Address != st.Namespace("a").Address || again.Subnet != st.Subnet {
		t.Errorf("re-up moved addresses: %v -> %v (%v)", st.Namespace("a").Address, again.Namespace("a").Address, err)
	}
	// Every pool taken.
	if _, err := Desire(spec(t, "namespaces: {a: {}}\n"), nil, nil, prefixes("10.0.0.0/8"), ""); err == nil || !strings.Contains(err.Error(), "set subnet:") {
		t.Errorf("all pools overlapping: %v", err)
	}
}

// observedOf is what Observe shows of a host where st is in place exactly.
func observedOf(t *testing.T, st *state.Record) host.Observed {
	t.Helper()
	obs := host.Observed{Namespaces: map[string]bool{}, Links: map[string]veth.Link{}, IPForward: "1",
		RouteLocalnet: map[string]string{}, Peers: map[string]veth.Peer{}, Etc: map[string]map[string]host.EtcFile{}}
	etc := EtcFiles(st, nil, "nameserver 192.0.2.53\n", "")
	obs.HostResolv = "nameserver 192.0.2.53\n"
	for i, ns := range st.Namespaces {
		obs.Namespaces[ns.Name] = true
		obs.Links[ns.Link] = veth.Link{Name: ns.Link, Alias: veth.Label(st.Project, ns.Name), Type: "veth", Index: 10 + i, Up: true, Addrs: []netip.Prefix{ns.HostAddress}}
		obs.RouteLocalnet[ns.Link] = "1"
		obs.Peers[ns.Name] = veth.Peer{Exists: true, ParentIndex: 10 + i, Up: true, Addrs: []netip.Prefix{ns.Address}, Gateways: []netip.Addr{ns.HostAddress.Addr()}}
		obs.Etc[ns.Name] = map[string]host.EtcFile{}
		for name, content := range etc[ns.Name].Files {
			obs.Etc[ns.Name][name] = host.EtcFileOf(content)
		}
	}
	fw, err := iptables.NewFake(st.Backend, cleanTables)
	if err != nil {
		t.Fatal(err)
	}
	if err := fw.Ensure(context.Background(), st.ForwardProject(), false); err != nil {
		t.Fatal(err)
	}
	up, err := fw.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	obs.Tables, obs.Backends = map[forward.Backend]forward.Tables{st.Backend: up}, []forward.Backend{st.Backend}
	return obs
}

func opsOf(steps []Step) []string {
	var out []string
	for _, s := range steps {
		out = append(out, strings.TrimSpace(string(s.Op)+" "+s.Namespace))
	}
	return out
}

func TestPlanUp(t *testing.T) {
	want := FromSpec(spec(t, twoNamespaces))
	want.Backend = iptables.NFT
	steps := PlanUp(want, nil, nil, host.Observed{}, nil)
	wantOps := []string{"ip-forward", "create-namespace ns1", "create-namespace ns2", "link ns1", "link ns2", "etc ns1", "etc ns2", "forwards", "flush-udp"}
	if got := opsOf(steps); !slices.Equal(got, wantOps) {
		t.Errorf("steps %q, want %q", got, wantOps)
	}
	obs := observedOf(t, want)
	if d := NetworkDrift(want, nil, obs); len(d) != 0 {
		t.Fatalf("drift of a host as recorded: %+v", d)
	}
	t.Run("unchanged", func(t *testing.T) {
		if steps := PlanUp(want, want, nil, obs, nil); len(steps) != 0 {
			t.Errorf("an unchanged spec on a host as recorded plans %q", opsOf(steps))
		}
	})
	t.Run("drifted", func(t *testing.T) {
		drifted := observedOf(t, want)
		l := drifted.Links["nsr-ns2"]
		l.Up = false
		drifted.Links["nsr-ns2"] = l
		delete(drifted.Etc, "ns1")
		drifted.Tables[iptables.NFT], _ = drifted.Tables[iptables.NFT].(*iptables.Snapshot).Restore("*nat\n:NSRUN-DNAT - [0:0]\nCOMMIT\n") // flushed
		drift := NetworkDrift(want, nil, drifted)
		steps := PlanUp(want, want, nil, drifted, drift)
		if got, w := opsOf(steps), []string{"link ns2", "etc ns1", "forwards"}; !slices.Equal(got, w) {
			t.Fatalf("steps %q, want only the repairs %q (drift %+v)", got, w, drift)
		}
		if got := steps[0].String(); got != "link nsr-ns2 <-> ns2:eth0 ("+want.Namespace("ns2").HostAddress.String()+", "+want.Namespace("ns2").Address.String()+") (repaired: link nsr-ns2 is down)" {
			t.Errorf("progress line %q", got)
		}
		if got := steps[2].String(); !strings.HasPrefix(got, "forwards of project demo in place (iptables-nft) (repaired: rule missing from nat/NSRUN-DNAT") {
			t.Errorf("progress line %q", got)
		}
	})
	t.Run("reconcile", func(t *testing.T) {
		// Removing ns2 and the UDP port: ns1's files name one namespace
		// fewer, the rules change, ns2 is stopped and removed last, and
		// the stale UDP entries are flushed. ns1's link stays as it is.
		edited := FromSpec(spec(t, "namespaces:\n  ns1: {ports: [\"6000:8080\"]}\n"))
		edited.Backend = iptables.NFT
		steps := PlanUp(edited, want, nil, obs, nil)
		w := []string{"etc ns1", "forwards", "flush-udp", "kill", "delete-namespace ns2", "remove-etc ns2", "links-gone"}
		if got := opsOf(steps); !slices.Equal(got, w) {
			t.Errorf("reconcile steps %q, want %q", got, w)
		}
		if steps[2].Ports[0] != (specs.PortRange{First: 6100, Last: 6100}) || !slices.Equal(steps[3].Namespaces, []string{"ns2"}) || !slices.Equal(steps[6].Links, []string{"nsr-ns2"}) {
			t.Errorf("steps %+v", steps)
		}
	})
	t.Run("placement", func(t *testing.T) {
		moved := *want
		moved.Accepts = []forward.Backend{iptables.Legacy}
		if got := opsOf(PlanUp(&moved, want, nil, obs, nil)); !slices.Equal(got, []string{"forwards"}) {
			t.Errorf("new accepts plan %q; want the forwards alone", got)
		}
	})
}

func TestPlanDown(t *testing.T) {
	st := FromSpec(spec(t, twoNamespaces))
	got := opsOf(PlanDown(st, nil))
	w := []string{"kill", "delete-namespace ns1", "delete-namespace ns2", "remove-forwards", "remove-etc ns1", "remove-etc ns2", "flush-udp", "links-gone"}
	if !slices.Equal(got, w) {
		t.Errorf("down steps %q, want %q: each kind of object in bulk", got, w)
	}
}

func TestStateRoundTripAndCorruption(t *testing.T) {
	st := state.Store{Dir: t.TempDir()}
	want := FromSpec(spec(t, twoNamespaces))
	if err := st.Save(want); err != nil {
		t.Fatal(err)
	}
	got, err := st.Load("demo")
	if err != nil || len(got.Namespaces) != 2 || got.Namespace("ns1").Ports[1].Full() != "0.0.0.0:6100:9090/udp" {
		t.Fatalf("Load = %+v, %v", got, err)
	}
	// Ports are recorded as text, readable by people and by older nsruns.
	data, err := os.ReadFile(filepath.Join(st.ProjectDir("demo"), "state.json"))
	if err != nil || !strings.Contains(string(data), `"ports": [
        "0.0.0.0:6000:8080/tcp",
        "0.0.0.0:6100:9090/udp"
      ]`) {
		t.Errorf("state.json does not record the ports as text:\n%s", data)
	}
	// A record written before ports were typed, and before the backends
	// were named as status shows them, reads the same.
	old := `{"version": 1, "project": "demo", "backend": "nft", "forward_accepts": ["legacy"], "namespaces": [{"name": "ns1", "link": "nsr-ns1",
		"address": "10.203.1.2/30", "host_address": "10.203.1.1/30",
		"ports": ["0.0.0.0:6000:8080/tcp", "127.0.0.1:7000-7002:8000-8002/udp"]}]}`
	s, err := state.Decode("demo", []byte(old))
	if err != nil {
		t.Fatal(err)
	}
	if p := s.Namespaces[0].Ports; len(p) != 2 || p[1].HostIP.String() != "127.0.0.1" || p[1].Published != (specs.PortRange{First: 7000, Last: 7002}) ||
		p[1].Target.First != 8000 || p[1].Protocol != specs.UDP {
		t.Errorf("old record's ports read as %+v", p)
	}
	if s.Backend != iptables.NFT || len(s.Accepts) != 1 || s.Accepts[0] != iptables.Legacy {
		t.Errorf("old record's backends read as %q, %q", s.Backend, s.Accepts)
	}
	for name, data := range map[string]string{
		"truncated":  `{"version": 1, "project": "demo", "namesp`,
		"garbage":    "\x00\x01",
		"bad port":   `{"version": 1, "project": "demo", "namespaces": [{"name": "a", "link": "nsr-a", "ports": ["70000:1"]}]}`,
		"bad name":   `{"version": 1, "project": "demo", "namespaces": [{"name": "../x", "link": "l"}]}`,
		"null entry": `{"version": 1, "project": "demo", "namespaces": [null]}`,
		"other proj": `{"version": 1, "project": "x", "namespaces": []}`,
	} {
		if _, err := state.Decode("demo", []byte(data)); err == nil || !strings.Contains(err.Error(), "nsrun down --all") {
			t.Errorf("%s: DecodeState = %v", name, err)
		}
	}
}

// FuzzDecodeState: no state file, however damaged, panics the loader.
func FuzzDecodeState(f *testing.F) {
	f.Add([]byte(`{"version": 1, "project": "demo", "namespaces": [{"name": "ns1", "link": "nsr-ns1", "ports": ["0.0.0.0:6000:8080/tcp"]}]}`))
	f.Add([]byte(`{"version": 1, "project": "demo", "namespaces": [null]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := state.Decode("demo", data)
		if err == nil {
			iptables.Rules(s.ForwardProject()) // renders without panicking
		}
	})
}

func TestEtcFilesContent(t *testing.T) {
	st := FromSpec(spec(t, "namespaces:\n  ns1: {address: 10.9.1.2/24}\n  ns2: {address: 10.9.2.2/24}\n"))
	files := EtcFiles(st, nil, "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch example.org\n", "nameserver 192.0.2.1\nnameserver 192.0.2.2\nsearch lan\n")["ns1"].Files
	wantHosts := host.EtcMarker + " for project demo; removed by nsrun down\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n10.9.1.2\tns1\n10.9.2.2\tns2\n"
	if files["hosts"] != wantHosts {
		t.Errorf("hosts:\n%s\nwant:\n%s", files["hosts"], wantHosts)
	}
	wantResolv := host.EtcMarker + "; removed by nsrun down\nnameserver 192.0.2.1\nnameserver 192.0.2.2\nsearch lan\n"
	if files["resolv.conf"] != wantResolv {
		t.Errorf("resolv.conf behind the systemd stub:\n%s\nwant:\n%s", files["resolv.conf"], wantResolv)
	}
	if got, ok := ResolvConf("nameserver 10.0.0.1\n", ""); !ok || !strings.Contains(got, "nameserver 10.0.0.1\n") {
		t.Errorf("plain resolv.conf: %q %v", got, ok)
	}
	if _, ok := ResolvConf("nameserver 127.0.0.53\n", ""); ok {
		t.Error("a loopback-only resolv.conf gave nameservers")
	}
	if _, has := EtcFiles(st, nil, "", "")["ns1"].Files["resolv.conf"]; has {
		t.Error("resolv.conf written with no nameserver")
	}
}

// TestHostsNameTheNetworks: a namespace's hosts file names the namespaces
// it shares a network with, and itself; no other.
func TestHostsNameTheNetworks(t *testing.T) {
	st := FromSpec(spec(t, `networks: {front: {}, back: {}, shared: {external: true}}
namespaces:
  x: {address: 10.9.1.2/24, networks: [front]}
  y: {address: 10.9.2.2/24, networks: [front, back]}
  z: {address: 10.9.3.2/24, networks: [back]}
  e: {address: 10.9.4.2/24, networks: [shared]}
  n: {address: 10.9.5.2/24, networks: []}
`))
	// Another project on the external network: e names its namespace
	// there, and no other of it.
	other := FromSpec(spec(t, `name: other
networks: {shared: {external: true}}
namespaces:
  v: {address: 10.9.6.2/24, networks: [shared]}
  w: {address: 10.9.7.2/24}
`))
	etc := EtcFiles(st, []*state.Record{other}, "", "")
	for ns, want := range map[string][]string{"x": {"x", "y"}, "y": {"x", "y", "z"}, "z": {"y", "z"}, "e": {"e", "v"}, "n": {"n"}} {
		var named []string
		for _, line := range strings.Split(etc[ns].Files["hosts"], "\n") {
			if f := strings.Fields(line); len(f) == 2 && strings.HasPrefix(f[0], "10.9.") {
				named = append(named, f[1])
			}
		}
		if !slices.Equal(named, want) {
			t.Errorf("hosts of %s names %v; want %v", ns, named, want)
		}
	}
}

// TestPreflightIPv6: a spec with ipv6: true is refused, before any change,
// on a host without IPv6, where its iptables flavour lacks ip6tables, and
// where its IPv6 subnet overlaps a host route or another project's.
func TestPreflightIPv6(t *testing.T) {
	want := FromSpec(spec(t, "ipv6: true\nnamespaces:\n  ns1: {address: 10.9.1.2/24, address6: \"fd00:9:1::2/64\"}\n"))
	want.Backend = iptables.NFT
	other := FromSpec(spec(t, "name: other\nipv6: true\nnamespaces:\n  o1: {address: 10.9.2.2/24, address6: \"fd00:9:1::5/64\"}\n"))
	obs := host.Observed{
		Tables:   map[forward.Backend]forward.Tables{iptables.NFT: &iptables.Snapshot{}},
		Prefixes: []veth.HostPrefix{{Prefix: netip.MustParsePrefix("fd00:9::/32"), Link: "eth0", What: "route"}},
	}
	err := Preflight(want, nil, []*state.Record{other}, obs)
	for _, msg := range []string{
		"the spec has ipv6: true, but IPv6 is off on this host",
		"the project's rules go to iptables-nft, but ip6tables-nft is not installed (nsrun does not mix iptables flavours)",
		`namespace "ns1"'s IPv6 subnet fd00:9:1::/64 overlaps the host's route fd00:9::/32 on eth0`,
		`namespace "ns1"'s IPv6 subnet fd00:9:1::/64 overlaps namespace "o1" of project "other"`,
	} {
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("missing %q in:\n%v", msg, err)
		}
	}
	obs = host.Observed{IPv6Forward: "0", Tables: map[forward.Backend]forward.Tables{iptables.NFT: &iptables.Snapshot{V6: &iptables.Snapshot{}}}}
	if err := Preflight(want, nil, nil, obs); err != nil {
		t.Errorf("a host with IPv6 and ip6tables: %v", err)
	}
}

// TestNeighboursRenamed: a project that comes up on an external network
// is named in the hosts files of the other projects' namespaces there,
// and no more once it is down; their other files stay as they were.
func TestNeighboursRenamed(t *testing.T) {
	sys := newFake()
	e := newEngine(t, sys)
	ctx := context.Background()
	names := func(ns string) []string {
		t.Helper()
		var out []string
		for _, line := range strings.Split(sys.etc[ns]["hosts"], "\n") {
			if f := strings.Fields(line); len(f) == 2 && !strings.Contains(f[1], "localhost") {
				out = append(out, f[1])
			}
		}
		return out
	}
	if _, err := e.Up(ctx, spec(t, "name: a\nnetworks: {shared: {external: true}}\nnamespaces:\n  a1: {networks: [shared]}\n  a2: {}\n")); err != nil {
		t.Fatal(err)
	}
	resolv := sys.etc["a1"]["resolv.conf"]
	if _, err := e.Up(ctx, spec(t, "name: b\nnetworks: {shared: {external: true}}\nnamespaces:\n  b1: {networks: [shared]}\n")); err != nil {
		t.Fatal(err)
	}
	if got := names("a1"); !slices.Equal(got, []string{"a1", "b1"}) {
		t.Errorf("a1's hosts after b's up: %v", got)
	}
	if got := names("b1"); !slices.Equal(got, []string{"b1", "a1"}) {
		t.Errorf("b1's hosts: %v", got)
	}
	if got := names("a2"); !slices.Equal(got, []string{"a2"}) {
		t.Errorf("a2's hosts (not on the shared network): %v", got)
	}
	if sys.etc["a1"]["resolv.conf"] != resolv {
		t.Error("a1's resolv.conf changed with b's up")
	}
	if r, err := e.Status(ctx, "a"); err != nil || len(r.Drift) != 0 {
		t.Errorf("a's drift after b's up: %v, %v", r, err)
	}
	if _, err := e.Down(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if got := names("a1"); !slices.Equal(got, []string{"a1"}) {
		t.Errorf("a1's hosts after b's down: %v", got)
	}
	if r, err := e.Status(ctx, "a"); err != nil || len(r.Drift) != 0 {
		t.Errorf("a's drift after b's down: %v", err)
	}
}

// TestPortIndexAsComparingEach: the first published port a port
// conflicts with, looked up by block, is the one comparing it with every
// other project's port in order finds, for single ports, ranges across
// blocks, both protocols and host addresses of both families.
func TestPortIndexAsComparingEach(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	hostIPs := []netip.Addr{netip.IPv4Unspecified(), netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("10.0.0.1"), netip.IPv6Unspecified(), netip.MustParseAddr("::1")}
	random := func() specs.Port {
		first := uint16(1000 + r.IntN(2000))
		length := []int{1, 1, 1, 3, 70, 200}[r.IntN(6)]
		return specs.Port{HostIP: hostIPs[r.IntN(len(hostIPs))], Published: specs.PortRange{First: first, Last: first + uint16(length-1)},
			Protocol: []specs.Protocol{specs.TCP, specs.UDP}[r.IntN(2)]}
	}
	var others []*state.Record
	for i := range 20 {
		o := &state.Record{Project: fmt.Sprintf("p%d", i)}
		for j := range 10 {
			ns := &state.Namespace{Name: fmt.Sprintf("p%dn%d", i, j)}
			for range r.IntN(4) {
				ns.Ports = append(ns.Ports, random())
			}
			o.Namespaces = append(o.Namespaces, ns)
		}
		others = append(others, o)
	}
	x := newPortIndex(others)
	found := 0
	for range 3000 {
		p := random()
		var want publishedPort
		wantOK := false
	each:
		for _, o := range others {
			for _, ns := range o.Namespaces {
				for _, q := range ns.Ports {
					if specs.Conflicts(p, q) {
						want, wantOK = publishedPort{project: o.Project, ns: ns.Name, port: q}, true
						break each
					}
				}
			}
		}
		got, ok := x.first(p)
		if ok != wantOK || got != want {
			t.Fatalf("port %v: index %v %v, comparing each %v %v", p, got, ok, want, wantOK)
		}
		if ok {
			found++
		}
	}
	if found < 300 {
		t.Errorf("only %d of 3000 ports conflicted: the test compares too few", found)
	}
}

// TestForeignPrefixes: of the host's prefixes, those on the project's
// own labelled links and the other projects' namespace subnets are
// nsrun's; a prefix on a link that was not read, or a labelled link's
// prefix no record holds (a leftover), is the host's.
func TestForeignPrefixes(t *testing.T) {
	other := FromSpec(spec(t, "name: other\nnamespaces:\n  o1: {address: 10.9.2.2/30}\n"))
	p := func(s, link string) veth.HostPrefix {
		return veth.HostPrefix{Prefix: netip.MustParsePrefix(s), Link: link, What: "route"}
	}
	obs := host.Observed{
		Links: map[string]veth.Link{"nsr-ns1": {Name: "nsr-ns1", Alias: veth.Label("demo", "ns1")}, "nsr-x": {Name: "nsr-x"}},
		Prefixes: []veth.HostPrefix{
			p("10.9.1.0/30", "nsr-ns1"),   // the project's own
			p("10.9.2.0/30", "nsr-o1"),    // the other project's, its link not read
			p("10.9.3.0/30", "nsr-x"),     // a link of that name, not labelled
			p("10.9.4.0/30", "nsr-gone1"), // a leftover of no record, not read
			p("10.9.2.0/24", "eth0"),      // the host's, around the other's
			p("192.168.1.0/24", "eth0"),   // the host's
		},
	}
	var got []string
	for _, hp := range foreignPrefixes(obs.Prefixes, obs, []*state.Record{other}) {
		got = append(got, hp.Prefix.String()+" "+hp.Link)
	}
	want := []string{"10.9.3.0/30 nsr-x", "10.9.4.0/30 nsr-gone1", "10.9.2.0/24 eth0", "192.168.1.0/24 eth0"}
	if !slices.Equal(got, want) {
		t.Errorf("foreign prefixes %q; want %q", got, want)
	}
}

// TestMeetingKeepsEveryPrefixAChecksCanMeet: of the host's prefixes,
// preflight indexes only those overlapping a namespace of the project,
// either way (a route containing a namespace's link, an address inside
// it, over IPv4 and IPv6); the others cannot meet its checks.
func TestMeetingKeepsEveryPrefixAChecksCanMeet(t *testing.T) {
	want := &state.Record{Namespaces: []*state.Namespace{
		{Name: "a", Address: netip.MustParsePrefix("10.1.0.2/30")},
		{Name: "b", Address: netip.MustParsePrefix("10.2.0.6/30"), Address6: netip.MustParsePrefix("fd00:1::2/64")},
	}}
	var prefixes []veth.HostPrefix
	for _, p := range []string{"10.0.0.0/8", "10.1.0.1/32", "10.1.0.4/30", "10.2.0.4/30", "10.3.0.0/16", "192.168.0.0/24", "fd00:1::/48", "fd00:2::/64", "fd00:1:0:0:1::/80"} {
		prefixes = append(prefixes, veth.HostPrefix{Prefix: netip.MustParsePrefix(p), What: "route", Link: "eth9"})
	}
	var got []string
	for _, hp := range meeting(want, prefixes) {
		got = append(got, hp.Prefix.String())
	}
	if want := []string{"10.0.0.0/8", "10.1.0.1/32", "10.2.0.4/30", "fd00:1::/48", "fd00:1:0:0:1::/80"}; !slices.Equal(got, want) {
		t.Errorf("meeting = %v, want %v", got, want)
	}
}
