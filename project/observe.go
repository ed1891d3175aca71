package project

import (
	"context"
	"crypto/sha256"
	"errors"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/forward/shortcut"
	"github.com/nsrun/nsrun/hostfw"
	"github.com/nsrun/nsrun/internal/rawfile"
	"github.com/nsrun/nsrun/internal/rtnl"
	"github.com/nsrun/nsrun/netns"
	"github.com/nsrun/nsrun/specs"
	"github.com/nsrun/nsrun/veth"
)

// peerName is the namespace side of every pair nsrun makes.
const peerName = "eth0"

// Query says what Observe reads beyond the host-wide state: who is bound
// to the ports to be published, and the namespaces whose links and files
// are compared with a record.
type Query struct {
	Published  []specs.Port
	Namespaces []string
	// Cookies are the namespaces whose cookies are read: those that have
	// an exec grant to compare with.
	Cookies []string
	// FirewallOnly reads only what the keeper keeps: the firewall
	// backends, the loopback shortcuts and firewalld.
	FirewallOnly bool
}

// Observed is what exists on the host, read in bulk before any change:
// one dump of the links, of the addresses and of the routes, one read of
// each firewall backend, and per namespace queried one netlink socket.
type Observed struct {
	Namespaces map[string]bool      // the named network namespaces
	Links      map[string]veth.Link // host links by name
	Prefixes   []veth.HostPrefix    // host routes and addresses
	Listeners  []forward.Listener   // host sockets bound to the ports queried
	// The host's /etc/resolv.conf and systemd-resolved's upstream one,
	// for the namespaces' resolv.conf.
	HostResolv, SystemdResolv string
	IPForward                 string // net.ipv4.ip_forward
	IPv6Forward               string // net.ipv6.conf.all.forwarding; "" without IPv6
	// AcceptRA is, for each link with a default route learned from router
	// advertisements, its accept_ra.
	AcceptRA  map[string]string
	MachineID string // /etc/machine-id, which the default IPv6 pools derive from
	// NetnsCookies are the cookies of the namespaces Query.Cookies names
	// that exist, and Grants every namespace's published exec grant (the
	// engine reads them from its store).
	NetnsCookies  map[string]uint64
	Grants        map[string]netns.Grant
	Tables        map[forward.Backend]forward.Tables // each installed backend
	Backends      []forward.Backend                  // the installed backends, in order of preference
	RouteLocalnet map[string]string                  // nsrun's host links -> route_localnet
	Shortcuts     shortcut.Table                     // the loopback shortcut's entries
	Host          hostfw.Host                        // the host's own firewalls

	// Of the namespaces queried that exist: the namespace side of the
	// pair (or why it could not be read), and nsrun's /etc/netns files.
	Peers      map[string]veth.Peer
	PeerErrors map[string]error
	Etc        map[string]map[string]EtcFile // namespace -> file name -> what it holds
}

// EtcFile is one of the files nsrun writes in /etc/netns/NS, as found:
// enough to tell whether nsrun wrote it and whether it holds some content.
type EtcFile struct {
	Ours bool     // it starts with nsrun's marker
	Sum  [32]byte // SHA-256 of its content
}

// etcFileOf describes a file of that content.
func etcFileOf(content string) EtcFile {
	return EtcFile{Ours: strings.HasPrefix(content, etcMarker), Sum: sha256.Sum256([]byte(content))}
}

// Observe reads what exists on the host.
func (k Kernel) Observe(ctx context.Context, q Query) (Observed, error) {
	obs := Observed{Namespaces: map[string]bool{}, RouteLocalnet: map[string]string{}, Peers: map[string]veth.Peer{}, NetnsCookies: map[string]uint64{},
		PeerErrors: map[string]error{}, Etc: map[string]map[string]EtcFile{}}
	// The firewalls are read by other programs and daemons: all at once,
	// and meanwhile the rest.
	var wg sync.WaitGroup
	var fwErr, hostErr error
	wg.Go(func() {
		if obs.Tables, obs.Backends, fwErr = k.readFirewalls(ctx); fwErr == nil {
			obs.Shortcuts, fwErr = shortcut.Read()
		}
	})
	wg.Go(func() {
		if q.FirewallOnly {
			obs.Host.Firewalld, hostErr = k.Firewalld.Read(ctx)
		} else {
			obs.Host, hostErr = k.readHost(ctx)
		}
	})
	var err error
	if !q.FirewallOnly {
		err = observeHost(&obs, q, k.Peers)
	}
	wg.Wait()
	return obs, errors.Join(err, fwErr, hostErr)
}

// observeHost reads all Observe reads but the firewall.
func observeHost(obs *Observed, q Query, peers *PeerCache) error {
	names, err := netns.List()
	if err != nil {
		return err
	}
	for _, n := range names {
		obs.Namespaces[n] = true
	}
	// The namespaces' reads fill fields of their own; the host's go on
	// meanwhile.
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { observeNamespaces(obs, q.Namespaces, q.Cookies, peers) })
	if obs.Links, err = veth.HostLinks(); err != nil {
		return err
	}
	if obs.Prefixes, err = veth.HostPrefixes(obs.Links); err != nil {
		return err
	}
	if len(q.Published) > 0 {
		if obs.Listeners, err = forward.Listeners(q.Published); err != nil {
			return err
		}
	}
	hostResolv, _ := os.ReadFile("/etc/resolv.conf")
	systemdResolv, _ := os.ReadFile("/run/systemd/resolve/resolv.conf")
	obs.HostResolv, obs.SystemdResolv = string(hostResolv), string(systemdResolv)
	if obs.IPForward, err = veth.GetSysctl(veth.IPForward); err != nil {
		return err
	}
	obs.IPv6Forward, _ = veth.GetSysctl(veth.IPv6Forward) // no file: no IPv6
	if disabled, _ := veth.GetSysctl("net/ipv6/conf/all/disable_ipv6"); disabled == "1" {
		obs.IPv6Forward = ""
	}
	raLinks, err := veth.RADefaultLinks()
	if err != nil {
		return err
	}
	obs.AcceptRA = map[string]string{}
	for _, l := range raLinks {
		obs.AcceptRA[l], _ = veth.GetSysctl(veth.LinkSysctl6(l, "accept_ra"))
	}
	obs.MachineID = machineID()
	for name, l := range obs.Links {
		if _, _, ours := veth.ParseLabel(l.Alias); ours {
			if obs.RouteLocalnet[name] = l.RouteLocalnet; l.RouteLocalnet == "" { // not in the dump
				obs.RouteLocalnet[name], _ = veth.GetSysctl(veth.LinkSysctl(name, "route_localnet"))
			}
		}
	}
	return nil
}

// needAcceptRA lists, sorted, the links with an RA-learned default route
// whose accept_ra is not 2: with forwarding on they would lose that route.
func (o Observed) needAcceptRA() []string {
	var out []string
	for l, v := range o.AcceptRA {
		if v != "2" {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return out
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
	uplinks, err3 := hostfw.Uplinks()
	h.Uplinks = uplinks
	wg.Wait()
	return h, errors.Join(err1, err2, err3)
}

// readFirewalls reads each installed backend once, all at once: each is
// another program.
func (k Kernel) readFirewalls(ctx context.Context) (map[forward.Backend]forward.Tables, []forward.Backend, error) {
	var order []forward.Backend
	tables := make([]forward.Tables, len(k.Firewalls))
	errs := make([]error, len(k.Firewalls))
	var wg sync.WaitGroup
	for i, fw := range k.Firewalls {
		if !fw.Installed() {
			continue
		}
		order = append(order, fw.Backend())
		wg.Add(1)
		go func() {
			defer wg.Done()
			tables[i], errs[i] = fw.Read(ctx)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	out := map[forward.Backend]forward.Tables{}
	for i, fw := range k.Firewalls {
		if tables[i] != nil {
			out[fw.Backend()] = tables[i]
		}
	}
	return out, order, nil
}

// observeNamespaces reads, for each namespace that exists, its side of the
// pair (from the cache while the keeper has seen no change), nsrun's
// files in /etc/netns (from the cache while unchanged) and, for those in
// cookies, its cookie, on several workers.
func observeNamespaces(obs *Observed, names, cookies []string, cache *PeerCache) {
	token := cache.token()
	kept := cache.load(token)
	read := map[string]cachedPeer{}
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
			inode := namespaceInode(name)
			peer, cached := reusable(kept, name, inode)
			var err error
			if !cached {
				peer, err = veth.ObservePeer(name, peerName, *buf)
			}
			files, etc := readEtcCached(name, *buf, kept[name].Etc)
			bufs.Put(buf)
			mu.Lock()
			defer mu.Unlock()
			if err == nil && inode != 0 && (!cached || !maps.EqualFunc(etc, kept[name].Etc, func(a, b cachedEtc) bool { return a == b })) {
				read[name] = cachedPeer{Inode: inode, Peer: peer, Etc: etc}
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
	// What was read is kept if nothing changed while it was read.
	if len(read) > 0 && token != "" && cache.token() == token {
		cache.save(token, read)
	}
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
			out.Ours = strings.HasPrefix(string(b), etcMarker) // the buffer holds more than the marker
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

// Foreign returns the host prefixes that are not on nsrun's links.
func (o Observed) Foreign() []netip.Prefix {
	var out []netip.Prefix
	for _, p := range o.foreignPrefixes() {
		out = append(out, p.Prefix)
	}
	return out
}

func (o Observed) foreignPrefixes() []veth.HostPrefix {
	var out []veth.HostPrefix
	for _, p := range o.Prefixes {
		if _, _, ours := veth.ParseLabel(o.Links[p.Link].Alias); !ours {
			out = append(out, p)
		}
	}
	return out
}

// alias returns a host link's alias; "" for none, or no such link.
func (o Observed) alias(link string) string { return o.Links[link].Alias }
