// Package rtnl reads the links of a network namespace, their addresses
// and its routes through a NETLINK_ROUTE socket made inside the
// namespace, with one buffer the caller lends for every message.
//
// It exists for the reads of every namespace that up and status make: the
// netlink library allocates and clears 64 KiB for each message it
// receives, which for hundreds of namespaces was most of the memory an
// unchanged up touched, and a fifth of its CPU in page faults
// (BENCHMARKS.md). Changes still go through the library.
package rtnl

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"syscall"

	"github.com/nsrun/nsrun/internal/nsexec"
	"golang.org/x/sys/unix"
)

// BufferSize is the least buffer a Conn needs: the kernel fills a dump's
// messages up to the buffer its reader last offered, at most 32 KiB, and
// a single reply is one message of at most a page or two.
const BufferSize = 64 << 10

// Conn is a NETLINK_ROUTE socket inside one network namespace.
type Conn struct {
	fd  int
	seq uint32
	buf []byte
}

// Link is what Conn reads of a link.
type Link struct {
	Name, Alias string
	Kind        string // IFLA_INFO_KIND: "veth", "bridge", ...; "" for a device
	Index       int
	Up          bool // IFF_UP
	ParentIndex int  // IFLA_LINK: a veth's peer, in the peer's namespace
	// RouteLocalnet is the link's net.ipv4.conf.LINK.route_localnet, as
	// the link's IPv4 settings in the message say; "" when they are not
	// there (no IPv4 on the link).
	RouteLocalnet string
	// Stats are the link's counters (IFLA_STATS64); nil when the message
	// holds none.
	Stats *Stats
}

// Stats are a link's counters as /proc/net/dev shows them: the receive
// drops are those dropped and those missed.
type Stats struct {
	RxBytes, RxPackets, RxDropped uint64
	TxBytes, TxPackets, TxDropped uint64
}

// parseStats64 reads struct rtnl_link_stats64: rx_packets, tx_packets,
// rx_bytes, tx_bytes, rx_errors, tx_errors, rx_dropped, tx_dropped, ...,
// rx_missed_errors (the 16th); nil when it is short.
func parseStats64(v []byte) *Stats {
	if len(v) < 16*8 {
		return nil
	}
	n := func(i int) uint64 { return binary.NativeEndian.Uint64(v[8*i:]) }
	return &Stats{RxPackets: n(0), TxPackets: n(1), RxBytes: n(2), TxBytes: n(3), RxDropped: n(6) + n(15), TxDropped: n(7)}
}

// devconfRouteLocalnet is IPV4_DEVCONF_ROUTE_LOCALNET (linux/ip.h): the
// 26th value of IFLA_INET_CONF.
const devconfRouteLocalnet = 26

// Dial opens a socket inside the network namespace ns (an open nsfs
// file; nil: the calling thread's) that reads through buf, of at least
// BufferSize bytes, which the caller must not use until Close.
func Dial(ns *os.File, buf []byte) (*Conn, error) {
	if len(buf) < BufferSize {
		return nil, fmt.Errorf("rtnl: a buffer of %d bytes, less than %d", len(buf), BufferSize)
	}
	var fd int
	var err error
	if ns == nil {
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	} else {
		fd, err = nsexec.SocketIn(ns, unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	}
	if err != nil {
		return nil, err
	}
	c := &Conn{fd: fd, buf: buf}
	// Every reply comes as the answer to a request that was sent; the
	// timeout is for a kernel that never answers, not for waiting.
	tv := unix.NsecToTimeval(int64(30e9))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		c.Close()
		return nil, fmt.Errorf("rtnl: setting a receive timeout: %w", err)
	}
	// Strict checks (Linux 4.20 on) let the kernel send only the link's
	// addresses and routes; older kernels refuse, and the filters below
	// stay the only ones.
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_GET_STRICT_CHK, 1)
	return c, nil
}

// Close closes the socket.
func (c *Conn) Close() error { return unix.Close(c.fd) }

// Cookie returns the namespace's cookie (SO_NETNS_COOKIE, Linux 5.14 on).
func (c *Conn) Cookie() (uint64, error) { return nsexec.SocketCookie(c.fd) }

// Link reads the link of that name; false when there is none.
func (c *Conn) Link(name string) (Link, bool, error) {
	req := request(unix.RTM_GETLINK, 0, unix.SizeofIfInfomsg)
	req = appendAttr(req, unix.IFLA_IFNAME, append([]byte(name), 0))
	return c.getLink(req)
}

// LinkByIndex reads the link of that index; false when there is none.
func (c *Conn) LinkByIndex(index int) (Link, bool, error) {
	req := request(unix.RTM_GETLINK, 0, unix.SizeofIfInfomsg)
	binary.NativeEndian.PutUint32(req[unix.NLMSG_HDRLEN+4:], uint32(index)) // ifi_index
	return c.getLink(req)
}

func (c *Conn) getLink(req []byte) (Link, bool, error) {
	var out Link
	found := false
	err := c.do(req, func(typ uint16, b []byte) error {
		if typ != unix.RTM_NEWLINK {
			return nil
		}
		var err error
		out, err = parseLink(b)
		found = err == nil
		return err
	})
	if errors.Is(err, unix.ENODEV) {
		return Link{}, false, nil
	}
	return out, found, err
}

// Links lists every link. With thousands of veth pairs it is slow: for
// each veth the kernel names the namespace of its peer by walking every
// namespace id it holds (rtnl_fill_link_netnsid), so a dump takes the
// square of their number; Link and LinkByIndex ask for one.
func (c *Conn) Links() ([]Link, error) {
	req := request(unix.RTM_GETLINK, unix.NLM_F_DUMP, unix.SizeofIfInfomsg)
	var out []Link
	err := c.dump(req, unix.RTM_NEWLINK, func() { out = out[:0] }, func(b []byte) error {
		l, err := parseLink(b)
		out = append(out, l)
		return err
	})
	return out, err
}

// parseLink reads an RTM_NEWLINK message's body.
func parseLink(b []byte) (Link, error) {
	if len(b) < unix.SizeofIfInfomsg {
		return Link{}, errors.New("rtnl: a short link message")
	}
	out := Link{
		Index: int(int32(binary.NativeEndian.Uint32(b[4:8]))),
		Up:    binary.NativeEndian.Uint32(b[8:12])&unix.IFF_UP != 0,
	}
	var info, afSpec []byte
	err := eachAttr(b[unix.SizeofIfInfomsg:], func(t uint16, v []byte) {
		switch {
		case t == unix.IFLA_IFNAME:
			out.Name = cString(v)
		case t == unix.IFLA_IFALIAS:
			out.Alias = cString(v)
		case t == unix.IFLA_LINK && len(v) >= 4:
			out.ParentIndex = int(int32(binary.NativeEndian.Uint32(v)))
		case t == unix.IFLA_LINKINFO:
			info = v
		case t == unix.IFLA_AF_SPEC:
			afSpec = v
		case t == unix.IFLA_STATS64:
			out.Stats = parseStats64(v)
		}
	})
	if err == nil && info != nil {
		err = eachAttr(info, func(t uint16, v []byte) {
			if t == unix.IFLA_INFO_KIND {
				out.Kind = cString(v)
			}
		})
	}
	if err == nil && afSpec != nil {
		err = eachAttr(afSpec, func(family uint16, v []byte) {
			if family != unix.AF_INET {
				return
			}
			eachAttr(v, func(t uint16, conf []byte) {
				if at := 4 * (devconfRouteLocalnet - 1); t == unix.IFLA_INET_CONF && len(conf) >= at+4 {
					out.RouteLocalnet = fmt.Sprint(binary.NativeEndian.Uint32(conf[at:]))
				}
			})
		})
	}
	return out, err
}

// cString is a NUL-terminated attribute as a string.
func cString(v []byte) string {
	if i := slices.Index(v, 0); i >= 0 {
		v = v[:i]
	}
	return string(v)
}

// Addrs lists the addresses of the link of that index (0: of every
// link), both families, as address and prefix length: a point-to-point
// address as its local side, as `ip address` shows it.
func (c *Conn) Addrs(index int) ([]netip.Prefix, error) {
	var out []netip.Prefix
	err := c.eachAddr(index, func() { out = out[:0] }, func(a Addr) { out = append(out, a.Prefix) })
	return out, err
}

// Addr is an address as a dump of every link's shows it.
type Addr struct {
	Index  int // its link's
	Prefix netip.Prefix
	// Label is an IPv4 address's label: its link's name when it was
	// added, unless whoever added it gave another (`ip address add ...
	// label eth0:1`); "" for IPv6.
	Label string
}

// Addresses lists the addresses of every link. The kernel names no
// namespace in an address message: a dump costs one step per address.
func (c *Conn) Addresses() ([]Addr, error) {
	var out []Addr
	err := c.eachAddr(0, func() { out = out[:0] }, func(a Addr) { out = append(out, a) })
	return out, err
}

func (c *Conn) eachAddr(index int, reset func(), each func(Addr)) error {
	req := request(unix.RTM_GETADDR, unix.NLM_F_DUMP, unix.SizeofIfAddrmsg)
	binary.NativeEndian.PutUint32(req[unix.NLMSG_HDRLEN+4:], uint32(index))
	return c.dump(req, unix.RTM_NEWADDR, reset, func(b []byte) error {
		if len(b) < unix.SizeofIfAddrmsg {
			return nil
		}
		link := int(binary.NativeEndian.Uint32(b[4:8]))
		if index != 0 && link != index {
			return nil
		}
		bits := int(b[1])
		var addr, local []byte
		label := ""
		err := eachAttr(b[unix.SizeofIfAddrmsg:], func(t uint16, v []byte) {
			switch t {
			case unix.IFA_ADDRESS:
				addr = v
			case unix.IFA_LOCAL:
				local = v
			case unix.IFA_LABEL:
				label = cString(v)
			}
		})
		if local != nil {
			addr = local
		}
		if a, ok := netip.AddrFromSlice(addr); ok && netip.PrefixFrom(a, bits).IsValid() {
			each(Addr{Index: link, Prefix: netip.PrefixFrom(a, bits), Label: label})
		}
		return err
	})
}

// DefaultGateways lists the gateways of the default routes of the main
// table that leave through the link of that index, both families.
func (c *Conn) DefaultGateways(index int) ([]netip.Addr, error) {
	req := request(unix.RTM_GETROUTE, unix.NLM_F_DUMP, unix.SizeofRtMsg)
	req[unix.NLMSG_HDRLEN+4] = unix.RT_TABLE_MAIN // rtm_table
	req = appendAttr(req, unix.RTA_OIF, binary.NativeEndian.AppendUint32(nil, uint32(index)))
	var out []netip.Addr
	err := c.dump(req, unix.RTM_NEWROUTE, func() { out = out[:0] }, func(b []byte) error {
		if len(b) < unix.SizeofRtMsg || b[1] != 0 { // rtm_dst_len: a default route has none
			return nil
		}
		table := uint32(b[4])
		oif := -1
		var gw []byte
		err := eachAttr(b[unix.SizeofRtMsg:], func(t uint16, v []byte) {
			switch {
			case t == unix.RTA_TABLE && len(v) >= 4:
				table = binary.NativeEndian.Uint32(v)
			case t == unix.RTA_OIF && len(v) >= 4:
				oif = int(int32(binary.NativeEndian.Uint32(v)))
			case t == unix.RTA_GATEWAY:
				gw = v
			}
		})
		if a, ok := netip.AddrFromSlice(gw); ok && table == unix.RT_TABLE_MAIN && oif == index {
			out = append(out, a.Unmap())
		}
		return err
	})
	return out, err
}

// Route is what Conn reads of a unicast route.
type Route struct {
	Dst      netip.Prefix // 0.0.0.0/0 or ::/0 for a default route
	Table    uint32
	Protocol uint8 // who made it: RTPROT_KERNEL, RTPROT_RA, RTPROT_STATIC, ...
	Links    []int // the indexes of the links it leaves through: its own, or each next hop's
}

// UnicastRoutes lists the unicast routes of both families in every table
// (not the local, broadcast, blackhole, ... ones, which a strict socket
// leaves to the kernel to skip).
func (c *Conn) UnicastRoutes() ([]Route, error) {
	req := request(unix.RTM_GETROUTE, unix.NLM_F_DUMP, unix.SizeofRtMsg)
	req[unix.NLMSG_HDRLEN+7] = unix.RTN_UNICAST // rtm_type; rtm_family and rtm_table 0: all
	var out []Route
	err := c.dump(req, unix.RTM_NEWROUTE, func() { out = out[:0] }, func(b []byte) error {
		if len(b) < unix.SizeofRtMsg || b[7] != unix.RTN_UNICAST {
			return nil
		}
		r := Route{Table: uint32(b[4]), Protocol: b[5]}
		var dst []byte
		err := eachAttr(b[unix.SizeofRtMsg:], func(t uint16, v []byte) {
			switch {
			case t == unix.RTA_DST:
				dst = v
			case t == unix.RTA_TABLE && len(v) >= 4:
				r.Table = binary.NativeEndian.Uint32(v)
			case t == unix.RTA_OIF && len(v) >= 4:
				r.Links = append(r.Links, int(int32(binary.NativeEndian.Uint32(v))))
			case t == unix.RTA_MULTIPATH:
				r.Links = append(r.Links, nextHopLinks(v)...)
			}
		})
		a, ok := netip.AddrFromSlice(dst)
		switch {
		case dst == nil && b[0] == unix.AF_INET:
			a, ok = netip.IPv4Unspecified(), true
		case dst == nil && b[0] == unix.AF_INET6:
			a, ok = netip.IPv6Unspecified(), true
		}
		if r.Dst = netip.PrefixFrom(a, int(b[1])); ok && r.Dst.IsValid() {
			out = append(out, r)
		}
		return err
	})
	return out, err
}

// nextHopLinks reads the link of each next hop of RTA_MULTIPATH: a list
// of struct rtnexthop (length, flags, hops, ifindex), each followed by
// its attributes.
func nextHopLinks(b []byte) []int {
	var out []int
	for len(b) >= unix.SizeofRtNexthop {
		n := int(binary.NativeEndian.Uint16(b[0:2]))
		if n < unix.SizeofRtNexthop || n > len(b) {
			break
		}
		out = append(out, int(int32(binary.NativeEndian.Uint32(b[4:8]))))
		b = b[min(align(n), len(b)):]
	}
	return out
}

// request starts a request of that type: the netlink header, then a
// zeroed family header of size bytes.
func request(typ uint16, flags uint16, size int) []byte {
	b := make([]byte, unix.NLMSG_HDRLEN+size, unix.NLMSG_HDRLEN+size+64)
	binary.NativeEndian.PutUint16(b[4:6], typ)
	binary.NativeEndian.PutUint16(b[6:8], unix.NLM_F_REQUEST|flags)
	return b
}

// appendAttr appends a route attribute, padded to 4 bytes.
func appendAttr(b []byte, typ uint16, v []byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(unix.SizeofRtAttr+len(v)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, v...)
	for len(b)%unix.RTA_ALIGNTO != 0 {
		b = append(b, 0)
	}
	return b
}

// eachAttr calls f with each attribute's type (flags masked off) and value.
func eachAttr(b []byte, f func(typ uint16, v []byte)) error {
	for len(b) >= unix.SizeofRtAttr {
		n := int(binary.NativeEndian.Uint16(b[0:2]))
		if n < unix.SizeofRtAttr || n > len(b) {
			return errors.New("rtnl: a malformed attribute")
		}
		f(binary.NativeEndian.Uint16(b[2:4])&^(unix.NLA_F_NESTED|unix.NLA_F_NET_BYTEORDER), b[unix.SizeofRtAttr:n])
		b = b[min(align(n), len(b)):]
	}
	return nil
}

func align(n int) int { return (n + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }

// errInterrupted is a dump the kernel marked inconsistent: the table
// changed while it was read.
var errInterrupted = errors.New("rtnl: the dump was interrupted by a change")

// dump runs a dump request, calling each with every message of type typ;
// a dump a change interrupted is read again, after reset, up to five
// times, as the library does.
func (c *Conn) dump(req []byte, typ uint16, reset func(), each func([]byte) error) error {
	for i := 0; ; i++ {
		reset()
		err := c.do(req, func(t uint16, b []byte) error {
			if t != typ {
				return nil
			}
			return each(b)
		})
		if errors.Is(err, errInterrupted) && i < 5 {
			continue
		}
		return err
	}
}

// do sends req and reads its answer up to its end (NLMSG_DONE, an
// error, or a single reply), calling f with each message's type and body.
func (c *Conn) do(req []byte, f func(typ uint16, body []byte) error) error {
	c.seq++
	binary.NativeEndian.PutUint32(req[0:4], uint32(len(req)))
	binary.NativeEndian.PutUint32(req[8:12], c.seq)
	if err := unix.Sendto(c.fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("rtnl: sending a request: %w", err)
	}
	isDump := binary.NativeEndian.Uint16(req[6:8])&unix.NLM_F_DUMP == unix.NLM_F_DUMP
	interrupted := false
	for {
		n, _, err := unix.Recvfrom(c.fd, c.buf, unix.MSG_TRUNC)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("rtnl: reading an answer: %w", err)
		}
		if n > len(c.buf) {
			return fmt.Errorf("rtnl: an answer of %d bytes, more than the buffer's %d", n, len(c.buf))
		}
		b := c.buf[:n]
		for len(b) >= unix.NLMSG_HDRLEN {
			size := int(binary.NativeEndian.Uint32(b[0:4]))
			if size < unix.NLMSG_HDRLEN || size > len(b) {
				return errors.New("rtnl: a malformed answer")
			}
			typ := binary.NativeEndian.Uint16(b[4:6])
			flags := binary.NativeEndian.Uint16(b[6:8])
			seq := binary.NativeEndian.Uint32(b[8:12])
			body := b[unix.NLMSG_HDRLEN:size]
			b = b[min(align(size), len(b)):]
			if seq != c.seq {
				continue // the answer to an earlier request
			}
			interrupted = interrupted || flags&unix.NLM_F_DUMP_INTR != 0
			switch typ {
			case unix.NLMSG_DONE:
				if interrupted {
					return errInterrupted
				}
				return nil
			case unix.NLMSG_ERROR:
				if len(body) < 4 {
					return errors.New("rtnl: a malformed error")
				}
				if errno := -int32(binary.NativeEndian.Uint32(body[0:4])); errno != 0 {
					return syscall.Errno(errno)
				}
				return nil
			}
			if err := f(typ, body); err != nil {
				return err
			}
			if !isDump {
				return nil
			}
		}
	}
}

// Qdisc is what Conn reads of a queueing discipline.
type Qdisc struct {
	Index          int    // its link's
	Kind           string // TCA_KIND: "tbf", "netem", "noqueue", ...
	Handle, Parent uint32
	Options        []byte // TCA_OPTIONS as the kernel sent them; their layout is the kind's
}

// sizeofTcmsg is struct tcmsg's size (linux/rtnetlink.h).
const sizeofTcmsg = 20

// Qdiscs lists the qdiscs of every link of the namespace: a dump, as
// `tc qdisc show` makes. (A request for one qdisc, RTM_GETQDISC without
// NLM_F_DUMP, is answered only with NLM_F_ECHO, and then also sent to
// every listener of RTNLGRP_TC as if the qdisc were new.) The kernel
// names no namespace in a qdisc message: a dump costs a step per qdisc.
func (c *Conn) Qdiscs() ([]Qdisc, error) {
	req := request(unix.RTM_GETQDISC, unix.NLM_F_DUMP, sizeofTcmsg)
	var out []Qdisc
	err := c.dump(req, unix.RTM_NEWQDISC, func() { out = out[:0] }, func(b []byte) error {
		if len(b) < sizeofTcmsg {
			return nil
		}
		q := Qdisc{Index: int(int32(binary.NativeEndian.Uint32(b[4:8]))),
			Handle: binary.NativeEndian.Uint32(b[8:12]), Parent: binary.NativeEndian.Uint32(b[12:16])}
		err := EachAttr(b[sizeofTcmsg:], func(t uint16, v []byte) {
			switch t {
			case unix.TCA_KIND:
				q.Kind = cString(v)
			case unix.TCA_OPTIONS:
				q.Options = slices.Clone(v)
			}
		})
		out = append(out, q)
		return err
	})
	return out, err
}

// EachAttr calls f for each netlink attribute in b, its type without the
// nested and byte-order flags.
func EachAttr(b []byte, f func(typ uint16, v []byte)) error { return eachAttr(b, f) }

// AppendAttr appends a netlink attribute, padded to 4 bytes (another
// netlink family's messages have the same attributes).
func AppendAttr(b []byte, typ uint16, v []byte) []byte { return appendAttr(b, typ, v) }

// CString is a NUL-terminated attribute as a string.
func CString(v []byte) string { return cString(v) }
