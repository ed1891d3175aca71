package host

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nsrun/nsrun/internal/rtnl"
	"github.com/nsrun/nsrun/netns"
	"github.com/nsrun/nsrun/netns/nstest"
	"github.com/nsrun/nsrun/veth"
)

// TestDumpRoundTrip: a dump reads back as it was written, the count it
// was kept at with it; a file of another format is refused.
func TestDumpRoundTrip(t *testing.T) {
	d := veth.HostDump{
		Addrs: map[int][]netip.Prefix{
			2: {netip.MustParsePrefix("10.0.0.1/24"), netip.MustParsePrefix("fd00::1/64")},
			7: {netip.MustParsePrefix("10.1.0.5/30")},
		},
		Prefixes: []veth.HostPrefix{
			{Prefix: netip.MustParsePrefix("10.0.0.0/24"), Link: "eth0", What: "address"},
			{Prefix: netip.MustParsePrefix("10.9.0.0/16"), What: "route"}, // a blackhole: no link
			{Prefix: netip.MustParsePrefix("fd00::/64"), Link: "eth0", What: "route"},
		},
		Uplinks:   []string{"eth0", "eth1"},
		RADefault: []string{"eth0"},
	}
	got, at, err := decodeDump(encodeDump("k-12", d))
	if err != nil || at != "k-12" || fmt.Sprint(got) != fmt.Sprint(d) {
		t.Errorf("round trip: %+v at %q, %v\nwant %+v", got, at, err, d)
	}
	for _, bad := range []string{"", "{}", dumpHeader + "k\nx y\n", dumpHeader + "k\na 1 10.0.0.1\n", dumpHeader + "k\np nope route eth0\n"} {
		if _, _, err := decodeDump([]byte(bad)); err == nil {
			t.Errorf("decodeDump(%q) took it", bad)
		}
	}
}

// TestDumpCacheSeesEveryChange reads a namespace's host side through a
// DumpCache counted by rtnl.Changes, as the keeper counts the host's: a
// read with nothing changed since the last one takes the kept dump, and
// every change made before a read (an address, a route, a link's name,
// thousands of addresses at once) is in what it reads.
func TestDumpCacheSeesEveryChange(t *testing.T) {
	nstest.RequireRoot(t)
	ns := nstest.Name("dc")
	if err := netns.Create(ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := netns.Delete(ns); err != nil {
			t.Error(err)
		}
	})
	ipn := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip -n %s %s: %v\n%s", ns, strings.Join(args, " "), err, out)
		}
	}
	ipn("link", "add", "d0", "type", "veth", "peer", "name", "e0")
	ipn("link", "set", "d0", "up")
	ipn("link", "set", "e0", "up")
	ipn("addr", "add", "10.231.30.1/24", "dev", "d0")
	ipn("addr", "add", "10.231.50.1/24", "dev", "e0")
	err := netns.Do(ns, func() error {
		changes, err := rtnl.WatchChanges()
		if err != nil {
			return err
		}
		defer changes.Close()
		cache := &DumpCache{Dir: t.TempDir(), Changes: func() (string, error) {
			n, err := changes.Count()
			return fmt.Sprint("test-", n), err
		}}
		reads := 0
		read := func(link string) veth.Host {
			t.Helper()
			h, err := veth.ReadHost([]string{link}, func(read func() (veth.HostDump, error)) (veth.HostDump, error) {
				return cache.dumped(func() (veth.HostDump, error) { reads++; return read() })
			})
			if err != nil {
				t.Fatal(err)
			}
			return h
		}
		has := func(h veth.Host, prefix, link, what string) bool {
			return slices.Contains(h.Prefixes, veth.HostPrefix{Prefix: netip.MustParsePrefix(prefix), Link: link, What: what})
		}
		first := read("d0")
		if reads != 1 || !has(first, "10.231.30.0/24", "d0", "address") || len(first.Links["d0"].Addrs) != 1 {
			t.Fatalf("first read (%d dumps): %+v", reads, first)
		}
		if again := read("d0"); reads != 1 || fmt.Sprint(again.Prefixes) != fmt.Sprint(first.Prefixes) || fmt.Sprint(again.Links["d0"].Addrs) != fmt.Sprint(first.Links["d0"].Addrs) {
			t.Errorf("nothing changed: %d dumps, %+v; want the kept one, %+v", reads, again, first)
		}
		ipn("addr", "add", "10.231.31.1/24", "dev", "d0")
		if h := read("d0"); reads != 2 || !has(h, "10.231.31.0/24", "d0", "address") || len(h.Links["d0"].Addrs) != 2 {
			t.Errorf("after an address was added: %d dumps, %+v", reads, h)
		}
		ipn("route", "add", "10.231.40.0/24", "dev", "d0")
		if h := read("d0"); reads != 3 || !has(h, "10.231.40.0/24", "d0", "route") {
			t.Errorf("after a route was added: %d dumps, %+v", reads, h)
		}
		ipn("link", "set", "e0", "down")
		ipn("link", "set", "e0", "name", "e1")
		if h := read("d0"); reads != 4 || !has(h, "10.231.50.0/24", "e1", "address") || has(h, "10.231.50.0/24", "e0", "route") {
			t.Errorf("after a link went down and was renamed: %d dumps, %+v", reads, h)
		}
		var batch []string
		for i := range 3000 {
			batch = append(batch, fmt.Sprintf("addr add 10.232.%d.%d/32 dev d0", i/250, i%250+1))
		}
		cmd := exec.Command("ip", "-n", ns, "-batch", "-")
		cmd.Stdin = strings.NewReader(strings.Join(batch, "\n") + "\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("ip -batch: %v\n%s", err, out)
		}
		if h := read("d0"); reads != 5 || len(h.Links["d0"].Addrs) != 3002 || !has(h, "10.232.11.250/32", "d0", "address") {
			t.Errorf("after 3,000 addresses at once: %d dumps, %d addresses", reads, len(h.Links["d0"].Addrs))
		}
		if h := read("d0"); reads != 5 || len(h.Links["d0"].Addrs) != 3002 {
			t.Errorf("nothing changed since: %d dumps, %d addresses; want the kept one", reads, len(h.Links["d0"].Addrs))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestDumpCacheKeepsOnlyAStillCount: a dump read while the count moved is
// not kept; without Changes, or when the count cannot be had, every read
// dumps.
func TestDumpCacheKeepsOnlyAStillCount(t *testing.T) {
	dir := t.TempDir()
	n := 0
	moving := &DumpCache{Dir: dir, Changes: func() (string, error) { n++; return fmt.Sprint(n), nil }}
	reads := 0
	read := func() (veth.HostDump, error) { reads++; return veth.HostDump{Uplinks: []string{"eth0"}}, nil }
	for range 3 {
		if d, err := moving.dumped(read); err != nil || len(d.Uplinks) != 1 {
			t.Fatalf("dumped: %+v, %v", d, err)
		}
	}
	if reads != 3 {
		t.Errorf("a count that moves each time: %d dumps of 3 reads; want 3", reads)
	}
	if _, err := os.Stat(filepath.Join(dir, "host-dump")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a dump read while the count moved was kept (%v)", err)
	}
	var none *DumpCache
	for _, c := range []*DumpCache{none, {Dir: dir}, {Dir: dir, Changes: func() (string, error) { return "", fmt.Errorf("no keeper") }}} {
		reads = 0
		c.dumped(read)
		c.dumped(read)
		if reads != 2 {
			t.Errorf("%+v: %d dumps of 2 reads; want 2", c, reads)
		}
	}
}
