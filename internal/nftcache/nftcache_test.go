package nftcache

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nsrun/nsrun/netns/nstest"
)

func TestMain(m *testing.M) { nstest.Main(m) }

// TestGenerationFollowsChanges: any change to any table bumps the
// generation, and reading changes nothing.
func TestGenerationFollowsChanges(t *testing.T) {
	nstest.RequireRoot(t)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Fatal("no nft; scripts/install-deps.sh installs nftables")
	}
	g1, err := Generation()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("nft", "list", "tables").CombinedOutput(); err != nil {
		t.Fatalf("nft list tables: %v %s", err, out)
	}
	if g2, err := Generation(); err != nil || g2 != g1 {
		t.Fatalf("a read moved the generation: %d -> %d, %v", g1, g2, err)
	}
	table := nstest.Name("nftcache")
	t.Cleanup(func() { exec.Command("nft", "delete", "table", "ip", table).Run() })
	if out, err := exec.Command("nft", "add", "table", "ip", table).CombinedOutput(); err != nil {
		t.Fatalf("nft add table: %v %s", err, out)
	}
	if g3, err := Generation(); err != nil || g3 == g1 {
		t.Errorf("adding a table left the generation at %d (%v)", g3, err)
	}
}

// TestOutputIsKeptWhileNothingChanges: the second read of the same
// program comes from the cache, and a change to the ruleset runs it again.
func TestOutputIsKeptWhileNothingChanges(t *testing.T) {
	nstest.RequireRoot(t)
	c := &Cache{Dir: filepath.Join(t.TempDir(), "cache")}
	ctx := context.Background()
	table := nstest.Name("nftcache")
	t.Cleanup(func() { exec.Command("nft", "delete", "table", "ip", table).Run() })
	// A program whose output says how often it ran: a file that grows.
	count := filepath.Join(t.TempDir(), "runs")
	prog := []string{"sh", "-c", "echo x >> " + count + "; wc -l < " + count}
	first, err := c.Run(ctx, prog...)
	if err != nil || first.Code != 0 {
		t.Fatal(first, err)
	}
	again, err := c.Run(ctx, prog...)
	if err != nil || again != first {
		t.Errorf("second read: %+v, %v; want the kept %+v", again, err, first)
	}
	failing := []string{"sh", "-c", "echo x >> " + count + "; echo oops >&2; exit 3"}
	f1, err1 := c.Run(ctx, failing...)
	f2, err2 := c.Run(ctx, failing...)
	if err1 != nil || err2 != nil || f1.Code != 3 || f1 != f2 || f1.Err(failing...) == nil || !strings.Contains(f1.Err(failing...).Error(), "oops") {
		t.Errorf("a failing program: %+v %v, then %+v %v; want exit 3 with its stderr, kept", f1, err1, f2, err2)
	}
	if out, err := exec.Command("nft", "add", "table", "ip", table).CombinedOutput(); err != nil {
		t.Fatalf("nft add table: %v %s", err, out)
	}
	after, err := c.Run(ctx, prog...)
	if err != nil || after == first {
		t.Errorf("after a change: %+v, %v; want the program run again", after, err)
	}
	if r, err := (*Cache)(nil).Run(ctx, "false"); err != nil || r.Code != 1 {
		t.Errorf("no cache, false: %+v, %v; want exit 1", r, err)
	}
	if _, err := c.Run(ctx, filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a program that cannot start gave no error")
	}
}

func TestParseGeneration(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  []byte
		want uint32
		ok   bool
	}{
		{"short", []byte{1, 2, 3}, 0, false},
		// nlmsghdr (len 32, type 0x0a10), nfgenmsg, NFTA_GEN_ID 7, NFTA_GEN_PROC_PID.
		{"id", append(append([]byte{32, 0, 0, 0, 0x10, 0x0a, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0}, 0, 0, 0, 0), 8, 0, 1, 0, 0, 0, 0, 7), 7, true},
		{"no id", []byte{28, 0, 0, 0, 0x10, 0x0a, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 2, 0, 0, 0, 0, 7}, 0, false},
		{"error", []byte{36, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 0, false},
	} {
		got, err := parseGeneration(tc.msg)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("%s: %d, %v; want %d (ok %v)", tc.name, got, err, tc.want, tc.ok)
		}
	}
}

// TestRunAtKeepsEachResultAtItsVersion: a result is used while its own
// version holds, whatever happens to the others' (an nftables change must
// not drop what iptables-legacy printed), and not kept when the version
// moved while the program ran, or cannot be read.
func TestRunAtKeepsEachResultAtItsVersion(t *testing.T) {
	c := &Cache{Dir: filepath.Join(t.TempDir(), "cache")}
	ctx := context.Background()
	count := filepath.Join(t.TempDir(), "runs")
	prog := func(name string) []string {
		return []string{"sh", "-c", "echo " + name + " >> " + count + "; wc -l < " + count}
	}
	va, vb := "a1", "b1"
	versionA := func() (string, error) { return va, nil }
	versionB := func() (string, error) { return vb, nil }
	a1, _ := c.RunAt(ctx, versionA, prog("a")...)
	b1, _ := c.RunAt(ctx, versionB, prog("b")...)
	vb = "b2"
	if a, err := c.RunAt(ctx, versionA, prog("a")...); err != nil || a != a1 {
		t.Errorf("a after b's version moved: %+v, %v; want the kept %+v", a, err, a1)
	}
	if b, err := c.RunAt(ctx, versionB, prog("b")...); err != nil || b == b1 {
		t.Errorf("b after its version moved: %+v, %v; want a new run", b, err)
	}
	// A second Cache on the same directory: another nsrun.
	other := &Cache{Dir: c.Dir}
	if a, err := other.RunAt(ctx, versionA, prog("a")...); err != nil || a != a1 {
		t.Errorf("another process: %+v, %v; want the kept %+v", a, err, a1)
	}

	calls := 0
	moving := func() (string, error) { calls++; return fmt.Sprint(calls), nil }
	m1, _ := c.RunAt(ctx, moving, prog("m")...)
	calls = 0 // the next run sees the same first version: it must not find m1
	if m2, _ := c.RunAt(ctx, moving, prog("m")...); m2 == m1 {
		t.Errorf("a result read while the version moved was kept: %+v", m2)
	}
	broken := func() (string, error) { return "", errors.New("unreadable") }
	x1, _ := c.RunAt(ctx, broken, prog("x")...)
	if x2, _ := c.RunAt(ctx, broken, prog("x")...); x2 == x1 {
		t.Errorf("a result kept without a version: %+v", x2)
	}
}

// TestResultsSayTheirVersion: a result is of the version it was kept at,
// whether run or taken from the cache; one read while the version moved
// is of none.
func TestResultsSayTheirVersion(t *testing.T) {
	c := &Cache{Dir: filepath.Join(t.TempDir(), "cache")}
	ctx := context.Background()
	v := "v1"
	version := func() (string, error) { return v, nil }
	if r, err := c.RunAt(ctx, version, "true"); err != nil || r.At != "v1" {
		t.Errorf("a run: At %q, %v; want v1", r.At, err)
	}
	if r, err := c.RunAt(ctx, version, "true"); err != nil || r.At != "v1" {
		t.Errorf("from the cache: At %q, %v; want v1", r.At, err)
	}
	calls := 0
	moving := func() (string, error) { calls++; return fmt.Sprint(calls), nil }
	if r, err := c.RunAt(ctx, moving, "true"); err != nil || r.At != "" {
		t.Errorf("read while the version moved: At %q, %v; want none", r.At, err)
	}
	if r, err := (*Cache)(nil).RunAt(ctx, version, "true"); err != nil || r.At != "" {
		t.Errorf("no cache: At %q, %v; want none", r.At, err)
	}
}

// TestLater: Later says the version now, and runs the program, or reads
// the output kept, only when the output is asked for, once; an output
// had after the version moved is of none.
func TestLater(t *testing.T) {
	ctx := context.Background()
	c := &Cache{Dir: filepath.Join(t.TempDir(), "cache")}
	v := "v1"
	version := func() (string, error) { return v, nil }
	dir := t.TempDir()
	marks := filepath.Join(dir, "runs")
	prog := []string{"sh", "-c", "echo run >>" + marks + "; echo out"}
	runs := func() int {
		data, _ := os.ReadFile(marks)
		return strings.Count(string(data), "run")
	}
	at, out := c.Later(ctx, version, prog...)
	if at != "v1" || runs() != 0 {
		t.Fatalf("Later: at %q, %d runs; want v1, none yet", at, runs())
	}
	for range 2 {
		if r, err := out(); err != nil || r.Stdout != "out\n" || r.At != "v1" || runs() != 1 {
			t.Errorf("the output: %+v, %v after %d runs; want it of v1, after one", r, err, runs())
		}
	}
	at, out = c.Later(ctx, version, prog...)
	if r, err := out(); at != "v1" || err != nil || r.At != "v1" || runs() != 1 {
		t.Errorf("the same version: %+v, %v at %q after %d runs; want the kept output", r, err, at, runs())
	}
	at, out = c.Later(ctx, version, prog...)
	v = "v2"
	if r, err := out(); at != "v1" || err != nil || r.At != "" || runs() != 2 {
		t.Errorf("the version moved before the output was had: %+v, %v at %q after %d runs; want it run, of none", r, err, at, runs())
	}
}

// TestLinesKeptWhileTheVersionHolds: an answer is computed once per
// version and key, by this nsrun or another reading the same files; a new
// version computes again and replaces it; without a cache or a version,
// every call computes; an answer computed from what was not of the
// version is not kept.
func TestLinesKeptWhileTheVersionHolds(t *testing.T) {
	c := &Cache{Dir: filepath.Join(t.TempDir(), "cache")}
	computed := 0
	answer := func(lines ...string) func() ([]string, bool) {
		return func() ([]string, bool) { computed++; return lines, true }
	}
	check := func(name string, got []string, want string, wantComputed int) {
		t.Helper()
		if strings.Join(got, "|") != want || computed != wantComputed {
			t.Errorf("%s: %q after %d computations; want %q after %d", name, got, computed, want, wantComputed)
		}
	}
	check("first", c.Lines("v1", "drift a", answer("x", "y")), "x|y", 1)
	check("same version", c.Lines("v1", "drift a", answer("other")), "x|y", 1)
	check("another nsrun", (&Cache{Dir: c.Dir}).Lines("v1", "drift a", answer("other")), "x|y", 1)
	check("another key", c.Lines("v1", "drift b", answer()), "", 2)
	check("a kept empty answer", c.Lines("v1", "drift b", answer("other")), "", 2)
	check("new version", c.Lines("v2", "drift a", answer("z")), "z", 3)
	check("the old version is gone", c.Lines("v1", "drift a", answer("w")), "w", 4)
	check("no version", c.Lines("", "drift a", answer("n")), "n", 5)
	check("no version again", c.Lines("", "drift a", answer("n")), "n", 6)
	check("no cache", (*Cache)(nil).Lines("v1", "drift a", answer("n")), "n", 7)
	notOf := func() ([]string, bool) { computed++; return []string{"stale"}, false }
	check("not of the version", c.Lines("v3", "drift a", notOf), "stale", 8)
	check("not kept", c.Lines("v3", "drift a", answer("fresh")), "fresh", 9)
	files, err := os.ReadDir(c.Dir)
	if err != nil || len(files) != 2 {
		t.Errorf("the cache holds %d files (%v); want one per key, 2", len(files), err)
	}
}

// TestCacheWithoutStateDirectory: a Cache whose directory's parent does
// not exist keeps nothing, and makes nothing.
func TestCacheWithoutStateDirectory(t *testing.T) {
	c := &Cache{Dir: filepath.Join(t.TempDir(), "gone", "cache")}
	computed := 0
	for range 2 {
		c.Lines("v1", "k", func() ([]string, bool) { computed++; return nil, true })
		c.held = nil // another process: only the files would say
	}
	if computed != 2 {
		t.Errorf("computed %d times; want 2, nothing kept", computed)
	}
	if _, err := os.Stat(filepath.Dir(c.Dir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the missing parent was made: %v", err)
	}
}

// TestAnotherProcessReadsTheOutputAsPrinted: what another nsrun reads
// from a key's file is the result as the program printed it (lines, a
// byte that is not UTF-8, a failing exit and its standard error); a file
// that is cut short or not a cache's runs the program again.
func TestAnotherProcessReadsTheOutputAsPrinted(t *testing.T) {
	c := &Cache{Dir: filepath.Join(t.TempDir(), "cache")}
	ctx := context.Background()
	count := filepath.Join(t.TempDir(), "runs")
	prog := []string{"sh", "-c", `echo x >> ` + count + `; printf '*nat\n:PREROUTING ACCEPT [0:0]\n"quoted" \377 \\n\n'; wc -l < ` + count + `; echo 'line 1' >&2; echo '{"version":"v1"}' >&2; exit 4`}
	version := func() (string, error) { return "v1", nil }
	first, err := c.RunAt(ctx, version, prog...)
	if err != nil || first.Code != 4 || !strings.Contains(first.Stdout, "\"quoted\" \377 \\n\n1\n") || !strings.Contains(first.Stderr, "line 1\n{") {
		t.Fatalf("the program: %+v, %v", first, err)
	}
	if got, err := (&Cache{Dir: c.Dir}).RunAt(ctx, version, prog...); err != nil || got != first {
		t.Errorf("another process: %+v, %v; want %+v", got, err, first)
	}
	files, err := filepath.Glob(filepath.Join(c.Dir, "*"))
	if err != nil || len(files) != 1 {
		t.Fatalf("cache files %v, %v; want one", files, err)
	}
	for _, content := range []string{"", "{\"version\":\"v1\",\"code\":4}", "not json\n*nat\n"} {
		if err := os.WriteFile(files[0], []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		runs, _ := os.ReadFile(count)
		got, err := (&Cache{Dir: c.Dir}).RunAt(ctx, version, prog...)
		if again, _ := os.ReadFile(count); err != nil || len(again) == len(runs) || got.Code != 4 {
			t.Errorf("a file holding %q: %+v, %v; want the program run again", content, got, err)
		}
	}
}

// TestLargeOutputsAreNotHeld: an output larger than heldLimit is kept in
// its file and read from it again, not held in the process's memory; a
// small one is held.
func TestLargeOutputsAreNotHeld(t *testing.T) {
	c := &Cache{Dir: filepath.Join(t.TempDir(), "cache")}
	ctx := context.Background()
	version := func() (string, error) { return "v1", nil }
	large := []string{"head", "-c", fmt.Sprint(heldLimit + 1), "/dev/zero"}
	small := []string{"echo", "small"}
	for _, argv := range [][]string{large, small} {
		first, err := c.RunAt(ctx, version, argv...)
		if err != nil || first.At != "v1" {
			t.Fatalf("%v: %+v, %v", argv, first.At, err)
		}
		again, err := c.RunAt(ctx, version, argv...)
		if err != nil || again.Stdout != first.Stdout || again.At != "v1" {
			t.Errorf("%v again: %d bytes, %v; want the same %d, from the cache", argv, len(again.Stdout), err, len(first.Stdout))
		}
	}
	if _, held := c.held[strings.Join(large, "\x00")]; held {
		t.Error("the large output is held in memory")
	}
	if _, held := c.held[strings.Join(small, "\x00")]; !held {
		t.Error("the small output is not held")
	}
}
