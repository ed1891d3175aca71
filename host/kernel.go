package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nsrun/nsrun/cgroup"
	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/hostfw"
	"github.com/nsrun/nsrun/internal/atomicfile"
	"github.com/nsrun/nsrun/internal/nftcache"
	"github.com/nsrun/nsrun/internal/sysctl"
	"github.com/nsrun/nsrun/netns"
	"github.com/nsrun/nsrun/shape"
	"github.com/nsrun/nsrun/specs"
	"github.com/nsrun/nsrun/veth"
)

// Kernel is the real host, as project.System and project.Sweeper see
// it, and what Observe reads: it changes and reads the kernel through the
// netns and veth packages; Observe reads the firewalls and the shortcut
// too.
type Kernel struct {
	// Publisher holds the firewall backends and the loopback shortcut.
	Publisher forward.Publisher
	// Grace is how long processes get to exit after SIGTERM.
	Grace time.Duration
	// Firewalld is the host's firewalld, on the system bus.
	Firewalld hostfw.FirewalldBus
	// Cache keeps what nft prints of other programs' tables while the
	// nftables generation stays the same; nil keeps nothing. (The
	// Publisher's backends are given theirs, see NewCached.)
	Cache *nftcache.Cache
	// Etc keeps digests of nsrun's files in /etc/netns while they are
	// unchanged; nil keeps nothing.
	Etc *EtcCache
	// Shared lets namespaces whose file has the same content share it;
	// nil writes each.
	Shared *SharedEtc
	// Dumps keeps the host's address and route dumps while the host does
	// not change; nil keeps nothing.
	Dumps *DumpCache
}

// SharedEtc remembers, for one process, the /etc/netns files it wrote by
// their content: a namespace that wants a file another got is given the
// same file, hard-linked, not another copy. Each namespace's hosts file
// names every namespace of its networks, so for a project of 1,000 on one
// network the copies were 35 MB, a fifth of its first up. A file edited in
// place shows in every namespace that shares it; up puts them all back.
type SharedEtc struct {
	mu     sync.Mutex
	byData map[string]string // content -> a file written with it
}

func (s *SharedEtc) get(content string) (string, bool) {
	if s == nil {
		return "", false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	path, ok := s.byData[content]
	return path, ok
}

func (s *SharedEtc) put(content, path string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byData == nil {
		s.byData = map[string]string{}
	}
	s.byData[content] = path
}

// EnsureCgroup makes a namespace's cgroup, or sets its limits in place.
func (k Kernel) EnsureCgroup(t cgroup.Tree) error { return cgroup.Host().Ensure(t) }

// AdoptIntoCgroup moves every process in the namespace into the leaf of
// its cgroup that nsrun exec uses: they were there before the cgroup was.
func (k Kernel) AdoptIntoCgroup(ns string) error {
	procs, err := netns.Pids(ns)
	if err != nil {
		return err
	}
	var pids []int
	for _, p := range procs {
		pids = append(pids, p.PID)
	}
	return cgroup.Host().Move(ns, cgroup.ExecLeaf, pids)
}

// RemoveCgroups removes the namespaces' cgroups. Their processes were
// stopped with the namespaces; what is still in a cgroup (a process that
// had joined it and not yet entered the namespace) is killed: being in
// nsrun's cgroup, it is nsrun's.
func (k Kernel) RemoveCgroups(names []string) error {
	l := cgroup.Host()
	var errs []error
	for _, ns := range names {
		l.Kill(ns)
		errs = append(errs, l.Remove(ns, 5*time.Second))
	}
	return errors.Join(errs...)
}

// CgroupNamespaces lists the namespaces that have a cgroup of nsrun's.
func (k Kernel) CgroupNamespaces() []string { return cgroup.Host().Namespaces() }

func (k Kernel) IPForward() (string, error)                  { return sysctl.Get(sysctl.IPForward) }
func (k Kernel) SetIPForward(value string) error             { return sysctl.Set(sysctl.IPForward, value) }
func (k Kernel) Sysctl(path string) (string, error)          { return sysctl.Get(path) }
func (k Kernel) SetSysctl(path, value string) error          { return sysctl.Set(path, value) }
func (k Kernel) CreateNamespace(name string) error           { return netns.Create(name) }
func (k Kernel) DeleteNamespace(name string) error           { return netns.Delete(name) }
func (k Kernel) NamespaceCookie(name string) (uint64, error) { return netns.Cookie(name) }
func (k Kernel) NamespaceHolders(names []string) map[string][]netns.Holder {
	return netns.HoldersOf(names)
}
func (k Kernel) KillNamespaces(names []string) error {
	return netns.KillAllIn(names, k.Grace)
}

// EnsureLink builds or repairs a pair.
func (k Kernel) EnsureLink(p veth.Pair) error { return veth.Ensure(p) }
func (k Kernel) Shape(ns, hostLink string, want shape.Link) error {
	return shape.Ensure(ns, hostLink, PeerName, want)
}
func (k Kernel) DeleteLink(name string) error   { return veth.Delete(name) }
func (k Kernel) LinksGone(names []string) error { return veth.WaitGone(names, 5*time.Second) }
func (k Kernel) FlushUDP(ports []specs.PortRange) error {
	return forward.DeleteUDPConntrack(ports)
}

// WriteEtc writes nsrun's files in /etc/netns/NS. A file found with the
// content wanted is left as it is: a kept digest that said otherwise is
// wrong, so the cache goes.
func (k Kernel) WriteEtc(ns string, files map[string]string) error {
	k.Etc.forget()
	return writeEtc(ns, files, k.Shared)
}
func (k Kernel) RemoveEtc(ns string) error { return removeEtc(ns) }

func (k Kernel) BindZone(ctx context.Context, links []string) error {
	return k.Firewalld.Bind(ctx, links)
}
func (k Kernel) UnbindZone(ctx context.Context, links []string) error {
	return k.Firewalld.Unbind(ctx, links)
}

// ZonedLinks lists the links firewalld has in nsrun's zone; none when it
// does not run.
func (k Kernel) ZonedLinks(ctx context.Context) ([]string, error) {
	f, err := k.Firewalld.Read(ctx)
	return f.Zoned(), err
}

// LabelledLinks lists the host links nsrun labelled.
func (k Kernel) LabelledLinks() ([]veth.Labelled, error) { return veth.ListLabelled() }

// SweepFirewall removes nsrun's chains, and the rules that jump to them,
// from every installed backend, the loopback shortcut, and nsrun's links
// (by their names) from firewalld's zone.
func (k Kernel) SweepFirewall(ctx context.Context) error {
	f, err := k.Firewalld.Read(ctx)
	return errors.Join(err, k.Firewalld.Unbind(ctx, slices.DeleteFunc(f.Zoned(), func(l string) bool { return !specs.IsHostLinkName(l) })),
		k.Publisher.Sweep(ctx))
}

// writeEtc writes nsrun's files into /etc/netns/NS/, leaving alone any
// file of that name nsrun did not write, and any that already holds the
// content. Each is written beside and renamed into place: a file nsrun
// was killed while writing would lack the marker and never be removed.
func writeEtc(ns string, files map[string]string, shared *SharedEtc) error {
	dir := filepath.Join(netns.EtcDir, ns)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	for name, content := range files {
		path := filepath.Join(dir, name)
		old, err := os.ReadFile(path)
		if err == nil && (string(old) == content || !strings.HasPrefix(string(old), EtcMarker)) {
			continue
		}
		// The file another namespace got, if it still holds the content
		// (one changed by hand since is not passed on).
		if src, ok := shared.get(content); ok && holds(src, content) && atomicfile.Link(src, path) == nil {
			continue
		}
		if err := atomicfile.Write(path, []byte(content), 0o644); err != nil {
			return err
		}
		shared.put(content, path)
	}
	return nil
}

// holds reports whether the file at path has that content.
func holds(path, content string) bool {
	data, err := os.ReadFile(path)
	return err == nil && string(data) == content
}

// removeEtc removes the files nsrun wrote in /etc/netns/NS/ (and any it
// was killed while writing), then the directory and /etc/netns when they
// are left empty.
func removeEtc(ns string) error {
	dir := filepath.Join(netns.EtcDir, ns)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		if _, err := os.Stat(path); err == nil && (ours(path) || atomicfile.IsTemp(e.Name())) {
			if err := os.Remove(path); err != nil {
				return err
			}
		}
	}
	os.Remove(dir)          // only if empty
	os.Remove(netns.EtcDir) // likewise
	return nil
}

// ours reports whether a file is absent or was written by nsrun.
func ours(path string) bool {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return true
	}
	return err == nil && strings.HasPrefix(string(data), EtcMarker)
}
