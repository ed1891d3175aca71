package specs

import (
	"testing"
	"time"
)

func TestShaping(t *testing.T) {
	s, err := Parse("demo.yaml", []byte(`namespaces:
  a:
    bandwidth: {ingress: 20mbit, egress: 10Mbit}
    netem: {delay: 20ms, jitter: 5ms, loss: 1%}
  b:
    bandwidth: {egress: 2mbps}
    netem: {loss: 0.5}
  c:
    bandwidth: {ingress: 1.5gbit}
  d: {}
`))
	if err != nil {
		t.Fatal(err)
	}
	a, b, c, d := s.Namespace("a"), s.Namespace("b"), s.Namespace("c"), s.Namespace("d")
	if want := (Bandwidth{Ingress: 20e6, Egress: 10e6}); a.Bandwidth != want {
		t.Errorf("a: %+v; want %+v", a.Bandwidth, want)
	}
	if want := (Netem{Delay: 20 * time.Millisecond, Jitter: 5 * time.Millisecond, Loss: 1}); a.Netem == nil || *a.Netem != want {
		t.Errorf("a's netem: %+v; want %+v", a.Netem, want)
	}
	if want := (Bandwidth{Egress: 16e6}); b.Bandwidth != want || b.Netem == nil || *b.Netem != (Netem{Loss: 0.5}) {
		t.Errorf("b: %+v, %+v; want %+v and a loss of 0.5%%", b.Bandwidth, b.Netem, want)
	}
	if c.Bandwidth != (Bandwidth{Ingress: 1.5e9}) || !d.Bandwidth.IsZero() || d.Netem != nil {
		t.Errorf("c: %+v; d: %+v, %+v", c.Bandwidth, d.Bandwidth, d.Netem)
	}
	if got := a.Bandwidth.String() + "; " + a.Netem.String(); got != "ingress 20mbit, egress 10mbit; delay 20ms, jitter 5ms, loss 1%" {
		t.Errorf("String: %q", got)
	}
	if got := c.Bandwidth.String(); got != "ingress 1500mbit" {
		t.Errorf("String: %q", got)
	}
	// The printed spec says the same.
	out, err := s.Config()
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse("demo.yaml", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, name := range []string{"a", "b", "c", "d"} {
		x, y := s.Namespace(name), again.Namespace(name)
		if x.Bandwidth != y.Bandwidth || (x.Netem == nil) != (y.Netem == nil) || (x.Netem != nil && *x.Netem != *y.Netem) {
			t.Errorf("config does not parse back to the same shaping of %s:\n%s", name, out)
		}
	}
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]uint64{
		"20mbit": 20e6, "20MBit": 20e6, "512kbit": 512e3, "1gbit": 1e9, "100kibit": 102400, "1mibit": 1 << 20,
		"8000bit": 8000, "2mbps": 16e6, "1kbps": 8000, "1kibps": 8192, "0.5gbit": 5e8, "100gbit": 100e9,
	} {
		if got, err := ParseRate(in); err != nil || got != want {
			t.Errorf("ParseRate(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"20", "20m", "fast", "20 furlongs", "7999bit", "101gbit", "-1mbit", ""} {
		if got, err := ParseRate(in); err == nil {
			t.Errorf("ParseRate(%q) = %d; want an error", in, got)
		}
	}
	for in, want := range map[uint64]string{20e6: "20mbit", 1500e3: "1500kbit", 8001: "8001bit", 10e9: "10gbit"} {
		if got := FormatRate(in); got != want {
			t.Errorf("FormatRate(%d) = %q; want %q", in, got, want)
		}
	}
}

func TestBadShaping(t *testing.T) {
	for _, c := range []struct {
		name, spec string
		line, col  int
		path, msg  string
	}{
		{"no unit", "namespaces:\n  a: {bandwidth: {ingress: 20}}\n", 2, 28, "namespaces.a.bandwidth.ingress", `"20" has no unit; write e.g. 20mbit`},
		{"unknown unit", "namespaces:\n  a: {bandwidth: {egress: 20mb}}\n", 2, 27, "namespaces.a.bandwidth.egress", `"20mb" has an unknown unit "mb"`},
		{"too slow", "namespaces:\n  a: {bandwidth: {egress: 1kbit}}\n", 2, 27, "namespaces.a.bandwidth.egress", `"1kbit" is out of range 8kbit-100gbit`},
		{"empty bandwidth", "namespaces:\n  a: {bandwidth: {}}\n", 2, 18, "namespaces.a.bandwidth", "bandwidth limits nothing"},
		{"unknown key", "namespaces:\n  a: {bandwidth: {burst: 1mbit}}\n", 2, 19, "namespaces.a.bandwidth.burst", `unknown key "burst"; known keys here: ingress, egress`},
		{"bad delay", "namespaces:\n  a: {netem: {delay: soon}}\n", 2, 22, "namespaces.a.netem.delay", `"soon" is not a duration`},
		{"long delay", "namespaces:\n  a: {netem: {delay: 1m}}\n", 2, 22, "namespaces.a.netem.delay", `delay "1m" is out of range (0-10s]`},
		{"nanoseconds", "namespaces:\n  a: {netem: {delay: 1500ns}}\n", 2, 22, "namespaces.a.netem.delay", "finer than a microsecond"},
		{"jitter alone", "namespaces:\n  a: {netem: {jitter: 5ms}}\n", 2, 14, "namespaces.a.netem", "jitter varies a delay, and netem has none"},
		{"loss range", "namespaces:\n  a: {netem: {loss: 101%}}\n", 2, 21, "namespaces.a.netem.loss", `loss "101%" is out of range`},
		{"loss word", "namespaces:\n  a: {netem: {loss: some}}\n", 2, 21, "namespaces.a.netem.loss", `loss "some" is not a percentage`},
		{"empty netem", "namespaces:\n  a: {netem: {}}\n", 2, 14, "namespaces.a.netem", "netem emulates nothing"},
	} {
		t.Run(c.name, func(t *testing.T) { expectProblem(t, c.spec, c.line, c.col, c.path, c.msg) })
	}
}
