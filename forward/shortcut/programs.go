package shortcut

// The shortcut's eBPF programs, written with cilium/ebpf's assembler. Each
// runs on the root cgroup for every socket of the host; a C-like sketch of
// what it does is above each.
//
// Conventions, the same in every program:
//   - R1 holds the context (struct bpf_sock_addr *ctx) on entry; R6 keeps
//     it for the program's life, since helper calls clobber R1-R5.
//   - R7 holds the IPv4 address examined, R8 the port connect() asked for
//     (both as the context holds them: network byte order), and R9 the
//     port map's value once one is found (where to redirect).
//   - R0 holds what a helper returns; a program returns 1 (let the call
//     through, changed or not).
//   - The stack holds the map key being looked up: for IPv4 fp-8 the
//     address and fp-4 the port (struct shortcutKey); for IPv6 fp-20 the
//     four address words and fp-4 the port (struct shortcutKey6).
//   - Labels: "out" returns 1; "miss" forgets an earlier redirect of the
//     socket (its record's port set to 0), then returns 1.

import (
	"encoding/binary"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

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

// count adds one to the counter in conns under the key at fp+off (the
// port map's key that was found), when there is one:
//
//	__u64 *n = bpf_map_lookup_elem(&nsrun_conns, &key);
//	if (n)
//		__sync_fetch_and_add(n, 1);
func count(conns *ebpf.Map, off int16, tag string) asm.Instructions {
	if conns == nil {
		return nil // the programs of an nsrun from before counters, as tests make them
	}
	return append(lookup(conns, off),
		asm.JEq.Imm(asm.R0, 0, "counted"+tag),
		asm.Mov.Imm(asm.R1, 1),
		asm.StoreXAdd(asm.R0, asm.R1, asm.DWord),              // *(R0+0) += R1, atomically
		asm.Mov.Reg(asm.R0, asm.R0).WithSymbol("counted"+tag), // nothing: where the jump lands
	)
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
// earlier connect() of its own; every connect() is let through:
//
//	miss:
//		p = bpf_sk_storage_get(&nsrun_peers, ctx->sk, 0, 0);
//		if (p)
//			p->port = 0;
//	out:
//		return 1;
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
// published port on 127.0.0.0/8, recording what was asked for:
//
//	int nsrun_connect4(struct bpf_sock_addr *ctx) {
//		if (ctx->protocol != IPPROTO_TCP)
//			return 1;
//		return loopback4(ctx, ctx->user_ip4);  // below; ends in miss or out
//	}
func connect4(ports, conns, peers *ebpf.Map, hostNetns uint64) asm.Instructions {
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R2, asm.R6, ctxProtocol, asm.Word),
		asm.JNE.Imm(asm.R2, unix.IPPROTO_TCP, "out"),
		asm.LoadMem(asm.R7, asm.R6, ctxUserIP4, asm.Word),
	}
	insns = append(insns, loopback4(ports, conns, peers, hostNetns, ctxUserIP4, "4")...)
	return append(insns, missAndOut(peers)...)
}

// loopback4 is the IPv4 part of the connect programs: R7 holds the IPv4
// address, which the context holds at addr (user_ip4, or the last word of
// user_ip6 for a v4-mapped one); the record keeps the context's address
// words as they were:
//
//	if ((ip & 0xff000000) != 127.0.0.0 || bpf_get_netns_cookie(ctx) != host)
//		goto miss;
//	struct shortcutKey key = {ip, ctx->user_port};
//	struct shortcutValue *to = bpf_map_lookup_elem(&nsrun_ports, &key);
//	if (!to) {
//		key.addr = 0;                      // the port on all of 127/8
//		to = bpf_map_lookup_elem(&nsrun_ports, &key);
//		if (!to)
//			goto miss;
//	}
//	count(&nsrun_conns, &key);             // below: the connections taken
//	struct nsrun_peer *p = bpf_sk_storage_get(&nsrun_peers, ctx->sk, 0, CREATE);
//	if (p) {                               // for getpeername
//		p->addr = the context's address words;
//		p->port = ctx->user_port;
//	}
//	*addr = to->addr;                      // user_ip4, or user_ip6[3]
//	ctx->user_port = to->port;
//	return 1;
func loopback4(ports, conns, peers *ebpf.Map, hostNetns uint64, addr int16, tag string) asm.Instructions {
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
	insns = append(insns, count(conns, -8, tag)...)
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
// client of 127.0.0.1), to ::ffff:<namespace's IPv4> (ports):
//
//	int nsrun_connect6(struct bpf_sock_addr *ctx) {
//		if (ctx->protocol != IPPROTO_TCP)
//			return 1;
//		if (ctx->user_ip6 is ::ffff:a.b.c.d)
//			return loopback4(ctx, ctx->user_ip6[3]);
//		if (ctx->user_ip6 != ::1 || bpf_get_netns_cookie(ctx) != host)
//			goto miss;
//		struct shortcutKey6 key = {::1, ctx->user_port};
//		struct shortcutValue6 *to = bpf_map_lookup_elem(&nsrun_ports6, &key);
//		if (!to) {
//			key.addr = ::;                 // published on every address
//			to = bpf_map_lookup_elem(&nsrun_ports6, &key);
//			if (!to)
//				goto miss;
//		}
//		count(&nsrun_conns6, &key);
//		record ::1 and the port in the socket's storage, as loopback4 does;
//		ctx->user_ip6 = to->addr;
//		ctx->user_port = to->port;
//		return 1;
//	}
func connect6(ports, ports6, conns, conns6, peers *ebpf.Map, hostNetns uint64) asm.Instructions {
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
	insns = append(insns, count(conns6, -20, "6")...)
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
	insns = append(insns, loopback4(ports, conns, peers, hostNetns, ctxUserIP6+12, "4")...)
	return append(insns, missAndOut(peers)...)
}

// getpeernameProgram gives a redirected socket's peer as the address its
// connect() asked for: the first word of the record for AF_INET, all four
// for AF_INET6:
//
//	int nsrun_peername4(struct bpf_sock_addr *ctx) {   // and _peername6
//		struct nsrun_peer *p = bpf_sk_storage_get(&nsrun_peers, ctx->sk, 0, 0);
//		if (p && p->port) {
//			ctx->user_port = p->port;
//			ctx->user_ip4 = p->addr[0];    // IPv6: ctx->user_ip6 = p->addr
//		}
//		return 1;
//	}
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
