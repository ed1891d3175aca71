package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/forward/iptables"
	"github.com/nsrun/nsrun/forward/nftables"
	"github.com/nsrun/nsrun/forward/shortcut"
	"github.com/nsrun/nsrun/host"
	"github.com/nsrun/nsrun/internal/nftcache"
	"github.com/nsrun/nsrun/keeper"
	"github.com/nsrun/nsrun/project"
	"github.com/nsrun/nsrun/supervise"
)

// newEngine wires the engine to the real host: netlink, the firewall
// backends (iptables and nftables), and the state in /run/nsrun.
// Progress goes to w.
func newEngine(w io.Writer, quiet bool) (*project.Engine, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	st := store()
	cache := &nftcache.Cache{Dir: filepath.Join(st.Dir, "nftables.cache")} // a dot: never taken for a project's directory
	pub := forward.Publisher{Firewalls: firewalls(cache), Shortcut: shortcut.Loopback{}, Counting: nftables.NewCounting(cache)}
	k := host.Kernel{Publisher: pub, Grace: 5 * time.Second, Cache: cache, Etc: &host.EtcCache{Dir: st.Dir}, Shared: &host.SharedEtc{},
		Dumps: &host.DumpCache{Dir: st.Dir, Changes: func() (string, error) { return keeper.Changes(st.Dir) }}}
	e := &project.Engine{
		Store:       st,
		System:      k,
		Publisher:   pub,
		Sweeper:     k,
		Supervision: supervise.Daemon{Self: self, Grace: 5 * time.Second},
		Keeper:      keeper.Daemon{Self: self},
		Observe:     k.Observe,
		Waiting:     func() { fmt.Fprintln(w, "nsrun: waiting for another nsrun up or down to finish...") },
		Warn:        func(s string) { fmt.Fprintf(w, "nsrun: warning: %s\n", s) },
	}
	if !quiet {
		start := time.Now()
		e.Progress = func(s project.Step) {
			fmt.Fprintf(w, "  %-60s %6s\n", s.String(), time.Since(start).Round(time.Millisecond))
		}
	}
	return e, nil
}

// firewalls are the firewall backends nsrun uses, in order of preference,
// their reads kept in the cache while nftables does not change (nil:
// nothing is kept).
func firewalls(cache *nftcache.Cache) []forward.Firewall {
	var out []forward.Firewall
	for _, b := range iptables.Backends {
		out = append(out, iptables.NewCached(b, 30*time.Second, cache))
	}
	return append(out, nftables.NewCached(cache))
}

// firewallChoice reads --firewall, or else NSRUN_FIREWALL; auto when
// neither is set.
func firewallChoice(flag string) (forward.Choice, error) {
	if flag == "" {
		flag = os.Getenv("NSRUN_FIREWALL")
	}
	c, err := forward.ParseChoice(flag)
	if err != nil {
		return "", usageError(fmt.Errorf("--firewall (or NSRUN_FIREWALL): %w", err))
	}
	return c, nil
}

// firewallFlag is the help of --firewall.
const firewallFlag = "where published ports go: auto (iptables where it is installed, else nftables), nftables or iptables (default $NSRUN_FIREWALL, else auto)"
