package main

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nsrun/nsrun/netns/nstest"
)

// TestFlaskExample brings up the lab note's example from the spec's own
// directory, reaches both Flask apps from the host and from an outside
// namespace routed through the host, and finds the project up to date
// when up runs again from the repository's root.
func TestFlaskExample(t *testing.T) {
	nstest.RequireRoot(t)
	if err := exec.Command("/usr/bin/python3", "-c", "import flask").Run(); err != nil {
		if os.Getenv("NSRUN_REQUIRE_ROOT") == "1" {
			t.Fatal("Debian's python3-flask is missing; scripts/test.sh installs it (NSRUN_TEST_DEPS=1 scripts/install-deps.sh)")
		}
		t.Skip("no python3-flask")
	}
	before := nstest.Snapshot()
	root := "../.."
	t.Cleanup(func() { nsrunCmd(t, root, "down", "-q", "-p", "flask") })
	if code, _, errOut := nsrunCmd(t, filepath.Join(root, "specs/examples/flask"), "up", "-q", "flask.yaml"); code != 0 {
		t.Fatalf("up from the spec's directory: exit %d\n%s", code, errOut)
	}
	// The record holds the resolved directory: from elsewhere, nothing changes.
	if code, out, errOut := nsrunCmd(t, root, "up", "specs/examples/flask/flask.yaml"); code != 0 || !strings.Contains(out+errOut, "project flask is up to date") {
		t.Errorf("up again from the repository's root: exit %d\n%s%s", code, out, errOut)
	}
	client := http.Client{Timeout: 5 * time.Second}
	for port, ns := range map[string]string{"6000": "ns1", "6001": "ns2"} {
		resp, err := client.Get("http://127.0.0.1:" + port + "/")
		if err != nil {
			t.Fatalf("GET 127.0.0.1:%s: %v", port, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "hello from "+ns+"\n" {
			t.Errorf("127.0.0.1:%s answered %q; want hello from %s", port, body, ns)
		}
	}
	out, link := strings.ToLower(nstest.Name("fo")), "f"+nstest.Name("")[:8]
	sh := func(cmd string) {
		t.Helper()
		if b, err := exec.Command("sh", "-c", cmd).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v %s", cmd, err, b)
		}
	}
	t.Cleanup(func() { exec.Command("ip", "link", "del", link).Run(); exec.Command("ip", "netns", "del", out).Run() })
	sh("ip netns add " + out + " && ip link add " + link + " type veth peer name eth0 netns " + out +
		" && ip addr add 10.254.253.1/30 dev " + link + " && ip link set " + link + " up" +
		" && ip -n " + out + " addr add 10.254.253.2/30 dev eth0 && ip -n " + out + " link set eth0 up")
	for port, ns := range map[string]string{"6000": "ns1", "6001": "ns2"} {
		b, err := exec.Command("ip", "netns", "exec", out, "curl", "-sS", "--max-time", "5", "http://10.254.253.1:"+port+"/").Output()
		if err != nil || string(b) != "hello from "+ns+"\n" {
			t.Errorf("from outside to host:%s: %q %v; want hello from %s", port, b, err, ns)
		}
	}
	exec.Command("ip", "link", "del", link).Run()
	exec.Command("ip", "netns", "del", out).Run()
	if code, _, errOut := nsrunCmd(t, root, "down", "-q", "-p", "flask"); code != 0 {
		t.Fatalf("down: %s", errOut)
	}
	if after := nstest.Snapshot(); after != before {
		t.Errorf("down left the host changed:\n%s\n%s", before, after)
	}
}
