package specs

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Bandwidth limits what a namespace's link carries each way, in bits per
// second; 0 is no limit. Ingress is what goes into the namespace (shaped
// as it leaves the host side of the pair), Egress what comes out of it
// (shaped as it leaves the namespace side).
type Bandwidth struct {
	Ingress uint64 `json:"ingress,omitempty"`
	Egress  uint64 `json:"egress,omitempty"`
}

// IsZero reports whether no limit is set.
func (b Bandwidth) IsZero() bool { return b == Bandwidth{} }

// String writes the limits as the spec would: ingress 20mbit, egress 10mbit.
func (b Bandwidth) String() string {
	var parts []string
	if b.Ingress > 0 {
		parts = append(parts, "ingress "+FormatRate(b.Ingress))
	}
	if b.Egress > 0 {
		parts = append(parts, "egress "+FormatRate(b.Egress))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// Netem is the delay and loss added to what leaves a namespace, by the
// kernel's network emulator (sch_netem).
type Netem struct {
	Delay  time.Duration `json:"delay,omitempty"`
	Jitter time.Duration `json:"jitter,omitempty"` // delay varies by up to this either way
	Loss   float64       `json:"loss,omitempty"`   // percent of packets dropped
}

// String writes the emulation as the spec would: delay 20ms, jitter 5ms, loss 1%.
func (n Netem) String() string {
	var parts []string
	if n.Delay > 0 {
		parts = append(parts, "delay "+n.Delay.String())
	}
	if n.Jitter > 0 {
		parts = append(parts, "jitter "+n.Jitter.String())
	}
	if n.Loss > 0 {
		parts = append(parts, "loss "+FormatPercent(n.Loss))
	}
	return strings.Join(parts, ", ")
}

// Bounds of the shaping keys. Below MinRate a full-sized frame takes
// longer than the token bucket can hold (its bucket holds at most 4.29 s);
// above MaxRate its queue would not fit the kernel's 32-bit byte count.
// Longer delays than MaxDelay are no network's.
const (
	MinRate  = 8_000
	MaxRate  = 100_000_000_000
	MaxDelay = 10 * time.Second
)

// rateUnits are tc's (tc-bandwidth(7)): bits per second with decimal or
// binary multiples, or bytes per second ("bps" is bytes, as in tc).
var rateUnits = map[string]float64{
	"bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9, "tbit": 1e12,
	"kibit": 1 << 10, "mibit": 1 << 20, "gibit": 1 << 30, "tibit": 1 << 40,
	"bps": 8, "kbps": 8e3, "mbps": 8e6, "gbps": 8e9, "tbps": 8e12,
	"kibps": 8 << 10, "mibps": 8 << 20, "gibps": 8 << 30, "tibps": 8 << 40,
}

var rateSyntax = regexp.MustCompile(`^([0-9]+(\.[0-9]+)?) ?([A-Za-z]+)$`)

// ParseRate reads a rate in tc's units, in either case: 20mbit, 1.5gbit,
// 512kbit, 100kibit, or bytes per second: 2mbps. A unit is required: tc
// reads a bare number as bits per second, which is rarely what was meant.
func ParseRate(s string) (uint64, error) {
	m := rateSyntax.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		if _, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err == nil {
			return 0, fmt.Errorf("%s has no unit; write e.g. 20mbit (bits per second, as tc writes them) or 2mbps (bytes per second)", quote(s))
		}
		return 0, fmt.Errorf("%s is not a rate; write e.g. 20mbit, 512kbit or 1gbit (bits per second), or 2mbps (bytes per second)", quote(s))
	}
	mult, ok := rateUnits[strings.ToLower(m[3])]
	if !ok {
		return 0, fmt.Errorf("%s has an unknown unit %s; use bit, kbit, mbit, gbit, tbit (or kibit ... for binary multiples), or bps, kbps, mbps, gbps (bytes per second)", quote(s), quote(m[3]))
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	r := math.Round(v * mult)
	if r < MinRate || r > MaxRate {
		return 0, fmt.Errorf("%s is out of range %s-%s", quote(s), FormatRate(MinRate), FormatRate(MaxRate))
	}
	return uint64(r), nil
}

// FormatRate writes bits per second with the largest decimal unit that
// divides it, as tc does: 20mbit, 1500kbit, 8000bit.
func FormatRate(bits uint64) string {
	for _, u := range []struct {
		suffix string
		size   uint64
	}{{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}} {
		if bits >= u.size && bits%u.size == 0 {
			return strconv.FormatUint(bits/u.size, 10) + u.suffix
		}
	}
	return strconv.FormatUint(bits, 10) + "bit"
}

// FormatPercent writes a percentage as short as it goes: 1%, 0.5%.
func FormatPercent(p float64) string { return strconv.FormatFloat(p, 'f', -1, 64) + "%" }

var (
	bandwidthKeys = []string{"ingress", "egress"}
	netemKeys     = []string{"delay", "jitter", "loss"}
)

// bandwidth decodes bandwidth: {ingress: 20mbit, egress: 10mbit}.
func (d *decoder) bandwidth(n *yaml.Node, path string) Bandwidth {
	var b Bandwidth
	ok := d.mapping(n, path, bandwidthKeys, func(key string, k, v *yaml.Node) {
		kp := join(path, key)
		s, ok := d.text(v, kp, "a rate such as 20mbit")
		if !ok {
			return
		}
		r, err := ParseRate(s)
		if err != nil {
			d.add(at(v), kp, "%v", err)
			return
		}
		if key == "ingress" {
			b.Ingress = r
		} else {
			b.Egress = r
		}
	})
	if ok && len(n.Content) == 0 {
		d.add(at(n), path, "bandwidth limits nothing; give ingress (into the namespace), egress (out of it) or both, e.g. {ingress: 20mbit}, or leave it out")
	}
	return b
}

// netem decodes netem: {delay: 20ms, jitter: 5ms, loss: 1%}.
func (d *decoder) netem(n *yaml.Node, path string) *Netem {
	var out Netem
	ok := d.mapping(n, path, netemKeys, func(key string, k, v *yaml.Node) {
		kp := join(path, key)
		if key == "loss" {
			s, ok := d.text(v, kp, "a percentage such as 1%")
			if !ok {
				return
			}
			p, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s), "%"), 64)
			switch {
			case err != nil || math.IsNaN(p):
				d.add(at(v), kp, "loss %s is not a percentage; write e.g. 1%% or 0.5%%", quote(s))
			case p <= 0 || p > 100:
				d.add(at(v), kp, "loss %s is out of range (0%%-100%%]; leave loss out for none", quote(s))
			default:
				out.Loss = p
			}
			return
		}
		s, ok := d.text(v, kp, "a duration such as 20ms")
		if !ok {
			return
		}
		t, err := time.ParseDuration(s)
		switch {
		case err != nil:
			d.add(at(v), kp, "%s is not a duration; write e.g. 20ms or 500us", quote(s))
		case t <= 0 || t > MaxDelay:
			d.add(at(v), kp, "%s %s is out of range (0-%s]; leave %s out for none", key, quote(s), MaxDelay, key)
		case t%time.Microsecond != 0:
			d.add(at(v), kp, "%s %s is finer than a microsecond, which netem counts in", key, quote(s))
		case key == "delay":
			out.Delay = t
		default:
			out.Jitter = t
		}
	})
	if !ok {
		return nil
	}
	switch {
	case len(n.Content) == 0:
		d.add(at(n), path, "netem emulates nothing; give delay, jitter (with delay) or loss, e.g. {delay: 20ms}, or leave it out")
	case out.Jitter > 0 && out.Delay == 0:
		d.add(at(n), path, "jitter varies a delay, and netem has none; give delay too, e.g. {delay: 20ms, jitter: 5ms}")
	}
	return &out
}

// bandwidthNode and netemNode render the shaping keys as the spec writes them.
func bandwidthNode(b Bandwidth) *yaml.Node {
	n := mapping()
	n.Style = yaml.FlowStyle
	if b.Ingress > 0 {
		add(n, "ingress", scalar(FormatRate(b.Ingress)))
	}
	if b.Egress > 0 {
		add(n, "egress", scalar(FormatRate(b.Egress)))
	}
	return n
}

func netemNode(e *Netem) *yaml.Node {
	n := mapping()
	n.Style = yaml.FlowStyle
	if e.Delay > 0 {
		add(n, "delay", scalar(e.Delay.String()))
	}
	if e.Jitter > 0 {
		add(n, "jitter", scalar(e.Jitter.String()))
	}
	if e.Loss > 0 {
		add(n, "loss", quoted(FormatPercent(e.Loss)))
	}
	return n
}
