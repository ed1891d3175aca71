package forward

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/nsrun/nsrun/internal/quote"
	"github.com/nsrun/nsrun/specs"
)

// Listener is a socket on the host bound to a port: a listening TCP
// socket, or any bound UDP socket.
type Listener struct {
	Protocol specs.Protocol
	Addr     netip.Addr // unspecified (0.0.0.0 or ::) means every address
	Port     uint16
	Inode    uint64
	PID      int    // 0 when unknown
	Command  string // the process's name, when known
}

// Blocks reports whether the listener would lose traffic to a DNAT of p:
// same protocol, a port in p's range, and a common host address.
func (l Listener) Blocks(p specs.Port) bool {
	if l.Protocol != p.Protocol || l.Port < p.Published.First || l.Port > p.Published.Last {
		return false
	}
	a := l.Addr.Unmap()
	switch {
	case a.Is4() && p.Is6():
		return false // an IPv4 socket gets no IPv6
	case a.Is6() && !a.IsUnspecified() && !p.Is6():
		return false // nor does a socket on one IPv6 address get IPv4
	}
	// A socket on :: may be dual-stack: it gets both.
	return a.IsUnspecified() || p.HostIP.IsUnspecified() || a == p.HostIP
}

// String names the listener for messages, e.g. "python3 (pid 4242)"; a
// process name that is not plain is quoted (it is the process's to
// choose).
func (l Listener) String() string {
	if l.PID == 0 {
		return fmt.Sprintf("a process (socket inode %d)", l.Inode)
	}
	return fmt.Sprintf("%s (pid %d)", quote.Name(l.Command), l.PID)
}

// Listeners lists the host's sockets bound to any of the ports (all of
// them when ports is nil), from /proc/net/{tcp,udp}{,6}, each with the
// process that holds it when it can be found.
func Listeners(ports []specs.Port) ([]Listener, error) {
	var out []Listener
	for _, src := range []struct {
		file  string
		proto specs.Protocol
	}{{"tcp", specs.TCP}, {"tcp6", specs.TCP}, {"udp", specs.UDP}, {"udp6", specs.UDP}} {
		f, err := os.Open(filepath.Join("/proc/net", src.file))
		if os.IsNotExist(err) {
			continue // no IPv6
		}
		if err != nil {
			return nil, fmt.Errorf("reading bound sockets: %w", err)
		}
		ls, err := ParseProcNet(f, src.proto)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("/proc/net/%s: %w", src.file, err)
		}
		for _, l := range ls {
			if ports == nil || slices.ContainsFunc(ports, l.Blocks) {
				out = append(out, l)
			}
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	owners := socketOwners() // every process's descriptors: only when needed
	for i := range out {
		if pid, ok := owners[out[i].Inode]; ok {
			out[i].PID = pid
			comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
			out[i].Command = strings.TrimSpace(string(comm))
		}
	}
	return out, nil
}

// ParseProcNet parses /proc/net/{tcp,udp}{,6}: TCP sockets in LISTEN
// state, and UDP sockets that are bound and not connected.
func ParseProcNet(r io.Reader, proto specs.Protocol) ([]Listener, error) {
	var out []Listener
	sc := bufio.NewScanner(r)
	sc.Scan() // header
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 10 {
			continue
		}
		state := f[3]
		if (proto == specs.TCP && state != "0A") || (proto == specs.UDP && state != "07") {
			continue
		}
		addr, port, err := parseHexAddr(f[1])
		if err != nil {
			return nil, err
		}
		inode, _ := strconv.ParseUint(f[9], 10, 64)
		out = append(out, Listener{Protocol: proto, Addr: addr, Port: port, Inode: inode})
	}
	return out, sc.Err()
}

// parseHexAddr parses "0100007F:1770": an address in 32-bit words of host
// (little-endian) byte order, then the port in hex.
func parseHexAddr(s string) (netip.Addr, uint16, error) {
	a, p, ok := strings.Cut(s, ":")
	raw, err := hex.DecodeString(a)
	if !ok || err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.Addr{}, 0, fmt.Errorf("bad socket address %q", s)
	}
	for i := 0; i < len(raw); i += 4 {
		raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("bad socket port %q", s)
	}
	addr, _ := netip.AddrFromSlice(raw)
	return addr, uint16(port), nil
}

// socketOwners maps socket inodes to a PID that holds them.
func socketOwners() map[uint64]int {
	owners := map[uint64]int{}
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range fds {
		link, err := os.Readlink(fd)
		if err != nil || !strings.HasPrefix(link, "socket:[") {
			continue
		}
		inode, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]"), 10, 64)
		if err != nil {
			continue
		}
		pid, _ := strconv.Atoi(strings.Split(fd, "/")[2])
		owners[inode] = pid
	}
	return owners
}
