package shortcut

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
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
	mapPeers         = "nsrun_peers"
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

// sockAddr gives an address and port as struct bpf_sock_addr holds them.
func sockAddr(a [4]byte, port uint16) (uint32, uint32) {
	var p [2]byte
	binary.BigEndian.PutUint16(p[:], port)
	return binary.NativeEndian.Uint32(a[:]), uint32(binary.NativeEndian.Uint16(p[:]))
}

// owner identifies a project's entries.
func owner(project string) uint64 {
	sum := sha256.Sum256([]byte(project))
	return binary.BigEndian.Uint64(sum[:8])
}

// Offsets in struct bpf_sock_addr (include/uapi/linux/bpf.h).
const (
	ctxUserIP4  = 4
	ctxUserIP6  = 8 // u32 user_ip6[4]
	ctxUserPort = 24
	ctxProtocol = 36
	ctxSk       = 64
)

// family says which hook a program is for: connect4 and getpeername4
// see IPv4 addresses in user_ip4; connect6 and getpeername6 see, for an
// AF_INET6 socket talking IPv4 (a dual-stack client of 127.0.0.1), the
// v4-mapped address ::ffff:A.B.C.D, whose IPv4 is the last word of
// user_ip6.
type family struct {
	addr   int16 // the offset of the IPv4 address in the context
	mapped bool  // the address must be v4-mapped
}

var (
	inet4 = family{addr: ctxUserIP4}
	inet6 = family{addr: ctxUserIP6 + 12, mapped: true}
)

// connectProgram redirects a host TCP connect() to a published loopback
// port, and records in the socket's storage what was asked for; any
// other connect() of a socket clears that record.
func connectProgram(ports, peers *ebpf.Map, hostNetns uint64, f family) asm.Instructions {
	loopNet := binary.NativeEndian.Uint32([]byte{127, 0, 0, 0})
	loopMask := binary.NativeEndian.Uint32([]byte{255, 0, 0, 0})
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R2, asm.R6, ctxProtocol, asm.Word),
		asm.JNE.Imm(asm.R2, unix.IPPROTO_TCP, "out"),
	}
	if f.mapped {
		// ::ffff:0:0/96: the first words 0, 0 and 0x0000ffff.
		mappedWord := binary.NativeEndian.Uint32([]byte{0, 0, 0xff, 0xff})
		insns = append(insns,
			asm.LoadMem(asm.R2, asm.R6, ctxUserIP6, asm.Word),
			asm.JNE.Imm32(asm.R2, 0, "miss"),
			asm.LoadMem(asm.R2, asm.R6, ctxUserIP6+4, asm.Word),
			asm.JNE.Imm32(asm.R2, 0, "miss"),
			asm.LoadMem(asm.R2, asm.R6, ctxUserIP6+8, asm.Word),
			asm.JNE.Imm32(asm.R2, int32(mappedWord), "miss"),
		)
	}
	return append(insns, asm.Instructions{
		asm.LoadMem(asm.R7, asm.R6, f.addr, asm.Word),
		asm.LoadMem(asm.R8, asm.R6, ctxUserPort, asm.Word),
		asm.Mov.Reg32(asm.R2, asm.R7),
		asm.And.Imm32(asm.R2, int32(loopMask)),
		asm.JNE.Imm32(asm.R2, int32(loopNet), "miss"),
		// Only sockets of the host's own network namespace.
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.FnGetNetnsCookie.Call(),
		asm.LoadImm(asm.R1, int64(hostNetns), asm.DWord),
		asm.JNE.Reg(asm.R0, asm.R1, "miss"),
		// The exact address first, then the port on every address.
		asm.StoreMem(asm.RFP, -8, asm.R7, asm.Word),
		asm.StoreMem(asm.RFP, -4, asm.R8, asm.Word),
		asm.LoadMapPtr(asm.R1, ports.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -8),
		asm.FnMapLookupElem.Call(),
		asm.JNE.Imm(asm.R0, 0, "hit"),
		asm.StoreImm(asm.RFP, -8, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, ports.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -8),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "miss"),
		asm.Mov.Reg(asm.R9, asm.R0).WithSymbol("hit"),
		asm.LoadMapPtr(asm.R1, peers.FD()),
		asm.LoadMem(asm.R2, asm.R6, ctxSk, asm.DWord),
		asm.Mov.Imm(asm.R3, 0),
		asm.Mov.Imm(asm.R4, 1), // BPF_SK_STORAGE_GET_F_CREATE
		asm.FnSkStorageGet.Call(),
		asm.JEq.Imm(asm.R0, 0, "redirect"),
		asm.StoreMem(asm.R0, 0, asm.R7, asm.Word),
		asm.StoreMem(asm.R0, 4, asm.R8, asm.Word),
		asm.LoadMem(asm.R2, asm.R9, 0, asm.Word).WithSymbol("redirect"),
		asm.StoreMem(asm.R6, f.addr, asm.R2, asm.Word),
		asm.LoadMem(asm.R2, asm.R9, 4, asm.Word),
		asm.StoreMem(asm.R6, ctxUserPort, asm.R2, asm.Word),
		asm.Ja.Label("out"),
		// Not redirected: forget an earlier connect() of this socket.
		asm.LoadMapPtr(asm.R1, peers.FD()).WithSymbol("miss"),
		asm.LoadMem(asm.R2, asm.R6, ctxSk, asm.DWord),
		asm.Mov.Imm(asm.R3, 0),
		asm.Mov.Imm(asm.R4, 0),
		asm.FnSkStorageGet.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.StoreImm(asm.R0, 4, 0, asm.Word),
		asm.Mov.Imm(asm.R0, 1).WithSymbol("out"),
		asm.Return(),
	}...)
}

// getpeernameProgram gives a redirected socket's peer as the address its
// connect() asked for.
func getpeernameProgram(peers *ebpf.Map, f family) asm.Instructions {
	return asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMapPtr(asm.R1, peers.FD()),
		asm.LoadMem(asm.R2, asm.R6, ctxSk, asm.DWord),
		asm.Mov.Imm(asm.R3, 0),
		asm.Mov.Imm(asm.R4, 0),
		asm.FnSkStorageGet.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.LoadMem(asm.R2, asm.R0, 4, asm.Word),
		asm.JEq.Imm(asm.R2, 0, "out"),
		asm.StoreMem(asm.R6, ctxUserPort, asm.R2, asm.Word),
		asm.LoadMem(asm.R2, asm.R0, 0, asm.Word),
		asm.StoreMem(asm.R6, f.addr, asm.R2, asm.Word),
		asm.Mov.Imm(asm.R0, 1).WithSymbol("out"),
		asm.Return(),
	}
}

// shortcut is the attached programs' port map, and the cgroup they are
// attached to.
type shortcut struct {
	cgroup *os.File
	ports  *ebpf.Map
}

func (s *shortcut) Close() {
	s.ports.Close()
	s.cgroup.Close()
}

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
// returns nil.
func openShortcut(create bool) (*shortcut, error) {
	cg, err := openCgroup()
	if err != nil {
		return nil, err
	}
	ports, err := findPorts(cg)
	if err == nil && ports == nil && create {
		ports, err = attachShortcut(cg)
	}
	if err != nil || ports == nil {
		cg.Close()
		return nil, err
	}
	return &shortcut{cgroup: cg, ports: ports}, nil
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

// findPorts opens the port map of nsrun's connect program on the cgroup,
// or returns nil when there is none.
func findPorts(cg *os.File) (*ebpf.Map, error) {
	progs, err := attached(cg, ebpf.AttachCGroupInet4Connect, progConnect)
	defer closeAll(progs)
	if err != nil || len(progs) == 0 {
		return nil, err
	}
	info, err := progs[0].Info()
	if err != nil {
		return nil, fmt.Errorf("reading nsrun's connect program: %w", err)
	}
	mapIDs, _ := info.MapIDs()
	for _, id := range mapIDs {
		m, err := ebpf.NewMapFromID(id)
		if err != nil {
			return nil, fmt.Errorf("opening the maps of nsrun's connect program: %w", err)
		}
		if mi, err := m.Info(); err == nil && mi.Name == mapPorts {
			return m, nil
		}
		m.Close()
	}
	return nil, fmt.Errorf("nsrun's connect program on %s has no %s map; remove it with 'nsrun down --all'", cg.Name(), mapPorts)
}

// hostNetnsCookie returns the cookie of nsrun's own network namespace,
// the host's.
func hostNetnsCookie() (uint64, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	return unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
}

// attachShortcut loads the maps and programs and attaches them to the
// cgroup, getpeername first so that no redirected socket misses it (and
// after detaching any program an nsrun killed while attaching left).
// The cgroup then holds them: they stay after nsrun exits.
func attachShortcut(cg *os.File) (*ebpf.Map, error) {
	if err := detachShortcut(cg); err != nil {
		return nil, err
	}
	cookie, err := hostNetnsCookie()
	if err != nil {
		return nil, fmt.Errorf("%w: reading the network namespace's cookie: %v", ErrUnavailable, err)
	}
	ports, err := ebpf.NewMap(&ebpf.MapSpec{
		Name: mapPorts, Type: ebpf.Hash, MaxEntries: 1 << 16, Flags: unix.BPF_F_NO_PREALLOC,
		KeySize: uint32(binary.Size(shortcutKey{})), ValueSize: uint32(binary.Size(shortcutValue{})),
	})
	if err != nil {
		return nil, fmt.Errorf("%w: creating the port map: %v", ErrUnavailable, err)
	}
	peers, err := newPeersMap()
	if err != nil {
		ports.Close()
		return nil, err
	}
	defer peers.Close()
	for _, p := range []struct {
		name   string
		attach ebpf.AttachType
		insns  asm.Instructions
	}{
		{progGetpeername, ebpf.AttachCgroupInet4GetPeername, getpeernameProgram(peers, inet4)},
		{progGetpeername6, ebpf.AttachCgroupInet6GetPeername, getpeernameProgram(peers, inet6)},
		{progConnect6, ebpf.AttachCGroupInet6Connect, connectProgram(ports, peers, cookie, inet6)},
		// The connect4 program last: findPorts knows the shortcut by it.
		{progConnect, ebpf.AttachCGroupInet4Connect, connectProgram(ports, peers, cookie, inet4)},
	} {
		if err := attachProgram(cg, p.name, p.attach, p.insns); err != nil {
			ports.Close()
			return nil, errors.Join(err, detachShortcut(cg))
		}
	}
	return ports, nil
}

// newPeersMap makes the socket storage where the connect program
// records the address a redirected socket asked for.
func newPeersMap() (*ebpf.Map, error) {
	u32 := &btf.Int{Name: "u32", Size: 4}
	m, err := ebpf.NewMap(&ebpf.MapSpec{
		Name: mapPeers, Type: ebpf.SkStorage, Flags: unix.BPF_F_NO_PREALLOC,
		KeySize: 4, ValueSize: 8,
		Key: &btf.Int{Name: "int", Size: 4, Encoding: btf.Signed},
		Value: &btf.Struct{Name: "nsrun_peer", Size: 8, Members: []btf.Member{
			{Name: "addr", Type: u32}, {Name: "port", Type: u32, Offset: 32},
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

func entry(s Entry, own uint64) (shortcutKey, shortcutValue) {
	var k shortcutKey
	v := shortcutValue{Owner: own}
	k.Addr, k.Port = sockAddr(s.Host.Addr().As4(), s.Host.Port()) // 0.0.0.0: every loopback address
	v.Addr, v.Port = sockAddr(s.Target.Addr().As4(), s.Target.Port())
	return k, v
}

// Set makes the project's shortcuts exactly these: it loads and
// attaches the programs for the first shortcut of the host, and detaches
// them once the last is gone. It returns ErrUnavailable (wrapped) when
// the kernel cannot take them.
func Set(project string, want []Entry) error {
	s, err := openShortcut(len(want) > 0)
	if err != nil {
		return err
	}
	if s == nil {
		// No connect program, so no shortcut anywhere; a getpeername
		// program alone is left from an nsrun killed while attaching.
		return Sweep()
	}
	defer s.Close()
	left, err := reconcile(kernelMap{s.ports}, project, want)
	if err != nil || left > 0 {
		return err
	}
	return detachShortcut(s.cgroup)
}

// portMap is the port map as reconcile changes it.
type portMap interface {
	put(k shortcutKey, v shortcutValue) error
	delete(k shortcutKey) error
	each(fn func(shortcutKey, shortcutValue)) error
}

// reconcile makes the project's entries of the map exactly want, leaving
// other projects' alone, and returns how many entries the map holds then.
func reconcile(m portMap, project string, want []Entry) (int, error) {
	own := owner(project)
	keep := map[shortcutKey]bool{}
	for _, sc := range want {
		k, v := entry(sc, own)
		if err := m.put(k, v); err != nil {
			return 0, fmt.Errorf("adding the loopback shortcut %s -> %s: %w", sc.Host, sc.Target, err)
		}
		keep[k] = true
	}
	var stale []shortcutKey
	left := 0
	err := m.each(func(k shortcutKey, v shortcutValue) {
		if v.Owner == own && !keep[k] {
			stale = append(stale, k)
		} else {
			left++
		}
	})
	if err != nil {
		return 0, fmt.Errorf("reading the loopback shortcuts: %w", err)
	}
	for _, k := range stale {
		if err := m.delete(k); err != nil {
			return 0, fmt.Errorf("removing a loopback shortcut of project %s: %w", project, err)
		}
	}
	return left, nil
}

// kernelMap is the kernel's port map.
type kernelMap struct{ m *ebpf.Map }

func (k kernelMap) put(key shortcutKey, v shortcutValue) error { return k.m.Put(key, v) }
func (k kernelMap) delete(key shortcutKey) error {
	if err := k.m.Delete(key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return err
	}
	return nil
}
func (k kernelMap) each(fn func(shortcutKey, shortcutValue)) error {
	var key shortcutKey
	var v shortcutValue
	it := k.m.Iterate()
	for it.Next(&key, &v) {
		fn(key, v)
	}
	return it.Err()
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

// Read reads every entry of the shortcut's port map. Supported
// is false where the kernel cannot run the programs (no cgroup v2
// hierarchy, no cgroup socket-address programs): nothing is expected then.
func Read() (Table, error) {
	t := Table{Entries: map[Entry]uint64{}}
	cg, err := openCgroup()
	if errors.Is(err, ErrUnavailable) {
		return t, nil
	}
	if err != nil {
		return t, err
	}
	defer cg.Close()
	ports, err := findPorts(cg)
	if errors.Is(err, ErrUnavailable) {
		return t, nil
	}
	if err != nil {
		return t, err
	}
	if ports == nil { // not attached: could it be?
		t.Supported = features.HaveProgramType(ebpf.CGroupSockAddr) == nil
		return t, nil
	}
	defer ports.Close()
	t.Supported = true
	var k shortcutKey
	var v shortcutValue
	it := ports.Iterate()
	for it.Next(&k, &v) {
		t.Entries[Entry{Host: fromSockAddr(k.Addr, k.Port), Target: fromSockAddr(v.Addr, v.Port)}] = v.Owner
	}
	if err := it.Err(); err != nil {
		return t, fmt.Errorf("reading the loopback shortcuts: %w", err)
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
