package host

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nsrun/nsrun/internal/atomicfile"
	"github.com/nsrun/nsrun/veth"
)

// DumpCache keeps what a read of the host's links saw (veth.ReadHost):
// the address and route dumps, and the links asked for by name (those
// that exist and those that do not), in a file of the state directory Dir
// (host-dump), under the count of the host's changes that Changes returned
// when they were read. While the count stays the same they are what the
// kernel would say again: the count moves with every change to a link
// (its state, name or alias, made or removed), an address, a route or a
// next hop. With 10,000 namespaces the dumps are 20,000 entries, and each
// link asked for by name makes the kernel walk the host's namespace ids:
// most of what a read of one project's host links costs. What no message
// tells of is never taken from it: a link's counters (read when asked
// for), its route_localnet (read by its sysctl, see observeHost). A nil
// DumpCache, or one without Changes, keeps nothing.
type DumpCache struct {
	Dir string
	// Changes returns the count of changes to the host's links, addresses,
	// routes and next hops so far (the keeper counts them:
	// keeper.Changes); an error when it cannot be had.
	Changes func() (string, error)
}

// keptHost is what the file holds: the dumps, and the links read by name
// (nil: there is none of that name). A part of it (partial) holds only
// the links of some names and the addresses of those links, beside the
// whole of the rest.
type keptHost struct {
	dump    veth.HostDump
	links   map[string]*veth.Link
	partial bool
}

// dumpFile names the file.
func (c *DumpCache) dumpFile() string { return filepath.Join(c.Dir, "host-dump") }

// readHost is veth.ReadHost through the cache: the links named and the
// dumps are taken from what was kept at the count of now; what was not is
// read, and kept when the count did not move while it was. With stats,
// the links named are read for their counters whatever was kept.
func (c *DumpCache) readHost(names []string, stats bool) (veth.Host, error) {
	return c.readWith(names, stats, veth.ReadHost)
}

// readWith is readHost, reading the host with read.
func (c *DumpCache) readWith(names []string, stats bool, read func([]string, *veth.HostDump) (veth.Host, veth.HostDump, error)) (veth.Host, error) {
	if c == nil || c.Changes == nil {
		h, _, err := read(names, nil)
		return h, err
	}
	before, err := c.Changes()
	if err != nil {
		h, _, err := read(names, nil)
		return h, err
	}
	// Beside thousands of namespaces the file holds tens of thousands of
	// lines: a read takes the part its names need, and the whole only
	// when it reads the host again.
	data, _ := readText(c.dumpFile())
	kept, ok := loadDump(data, before, names)
	links, all := kept.known(names)
	if ok && all && !stats {
		return veth.HostOf(links, kept.dump), nil
	}
	if ok && !all {
		kept, ok = loadDump(data, before, nil) // a link not kept: every address may be its
	}
	var dump *veth.HostDump
	if ok {
		dump = &kept.dump
	}
	h, d, err := read(names, dump)
	if err != nil {
		return h, err
	}
	if after, err := c.Changes(); err == nil && after == before {
		learned := !ok
		now := map[string]*veth.Link{}
		for _, name := range names {
			now[name] = nil
			if l, found := h.Links[name]; found {
				l.Addrs, l.Addrs6, l.RouteLocalnet, l.Stats = nil, nil, "", nil // the dump's, the sysctl's, the moment's
				now[name] = &l
			}
			if was, known := kept.links[name]; !known || !sameLink(was, now[name]) {
				learned = true
			}
		}
		// A read for the counters of links kept already learns nothing:
		// beside thousands of namespaces, writing the file again cost a
		// status more than its read.
		if _, err := os.Stat(c.Dir); err == nil && learned { // no state directory: nothing is kept
			c.keep(before, data, kept, ok, d, now)
		}
	}
	return h, nil
}

// keep writes the file again with the links of now: in place of what
// was kept (ok; decoded whole from data if only a part was), else beside
// the dump d just read.
func (c *DumpCache) keep(at, data string, kept keptHost, ok bool, d veth.HostDump, now map[string]*veth.Link) {
	switch {
	case !ok:
		kept = keptHost{dump: d, links: map[string]*veth.Link{}}
	case kept.partial:
		if kept, ok = loadDump(data, at, nil); !ok {
			return // a line only the whole reads is not of this nsrun: the next read reads the host
		}
	}
	maps.Copy(kept.links, now)
	atomicfile.Write(c.dumpFile(), encodeDump(at, kept), 0o600) // a cache: a failed write only costs the next read
}

// sameLink reports whether two links as kept (nil: none) are the same.
func sameLink(a, b *veth.Link) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Name == b.Name && a.Alias == b.Alias && a.Type == b.Type && a.Index == b.Index && a.Up == b.Up
}

// known returns the links of names that were kept (those that exist), and
// whether every name was.
func (k keptHost) known(names []string) (map[string]veth.Link, bool) {
	links := make(map[string]veth.Link, len(names))
	for _, name := range names {
		l, ok := k.links[name]
		if !ok {
			return nil, false
		}
		if l != nil {
			links[name] = *l
		}
	}
	return links, true
}

// dumpHeader starts the file: its format's version, then the count.
const dumpHeader = "nsrun host dump 2 at "

// encodeDump writes what was kept as lines (JSON decodes ten times
// slower):
//
//	a INDEX PREFIX               an address of the link of that index
//	p PREFIX WHAT LINK           a prefix (LINK may be empty)
//	u LINK                       an uplink
//	r LINK                       a link of an IPv6 default route from router advertisements
//	l NAME INDEX UP TYPE ALIAS   a link read by name (UP: 1 or 0; ALIAS quoted)
//	m NAME                       a name no link has
func encodeDump(at string, k keptHost) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s%s\n", dumpHeader, at)
	d := k.dump
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
	for name, l := range k.links {
		if l == nil {
			fmt.Fprintf(&b, "m %s\n", name)
			continue
		}
		up := 0
		if l.Up {
			up = 1
		}
		fmt.Fprintf(&b, "l %s %d %d %s %s\n", name, l.Index, up, l.Type, strconv.Quote(l.Alias))
	}
	return b.Bytes()
}

// readText reads a file into a string, in one piece of memory: beside
// thousands of namespaces the kept dump is megabytes, and copying what
// os.ReadFile returns into a string cost as much as reading it.
func readText(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var b strings.Builder
	if st, err := f.Stat(); err == nil {
		b.Grow(int(st.Size()) + 1)
	}
	_, err = io.Copy(&b, f)
	return b.String(), err
}

// loadDump decodes what was kept (data, the file's), the part names need
// (nil: the whole); false when there is nothing of that count, or it
// cannot be read.
func loadDump(data string, at string, names []string) (keptHost, bool) {
	if data == "" {
		return keptHost{}, false
	}
	k, got, err := decodeDump(data, names)
	if err != nil || got != at {
		return keptHost{}, false
	}
	return k, true
}

// decodeDump reads what encodeDump wrote, and the count it was kept at:
// the whole, or with names the part they need (keptHost.partial): their
// links and those links' addresses, and the prefixes, uplinks and
// router advertisements' links.
func decodeDump(text string, names []string) (keptHost, string, error) {
	// The lines and fields are parts of the file's string: beside
	// thousands of namespaces it holds tens of thousands of lines, and a
	// string made for each, and the slice and the maps grown line by
	// line, took most of the decoding.
	header, body, _ := strings.Cut(text, "\n")
	if !strings.HasPrefix(header, dumpHeader) {
		return keptHost{}, "", fmt.Errorf("not a host dump of this nsrun")
	}
	var asked map[string]bool
	if names != nil {
		asked = make(map[string]bool, len(names))
		for _, name := range names {
			asked[name] = true
		}
	}
	fail := func(n int, err error) (keptHost, string, error) {
		return keptHost{}, "", fmt.Errorf("host dump line %d: %w", n, err)
	}
	// First the count of each kind, and the links asked for (all without
	// names): which addresses to take depends on their indexes.
	count := map[byte]int{}
	k := keptHost{links: map[string]*veth.Link{}, partial: names != nil}
	indexes := map[int]bool{}
	n := 1
	for line := range strings.Lines(body) {
		n++
		count[line[0]]++
		kind, rest, _ := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
		name, _, _ := strings.Cut(rest, " ")
		if (kind != "l" && kind != "m") || (asked != nil && !asked[name]) {
			continue
		}
		if kind == "m" {
			k.links[rest] = nil
			continue
		}
		l, err := decodeLink(rest)
		if err != nil {
			return fail(n, err)
		}
		k.links[l.Name] = l
		indexes[l.Index] = true
	}
	addrs := count['a']
	if names != nil {
		addrs = len(indexes)
	}
	k.dump = veth.HostDump{Addrs: make(map[int][]netip.Prefix, addrs), Prefixes: make([]veth.HostPrefix, 0, count['p'])}
	d := &k.dump
	n = 1
	for line := range strings.Lines(body) {
		n++
		kind, rest, _ := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
		var err error
		switch kind {
		case "a":
			index, prefix, _ := strings.Cut(rest, " ")
			var i int
			var p netip.Prefix
			if i, err = strconv.Atoi(index); err == nil && (asked == nil || indexes[i]) {
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
		case "l", "m":
		default:
			err = fmt.Errorf("unknown line")
		}
		if err != nil {
			return fail(n, err)
		}
	}
	return k, strings.TrimPrefix(header, dumpHeader), nil
}

// decodeLink reads "NAME INDEX UP TYPE ALIAS".
func decodeLink(s string) (*veth.Link, error) {
	f := strings.SplitN(s, " ", 5)
	if len(f) != 5 || (f[2] != "0" && f[2] != "1") {
		return nil, fmt.Errorf("not a link: %q", s)
	}
	index, err := strconv.Atoi(f[1])
	if err != nil {
		return nil, err
	}
	alias, err := strconv.Unquote(f[4])
	if err != nil {
		return nil, fmt.Errorf("alias %s: %w", f[4], err)
	}
	return &veth.Link{Name: f[0], Index: index, Up: f[2] == "1", Type: f[3], Alias: alias}, nil
}
