package main

import (
	"os"
	"strings"
	"testing"

	"github.com/nsrun/nsrun/netns/nstest"
)

func TestMain(m *testing.M) { nstest.Main(m) }

// TestBlogExample is the lab exercise through the command line: up the
// bundled example, two servers on 8080 answer on host ports 6000 and 6001,
// down leaves the host exactly as before.
func TestBlogExample(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.DumpOnFailure(t)
	data, err := os.ReadFile("../../specs/examples/blog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	spec := writeSpec(t, "renamed.yaml", string(data)) // its own name: blog
	before := nstest.Snapshot()
	t.Cleanup(func() { nsrun(t, "down", "-q", "-p", "blog") })
	code, out, errOut := nsrun(t, "up", spec)
	if code != 0 {
		t.Fatalf("up: exit %d\n%s", code, errOut)
	}
	if !strings.Contains(out, "127.0.0.1:6000/tcp -> ") || !strings.Contains(errOut, "namespace ns1 created") {
		t.Errorf("up printed:\n%s\n%s", out, errOut)
	}
	nstest.StartServer(t, "ns1", "ns1", "8080", "")
	nstest.StartServer(t, "ns2", "ns2", "8080", "")
	for port, want := range map[string]string{"6000": "ns1 ", "6001": "ns2 "} {
		if r, err := nstest.Dial("tcp", "127.0.0.1:"+port, ""); err != nil || !strings.HasPrefix(r, want) {
			t.Errorf("127.0.0.1:%s answered %q, %v; want %s", port, r, err, want)
		}
	}
	// The spec file gone: down by the spec's path still finds the project.
	if err := os.Remove(spec); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = nsrun(t, "down", spec)
	if code != 0 || out != "project blog is down\n" {
		t.Fatalf("down: exit %d\n%s%s", code, out, errOut)
	}
	if after := nstest.Snapshot(); after != before {
		t.Errorf("down left the host changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if code, out, _ := nsrun(t, "down", "-p", "blog"); code != 0 || !strings.Contains(out, "not up; nothing to remove") {
		t.Errorf("second down: exit %d, %q", code, out)
	}
}

// TestBadSpecChangesNothing runs up on bad specs as root: exit 2, and the
// host as before.
func TestBadSpecChangesNothing(t *testing.T) {
	nstest.RequireRoot(t)
	before := nstest.Snapshot()
	for _, src := range []string{
		"namespaces:\n  ns1: {ports: [\"70000:8080\"]}\n",
		"namespaces:\n  a/b: {}\n",
		"namespaces:\n  ns1: {address: 10.1.1.1/24}\n",
		"name: x\nnamespaces: {}\n",
	} {
		path := writeSpec(t, "bad.yaml", src)
		if code, _, errOut := nsrun(t, "up", path); code != exitUsage || !strings.Contains(errOut, path+":") {
			t.Errorf("up of %q: exit %d, %q", src, code, errOut)
		}
	}
	if after := nstest.Snapshot(); after != before {
		t.Errorf("a bad spec changed the host:\n%s\n%s", before, after)
	}
	if _, err := os.Stat("/run/nsrun"); err == nil && !strings.Contains(before, "/run/nsrun ") {
		t.Error("a bad spec created /run/nsrun")
	}
}
