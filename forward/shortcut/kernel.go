package shortcut

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
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
	mapPorts6        = "nsrun_ports6"
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

// Offsets in struct bpf_sock_addr (include/uapi/linux/bpf.h).
const (
	ctxUserIP4  = 4
	ctxUserIP6  = 8 // u32 user_ip6[4]
	ctxUserPort = 24
	ctxProtocol = 36
	ctxSk       = 64
)

// The record in a redirected socket's storage of what its connect()
// asked for: the address's four words (an IPv4 one in the first), then
// the port; port 0 means none.
const (
	peerAddr = 0
	peerPort = 16
	peerSize = 20
)

// word is a 32-bit value as the context holds it, from its bytes in
// network order.
func word(b ...byte) int32 { return int32(binary.NativeEndian.Uint32(b)) }

// hostOnly jumps to miss unless the socket belongs to the host's network
// namespace (hostNetns is its cookie).
func hostOnly(hostNetns uint64, miss string) asm.Instructions {
	return asm.Instructions{
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.FnGetNetnsCookie.Call(),
		asm.LoadImm(asm.R1, int64(hostNetns), asm.DWord),
		asm.JNE.Reg(asm.R0, asm.R1, miss),
	}
}

// lookup looks the key at fp+off up in m, leaving the value (or 0) in R0.
func lookup(m *ebpf.Map, off int16) asm.Instructions {
	return asm.Instructions{
		asm.LoadMapPtr(asm.R1, m.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, int32(off)),
		asm.FnMapLookupElem.Call(),
	}
}

// peerRecord gets the socket's record into R0, creating it with create;
// it jumps to none when there is none.
func peerRecord(peers *ebpf.Map, create bool, none string) asm.Instructions {
	flags := int32(0)
	if create {
		flags = 1 // BPF_SK_STORAGE_GET_F_CREATE
	}
	return asm.Instructions{
		asm.LoadMapPtr(asm.R1, peers.FD()),
		asm.LoadMem(asm.R2, asm.R6, ctxSk, asm.DWord),
		asm.Mov.Imm(asm.R3, 0),
		asm.Mov.Imm(asm.R4, flags),
		asm.FnSkStorageGet.Call(),
		asm.JEq.Imm(asm.R0, 0, none),
	}
}

// missAndOut ends a connect program: a socket not redirected forgets an
// earlier connect() of its own; every connect() is let through.
func missAndOut(peers *ebpf.Map) asm.Instructions {
	insns := peerRecord(peers, false, "out")
	insns[0] = insns[0].WithSymbol("miss")
	return append(insns,
		asm.StoreImm(asm.R0, peerPort, 0, asm.Word),
		asm.Mov.Imm(asm.R0, 1).WithSymbol("out"),
		asm.Return(),
	)
}

// connect4 redirects a host TCP connect() of an AF_INET socket to a
// published port on 127.0.0.0/8, recording what was asked for.
func connect4(ports, peers *ebpf.Map, hostNetns uint64) asm.Instructions {
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R2, asm.R6, ctxProtocol, asm.Word),
		asm.JNE.Imm(asm.R2, unix.IPPROTO_TCP, "out"),
		asm.LoadMem(asm.R7, asm.R6, ctxUserIP4, asm.Word),
	}
	insns = append(insns, loopback4(ports, peers, hostNetns, ctxUserIP4, "4")...)
	return append(insns, missAndOut(peers)...)
}

// loopback4 is the IPv4 part of the connect programs: R7 holds the IPv4
// address, which the context holds at addr (user_ip4, or the last word of
// user_ip6 for a v4-mapped one); the record keeps the context's address
// words as they were.
func loopback4(ports, peers *ebpf.Map, hostNetns uint64, addr int16, tag string) asm.Instructions {
	insns := asm.Instructions{
		asm.Mov.Reg32(asm.R2, asm.R7),
		asm.And.Imm32(asm.R2, word(255, 0, 0, 0)),
		asm.JNE.Imm32(asm.R2, word(127, 0, 0, 0), "miss"),
	}
	insns = append(insns, hostOnly(hostNetns, "miss")...)
	insns = append(insns,
		// The exact address first, then the port on every address.
		asm.LoadMem(asm.R8, asm.R6, ctxUserPort, asm.Word),
		asm.StoreMem(asm.RFP, -8, asm.R7, asm.Word),
		asm.StoreMem(asm.RFP, -4, asm.R8, asm.Word),
	)
	insns = append(insns, lookup(ports, -8)...)
	insns = append(insns, asm.JNE.Imm(asm.R0, 0, "hit"+tag), asm.StoreImm(asm.RFP, -8, 0, asm.Word))
	insns = append(insns, lookup(ports, -8)...)
	insns = append(insns, asm.JEq.Imm(asm.R0, 0, "miss"), asm.Mov.Reg(asm.R9, asm.R0).WithSymbol("hit"+tag))
	insns = append(insns, peerRecord(peers, true, "redirect"+tag)...)
	for off := int16(ctxUserIP6); off < ctxUserIP6+16 && addr != ctxUserIP4; off += 4 {
		insns = append(insns, asm.LoadMem(asm.R2, asm.R6, off, asm.Word), asm.StoreMem(asm.R0, peerAddr+off-ctxUserIP6, asm.R2, asm.Word))
	}
	if addr == ctxUserIP4 {
		insns = append(insns, asm.StoreMem(asm.R0, peerAddr, asm.R7, asm.Word))
	}
	return append(insns,
		asm.StoreMem(asm.R0, peerPort, asm.R8, asm.Word),
		asm.LoadMem(asm.R2, asm.R9, 0, asm.Word).WithSymbol("redirect"+tag),
		asm.StoreMem(asm.R6, addr, asm.R2, asm.Word),
		asm.LoadMem(asm.R2, asm.R9, 4, asm.Word),
		asm.StoreMem(asm.R6, ctxUserPort, asm.R2, asm.Word),
		asm.Ja.Label("out"),
	)
}

// connect6 redirects a host TCP connect() of an AF_INET6 socket: to
// [::1]:PORT published on IPv6, to the namespace's IPv6 address (ports6);
// to a v4-mapped ::ffff:127.x.y.z:PORT published on IPv4 (a dual-stack
// client of 127.0.0.1), to ::ffff:<namespace's IPv4> (ports).
func connect6(ports, ports6, peers *ebpf.Map, hostNetns uint64) asm.Instructions {
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R2, asm.R6, ctxProtocol, asm.Word),
		asm.JNE.Imm(asm.R2, unix.IPPROTO_TCP, "out"),
		asm.LoadMem(asm.R2, asm.R6, ctxUserIP6, asm.Word),
		asm.JNE.Imm32(asm.R2, 0, "miss"),
		asm.LoadMem(asm.R2, asm.R6, ctxUserIP6+4, asm.Word),
		asm.JNE.Imm32(asm.R2, 0, "miss"),
		asm.LoadMem(asm.R2, asm.R6, ctxUserIP6+8, asm.Word),
		asm.JEq.Imm32(asm.R2, word(0, 0, 0xff, 0xff), "mapped"),
		asm.JNE.Imm32(asm.R2, 0, "miss"),
		asm.LoadMem(asm.R2, asm.R6, ctxUserIP6+12, asm.Word),
		asm.JNE.Imm32(asm.R2, word(0, 0, 0, 1), "miss"),
	}
	// [::1]: the key is ::1 and the port, then :: and the port.
	insns = append(insns, hostOnly(hostNetns, "miss")...)
	insns = append(insns,
		asm.LoadMem(asm.R8, asm.R6, ctxUserPort, asm.Word),
		asm.StoreImm(asm.RFP, -20, 0, asm.Word),
		asm.StoreImm(asm.RFP, -16, 0, asm.Word),
		asm.StoreImm(asm.RFP, -12, 0, asm.Word),
		asm.StoreImm(asm.RFP, -8, int64(word(0, 0, 0, 1)), asm.Word),
		asm.StoreMem(asm.RFP, -4, asm.R8, asm.Word),
	)
	insns = append(insns, lookup(ports6, -20)...)
	insns = append(insns, asm.JNE.Imm(asm.R0, 0, "hit6"), asm.StoreImm(asm.RFP, -8, 0, asm.Word))
	insns = append(insns, lookup(ports6, -20)...)
	insns = append(insns, asm.JEq.Imm(asm.R0, 0, "miss"), asm.Mov.Reg(asm.R9, asm.R0).WithSymbol("hit6"))
	insns = append(insns, peerRecord(peers, true, "redirect6")...)
	insns = append(insns,
		asm.StoreImm(asm.R0, peerAddr, 0, asm.Word),
		asm.StoreImm(asm.R0, peerAddr+4, 0, asm.Word),
		asm.StoreImm(asm.R0, peerAddr+8, 0, asm.Word),
		asm.StoreImm(asm.R0, peerAddr+12, int64(word(0, 0, 0, 1)), asm.Word),
		asm.StoreMem(asm.R0, peerPort, asm.R8, asm.Word),
	)
	for i := int16(0); i < 4; i++ {
		ins := asm.LoadMem(asm.R2, asm.R9, 4*i, asm.Word)
		if i == 0 {
			ins = ins.WithSymbol("redirect6")
		}
		insns = append(insns, ins, asm.StoreMem(asm.R6, ctxUserIP6+4*i, asm.R2, asm.Word))
	}
	insns = append(insns,
		asm.LoadMem(asm.R2, asm.R9, 16, asm.Word),
		asm.StoreMem(asm.R6, ctxUserPort, asm.R2, asm.Word),
		asm.Ja.Label("out"),
		asm.LoadMem(asm.R7, asm.R6, ctxUserIP6+12, asm.Word).WithSymbol("mapped"),
	)
	insns = append(insns, loopback4(ports, peers, hostNetns, ctxUserIP6+12, "4")...)
	return append(insns, missAndOut(peers)...)
}

// getpeernameProgram gives a redirected socket's peer as the address its
// connect() asked for: the first word of the record for AF_INET, all four
// for AF_INET6.
func getpeernameProgram(peers *ebpf.Map, inet6 bool) asm.Instructions {
	insns := asm.Instructions{asm.Mov.Reg(asm.R6, asm.R1)}
	insns = append(insns, peerRecord(peers, false, "out")...)
	insns = append(insns,
		asm.LoadMem(asm.R2, asm.R0, peerPort, asm.Word),
		asm.JEq.Imm(asm.R2, 0, "out"),
		asm.StoreMem(asm.R6, ctxUserPort, asm.R2, asm.Word),
	)
	if inet6 {
		for i := int16(0); i < 4; i++ {
			insns = append(insns, asm.LoadMem(asm.R2, asm.R0, peerAddr+4*i, asm.Word), asm.StoreMem(asm.R6, ctxUserIP6+4*i, asm.R2, asm.Word))
		}
	} else {
		insns = append(insns, asm.LoadMem(asm.R2, asm.R0, peerAddr, asm.Word), asm.StoreMem(asm.R6, ctxUserIP4, asm.R2, asm.Word))
	}
	return append(insns, asm.Mov.Imm(asm.R0, 1).WithSymbol("out"), asm.Return())
}

// shortcut is the attached programs' port map, and the cgroup they are
// attached to.
type shortcut struct {
	cgroup *os.File
	ports  *ebpf.Map
	ports6 *ebpf.Map // nil where an nsrun from before [::1] attached the programs
}

func (s *shortcut) Close() {
	s.ports.Close()
	if s.ports6 != nil {
		s.ports6.Close()
	}
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
// returns nil. With need6, programs attached by an nsrun from before
// [::1] was served (no IPv6 port map) are attached anew, their entries
// kept.
func openShortcut(create, need6 bool) (*shortcut, error) {
	cg, err := openCgroup()
	if err != nil {
		return nil, err
	}
	s, err := findMaps(cg)
	if err == nil && s != nil && s.ports6 == nil && need6 {
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
	err := kernelMap{old.ports, nil}.each(func(e Entry, own uint64) { entries, owners = append(entries, e), append(owners, own) })
	old.ports.Close()
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
	ports6, err := findMap(cg, ebpf.AttachCGroupInet6Connect, progConnect6, mapPorts6)
	if err != nil {
		ports.Close()
		return nil, err
	}
	return &shortcut{cgroup: cg, ports: ports, ports6: ports6}, nil
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
func attachShortcut(cg *os.File) (*shortcut, error) {
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
	ports6, err := ebpf.NewMap(&ebpf.MapSpec{
		Name: mapPorts6, Type: ebpf.Hash, MaxEntries: 1 << 16, Flags: unix.BPF_F_NO_PREALLOC,
		KeySize: uint32(binary.Size(shortcutKey6{})), ValueSize: uint32(binary.Size(shortcutValue6{})),
	})
	if err != nil {
		ports.Close()
		return nil, fmt.Errorf("%w: creating the IPv6 port map: %v", ErrUnavailable, err)
	}
	s := &shortcut{cgroup: cg, ports: ports, ports6: ports6}
	peers, err := newPeersMap()
	if err != nil {
		s.ports.Close()
		s.ports6.Close()
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
		{progConnect6, ebpf.AttachCGroupInet6Connect, connect6(ports, ports6, peers, cookie)},
		// The connect4 program last: findMaps knows the shortcut by it.
		{progConnect, ebpf.AttachCGroupInet4Connect, connect4(ports, peers, cookie)},
	} {
		if err := attachProgram(cg, p.name, p.attach, p.insns); err != nil {
			s.ports.Close()
			s.ports6.Close()
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

// kernelMap is the kernel's port maps, IPv4 and IPv6 (nil when the
// attached programs have none).
type kernelMap struct{ v4, v6 *ebpf.Map }

func (s *shortcut) maps() kernelMap { return kernelMap{s.ports, s.ports6} }

func (k kernelMap) put(e Entry, own uint64) error {
	if e.Host.Addr().Is4() {
		return k.v4.Put(entry(e, own))
	}
	if k.v6 == nil {
		return fmt.Errorf("%w: the attached programs have no IPv6 port map", ErrUnavailable)
	}
	return k.v6.Put(entry6(e, own))
}

func (k kernelMap) delete(host netip.AddrPort) error {
	var err error
	if host.Addr().Is4() {
		key, _ := entry(Entry{Host: host, Target: host}, 0)
		err = k.v4.Delete(key)
	} else if k.v6 != nil {
		key, _ := entry6(Entry{Host: host, Target: host}, 0)
		err = k.v6.Delete(key)
	}
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return err
	}
	return nil
}

func (k kernelMap) each(fn func(Entry, uint64)) error {
	var key shortcutKey
	var v shortcutValue
	it := k.v4.Iterate()
	for it.Next(&key, &v) {
		fn(Entry{Host: fromSockAddr(key.Addr, key.Port), Target: fromSockAddr(v.Addr, v.Port)}, v.Owner)
	}
	if err := it.Err(); err != nil || k.v6 == nil {
		return err
	}
	var key6 shortcutKey6
	var v6 shortcutValue6
	it = k.v6.Iterate()
	for it.Next(&key6, &v6) {
		fn(Entry{Host: fromSockAddr6(key6.Addr, key6.Port), Target: fromSockAddr6(v6.Addr, v6.Port)}, v6.Owner)
	}
	return it.Err()
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
	defer sc.ports.Close()
	if sc.ports6 != nil {
		defer sc.ports6.Close()
	}
	t.Supported = true
	if err := sc.maps().each(func(e Entry, own uint64) { t.Entries[e] = own }); err != nil {
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

// fromSockAddr6 is the inverse of sockAddr6.
func fromSockAddr6(addr [4]uint32, port uint32) netip.AddrPort {
	var a [16]byte
	for i, w := range addr {
		binary.NativeEndian.PutUint32(a[4*i:], w)
	}
	return netip.AddrPortFrom(netip.AddrFrom16(a), fromSockAddr(0, port).Port())
}
