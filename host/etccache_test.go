package host

import (
	"maps"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nsrun/nsrun/netns"
	"github.com/nsrun/nsrun/netns/nstest"
)

// TestReadEtcCached: a file of /etc/netns/NS is taken from the cache
// while its inode, size and change time are those kept, and read again
// after any change, one of the same size included; a file changed less
// than a second before it was read is not kept.
func TestReadEtcCached(t *testing.T) {
	nstest.RequireRoot(t)
	ns := nstest.Name("ec")
	dir := filepath.Join(netns.EtcDir, ns)
	_, err := os.Stat(netns.EtcDir)
	had := err == nil
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.RemoveAll(dir)
		if !had {
			os.Remove(netns.EtcDir) // once empty
		}
	})
	hosts := filepath.Join(dir, "hosts")
	write := func(content string) {
		t.Helper()
		f, err := os.OpenFile(hosts, os.O_WRONLY|os.O_CREATE, 0o644) // in place: same inode
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte(content), 0); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	// settle waits until the file's change time is more than a second old.
	settle := func() {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; {
			var st syscall.Stat_t
			if err := syscall.Stat(hosts, &st); err != nil {
				t.Fatal(err)
			}
			if time.Since(time.Unix(0, st.Ctim.Nano())) > 1100*time.Millisecond {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("the file's change time stays recent")
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	buf := make([]byte, 64<<10)
	write(EtcMarker + "10.0.0.1 a\n")
	if files, keep := readEtcCached(ns, buf, nil); files["hosts"] != EtcFileOf(EtcMarker+"10.0.0.1 a\n") || len(keep) != 0 {
		t.Fatalf("a file just written: %v, kept %v; want it read and not kept", files, keep)
	}
	settle()
	files, keep := readEtcCached(ns, buf, nil)
	if f, ok := keep["hosts"].file(); files["hosts"] != EtcFileOf(EtcMarker+"10.0.0.1 a\n") || !ok || f != files["hosts"] {
		t.Fatalf("a settled file: %v, kept %v; want it read and kept", files, keep)
	}
	// A kept entry altered by hand shows through: it is used.
	altered := keep["hosts"]
	altered.Sum = strings.Repeat("ab", 32)
	want, _ := altered.file()
	if got, _ := readEtcCached(ns, buf, map[string]cachedEtc{"hosts": altered}); got["hosts"] != want {
		t.Errorf("an unchanged file was read again: %v, want the kept %v", got["hosts"], want)
	}
	// What is kept but is not a digest is not used.
	broken := keep["hosts"]
	broken.Sum = "zz"
	if got, _ := readEtcCached(ns, buf, map[string]cachedEtc{"hosts": broken}); got["hosts"] != files["hosts"] {
		t.Errorf("a kept entry without a digest: %v, want the file read", got["hosts"])
	}
	// A change of the same size, in place.
	write(EtcMarker + "10.0.0.2 a\n")
	got, again := readEtcCached(ns, buf, map[string]cachedEtc{"hosts": altered})
	if got["hosts"] != EtcFileOf(EtcMarker+"10.0.0.2 a\n") {
		t.Errorf("after a change of the same size: %v, want the file read again", got["hosts"])
	}
	if _, ok := again["hosts"]; ok {
		t.Error("a file changed just now was kept")
	}
	if err := os.Remove(hosts); err != nil {
		t.Fatal(err)
	}
	if got, _ := readEtcCached(ns, buf, keep); len(got) != 0 {
		t.Errorf("a removed file: %v, want none", got)
	}
}

// TestEtcCacheSaveKeepsOthers: a save keeps what another query kept, and
// drops only the namespaces it queried that no longer exist.
func TestEtcCacheSaveKeepsOthers(t *testing.T) {
	c := &EtcCache{Dir: t.TempDir()}
	file := func(n uint64) map[string]cachedEtc { return map[string]cachedEtc{"hosts": {Inode: n, Sum: "x"}} }
	c.save(map[string]map[string]cachedEtc{"a": file(1), "b": file(2)}, []string{"a", "b"}, map[string]bool{"a": true, "b": true})
	c.save(map[string]map[string]cachedEtc{"c": file(3)}, []string{"a", "c"}, map[string]bool{"c": true})
	got := c.load([]string{"a", "b", "c"})
	if len(got) != 2 || got["b"]["hosts"].Inode != 2 || got["c"]["hosts"].Inode != 3 {
		t.Errorf("kept %v; want b (not queried) and c, not a (queried, gone)", got)
	}
	if got := c.load([]string{"c", "d"}); len(got) != 1 || got["c"]["hosts"] != file(3)["hosts"] {
		t.Errorf("a load of c and d took %v; want c's file alone", got)
	}
}

// TestEtcCacheLines: what is kept is read back as it was, each field;
// lines of another form, and a file of another version, keep nothing.
func TestEtcCacheLines(t *testing.T) {
	c := &EtcCache{Dir: t.TempDir()}
	files := map[string]map[string]cachedEtc{
		"a": {"hosts": {Inode: 1<<63 + 5, Size: 123, Ctime: 1765000000123456789, Ours: true, Sum: strings.Repeat("ab", 32)},
			"resolv.conf": {Inode: 7, Size: 0, Ctime: 1, Ours: false, Sum: strings.Repeat("01", 32)}},
		"b-1": {"hosts": {Inode: 9, Size: 10, Ctime: 11, Ours: true, Sum: strings.Repeat("cd", 32)}},
	}
	c.save(files, nil, nil)
	if got := c.load([]string{"a", "b-1"}); !maps.EqualFunc(got, files, maps.Equal) {
		t.Errorf("read back %v; want %v", got, files)
	}
	data, _ := os.ReadFile(c.path())
	mangled := strings.Replace(string(data), "\t1\t"+strings.Repeat("cd", 32), "\tyes\t"+strings.Repeat("cd", 32), 1)
	if err := os.WriteFile(c.path(), []byte(mangled+"a\thosts\tx\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := c.load([]string{"a", "b-1"}); len(got) != 1 || !maps.Equal(got["a"], files["a"]) {
		t.Errorf("with b-1's line and one more of another form, read %v; want a's files alone", got)
	}
	if err := os.WriteFile(c.path(), []byte(strings.Replace(string(data), "etc-cache 2", "etc-cache 3", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := c.load([]string{"a", "b-1"}); len(got) != 0 {
		t.Errorf("a file of another version gave %v; want nothing", got)
	}
}

// TestWriteEtcShares: namespaces that want the same file share one
// (hard-linked); one changed by hand is not passed on, and without a
// SharedEtc each is written. Removing one namespace's files leaves the
// others'.
func TestWriteEtcShares(t *testing.T) {
	nstest.RequireRoot(t)
	_, err := os.Stat(netns.EtcDir)
	had := err == nil
	var names []string
	for range 4 {
		names = append(names, nstest.Name("es"))
	}
	t.Cleanup(func() {
		for _, ns := range names {
			os.RemoveAll(filepath.Join(netns.EtcDir, ns))
		}
		if !had {
			os.Remove(netns.EtcDir) // once empty
		}
	})
	hosts := EtcMarker + "\n10.0.0.2 a\n10.0.0.6 b\n"
	files := map[string]string{"hosts": hosts}
	shared := &SharedEtc{}
	stat := func(ns string) os.FileInfo {
		t.Helper()
		fi, err := os.Stat(filepath.Join(netns.EtcDir, ns, "hosts"))
		if err != nil {
			t.Fatal(err)
		}
		return fi
	}
	holdsHosts := func(ns string) {
		t.Helper()
		if data, _ := os.ReadFile(filepath.Join(netns.EtcDir, ns, "hosts")); string(data) != hosts {
			t.Errorf("%s's hosts holds %q; want %q", ns, data, hosts)
		}
	}
	for _, ns := range names[:2] {
		if err := writeEtc(ns, files, shared); err != nil {
			t.Fatal(err)
		}
	}
	if !os.SameFile(stat(names[0]), stat(names[1])) {
		t.Error("two namespaces wanting the same hosts got two files")
	}
	holdsHosts(names[1])
	// The shared file changed in place: the next namespace gets its own.
	first := filepath.Join(netns.EtcDir, names[0], "hosts")
	if err := os.WriteFile(first, []byte(EtcMarker+"\nedited\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeEtc(names[2], files, shared); err != nil {
		t.Fatal(err)
	}
	if os.SameFile(stat(names[2]), stat(names[1])) {
		t.Error("a file changed by hand was passed on")
	}
	holdsHosts(names[2])
	if err := writeEtc(names[3], files, nil); err != nil {
		t.Fatal(err)
	}
	if os.SameFile(stat(names[3]), stat(names[2])) {
		t.Error("without a SharedEtc, a file was shared")
	}
	if err := removeEtc(names[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(netns.EtcDir, names[1], "hosts")); err != nil {
		t.Errorf("removing a namespace's files took another's: %v", err)
	}
}
