package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nsrun/nsrun/netns/nstest"
	"github.com/nsrun/nsrun/veth"
)

// hostLinkOf names the host link labelled label.
func hostLinkOf(t *testing.T, label string) string {
	t.Helper()
	for _, line := range strings.Split(mustRun(t, "ip", "-o", "link", "show"), "\n") {
		if f := strings.Fields(line); len(f) > 1 && strings.Contains(line, " alias "+label) {
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			return name
		}
	}
	t.Fatalf("no host link has alias %s", label)
	return ""
}

// TestUpSeesEveryChange: an up right after a change inside a namespace
// sees it, whatever the change; nsrun's /etc/netns files are taken from
// the cache while unchanged (a kept digest altered by hand shows through)
// and read again after any change, one in place to the same size too.
func TestUpSeesEveryChange(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.DumpOnFailure(t)
	project := nstest.Name("pc")
	a, b := nstest.Name("pa"), nstest.Name("pb")
	spec := writeSpec(t, "pc.yaml", "name: "+project+"\nnamespaces:\n  "+a+": {ports: [\"16210:8080\"]}\n  "+b+": {}\n")
	dir := filepath.Dir(spec)
	t.Cleanup(func() { nsrunCmd(t, dir, "down", "-q", "-p", project) })
	up := func() bool {
		t.Helper()
		code, out, errOut := nsrunCmd(t, dir, "up", "-q", spec)
		if code != 0 {
			t.Fatalf("up: exit %d\n%s%s", code, out, errOut)
		}
		return strings.Contains(out, "is up to date")
	}
	ipn := func(ns string, args ...string) string {
		t.Helper()
		out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("ip -n %s %v: %v\n%s", ns, args, err, out)
		}
		return string(out)
	}
	up()
	address := strings.Fields(strings.SplitN(ipn(a, "-4", "-o", "addr", "show", "dev", "eth0"), "inet ", 2)[1])[0]

	// A kept digest altered by hand shows through an up: the cache is used.
	const path = "/run/nsrun/etc-cache"
	hosts := "/etc/netns/" + a + "/hosts"
	settle := func() {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			if st, err := os.Stat(hosts); err == nil && time.Since(statCtime(st)) > 1100*time.Millisecond {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s stays recent, or is missing", hosts)
			}
		}
	}
	settle()
	up() // reads the settled files, and keeps them
	data, err := os.ReadFile(path)
	lines := strings.SplitAfter(string(data), "\n")
	i := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, a+"\thosts\t") })
	if err != nil || i < 0 {
		t.Fatalf("%s keeps no hosts file of %s: %v\n%s", path, a, err, data)
	}
	fields := strings.Split(strings.TrimSuffix(lines[i], "\n"), "\t")
	fields[len(fields)-1] = strings.Repeat("ab", 32) // the digest
	lines[i] = strings.Join(fields, "\t") + "\n"
	if err := os.WriteFile(path, []byte(strings.Join(lines, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	if up() {
		t.Error("up with a kept digest altered by hand says up to date: the cache is not used")
	}
	if !up() {
		t.Error("the up after the altered digest's repair is not up to date")
	}

	// Every change inside a namespace is seen by the next up, at once.
	for _, change := range [][]string{
		{a, "addr", "del", address, "dev", "eth0"},
		{a, "route", "del", "default"},
		{b, "link", "set", "eth0", "down"},
		{b, "link", "set", "eth0", "mtu", "1400"}, // not nsrun's business: up to date
	} {
		up()
		ipn(change[0], change[1:]...)
		upToDate := up()
		if wantUpToDate := change[2] == "set" && change[4] == "mtu"; upToDate != wantUpToDate {
			t.Errorf("up right after %q: up to date %v, want %v", change, upToDate, wantUpToDate)
		}
		if !up() {
			t.Errorf("the up after the repair of %q is not up to date", change)
		}
	}
	if got := ipn(a, "-4", "-o", "addr", "show", "dev", "eth0"); !strings.Contains(got, address) {
		t.Errorf("%s's address %s is not back:\n%s", a, address, got)
	}
	if got := ipn(a, "route", "show", "default"); !strings.Contains(got, "default via") {
		t.Errorf("%s's default route is not back:\n%s", a, got)
	}
	if got := ipn(b, "link", "show", "eth0"); !strings.Contains(got, "state UP") && !strings.Contains(got, ",UP") {
		t.Errorf("%s's eth0 is not up again:\n%s", b, got)
	}

	// Every change to the host side of a pair is seen too: those the
	// keeper's count of the host's changes hears (the kept dumps and links
	// are used, see host.DumpCache), and route_localnet, which sends no
	// message and is read each time.
	link := hostLinkOf(t, veth.Label(project, a))
	hostAddress := strings.Fields(strings.SplitN(mustRun(t, "ip", "-4", "-o", "addr", "show", "dev", link), "inet ", 2)[1])[0]
	for _, change := range [][]string{
		{"ip", "link", "set", link, "down"},
		{"ip", "addr", "del", hostAddress, "dev", link},
		{"sysctl", "-qw", "net.ipv4.conf." + link + ".route_localnet=0"},
	} {
		up()
		mustRun(t, change...)
		if up() {
			t.Errorf("up right after %q says up to date", change)
		}
		if !up() {
			t.Errorf("the up after the repair of %q is not up to date", change)
		}
	}
	if _, err := os.Stat("/run/nsrun/host-dump"); err != nil {
		t.Errorf("no host dump was kept: %v", err)
	}

	// A hosts file changed in place, to the same size, once kept.
	settle()
	up() // kept now
	file, err := os.OpenFile(hosts, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(hosts)
	last := len(data) - 2 // a character of the last name
	if _, err := file.WriteAt([]byte{data[last] ^ 1}, int64(last)); err != nil {
		t.Fatal(err)
	}
	file.Close()
	if up() {
		t.Errorf("up after %s changed in place says up to date", hosts)
	}
	if after, _ := os.ReadFile(hosts); string(after) != string(data) {
		t.Errorf("%s is not written back:\n%s", hosts, after)
	}

	// A namespace deleted and made again, with nothing in it.
	up()
	up()
	if out, err := exec.Command("ip", "netns", "del", b).CombinedOutput(); err != nil {
		t.Fatalf("ip netns del: %v\n%s", err, out)
	}
	if out, err := exec.Command("ip", "netns", "add", b).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v\n%s", err, out)
	}
	if up() {
		t.Error("up after a namespace was made anew says up to date")
	}
	if got := ipn(b, "-4", "-o", "addr", "show", "dev", "eth0"); !strings.Contains(got, "inet ") {
		t.Errorf("%s has no address after the up:\n%s", b, got)
	}

	// The caches are not taken for projects: the last down removes them
	// with the state directory.
	if _, err := os.Stat("/run/nsrun/nftables.cache"); err != nil {
		t.Errorf("no nftables cache was kept: %v", err)
	}
	if code, out, errOut := nsrunCmd(t, dir, "down", "-q", "-p", project); code != 0 {
		t.Fatalf("down: exit %d\n%s%s", code, out, errOut)
	}
	records, _ := filepath.Glob("/run/nsrun/*/state.json")
	if _, err := os.Stat("/run/nsrun"); err == nil && len(records) == 0 {
		entries, _ := os.ReadDir("/run/nsrun")
		t.Errorf("no project is left, and /run/nsrun stays: %v", entries)
	}
}

// statCtime is a file's change time.
func statCtime(st os.FileInfo) time.Time {
	return time.Unix(0, st.Sys().(*syscall.Stat_t).Ctim.Nano())
}
