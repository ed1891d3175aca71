package iptables

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/nsrun/nsrun/forward"
)

// lazyTables is a look at a backend whose outputs are read and parsed
// only when an answer kept under their versions is missing (see
// nftcache.Cache.Lines): beside thousands of namespaces iptables-save
// prints megabytes, which an up that changes nothing read and parsed
// each time to find the answers it had kept already. What the look
// reports of the whole backend (Publishes, InUse, DropReason) is had when
// it is taken, so that a backend that cannot be read fails the look, as
// an eager one does; a project's drift is had when asked for.
type lazyTables struct {
	f       *Firewall
	version string // the versions of both families' outputs
	snap    func() (*Snapshot, error)
	whole   []string // Publishes, InUse, DropReason
}

// lazy takes a lazy look, or an eager one where the versions of the
// outputs are not known (no cache, iptables-legacy without tables).
func (f *Firewall) lazy(ctx context.Context) (forward.Tables, error) {
	version := f.run.version()
	if version != "" && f.run6.installed() {
		v6 := f.run6.version()
		version += "; " + v6
		if v6 == "" {
			version = ""
		}
	}
	if version == "" { // also without a cache (programs.version)
		return f.snapshot(ctx)
	}
	t := &lazyTables{f: f, version: version, snap: sync.OnceValues(func() (*Snapshot, error) { return f.snapshot(ctx) })}
	var err error
	t.whole = f.cache.Lines(version, fmt.Sprintf("%s tables", f.backend), func() ([]string, bool) {
		var s *Snapshot
		if s, err = t.snap(); err != nil {
			return nil, false
		}
		return []string{strconv.FormatBool(s.Publishes()), strconv.FormatBool(s.InUse()), s.DropReason()}, t.of(s)
	})
	if err != nil {
		return nil, err
	}
	if len(t.whole) != 3 {
		return f.snapshot(ctx) // a kept answer of another form
	}
	return t, nil
}

// of reports whether a snapshot read through the cache is of the look's
// versions (the outputs may have changed since the look began).
func (t *lazyTables) of(s *Snapshot) bool { return s.versions() == t.version }

func (t *lazyTables) Publishes() bool    { return t.whole[0] == "true" }
func (t *lazyTables) InUse() bool        { return t.whole[1] == "true" }
func (t *lazyTables) DropReason() string { return t.whole[2] }
func (t *lazyTables) IPv6() bool         { return t.f.run6.installed() }

func (t *lazyTables) HasChain(table, chain string) bool {
	return t.kept("has chain "+table+" "+chain, func(s *Snapshot) string { return strconv.FormatBool(s.HasChain(table, chain)) }) == "true"
}

func (t *lazyTables) Policy(table, chain string) string {
	return t.kept("policy of "+table+" "+chain, func(s *Snapshot) string { return s.Policy(table, chain) })
}

func (t *lazyTables) DropsBeforeNsrun() string {
	return t.kept("drops before nsrun", (*Snapshot).DropsBeforeNsrun)
}

// kept is one answer about the backend, kept under the look's versions;
// "" when the backend can no longer be read (the look itself could: the
// next one reports it).
func (t *lazyTables) kept(question string, answer func(*Snapshot) string) string {
	lines := t.f.cache.Lines(t.version, fmt.Sprintf("%s %s", t.f.backend, question), func() ([]string, bool) {
		s, err := t.snap()
		if err != nil {
			return nil, false
		}
		return []string{answer(s)}, t.of(s)
	})
	if len(lines) != 1 {
		return ""
	}
	return lines[0]
}

// Drift is Snapshot.Drift, kept under the same versions and the project's
// digest; a backend that can no longer be read is reported as drift,
// which the up that repairs it reports again as its error.
func (t *lazyTables) Drift(p forward.Project, acceptsOnly bool) []string {
	return t.f.cache.Lines(t.version+"; project "+p.Digest(), driftKey(t.f.backend, p, acceptsOnly), func() ([]string, bool) {
		s, err := t.snap()
		if err != nil {
			return []string{fmt.Sprintf("reading %s: %v", t.f.backend, err)}, false
		}
		return s.drift(p, acceptsOnly), t.of(s)
	})
}
