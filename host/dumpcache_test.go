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
	"syscall"
	"testing"

	"github.com/nsrun/nsrun/internal/rtnl"
	"github.com/nsrun/nsrun/netns"
	"github.com/nsrun/nsrun/netns/nstest"
	"github.com/nsrun/nsrun/veth"
)

// TestDumpRoundTrip: what was kept reads back as it was written, the
// count it was kept at with it; a file of another format is refused.
func TestDumpRoundTrip(t *testing.T) {
	k := keptHost{
		dump: veth.HostDump{
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
		},
		links: map[string]*veth.Link{
			"eth0":     {Name: "eth0", Index: 2, Up: true, Type: "device", Alias: `an "alias" with spaces\nand a line`},
			"nsr-a":    {Name: "nsr-a", Index: 7, Type: "veth", Alias: "nsrun:p/a"},
			"nsr-gone": nil,
		},
	}
	got, at, err := decodeDump(string(encodeDump("k-12", k)), nil)
	if err != nil || at != "k-12" || fmt.Sprint(got.dump) != fmt.Sprint(k.dump) || len(got.links) != 3 || got.links["nsr-gone"] != nil ||
		fmt.Sprint(*got.links["eth0"]) != fmt.Sprint(*k.links["eth0"]) || fmt.Sprint(*got.links["nsr-a"]) != fmt.Sprint(*k.links["nsr-a"]) {
		t.Errorf("round trip: %+v at %q, %v\nwant %+v", got, at, err, k)
	}
	// The part some names need: their links and those links' addresses,
	// and every prefix.
	part, at, err := decodeDump(string(encodeDump("k-12", k)), []string{"nsr-a", "nsr-gone", "nsr-never"})
	if err != nil || at != "k-12" || !part.partial || len(part.links) != 2 || part.links["nsr-gone"] != nil || fmt.Sprint(*part.links["nsr-a"]) != fmt.Sprint(*k.links["nsr-a"]) ||
		fmt.Sprint(part.dump.Addrs) != fmt.Sprint(map[int][]netip.Prefix{7: k.dump.Addrs[7]}) || fmt.Sprint(part.dump.Prefixes) != fmt.Sprint(k.dump.Prefixes) ||
		fmt.Sprint(part.dump.Uplinks, part.dump.RADefault) != fmt.Sprint(k.dump.Uplinks, k.dump.RADefault) {
		t.Errorf("the part of nsr-a, nsr-gone, nsr-never: %+v at %q, %v\nwant nsr-a's link and addresses, nsr-gone missing, every prefix", part, at, err)
	}
	for _, bad := range []string{"", "{}", dumpHeader + "k\nx y\n", dumpHeader + "k\na 1 10.0.0.1\n", dumpHeader + "k\np nope route eth0\n",
		dumpHeader + "k\nl eth0 2 1 device\n", dumpHeader + "k\nl eth0 2 up device \"\"\n", dumpHeader + "k\nl eth0 2 1 device unquoted\n"} {
		if _, _, err := decodeDump(bad, nil); err == nil {
			t.Errorf("decodeDump(%q) took it", bad)
		}
	}
}

// TestDumpCacheSeesEveryChange reads a namespace's host side through a
// DumpCache counted by rtnl.Changes, as the keeper counts the host's: a
// read with nothing changed since the last one takes what was kept (a
// kept link altered by hand shows through), and every change made before
// a read is in what it reads: an address, a route, a link brought down,
// renamed, given an alias, a link made of a name asked for before,
// thousands of addresses at once; a read for the counters reads the links
// whatever was kept.
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
		read := func(stats bool, links ...string) veth.Host {
			t.Helper()
			h, err := cache.readWith(links, stats, func(names []string, kept *veth.HostDump) (veth.Host, veth.HostDump, error) {
				reads++
				return veth.ReadHost(names, kept)
			})
			if err != nil {
				t.Fatal(err)
			}
			return h
		}
		has := func(h veth.Host, prefix, link, what string) bool {
			return slices.Contains(h.Prefixes, veth.HostPrefix{Prefix: netip.MustParsePrefix(prefix), Link: link, What: what})
		}
		first := read(false, "d0", "x0")
		if reads != 1 || !has(first, "10.231.30.0/24", "d0", "address") || len(first.Links["d0"].Addrs) != 1 || !first.Links["d0"].Up || len(first.Links) != 1 {
			t.Fatalf("first read (%d reads): %+v", reads, first)
		}
		again := read(false, "d0", "x0")
		if reads != 1 || fmt.Sprint(again.Prefixes) != fmt.Sprint(first.Prefixes) || fmt.Sprint(again.Links["d0"].Addrs) != fmt.Sprint(first.Links["d0"].Addrs) || !again.Links["d0"].Up {
			t.Errorf("nothing changed: %d reads, %+v; want what was kept, %+v", reads, again, first)
		}
		// What was kept is what is read: a kept alias altered by hand shows.
		path := filepath.Join(cache.Dir, "host-dump")
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if err := os.WriteFile(path, []byte(strings.Replace(string(data), ` ""`, ` "by hand"`, 1)), 0o600); err != nil {
			return err
		}
		if h := read(false, "d0"); reads != 1 || h.Links["d0"].Alias != "by hand" {
			t.Errorf("a kept alias altered by hand: %d reads, alias %q; want it read from the file", reads, h.Links["d0"].Alias)
		}
		if h := read(true, "d0"); reads != 2 || h.Links["d0"].Alias != "" || h.Links["d0"].Stats == nil {
			t.Errorf("a read for the counters: %d reads, %+v; want the link read", reads, h.Links["d0"])
		}
		for _, c := range []struct {
			name   string
			change []string
			check  func(veth.Host) bool
		}{
			{"an address added", []string{"addr", "add", "10.231.31.1/24", "dev", "d0"}, func(h veth.Host) bool {
				return has(h, "10.231.31.0/24", "d0", "address") && len(h.Links["d0"].Addrs) == 2
			}},
			{"a route added", []string{"route", "add", "10.231.40.0/24", "dev", "d0"}, func(h veth.Host) bool { return has(h, "10.231.40.0/24", "d0", "route") }},
			{"an alias given", []string{"link", "set", "d0", "alias", "nsrun:p/d0"}, func(h veth.Host) bool { return h.Links["d0"].Alias == "nsrun:p/d0" }},
			{"the link down", []string{"link", "set", "d0", "down"}, func(h veth.Host) bool { return !h.Links["d0"].Up }},
			{"the link up", []string{"link", "set", "d0", "up"}, func(h veth.Host) bool { return h.Links["d0"].Up }},
			{"its peer down and renamed", []string{"link", "set", "e0", "down", "name", "e1"}, func(h veth.Host) bool {
				return has(h, "10.231.50.0/24", "e1", "address") && !has(h, "10.231.50.0/24", "e0", "route")
			}},
			{"a link of a name asked for before", []string{"link", "add", "x0", "type", "veth", "peer", "name", "y0"}, func(h veth.Host) bool {
				_, ok := h.Links["x0"]
				return ok
			}},
		} {
			was := reads
			ipn(c.change...)
			if h := read(false, "d0", "x0"); reads != was+1 || !c.check(h) {
				t.Errorf("after %s: %d reads, %+v", c.name, reads-was, h)
			}
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
		was := reads
		if h := read(false, "d0"); reads != was+1 || len(h.Links["d0"].Addrs) != 3002 || !has(h, "10.232.11.250/32", "d0", "address") {
			t.Errorf("after 3,000 addresses at once: %d reads, %d addresses", reads-was, len(h.Links["d0"].Addrs))
		}
		if h := read(false, "d0"); reads != was+1 || len(h.Links["d0"].Addrs) != 3002 {
			t.Errorf("nothing changed since: %d reads, %d addresses; want what was kept", reads-was, len(h.Links["d0"].Addrs))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestDumpCacheKeepsOnlyAStillCount: what was read while the count moved
// is not kept; a name not asked for before is read, and kept beside the
// others; without Changes, or when the count cannot be had, every read
// reads.
func TestDumpCacheKeepsOnlyAStillCount(t *testing.T) {
	dir := t.TempDir()
	reads := 0
	read := func(names []string, kept *veth.HostDump) (veth.Host, veth.HostDump, error) {
		reads++
		links := map[string]veth.Link{}
		for i, n := range names {
			links[n] = veth.Link{Name: n, Index: i + 1, Up: true}
		}
		d := veth.HostDump{Uplinks: []string{"eth0"}}
		if kept != nil {
			d = *kept
		}
		return veth.HostOf(links, d), d, nil
	}
	n := 0
	moving := &DumpCache{Dir: dir, Changes: func() (string, error) { n++; return fmt.Sprint(n), nil }}
	for range 3 {
		if h, err := moving.readWith([]string{"a"}, false, read); err != nil || len(h.Uplinks) != 1 {
			t.Fatalf("read: %+v, %v", h, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "host-dump")); reads != 3 || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a count that moves each time: %d reads of 3, file %v; want 3, nothing kept", reads, err)
	}
	still := &DumpCache{Dir: dir, Changes: func() (string, error) { return "k-1", nil }}
	reads = 0
	for _, names := range [][]string{{"a"}, {"a"}, {"a", "b"}, {"b", "a"}, {"b"}} {
		if h, err := still.readWith(names, false, read); err != nil || len(h.Links) != len(names) {
			t.Fatalf("read %v: %+v, %v", names, h, err)
		}
	}
	if reads != 2 {
		t.Errorf("a, a, a b, b a, b at one count: %d reads; want 2 (a, then b)", reads)
	}
	// A read for the counters reads, but writes the file again only when
	// it learned something: a link not kept, or one that changed.
	file := filepath.Join(dir, "host-dump")
	inode := func() uint64 {
		t.Helper()
		st, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		return st.Sys().(*syscall.Stat_t).Ino
	}
	was := inode()
	reads = 0
	if _, err := still.readWith([]string{"a", "b"}, true, read); err != nil || reads != 1 || inode() != was {
		t.Errorf("a read for the counters of kept links: %d reads, %v, file written again: %t; want 1 read, the file as it was", reads, err, inode() != was)
	}
	if _, err := still.readWith([]string{"a", "c"}, true, read); err != nil || inode() == was {
		t.Errorf("a read for the counters of a link not kept: %v, file written again: %t; want it written", err, inode() != was)
	}
	was = inode()
	renamed := func(names []string, kept *veth.HostDump) (veth.Host, veth.HostDump, error) {
		h, d, err := read(names, kept)
		l := h.Links["a"]
		l.Up = false
		h.Links["a"] = l
		return h, d, err
	}
	if _, err := still.readWith([]string{"a"}, true, renamed); err != nil || inode() == was {
		t.Errorf("a read for the counters of a link that went down: %v, file written again: %t; want it written", err, inode() != was)
	}
	if h, err := still.readWith([]string{"a"}, false, read); err != nil || h.Links["a"].Up {
		t.Errorf("after the link went down, the kept link is %+v, %v; want it down", h.Links["a"], err)
	}
	// That write, from a read of a's part, kept the others' links too.
	reads = 0
	if h, err := still.readWith([]string{"b", "c"}, false, read); err != nil || reads != 0 || len(h.Links) != 2 {
		t.Errorf("b and c after a's part was written again: %d reads, %+v, %v; want both kept", reads, h.Links, err)
	}
	var none *DumpCache
	for _, c := range []*DumpCache{none, {Dir: dir}, {Dir: dir, Changes: func() (string, error) { return "", fmt.Errorf("no keeper") }}} {
		reads = 0
		c.readWith([]string{"a"}, false, read)
		c.readWith([]string{"a"}, false, read)
		if reads != 2 {
			t.Errorf("%+v: %d reads of 2; want 2", c, reads)
		}
	}
}
