package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
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
	"time"

	"github.com/nsrun/nsrun/internal/nsexec"
	"github.com/nsrun/nsrun/netns/nstest"
	"golang.org/x/sys/unix"
)

// capLab is the setup of the unprivileged exec tests: a test user (made
// and removed by the test), nsrun beside nsrun-exec with its file
// capabilities (capBin, capHelper) and nsrun beside one without
// (plainBin), in directories every user can read, and a project whose
// spec grants exec to the user and to group nogroup (nobody's).
type capLab struct {
	dir, capBin, capHelper, plainBin, helper string
	uid, gid                                 int
	ns, project                              string
	port                                     int
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
	plain := filepath.Join(l.dir, "plain")
	os.Mkdir(plain, 0o755)
	l.capBin, l.capHelper, l.plainBin, l.helper = filepath.Join(l.dir, "nsrun"), filepath.Join(l.dir, "nsrun-exec"), filepath.Join(plain, "nsrun"), filepath.Join(l.dir, "helper")
	self, _ := os.Executable()
	for _, c := range [][2]string{{nstest.Binary(t), l.capBin}, {nstest.HelperBinary(t), l.capHelper}, {nstest.Binary(t), l.plainBin},
		{nstest.HelperBinary(t), filepath.Join(plain, "nsrun-exec")}, {self, l.helper}} {
		mustRun(t, "cp", c[0], c[1])
		os.Chmod(c[1], 0o755)
	}
	mustRun(t, "setcap", "cap_dac_override,cap_setpcap,cap_sys_admin+p", l.capHelper)
	// The namespace has resource limits: every command joins its cgroup.
	spec := writeSpec(t, l.project+".yaml", fmt.Sprintf("name: %s\nexec: {users: [%s], groups: [nogroup]}\nnamespaces:\n  %s:\n    ports: [\"%d:8080\"]\n    resources: {pids: 200}\n", l.project, name, l.ns, l.port))
	if code, _, errOut := nsrunCmd(t, "/", "up", "-q", spec); code != 0 {
		t.Fatalf("up: %s", errOut)
	}
	t.Cleanup(func() { nsrunCmd(t, "/", "down", "-q", "-p", l.project) })
	return l
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
	return string(out)
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
	if code, _, errOut := l.as(t, l.uid, l.gid, nil, nil, l.capBin, "exec", l.ns, "--user", "root", "--", "id"); code != 2 || !strings.Contains(errOut, "--user, --workdir and --cgroup need root") {
		t.Errorf("exec --user as the user: exit %d %s", code, errOut)
	}
	if code, _, errOut := l.as(t, l.uid, l.gid, nil, nil, l.capBin, "exec", l.ns, "--workdir", "/tmp", "--", "pwd"); code != 2 || !strings.Contains(errOut, "--user, --workdir and --cgroup need root") {
		t.Errorf("exec --workdir as the user: exit %d %s", code, errOut)
	}
}

// TestExecWithoutRootInCgroup: the granted user's command runs in the
// namespace's cgroup for exec, with no capability left; a helper
// installed without cap_dac_override refuses, and runs nothing, rather
// than run the command outside the namespace's limits.
func TestExecWithoutRootInCgroup(t *testing.T) {
	l := newCapLab(t)
	code, out, errOut := l.user(t, nil, "cat", "/proc/self/cgroup", "/proc/self/status")
	if code != 0 || !strings.Contains(out, ":/nsrun/"+l.ns+"/exec\n") || !strings.Contains(out, "CapPrm:\t0000000000000000\n") {
		t.Errorf("the granted user's command: exit %d %s\n%s", code, errOut, out)
	}
	old := filepath.Join(l.dir, "old")
	os.Mkdir(old, 0o755)
	for _, c := range [][2]string{{l.capBin, filepath.Join(old, "nsrun")}, {l.capHelper, filepath.Join(old, "nsrun-exec")}} {
		mustRun(t, "cp", c[0], c[1])
		os.Chmod(c[1], 0o755)
	}
	mustRun(t, "setcap", "cap_setpcap,cap_sys_admin+p", filepath.Join(old, "nsrun-exec"))
	writable := filepath.Join(l.dir, "user")
	os.Mkdir(writable, 0o755)
	os.Chown(writable, l.uid, l.gid)
	marker := filepath.Join(writable, "ran")
	if code, _, errOut := l.user(t, nil, "sh", "-c", "echo > "+marker); code != 0 {
		t.Fatalf("the user cannot write the marker: %s", errOut) // else its absence below proves nothing
	}
	os.Remove(marker)
	code, _, errOut = l.as(t, l.uid, l.gid, nil, nil, filepath.Join(old, "nsrun"), "exec", l.ns, "--", "sh", "-c", "echo > "+marker)
	if code != 1 || !strings.Contains(errOut, "lacks cap_dac_override") || !strings.Contains(errOut, "scripts/install.sh --exec-capability") {
		t.Errorf("exec through a helper without cap_dac_override: exit %d, %q; want 1 and how to install it", code, errOut)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the command ran outside the namespace's limits")
	}
	// The namespace's leaf for exec removed by hand: refused, nothing run,
	// never outside the limits.
	leaf := filepath.Join(nsexec.CgroupDirs(nsexec.CgroupRoot, l.ns)[0], nsexec.CgroupExecLeaf)
	if err := os.Remove(leaf); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = l.user(t, nil, "sh", "-c", "echo > "+marker)
	if code != 1 || !strings.Contains(errOut, "joining the cgroup of namespace") || !strings.Contains(errOut, "run nsrun up again") {
		t.Errorf("exec with the leaf gone: exit %d, %q; want 1 and the cause", code, errOut)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the command ran outside the namespace's limits")
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
	record := filepath.Join(nsexec.GrantDir, l.ns)
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
	// The namespace deleted and made again under the same name, the old
	// one truly gone: the new one has the old one's nsfs inode, as the
	// kernel gives it once the old one is freed. The record names the old
	// one.
	remakeWithInode(t, l.ns)
	entered(t, "a record left from a namespace deleted and made again", l.uid, l.gid, "deleted and made again")
	// Without the capability.
	code, out, errOut := l.as(t, l.uid, l.gid, nil, nil, l.plainBin, "exec", l.ns, "--", "echo", "entered")
	if code != 1 || out != "" || !strings.Contains(errOut, "sudo scripts/install.sh --exec-capability") {
		t.Errorf("without the capability: exit %d, %q, %q; want how to get this mode", code, out, errOut)
	}
}

// TestExecWithoutRootEnvironment: the command gets the caller's
// environment as it was, loader and C library variables and GOTRACEBACK
// included (the command has no privilege for them to abuse), while no
// library the caller names is ever loaded into the privileged helper: it
// is a static program, and a library preloaded into nsrun itself (which
// holds nothing) and into the command shows that the variable did reach
// both.
func TestExecWithoutRootEnvironment(t *testing.T) {
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
	env := []string{"LD_PRELOAD=" + lib, "LD_LIBRARY_PATH=" + l.dir, "PRELOAD_LOG=" + logFile, "TMPDIR=/var/tmp",
		"LOCALDOMAIN=example.test", "TZDIR=/usr/share/zoneinfo", "GOTRACEBACK=crash"}
	code, out, errOut := l.user(t, env, "env")
	if code != 0 {
		t.Fatalf("exec env: exit %d %s", code, errOut)
	}
	for _, kv := range env {
		if !strings.Contains(out, "\n"+kv+"\n") {
			t.Errorf("%s did not reach the command:\n%s", kv, out)
		}
	}
	if strings.Contains(out, "NSRUN_EXEC_GOTRACEBACK") {
		t.Errorf("the variable that carries GOTRACEBACK past the helper reached the command:\n%s", out)
	}
	logged, _ := os.ReadFile(logFile)
	if !strings.Contains(string(logged), l.capBin+" secure=0") || !strings.Contains(string(logged), "/env secure=0") {
		t.Fatalf("the library was not loaded into nsrun and the command, so this test shows nothing:\n%s", logged)
	}
	if strings.Contains(string(logged), l.capHelper) {
		t.Errorf("LD_PRELOAD reached nsrun-exec, which holds capabilities:\n%s", logged)
	}
	if out, err := exec.Command("ldd", l.capHelper).CombinedOutput(); !strings.Contains(string(out), "not a dynamic executable") {
		t.Errorf("nsrun-exec is not a static program (ldd: %v):\n%s", err, out)
	}
}

// tracer is a Python program that runs a command traced from its start
// (PTRACE_TRACEME, then exec), continuing it through every stop: run as
// the user, the tracer holds no capability.
const tracer = `import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
pid = os.fork()
if pid == 0:
    libc.ptrace(0, 0, None, None)
    os.execv(sys.argv[1], sys.argv[1:])
while True:
    _, status = os.waitpid(pid, 0)
    if os.WIFEXITED(status):
        sys.exit(os.WEXITSTATUS(status))
    if os.WIFSIGNALED(status):
        sys.exit(128 + os.WTERMSIG(status))
    sig = os.WSTOPSIG(status)
    libc.ptrace(7, pid, None, 0 if sig == 5 else sig)
`

// TestExecWithoutRootBlocksAttacks keeps the attacks of the security
// review blocked, one per class: a granted user tracing nsrun-exec from
// its start (the kernel does not give a traced program its file
// capabilities when the tracer has none), and a user not granted who
// forges a record in a user namespace of their own, over a tmpfs mounted
// on the grant directory (file capabilities of the host are not a user
// namespace's); neither gets the command run.
func TestExecWithoutRootBlocksAttacks(t *testing.T) {
	l := newCapLab(t)
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatal("python3 is missing; scripts/install-deps.sh installs it")
	}
	// The helper itself, traced from its exec: nsrun's own exec of it may
	// come from a thread the tracer does not trace (Go's threads are not
	// traced unless asked), and then the helper runs untraced, as it
	// should for a granted user.
	code, out, errOut := l.as(t, l.uid, l.gid, nil, nil, "/usr/bin/python3", "-c", tracer, l.capHelper, l.ns, "--", "echo", "entered")
	if code != 1 || strings.Contains(out, "entered") || !strings.Contains(errOut, "does not have its capabilities") {
		t.Errorf("traced from its start: exit %d, stdout %q, stderr %q; want exit 1, nothing run, no capabilities", code, out, errOut)
	}
	// The control: untraced, the same user gets in.
	if code, out, errOut := l.user(t, nil, "echo", "entered"); code != 0 || !strings.Contains(out, "entered") {
		t.Fatalf("untraced, the granted user: exit %d, %q %q", code, out, errOut)
	}

	record, err := os.ReadFile(filepath.Join(nsexec.GrantDir, l.ns))
	if err != nil {
		t.Fatal(err)
	}
	var g nsexec.Grant
	if err := json.Unmarshal(record, &g); err != nil {
		t.Fatal(err)
	}
	g.UIDs = []uint32{0, 1} // root in the user namespace, and daemon
	forged, _ := json.Marshal(g)
	for _, run := range []string{l.capBin + " exec", l.capHelper} {
		script := fmt.Sprintf(`mount -t tmpfs none %[1]s && printf '%%s' '%[2]s' >%[1]s/%[3]s && chmod 644 %[1]s/%[3]s && %[4]s %[3]s -- echo entered`,
			nsexec.GrantDir, forged, l.ns, run)
		code, out, errOut = l.as(t, 1, 1, nil, nil, "/usr/bin/unshare", "-Urm", "sh", "-c", script)
		if code == 0 || strings.Contains(out, "entered") || errOut == "" {
			t.Errorf("%s with a record forged in a user namespace: exit %d, stdout %q, stderr %q; want a refusal, nothing run", run, code, out, errOut)
		}
	}
}

// TestExecWithoutRootRefusedHelper holds nsrun-exec where a caller could
// try the most: refused inside the namespace (a record left from a
// namespace made again: the cookie differs), after it raised its
// capabilities, it writes why to a pipe the caller has filled, and waits
// there. By then no thread has an effective capability (the one that
// raised them has given up all it had); the caller can
// neither attach to it nor read its /proc files (it is not dumpable); and
// SIGQUIT with GOTRACEBACK=crash in its environment prints the signal's
// name and nothing else (the Go runtime's secure mode: no stacks, no
// registers, no addresses).
func TestExecWithoutRootRefusedHelper(t *testing.T) {
	l := newCapLab(t)
	mustRun(t, "ip", "netns", "del", l.ns)
	mustRun(t, "ip", "netns", "add", l.ns) // a new cookie: the record is refused
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	size, err := unix.FcntlInt(w.Fd(), unix.F_SETPIPE_SZ, 4096)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(make([]byte, size)) // full: the next write waits
	cmd := exec.Command(l.capBin, "exec", l.ns, "--", "echo", "entered")
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/bin:/bin", "GOTRACEBACK=crash"}
	cmd.Stderr = w
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(l.uid), Gid: uint32(l.gid)}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	pid := cmd.Process.Pid
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if exe == l.capHelper && blockedInWrite(pid) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for nsrun-exec (%q) to wait in its write", exe)
		}
	}
	if raisedCapabilities(pid) {
		t.Error("refused, nsrun-exec still has effective capabilities while it says why")
	}
	code, out, errOut := l.as(t, l.uid, l.gid, nil, nil, "/usr/bin/python3", "-c",
		"import ctypes, sys; libc = ctypes.CDLL(None, use_errno=True); print(libc.ptrace(16, int(sys.argv[1]), None, None), ctypes.get_errno())", strconv.Itoa(pid))
	if strings.TrimSpace(out) != fmt.Sprintf("-1 %d", syscall.EPERM) {
		t.Errorf("PTRACE_ATTACH to the privileged helper: %q (exit %d, %s); want -1 EPERM", out, code, errOut)
	}
	for _, f := range []string{"environ", "mem", "maps"} {
		code, out, _ := l.as(t, l.uid, l.gid, nil, nil, "/bin/cat", fmt.Sprintf("/proc/%d/%s", pid, f))
		if code == 0 {
			t.Errorf("the caller read /proc/%d/%s of the privileged helper: %q", pid, f, out)
		}
	}
	syscall.Kill(pid, syscall.SIGQUIT)
	rest, _ := io.ReadAll(r)
	cmd.Wait()
	printed := strings.TrimLeft(string(rest), "\x00")
	for _, leak := range []string{"goroutine ", "PC=", "rip ", "runtime.", "0x"} {
		if strings.Contains(printed, leak) {
			t.Errorf("SIGQUIT with GOTRACEBACK=crash made the privileged helper print %q:\n%s", leak, printed)
		}
	}
	if !strings.Contains(printed, "SIGQUIT") {
		t.Errorf("the helper did not die of the SIGQUIT, so this test shows nothing; it printed:\n%s", printed)
	}
}

// raisedCapabilities reports whether a thread of the process has an
// effective capability.
func raisedCapabilities(pid int) bool {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, task := range tasks {
		status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, task.Name()))
		for _, line := range strings.Split(string(status), "\n") {
			field, v, _ := strings.Cut(line, ":\t")
			if field == "CapEff" && strings.Trim(v, "0") != "" {
				return true
			}
		}
	}
	return false
}

// blockedInWrite reports whether a thread of the process waits in a pipe
// write.
func blockedInWrite(pid int) bool {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, task := range tasks {
		if wchan, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/wchan", pid, task.Name())); strings.HasSuffix(string(wchan), "pipe_write") {
			return true
		}
	}
	return false
}

// remakeWithInode deletes a named namespace and makes one of that name
// again with the same nsfs inode number, which the kernel hands out again
// once the old namespace is freed: namespaces made meanwhile are kept,
// under other names (removed at the end of the test), until one gets the
// number, so that none of the lower free numbers is taken twice.
func remakeWithInode(t *testing.T, name string) {
	t.Helper()
	inode := func(name string) uint64 {
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join("/run/netns", name), &st); err != nil {
			t.Fatal(err)
		}
		return st.Ino
	}
	old := inode(name)
	mustRun(t, "ip", "netns", "del", name)
	for i, deadline := 0, time.Now().Add(2*time.Minute); ; i++ {
		mustRun(t, "ip", "netns", "add", name)
		if inode(name) == old {
			return
		}
		if time.Now().After(deadline) || i == 500 {
			t.Fatalf("no namespace got the old one's inode %d in %d tries; the test cannot show the old record refused", old, i+1)
		}
		// Keep this one under another name, and try again.
		filler := fmt.Sprintf("%sf%d", name, i)
		f, err := os.Create(filepath.Join("/run/netns", filler))
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		t.Cleanup(func() { exec.Command("ip", "netns", "del", filler).Run() })
		if err := syscall.Mount(filepath.Join("/run/netns", name), filepath.Join("/run/netns", filler), "none", syscall.MS_BIND, ""); err != nil {
			t.Fatal(err)
		}
		mustRun(t, "ip", "netns", "del", name)
		time.Sleep(100 * time.Millisecond)
	}
}
