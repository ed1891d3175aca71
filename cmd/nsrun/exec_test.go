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

// execBinaries are the two ways exec runs: the C fast path of package
// fastexec (nsrun as released; "" where no C compiler is installed) and the
// Go path (a build without cgo, and whatever the fast path leaves to Go).
// Every exec test runs with both.
func execBinaries(t *testing.T) (fast, goPath string) {
	return nstest.CgoBinary(t), nstest.PureGoBinary(t)
}

// runExecWith runs 'BIN exec ARGS...' with stdin and extra environment,
// and returns the exit status as a shell reports it and the combined output.
func runExecWith(t *testing.T, bin, stdin string, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"exec"}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = append(os.Environ(), env...)
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

// execBoth runs the same exec with both binaries, fails the test unless
// they agree, and returns what they did.
func execBoth(t *testing.T, stdin string, env []string, args ...string) (int, string) {
	t.Helper()
	fast, goPath := execBinaries(t)
	code, out := runExecWith(t, goPath, stdin, env, args...)
	if fast != "" {
		if fastCode, fastOut := runExecWith(t, fast, stdin, env, args...); fastCode != code || fastOut != out {
			t.Errorf("exec %v: the fast path gave %d %q, the Go path %d %q", args, fastCode, fastOut, code, out)
		}
	}
	return code, out
}

func execIn(t *testing.T, stdin string, args ...string) (int, string) {
	t.Helper()
	return execBoth(t, stdin, nil, args...)
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
		// A path is not a name, even where it leads to a namespace.
		{[]string{"../netns/" + ns, "true"}, 1, `invalid namespace name "../netns/` + ns + `"`},
		{[]string{ns, "--"}, 2, "no command to run"},
		{[]string{ns}, 2, "no command to run"},
	}
	for _, tc := range tests {
		code, out := execIn(t, "", tc.args...)
		if code != tc.code || !strings.Contains(out, tc.out) {
			t.Errorf("exec %v: exit %d %q; want %d and %q", tc.args, code, out, tc.code, tc.out)
		}
	}
}

// TestExecPath checks the PATH search both ways: a directory or a
// non-executable file of the name is passed over for the next entry, an
// empty entry is the current directory, and 126 when only non-executable
// files are found.
func TestExecPath(t *testing.T) {
	ns := execNamespace(t)
	dirA, dirB := t.TempDir(), t.TempDir()
	os.Mkdir(filepath.Join(dirA, "tool"), 0o755)
	os.WriteFile(filepath.Join(dirA, "plain"), []byte("#!/bin/sh\necho A\n"), 0o644)
	os.WriteFile(filepath.Join(dirB, "tool"), []byte("#!/bin/sh\necho B tool\n"), 0o755)
	os.WriteFile(filepath.Join(dirB, "plain"), []byte("#!/bin/sh\necho B plain\n"), 0o755)
	os.WriteFile(filepath.Join(dirA, "only-plain"), []byte("#!/bin/sh\n"), 0o644)
	path := "PATH=" + dirA + ":" + dirB + ":/usr/bin:/bin"
	tests := []struct {
		env  string
		cmd  string
		code int
		out  string
	}{
		{path, "tool", 0, "B tool\n"},
		{path, "plain", 0, "B plain\n"},
		{path, "only-plain", 126, "only-plain: permission denied (not executable)"},
		{path, "no-such-tool", 127, "no-such-tool: not found in PATH"},
		{"PATH=:/usr/bin:/bin", "tool", 127, "not found in PATH"}, // the test runs where there is no ./tool
	}
	for _, tc := range tests {
		code, out := execBoth(t, "", []string{tc.env}, ns, tc.cmd)
		if code != tc.code || !strings.Contains(out, tc.out) {
			t.Errorf("%s exec %s: exit %d %q; want %d and %q", tc.env, tc.cmd, code, out, tc.code, tc.out)
		}
		// Passing over a file is part of the search, not a reason to leave it to Go.
		if fast, _ := execBinaries(t); fast != "" && tc.code == 0 {
			if _, traced := runExecWith(t, fast, "", []string{tc.env, "GODEBUG=inittrace=1"}, ns, tc.cmd); traced != tc.out {
				t.Errorf("%s exec %s: %q; want it run by the fast path, without the Go runtime", tc.env, tc.cmd, traced)
			}
		}
	}
}

// TestExecFastPath checks that the plain form of exec never starts the Go
// runtime in nsrun as released (GODEBUG=inittrace=1 makes the runtime
// print a line per package it initialises), and that the forms it leaves
// to Go do.
func TestExecFastPath(t *testing.T) {
	ns := execNamespace(t)
	fast, goPath := execBinaries(t)
	if fast == "" {
		t.Skip("needs a C compiler for cgo (the fast exec path); scripts/install-deps.sh installs gcc")
	}
	trace := []string{"GODEBUG=inittrace=1"}
	for _, args := range [][]string{{ns, "true"}, {ns, "--", "true"}} {
		if code, out := runExecWith(t, fast, "", trace, args...); code != 0 || out != "" {
			t.Errorf("exec %v: %d %q; the Go runtime started, so the fast path was not taken", args, code, out)
		}
		if code, out := runExecWith(t, goPath, "", trace, args...); code != 0 || !strings.Contains(out, "init runtime") {
			t.Errorf("exec %v without cgo: %d %q; want the runtime's init trace", args, code, out)
		}
	}
	for _, args := range [][]string{{ns, "--env", "A=b", "true"}, {ns, "no-such-command"}} {
		if _, out := runExecWith(t, fast, "", trace, args...); !strings.Contains(out, "init runtime") {
			t.Errorf("exec %v: %q; want it left to the Go path", args, out)
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
	// A file with nothing of its name in /etc cannot be bound: reported, skipped.
	os.WriteFile(filepath.Join(dir, "nsrun-no-such-etc-file"), []byte("x\n"), 0o644)
	code, out := execIn(t, "", ns, "cat", "/etc/hosts")
	if want := "nsrun: bind \"" + dir + "/nsrun-no-such-etc-file\" -> \"/etc/nsrun-no-such-etc-file\" failed: no such file or directory\n192.0.2.7 seen-inside\n"; code != 0 || out != want {
		t.Errorf("an unbindable file: %d %q; want %q", code, out, want)
	}
	os.Remove(filepath.Join(dir, "nsrun-no-such-etc-file"))
	// --user, --env, --workdir; and flags end at the command.
	code, out = execIn(t, "", ns, "--user", "nobody", "--env", "GREETING=hi", "--workdir", "/tmp", "sh", "-c", `echo $(id -u):$(id -g) $GREETING $(pwd)`)
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
