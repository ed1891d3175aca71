package nsexec_test

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nsrun/nsrun/internal/nsexec"
	"github.com/nsrun/nsrun/netns"
	"github.com/nsrun/nsrun/netns/nstest"
)

func TestMain(m *testing.M) { nstest.Main(m) }

// TestCheckGrant: a record of root's in directories of root's grants the
// uids and gids it lists; any other caller, another version, a record
// writable by others or owned by another user, a symbolic link for the
// record or for a directory on the way, and a directory others can write
// are refused.
func TestCheckGrant(t *testing.T) {
	nstest.RequireRoot(t)
	top, err := os.MkdirTemp("/run", "nsexec-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(top) })
	os.Chmod(top, 0o755)
	dir := filepath.Join(top, "grants")
	os.Mkdir(dir, 0o755)
	write := func(name string, g nsexec.Grant) {
		data, _ := json.Marshal(g)
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("ns1", nsexec.Grant{Version: nsexec.GrantVersion, Namespace: "ns1", Cookie: 7, UIDs: []uint32{1000}, GIDs: []uint32{900}})
	check := func(what, dir, name string, uid int, groups []int, want string) {
		t.Helper()
		g, err := nsexec.CheckGrant(dir, name, uid, groups)
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: %v; want granted", what, err)
		case want == "" && g.Cookie != 7:
			t.Errorf("%s: cookie %d; want 7", what, g.Cookie)
		case want != "" && (err == nil || !errors.Is(err, nsexec.ErrNotGranted) || !strings.Contains(err.Error(), want)):
			t.Errorf("%s: %v; want refused with %q", what, err, want)
		}
	}
	check("the uid", dir, "ns1", 1000, nil, "")
	check("a group", dir, "ns1", 1001, []int{5, 900}, "")
	check("another user", dir, "ns1", 1001, []int{1001}, "does not grant exec to uid 1001")
	write("ns2", nsexec.Grant{Version: 1, Namespace: "ns2", UIDs: []uint32{1000}})
	check("a record of version 1", dir, "ns2", 1000, nil, "is not a grant record of this nsrun's")
	write("ns3", nsexec.Grant{Version: nsexec.GrantVersion, Namespace: "ns1", Cookie: 7, UIDs: []uint32{1000}})
	check("a record naming another namespace", dir, "ns3", 1000, nil, "is not a grant record")
	os.Chmod(filepath.Join(dir, "ns1"), 0o666)
	check("a record writable by others", dir, "ns1", 1000, nil, "that only root can write")
	os.Chmod(filepath.Join(dir, "ns1"), 0o644)
	os.Chown(filepath.Join(dir, "ns1"), 1000, 0)
	check("a record of another user's", dir, "ns1", 1000, nil, "that only root can write")
	os.Chown(filepath.Join(dir, "ns1"), 0, 0)
	os.Symlink(filepath.Join(dir, "ns1"), filepath.Join(dir, "ns4"))
	check("a record that is a symbolic link", dir, "ns4", 1000, nil, "is a symbolic link")
	link := filepath.Join(top, "link")
	os.Symlink(dir, link)
	check("a directory on the way that is a symbolic link", link, "ns1", 1000, nil, "is not a directory (a symbolic link?)")
	os.Chmod(top, 0o777)
	check("a directory on the way others can write", dir, "ns1", 1000, nil, top+" is not a directory of root's")
	os.Chmod(top, 0o755)
	check("after all that, the record", dir, "ns1", 1000, nil, "")
	check("a missing directory", filepath.Join(top, "none"), "ns1", 1000, nil, "is missing")
}

// TestCookies: each namespace has a cookie of its own, the host's
// another, and a namespace deleted and made again under its name gets a
// new one.
func TestCookies(t *testing.T) {
	nstest.RequireRoot(t)
	host, err := nsexec.CurrentCookie()
	if err != nil {
		t.Fatal(err)
	}
	name := nstest.Name("ck-")
	cookie := func() uint64 {
		t.Helper()
		c, err := netns.Cookie(name)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if err := netns.Create(name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	first := cookie()
	if first == host || first == 0 || cookie() != first {
		t.Fatalf("cookie %d (again %d), host %d; want its own, stable", first, cookie(), host)
	}
	if again, _ := nsexec.CurrentCookie(); again != host {
		t.Errorf("reading a namespace's cookie left this thread elsewhere: %d, want %d", again, host)
	}
	if err := netns.Delete(name); err != nil {
		t.Fatal(err)
	}
	if err := netns.Create(name); err != nil {
		t.Fatal(err)
	}
	if second := cookie(); second == first || second == host {
		t.Errorf("the namespace made again has cookie %d; the old one had %d, the host %d", second, first, host)
	}
}
