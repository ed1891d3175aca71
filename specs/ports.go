package specs

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// ParsePort parses the short port form
// [HOST_IP:]HOST_PORT[-END]:PORT[-END][/tcp|/udp], e.g. "6000:8080",
// "127.0.0.1:6100:9090/udp", "[::1]:6000:8080" or "7000-7002:8000-8002".
// An IPv6 host address is written in brackets. Without a host address the
// port is published on every IPv4 address and, in a spec with ipv6: true,
// on every IPv6 address too (see Port.Both).
func ParsePort(s string) (Port, error) {
	p := Port{HostIP: netip.IPv4Unspecified(), Protocol: TCP}
	if strings.TrimSpace(s) == "" {
		return p, errors.New("port is empty; write HOST_PORT:PORT, e.g. 6000:8080")
	}
	rest := s
	if i := strings.LastIndexByte(rest, '/'); i >= 0 {
		proto, err := ParseProtocol(rest[i+1:])
		if err != nil {
			return p, err
		}
		p.Protocol, rest = proto, rest[:i]
	}
	hostIP, rest, err := cutHostIP(s, rest)
	if err != nil {
		return p, err
	}
	parts := strings.Split(rest, ":")
	switch {
	case len(parts) == 1:
		return p, fmt.Errorf("%q has no host port; write HOST_PORT:PORT, e.g. 6000:%s", s, rest)
	case hostIP.IsValid():
		p.HostIP = hostIP
	default:
		p.Both = true
	}
	if p.Published, err = parsePortRange(parts[0], "host port"); err != nil {
		return p, err
	}
	if p.Target, err = parsePortRange(parts[1], "port"); err != nil {
		return p, err
	}
	return p, checkRangeLengths(p)
}

// cutHostIP splits the host address off the front of a short form (s is
// the whole port, for messages): "[V6]:" or "V4:", given when more than
// one colon follows it.
func cutHostIP(s, rest string) (netip.Addr, string, error) {
	if strings.HasPrefix(rest, "[") {
		addr, after, ok := strings.Cut(rest[1:], "]")
		if !ok || !strings.HasPrefix(after, ":") {
			return netip.Addr{}, "", fmt.Errorf("%q: write an IPv6 host address in brackets followed by a colon, e.g. [::1]:6000:8080", s)
		}
		ip, err := ParseHostIP(addr)
		if err != nil {
			return netip.Addr{}, "", err
		}
		if !ip.Is6() {
			return netip.Addr{}, "", fmt.Errorf("%q: only IPv6 addresses go in brackets; write %s:%s", s, addr, after[1:])
		}
		return ip, after[1:], nil
	}
	parts := strings.Split(rest, ":")
	if len(parts) < 3 {
		return netip.Addr{}, rest, nil
	}
	host, after := strings.Join(parts[:len(parts)-2], ":"), strings.Join(parts[len(parts)-2:], ":")
	if ip, err := netip.ParseAddr(host); err == nil && ip.Is6() {
		return netip.Addr{}, "", fmt.Errorf("%q: an IPv6 host address goes in brackets; write [%s]:%s", s, host, after)
	}
	if len(parts) > 3 {
		return netip.Addr{}, "", fmt.Errorf("%q has too many parts; write [HOST_IP:]HOST_PORT:PORT, e.g. 127.0.0.1:6000:8080", s)
	}
	ip, err := ParseHostIP(host)
	if err != nil {
		return netip.Addr{}, "", err
	}
	return ip, after, nil
}

// ParseProtocol accepts "tcp" or "udp".
func ParseProtocol(s string) (Protocol, error) {
	switch Protocol(s) {
	case TCP, UDP:
		return Protocol(s), nil
	}
	return "", fmt.Errorf("protocol %q is not supported; use tcp or udp", s)
}

// ParseHostIP accepts the address a port is published on: IPv4, or IPv6
// without brackets (:: for every IPv6 address, ::1 for this machine).
func ParseHostIP(s string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("host address %q is not an IP address; use e.g. 0.0.0.0, 127.0.0.1, :: or ::1", s)
	}
	switch {
	case ip.Zone() != "":
		return netip.Addr{}, fmt.Errorf("host address %q has a zone; link-local host addresses are not supported, use a global or ULA address, :: or ::1", s)
	case ip.Is4In6():
		return netip.Addr{}, fmt.Errorf("host address %q is an IPv4-mapped address; write the IPv4 address %s", s, ip.Unmap())
	case ip.IsMulticast() || ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return netip.Addr{}, fmt.Errorf("host address %q cannot receive connections; use a unicast address such as 0.0.0.0 or 127.0.0.1", s)
	case ip.Is6() && ip.IsLinkLocalUnicast():
		return netip.Addr{}, fmt.Errorf("host address %q is link-local; link-local host addresses are not supported, use a global or ULA address, :: or ::1", s)
	}
	return ip, nil
}

// parsePortRange parses "PORT" or "FIRST-LAST"; what names the port in
// messages ("host port" or "port").
func parsePortRange(s, what string) (PortRange, error) {
	first, last, isRange := strings.Cut(s, "-")
	if first == "" && isRange {
		return PortRange{}, fmt.Errorf("%s %q is not a number; ports are 1-65535", what, s)
	}
	a, err := parsePortNumber(first, what)
	if err != nil {
		return PortRange{}, err
	}
	if !isRange {
		return PortRange{a, a}, nil
	}
	b, err := parsePortNumber(last, what)
	if err != nil {
		return PortRange{}, err
	}
	if b < a {
		return PortRange{}, fmt.Errorf("%s range %q ends before it starts; write LOW-HIGH", what, s)
	}
	return PortRange{a, b}, nil
}

func parsePortNumber(s, what string) (uint16, error) {
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%s %q is not a number; ports are 1-65535", what, s)
		}
	}
	if s == "" {
		return 0, fmt.Errorf("%s is missing; ports are 1-65535", what)
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("%s %s is out of range 1-65535", what, s)
	}
	return uint16(n), nil
}

func checkPortNumber(n int64, what string) (uint16, error) {
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("%s %d is out of range 1-65535", what, n)
	}
	return uint16(n), nil
}

func checkRangeLengths(p Port) error {
	if p.Published.Len() != p.Target.Len() {
		return fmt.Errorf("host ports %s (%d) and ports %s (%d) differ in length; publish ranges of equal length",
			p.Published, p.Published.Len(), p.Target, p.Target.Len())
	}
	return nil
}

// Full writes the port in the short form with every part, e.g.
// 0.0.0.0:6000:8080/tcp or [::]:6000:8080/tcp, so that it does not depend
// on defaults. Two ports publish the same thing exactly when their Full
// forms are equal.
func (p Port) Full() string {
	return fmt.Sprintf("%s:%s:%s/%s", HostIPText(p.HostIP), p.Published, p.Target, p.Protocol)
}

// Same reports whether two ports publish the same thing: their Full
// forms are equal (without writing them).
func (p Port) Same(q Port) bool {
	return p.HostIP == q.HostIP && p.Published == q.Published && p.Target == q.Target && p.Protocol == q.Protocol
}

// HostIPText writes a host address as the short form has it: IPv6 in
// brackets.
func HostIPText(ip netip.Addr) string {
	if ip.Is6() {
		return "[" + ip.String() + "]"
	}
	return ip.String()
}

// Is6 reports whether the port is published on IPv6.
func (p Port) Is6() bool { return p.HostIP.Is6() }

// MarshalText records a port in its full short form.
func (p Port) MarshalText() ([]byte, error) { return []byte(p.Full()), nil }

// UnmarshalText reads a port in the short form.
func (p *Port) UnmarshalText(text []byte) error {
	q, err := ParsePort(string(text))
	if err != nil {
		return err
	}
	*p = q
	return nil
}

// MustParsePort is ParsePort for ports known to be good (tests, constants):
// it panics on a bad one.
func MustParsePort(s string) Port {
	p, err := ParsePort(s)
	if err != nil {
		panic(err)
	}
	return p
}
