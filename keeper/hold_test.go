package keeper

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nsrun/nsrun/specs"
)

// freePort returns a TCP and UDP port that nothing is bound to on any
// address, by binding one and letting it go.
func freePort(t *testing.T) uint16 {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", ":0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if c, err := net.ListenPacket("udp", fmt.Sprintf(":%d", port)); err == nil {
			c.Close()
			return uint16(port)
		}
	}
	t.Fatal("no free port")
	return 0
}

func tryBind(network, addr string) error {
	var err error
	if strings.HasPrefix(network, "udp") {
		var c net.PacketConn
		if c, err = net.ListenPacket(network, addr); err == nil {
			c.Close()
		}
		return err
	}
	var l net.Listener
	if l, err = net.Listen(network, addr); err == nil {
		l.Close()
	}
	return err
}

// TestHolder: a held port cannot be bound, by TCP or UDP, on its address
// or the wildcard; an IPv6 hold leaves IPv4 alone; a port no longer wanted
// is let go; HeldPorts gives every port of a range once.
func TestHolder(t *testing.T) {
	p, q := freePort(t), freePort(t)
	ports := HeldPorts([]specs.Port{
		specs.MustParsePort(fmt.Sprintf("%d:80", p)),
		specs.MustParsePort(fmt.Sprintf("%d:80", p)), // twice: held once
		specs.MustParsePort(fmt.Sprintf("%d:53/udp", p)),
		specs.MustParsePort(fmt.Sprintf("[::]:%d:80", q)),
	})
	if len(ports) != 3 {
		t.Fatalf("HeldPorts: %v; want 3", ports)
	}
	var h Holder
	t.Cleanup(func() { h.Hold(nil) })
	if err := h.Hold(ports); err != nil {
		t.Fatal(err)
	}
	for _, b := range [][2]string{{"tcp4", fmt.Sprintf("0.0.0.0:%d", p)}, {"tcp4", fmt.Sprintf("127.0.0.1:%d", p)}, {"udp4", fmt.Sprintf("0.0.0.0:%d", p)},
		{"tcp6", fmt.Sprintf("[::]:%d", q)}, {"tcp6", fmt.Sprintf("[::1]:%d", q)}} {
		if err := tryBind(b[0], b[1]); !errors.Is(err, syscall.EADDRINUSE) {
			t.Errorf("bind %s %s while held: %v; want address in use", b[0], b[1], err)
		}
	}
	if err := tryBind("tcp4", fmt.Sprintf("0.0.0.0:%d", q)); err != nil {
		t.Errorf("[::]:%d held blocks IPv4: %v", q, err)
	}
	if err := h.Hold(ports[:1]); err != nil || h.Len() != 1 {
		t.Fatalf("Hold of fewer: %v, %d held", err, h.Len())
	}
	if err := tryBind("udp4", fmt.Sprintf("0.0.0.0:%d", p)); err != nil {
		t.Errorf("a port no longer held does not bind: %v", err)
	}
	// A port a host process holds already is said so, and the others held.
	l, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", q))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	taken := HeldPort{Protocol: specs.TCP, Addr: netip.AddrPortFrom(netip.IPv4Unspecified(), q)}
	err = h.Hold(append(ports[:1:1], taken))
	if err == nil || !strings.Contains(err.Error(), "holding published port 0.0.0.0:"+fmt.Sprint(q)+"/tcp") || h.Len() != 1 || !h.Missing() {
		t.Errorf("Hold of a port in use: %v, %d held, missing %t", err, h.Len(), h.Missing())
	}
	l.Close()
	if err := h.Hold(append(ports[:1:1], taken)); err != nil || h.Len() != 2 || h.Missing() {
		t.Errorf("Hold once the host process let go: %v, %d held, missing %t", err, h.Len(), h.Missing())
	}
}

// TestServeHolds: "hold" on the keeper's socket runs the hold and answers
// once it is done, with its error; "changes" answers the count of the
// host's changes, or its error; another question gets no answer.
func TestServeHolds(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var calls atomic.Int32
	var fail atomic.Value
	fail.Store("")
	done := make(chan struct{})
	go func() {
		defer close(done)
		Serve(ctx, dir, func() error {
			calls.Add(1)
			if msg := fail.Load().(string); msg != "" {
				return errors.New(msg)
			}
			return nil
		}, func() (string, error) {
			if msg := fail.Load().(string); msg != "" {
				return "", errors.New(msg)
			}
			return "k-7", nil
		})
	}()
	if err := ask(ctx, dir); err != nil || calls.Load() != 1 {
		t.Fatalf("ask: %v after %d holds", err, calls.Load())
	}
	if n, err := Changes(dir); n != "k-7" || err != nil {
		t.Errorf("Changes: %q, %v; want k-7", n, err)
	}
	msg := "holding published port 0.0.0.0:6000/tcp: bind: address already in use"
	fail.Store(msg)
	if err := ask(ctx, dir); err == nil || err.Error() != msg {
		t.Errorf("ask with a failing hold: %v", err)
	}
	if n, err := Changes(dir); err == nil || !strings.Contains(err.Error(), "error: "+msg) {
		t.Errorf("Changes with a failing count: %q, %v", n, err)
	}
	if line := question(t, dir, "count"); line != "" || calls.Load() != 2 {
		t.Errorf("another question: answered %q after %d holds", line, calls.Load())
	}
	cancel()
	<-done
	if _, err := os.Stat(Socket(dir)); err == nil {
		t.Error("the socket stays after Serve ended")
	}
}

// TestRetryHoldsOnceLetGo: a port a host process held when the keeper
// tried is held once the process lets it go.
func TestRetryHoldsOnceLetGo(t *testing.T) {
	p := freePort(t)
	l, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", p))
	if err != nil {
		t.Fatal(err)
	}
	want := []HeldPort{{Protocol: specs.TCP, Addr: netip.AddrPortFrom(netip.IPv4Unspecified(), p)}}
	var h Holder
	t.Cleanup(func() { h.Hold(nil) })
	hold := func() error { return h.Hold(want) }
	if err := hold(); err == nil || !h.Missing() {
		t.Fatalf("Hold of a port in use: %v, missing %t", err, h.Missing())
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go h.Retry(ctx, 10*time.Millisecond, hold)
	l.Close()
	for deadline := time.Now().Add(10 * time.Second); h.Len() != 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the port is not held 10 s after the host process let it go")
		}
	}
	if err := tryBind("tcp4", fmt.Sprintf("0.0.0.0:%d", p)); !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("bind after Retry held it: %v", err)
	}
}

// question asks the keeper's socket of dir q and returns its answer.
func question(t *testing.T, dir, q string) string {
	t.Helper()
	conn, err := net.DialTimeout("unix", Socket(dir), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintln(conn, q)
	line, _ := bufio.NewReader(conn).ReadString('\n')
	return line
}
