package keeper

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/nsrun/nsrun/specs"
	"golang.org/x/sys/unix"
)

// The keeper holds every published host port: a socket of its own is
// bound to each (host address, port, protocol), and never listens, so a
// host process that binds the port later gets "address in use" instead of
// a socket that silently never sees the outside traffic, which DNAT takes
// first (as Docker keeps published ports bound). Holding changes no
// packet's way: DNAT and the loopback shortcut take a connection before
// any socket lookup, and a TCP socket that does not listen accepts none.

// HeldPort is one host port the keeper holds.
type HeldPort struct {
	Protocol specs.Protocol
	Addr     netip.AddrPort
}

func (h HeldPort) String() string { return h.Addr.String() + "/" + string(h.Protocol) }

// HeldPorts returns each host port of the ports, each once.
func HeldPorts(ports []specs.Port) []HeldPort {
	seen := map[HeldPort]bool{}
	var out []HeldPort
	for _, p := range ports {
		for port := int(p.Published.First); port <= int(p.Published.Last); port++ {
			h := HeldPort{Protocol: p.Protocol, Addr: netip.AddrPortFrom(p.HostIP, uint16(port))}
			if !seen[h] {
				seen[h] = true
				out = append(out, h)
			}
		}
	}
	return out
}

// Holder holds host ports.
type Holder struct {
	mu      sync.Mutex
	socks   map[HeldPort]int // the bound socket of each
	missing int              // the ports the last Hold could not bind
}

// Hold makes the holder hold exactly these ports: it binds the ones it
// does not hold yet, and closes those no longer wanted. It returns what it
// could not bind (a host process bound the port before nsrun published it:
// up refuses that, so it is a port a host process took in between).
func (h *Holder) Hold(want []HeldPort) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.socks == nil {
		h.socks = map[HeldPort]int{}
	}
	wanted := map[HeldPort]bool{}
	var errs []error
	for _, p := range want {
		wanted[p] = true
		if _, ok := h.socks[p]; ok {
			continue
		}
		fd, err := bindOnly(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("holding published port %s: %w; a host process bound it after up checked it: stop it (ss -tulpn names it), and nsrun's keeper holds the port within seconds", p, err))
			continue
		}
		h.socks[p] = fd
	}
	for p, fd := range h.socks {
		if !wanted[p] {
			unix.Close(fd)
			delete(h.socks, p)
		}
	}
	h.missing = len(errs)
	return errors.Join(errs...)
}

// Missing reports whether the last Hold left a port it could not bind:
// the keeper tries again every few seconds.
func (h *Holder) Missing() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.missing > 0
}

// Len is the number of ports held.
func (h *Holder) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.socks)
}

// Retry calls hold every period while the holder misses a port (a host
// process took it in between; once it lets go, the port is held), until
// ctx ends.
func (h *Holder) Retry(ctx context.Context, period time.Duration, hold func() error) {
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if h.Missing() {
				if err := hold(); err != nil {
					log.Print(err)
				}
			}
		}
	}
}

// bindOnly binds a socket to the port, without SO_REUSEADDR (so no later
// bind shares it) and with IP_FREEBIND (the host address may come later);
// an IPv6 one is IPv6 only, so [::]:P leaves 0.0.0.0:P to its own
// publication.
func bindOnly(p HeldPort) (int, error) {
	typ := unix.SOCK_STREAM
	if p.Protocol == specs.UDP {
		typ = unix.SOCK_DGRAM
	}
	addr, port := p.Addr.Addr().Unmap(), int(p.Addr.Port())
	var family int
	var sa unix.Sockaddr
	if addr.Is4() {
		family, sa = unix.AF_INET, &unix.SockaddrInet4{Port: port, Addr: addr.As4()}
	} else {
		family, sa = unix.AF_INET6, &unix.SockaddrInet6{Port: port, Addr: addr.As16()}
	}
	fd, err := unix.Socket(family, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	opts := [][2]int{{unix.SOL_IP, unix.IP_FREEBIND}}
	if family == unix.AF_INET6 {
		opts = [][2]int{{unix.SOL_IPV6, unix.IPV6_V6ONLY}, {unix.SOL_IPV6, unix.IPV6_FREEBIND}}
	}
	for _, o := range opts {
		if err := unix.SetsockoptInt(fd, o[0], o[1], 1); err != nil {
			unix.Close(fd)
			return -1, os.NewSyscallError("setsockopt", err)
		}
	}
	if p.Protocol == specs.UDP {
		// Nothing is ever read: a datagram that escapes DNAT is dropped at
		// once rather than queued.
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 0)
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return -1, os.NewSyscallError("bind", err)
	}
	return fd, nil
}
