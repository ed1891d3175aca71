package host

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"os"
	"strings"
	"sync"

	"github.com/nsrun/nsrun/cgroup"
	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/forward/shortcut"
	"github.com/nsrun/nsrun/hostfw"
	"github.com/nsrun/nsrun/internal/rawfile"
	"github.com/nsrun/nsrun/internal/rtnl"
	"github.com/nsrun/nsrun/internal/sysctl"
	"github.com/nsrun/nsrun/netns"
	"github.com/nsrun/nsrun/shape"
	"github.com/nsrun/nsrun/veth"
)

// Observe reads what exists on the host.
func (k Kernel) Observe(ctx context.Context, q Query) (Observed, error) {
	obs := Observed{Namespaces: map[string]bool{}, RouteLocalnet: map[string]string{}, Peers: map[string]veth.Peer{}, NetnsCookies: map[string]uint64{},
		PeerErrors: map[string]error{}, Etc: map[string]map[string]EtcFile{}}
	// The firewalls are read by other programs and daemons: all at once,
	// and meanwhile the rest.
	var wg sync.WaitGroup
	var fwErr, hostErr error
	wg.Go(func() {
		if obs.Tables, obs.Backends, fwErr = k.Publisher.Read(ctx); fwErr == nil {
			obs.Shortcuts, fwErr = shortcut.Read(q.Projects...)
		}
		if fwErr == nil {
			obs.Counting, fwErr = k.Publisher.ReadCounting(ctx)
		}
	})
	var shapeErr error
	wg.Go(func() { obs.Shaping, obs.QdiscKinds, shapeErr = observeShaping(q) })
	wg.Go(func() {
		if q.FirewallOnly {
			obs.Host.Firewalld, hostErr = k.Firewalld.Read(ctx)
		} else {
			obs.Host, hostErr = k.readHost(ctx)
		}
	})
	var err error
	var uplinks []string
	if !q.FirewallOnly {
		uplinks, err = observeHost(&obs, q, k.Etc, k.Dumps)
		obs.CgroupLayout = cgroup.Host()
		obs.Controllers = obs.CgroupLayout.Available()
		obs.Cgroups, obs.CgroupUsage = map[string]cgroup.State{}, map[string]cgroup.Usage{}
		for _, ns := range q.Cgroups {
			st, ok := obs.CgroupLayout.Read(ns)
			if !ok {
				continue
			}
			obs.Cgroups[ns] = st
			if q.Usage {
				if u, err := obs.CgroupLayout.Usage(ns); err == nil {
					obs.CgroupUsage[ns] = u
				}
			}
		}
	}
	wg.Wait()
	obs.Host.Uplinks = uplinks
	return obs, errors.Join(err, fwErr, hostErr, shapeErr)
}

// observeShaping reads the qdiscs of the links queried, and tries the
// qdisc kinds queried.
func observeShaping(q Query) (map[string]shape.Link, map[string]error, error) {
	var kinds map[string]error
	var kindsErr error
	var wg sync.WaitGroup
	if len(q.QdiscKinds) > 0 {
		wg.Go(func() { kinds, kindsErr = shape.Supported(q.QdiscKinds) })
	}
	links, err := shape.Read(q.Shaped, PeerName, make([]byte, rtnl.BufferSize))
	wg.Wait()
	return links, kinds, errors.Join(err, kindsErr)
}

// observeHost reads all Observe reads but the firewalls, and returns the
// host's uplinks (for obs.Host, which another reader fills meanwhile).
func observeHost(obs *Observed, q Query, etc *EtcCache, dumps *DumpCache) ([]string, error) {
	// Each namespace queried is looked up: listing /run/netns costs what
	// every project's namespaces do.
	for _, n := range q.Namespaces {
		if _, err := os.Lstat(netns.Path(n)); err == nil {
			obs.Namespaces[n] = true
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("looking up netns %q: %w", n, err)
		}
	}
	// The namespaces' reads fill fields of their own; the host's go on
	// meanwhile.
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { observeNamespaces(obs, q.Namespaces, q.Cookies, etc) })
	host, err := dumps.readHost(q.Links, q.Usage)
	if err != nil {
		return nil, err
	}
	obs.Links, obs.Prefixes = host.Links, host.Prefixes
	if len(q.Published) > 0 {
		if obs.Listeners, err = forward.Listeners(q.Published); err != nil {
			return nil, err
		}
	}
	hostResolv, _ := os.ReadFile("/etc/resolv.conf")
	systemdResolv, _ := os.ReadFile("/run/systemd/resolve/resolv.conf")
	obs.HostResolv, obs.SystemdResolv = string(hostResolv), string(systemdResolv)
	if obs.IPForward, err = sysctl.Get(sysctl.IPForward); err != nil {
		return nil, err
	}
	obs.IPv6Forward, _ = sysctl.Get(sysctl.IPv6Forward) // no file: no IPv6
	if disabled, _ := sysctl.Get("net/ipv6/conf/all/disable_ipv6"); disabled == "1" {
		obs.IPv6Forward = ""
	}
	obs.AcceptRA = map[string]string{}
	for _, l := range host.RADefault {
		obs.AcceptRA[l], _ = sysctl.Get(sysctl.Link6(l, "accept_ra"))
	}
	obs.MachineID = machineID()
	for name, l := range obs.Links {
		if _, _, ours := veth.ParseLabel(l.Alias); ours {
			if obs.RouteLocalnet[name] = l.RouteLocalnet; l.RouteLocalnet == "" { // not in the dump
				obs.RouteLocalnet[name], _ = sysctl.Get(sysctl.Link(name, "route_localnet"))
			}
		}
	}
	return host.Uplinks, nil
}

// machineID reads the machine's id (systemd's, else D-Bus's); "" when
// there is none, which still gives stable default IPv6 pools.
func machineID() string {
	for _, path := range []string{"/etc/machine-id", "/var/lib/dbus/machine-id"} {
		if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
			return strings.TrimSpace(string(b))
		}
	}
	return ""
}

// readHost reads the host's own firewalls: firewalld, ufw's files and
// other programs' nftables chains.
func (k Kernel) readHost(ctx context.Context) (hostfw.Host, error) {
	var h hostfw.Host
	var err1, err2 error
	var wg sync.WaitGroup
	wg.Go(func() { h.Firewalld, err1 = k.Firewalld.Read(ctx) })
	h.NFT, err2 = hostfw.ReadNFT(ctx, k.Cache)
	h.UFW = hostfw.ReadUFW("/")
	wg.Wait()
	return h, errors.Join(err1, err2)
}

// workers bounds how many namespaces are read at once.
const workers = 8

// observeNamespaces reads, for each namespace that exists, its side of the
// pair, nsrun's files in /etc/netns (from the cache while unchanged) and,
// for those in cookies, its cookie, on several workers.
func observeNamespaces(obs *Observed, names, cookies []string, cache *EtcCache) {
	kept := cache.load(names)
	read := map[string]map[string]cachedEtc{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, workers)
	seen := map[string]bool{}
	// One buffer per worker, for its netlink messages and its files.
	bufs := sync.Pool{New: func() any { b := make([]byte, rtnl.BufferSize); return &b }}
	asked := map[string]bool{}
	for _, name := range cookies {
		asked[name] = true
	}
	for _, name := range names {
		if seen[name] || !obs.Namespaces[name] {
			continue
		}
		seen[name] = true
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			buf := bufs.Get().(*[]byte)
			peer, err := veth.ObservePeer(name, PeerName, *buf)
			files, etc := readEtcCached(name, *buf, kept[name])
			bufs.Put(buf)
			mu.Lock()
			defer mu.Unlock()
			if !maps.Equal(etc, kept[name]) {
				read[name] = etc
			}
			if asked[name] && peer.Cookie != 0 {
				obs.NetnsCookies[name] = peer.Cookie
			}
			if err != nil {
				obs.PeerErrors[name] = err
			} else {
				obs.Peers[name] = peer
			}
			obs.Etc[name] = files
		}()
	}
	wg.Wait()
	cache.save(read, names, obs.Namespaces)
}

// readEtcFile reads one of the files of /etc/netns/NS that nsrun writes
// through buf: each namespace's hosts file names every namespace, so
// holding them all would take the square of their number in memory.
func readEtcFile(path string, buf []byte) (EtcFile, bool) {
	h := sha256.New()
	var out EtcFile
	first := true
	err := rawfile.Stream(path, buf, func(b []byte) {
		if first {
			out.Ours = strings.HasPrefix(string(b), EtcMarker) // the buffer holds more than the marker
			first = false
		}
		h.Write(b)
	})
	if err != nil {
		return EtcFile{}, false
	}
	h.Sum(out.Sum[:0])
	return out, true
}
