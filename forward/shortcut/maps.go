package shortcut

// The port maps: what an entry is, how it is written for the programs,
// and the package's operations on them (Set, Read, Sweep).

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
)

// ErrUnavailable means the kernel cannot run the shortcut's programs here
// (no cgroup v2 hierarchy, or BPF not allowed or too old). The DNAT rules
// then carry loopback connections as they carry all others.
var ErrUnavailable = errors.New("the loopback shortcut is not available")

// The names the programs and maps are loaded under: how a later nsrun
// finds them on the root cgroup. The kernel keeps at most 15 characters.
const (
	progConnect      = "nsrun_connect4"
	progGetpeername  = "nsrun_peername4"
	progConnect6     = "nsrun_connect6"
	progGetpeername6 = "nsrun_peername6"
	mapPorts         = "nsrun_ports"
	mapPorts6        = "nsrun_ports6"
	mapPeers         = "nsrun_peers"
	mapConns         = "nsrun_conns"  // the connections each port map entry took, by its key
	mapConns6        = "nsrun_conns6" // the same for the IPv6 port map
)

// shortcutKey is a published port as connect() gives it to the program:
// address and port in network byte order, as struct bpf_sock_addr holds
// them; the zero address stands for all of 127.0.0.0/8.
type shortcutKey struct {
	Addr uint32
	Port uint32
}

// shortcutValue is where connections to the key go, and which project
// put it there.
type shortcutValue struct {
	Addr  uint32
	Port  uint32
	Owner uint64
}

// shortcutKey6 and shortcutValue6 are the IPv6 twins, for [::1]: the
// zero address stands for ::1 as published on every IPv6 address.
type shortcutKey6 struct {
	Addr [4]uint32
	Port uint32
}

type shortcutValue6 struct {
	Addr  [4]uint32
	Port  uint32
	Owner uint64
}

// sockAddr gives an address and port as struct bpf_sock_addr holds them.
func sockAddr(a [4]byte, port uint16) (uint32, uint32) {
	var p [2]byte
	binary.BigEndian.PutUint16(p[:], port)
	return binary.NativeEndian.Uint32(a[:]), uint32(binary.NativeEndian.Uint16(p[:]))
}

// sockAddr6 is sockAddr for an IPv6 address.
func sockAddr6(a [16]byte, port uint16) ([4]uint32, uint32) {
	var out [4]uint32
	for i := range out {
		out[i] = binary.NativeEndian.Uint32(a[4*i:])
	}
	_, p := sockAddr([4]byte{}, port)
	return out, p
}

// owner identifies a project's entries.
func owner(project string) uint64 {
	sum := sha256.Sum256([]byte(project))
	return binary.BigEndian.Uint64(sum[:8])
}

// Set makes the project's shortcuts exactly these: it loads and
// attaches the programs for the first shortcut of the host, and detaches
// them once the last is gone. It returns ErrUnavailable (wrapped) when
// the kernel cannot take them.
func Set(project string, want []Entry) error {
	need6 := slices.ContainsFunc(want, func(e Entry) bool { return e.Host.Addr().Is6() })
	s, err := openShortcut(len(want) > 0, need6)
	if err != nil {
		return err
	}
	if s == nil {
		// No connect program, so no shortcut anywhere; a getpeername
		// program alone is left from an nsrun killed while attaching.
		return Sweep()
	}
	defer s.Close()
	left, err := reconcile(s.maps(), project, want)
	if err != nil || left > 0 {
		return err
	}
	return detachShortcut(s.cgroup)
}

// portMap is the port maps as reconcile changes them: entries by their
// host address and port, with their owners.
type portMap interface {
	put(e Entry, own uint64) error
	delete(host netip.AddrPort) error
	each(fn func(e Entry, own uint64)) error
}

// reconcile makes the project's entries of the map exactly want, leaving
// other projects' alone, and returns how many entries the map holds then.
func reconcile(m portMap, project string, want []Entry) (int, error) {
	own := owner(project)
	keep := map[netip.AddrPort]bool{}
	for _, sc := range want {
		if err := m.put(sc, own); err != nil {
			return 0, fmt.Errorf("adding the loopback shortcut %s -> %s: %w", sc.Host, sc.Target, err)
		}
		keep[sc.Host] = true
	}
	var stale []netip.AddrPort
	left := 0
	err := m.each(func(e Entry, o uint64) {
		if o == own && !keep[e.Host] {
			stale = append(stale, e.Host)
		} else {
			left++
		}
	})
	if err != nil {
		return 0, fmt.Errorf("reading the loopback shortcuts: %w", err)
	}
	for _, h := range stale {
		if err := m.delete(h); err != nil {
			return 0, fmt.Errorf("removing a loopback shortcut of project %s: %w", project, err)
		}
	}
	return left, nil
}

// kernelMap is the kernel's port maps, IPv4 and IPv6, and their
// connection counters, c4 and c6 (each nil when the attached programs,
// an older nsrun's, have none).
type kernelMap struct{ v4, v6, c4, c6 *ebpf.Map }

func (s *shortcut) maps() kernelMap { return kernelMap{s.ports, s.ports6, s.conns, s.conns6} }

// put adds or changes an entry; its counter, made at 0 the first time,
// keeps counting through changes of the entry.
func (k kernelMap) put(e Entry, own uint64) error {
	if e.Host.Addr().Is4() {
		key, v := entry(e, own)
		if err := k.v4.Put(key, v); err != nil {
			return err
		}
		return newCounter(k.c4, key)
	}
	if k.v6 == nil {
		return fmt.Errorf("%w: the attached programs have no IPv6 port map", ErrUnavailable)
	}
	key, v := entry6(e, own)
	if err := k.v6.Put(key, v); err != nil {
		return err
	}
	return newCounter(k.c6, key)
}

// newCounter makes key's counter at 0, unless it is there.
func newCounter(m *ebpf.Map, key any) error {
	if m == nil {
		return nil
	}
	if err := m.Update(key, uint64(0), ebpf.UpdateNoExist); err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
		return err
	}
	return nil
}

func (k kernelMap) delete(host netip.AddrPort) error {
	var errs []error
	if host.Addr().Is4() {
		key, _ := entry(Entry{Host: host, Target: host}, 0)
		errs = append(errs, k.v4.Delete(key))
		if k.c4 != nil {
			errs = append(errs, k.c4.Delete(key))
		}
	} else if k.v6 != nil {
		key, _ := entry6(Entry{Host: host, Target: host}, 0)
		errs = append(errs, k.v6.Delete(key))
		if k.c6 != nil {
			errs = append(errs, k.c6.Delete(key))
		}
	}
	for _, err := range errs {
		if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return err
		}
	}
	return nil
}

// counts reads the connection counters, by host address and port: those
// of the hosts in keep, or all with a nil keep.
func (k kernelMap) counts(keep map[netip.AddrPort]bool) (map[netip.AddrPort]uint64, error) {
	out := map[netip.AddrPort]uint64{}
	add := func(host netip.AddrPort, n uint64) {
		if keep == nil || keep[host] {
			out[host] = n
		}
	}
	if k.c4 != nil {
		if err := eachOf(k.c4, func(key shortcutKey, n uint64) { add(fromSockAddr(key.Addr, key.Port), n) }); err != nil {
			return nil, err
		}
	}
	if k.c6 != nil {
		if err := eachOf(k.c6, func(key shortcutKey6, n uint64) { add(fromSockAddr6(key.Addr, key.Port), n) }); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (k kernelMap) each(fn func(Entry, uint64)) error {
	err := eachOf(k.v4, func(key shortcutKey, v shortcutValue) {
		fn(Entry{Host: fromSockAddr(key.Addr, key.Port), Target: fromSockAddr(v.Addr, v.Port)}, v.Owner)
	})
	if err != nil || k.v6 == nil {
		return err
	}
	return eachOf(k.v6, func(key shortcutKey6, v shortcutValue6) {
		fn(Entry{Host: fromSockAddr6(key.Addr, key.Port), Target: fromSockAddr6(v.Addr, v.Port)}, v.Owner)
	})
}

// batchSize is how many entries one system call reads; a hash map's
// batch must hold its fullest bucket, which a few entries fill.
const batchSize = 1024

// eachOf calls fn with every entry of m, read in batches
// (BPF_MAP_LOOKUP_BATCH, Linux 5.6 on): one key at a time, two system
// calls per entry, reading 10,000 published ports took longer than the
// rest of an unchanged up. A kernel without batches is read one key at a
// time.
func eachOf[K, V any](m *ebpf.Map, fn func(K, V)) error {
	keys, values := make([]K, batchSize), make([]V, batchSize)
	var cursor ebpf.MapBatchCursor
	for first := true; ; first = false {
		n, err := m.BatchLookup(&cursor, keys, values, nil)
		for i := range n {
			fn(keys[i], values[i])
		}
		switch {
		case errors.Is(err, ebpf.ErrKeyNotExist):
			return nil // the end
		case first && errors.Is(err, ebpf.ErrNotSupported):
			var key K
			var v V
			it := m.Iterate()
			for it.Next(&key, &v) {
				fn(key, v)
			}
			return it.Err()
		case err != nil:
			return err
		}
	}
}

// entry encodes an IPv4 entry; 0.0.0.0 stands for every loopback address.
func entry(s Entry, own uint64) (shortcutKey, shortcutValue) {
	var k shortcutKey
	v := shortcutValue{Owner: own}
	k.Addr, k.Port = sockAddr(s.Host.Addr().As4(), s.Host.Port())
	v.Addr, v.Port = sockAddr(s.Target.Addr().As4(), s.Target.Port())
	return k, v
}

// entry6 encodes an IPv6 entry; :: stands for ::1 on a port published on
// every IPv6 address.
func entry6(s Entry, own uint64) (shortcutKey6, shortcutValue6) {
	var k shortcutKey6
	v := shortcutValue6{Owner: own}
	k.Addr, k.Port = sockAddr6(s.Host.Addr().As16(), s.Host.Port())
	v.Addr, v.Port = sockAddr6(s.Target.Addr().As16(), s.Target.Port())
	return k, v
}

// Sweep detaches nsrun's programs, whatever they hold.
func Sweep() error {
	cg, err := openCgroup()
	if err == nil {
		err = detachShortcut(cg)
		cg.Close()
	}
	if errors.Is(err, ErrUnavailable) {
		return nil // nothing can be attached
	}
	return err
}

// Read reads the shortcut's entries and their connection counters: the
// projects' named, or every project's when none is. Supported is false
// where the kernel cannot run the programs (no cgroup v2 hierarchy, no
// cgroup socket-address programs): nothing is expected then. Beside
// thousands of other projects' ports, the entries a project is not asked
// about are read but not kept.
func Read(projects ...string) (Table, error) {
	t := Table{Entries: map[Entry]uint64{}}
	cg, err := openCgroup()
	if errors.Is(err, ErrUnavailable) {
		return t, nil
	}
	if err != nil {
		return t, err
	}
	defer cg.Close()
	sc, err := findMaps(cg)
	if errors.Is(err, ErrUnavailable) {
		return t, nil
	}
	if err != nil {
		return t, err
	}
	if sc == nil { // not attached: could it be?
		t.Supported = features.HaveProgramType(ebpf.CGroupSockAddr) == nil
		return t, nil
	}
	defer sc.closeMaps()
	t, err = sc.maps().table(projects)
	t.Supported = true
	return t, err
}

// table reads the projects' entries, or all with none named, and the
// counters of those entries.
func (k kernelMap) table(projects []string) (Table, error) {
	t := Table{Entries: map[Entry]uint64{}}
	var owners map[uint64]bool
	var hosts map[netip.AddrPort]bool
	if len(projects) > 0 {
		owners, hosts = map[uint64]bool{}, map[netip.AddrPort]bool{}
		for _, p := range projects {
			owners[owner(p)] = true
		}
	}
	err := k.each(func(e Entry, own uint64) {
		if owners == nil || owners[own] {
			t.Entries[e] = own
			if hosts != nil {
				hosts[e.Host] = true
			}
		}
	})
	if err != nil {
		return t, fmt.Errorf("reading the loopback shortcuts: %w", err)
	}
	if t.Conns, err = k.counts(hosts); err != nil {
		return t, fmt.Errorf("reading the loopback shortcuts' connection counters: %w", err)
	}
	return t, nil
}

// fromSockAddr is the inverse of sockAddr.
func fromSockAddr(addr, port uint32) netip.AddrPort {
	var a [4]byte
	binary.NativeEndian.PutUint32(a[:], addr)
	var p [2]byte
	binary.NativeEndian.PutUint16(p[:], uint16(port))
	return netip.AddrPortFrom(netip.AddrFrom4(a), binary.BigEndian.Uint16(p[:]))
}

// fromSockAddr6 is the inverse of sockAddr6.
func fromSockAddr6(addr [4]uint32, port uint32) netip.AddrPort {
	var a [16]byte
	for i, w := range addr {
		binary.NativeEndian.PutUint32(a[4*i:], w)
	}
	return netip.AddrPortFrom(netip.AddrFrom16(a), fromSockAddr(0, port).Port())
}
