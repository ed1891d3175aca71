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
// "127.0.0.1:6100:9090/udp" or "7000-7002:8000-8002".
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
	if strings.HasPrefix(rest, "[") || strings.Count(rest, ":") > 2 {
		return p, fmt.Errorf("%q: IPv6 host addresses are not supported; use an IPv4 host_ip or leave it out", s)
	}
	parts := strings.Split(rest, ":")
	switch len(parts) {
	case 1:
		return p, fmt.Errorf("%q has no host port; write HOST_PORT:PORT, e.g. 6000:%s", s, rest)
	case 3:
		ip, err := ParseHostIP(parts[0])
		if err != nil {
			return p, err
		}
		p.HostIP, parts = ip, parts[1:]
	}
	var err error
	if p.Published, err = parsePortRange(parts[0], "host port"); err != nil {
		return p, err
	}
	if p.Target, err = parsePortRange(parts[1], "port"); err != nil {
		return p, err
	}
	return p, checkRangeLengths(p)
}

// ParseProtocol accepts "tcp" or "udp".
func ParseProtocol(s string) (Protocol, error) {
	switch Protocol(s) {
	case TCP, UDP:
		return Protocol(s), nil
	}
	return "", fmt.Errorf("protocol %q is not supported; use tcp or udp", s)
}

// ParseHostIP accepts the IPv4 address a port is published on.
func ParseHostIP(s string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("host address %q is not an IP address; use e.g. 0.0.0.0 or 127.0.0.1", s)
	}
	if !ip.Is4() {
		return netip.Addr{}, fmt.Errorf("host address %q: IPv6 host addresses are not supported; use an IPv4 address", s)
	}
	if ip.IsMulticast() || ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return netip.Addr{}, fmt.Errorf("host address %q cannot receive connections; use a unicast address such as 0.0.0.0 or 127.0.0.1", s)
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
// 0.0.0.0:6000:8080/tcp, so that it does not depend on defaults. Two ports
// publish the same thing exactly when their Full forms are equal.
func (p Port) Full() string {
	return fmt.Sprintf("%s:%s:%s/%s", p.HostIP, p.Published, p.Target, p.Protocol)
}

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
