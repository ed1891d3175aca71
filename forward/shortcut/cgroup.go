package shortcut

// Attaching the programs to the root cgroup (of the cgroup v2 hierarchy),
// finding them there again (by their names) from a later nsrun, and
// detaching them.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/nsrun/nsrun/internal/nsexec"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// shortcut is the attached programs' port map, and the cgroup they are
// attached to.
type shortcut struct {
	cgroup *os.File
	ports  *ebpf.Map
	ports6 *ebpf.Map // nil where an nsrun from before [::1] attached the programs
	// The connection counters of each port map; nil where an nsrun from
	// before counters attached the programs.
	conns, conns6 *ebpf.Map
}

func (s *shortcut) Close() {
	s.closeMaps()
	s.cgroup.Close()
}

// closeMaps closes the maps, leaving the cgroup open.
func (s *shortcut) closeMaps() { s.maps().close() }

// cgroup2Root returns where the cgroup v2 hierarchy is mounted: its root
// cgroup holds every process of the host.
func cgroup2Root() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS... - FSTYPE SOURCE SUPER
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep > 4 && sep+1 < len(fields) && fields[sep+1] == "cgroup2" && fields[3] == "/" {
			return fields[4], nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("%w: no cgroup v2 hierarchy is mounted", ErrUnavailable)
}

// openCgroup opens the root of the cgroup v2 hierarchy, which every
// process of the host is under.
func openCgroup() (*os.File, error) {
	root, err := cgroup2Root()
	if err != nil {
		return nil, err
	}
	cg, err := os.Open(root)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return cg, nil
}

// openShortcut finds nsrun's programs on the root cgroup. When they are
// not there it loads and attaches them if create is set, and otherwise
// returns nil. With need6, programs attached by an nsrun from before
// [::1] was served (no IPv6 port map) are attached anew, their entries
// kept; so are, with create, those of an nsrun from before the
// connection counters.
func openShortcut(create, need6 bool) (*shortcut, error) {
	cg, err := openCgroup()
	if err != nil {
		return nil, err
	}
	s, err := findMaps(cg)
	if err == nil && s != nil && (s.ports6 == nil && need6 || s.conns == nil && create) {
		s, err = reattach(s)
	}
	if err == nil && s == nil && create {
		s, err = attachShortcut(cg)
	}
	if err != nil || s == nil {
		cg.Close()
		return nil, err
	}
	return s, nil
}

// reattach replaces old programs by today's, copying their entries.
func reattach(old *shortcut) (*shortcut, error) {
	var entries []Entry
	var owners []uint64
	err := old.maps().each(func(e Entry, own uint64) { entries, owners = append(entries, e), append(owners, own) })
	old.closeMaps()
	if err != nil {
		return nil, fmt.Errorf("reading the loopback shortcuts: %w", err)
	}
	s, err := attachShortcut(old.cgroup)
	if err != nil {
		return nil, err
	}
	for i, e := range entries {
		if err := s.maps().put(e, owners[i]); err != nil {
			s.Close()
			return nil, fmt.Errorf("copying the loopback shortcut %s -> %s: %w", e.Host, e.Target, err)
		}
	}
	return s, nil
}

// attached opens nsrun's programs of one attach type on the cgroup, by
// name; the caller closes them.
func attached(cg *os.File, typ ebpf.AttachType, name string) ([]*ebpf.Program, error) {
	res, err := link.QueryPrograms(link.QueryOptions{Target: int(cg.Fd()), Attach: typ})
	if err != nil {
		return nil, fmt.Errorf("%w: listing the programs on %s: %v", ErrUnavailable, cg.Name(), err)
	}
	var out []*ebpf.Program
	for _, p := range res.Programs {
		prog, err := ebpf.NewProgramFromID(p.ID)
		if err != nil {
			continue // detached meanwhile
		}
		if info, err := prog.Info(); err == nil && info.Name == name {
			out = append(out, prog)
		} else {
			prog.Close()
		}
	}
	return out, nil
}

func closeAll(progs []*ebpf.Program) {
	for _, p := range progs {
		p.Close()
	}
}

// findMaps opens the port maps of nsrun's connect programs on the
// cgroup, or returns nil when there are none.
func findMaps(cg *os.File) (*shortcut, error) {
	ports, err := findMap(cg, ebpf.AttachCGroupInet4Connect, progConnect, mapPorts)
	if err != nil || ports == nil {
		return nil, err
	}
	s := &shortcut{cgroup: cg, ports: ports}
	for _, m := range []struct {
		to   **ebpf.Map
		typ  ebpf.AttachType
		prog string
		name string
	}{
		{&s.ports6, ebpf.AttachCGroupInet6Connect, progConnect6, mapPorts6},
		{&s.conns, ebpf.AttachCGroupInet4Connect, progConnect, mapConns},
		{&s.conns6, ebpf.AttachCGroupInet6Connect, progConnect6, mapConns6},
	} {
		if *m.to, err = findMap(cg, m.typ, m.prog, m.name); err != nil {
			s.closeMaps()
			return nil, err
		}
	}
	return s, nil
}

// findMap opens the map of that name of nsrun's connect program of that
// attach type; nil when the program or the map is not there.
func findMap(cg *os.File, typ ebpf.AttachType, prog, name string) (*ebpf.Map, error) {
	progs, err := attached(cg, typ, prog)
	defer closeAll(progs)
	if err != nil || len(progs) == 0 {
		return nil, err
	}
	info, err := progs[0].Info()
	if err != nil {
		return nil, fmt.Errorf("reading nsrun's program %s: %w", prog, err)
	}
	mapIDs, _ := info.MapIDs()
	for _, id := range mapIDs {
		m, err := ebpf.NewMapFromID(id)
		if err != nil {
			return nil, fmt.Errorf("opening the maps of nsrun's program %s: %w", prog, err)
		}
		if mi, err := m.Info(); err == nil && mi.Name == name {
			return m, nil
		}
		m.Close()
	}
	if name == mapPorts {
		return nil, fmt.Errorf("nsrun's connect program on %s has no %s map; remove it with 'nsrun down --all'", cg.Name(), mapPorts)
	}
	return nil, nil
}

// attachShortcut loads the maps and programs and attaches them to the
// cgroup, getpeername first so that no redirected socket misses it (and
// after detaching any program an nsrun killed while attaching left).
// The cgroup then holds them: they stay after nsrun exits.
// newPortMaps makes the port maps, IPv4 and IPv6.
func newPortMaps() (kernelMap, error) {
	key4, key6 := uint32(binary.Size(shortcutKey{})), uint32(binary.Size(shortcutKey6{}))
	var k kernelMap
	for _, m := range []struct {
		to         **ebpf.Map
		name, what string
		key, value uint32
	}{
		{&k.v4, mapPorts, "port map", key4, uint32(binary.Size(shortcutValue{}))},
		{&k.v6, mapPorts6, "IPv6 port map", key6, uint32(binary.Size(shortcutValue6{}))},
		{&k.c4, mapConns, "connection counters", key4, 8},
		{&k.c6, mapConns6, "IPv6 connection counters", key6, 8},
	} {
		var err error
		*m.to, err = ebpf.NewMap(&ebpf.MapSpec{
			Name: m.name, Type: ebpf.Hash, MaxEntries: 1 << 16, Flags: unix.BPF_F_NO_PREALLOC, KeySize: m.key, ValueSize: m.value,
		})
		if err != nil {
			k.close()
			return kernelMap{}, fmt.Errorf("%w: creating the %s: %v", ErrUnavailable, m.what, err)
		}
	}
	return k, nil
}

// close closes the maps there are.
func (k kernelMap) close() {
	for _, m := range []*ebpf.Map{k.v4, k.v6, k.c4, k.c6} {
		if m != nil {
			m.Close()
		}
	}
}

func attachShortcut(cg *os.File) (*shortcut, error) {
	if err := detachShortcut(cg); err != nil {
		return nil, err
	}
	cookie, err := nsexec.CurrentCookie() // nsrun's own network namespace: the host's
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	maps, err := newPortMaps()
	if err != nil {
		return nil, err
	}
	s := &shortcut{cgroup: cg, ports: maps.v4, ports6: maps.v6, conns: maps.c4, conns6: maps.c6}
	peers, err := newPeersMap()
	if err != nil {
		s.closeMaps()
		return nil, err
	}
	defer peers.Close()
	for _, p := range []struct {
		name   string
		attach ebpf.AttachType
		insns  asm.Instructions
	}{
		{progGetpeername, ebpf.AttachCgroupInet4GetPeername, getpeernameProgram(peers, false)},
		{progGetpeername6, ebpf.AttachCgroupInet6GetPeername, getpeernameProgram(peers, true)},
		{progConnect6, ebpf.AttachCGroupInet6Connect, connect6(maps.v4, maps.v6, maps.c4, maps.c6, peers, cookie)},
		// The connect4 program last: findMaps knows the shortcut by it.
		{progConnect, ebpf.AttachCGroupInet4Connect, connect4(maps.v4, maps.c4, peers, cookie)},
	} {
		if err := attachProgram(cg, p.name, p.attach, p.insns); err != nil {
			s.closeMaps()
			return nil, errors.Join(err, detachShortcut(cg))
		}
	}
	return s, nil
}

// newPeersMap makes the socket storage where the connect program
// records the address a redirected socket asked for.
func newPeersMap() (*ebpf.Map, error) {
	u32 := &btf.Int{Name: "u32", Size: 4}
	m, err := ebpf.NewMap(&ebpf.MapSpec{
		Name: mapPeers, Type: ebpf.SkStorage, Flags: unix.BPF_F_NO_PREALLOC,
		KeySize: 4, ValueSize: peerSize,
		Key: &btf.Int{Name: "int", Size: 4, Encoding: btf.Signed},
		Value: &btf.Struct{Name: "nsrun_peer", Size: peerSize, Members: []btf.Member{
			{Name: "addr", Type: &btf.Array{Type: u32, Index: u32, Nelems: 4}},
			{Name: "port", Type: u32, Offset: 8 * peerPort},
		}},
	})
	if err != nil {
		return nil, fmt.Errorf("%w: creating the peer map: %v", ErrUnavailable, err)
	}
	return m, nil
}

// attachProgram loads a program and attaches it to the cgroup, which then
// holds it.
func attachProgram(cg *os.File, name string, typ ebpf.AttachType, insns asm.Instructions) error {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: name, Type: ebpf.CGroupSockAddr, AttachType: typ, Instructions: insns, License: "GPL",
	})
	if err != nil {
		return fmt.Errorf("%w: loading %s: %v", ErrUnavailable, name, err)
	}
	defer prog.Close()
	err = link.RawAttachProgram(link.RawAttachProgramOptions{Target: int(cg.Fd()), Program: prog, Attach: typ, Flags: unix.BPF_F_ALLOW_MULTI})
	if err != nil {
		return fmt.Errorf("%w: attaching %s to %s: %v", ErrUnavailable, name, cg.Name(), err)
	}
	return nil
}

// hooks are the programs' names and attach points, connect first: the
// order they are detached in.
var hooks = []struct {
	name   string
	attach ebpf.AttachType
}{
	{progConnect, ebpf.AttachCGroupInet4Connect},
	{progConnect6, ebpf.AttachCGroupInet6Connect},
	{progGetpeername, ebpf.AttachCgroupInet4GetPeername},
	{progGetpeername6, ebpf.AttachCgroupInet6GetPeername},
}

// detachShortcut detaches every nsrun program from the cgroup, connect
// first.
func detachShortcut(cg *os.File) error {
	var errs []error
	for _, p := range hooks {
		progs, err := attached(cg, p.attach, p.name)
		if err != nil {
			return err
		}
		for _, prog := range progs {
			err := link.RawDetachProgram(link.RawDetachProgramOptions{Target: int(cg.Fd()), Program: prog, Attach: p.attach})
			if err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("detaching %s from %s: %w", p.name, cg.Name(), err))
			}
		}
		closeAll(progs)
	}
	return errors.Join(errs...)
}
