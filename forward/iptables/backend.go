package iptables

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	goiptables "github.com/coreos/go-iptables/iptables"
	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/internal/nftcache"
	"github.com/nsrun/nsrun/internal/xtables"
)

// The two iptables backends: the nf_tables one and the legacy x_tables
// one. Both can be active at once, and a packet must pass both.
const (
	NFT    forward.Backend = "iptables-nft"
	Legacy forward.Backend = "iptables-legacy"
)

// Backends are the iptables backends, in nsrun's order of preference.
var Backends = []forward.Backend{NFT, Legacy}

// Firewall is one iptables backend (forward.Firewall): its rules read with
// BACKEND-save and applied with BACKEND-restore --noflush, one batch each.
type Firewall struct {
	backend forward.Backend
	run     runner
	run6    runner          // the same backend's ip6tables
	cache   *nftcache.Cache // keeps the reads and what Drift computes; nil: none
}

// runner reads and writes a backend's tables: the exec'd programs, or a
// fake in memory.
type runner interface {
	installed() bool
	probe(ctx context.Context) error
	// save returns what BACKEND-save prints, and the version it is of
	// (see nftcache; "" when not known).
	save(ctx context.Context) (text, at string, err error)
	// version is the version save would read its output at now, without
	// reading it; "" when it is not known.
	version() string
	restore(ctx context.Context, script string) error
	// counted returns what BACKEND-save -c -t nat prints now.
	counted(ctx context.Context) (string, error)
	// deleteTable removes a table of iptables-nft, whatever it holds.
	deleteTable(ctx context.Context, table string) error
}

// New returns the backend, run by its programs; restore waits up to wait
// for the xtables lock (30 s when 0).
func New(b forward.Backend, wait time.Duration) *Firewall { return NewCached(b, wait, nil) }

// NewCached is New, with its reads kept in the cache while what they read
// stays the same: the nftables generation for iptables-nft, the digest of
// the x_tables rules for iptables-legacy (see package nftcache).
func NewCached(b forward.Backend, wait time.Duration, cache *nftcache.Cache) *Firewall {
	return &Firewall{backend: b, run: programs{backend: b, family: IPv4, wait: wait, cache: cache},
		run6: programs{backend: b, family: IPv6, wait: wait, cache: cache}, cache: cache}
}

// NewFake returns the backend held in memory, with the semantics of
// iptables-restore (see Snapshot.Restore), starting from tables as
// iptables-save prints them; its ip6tables starts with their built-in
// chains and policies.
func NewFake(b forward.Backend, tables string) (*Firewall, error) {
	snap, err := ParseSave(tables)
	if err != nil {
		return nil, err
	}
	return &Firewall{backend: b, run: &memory{snap: snap}, run6: &memory{snap: builtins(snap)}}, nil
}

// builtins is a snapshot's tables with their built-in chains and
// policies only: the fake's ip6tables on a host whose iptables is s.
func builtins(s *Snapshot) *Snapshot {
	out := &Snapshot{Tables: map[string]map[string]*Chain{}}
	for table, chains := range s.Tables {
		out.Tables[table] = map[string]*Chain{}
		for name, c := range chains {
			if c.Policy != "-" {
				out.Tables[table][name] = &Chain{Policy: c.Policy}
			}
		}
	}
	return out
}

func (f *Firewall) Backend() forward.Backend { return f.backend }
func (f *Firewall) Installed() bool          { return f.run.installed() }

// Read takes a look at what BACKEND-save prints (see lazyTables); the
// look is a Tables.
func (f *Firewall) Read(ctx context.Context) (forward.Tables, error) { return f.lazy(ctx) }

// Tables is what a look at an iptables backend tells beyond
// forward.Tables, for the host report: other programs' chains, a built-in
// chain's policy, and what drops before nsrun's accepts.
type Tables interface {
	forward.Tables
	HasChain(table, chain string) bool
	Policy(table, chain string) string
	DropsBeforeNsrun() string
}

var (
	_ Tables = (*Snapshot)(nil)
	_ Tables = (*lazyTables)(nil)
)

// snapshot reads both programs' tables: ip6tables' as V6, when installed.
func (f *Firewall) snapshot(ctx context.Context) (*Snapshot, error) {
	snap, err := f.read(ctx, f.run)
	if err != nil || !f.run6.installed() {
		return snap, err
	}
	if snap.V6, err = f.read(ctx, f.run6); err != nil {
		return nil, err
	}
	return snap, nil
}

func (f *Firewall) read(ctx context.Context, r runner) (*Snapshot, error) {
	out, at, err := r.save(ctx)
	if err != nil {
		return nil, err
	}
	snap, err := ParseSave(out)
	if err != nil {
		return nil, err
	}
	snap.at, snap.memo, snap.backend = at, f.cache, f.backend
	return snap, nil
}

// apply reads the backend and applies the scripts rendered from it (see
// prepare).
func (f *Firewall) apply(ctx context.Context, script func(Family, *Snapshot) string) error {
	write, err := f.prepare(ctx, script)
	if err != nil || write == nil {
		return err
	}
	return write(ctx)
}

// prepare reads the backend now, renders the scripts from what it read,
// and returns their write, one restore batch per family (IPv4 first),
// run when called; nil when neither script holds anything.
func (f *Firewall) prepare(ctx context.Context, script func(Family, *Snapshot) string) (func(context.Context) error, error) {
	snap, err := f.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	v4, v6 := script(IPv4, snap), ""
	if snap.V6 != nil {
		v6 = script(IPv6, snap.V6)
	}
	if v4 == "" && v6 == "" {
		return nil, nil
	}
	return func(ctx context.Context) error {
		if v4 != "" {
			if err := f.run.restore(ctx, v4); err != nil {
				return err
			}
		}
		if v6 != "" {
			return f.run6.restore(ctx, v6)
		}
		return nil
	}, nil
}

// Ensure puts the project's rules in place; those of a project with IPv6
// in ip6tables of the same flavour too (never the other flavour's: a
// packet meets both, and nsrun keeps each project in one).
func (f *Firewall) Ensure(ctx context.Context, p forward.Project, acceptsOnly bool) error {
	write, err := f.PrepareEnsure(ctx, p, acceptsOnly)
	if err != nil || write == nil {
		return err
	}
	return write(ctx)
}

// PrepareEnsure reads the backend now and returns Ensure's write.
func (f *Firewall) PrepareEnsure(ctx context.Context, p forward.Project, acceptsOnly bool) (func(context.Context) error, error) {
	if HasIPv6(p) && !f.run6.installed() {
		return nil, fmt.Errorf("%s is not installed, and the project publishes on IPv6; install it (apt-get install iptables) or use --firewall nftables", IPv6.program(f.backend))
	}
	return f.prepare(ctx, func(fam Family, s *Snapshot) string {
		switch {
		case fam == IPv6 && !HasIPv6(p):
			return DownScriptFor(fam, s, p.Name) // it may have had IPv6 before
		case acceptsOnly:
			return AcceptScriptFor(fam, s, p)
		}
		return UpScriptFor(fam, s, p)
	})
}

func (f *Firewall) Remove(ctx context.Context, project string) error {
	return f.apply(ctx, removeScript(project))
}

// PrepareRemove reads the backend now and returns Remove's write.
func (f *Firewall) PrepareRemove(ctx context.Context, project string) (func(context.Context) error, error) {
	return f.prepare(ctx, removeScript(project))
}

// removeScript renders the removal of a project's rules.
func removeScript(project string) func(Family, *Snapshot) string {
	return func(fam Family, s *Snapshot) string { return DownScriptFor(fam, s, project) }
}

func (f *Firewall) Sweep(ctx context.Context) error {
	return f.apply(ctx, func(_ Family, s *Snapshot) string { return SweepScript(s) })
}

// Probe checks that the backend's program runs and is recent enough (that
// BACKEND-save reads its tables, up has seen already).
func (f *Firewall) Probe(ctx context.Context) error { return f.run.probe(ctx) }

// Script is iptables-restore with the project's rules, for a clean host;
// ip6tables-restore too for a project with IPv6.
func (f *Firewall) Script(p forward.Project) string {
	s := "iptables-restore -w 30 --noflush <<'EOF'\n" + UpScript(&Snapshot{}, p) + "EOF\n"
	if HasIPv6(p) {
		s += "ip6tables-restore -w 30 --noflush <<'EOF'\n" + UpScriptFor(IPv6, &Snapshot{}, p) + "EOF\n"
	}
	return s
}

// MadeTables lists iptables-nft's tables ("ip nat", "ip6 filter"):
// iptables-nft-save prints only those that exist, and iptables-nft makes
// a table the first time a rule goes in. iptables-legacy's tables are the
// kernel's own and never go: none.
func (f *Firewall) MadeTables(ctx context.Context) ([]string, error) {
	if f.backend != NFT {
		return nil, nil
	}
	snap, err := f.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, fam := range []struct {
		name string
		snap *Snapshot
	}{{"ip", snap}, {"ip6", snap.V6}} {
		if fam.snap != nil {
			for _, t := range slices.Sorted(maps.Keys(fam.snap.Tables)) {
				out = append(out, fam.name+" "+t)
			}
		}
	}
	return out, nil
}

// RemoveEmptyTables removes those of iptables-nft's tables that hold
// nothing (see Snapshot.Empty), with nft: iptables itself cannot. Without
// the nft program they stay; they change nothing as they are.
func (f *Firewall) RemoveEmptyTables(ctx context.Context, tables []string) error {
	if f.backend != NFT || len(tables) == 0 {
		return nil
	}
	snap, err := f.snapshot(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range tables {
		fam, table, _ := strings.Cut(name, " ")
		s, run := snap, f.run
		if fam == "ip6" {
			s, run = snap.V6, f.run6
		}
		if s != nil && s.Empty(table) {
			errs = append(errs, run.deleteTable(ctx, table))
		}
	}
	return errors.Join(errs...)
}

// programs run BACKEND-save and BACKEND-restore of one family
// (iptables-nft-save, ip6tables-nft-save, ...).
type programs struct {
	backend forward.Backend
	family  Family
	wait    time.Duration
	cache   *nftcache.Cache // the reads; nil: none
}

func (p programs) name() string { return p.family.program(p.backend) }

func (p programs) installed() bool {
	_, err1 := exec.LookPath(p.name() + "-save")
	_, err2 := exec.LookPath(p.name() + "-restore")
	return err1 == nil && err2 == nil
}

// minVersion is the oldest iptables whose restore waits for the xtables
// lock (-w), which nsrun's batches need.
var minVersion = [3]int{1, 6, 2}

// Handle returns go-iptables' handle on a backend's program, for its
// version and for single rules and checks, waiting up to 30 s for the
// xtables lock. nsrun's own rules never go rule by rule: each change is one
// restore batch.
func Handle(b forward.Backend) (*goiptables.IPTables, error) {
	ipt, err := goiptables.New(goiptables.Path(string(b)), goiptables.Timeout(30))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b, err)
	}
	return ipt, nil
}

// probe asks the backend's program its version, through go-iptables.
func (p programs) probe(context.Context) error {
	ipt, err := Handle(p.backend)
	if err != nil {
		return err
	}
	v1, v2, v3 := ipt.GetIptablesVersion()
	return checkVersion(p.backend, [3]int{v1, v2, v3})
}

func checkVersion(b forward.Backend, v [3]int) error {
	if slices.Compare(v[:], minVersion[:]) < 0 {
		return fmt.Errorf("%s is version %d.%d.%d; nsrun needs %d.%d.%d or later (iptables-restore -w); upgrade iptables or use --firewall nftables",
			b, v[0], v[1], v[2], minVersion[0], minVersion[1], minVersion[2])
	}
	return nil
}

// save runs BACKEND-save; it does not load any module. iptables-nft's
// output is kept while the nftables generation stays the same,
// iptables-legacy's while the digest of its rules does; that of
// iptables-legacy without a table is empty, and not asked for.
func (p programs) save(ctx context.Context) (string, string, error) {
	name := p.name() + "-save"
	version, ok := p.versionOf()
	if !ok {
		return "", "", nil
	}
	r, err := p.cache.RunAt(ctx, version, name)
	if err == nil {
		err = r.Err(name)
	}
	if err != nil {
		return "", "", err
	}
	return r.Stdout, r.At, nil
}

// versionOf is what the output of BACKEND-save is kept under: the
// nftables generation for iptables-nft, the digest of the x_tables rules
// for iptables-legacy; false for iptables-legacy without a table, which
// save does not run.
func (p programs) versionOf() (nftcache.Version, bool) {
	if p.backend == NFT {
		return nftcache.NFTGeneration, true
	}
	if !p.legacyTables() {
		return nil, false
	}
	return func() (string, error) { return xtables.Digest(p.family == IPv6) }, true
}

func (p programs) version() string {
	version, ok := p.versionOf()
	if !ok || p.cache == nil || p.cache.Dir == "" {
		return ""
	}
	v, err := version()
	if err != nil {
		return ""
	}
	return v
}

// counted runs BACKEND-save -c -t nat, never from the cache; nothing
// for iptables-legacy without a table.
func (p programs) counted(ctx context.Context) (string, error) {
	if p.backend != NFT && !p.legacyTables() {
		return "", nil
	}
	var errOut bytes.Buffer
	name := p.name() + "-save"
	cmd := exec.CommandContext(ctx, name, "-c", "-t", "nat")
	cmd.Stderr = &errOut
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s -c -t nat: %w: %s", name, err, strings.TrimSpace(errOut.String()))
	}
	return string(out), nil
}

// legacyTables reports whether the kernel has any x_tables table of the
// family (iptables-legacy's; a table stays once made, rules or not).
func (p programs) legacyTables() bool {
	names := "/proc/net/ip_tables_names"
	if p.family == IPv6 {
		names = "/proc/net/ip6_tables_names"
	}
	data, err := os.ReadFile(names)
	return err != nil || len(bytes.TrimSpace(data)) > 0 // unreadable: ask the program
}

// restore runs BACKEND-restore --noflush with the script, waiting a
// bounded time for the xtables lock.
func (p programs) restore(ctx context.Context, script string) error {
	wait := p.wait
	if wait <= 0 {
		wait = 30 * time.Second
	}
	var errOut bytes.Buffer
	name := p.name() + "-restore"
	cmd := exec.CommandContext(ctx, name, "--noflush", "-w", fmt.Sprint(int(wait.Seconds())))
	cmd.Stdin, cmd.Stderr = strings.NewReader(script), &errOut
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s\ninput was:\n%s", name, err, strings.TrimSpace(errOut.String()), script)
	}
	return nil
}

// deleteTable deletes iptables-nft's table of the family with nft.
func (p programs) deleteTable(ctx context.Context, table string) error {
	if _, err := exec.LookPath("nft"); err != nil {
		return nil
	}
	fam := "ip"
	if p.family == IPv6 {
		fam = "ip6"
	}
	out, err := exec.CommandContext(ctx, "nft", "delete", "table", fam, table).CombinedOutput()
	if err != nil {
		return fmt.Errorf("nft delete table %s %s: %w: %s", fam, table, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// memory is a backend's tables held in memory.
type memory struct {
	mu   sync.Mutex
	snap *Snapshot
}

func (m *memory) installed() bool { return true }

func (m *memory) probe(context.Context) error { return nil }

func (m *memory) version() string { return "" }

func (m *memory) save(ctx context.Context) (string, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.snap.String(), "", ctx.Err()
}

// counted of the fake: it keeps no counters, so every rule has counted
// nothing.
func (m *memory) counted(ctx context.Context) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var b strings.Builder
	for _, c := range m.snap.Tables["nat"] {
		for _, r := range c.Rules {
			b.WriteString("[0:0] " + r + "\n")
		}
	}
	return b.String(), ctx.Err()
}

func (m *memory) restore(ctx context.Context, script string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err // as iptables-restore run with a cancelled context
	}
	next, err := m.snap.Restore(script)
	if err != nil {
		return fmt.Errorf("iptables-restore: %w", err)
	}
	m.snap = next
	return nil
}

func (m *memory) deleteTable(ctx context.Context, table string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	next := m.snap.clone()
	delete(next.Tables, table)
	m.snap = next
	return nil
}
