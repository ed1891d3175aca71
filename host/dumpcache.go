package host

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nsrun/nsrun/internal/atomicfile"
	"github.com/nsrun/nsrun/veth"
)

// DumpCache keeps the host's address and route dumps (veth.HostDump) in
// a file of the state directory Dir (host-dump), under the count of the
// host's changes that Changes returned when they were read: while the
// count stays the same they are what the kernel would print again. With
// 10,000 namespaces the dumps are 20,000 entries, most of what a read of
// one project's host links costs. A nil DumpCache, or one without
// Changes, keeps nothing.
type DumpCache struct {
	Dir string
	// Changes returns the count of changes to the host's links, addresses,
	// routes and next hops so far (the keeper counts them:
	// keeper.Changes); an error when it cannot be had.
	Changes func() (string, error)
}

// dumpFile names the file.
func (c *DumpCache) dumpFile() string { return filepath.Join(c.Dir, "host-dump") }

// dumped returns the dump kept at the count of now, else what read
// returns, kept when the count did not move while it read.
func (c *DumpCache) dumped(read func() (veth.HostDump, error)) (veth.HostDump, error) {
	if c == nil || c.Changes == nil {
		return read()
	}
	before, err := c.Changes()
	if err != nil {
		return read()
	}
	if d, ok := loadDump(c.dumpFile(), before); ok {
		return d, nil
	}
	d, err := read()
	if err != nil {
		return d, err
	}
	if after, err := c.Changes(); err == nil && after == before {
		if _, err := os.Stat(c.Dir); err == nil { // no state directory: nothing is kept
			atomicfile.Write(c.dumpFile(), encodeDump(before, d), 0o600) // a cache: a failed write only costs the next read
		}
	}
	return d, nil
}

// dumpHeader starts the file: its format's version, then the count.
const dumpHeader = "nsrun host dump 1 at "

// encodeDump writes a dump as lines (JSON decodes ten times slower):
//
//	a INDEX PREFIX          an address of the link of that index
//	p PREFIX WHAT LINK      a prefix (LINK may be empty)
//	u LINK                  an uplink
//	r LINK                  a link of an IPv6 default route from router advertisements
func encodeDump(at string, d veth.HostDump) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s%s\n", dumpHeader, at)
	for i, addrs := range d.Addrs {
		for _, p := range addrs {
			fmt.Fprintf(&b, "a %d %s\n", i, p)
		}
	}
	for _, p := range d.Prefixes {
		fmt.Fprintf(&b, "p %s %s %s\n", p.Prefix, p.What, p.Link)
	}
	for _, l := range d.Uplinks {
		fmt.Fprintf(&b, "u %s\n", l)
	}
	for _, l := range d.RADefault {
		fmt.Fprintf(&b, "r %s\n", l)
	}
	return b.Bytes()
}

// loadDump reads the kept dump; false when there is none of that count,
// or it cannot be read.
func loadDump(path, at string) (veth.HostDump, bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return veth.HostDump{}, false
	}
	d, got, err := decodeDump(data)
	return d, err == nil && got == at
}

// decodeDump reads what encodeDump wrote, and the count it was kept at.
func decodeDump(data []byte) (veth.HostDump, string, error) {
	d := veth.HostDump{Addrs: map[int][]netip.Prefix{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), dumpHeader) {
		return d, "", fmt.Errorf("not a host dump of this nsrun")
	}
	at := strings.TrimPrefix(sc.Text(), dumpHeader)
	for n := 2; sc.Scan(); n++ {
		kind, rest, _ := strings.Cut(sc.Text(), " ")
		var err error
		switch kind {
		case "a":
			index, prefix, _ := strings.Cut(rest, " ")
			var i int
			var p netip.Prefix
			if i, err = strconv.Atoi(index); err == nil {
				if p, err = netip.ParsePrefix(prefix); err == nil {
					d.Addrs[i] = append(d.Addrs[i], p)
				}
			}
		case "p":
			prefix, rest, _ := strings.Cut(rest, " ")
			what, link, _ := strings.Cut(rest, " ")
			var p netip.Prefix
			if p, err = netip.ParsePrefix(prefix); err == nil {
				d.Prefixes = append(d.Prefixes, veth.HostPrefix{Prefix: p, What: what, Link: link})
			}
		case "u":
			d.Uplinks = append(d.Uplinks, rest)
		case "r":
			d.RADefault = append(d.RADefault, rest)
		default:
			err = fmt.Errorf("unknown line")
		}
		if err != nil {
			return d, "", fmt.Errorf("host dump line %d: %w", n, err)
		}
	}
	return d, at, sc.Err()
}
