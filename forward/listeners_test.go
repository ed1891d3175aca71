package forward

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/nsrun/nsrun/specs"
)

func TestParseProcNet(t *testing.T) {
	tcp := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1770 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1111 1 0000000000000000 100 0 0 10 0
   1: 00000000:1771 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2222 1 0000000000000000 100 0 0 10 0
   2: 0100007F:A1B2 0100007F:1770 01 00000000:00000000 00:00000000 00000000     0        0 3333 1 0000000000000000 20 4 30 10 -1
`
	got, err := ParseProcNet(strings.NewReader(tcp), specs.TCP)
	if err != nil {
		t.Fatal(err)
	}
	want := []Listener{
		{Protocol: specs.TCP, Addr: netip.MustParseAddr("127.0.0.1"), Port: 6000, Inode: 1111},
		{Protocol: specs.TCP, Addr: netip.MustParseAddr("0.0.0.0"), Port: 6001, Inode: 2222},
	}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("ParseProcNet = %+v, want %+v", got, want)
	}
	udp6 := `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  1: 00000000000000000000000000000000:1770 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4444 2 0000000000000000 0
`
	got, err = ParseProcNet(strings.NewReader(udp6), specs.UDP)
	if err != nil || len(got) != 1 || got[0].Addr != netip.IPv6Unspecified() || got[0].Port != 6000 {
		t.Errorf("ParseProcNet(udp6) = %+v, %v", got, err)
	}
}

func TestListenerBlocks(t *testing.T) {
	l := Listener{Protocol: specs.TCP, Addr: netip.MustParseAddr("127.0.0.1"), Port: 6000}
	for in, want := range map[string]bool{
		"6000:80":           true,
		"5999-6001:80-82":   true,
		"127.0.0.1:6000:80": true,
		"192.0.2.1:6000:80": false,
		"6001:80":           false,
		"6000:80/udp":       false,
	} {
		if got := l.Blocks(specs.MustParsePort(in)); got != want {
			t.Errorf("listener on 127.0.0.1:6000 blocks %s = %v, want %v", in, got, want)
		}
	}
	for addr, cases := range map[string]map[string]bool{
		"0.0.0.0": {"[::]:6000:80": false, "[::1]:6000:80": false, "6000:80": true},
		"::":      {"[::]:6000:80": true, "[::1]:6000:80": true, "6000:80": true, "127.0.0.1:6000:80": true}, // maybe dual-stack
		"::1":     {"[::]:6000:80": true, "[::1]:6000:80": true, "[fd00::1]:6000:80": false, "6000:80": false, "127.0.0.1:6000:80": false},
	} {
		l := Listener{Protocol: specs.TCP, Addr: netip.MustParseAddr(addr), Port: 6000}
		for in, want := range cases {
			if got := l.Blocks(specs.MustParsePort(in)); got != want {
				t.Errorf("listener on %s port 6000 blocks %s = %v, want %v", addr, in, got, want)
			}
		}
	}
}

// TestListenersFindsThisProcess binds a loopback port and finds it, with
// this process as its owner.
func TestListenersFindsThisProcess(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p := uint16(ln.Addr().(*net.TCPAddr).Port)
	ls, err := Listeners(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		if l.Port == p && l.Protocol == specs.TCP {
			if l.PID != os.Getpid() {
				t.Errorf("listener on %d owned by %d, want %d", p, l.PID, os.Getpid())
			}
			return
		}
	}
	t.Errorf("listener on port %d not found among %d", p, len(ls))
}

func TestListenersOnPortsOnly(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p := ln.Addr().(*net.TCPAddr).Port
	ls, err := Listeners([]specs.Port{specs.MustParsePort(fmt.Sprintf("%d:80", p))})
	if err != nil || len(ls) != 1 || ls[0].PID != os.Getpid() {
		t.Errorf("Listeners on port %d = %+v, %v", p, ls, err)
	}
	if ls, _ := Listeners([]specs.Port{specs.MustParsePort(fmt.Sprintf("%d:80/udp", p))}); len(ls) != 0 {
		t.Errorf("a TCP listener blocks a UDP port: %+v", ls)
	}
}
