package specs

import (
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Health is a check the supervisor keeps running for as long as the
// process runs, inside its namespace: exactly one of HTTP, TCP and
// Command is set.
type Health struct {
	// HTTP is the URL to GET, http://ADDRESS:PORT/PATH with an IP
	// address (127.0.0.1 is the namespace's loopback); a 2xx or 3xx
	// answer is healthy. The spec may give a path alone, on the port of
	// the process's ready check, else of the namespace's first published
	// TCP port.
	HTTP string
	// TCP is a port that must accept a connection, at 127.0.0.1 or the
	// namespace's address.
	TCP uint16
	// Command runs inside the namespace as the process's user; exit
	// status 0 is healthy. A string runs by /bin/sh -c.
	Command []string

	Interval    time.Duration // between the end of a check and the next
	Timeout     time.Duration // a check that takes longer fails
	Retries     int           // consecutive failures that make it unhealthy
	StartPeriod time.Duration // failures before this, from the start, do not count
	OnFailure   OnFailure

	pos, httpPos position
	httpPath     bool // HTTP was a path: its address and port come later
}

// OnFailure is what the supervisor does with a process that turned
// unhealthy.
type OnFailure string

const (
	OnFailureNone    OnFailure = "none" // report it only
	OnFailureRestart OnFailure = "restart"
	OnFailureStop    OnFailure = "stop"
)

// Health check defaults and bounds. Kubernetes counts whole seconds, with
// a second at least, and so does nsrun.
const (
	DefaultHealthInterval = 10 * time.Second
	DefaultHealthTimeout  = 2 * time.Second
	DefaultHealthRetries  = 3
	minHealthDuration     = time.Second
	maxHealthDuration     = time.Hour
	maxHealthRetries      = 100
)

var healthKeys = []string{"http", "tcp", "command", "interval", "timeout", "retries", "start_period", "on_failure"}

// Kind is "http", "tcp" or "command".
func (h *Health) Kind() string {
	switch {
	case h.HTTP != "":
		return "http"
	case h.TCP != 0:
		return "tcp"
	}
	return "command"
}

func (d *decoder) health(n *yaml.Node, path string) *Health {
	h := &Health{Interval: DefaultHealthInterval, Timeout: DefaultHealthTimeout, Retries: DefaultHealthRetries, OnFailure: OnFailureNone, pos: at(n)}
	var kinds []string
	ok := d.mapping(n, path, healthKeys, func(key string, k, v *yaml.Node) {
		switch kp := join(path, key); key {
		case "http":
			kinds = append(kinds, key)
			h.httpPos = at(v)
			if s, good := d.str(v, kp); good {
				h.HTTP, h.httpPath = d.healthURL(s, v, kp)
			}
		case "tcp":
			kinds = append(kinds, key)
			h.TCP, _ = d.port(v, kp, "health port")
		case "command":
			kinds = append(kinds, key)
			h.Command, _ = d.command(v, kp)
		case "interval":
			h.Interval = d.healthDuration(v, kp, minHealthDuration, DefaultHealthInterval)
		case "timeout":
			h.Timeout = d.healthDuration(v, kp, minHealthDuration, DefaultHealthTimeout)
		case "start_period":
			h.StartPeriod = d.healthDuration(v, kp, 0, 0)
		case "retries":
			h.Retries = d.retries(v, kp)
		case "on_failure":
			h.OnFailure = oneOf(d, v, kp, "on_failure", OnFailureNone, OnFailureRestart, OnFailureStop)
		}
	})
	if !ok {
		return nil
	}
	if len(kinds) != 1 {
		d.add(at(n), path, "a health check needs exactly one of http, tcp and command (it has %s), e.g. health: {http: /healthz}", listOrNone(kinds))
		return nil
	}
	return h
}

func listOrNone(keys []string) string {
	if len(keys) == 0 {
		return "none"
	}
	return strings.Join(keys, " and ")
}

// healthURL reads http: a path ("/healthz", whose port comes later), or
// an http URL to an IP address and port.
func (d *decoder) healthURL(s string, n *yaml.Node, path string) (string, bool) {
	if strings.HasPrefix(s, "/") {
		if strings.ContainsAny(s, " \t\r\n\x00") {
			d.add(at(n), path, "health path %s contains white space or NUL", quote(s))
			return "", false
		}
		return s, true
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "http" || u.Host == "" || u.User != nil {
		d.add(at(n), path, "health URL %s is not an http URL such as http://127.0.0.1:8080/healthz, nor a path such as /healthz (https is not supported: use tcp or command)", quote(s))
		return "", false
	}
	if _, err := netip.ParseAddr(u.Hostname()); err != nil {
		d.add(at(n), path, "health URL %s names host %s; give an IP address (127.0.0.1 is the namespace's own loopback)", quote(s), quote(u.Hostname()))
		return "", false
	}
	if p, err := strconv.Atoi(u.Port()); err != nil || p < 1 || p > 65535 {
		d.add(at(n), path, "health URL %s has no port; write it, e.g. http://127.0.0.1:8080/healthz", quote(s))
		return "", false
	}
	return s, false
}

func (d *decoder) healthDuration(n *yaml.Node, path string, least, def time.Duration) time.Duration {
	s, ok := d.text(n, path, "a duration such as 10s")
	if !ok {
		return def
	}
	t, err := time.ParseDuration(s)
	switch {
	case err != nil:
		d.add(at(n), path, "%s is not a duration; write e.g. 10s or 1m", quote(s))
	case t < least || t < 0:
		d.add(at(n), path, "%s is shorter than %s", s, least)
	case t > maxHealthDuration:
		d.add(at(n), path, "%s is longer than %s", s, maxHealthDuration)
	case t%time.Second != 0:
		d.add(at(n), path, "%s is not a whole number of seconds (Kubernetes counts seconds)", s)
	default:
		return t
	}
	return def
}

func (d *decoder) retries(n *yaml.Node, path string) int {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		d.wrongType(n, path, "a number of checks")
		return DefaultHealthRetries
	}
	v, err := strconv.Atoi(n.Value)
	if err != nil || v < 1 || v > maxHealthRetries {
		d.add(at(n), path, "retries %s is out of range 1-%d", quote(n.Value), maxHealthRetries)
		return DefaultHealthRetries
	}
	return v
}

// dependsOn reads depends_on: a list of NAMESPACE/PROCESS, or PROCESS of
// the same namespace; resolved and checked once the spec is read
// (checkDependencies).
func (d *decoder) dependsOn(n *yaml.Node, path string) ([]string, []position) {
	if n.Kind != yaml.SequenceNode {
		d.wrongType(n, path, "a list such as [ns2/db]")
		return nil, nil
	}
	var deps []string
	var pos []position
	d.sequence(n, path, func(i int, item *yaml.Node) {
		if s, ok := d.str(item, index(path, i)); ok {
			deps = append(deps, s)
			pos = append(pos, at(item))
		}
	})
	return deps, pos
}

// checkHealth gives each path-only HTTP check its address and port: the
// process's ready port, else the namespace's first published TCP port.
func (d *decoder) checkHealth(s *Spec) {
	for _, ns := range s.Namespaces {
		for i, p := range ns.Run {
			h := p.Health
			if h == nil || !h.httpPath {
				continue
			}
			port := uint16(0)
			if p.Ready != nil {
				port = p.Ready.TCP
			} else {
				for _, pp := range ns.Ports {
					if pp.Protocol == TCP {
						port = pp.Target.First
						break
					}
				}
			}
			if port == 0 {
				d.add(h.httpPos, join(index(join(join("namespaces", ns.Name), "run"), i), "health.http"),
					"health path %s has no port to go with: the process has no ready check and the namespace publishes no TCP port; give the URL, e.g. http://127.0.0.1:8080%s", quote(h.HTTP), h.HTTP)
				continue
			}
			h.HTTP, h.httpPath = fmt.Sprintf("http://127.0.0.1:%d%s", port, h.HTTP), false
		}
	}
}

// checkDependencies resolves each depends_on entry to NAMESPACE/PROCESS
// and reports unknown ones, a process depending on itself and cycles.
func (d *decoder) checkDependencies(s *Spec) {
	type node struct {
		ns   *Namespace
		i    int
		deps []string
	}
	nodes := map[string]*node{}
	var order []string
	for _, ns := range s.Namespaces {
		for i := range ns.Run {
			key := ns.Name + "/" + ns.Run[i].Name
			nodes[key] = &node{ns: ns, i: i}
			order = append(order, key)
		}
	}
	for _, key := range order {
		nd := nodes[key]
		p := &nd.ns.Run[nd.i]
		path := join(index(join(join("namespaces", nd.ns.Name), "run"), nd.i), "depends_on")
		var resolved []string
		for j, dep := range p.DependsOn {
			full := dep
			if !strings.Contains(dep, "/") {
				full = nd.ns.Name + "/" + dep
			}
			switch {
			case nodes[full] == nil:
				d.add(p.dependsPos[j], index(path, j), "depends_on names %s, which no namespace of the spec runs; write NAMESPACE/PROCESS (or PROCESS of the same namespace)", quote(dep))
			case full == key:
				d.add(p.dependsPos[j], index(path, j), "process %s depends on itself", quote(key))
			case slices.Contains(resolved, full):
				d.add(p.dependsPos[j], index(path, j), "depends_on names %s twice", quote(full))
			default:
				resolved = append(resolved, full)
			}
		}
		p.DependsOn = resolved
		nd.deps = resolved
	}
	// A cycle is found by a depth-first walk; each is reported once, at
	// the run entry it was entered from.
	const (
		unseen = iota
		onPath
		done
	)
	mark := map[string]int{}
	var stack []string
	var walk func(key string)
	walk = func(key string) {
		mark[key] = onPath
		stack = append(stack, key)
		for _, dep := range nodes[key].deps {
			switch mark[dep] {
			case unseen:
				walk(dep)
			case onPath:
				start := 0
				for stack[start] != dep {
					start++
				}
				cycle := append(append([]string{}, stack[start:]...), dep)
				nd := nodes[dep]
				d.add(nd.ns.Run[nd.i].pos, index(join(join("namespaces", nd.ns.Name), "run"), nd.i),
					"depends_on makes a cycle: %s; remove one of these dependencies", strings.Join(cycle, " -> "))
			}
		}
		stack = stack[:len(stack)-1]
		mark[key] = done
	}
	for _, key := range order {
		if mark[key] == unseen {
			walk(key)
		}
	}
}
