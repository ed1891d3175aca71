package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nsrun/nsrun/netns/nstest"
	"golang.org/x/sys/unix"
)

// TestForeignProcessNameIsQuoted: another user's process that names
// itself with terminal escapes and holds a port a spec publishes is named
// in up's refusal quoted, not raw: no escape byte reaches root's terminal.
func TestForeignProcessNameIsQuoted(t *testing.T) {
	nstest.RequireRoot(t)
	port := 16009
	listener := exec.Command("/usr/bin/python3", "-c", fmt.Sprintf(`import ctypes, socket, time
ctypes.CDLL(None).prctl(15, b"\x1b[31mPWN\x1b]0;x\x07", 0, 0, 0)
s = socket.socket()
s.bind(("127.0.0.1", %d))
s.listen()
print("ready", flush=True)
time.sleep(300)`, port))
	startAsNobody(t, "the listener", listener)
	name := nstest.Name("fq")
	spec := writeSpec(t, name+".yaml", fmt.Sprintf("name: %s\nnamespaces:\n  %s:\n    ports: [\"127.0.0.1:%d:8080\"]\n", name, name, port))
	code, _, errOut := nsrunCmd(t, "/", "up", "-q", spec)
	if code == 0 {
		nsrunCmd(t, "/", "down", "-q", "-p", name)
		t.Fatalf("up published port %d, which another process holds", port)
	}
	want := fmt.Sprintf(`in use by "\x1b[31mPWN\x1b]0;x\a" (pid %d)`, listener.Process.Pid)
	if !strings.Contains(errOut, want) || strings.ContainsAny(errOut, "\x1b\a") {
		t.Errorf("up's refusal:\n%q\nwant it to name the process as %s, with no escape byte", errOut, want)
	}
}

// TestLogsOnATerminal: a process's log shown on a terminal has its control
// characters escaped (it cannot set the title or colours of root's
// terminal); piped, it is passed on as written.
func TestLogsOnATerminal(t *testing.T) {
	nstest.RequireRoot(t)
	name := strings.ToLower(nstest.Name("lt"))
	spec := writeSpec(t, name+".yaml", "namespaces:\n  "+name+":\n    run:\n"+
		`      - {name: p, command: 'printf ''\033[31mPWN\033]0;x\007\n''; sleep 300'}`+"\n")
	t.Cleanup(func() { nsrunCmd(t, "/", "down", "-q", "-p", name) })
	if code, _, errOut := nsrunCmd(t, "/", "up", "-q", spec); code != 0 {
		t.Fatalf("up: %s", errOut)
	}
	raw := name + "/p | \x1b[31mPWN\x1b]0;x\a\n"
	var piped string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline) && piped != raw; time.Sleep(50 * time.Millisecond) {
		_, piped, _ = nsrunCmd(t, "/", "logs", "-p", name)
	}
	if piped != raw {
		t.Fatalf("logs into a pipe = %q; want the line as written, %q", piped, raw)
	}
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nstest.Binary(t), "logs", "-p", name)
	cmd.Dir, cmd.Stdout = "/", tty
	shown := make(chan string)
	go func() { b, _ := io.ReadAll(master); shown <- string(b) }() // ends with EIO once the terminal is closed
	err = cmd.Run()
	tty.Close()
	got := <-shown
	if want := name + `/p | \x1b[31mPWN\x1b]0;x\x07`; err != nil || !strings.Contains(got, want) || strings.ContainsAny(got, "\x1b\a") {
		t.Errorf("logs on a terminal (%v) showed %q; want %q, escaped", err, got, want)
	}
}

// TestDownSaysWhoHoldsANamespace: another user's process holding a
// namespace's file open is named by down, which goes on and removes the
// rest.
func TestDownSaysWhoHoldsANamespace(t *testing.T) {
	nstest.RequireRoot(t)
	name := strings.ToLower(nstest.Name("dh"))
	spec := writeSpec(t, name+".yaml", "namespaces:\n  "+name+": {}\n")
	t.Cleanup(func() { nsrunCmd(t, "/", "down", "-q", "-p", name) })
	if code, _, errOut := nsrunCmd(t, "/", "up", "-q", spec); code != 0 {
		t.Fatalf("up: %s", errOut)
	}
	holder := exec.Command("sh", "-c", "exec 3</run/netns/"+name+"; echo ready; exec sleep 300")
	startAsNobody(t, "the holder", holder)
	code, stdout, errOut := nsrunCmd(t, "/", "down", "-q", "-p", name)
	want := fmt.Sprintf("nsrun: warning: namespace %s is held open by pid %d (sleep, uid 65534)", name, holder.Process.Pid)
	if code != 0 || !strings.Contains(errOut, want) || !strings.Contains(stdout, "is down") {
		t.Errorf("down: exit %d, %q %q; want it down, and %q", code, stdout, errOut, want)
	}
	if _, err := os.Stat("/run/netns/" + name); !os.IsNotExist(err) {
		t.Errorf("the namespace's name stays: %v", err)
	}
}

// startAsNobody starts cmd as nobody, stopped at the end of the test, and
// waits for it to print "ready".
func startAsNobody(t *testing.T, what string, cmd *exec.Cmd) {
	t.Helper()
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("%s did not start: %q %v", what, line, err)
	}
}
