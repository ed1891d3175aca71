package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nsrun/nsrun/netns/nstest"
)

// TestSystemdUnitVerifies runs systemd-analyze verify on the template unit,
// instantiated, and the metrics unit, in a root of the test's own: the binary where the unit
// names it, systemd's own units beside it. Nothing is printed for a good
// unit; a warning or a missing program is a failure.
func TestSystemdUnitVerifies(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		if os.Getenv("NSRUN_REQUIRE_ROOT") == "1" {
			t.Fatal("systemd-analyze is missing; scripts/test.sh installs it (NSRUN_TEST_DEPS=1 scripts/install-deps.sh)")
		}
		t.Skip("no systemd-analyze")
	}
	root := t.TempDir()
	for _, dir := range []string{"usr/local/bin", "etc/systemd/system", "usr/lib/systemd"} {
		os.MkdirAll(filepath.Join(root, dir), 0o755)
	}
	run := func(name string, args ...string) {
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v %s", name, args, err, out)
		}
	}
	run("cp", nstest.Binary(t), filepath.Join(root, "usr/local/bin/nsrun"))
	run("cp", "../../contrib/systemd/nsrun@.service", "../../contrib/systemd/nsrun-metrics.service", filepath.Join(root, "etc/systemd/system/"))
	run("cp", "-a", "/usr/lib/systemd/system", filepath.Join(root, "usr/lib/systemd/"))
	out, err := exec.Command("systemd-analyze", "verify", "--man=no", "--root="+root, "nsrun@blog.service", "nsrun-metrics.service").CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestNotify: up --attach under a NOTIFY_SOCKET (as systemd's Type=notify
// gives it) sends READY=1 only once the ready check passed, STOPPING=1 on
// SIGTERM, and the host is as before after it exits; the processes do not
// inherit the socket.
func TestNotify(t *testing.T) {
	nstest.RequireRoot(t)
	name := strings.ToLower(nstest.Name("sd"))
	port := 16700
	spec := writeSpec(t, name+".yaml", "namespaces:\n  "+name+":\n    ports: [\"16700:8080\"]\n    run:\n      - name: web\n"+
		"        command: sleep 1; env > /tmp/"+name+".env; exec python3 -m http.server 8080\n        ready: {tcp: 8080}\n")
	t.Cleanup(func() { os.Remove("/tmp/" + name + ".env") })
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	before := nstest.Snapshot()
	cmd := exec.Command(nstest.Binary(t), "up", "--attach", spec)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	var errOut strings.Builder
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); nsrunCmd(t, "/", "down", "-q", "-p", name) })
	msg := receive(t, conn)
	if !strings.HasPrefix(msg, "READY=1") {
		t.Fatalf("first message %q; want READY=1\n%s", msg, errOut.String())
	}
	// At READY=1 the port answers, from the host, at once.
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 2*time.Second)
	if err != nil {
		t.Errorf("READY=1 was sent before the port answered: %v", err)
	} else {
		c.Close()
	}
	if env, _ := os.ReadFile("/tmp/" + name + ".env"); strings.Contains(string(env), "NOTIFY_SOCKET") {
		t.Error("the project's process inherited NOTIFY_SOCKET")
	}
	cmd.Process.Signal(os.Interrupt) // as systemd's SIGTERM
	if msg := receive(t, conn); !strings.HasPrefix(msg, "STOPPING=1") {
		t.Errorf("after the signal %q; want STOPPING=1", msg)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("up --attach: %v\n%s", err, errOut.String())
	}
	if after := nstest.Snapshot(); after != before {
		t.Errorf("the host is not as before:\n%s\n%s", before, after)
	}
}

func receive(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no message from up --attach: %v", err)
	}
	return string(buf[:n])
}
