package project

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/nsrun/nsrun/cgroup"
	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/forward/iptables"
	"github.com/nsrun/nsrun/forward/nftables"
	"github.com/nsrun/nsrun/host"
	"github.com/nsrun/nsrun/hostfw"
	"github.com/nsrun/nsrun/internal/proc"
	"github.com/nsrun/nsrun/internal/sysctl"
	"github.com/nsrun/nsrun/netns"
	"github.com/nsrun/nsrun/shape"
	"github.com/nsrun/nsrun/specs"
	"github.com/nsrun/nsrun/supervise"
	"github.com/nsrun/nsrun/veth"
)

// fakeSystem is an in-memory host (System, Publisher and Sweeper) that
// enforces what the kernel would (a link needs its namespace;
// iptables-restore's rules, through forward.Snapshot.Restore) and can fail
// its k-th change.
type fakeSystem struct {
	mu         sync.Mutex // steps run in parallel
	ipForward  string
	sysctls    map[string]string // other host sysctls by path: IPv6 forwarding, accept_ra
	namespaces map[string]bool
	links      map[string]veth.Pair
	fw         map[forward.Backend]forward.Firewall
	counting   *nftables.Counting // the counting table, whatever the backend
	etc        map[string]map[string]string
	calls      int
	failAt     int // 1-based index of the change that fails; 0 never
	log        []string
	onFail     func()                    // called when the change fails, e.g. to cancel the context
	probeErr   map[forward.Backend]error // backends whose probe fails
	// firewalld, when it runs: interface -> zone. As the real one, it
	// keeps an interface's zone after the interface is gone.
	firewalld map[string]string
	raLinks   map[string]bool // links with an RA-learned IPv6 default route
	nsIDs     map[string]uint64
	holders   map[string][]netns.Holder // who holds a namespace open, by its name
	made      uint64                    // namespaces made so far
	// cgroups are the namespaces' cgroups, as made; controllers those the
	// fake host offers (all three unless a test takes one away).
	cgroups     map[string]cgroup.Tree
	controllers map[string]bool
	// shaping is each host link's qdiscs, both ends, as made; they go
	// with the link.
	shaping map[string]shape.Link
	// noQdisc are the qdisc kinds the fake kernel lacks, with the error
	// the real one gives.
	noQdisc map[string]error
}

func (f *fakeSystem) BindZone(_ context.Context, links []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.firewalld == nil || len(links) == 0 {
		return nil
	}
	if err := f.change("zone"); err != nil {
		return err
	}
	for _, l := range links {
		f.firewalld[l] = hostfw.Zone
	}
	return nil
}

func (f *fakeSystem) UnbindZone(_ context.Context, links []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.firewalld == nil || len(links) == 0 {
		return nil
	}
	if err := f.change("unzone"); err != nil {
		return err
	}
	for _, l := range links {
		if f.firewalld[l] == hostfw.Zone {
			delete(f.firewalld, l)
		}
	}
	return nil
}

func (f *fakeSystem) ZonedLinks(context.Context) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.firewalldState().Zoned(), nil
}

// firewalldState is the fake firewalld as its D-Bus API shows it.
func (f *fakeSystem) firewalldState() hostfw.Firewalld {
	if f.firewalld == nil {
		return hostfw.Firewalld{}
	}
	return hostfw.Firewalld{Running: true, Version: "1.3.3", Backend: "nftables", DefaultZone: "public", Interfaces: maps.Clone(f.firewalld)}
}

// cleanTables is what a backend holds on a host no one has configured.
const cleanTables = "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n" +
	"*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"

func newFake() *fakeSystem {
	f := &fakeSystem{ipForward: "0", sysctls: map[string]string{sysctl.IPv6Forward: "0"}, namespaces: map[string]bool{}, nsIDs: map[string]uint64{}, links: map[string]veth.Pair{},
		fw: map[forward.Backend]forward.Firewall{nftables.Backend: nftables.NewFake()}, counting: nftables.NewCountingFake(), etc: map[string]map[string]string{},
		shaping: map[string]shape.Link{}, cgroups: map[string]cgroup.Tree{}, controllers: map[string]bool{"memory": true, "cpu": true, "cpuacct": true, "pids": true}}
	for _, b := range iptables.Backends {
		f.fw[b], _ = iptables.NewFake(b, cleanTables)
	}
	return f
}

// fingerprint is the fake host's state, for comparing before and after.
func (f *fakeSystem) fingerprint() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fmt.Sprint(f.ipForward, f.sysctls, slices.Sorted(maps.Keys(f.namespaces)), slices.Sorted(maps.Keys(f.links)),
		slices.Sorted(maps.Keys(f.etc)), slices.Sorted(maps.Keys(f.cgroups)), f.shaping, f.tables(iptables.NFT), f.tables(iptables.Legacy), f.tables(nftables.Backend), f.firewalld,
		f.tables6(iptables.NFT), f.tables6(iptables.Legacy), f.countingDump())
}

// countingDump is what the counting table holds.
func (f *fakeSystem) countingDump() string {
	t, err := f.counting.Traffic(context.Background(), nil)
	if err != nil {
		return err.Error()
	}
	return fmt.Sprint(t)
}

// tables is what a backend holds, as iptables-save prints it.
func (f *fakeSystem) tables(b forward.Backend) string {
	if f.fw[b] == nil {
		return ""
	}
	t, err := f.fw[b].Read(context.Background())
	if err != nil {
		return err.Error()
	}
	return fmt.Sprint(t)
}

// tables6 is what a backend's ip6tables holds.
func (f *fakeSystem) tables6(b forward.Backend) string {
	if f.fw[b] == nil {
		return ""
	}
	t, err := f.fw[b].Read(context.Background())
	if err != nil {
		return err.Error()
	}
	if snap, ok := t.(*iptables.Snapshot); ok && snap.V6 != nil {
		return snap.V6.String()
	}
	return ""
}

// projects lists the projects whose rules any backend holds.
func (f *fakeSystem) projects() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, fw := range f.fw {
		t, _ := fw.Read(context.Background())
		for _, p := range t.(interface{ Projects() []string }).Projects() {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}

func (f *fakeSystem) change(what string) error {
	f.calls++
	f.log = append(f.log, what)
	if f.calls == f.failAt {
		if f.onFail != nil {
			f.onFail()
		}
		return fmt.Errorf("injected failure at change %d (%s)", f.calls, what)
	}
	return nil
}

func (f *fakeSystem) IPForward() (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ipForward, nil
}
func (f *fakeSystem) SetIPForward(v string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.change("sysctl " + v); err != nil {
		return err
	}
	f.ipForward = v
	return nil
}
func (f *fakeSystem) Sysctl(path string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.sysctls[path]
	if !ok {
		return "", fmt.Errorf("reading sysctl %s: no such file", path)
	}
	return v, nil
}
func (f *fakeSystem) SetSysctl(path, v string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.sysctls[path]; !ok {
		return fmt.Errorf("setting sysctl %s: no such file", path)
	}
	if err := f.change("sysctl " + path + "=" + v); err != nil {
		return err
	}
	f.sysctls[path] = v
	return nil
}
func (f *fakeSystem) CreateNamespace(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.namespaces[name] {
		return fmt.Errorf("netns %q exists", name)
	}
	if err := f.change("netns add " + name); err != nil {
		return err
	}
	f.namespaces[name] = true
	f.made++
	f.nsIDs[name] = f.made // a namespace made again is another one
	return nil
}

// NamespaceCookie is the fake namespace's cookie, new at each creation.
func (f *fakeSystem) NamespaceCookie(name string) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.namespaces[name] {
		return 0, fmt.Errorf("netns %q does not exist", name)
	}
	return f.nsIDs[name], nil
}

// NamespaceHolders lists the holders set for the namespaces that exist.
func (f *fakeSystem) NamespaceHolders(names []string) map[string][]netns.Holder {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string][]netns.Holder{}
	for _, name := range names {
		if f.namespaces[name] && len(f.holders[name]) > 0 {
			out[name] = f.holders[name]
		}
	}
	return out
}

func (f *fakeSystem) DeleteNamespace(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.change("netns del " + name); err != nil {
		return err
	}
	delete(f.namespaces, name)
	return nil
}
func (f *fakeSystem) KillNamespaces(names []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.change(fmt.Sprint("kill ", names))
}
func (f *fakeSystem) EnsureLink(p veth.Pair) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.namespaces[p.Namespace] {
		return fmt.Errorf("netns %q does not exist", p.Namespace)
	}
	if err := f.change("link " + p.Host); err != nil {
		return err
	}
	f.links[p.Host] = p
	return nil
}
func (f *fakeSystem) LinksGone(names []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, name := range names {
		if _, ok := f.links[name]; !ok {
			continue
		}
		if err := f.change("link del " + name); err != nil {
			return err
		}
		delete(f.links, name)
		delete(f.shaping, name)
	}
	return nil
}
func (f *fakeSystem) DeleteLink(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.change("link del " + name); err != nil {
		return err
	}
	delete(f.links, name)
	delete(f.shaping, name)
	return nil
}

// Shape sets a link's qdiscs as the kernel would: both ends must exist.
func (f *fakeSystem) Shape(ns, hostLink string, want shape.Link) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p, ok := f.links[hostLink]; !ok || p.Namespace != ns || !f.namespaces[ns] {
		return fmt.Errorf("shaping the link of namespace %q: link %q or its peer is missing", ns, hostLink)
	}
	if err := f.change("shape " + ns); err != nil {
		return err
	}
	f.shaping[hostLink] = want
	return nil
}

func (f *fakeSystem) Apply(ctx context.Context, at forward.Placement, p forward.Project) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if ctx.Err() != nil {
		return ctx.Err() // as iptables-restore run with a cancelled context
	}
	if err := f.change("forwards " + p.Name); err != nil {
		return err
	}
	count, err := f.counting.Prepare(ctx, p) // every table read first, as forward.Publisher does
	if err != nil {
		return err
	}
	var writes []func(context.Context) error
	placed := append([]forward.Backend{at.Backend}, at.Accepts...)
	for i, b := range placed {
		write, err := f.fw[b].PrepareEnsure(ctx, p, i > 0)
		if err != nil {
			return err
		}
		writes = append(writes, write)
	}
	for b, fw := range f.fw {
		if !slices.Contains(placed, b) {
			write, err := fw.PrepareRemove(ctx, p.Name)
			if err != nil {
				return err
			}
			writes = append(writes, write)
		}
	}
	for _, write := range append(writes, count) {
		if write != nil {
			if err := write(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// Ready: knftables' fake tables need nothing made before a write.
func (f *fakeSystem) Ready(context.Context, forward.Placement) {}

func (f *fakeSystem) Probe(ctx context.Context, b forward.Backend) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fw[b] == nil {
		return fmt.Errorf("no backend %s", b)
	}
	if err := f.probeErr[b]; err != nil {
		return err // as a kernel without what the backend needs
	}
	return f.fw[b].Probe(ctx)
}
func (f *fakeSystem) Remove(ctx context.Context, project string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := f.change("forwards del " + project); err != nil {
		return err
	}
	for _, fw := range f.fw {
		if err := fw.Remove(ctx, project); err != nil {
			return err
		}
	}
	return f.counting.Remove(ctx, project)
}
func (f *fakeSystem) MadeTables(ctx context.Context) (map[forward.Backend][]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[forward.Backend][]string{}
	for b, fw := range f.fw {
		tables, err := fw.MadeTables(ctx)
		if err != nil {
			return nil, err
		}
		out[b] = tables
	}
	return out, nil
}

func (f *fakeSystem) RemoveEmptyTables(ctx context.Context, tables map[forward.Backend][]string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for b, names := range tables {
		if err := f.fw[b].RemoveEmptyTables(ctx, names); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeSystem) FlushUDP([]specs.PortRange) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.change("conntrack")
}

// EnsureCgroup sets the tree as the kernel would: the controllers the
// limits need must be there; leaves the tree drops go.
func (f *fakeSystem) EnsureCgroup(t cgroup.Tree) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range cgroup.Needed(t.Limits) {
		if !f.controllers[c] {
			return fmt.Errorf("no %s controller", c)
		}
	}
	if err := f.change("cgroup " + t.Namespace); err != nil {
		return err
	}
	f.cgroups[t.Namespace] = cgroup.Tree{Namespace: t.Namespace, Limits: t.Limits, Leaves: maps.Clone(t.Leaves)}
	return nil
}

func (f *fakeSystem) AdoptIntoCgroup(ns string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.cgroups[ns]; !ok {
		return fmt.Errorf("no cgroup for %s", ns)
	}
	return f.change("adopt " + ns)
}

func (f *fakeSystem) RemoveCgroups(names []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ns := range names {
		if _, ok := f.cgroups[ns]; !ok {
			continue
		}
		if err := f.change("cgroup del " + ns); err != nil {
			return err
		}
		delete(f.cgroups, ns)
	}
	return nil
}

func (f *fakeSystem) CgroupNamespaces() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(maps.Keys(f.cgroups))
}

func (f *fakeSystem) LabelledLinks() ([]veth.Labelled, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []veth.Labelled
	for name, p := range f.links {
		if project, ns, ok := veth.ParseLabel(p.Alias); ok {
			out = append(out, veth.Labelled{Name: name, Project: project, Namespace: ns})
		}
	}
	return out, nil
}
func (f *fakeSystem) SweepFirewall(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, fw := range f.fw {
		if err := fw.Sweep(context.Background()); err != nil {
			return err
		}
	}
	return f.counting.Sweep(context.Background())
}

// observe shows the fake host as Observe shows the real one.
func (f *fakeSystem) observe(_ context.Context, q host.Query) (host.Observed, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	obs := host.Observed{Namespaces: maps.Clone(f.namespaces), Links: map[string]veth.Link{}, IPForward: f.ipForward,
		Tables: map[forward.Backend]forward.Tables{}, RouteLocalnet: map[string]string{},
		Peers: map[string]veth.Peer{}, Etc: map[string]map[string]host.EtcFile{}}
	obs.Host.Firewalld = f.firewalldState()
	obs.Controllers, obs.Cgroups = maps.Clone(f.controllers), map[string]cgroup.State{}
	for _, ns := range q.Cgroups {
		if t, ok := f.cgroups[ns]; ok {
			obs.Cgroups[ns] = cgroup.State{Complete: true, Limits: t.Limits, Leaves: maps.Clone(t.Leaves)}
		}
	}
	obs.QdiscKinds = map[string]error{}
	for _, k := range q.QdiscKinds {
		obs.QdiscKinds[k] = f.noQdisc[k]
	}
	obs.Shaping = map[string]shape.Link{}
	for _, s := range q.Shaped {
		if p, ok := f.links[s.Link]; ok && p.Namespace == s.Namespace && f.namespaces[s.Namespace] {
			obs.Shaping[s.Namespace] = f.shaping[s.Link]
		}
	}
	obs.NetnsCookies = map[string]uint64{}
	for _, name := range q.Cookies {
		if f.namespaces[name] {
			obs.NetnsCookies[name] = f.nsIDs[name]
		}
	}
	obs.IPv6Forward = f.sysctls[sysctl.IPv6Forward]
	obs.AcceptRA = map[string]string{}
	for path, v := range f.sysctls {
		if l, ok := strings.CutSuffix(strings.TrimPrefix(path, "net/ipv6/conf/"), "/accept_ra"); ok && f.raLinks[l] {
			obs.AcceptRA[l] = v
		}
	}
	for _, b := range append(slices.Clone(iptables.Backends), nftables.Backend) {
		if fw := f.fw[b]; fw != nil {
			obs.Tables[b], _ = fw.Read(context.Background())
			obs.Backends = append(obs.Backends, b)
		}
	}
	obs.Counting, _ = f.counting.Read(context.Background())
	for _, name := range q.Links { // as the real host: only the links asked for
		p, ok := f.links[name]
		if !ok {
			continue
		}
		obs.Links[name] = veth.Link{Name: name, Alias: p.Alias, Type: "veth", Index: index(name), Up: true, Addrs: []netip.Prefix{p.HostAddr}}
		if p.IPv6() {
			l := obs.Links[name]
			l.Addrs6 = []netip.Prefix{p.HostAddr6}
			obs.Links[name] = l
		}
		obs.RouteLocalnet[name] = "1"
	}
	for _, ns := range q.Namespaces {
		if !f.namespaces[ns] {
			continue
		}
		for name, p := range f.links {
			if p.Namespace == ns {
				obs.Peers[ns] = veth.Peer{Exists: true, ParentIndex: index(name), Up: true, Addrs: []netip.Prefix{p.PeerAddr},
					Gateways: []netip.Addr{p.HostAddr.Addr()}}
				if p.IPv6() {
					peer := obs.Peers[ns]
					peer.Addrs6, peer.Gateways6 = []netip.Prefix{p.PeerAddr6}, []netip.Addr{p.HostAddr6.Addr()}
					obs.Peers[ns] = peer
				}
			}
		}
		obs.Etc[ns] = map[string]host.EtcFile{}
		for name, content := range f.etc[ns] {
			obs.Etc[ns][name] = host.EtcFileOf(content)
		}
	}
	return obs, nil
}

func index(link string) int { return int(crc32.ChecksumIEEE([]byte(link)) & 0xffffff) }

func (f *fakeSystem) WriteEtc(ns string, files map[string]string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.change("etc " + ns); err != nil {
		return err
	}
	if f.etc[ns] == nil { // as writeEtc: the files given, the others left as they are
		f.etc[ns] = map[string]string{}
	}
	maps.Copy(f.etc[ns], files)
	return nil
}
func (f *fakeSystem) RemoveEtc(ns string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.change("etc del " + ns); err != nil {
		return err
	}
	delete(f.etc, ns)
	return nil
}

// fakeKeeper records whether the keeper would run.
type fakeKeeper struct{ running bool }

func (k *fakeKeeper) Start(context.Context, string) error { k.running = true; return nil }
func (k *fakeKeeper) Stop(string) error                   { k.running = false; return nil }
func (k *fakeKeeper) Hold(context.Context, string) error {
	if !k.running {
		return errors.New("no keeper runs")
	}
	return nil
}
func (k *fakeKeeper) Running(string) (proc.Process, bool) {
	return proc.Process{}, k.running
}

// fakeSupervision records the plans it is given and reports their
// processes as running (as this test process).
type fakeSupervision struct {
	plans []supervise.Plan
	// dial, when set, answers the ready checks' dials: nil once the port
	// of the namespace accepts.
	dial func(ns string, port uint16) error
}

func (f *fakeSupervision) Apply(_ context.Context, _ string, p supervise.Plan) error {
	f.plans = append(f.plans, p)
	return nil
}
func (f *fakeSupervision) Stop(string) error    { return nil }
func (f *fakeSupervision) StopAll(string) error { return nil }
func (f *fakeSupervision) Dial(ns string, _ []netip.Addr, port uint16) error {
	if f.dial != nil {
		return f.dial(ns, port)
	}
	return nil
}
func (f *fakeSupervision) Status(string) (supervise.Status, error) {
	if len(f.plans) == 0 {
		return supervise.Status{}, os.ErrNotExist
	}
	plan := f.plans[len(f.plans)-1]
	pid := os.Getpid()
	start, _ := proc.StartTime(pid)
	st := supervise.Status{PID: pid, StartTime: start, Generation: plan.Generation}
	for _, p := range plan.Processes {
		st.Processes = append(st.Processes, supervise.ProcessStatus{Namespace: p.Namespace, Name: p.Name, Hash: p.Hash(),
			State: supervise.Running, PID: pid, StartTime: start})
	}
	return st, nil
}
