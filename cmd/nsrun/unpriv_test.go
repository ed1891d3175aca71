package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/nsrun/nsrun/netns"
	"github.com/nsrun/nsrun/netns/nstest"
)

// capLab is the setup of the unprivileged exec tests: a test user (made
// and removed by the test), a copy of nsrun with its file capabilities
// and one without, in a directory every user can read, and a project
// whose spec grants exec to the user and to group nogroup (nobody's).
type capLab struct {
	dir, capBin, plainBin, helper string
	uid, gid                      int
	ns, project                   string
	port                          int
}

func newCapLab(t *testing.T) *capLab {
	t.Helper()
	nstest.RequireRoot(t)
	if _, err := exec.LookPath("setcap"); err != nil {
		t.Fatal("setcap is missing; scripts/install-deps.sh installs it (libcap2-bin)")
	}
	b := make([]byte, 3)
	rand.Read(b)
	id := hex.EncodeToString(b)
	l := &capLab{ns: "cap" + id, project: "cap" + id, port: 16950}
	name := "nsrt" + id
	mustRun(t, "useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group", name)
	t.Cleanup(func() { exec.Command("userdel", name).Run() })
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	l.uid, _ = strconv.Atoi(u.Uid)
	l.gid, _ = strconv.Atoi(u.Gid)
	l.dir, err = os.MkdirTemp("/var/tmp", "nsrun-cap-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(l.dir) })
	os.Chmod(l.dir, 0o755)
	l.capBin, l.plainBin, l.helper = filepath.Join(l.dir, "nsrun"), filepath.Join(l.dir, "nsrun-plain"), filepath.Join(l.dir, "helper")
	self, _ := os.Executable()
	for _, c := range [][2]string{{nstest.Binary(t), l.capBin}, {nstest.Binary(t), l.plainBin}, {self, l.helper}} {
		mustRun(t, "cp", c[0], c[1])
		os.Chmod(c[1], 0o755)
	}
	mustRun(t, "setcap", "cap_setpcap,cap_sys_admin+p", l.capBin)
	spec := writeSpec(t, l.project+".yaml", fmt.Sprintf("name: %s\nexec: {users: [%s], groups: [nogroup]}\nnamespaces:\n  %s:\n    ports: [\"%d:8080\"]\n", l.project, name, l.ns, l.port))
	if code, _, errOut := nsrunCmd(t, "/", "up", "-q", spec); code != 0 {
		t.Fatalf("up: %s", errOut)
	}
	t.Cleanup(func() { nsrunCmd(t, "/", "down", "-q", "-p", l.project) })
	return l
}

func mustRun(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
}

// as runs bin with args as the uid and gid (and those supplementary
// groups), with a small environment plus env; it returns the exit status
// as a shell reports it, stdout and stderr.
func (l *capLab) as(t *testing.T, uid, gid int, groups []uint32, env []string, bin string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = "/"
	cmd.Env = append([]string{"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME=/"}, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: groups}}
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if exitErr, ok := err.(*exec.ExitError); ok {
		code = exitErr.ExitCode()
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errOut.String()
}

// user runs nsrun exec NS -- CMD as the test user, with the capability.
func (l *capLab) user(t *testing.T, env []string, cmd ...string) (int, string, string) {
	return l.as(t, l.uid, l.gid, nil, env, l.capBin, append([]string{"exec", l.ns, "--"}, cmd...)...)
}

// TestExecWithoutRoot: a granted user runs the command as themselves,
// with no capability left and no_new_privs, in the namespace (its eth0,
// its address, its ports), and cannot change its network; so does nobody,
// through group nogroup; exit statuses are the command's.
func TestExecWithoutRoot(t *testing.T) {
	l := newCapLab(t)
	code, out, errOut := l.user(t, nil, "id", "-u")
	if code != 0 || strings.TrimSpace(out) != strconv.Itoa(l.uid) {
		t.Fatalf("id -u as the granted user: exit %d, %q %s", code, out, errOut)
	}
	nogroup, err := user.LookupGroup("nogroup")
	if err != nil {
		t.Fatal(err)
	}
	gid, _ := strconv.Atoi(nogroup.Gid)
	code, out, errOut = l.as(t, 65534, gid, nil, nil, l.capBin, "exec", l.ns, "--", "id", "-u")
	if code != 0 || strings.TrimSpace(out) != "65534" {
		t.Errorf("id -u as nobody (granted through group nogroup): exit %d, %q %s", code, out, errOut)
	}
	_, status, _ := l.user(t, nil, "cat", "/proc/self/status")
	for _, field := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"} {
		if !strings.Contains(status, field+":\t0000000000000000\n") {
			t.Errorf("%s is not zero:\n%s", field, status)
		}
	}
	if !strings.Contains(status, "NoNewPrivs:\t1\n") {
		t.Errorf("no_new_privs is not set:\n%s", status)
	}
	st, err := store().Load(l.project)
	if err != nil {
		t.Fatal(err)
	}
	addr := st.Namespaces[0].Address.Addr().String()
	if code, out, _ := l.user(t, nil, "ip", "-o", "addr", "show", "eth0"); code != 0 || !strings.Contains(out, addr) {
		t.Errorf("the namespace's eth0 and address %s: exit %d, %q", addr, code, out)
	}
	if code, out, errOut := l.user(t, nil, "ip", "link", "set", "eth0", "down"); code == 0 || !strings.Contains(out+errOut, "Operation not permitted") {
		t.Errorf("ip link set eth0 down as the user: exit %d, %q %q; want Operation not permitted", code, out, errOut)
	}
	// The user's server on the namespace's port 8080, reached from the host
	// through the published port.
	cmd := exec.Command(l.capBin, "exec", l.ns, "--", l.helper)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/bin:/bin", "NSRUN_TEST_HELPER=serve", "NAME=user-server", "TCP=8080"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(l.uid), Gid: uint32(l.gid)}}
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line := make([]byte, 6)
	if _, err := io.ReadFull(stdout, line); err != nil || string(line) != "ready\n" {
		t.Fatalf("the user's server: %q %v", line, err)
	}
	reply, err := nstest.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", l.port), "")
	if err != nil || !strings.HasPrefix(reply, "user-server ") {
		t.Errorf("host -> published port -> the user's server: %q %v", reply, err)
	}
	for _, c := range []struct {
		cmd  []string
		code int
	}{
		{[]string{"true"}, 0},
		{[]string{"sh", "-c", "exit 7"}, 7},
		{[]string{"no-such-command"}, 127},
		{[]string{"/etc/hostname"}, 126},
		{[]string{"sh", "-c", "kill -TERM $$"}, 128 + int(syscall.SIGTERM)},
	} {
		if code, _, errOut := l.user(t, nil, c.cmd...); code != c.code {
			t.Errorf("%v: exit %d, want %d (%s)", c.cmd, code, c.code, errOut)
		}
	}
	if code, _, errOut := l.as(t, l.uid, l.gid, nil, nil, l.capBin, "exec", l.ns, "--user", "root", "--", "id"); code != 2 || !strings.Contains(errOut, "--user and --workdir need root") {
		t.Errorf("exec --user as the user: exit %d %s", code, errOut)
	}
	if code, _, errOut := l.as(t, l.uid, l.gid, nil, nil, l.capBin, "exec", l.ns, "--workdir", "/tmp", "--", "pwd"); code != 2 || !strings.Contains(errOut, "--user and --workdir need root") {
		t.Errorf("exec --workdir as the user: exit %d %s", code, errOut)
	}
}

// TestExecWithoutRootRefusals: a user not granted, a record writable by
// others, a record replaced by a symbolic link and a record left from a
// namespace deleted and made again are each refused, exit 1, with nothing
// run; without the capability the message says how to get this mode.
func TestExecWithoutRootRefusals(t *testing.T) {
	l := newCapLab(t)
	entered := func(t *testing.T, what string, uid, gid int, wantMsg string) {
		t.Helper()
		code, out, errOut := l.as(t, uid, gid, nil, nil, l.capBin, "exec", l.ns, "--", "echo", "entered")
		if code != 1 || strings.Contains(out, "entered") || !strings.Contains(errOut, wantMsg) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 1, nothing run, and %q", what, code, out, errOut, wantMsg)
		}
	}
	entered(t, "a user not granted (daemon)", 1, 1, "does not grant exec to uid 1")
	if code, out, errOut := l.as(t, l.uid, l.gid, nil, nil, l.capBin, "exec", "nsrun-no-such-ns", "--", "echo", "entered"); code != 1 || out != "" || !strings.Contains(errOut, `namespace "nsrun-no-such-ns" does not exist`) {
		t.Errorf("an unknown namespace: exit %d, %q, %q", code, out, errOut)
	}
	record := filepath.Join(netns.GrantDir, l.ns)
	os.Chmod(record, 0o666)
	entered(t, "a record writable by others", l.uid, l.gid, "that only root can write")
	os.Chmod(record, 0o644)
	copyOf := record + ".copy"
	mustRun(t, "cp", "-p", record, copyOf)
	os.Remove(record)
	os.Symlink(copyOf, record)
	entered(t, "a record replaced by a symbolic link", l.uid, l.gid, "is a symbolic link")
	os.Remove(record)
	os.Rename(copyOf, record)
	if code, out, _ := l.user(t, nil, "echo", "entered"); code != 0 || !strings.Contains(out, "entered") {
		t.Fatalf("the record put back does not grant: exit %d %q", code, out)
	}
	// The namespace deleted and made again under the same name: the old
	// record names the old one.
	mustRun(t, "ip", "netns", "del", l.ns)
	mustRun(t, "ip", "netns", "add", l.ns)
	entered(t, "a record left from a namespace deleted and made again", l.uid, l.gid, "deleted and made again")
	// Without the capability.
	code, out, errOut := l.as(t, l.uid, l.gid, nil, nil, l.plainBin, "exec", l.ns, "--", "echo", "entered")
	if code != 1 || out != "" || !strings.Contains(errOut, "sudo scripts/install.sh --exec-capability") {
		t.Errorf("without the capability: exit %d, %q, %q; want how to get this mode", code, out, errOut)
	}
}

// TestExecWithoutRootLoaderSecureMode: LD_PRELOAD and LD_LIBRARY_PATH set
// by the caller do not reach nsrun while it holds its capabilities: the
// loader runs it in secure mode (AT_SECURE), drops both, and the library
// is not loaded; the same library is loaded into nsrun without them, so
// the test can see it.
func TestExecWithoutRootLoaderSecureMode(t *testing.T) {
	l := newCapLab(t)
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Fatal("gcc is missing; scripts/install-deps.sh installs it")
	}
	src, lib, logFile := filepath.Join(l.dir, "preload.c"), filepath.Join(l.dir, "preload.so"), filepath.Join(l.dir, "preload.log")
	os.WriteFile(src, []byte(`#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/auxv.h>
#include <unistd.h>
__attribute__((constructor)) static void mark(void) {
	char exe[4096] = {0};
	readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	int fd = open(getenv("PRELOAD_LOG") ? getenv("PRELOAD_LOG") : "/dev/null", O_WRONLY | O_APPEND);
	if (fd >= 0) { dprintf(fd, "%s secure=%lu\n", exe, getauxval(AT_SECURE)); close(fd); }
}
`), 0o644)
	mustRun(t, "gcc", "-shared", "-fPIC", "-o", lib, src)
	os.WriteFile(logFile, nil, 0o666)
	os.Chmod(logFile, 0o666)
	env := []string{"LD_PRELOAD=" + lib, "LD_LIBRARY_PATH=" + l.dir, "PRELOAD_LOG=" + logFile}
	// The control: nsrun without the capability loads the library.
	l.as(t, l.uid, l.gid, nil, env, l.plainBin, "version")
	if logged, _ := os.ReadFile(logFile); !strings.Contains(string(logged), l.plainBin+" secure=0") {
		t.Fatalf("the library was not loaded into nsrun without the capability, so this test shows nothing:\n%s", logged)
	}
	os.WriteFile(logFile, nil, 0o666)
	code, out, errOut := l.user(t, env, "env")
	if code != 0 {
		t.Fatalf("exec env: exit %d %s", code, errOut)
	}
	logged, _ := os.ReadFile(logFile)
	if strings.Contains(string(logged), l.capBin) {
		t.Errorf("LD_PRELOAD reached nsrun while it held its capabilities:\n%s", logged)
	}
	if strings.Contains(out, "LD_PRELOAD=") || strings.Contains(out, "LD_LIBRARY_PATH=") {
		t.Errorf("the loader's secure mode did not drop LD_PRELOAD and LD_LIBRARY_PATH:\n%s", out)
	}
	if !strings.Contains(out, "PRELOAD_LOG="+logFile) {
		t.Errorf("the caller's environment did not reach the command:\n%s", out)
	}
}
