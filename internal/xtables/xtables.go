// Package xtables reads a digest of the kernel's x_tables rules, the
// tables iptables-legacy writes, straight from the kernel: the same two
// requests iptables-legacy-save makes (IPT_SO_GET_INFO, then
// IPT_SO_GET_ENTRIES for the table's blob), without a program. x_tables
// have no generation number and send no events; the digest stands in for
// one. It covers every byte of every rule but the packet and byte
// counters, so it changes with any change to the rules and not with
// traffic.
package xtables

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The kernel's structures (linux/netfilter_ipv4/ip_tables.h and
// netfilter_ipv6/ip6_tables.h); their sizes were checked with a C
// compiler against the uapi headers.
const (
	soGetInfo        = 64 // IPT_SO_GET_INFO, IP6T_SO_GET_INFO
	soGetEntries     = 65 // IPT_SO_GET_ENTRIES, IP6T_SO_GET_ENTRIES
	tableNameLen     = 32 // XT_TABLE_MAXNAMELEN
	sizeofGetInfo    = 84 // struct ipt_getinfo: name, valid_hooks, hook_entry[5], underflow[5], num_entries, size
	getInfoSizeAt    = 80
	sizeofGetEntries = 40 // struct ipt_get_entries: name, size, padding; the entries follow
	countersLen      = 16 // struct xt_counters: packets, bytes
)

// family is what differs between IPv4 and IPv6.
type family struct {
	domain, level int
	names         string // the kernel's list of the family's tables
	entry         int    // sizeof(struct ipt_entry), or ip6t_entry
	countersAt    int    // offsetof(counters)
	nextAt        int    // offsetof(next_offset)
}

var (
	v4 = family{unix.AF_INET, unix.IPPROTO_IP, "/proc/thread-self/net/ip_tables_names", 112, 96, 90}
	v6 = family{unix.AF_INET6, unix.IPPROTO_IPV6, "/proc/thread-self/net/ip6_tables_names", 168, 152, 142}
)

// Digest returns the digest of the x_tables rules of a family (IPv6 when
// ipv6) in the calling thread's network namespace: every table's rules
// and hooks, not its counters. It needs CAP_NET_ADMIN.
func Digest(ipv6 bool) (string, error) {
	if ipv6 {
		return v6.digest()
	}
	return v4.digest()
}

func (f family) digest() (string, error) {
	data, err := os.ReadFile(f.names)
	if errors.Is(err, os.ErrNotExist) {
		return "no x_tables", nil // the module is not loaded: no table
	}
	if err != nil {
		return "", fmt.Errorf("x_tables digest: %w", err)
	}
	names := strings.Fields(string(data))
	if len(names) == 0 {
		return "no x_tables", nil
	}
	fd, err := unix.Socket(f.domain, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return "", fmt.Errorf("x_tables digest: %w", err)
	}
	defer unix.Close(fd)
	h := sha256.New()
	for _, name := range names {
		blob, err := f.table(fd, name)
		if err != nil {
			return "", fmt.Errorf("x_tables digest of table %q: %w", name, err)
		}
		fmt.Fprintf(h, "%s %d\n", name, len(blob))
		h.Write(blob)
	}
	return "x_tables " + hex.EncodeToString(h.Sum(nil)), nil
}

// table returns a table's info and rules, counters zeroed.
func (f family) table(fd int, name string) ([]byte, error) {
	if len(name) >= tableNameLen {
		return nil, errors.New("name too long")
	}
	for range 5 { // the table may change between the two requests
		info := make([]byte, sizeofGetInfo)
		copy(info, name)
		if err := getsockopt(fd, f.level, soGetInfo, info); err != nil {
			return nil, err
		}
		size := binary.NativeEndian.Uint32(info[getInfoSizeAt:])
		get := make([]byte, sizeofGetEntries+int(size))
		copy(get, name)
		binary.NativeEndian.PutUint32(get[tableNameLen:], size)
		err := getsockopt(fd, f.level, soGetEntries, get)
		if errors.Is(err, unix.EAGAIN) {
			continue
		}
		if err != nil {
			return nil, err
		}
		entries := get[sizeofGetEntries:]
		if err := f.zeroCounters(entries); err != nil {
			return nil, err
		}
		return append(info, entries...), nil
	}
	return nil, errors.New("the table kept changing while it was read")
}

// zeroCounters walks the entries and zeroes each one's counters.
func (f family) zeroCounters(b []byte) error {
	for off := 0; off < len(b); {
		if len(b)-off < f.entry {
			return errors.New("a truncated entry")
		}
		next := int(binary.NativeEndian.Uint16(b[off+f.nextAt:]))
		if next < f.entry || next > len(b)-off {
			return fmt.Errorf("an entry of %d bytes", next)
		}
		clear(b[off+f.countersAt : off+f.countersAt+countersLen])
		off += next
	}
	return nil
}

func getsockopt(fd, level, opt int, buf []byte) error {
	n := uint32(len(buf))
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt),
		uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
	if errno != 0 {
		return errno
	}
	if int(n) != len(buf) {
		return fmt.Errorf("the kernel answered %d bytes, not %d", n, len(buf))
	}
	return nil
}
