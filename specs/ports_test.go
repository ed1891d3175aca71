package specs

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParsePort(t *testing.T) {
	any4, lo, any6, lo6 := netip.IPv4Unspecified(), netip.MustParseAddr("127.0.0.1"), netip.IPv6Unspecified(), netip.IPv6Loopback()
	tests := []struct {
		in   string
		want Port
	}{
		{"6000:8080", Port{HostIP: any4, Both: true, Published: PortRange{6000, 6000}, Target: PortRange{8080, 8080}, Protocol: TCP}},
		{"6000:8080/tcp", Port{HostIP: any4, Both: true, Published: PortRange{6000, 6000}, Target: PortRange{8080, 8080}, Protocol: TCP}},
		{"127.0.0.1:6100:9090/udp", Port{HostIP: lo, Published: PortRange{6100, 6100}, Target: PortRange{9090, 9090}, Protocol: UDP}},
		{"7000-7002:8000-8002", Port{HostIP: any4, Both: true, Published: PortRange{7000, 7002}, Target: PortRange{8000, 8002}, Protocol: TCP}},
		{"1:65535", Port{HostIP: any4, Both: true, Published: PortRange{1, 1}, Target: PortRange{65535, 65535}, Protocol: TCP}},
		{"0.0.0.0:53:53/udp", Port{HostIP: any4, Published: PortRange{53, 53}, Target: PortRange{53, 53}, Protocol: UDP}},
		{"[::]:6000:8080", Port{HostIP: any6, Published: PortRange{6000, 6000}, Target: PortRange{8080, 8080}, Protocol: TCP}},
		{"[::1]:6000:8080/udp", Port{HostIP: lo6, Published: PortRange{6000, 6000}, Target: PortRange{8080, 8080}, Protocol: UDP}},
		{"[2001:db8::5]:7000-7001:80-81", Port{HostIP: netip.MustParseAddr("2001:db8::5"), Published: PortRange{7000, 7001}, Target: PortRange{80, 81}, Protocol: TCP}},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParsePort(tc.in)
			if err != nil {
				t.Fatalf("ParsePort(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Fatalf("ParsePort(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
			again, err := ParsePort(got.String())
			if err != nil || !samePort(again, got) {
				t.Errorf("ParsePort(%q.String() = %q) = %+v, %v; want the same port", tc.in, got.String(), again, err)
			}
		})
	}
}

func TestParsePortErrors(t *testing.T) {
	tests := map[string]string{
		"":                       "port is empty",
		"8080":                   "has no host port",
		"6000:":                  "port is missing",
		":8080":                  "host port is missing",
		"6000:8080/":             `protocol "" is not supported`,
		"6000:8080/SCTP":         `protocol "SCTP" is not supported`,
		"70000:8080":             "host port 70000 is out of range 1-65535",
		"6000:0":                 "port 0 is out of range 1-65535",
		"6000:+80":               `port "+80" is not a number`,
		"6000:8 0":               `port "8 0" is not a number`,
		"-1:80":                  `host port "-1" is not a number`,
		"6000-:8080-":            "host port is missing",
		"6001-6000:8080-8081":    "ends before it starts",
		"6000-6001:8080":         "differ in length",
		"99999999999999999999:1": "out of range",
		"a.b.c.d:1:2":            "is not an IP address",
		"::1:6000:8080":          `an IPv6 host address goes in brackets; write [::1]:6000:8080`,
		"::1:6000:6000/udp":      `write [::1]:6000:6000`,
		"fd00::5:1:2":            `write [fd00::5]:1:2`,
		"[::1:6000:8080":         "in brackets followed by a colon",
		"[::1]6000:8080":         "in brackets followed by a colon",
		"[127.0.0.1]:6000:8080":  "only IPv6 addresses go in brackets; write 127.0.0.1:6000:8080",
		"[fe80::1]:6000:8080":    "link-local",
		"[fe80::1%eth0]:1:2":     "link-local",
		"[::ffff:1.2.3.4]:1:2":   "write the IPv4 address 1.2.3.4",
		"[ff02::1]:1:2":          "cannot receive connections",
		"1.2.3.4:6000:8080:9":    "too many parts",
		"224.0.0.1:1:2":          "cannot receive connections",
		"255.255.255.255:1:2":    "cannot receive connections",
	}
	for in, want := range tests {
		t.Run(in, func(t *testing.T) {
			_, err := ParsePort(in)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("ParsePort(%q) error = %v; want one containing %q", in, err, want)
			}
		})
	}
}

func TestPortRange(t *testing.T) {
	a, b, c := PortRange{10, 20}, PortRange{20, 30}, PortRange{21, 21}
	if !a.Overlaps(b) || !b.Overlaps(a) || a.Overlaps(c) || !b.Overlaps(c) {
		t.Error("Overlaps is wrong at the edges")
	}
	if a.Len() != 11 || c.Len() != 1 || c.String() != "21" || a.String() != "10-20" {
		t.Errorf("Len/String: %d %d %q %q", a.Len(), c.Len(), c.String(), a.String())
	}
}

// FuzzParsePort: no input panics, and every accepted port prints in a
// form that parses back to itself.
func FuzzParsePort(f *testing.F) {
	for _, s := range []string{"6000:8080", "127.0.0.1:6100:9090/udp", "7000-7002:8000-8002", "8080", "[::1]:1:2", "1-:2", "::", "/udp", "0:0", "65536:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePort(s)
		if err != nil {
			return
		}
		if p.Published.Len() != p.Target.Len() || p.Published.First == 0 || p.Target.First == 0 {
			t.Fatalf("ParsePort(%q) accepted %+v", s, p)
		}
		again, err := ParsePort(p.String())
		if err != nil || !samePort(again, p) {
			t.Fatalf("ParsePort(%q) = %+v prints as %q, which parses to %+v, %v", s, p, p.String(), again, err)
		}
	})
}

func TestPortText(t *testing.T) {
	for in, full := range map[string]string{
		"6000:8080":                    "0.0.0.0:6000:8080/tcp",
		"127.0.0.1:6100:9090/udp":      "127.0.0.1:6100:9090/udp",
		"7000-7002:8000-8002":          "0.0.0.0:7000-7002:8000-8002/tcp",
		"10.1.2.3:7000-7002:80-82/tcp": "10.1.2.3:7000-7002:80-82/tcp",
		"[::]:6000:8080":               "[::]:6000:8080/tcp",
		"[::1]:53:53/udp":              "[::1]:53:53/udp",
	} {
		p, err := ParsePort(in)
		if err != nil {
			t.Fatal(err)
		}
		text, _ := p.MarshalText()
		if string(text) != full {
			t.Errorf("%s: text %q, want %q", in, text, full)
		}
		var q Port
		if err := q.UnmarshalText(text); err != nil || q.Full() != full {
			t.Errorf("%s: read back as %q, %v", in, q.Full(), err)
		}
	}
	var q Port
	if err := q.UnmarshalText([]byte("70000:1")); err == nil {
		t.Error("a bad port was read without error")
	}
}

// samePort compares ports as they print: "6000:8080" stands for a port
// published on 0.0.0.0 whether the spec wrote that address or left it out.
func samePort(a, b Port) bool {
	a.Both, b.Both = false, false
	return a == b
}

func TestSameIsFullEqual(t *testing.T) {
	var ports []Port
	for _, s := range []string{"6000:8080", "6000:8080/udp", "6000:8081", "6001:8080", "127.0.0.1:6000:8080", "0.0.0.0:6000:8080",
		"[::]:6000:8080", "[::1]:6000:8080", "6000-6001:8080-8081", "6000-6001:8080-8081/udp", "[fd00::1]:6000:8080"} {
		p, err := ParsePort(s)
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, p)
	}
	for _, p := range ports {
		for _, q := range ports {
			if got, want := p.Same(q), p.Full() == q.Full(); got != want {
				t.Errorf("%s.Same(%s) = %v, want %v (the Full forms)", p.Full(), q.Full(), got, want)
			}
		}
	}
	a, _ := ParsePort("6000:8080")
	b, _ := ParsePort("0.0.0.0:6000:8080/tcp")
	if !a.Same(b) {
		t.Errorf("%s and %s are not Same, though they publish the same", a, b)
	}
}
