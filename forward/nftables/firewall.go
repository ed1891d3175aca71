package nftables

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"sync"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/internal/nftcache"
	"github.com/nsrun/nsrun/specs"
	"sigs.k8s.io/knftables"
)

// Firewall is the nftables backend (forward.Firewall): nsrun's table read
// with one nft -j list, and changed by one nft -f transaction.
type Firewall struct {
	run runner
}

// runner reads and changes nsrun's table: the nft program, or a fake.
type runner interface {
	installed() bool
	read(ctx context.Context) (*Snapshot, error)
	// readLater is read, what is read had on first need (Snapshot.parse).
	readLater(ctx context.Context) (*Snapshot, error)
	// nft returns the knftables handle that runs transactions on nsrun's
	// table; probe, one on a table of its own for Probe.
	nft(ctx context.Context) (knftables.Interface, error)
	probe(ctx context.Context) (knftables.Interface, error)
	// counters reads the table's named counters, by name: those of names,
	// every one when names is nil.
	counters(ctx context.Context, names []string) (map[string]forward.Flow, error)
}

// probeTable is the table Probe makes and deletes in one transaction.
const probeTable = "nsrun-probe"

// probeProject has every kind of element and chain nsrun writes: a port,
// one bound to an address, a range to another range, and a namespace
// with egress and one without, on a network, on two, and on none
// (addresses of TEST-NET-1, never routed).
var probeProject = forward.Project{Name: "probe", Namespaces: []forward.Namespace{
	{Name: "a", Link: "nsr-probe-a", Address: netip.MustParsePrefix("192.0.2.2/30"), Egress: true, Networks: []string{"probe/a", "probe/b"},
		Ports: []specs.Port{specs.MustParsePort("1:1"), specs.MustParsePort("127.0.0.1:2:2/udp"), specs.MustParsePort("3-4:5-6")}},
	{Name: "b", Link: "nsr-probe-b", Address: netip.MustParsePrefix("192.0.2.6/30"), Networks: []string{"probe/b"}},
	{Name: "c", Link: "nsr-probe-c", Address: netip.MustParsePrefix("192.0.2.10/30"), Address6: netip.MustParsePrefix("2001:db8::2/64"), Egress: true, Networks: []string{},
		Ports: []specs.Port{specs.MustParsePort("[::]:1:1"), specs.MustParsePort("[::1]:2:2/udp"), specs.MustParsePort("[::]:3-4:5-6")}},
}}

// New returns the backend run by the nft program.
func New() *Firewall { return NewCached(nil) }

// NewCached is New, with the reads of nsrun's table kept in the cache
// while the nftables generation stays the same (see package nftcache).
func NewCached(cache *nftcache.Cache) *Firewall { return &Firewall{run: &program{cache: cache}} }

// NewFake returns the backend held in knftables' fake, with its semantics
// (objects must exist to be used or deleted, references must resolve).
func NewFake() *Firewall { return &Firewall{run: fake{knftables.NewFake(Family, Table)}} }

func (f *Firewall) Backend() forward.Backend { return Backend }
func (f *Firewall) Installed() bool          { return f.run.installed() }

// Read reads nsrun's table; a missing table is an empty snapshot.
func (f *Firewall) Read(ctx context.Context) (forward.Tables, error) { return f.run.read(ctx) }

// Ensure puts the project's publications in place in one transaction of
// only what differs; none when nothing does.
func (f *Firewall) Ensure(ctx context.Context, p forward.Project, acceptsOnly bool) error {
	build, err := ensureOf(p, acceptsOnly)
	if err != nil {
		return err
	}
	return f.change(ctx, build)
}

// PrepareEnsure reads the table now and returns Ensure's write.
func (f *Firewall) PrepareEnsure(ctx context.Context, p forward.Project, acceptsOnly bool) (func(context.Context) error, error) {
	build, err := ensureOf(p, acceptsOnly)
	if err != nil {
		return nil, err
	}
	return prepare(ctx, f.run, build)
}

// ensureOf is what Ensure builds its transaction with.
func ensureOf(p forward.Project, acceptsOnly bool) (func(*knftables.Transaction, *Snapshot), error) {
	if acceptsOnly {
		return nil, fmt.Errorf("the nftables backend holds no FORWARD accepts of other backends' projects")
	}
	return func(tx *knftables.Transaction, s *Snapshot) { ensure(tx, s, p) }, nil
}

// Remove removes the project's elements and chains, and the table with
// the last project.
func (f *Firewall) Remove(ctx context.Context, project string) error {
	return f.change(ctx, removeOf(project))
}

// PrepareRemove reads the table now and returns Remove's write.
func (f *Firewall) PrepareRemove(ctx context.Context, project string) (func(context.Context) error, error) {
	return prepare(ctx, f.run, removeOf(project))
}

// removeOf is what Remove builds its transaction with.
func removeOf(project string) func(*knftables.Transaction, *Snapshot) {
	return func(tx *knftables.Transaction, s *Snapshot) { remove(tx, s, project) }
}

// Sweep removes nsrun's table.
func (f *Firewall) Sweep(ctx context.Context) error {
	return f.change(ctx, func(tx *knftables.Transaction, s *Snapshot) {
		if s.exists {
			tx.Delete(&knftables.Table{})
		}
	})
}

func (f *Firewall) change(ctx context.Context, build func(*knftables.Transaction, *Snapshot)) error {
	return change(ctx, f.run, build)
}

// change reads a table and runs the transaction build makes from it, if
// it holds anything.
func change(ctx context.Context, run runner, build func(*knftables.Transaction, *Snapshot)) error {
	write, err := prepare(ctx, run, build)
	if err != nil || write == nil {
		return err
	}
	return write(ctx)
}

// prepare reads a table now, and returns the write of the transaction
// build makes from what it read, run when called; nil when the
// transaction holds nothing. That is found on a transaction of knftables'
// fake: making the nft handle runs nft twice, and for nothing when there
// is nothing to write.
func prepare(ctx context.Context, run runner, build func(*knftables.Transaction, *Snapshot)) (func(context.Context) error, error) {
	s, err := run.read(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.parse(); err != nil {
		return nil, err
	}
	tx := knftables.NewFake(Family, Table).NewTransaction()
	if build(tx, s); tx.NumOperations() == 0 {
		return nil, nil
	}
	return func(ctx context.Context) error {
		nft, err := run.nft(ctx)
		if err != nil {
			return err
		}
		tx := nft.NewTransaction()
		build(tx, s)
		if err := nft.Run(ctx, tx); err != nil {
			return fmt.Errorf("nft: %w\ninput was:\n%s", err, tx)
		}
		return nil
	}, nil
}

// Script is nft -f with the project's table, for a clean host.
func (f *Firewall) Script(p forward.Project) string {
	tx := knftables.NewFake(Family, Table).NewTransaction()
	ensure(tx, emptySnapshot(), p)
	return "nft -f - <<'EOF'\n" + tx.String() + "EOF\n"
}

// MadeTables: nsrun's table comes with its first project's rules and
// goes with its last; nft makes no table on its own.
func (f *Firewall) MadeTables(context.Context) ([]string, error) { return nil, nil }

// RemoveEmptyTables: there are none (see MadeTables).
func (f *Firewall) RemoveEmptyTables(context.Context, []string) error { return nil }

// Ready makes the handle its writes run nft through (forward.Readier).
func (f *Firewall) Ready(ctx context.Context) error {
	_, err := f.run.nft(ctx)
	return err
}

// Probe checks that the kernel and nft take every feature nsrun's table
// uses (nat chains, concatenated verdict maps with and without intervals,
// fib, ct status, masquerade), by one transaction that creates a table
// with them and deletes it again: it leaves nothing, whatever happens.
func (f *Firewall) Probe(ctx context.Context) error {
	nft, err := f.run.probe(ctx)
	if err != nil {
		return err
	}
	tx := nft.NewTransaction()
	ensure(tx, emptySnapshot(), probeProject)
	tx.Delete(&knftables.Table{})
	if err := nft.Run(ctx, tx); err != nil {
		return fmt.Errorf("a probe transaction with every feature nsrun uses failed: %w", err)
	}
	return nil
}

// program is the nft program, on one table: nsrun's, or the counting
// table.
type program struct {
	table  string          // "": nsrun's
	cache  *nftcache.Cache // the reads; nil: none
	once   sync.Once
	handle knftables.Interface
	err    error
}

func (p *program) installed() bool {
	_, err := exec.LookPath("nft")
	return err == nil
}

func (p *program) tableName() string { return cmp.Or(p.table, Table) }

// read runs nft -j list table inet TABLE, or takes what it printed from
// the cache; the output is parsed on first need.
func (p *program) read(ctx context.Context) (*Snapshot, error) {
	s, err := p.readLater(ctx)
	if err != nil {
		return nil, err
	}
	r, err := s.listing()
	if err != nil {
		return nil, err
	}
	if r.Code != 0 && !strings.Contains(r.Stderr, "No such file or directory") {
		return nil, r.Err(listArgv(p.tableName())...)
	}
	return s, nil
}

// readLater is read put off: nft -j list runs, or its output is taken
// from the cache, on first need of the table's contents.
func (p *program) readLater(ctx context.Context) (*Snapshot, error) {
	at, listing := p.cache.Later(ctx, nftcache.NFTGeneration, listArgv(p.tableName())...)
	return &Snapshot{listing: listing, table: p.tableName(), at: at, memo: p.cache}, ctx.Err()
}

// listArgv lists a table of nsrun's family.
func listArgv(table string) []string {
	return []string{"nft", "-j", "list", "table", string(Family), table}
}

// nft makes the knftables handle once: making it runs nft twice.
func (p *program) nft(ctx context.Context) (knftables.Interface, error) {
	p.once.Do(func() { p.handle, p.err = handle(p.tableName()) })
	return p.handle, p.err
}

func (p *program) probe(context.Context) (knftables.Interface, error) { return handle(probeTable) }

func handle(table string) (knftables.Interface, error) {
	h, err := knftables.New(Family, table)
	if err != nil {
		return nil, fmt.Errorf("nftables: %w; install nftables (apt-get install nftables) or choose --firewall iptables", err)
	}
	return h, nil
}

// fake is knftables' fake.
type fake struct{ f *knftables.Fake }

func (f fake) installed() bool { return true }

func (f fake) read(ctx context.Context) (*Snapshot, error) { return fromFake(f.f), ctx.Err() }

func (f fake) readLater(ctx context.Context) (*Snapshot, error) { return f.read(ctx) }

func (f fake) nft(context.Context) (knftables.Interface, error) { return f.f, nil }

func (f fake) probe(context.Context) (knftables.Interface, error) {
	return knftables.NewFake(Family, probeTable), nil
}
