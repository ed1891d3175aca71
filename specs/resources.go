package specs

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Resources are limits on what the processes of a namespace (or of one
// of its processes) may use together: zero is no limit.
type Resources struct {
	Memory int64   `json:"memory,omitempty"` // bytes
	CPUs   float64 `json:"cpus,omitempty"`   // cores: 0.5 is half of one, 2 two
	PIDs   int64   `json:"pids,omitempty"`   // processes and threads
}

// Bounds of each limit. Below MinMemory a process hardly starts (Docker
// refuses less than 6M too); a CPU quota of less than 1 ms per 100 ms
// period is the kernel's floor; more pids than the kernel's PID_MAX_LIMIT
// cannot exist.
const (
	MinMemory = 6 << 20
	MinCPUs   = 0.01
	MaxCPUs   = 1024
	MaxPIDs   = 4 << 20
)

// IsZero reports whether no limit is set.
func (r Resources) IsZero() bool { return r == Resources{} }

// String writes the limits as the spec would: memory 256M, cpus 0.5, pids 64.
func (r Resources) String() string {
	var parts []string
	if r.Memory > 0 {
		parts = append(parts, "memory "+FormatBytes(r.Memory))
	}
	if r.CPUs > 0 {
		parts = append(parts, "cpus "+FormatCPUs(r.CPUs))
	}
	if r.PIDs > 0 {
		parts = append(parts, "pids "+strconv.FormatInt(r.PIDs, 10))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// Within reports the first limit of r above the same limit of outer
// ("memory 512M above 256M"); "" when r fits. A limit outer does not
// set bounds nothing.
func (r Resources) Within(outer Resources) string {
	switch {
	case outer.Memory > 0 && r.Memory > outer.Memory:
		return fmt.Sprintf("memory %s is above the namespace's %s", FormatBytes(r.Memory), FormatBytes(outer.Memory))
	case outer.CPUs > 0 && r.CPUs > outer.CPUs:
		return fmt.Sprintf("cpus %s is above the namespace's %s", FormatCPUs(r.CPUs), FormatCPUs(outer.CPUs))
	case outer.PIDs > 0 && r.PIDs > outer.PIDs:
		return fmt.Sprintf("pids %d is above the namespace's %d", r.PIDs, outer.PIDs)
	}
	return ""
}

// CPUPeriod is the period of the CPU quota, in microseconds (the
// kernel's default, as Docker uses); CPUQuota is the quota of cpus in it.
const CPUPeriod = 100000

// CPUQuota is the quota in microseconds per CPUPeriod that cpus makes.
func CPUQuota(cpus float64) int64 { return int64(math.Round(cpus * CPUPeriod)) }

// FormatBytes writes a byte count with the largest binary unit that
// divides it: 268435456 is 256M, 1536M stays 1536M.
func FormatBytes(n int64) string {
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// FormatSize writes a byte count for people, to one decimal: 12.3M.
func FormatSize(n int64) string {
	for _, u := range []struct {
		suffix string
		size   float64
	}{{"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if float64(n) >= u.size {
			return strconv.FormatFloat(float64(n)/u.size, 'f', 1, 64) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// FormatCPUs writes a CPU count as short as it goes: 0.5, 2.
func FormatCPUs(c float64) string { return strconv.FormatFloat(c, 'f', -1, 64) }

// memoryUnits is compose's (and Docker's) syntax for memory: a number,
// optionally with a binary unit, b, k, m, g or t, in either case,
// optionally followed by b ("kb", "MB", "GiB" all mean the unit).
var memoryUnits = regexp.MustCompile(`^([0-9]+(\.[0-9]+)?) ?([kKmMgGtT]i?[bB]?|[bB])?$`)

// ParseBytes reads a memory size in compose's units: 268435456, 256M,
// 256m, 256MB, 256MiB, 0.5G. Multiples are binary, as in compose.
func ParseBytes(s string) (int64, error) {
	m := memoryUnits.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("%s is not a size; write bytes, or a number with K, M, G or T (binary multiples, as in compose), e.g. 256M", quote(s))
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, fmt.Errorf("%s is not a size: %v", quote(s), err)
	}
	mult := 1.0
	if m[3] != "" {
		switch strings.ToLower(m[3][:1]) {
		case "k":
			mult = 1 << 10
		case "m":
			mult = 1 << 20
		case "g":
			mult = 1 << 30
		case "t":
			mult = 1 << 40
		}
	}
	if v*mult >= math.MaxInt64/2 {
		return 0, fmt.Errorf("%s is too large", quote(s))
	}
	return int64(v * mult), nil
}

var resourceKeys = []string{"memory", "cpus", "pids"}

// resources decodes resources: {memory: 256M, cpus: 0.5, pids: 64}.
func (d *decoder) resources(n *yaml.Node, path string) (Resources, position) {
	var r Resources
	d.mapping(n, path, resourceKeys, func(key string, k, v *yaml.Node) {
		switch kp := join(path, key); key {
		case "memory":
			s, ok := d.text(v, kp, "a size such as 256M")
			if !ok {
				return
			}
			b, err := ParseBytes(s)
			switch {
			case err != nil:
				d.add(at(v), kp, "%v", err)
			case b < MinMemory:
				d.add(at(v), kp, "memory %s is below the least a process needs, %s; give more, or leave memory out for no limit", quote(s), FormatBytes(MinMemory))
			default:
				r.Memory = b
			}
		case "cpus":
			s, ok := d.text(v, kp, "a number of cores such as 0.5 or 2")
			if !ok {
				return
			}
			c, err := strconv.ParseFloat(s, 64)
			switch {
			case err != nil || math.IsNaN(c) || math.IsInf(c, 0):
				d.add(at(v), kp, "cpus %s is not a number of cores; write e.g. 0.5 (half a core) or 2", quote(s))
			case c < MinCPUs || c > MaxCPUs:
				d.add(at(v), kp, "cpus %s is out of range %s-%d; give a fraction of cores such as 0.5, or leave cpus out for no limit", quote(s), FormatCPUs(MinCPUs), MaxCPUs)
			default:
				r.CPUs = c
			}
		case "pids":
			s, ok := d.text(v, kp, "a number of processes such as 64")
			if !ok {
				return
			}
			p, err := strconv.ParseInt(s, 10, 64)
			switch {
			case err != nil:
				d.add(at(v), kp, "pids %s is not a whole number; write e.g. 64", quote(s))
			case p < 1 || p > MaxPIDs:
				d.add(at(v), kp, "pids %s is out of range 1-%d; leave pids out for no limit", quote(s), MaxPIDs)
			default:
				r.PIDs = p
			}
		}
	})
	return r, at(n)
}

// Limited reports whether the namespace or one of its processes has
// limits.
func (ns *Namespace) Limited() bool {
	return !ns.Resources.IsZero() || slices.ContainsFunc(ns.Run, func(p Process) bool { return !p.Resources.IsZero() })
}

// checkResources reports the processes whose own limits are above their
// namespace's.
func (d *decoder) checkResources(ns *Namespace, path string) {
	for i, p := range ns.Run {
		if why := p.Resources.Within(ns.Resources); why != "" {
			d.add(p.resourcesPos, index(join(path, "run"), i)+".resources", "%s; a process's limits nest inside its namespace's: lower it, or raise the namespace's", why)
		}
	}
}

// resourcesNode renders limits as the spec writes them.
func resourcesNode(r Resources) *yaml.Node {
	n := mapping()
	n.Style = yaml.FlowStyle
	if r.Memory > 0 {
		add(n, "memory", scalar(FormatBytes(r.Memory)))
	}
	if r.CPUs > 0 {
		add(n, "cpus", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!float", Value: FormatCPUs(r.CPUs)})
	}
	if r.PIDs > 0 {
		add(n, "pids", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(r.PIDs, 10)})
	}
	return n
}
