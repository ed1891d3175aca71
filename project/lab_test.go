package project

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/forward/iptables"
	"github.com/nsrun/nsrun/forward/nftables"
	"github.com/nsrun/nsrun/forward/shortcut"
	"github.com/nsrun/nsrun/host"
	"github.com/nsrun/nsrun/internal/sysctl"
	"github.com/nsrun/nsrun/keeper"
	"github.com/nsrun/nsrun/netns"
	"github.com/nsrun/nsrun/netns/nstest"
	"github.com/nsrun/nsrun/specs"
	"github.com/nsrun/nsrun/state"
	"github.com/nsrun/nsrun/supervise"
	"github.com/nsrun/nsrun/veth"
)

// lab is a real host setup for one test: an engine on the real kernel
// with its own state directory, and an "outside" namespace joined to the
// host by its own veth, standing for another machine.
type lab struct {
	t        *testing.T
	e        *Engine
	id       string
	outside  string
	outLink  string
	outHost  netip.Addr // the host's address on the outside link: "a host address"
	outPeer  netip.Addr // the outside machine's address
	outHost6 netip.Addr // the IPv6 twins
	outPeer6 netip.Addr
	projects []string
	firewall forward.Choice // the backend the lab's projects get
	// heal: the lab's projects are kept by the keeper. Off unless a test
	// turns it on: the others make drift on purpose and look at it.
	heal bool
}

// newLab makes a lab whose projects get the backend nsrun's default
// (auto) picks on this host.
func newLab(t *testing.T) *lab { return newLabWith(t, forward.Auto) }

// eachFirewall runs a test once per firewall: iptables, as auto picks it
// on this host, and nftables.
func eachFirewall(t *testing.T, test func(t *testing.T, l *lab)) {
	for _, c := range []forward.Choice{forward.IPTables, forward.NFTables} {
		t.Run(string(c), func(t *testing.T) { test(t, newLabWith(t, c)) })
	}
}

func newLabWith(t *testing.T, firewall forward.Choice) *lab {
	t.Helper()
	nstest.RequireRoot(t)
	nstest.DumpOnFailure(t)
	b := make([]byte, 3)
	rand.Read(b)
	l := &lab{t: t, id: hex.EncodeToString(b), firewall: firewall}
	l.e = l.engine()
	// Registered after the state directory's own cleanup (l.engine made
	// it), so it runs before that directory goes. A failed down is a
	// failure of the test, and is tried again, as a user would, so that
	// the host is put back all the same.
	t.Cleanup(func() {
		for _, p := range l.projects {
			_, err := l.engine().Down(context.Background(), p)
			for try := 0; err != nil && try < 3; try++ {
				t.Errorf("cleanup: down %s: %v", p, err)
				_, err = l.engine().Down(context.Background(), p)
			}
		}
	})
	l.makeOutside()
	return l
}

// engine returns an engine on the real kernel, with its own state directory.
func (l *lab) engine() *Engine {
	l.t.Helper()
	k := kernel(2 * time.Second)
	dir := filepath.Join(l.tempDir(), "nsrun")
	return &Engine{Store: state.Store{Dir: dir}, System: k, Publisher: k.Publisher, Sweeper: k, Observe: k.Observe, FirewallChoice: l.firewall,
		Supervision: supervise.Daemon{Self: nstest.Binary(l.t), Grace: 2 * time.Second},
		Keeper:      keeper.Daemon{Self: nstest.Binary(l.t)}, NoHeal: !l.heal}
}

// backend is the backend a new project of the lab gets on the host now
// (tests change FORWARD policies).
func (l *lab) backend() forward.Backend {
	l.t.Helper()
	obs, err := kernel(0).Observe(context.Background(), host.Query{FirewallOnly: true})
	if err != nil {
		l.t.Fatal(err)
	}
	at, err := forward.Place("", l.firewall, obs.Backends, obs.Tables)
	if err != nil {
		l.t.Fatal(err)
	}
	return at.Backend
}

func (l *lab) tempDir() string {
	if l.e != nil {
		return filepath.Dir(l.e.Store.Dir)
	}
	return l.t.TempDir()
}

func (l *lab) makeOutside() {
	n, _ := rand.Int(rand.Reader, big.NewInt(250))
	third := byte(n.Int64() + 1)
	l.outside, l.outLink = "out"+l.id, "o"+l.id
	l.outHost = netip.AddrFrom4([4]byte{10, 252, third, 1})
	l.outPeer = netip.AddrFrom4([4]byte{10, 252, third, 2})
	l.outHost6 = netip.AddrFrom16([16]byte{0xfd, 0, 2, 0x52, 0, third, 15: 1})
	l.outPeer6 = netip.AddrFrom16([16]byte{0xfd, 0, 2, 0x52, 0, third, 15: 2})
	if err := netns.Create(l.outside); err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() {
		netns.KillAll(l.outside, time.Second)
		veth.Delete(l.outLink)
		netns.Delete(l.outside)
	})
	p := veth.Pair{Host: l.outLink, Namespace: l.outside, Peer: "eth0",
		HostAddr: netip.PrefixFrom(l.outHost, 30), PeerAddr: netip.PrefixFrom(l.outPeer, 30),
		HostAddr6: netip.PrefixFrom(l.outHost6, 64), PeerAddr6: netip.PrefixFrom(l.outPeer6, 64)}
	if err := veth.Ensure(p); err != nil {
		l.t.Fatal(err)
	}
	// An ordinary link, not one of nsrun's: no route_localnet.
	if err := sysctl.SetLink(l.outLink, "route_localnet", "0"); err != nil {
		l.t.Fatal(err)
	}
}

// ns names a namespace of this lab.
func (l *lab) ns(prefix string) string { return prefix + l.id }

// up brings up a spec whose text uses {ID} for the lab's id.
func (l *lab) up(src string) *state.Record {
	l.t.Helper()
	st, err := l.tryUp(src)
	if err != nil {
		l.t.Fatal(err)
	}
	return st
}

func (l *lab) tryUp(src string) (*state.Record, error) {
	l.t.Helper()
	out, err := l.e.Up(context.Background(), l.parse(src))
	if err != nil {
		return nil, err
	}
	if b := out.State.Backend; (l.firewall == forward.NFTables) != (b == nftables.Backend) {
		l.t.Errorf("up with --firewall %s put the rules in %s", l.firewall, b)
	}
	return out.State, nil
}

// parse reads a spec whose text uses {ID} for the lab's id; down removes
// its project at cleanup.
func (l *lab) parse(src string) *specs.Spec {
	l.t.Helper()
	src = strings.ReplaceAll(src, "{ID}", l.id)
	s, err := specs.Parse(filepath.Join(l.tempDir(), "t"+l.id+".yaml"), []byte(src))
	if err != nil {
		l.t.Fatal(err)
	}
	l.remember(s.Name)
	return s
}

func (l *lab) remember(project string) {
	for _, p := range l.projects {
		if p == project {
			return
		}
	}
	l.projects = append(l.projects, project)
}

// expect checks that a dial answers from the named namespace.
func (l *lab) expect(reply string, err error, from, what string) {
	l.t.Helper()
	if err != nil || !strings.HasPrefix(reply, from+" ") {
		l.t.Errorf("%s: got %q, %v; want an answer from %s", what, reply, err, from)
	}
}

// refuse checks that a dial got no answer.
func (l *lab) refuse(reply string, err error, what string) {
	l.t.Helper()
	if err == nil {
		l.t.Errorf("%s: answered %q; want no answer", what, reply)
	}
}

// freePorts returns n host ports that nothing is bound to.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	listeners, err := forward.Listeners(nil)
	if err != nil {
		t.Fatal(err)
	}
	used := map[uint16]bool{}
	for _, l := range listeners {
		used[l.Port] = true
	}
	// Below the kernel's ephemeral range: a connection's local port is
	// never one of these, so no host connection takes one between the pick
	// and the keeper's hold (it did, twice in one run, at 36306 and 37156).
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		fmt.Sscan(string(b), &low)
	}
	if low < 12000 {
		t.Fatalf("the ephemeral port range starts at %d: no room below it for the tests' ports", low)
	}
	var out []int
	for len(out) < n {
		r, _ := rand.Int(rand.Reader, big.NewInt(int64(low-200-10000)))
		p := 10000 + int(r.Int64())
		if !used[uint16(p)] {
			used[uint16(p)] = true
			out = append(out, p)
		}
	}
	return out
}

func hostDial(proto, addr, src string) (string, error) { return nstest.Dial(proto, addr, src) }

func addr(a netip.Addr, port int) string { return net.JoinHostPort(a.String(), fmt.Sprint(port)) }

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
}

func specsParse(src string) (*specs.Spec, error) { return specs.Parse("plan.yaml", []byte(src)) }

// kernel is the real host, with both iptables backends and nftables.
func kernel(grace time.Duration) host.Kernel {
	var fws []forward.Firewall
	for _, b := range iptables.Backends {
		fws = append(fws, iptables.New(b, 30*time.Second))
	}
	return host.Kernel{Publisher: forward.Publisher{Firewalls: append(fws, nftables.New()), Shortcut: shortcut.Loopback{}, Counting: nftables.NewCounting(nil)}, Grace: grace}
}
