package main

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/nsrun/nsrun/netns"
	"github.com/nsrun/nsrun/netns/nstest"
	"github.com/nsrun/nsrun/veth"
)

// execNamespace makes a namespace with a veth inside, like nsrun's, but
// made directly: exec works on any named namespace.
func execNamespace(t *testing.T) string {
	t.Helper()
	nstest.RequireRoot(t)
	name := nstest.Name("ex")
	if err := netns.Create(name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { veth.Delete("h" + name); netns.Delete(name) })
	p := veth.Pair{Host: "h" + name, Namespace: name, Peer: "eth0",
		HostAddr: netip.MustParsePrefix("10.251.9.1/30"), PeerAddr: netip.MustParsePrefix("10.251.9.2/30")}
	if err := veth.Ensure(p); err != nil {
		t.Fatal(err)
	}
	return name
}

func execIn(t *testing.T, stdin string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(nstest.Binary(t), append([]string{"exec"}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if exitErr, ok := err.(*exec.ExitError); ok {
		// As a shell reports it: 128+N for a command killed by signal N.
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), string(out)
		}
		return exitErr.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

func TestExecExitStatus(t *testing.T) {
	ns := execNamespace(t)
	notExec := filepath.Join(t.TempDir(), "script")
	os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644)
	tests := []struct {
		args []string
		code int
		out  string
	}{
		{[]string{ns, "true"}, 0, ""},
		{[]string{ns, "--", "sh", "-c", "exit 7"}, 7, ""},
		{[]string{ns, "no-such-command"}, 127, "no-such-command: not found"},
		{[]string{ns, "/no/such/path"}, 127, "not found"},
		{[]string{ns, notExec}, 126, "permission denied"},
		{[]string{ns, "sh", "-c", "kill -TERM $$"}, 128 + 15, ""},
		{[]string{"no-such-ns-" + ns, "true"}, 1, `namespace "no-such-ns-` + ns + `" does not exist; the ones that do: `},
		{[]string{"../etc", "true"}, 1, `invalid namespace name "../etc"`},
	}
	for _, tc := range tests {
		code, out := execIn(t, "", tc.args...)
		if code != tc.code || !strings.Contains(out, tc.out) {
			t.Errorf("exec %v: exit %d %q; want %d and %q", tc.args, code, out, tc.code, tc.out)
		}
	}
}

func TestExecInsideTheNamespace(t *testing.T) {
	ns := execNamespace(t)
	// stdin passes through.
	if code, out := execIn(t, "hello through stdin\n", ns, "cat"); code != 0 || out != "hello through stdin\n" {
		t.Errorf("cat: %d %q", code, out)
	}
	// /sys/class/net shows the namespace's interfaces only.
	if code, out := execIn(t, "", ns, "ls", "/sys/class/net"); code != 0 || strings.Fields(out)[0] != "eth0" || len(strings.Fields(out)) != 2 {
		t.Errorf("/sys/class/net inside: %d %q; want eth0 and lo", code, out)
	}
	// Files of /etc/netns/NS stand in for /etc's.
	dir := filepath.Join(netns.EtcDir, ns)
	os.MkdirAll(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir); os.Remove(netns.EtcDir) })
	os.WriteFile(filepath.Join(dir, "hosts"), []byte("192.0.2.7 seen-inside\n"), 0o644)
	if code, out := execIn(t, "", ns, "cat", "/etc/hosts"); code != 0 || out != "192.0.2.7 seen-inside\n" {
		t.Errorf("/etc/hosts inside: %d %q", code, out)
	}
	if host, _ := os.ReadFile("/etc/hosts"); strings.Contains(string(host), "seen-inside") {
		t.Error("the bind mount leaked to the host")
	}
	// --user, --env, --workdir; and flags end at the command.
	code, out := execIn(t, "", ns, "--user", "nobody", "--env", "GREETING=hi", "--workdir", "/tmp", "sh", "-c", `echo $(id -u):$(id -g) $GREETING $(pwd)`)
	if code != 0 || out != "65534:65534 hi /tmp\n" {
		t.Errorf("--user/--env/--workdir: %d %q", code, out)
	}
	if code, out := execIn(t, "", ns, "--user", "1234:4321", "id", "-G"); code != 0 || out != "4321\n" {
		t.Errorf("--user uid:gid: %d %q", code, out)
	}
	if code, out := execIn(t, "", ns, "ls", "-d", "/"); code != 0 || out != "/\n" {
		t.Errorf("ls -d / (flags after the command go to it): %d %q", code, out)
	}
	if code, out := execIn(t, "", ns, "--user", "no-such-user-x", "true"); code != 1 || !strings.Contains(out, `user "no-such-user-x" does not exist`) {
		t.Errorf("unknown user: %d %q", code, out)
	}
}
