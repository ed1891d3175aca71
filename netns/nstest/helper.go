package nstest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Main is TestMain for packages with integration tests. The test binary
// doubles as the test server and client: run with NSRUN_TEST_HELPER set,
// it serves or dials instead of testing, so the suite needs nothing beyond
// Go (and runs the same program inside namespaces through `ip netns
// exec`). As root, it fails the run when the tests left the host changed.
func Main(m *testing.M) {
	switch os.Getenv("NSRUN_TEST_HELPER") {
	case "serve":
		serve(os.Getenv("NAME"), os.Getenv("TCP"), os.Getenv("UDP"))
		return
	case "dial":
		os.Exit(dialMain(os.Getenv("PROTO"), os.Getenv("ADDR"), os.Getenv("SRC")))
	case "alloc":
		alloc(os.Getenv("MB"))
		return
	case "spin":
		spin(os.Getenv("THREADS"))
		return
	}
	if os.Geteuid() != 0 {
		code := m.Run()
		removeBinary()
		os.Exit(code)
	}
	before := Snapshot()
	tablesBefore := nftTables()
	_, err := os.Stat("/run/netns")
	runDirBefore := err == nil
	code := m.Run()
	if !runDirBefore {
		removeEmptyRunDir()
	}
	removeEmptyIptablesTables(tablesBefore)
	if left := leftoverProcesses(); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: processes started by the tests are still running:\n%s\n", strings.Join(left, "\n"))
		code = 1
	}
	removeBinary()
	if after := Snapshot(); after != before {
		fmt.Fprintf(os.Stderr, "FAIL: the suite left the host changed\nbefore:\n%s\nafter:\n%s\n", before, after)
		code = 1
	}
	os.Exit(code)
}

// alloc takes MB mebibytes of memory, a mebibyte at a time, each page
// written so that it is really used, printing its progress; then waits.
// Under a lower memory limit the OOM killer ends it on the way.
func alloc(mb string) {
	n, _ := strconv.Atoi(mb)
	var held [][]byte
	for i := 1; i <= n; i++ {
		b := make([]byte, 1<<20)
		for j := 0; j < len(b); j += 4096 {
			b[j] = 1
		}
		held = append(held, b)
		if i%16 == 0 {
			fmt.Printf("allocated %d MiB\n", i)
		}
	}
	fmt.Printf("allocated all %d MiB\n", len(held))
	for {
		time.Sleep(time.Hour)
	}
}

// spin keeps THREADS threads busy for ever.
func spin(threads string) {
	n, _ := strconv.Atoi(threads)
	runtime.GOMAXPROCS(n + 1)
	for range n {
		go func() {
			runtime.LockOSThread()
			for x := 0; ; x++ {
				_ = x
			}
		}()
	}
	select {}
}

// serve answers on TCP and UDP ports: each TCP connection gets
// "NAME from REMOTE\n" and then an echo of what it sends; each datagram
// gets "NAME from REMOTE". A port alone is served on every address of
// both families; "ADDR:PORT" ("[ADDR]:PORT" for IPv6) on that address.
func serve(name, tcpPorts, udpPorts string) {
	for _, p := range strings.Fields(tcpPorts) {
		ln, err := net.Listen("tcp", listenAddr(p))
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					fmt.Fprintf(c, "%s from %s\n", name, c.RemoteAddr())
					io.Copy(c, c)
				}()
			}
		}()
	}
	for _, p := range strings.Fields(udpPorts) {
		pc, err := net.ListenPacket("udp", listenAddr(p))
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		go func() {
			buf := make([]byte, 1500)
			for {
				_, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				pc.WriteTo([]byte(fmt.Sprintf("%s from %s", name, from)), from)
			}
		}()
	}
	fmt.Println("ready")
	time.Sleep(10 * time.Minute) // ended by the test, or by down
}

func listenAddr(p string) string {
	if strings.Contains(p, ":") {
		return p
	}
	return ":" + p
}

func dialMain(proto, addr, src string) int {
	reply, err := Dial(proto, addr, src)
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println(reply)
	return 0
}

// Dial connects (or sends a datagram) and returns the first line of the
// answer. It gives up after a second: test traffic never waits long. An
// address in brackets is dialled over IPv6.
func Dial(proto, addr, src string) (string, error) {
	network := proto + "4"
	if strings.HasPrefix(addr, "[") {
		network = proto + "6"
	}
	d := net.Dialer{Timeout: time.Second}
	if src != "" {
		var err error
		if proto == "udp" {
			d.LocalAddr, err = net.ResolveUDPAddr(network, src)
		} else {
			d.LocalAddr, err = net.ResolveTCPAddr(network, src)
		}
		if err != nil {
			return "", err
		}
	}
	c, err := d.Dial(network, addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if proto == "udp" {
		if _, err := c.Write([]byte("hello")); err != nil {
			return "", err
		}
		buf := make([]byte, 1500)
		n, err := c.Read(buf)
		return string(buf[:n]), err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// StartServer runs the helper server inside a namespace: it answers on
// the TCP and UDP ports (space-separated) with "NAME from CLIENT". The
// process is ended at cleanup (or earlier, by down, which kills what is
// inside).
func StartServer(t *testing.T, ns, name, tcp, udp string) {
	t.Helper()
	exe, _ := os.Executable()
	cmd := exec.Command("ip", "netns", "exec", ns, exe)
	cmd.Env = append(os.Environ(), "NSRUN_TEST_HELPER=serve", "NAME="+name, "TCP="+tcp, "UDP="+udp)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	line, _ := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		t.Fatalf("server %s in %s: %q", name, ns, line)
	}
}

// DialFrom dials from inside a namespace with the helper client.
func DialFrom(t *testing.T, ns, proto, addr, src string) (string, error) {
	t.Helper()
	exe, _ := os.Executable()
	cmd := exec.Command("ip", "netns", "exec", ns, exe)
	cmd.Env = append(os.Environ(), "NSRUN_TEST_HELPER=dial", "PROTO="+proto, "ADDR="+addr, "SRC="+src)
	out, err := cmd.CombinedOutput()
	reply := strings.TrimSpace(string(out))
	if err != nil {
		return "", fmt.Errorf("%v: %s", err, reply)
	}
	return reply, nil
}

// leftoverProcesses lists live processes running the nsrun binary built
// for the tests, or the test binary as a helper, other than this one.
func leftoverProcesses() []string {
	self, _ := os.Executable()
	var left []string
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + d.Name() + "/cmdline")
		if err != nil || len(cmdline) == 0 {
			continue // gone, or a zombie
		}
		argv0, _, _ := strings.Cut(string(cmdline), "\x00")
		if isBinary(argv0) || (argv0 == self && strings.Contains(string(cmdline), "NSRUN_TEST_HELPER")) || argv0 == self {
			left = append(left, fmt.Sprintf("pid %d: %s", pid, strings.ReplaceAll(string(cmdline), "\x00", " ")))
		}
	}
	return left
}

// nftTables lists the nftables tables, "FAMILY NAME" each.
func nftTables() []string {
	out, _ := exec.Command("nft", "list", "tables").Output()
	var tables []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "table" {
			tables = append(tables, f[1]+" "+f[2])
		}
	}
	return tables
}

// removeEmptyIptablesTables deletes the tables iptables-nft made while the
// tests ran (it makes a table the first time a rule goes in, and never
// removes it) that hold nothing now, only built-in chains with an accept
// policy and no rule: the host as before them. Tables that were there
// before, and any holding more, stay (and Snapshot compares those).
func removeEmptyIptablesTables(before []string) {
	for _, t := range nftTables() {
		family, name, _ := strings.Cut(t, " ")
		if slices.Contains(before, t) || (family != "ip" && family != "ip6") ||
			!slices.Contains([]string{"filter", "nat", "mangle", "raw", "security"}, name) {
			continue
		}
		out, err := exec.Command("nft", "-j", "list", "table", family, name).Output()
		var doc struct {
			NFTables []map[string]struct {
				Hook, Policy string
			} `json:"nftables"`
		}
		if err != nil || json.Unmarshal(out, &doc) != nil {
			continue
		}
		empty := true
		for _, obj := range doc.NFTables {
			for kind, v := range obj {
				empty = empty && (kind == "metainfo" || kind == "table" || (kind == "chain" && v.Hook != "" && v.Policy == "accept"))
			}
		}
		if empty {
			exec.Command("nft", "delete", "table", family, name).Run()
		}
	}
}

// removeEmptyRunDir removes /run/netns (a shared bind mount on itself, as
// iproute2 makes it) when the tests created it and left it empty, so the
// host is as before they ran.
func removeEmptyRunDir() {
	if entries, err := os.ReadDir("/run/netns"); err != nil || len(entries) > 0 {
		return
	}
	for i := 0; i < 5 && exec.Command("mountpoint", "-q", "/run/netns").Run() == nil; i++ {
		exec.Command("umount", "-l", "/run/netns").Run()
	}
	os.Remove("/run/netns")
}
