package specs

import (
	"net/netip"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// The keys each mapping of the spec accepts, in the order the docs list them.
var (
	specKeys      = []string{"name", "subnet", "ipv6", "subnet6", "exec", "networks", "namespaces"}
	namespaceKeys = []string{"address", "address6", "egress", "networks", "ports", "run", "exec", "resources", "bandwidth", "netem"}
	execKeys      = []string{"users", "groups"}
	portKeys      = []string{"published", "target", "protocol", "host_ip"}
	processKeys   = []string{"name", "command", "workdir", "env", "user", "restart", "ready", "health", "depends_on", "resources"}
	readyKeys     = []string{"tcp", "timeout"}
)

// maxReadyTimeout bounds ready.timeout; longer waits are a typo.
const maxReadyTimeout = time.Hour

// spec decodes the root mapping and then checks the spec as a whole.
func (d *decoder) spec(root *yaml.Node) *Spec {
	s := &Spec{File: d.file, Name: ProjectNameFromFile(d.file), Dir: specDir(d.file)}
	namePos, subnetPos, subnet6Pos := position{1, 1}, position{1, 1}, position{1, 1}
	var hasNamespaces bool
	d.mapping(root, "", specKeys, func(key string, k, v *yaml.Node) {
		switch key {
		case "name":
			namePos = at(v)
			s.Name, _ = d.str(v, key)
		case "subnet":
			subnetPos = at(v)
			s.Subnet, s.SubnetSet = d.prefix(v, key, "10.203.0.0/16")
			if s.SubnetSet {
				if err := checkPool(s.Subnet); err != nil {
					d.add(at(v), key, "%v", err)
				}
			}
		case "ipv6":
			s.IPv6, _ = d.boolean(v, key)
		case "subnet6":
			subnet6Pos = at(v)
			s.Subnet6, s.Subnet6Set = d.prefix(v, key, "fd12:3456:789a::/48")
			if s.Subnet6Set {
				if err := checkPool6(s.Subnet6); err != nil {
					d.add(at(v), key, "%v", err)
				}
			}
		case "exec":
			s.Exec = d.execGrant(v, key)
		case "networks":
			d.networks(s, v)
		case "namespaces":
			hasNamespaces = true
			d.namespaces(s, v)
		}
	})
	if err := CheckProjectName(s.Name); err != nil {
		if namePos == (position{1, 1}) && root.Kind == yaml.MappingNode {
			d.add(namePos, "name", "%v (derived from the file name); set name: in the spec", err)
		} else {
			d.add(namePos, "name", "%v", err)
		}
	}
	if !hasNamespaces && root.Kind == yaml.MappingNode {
		d.add(at(root), "namespaces", "is required: a mapping of namespace names, e.g. namespaces: {ns1: {ports: [\"6000:8080\"]}}")
	}
	d.checkNetworks(s)
	if len(d.list) > 0 {
		return s
	}
	d.checkIPv6(s, subnet6Pos)
	if len(d.list) > 0 {
		return s
	}
	twinPorts(s)
	d.checkSpec(s)
	d.checkHealth(s)
	d.checkDependencies(s)
	if len(d.list) > 0 {
		return s
	}
	if s.Subnet6Set {
		if err := AssignAddresses6(s, s.Subnet6, nil, nil); err != nil {
			d.add(subnet6Pos, "subnet6", "%v; use a larger subnet6", err)
		}
	}
	if s.SubnetSet {
		if err := AssignAddresses(s, s.Subnet, nil, nil); err != nil {
			d.add(subnetPos, "subnet", "%v; use a larger subnet", err)
		}
		return s
	}
	if err := AssignAddresses(s, DefaultPools()[0], nil, nil); err != nil {
		d.add(subnetPos, "subnet", "the default %v; set subnet: to a free range", err)
	}
	return s
}

func (d *decoder) namespaces(s *Spec, n *yaml.Node) {
	ok := d.mapping(n, "namespaces", nil, func(name string, k, v *yaml.Node) {
		s.Namespaces = append(s.Namespaces, d.namespace(name, k, v, join("namespaces", name)))
	})
	if ok && len(n.Content) == 0 {
		d.add(at(n), "namespaces", "is empty; list at least one namespace")
	}
}

func (d *decoder) namespace(name string, k, v *yaml.Node, path string) *Namespace {
	ns := &Namespace{Name: name, HostLink: HostLinkName(name), Egress: true, AutoAddress: true, pos: at(k)}
	if err := CheckNamespaceName(name); err != nil {
		d.add(at(k), path, "%v", err)
	}
	if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null" {
		return ns // "ns1:" alone: every default
	}
	d.mapping(v, path, namespaceKeys, func(key string, k, v *yaml.Node) {
		switch p := join(path, key); key {
		case "address":
			if addr, ok := d.prefix(v, p, "10.203.1.2/24"); ok {
				if err := checkNamespaceAddress(addr); err != nil {
					d.add(at(v), p, "%v", err)
				}
				ns.Address, ns.HostAddress, ns.AutoAddress = addr, HostSide(addr), false
				ns.addressPos = at(v)
			}
		case "address6":
			if addr, ok := d.prefix(v, p, "fd00:1:2:3::2/64"); ok {
				if err := checkNamespaceAddress6(addr); err != nil {
					d.add(at(v), p, "%v", err)
				}
				ns.Address6, ns.HostAddress6 = addr, HostSide(addr)
				ns.address6Pos = at(v)
			}
		case "egress":
			ns.Egress, _ = d.boolean(v, p)
		case "networks":
			d.namespaceNetworks(ns, v, p)
		case "ports":
			d.sequence(v, p, func(i int, item *yaml.Node) {
				if port, ok := d.portEntry(item, index(p, i)); ok {
					port.item = i
					ns.Ports = append(ns.Ports, port)
				}
			})
		case "run":
			d.sequence(v, p, func(i int, item *yaml.Node) {
				if proc, ok := d.process(item, index(p, i)); ok {
					ns.Run = append(ns.Run, proc)
				}
			})
		case "exec":
			ns.Exec = d.execGrant(v, p)
		case "resources":
			ns.Resources, _ = d.resources(v, p)
		case "bandwidth":
			ns.Bandwidth = d.bandwidth(v, p)
		case "netem":
			ns.Netem = d.netem(v, p)
		}
	})
	d.checkProcessNames(ns, path)
	d.checkResources(ns, path)
	return ns
}

// execGrant decodes exec: {users: [...], groups: [...]}, names or ids;
// exec: {} (or null) grants nobody.
func (d *decoder) execGrant(n *yaml.Node, path string) *ExecGrant {
	g := &ExecGrant{}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return g
	}
	d.mapping(n, path, execKeys, func(key string, k, v *yaml.Node) {
		kp := join(path, key)
		d.sequence(v, kp, func(i int, item *yaml.Node) {
			name, ok := d.text(item, index(kp, i), "a user or group name, or a numeric id")
			switch {
			case !ok:
			case !validID(name):
				d.add(at(item), index(kp, i), "%s is not a user or group name, nor a numeric id", quote(name))
			case key == "users":
				g.Users, g.userPos = append(g.Users, name), append(g.userPos, at(item))
			default:
				g.Groups, g.groupPos = append(g.Groups, name), append(g.groupPos, at(item))
			}
		})
	})
	return g
}

// validID accepts what checkUser accepts for one part: a name or an id.
func validID(s string) bool { return s != "" && checkUserPart(s, "user") == nil }

// prefix decodes an address with its prefix length, e.g. 10.203.1.2/24.
func (d *decoder) prefix(n *yaml.Node, path, example string) (netip.Prefix, bool) {
	s, ok := d.str(n, path)
	if !ok {
		return netip.Prefix{}, false
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		d.add(at(n), path, "%s is not an address with a prefix length; write e.g. %s", quote(s), example)
		return netip.Prefix{}, false
	}
	return p, true
}

// portEntry decodes a port in the short form (a string) or the long form
// (a mapping with compose's names).
func (d *decoder) portEntry(n *yaml.Node, path string) (Port, bool) {
	if n.Kind != yaml.MappingNode {
		s, ok := d.text(n, path, `a port such as "6000:8080" or a mapping with published and target`)
		if !ok {
			return Port{}, false
		}
		p, err := ParsePort(s)
		if err != nil {
			d.add(at(n), path, "%v", err)
			return Port{}, false
		}
		p.pos = at(n)
		return p, true
	}
	p := Port{HostIP: netip.IPv4Unspecified(), Both: true, Protocol: TCP, pos: at(n)}
	var hasPublished, hasTarget, ok = false, false, true
	d.mapping(n, path, portKeys, func(key string, k, v *yaml.Node) {
		switch key {
		case "published":
			p.Published, hasPublished = d.portRange(v, join(path, key), "host port")
		case "target":
			p.Target, hasTarget = d.portRange(v, join(path, key), "port")
		case "protocol":
			s, good := d.str(v, join(path, key))
			if good {
				var err error
				if p.Protocol, err = ParseProtocol(s); err != nil {
					d.add(at(v), join(path, key), "%v", err)
					good = false
				}
			}
			ok = ok && good
		case "host_ip":
			s, good := d.str(v, join(path, key))
			if good {
				var err error
				if p.HostIP, err = ParseHostIP(s); err != nil {
					d.add(at(v), join(path, key), "%v", err)
					good = false
				}
				p.Both = false
			}
			ok = ok && good
		}
	})
	for _, key := range []string{"published", "target"} {
		if !d.hasKey(n, key) {
			d.add(at(n), path, "%s is required, e.g. published: 6000, target: 8080", key)
		}
	}
	if !ok || !hasPublished || !hasTarget {
		return Port{}, false
	}
	if err := checkRangeLengths(p); err != nil {
		d.add(at(n), path, "%v", err)
		return Port{}, false
	}
	return p, true
}

// portRange decodes a port number or a "FIRST-LAST" string.
func (d *decoder) portRange(n *yaml.Node, path, what string) (PortRange, bool) {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" {
		r, err := parsePortRange(n.Value, what)
		if err != nil {
			d.add(at(n), path, "%v", err)
			return PortRange{}, false
		}
		return r, true
	}
	p, ok := d.port(n, path, what)
	return PortRange{p, p}, ok
}

// hasKey reports whether mapping n has key, so that a key present with a
// bad value is not reported as missing too.
func (d *decoder) hasKey(n *yaml.Node, key string) bool {
	for i := 0; i < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return true
		}
	}
	return false
}

func (d *decoder) process(n *yaml.Node, path string) (Process, bool) {
	p := Process{Restart: RestartNo, pos: at(n)}
	var hasCommand bool
	ok := d.mapping(n, path, processKeys, func(key string, k, v *yaml.Node) {
		switch kp := join(path, key); key {
		case "name":
			if s, good := d.str(v, kp); good {
				if err := CheckProcessName(s); err != nil {
					d.add(at(v), kp, "%v", err)
				}
				p.Name = s
			}
		case "command":
			hasCommand = true
			p.Command, p.Shell = d.command(v, kp)
		case "workdir":
			if s, good := d.str(v, kp); good {
				if s == "" || strings.ContainsRune(s, 0) {
					d.add(at(v), kp, "workdir %s is not a directory path; give one (absolute, or relative to the spec's directory), or leave workdir out to start in the spec's directory", quote(s))
				}
				p.Workdir = s
			}
		case "env":
			p.Env = d.env(v, kp)
		case "user":
			if s, good := d.text(v, kp, "a user name or uid[:gid]"); good {
				if err := checkUser(s); err != nil {
					d.add(at(v), kp, "%v", err)
				}
				p.User = s
			}
		case "restart":
			p.Restart = d.restart(v, kp)
		case "ready":
			p.Ready = d.ready(v, kp)
		case "health":
			p.Health = d.health(v, kp)
		case "depends_on":
			p.DependsOn, p.dependsPos = d.dependsOn(v, kp)
		case "resources":
			p.Resources, p.resourcesPos = d.resources(v, kp)
		}
	})
	if !ok {
		return p, false
	}
	if !hasCommand {
		d.add(at(n), path, `command is required: a list such as ["python3", "-m", "http.server", "8080"] or a shell string`)
		return p, false
	}
	if p.Name == "" && len(p.Command) > 0 {
		p.Name = defaultProcessName(p)
		if err := CheckProcessName(p.Name); err != nil {
			d.add(at(n), path, "%v (derived from the command); set name:", err)
		}
	}
	return p, true
}

// defaultProcessName is the base name of the program the command runs.
func defaultProcessName(p Process) string {
	prog := p.Command[0]
	if p.Shell {
		if f := strings.Fields(p.Command[2]); len(f) > 0 {
			prog = f[0]
		}
	}
	return filepath.Base(prog)
}

// command decodes a list (exec'd directly) or a string (run by /bin/sh -c).
func (d *decoder) command(n *yaml.Node, path string) (argv []string, shell bool) {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" {
		if strings.TrimSpace(n.Value) == "" {
			d.add(at(n), path, "command is empty; give the program to run")
			return nil, false
		}
		if strings.ContainsRune(n.Value, 0) {
			d.add(at(n), path, "command contains a NUL character")
			return nil, false
		}
		return []string{"/bin/sh", "-c", n.Value}, true
	}
	if n.Kind != yaml.SequenceNode {
		d.wrongType(n, path, "a list of arguments or a shell string")
		return nil, false
	}
	if len(n.Content) == 0 {
		d.add(at(n), path, "command is an empty list; give the program to run first")
		return nil, false
	}
	d.sequence(n, path, func(i int, item *yaml.Node) {
		arg, ok := d.text(item, index(path, i), "a string argument")
		switch {
		case !ok:
		case strings.ContainsRune(arg, 0):
			d.add(at(item), index(path, i), "argument contains a NUL character")
		case i == 0 && strings.TrimSpace(arg) == "":
			d.add(at(item), index(path, i), "program name is empty")
		default:
			argv = append(argv, arg)
		}
	})
	if len(argv) != len(n.Content) {
		return nil, false
	}
	return argv, false
}

// env decodes a mapping of variable names to scalar values.
func (d *decoder) env(n *yaml.Node, path string) []string {
	var env []string
	d.mapping(n, path, nil, func(key string, k, v *yaml.Node) {
		kp := join(path, key)
		if key == "" || strings.ContainsAny(key, "=\x00") {
			d.add(at(k), kp, "environment variable name %s must be non-empty and contain no '=' or NUL", quote(key))
			return
		}
		if v.Kind != yaml.ScalarNode {
			d.wrongType(v, kp, "a string, number or boolean")
			return
		}
		value := v.Value
		if v.ShortTag() == "!!null" {
			value = ""
		}
		if strings.ContainsRune(value, 0) {
			d.add(at(v), kp, "value contains a NUL character")
			return
		}
		env = append(env, key+"="+value)
	})
	sort.Strings(env)
	return env
}

func (d *decoder) restart(n *yaml.Node, path string) Restart {
	return oneOf(d, n, path, "restart", RestartNo, RestartOnFailure, RestartAlways)
}

// oneOf decodes a key whose value is one of values; the first is the
// default, which a wrong value gets too (with a problem naming them all).
func oneOf[T ~string](d *decoder, n *yaml.Node, path, key string, values ...T) T {
	s, ok := d.str(n, path)
	if !ok {
		return values[0]
	}
	if i := slices.Index(values, T(s)); i >= 0 {
		return values[i]
	}
	words := make([]string, len(values))
	for i, v := range values {
		words[i] = string(v)
	}
	last := len(words) - 1
	d.add(at(n), path, "%s %s is not supported; use %s or %s", key, quote(s), strings.Join(words[:last], ", "), words[last])
	return values[0]
}

func (d *decoder) ready(n *yaml.Node, path string) *Ready {
	r := &Ready{Timeout: DefaultReadyTimeout}
	var hasTCP bool
	ok := d.mapping(n, path, readyKeys, func(key string, k, v *yaml.Node) {
		switch kp := join(path, key); key {
		case "tcp":
			r.TCP, hasTCP = d.port(v, kp, "ready port")
		case "timeout":
			r.Timeout = d.duration(v, kp)
		}
	})
	if ok && !hasTCP && !d.hasKey(n, "tcp") {
		d.add(at(n), path, "tcp is required: the port that accepts connections once the process is ready, e.g. ready: {tcp: 8080}")
	}
	return r
}

func (d *decoder) duration(n *yaml.Node, path string) time.Duration {
	s, ok := d.text(n, path, "a duration such as 30s")
	if !ok {
		return DefaultReadyTimeout
	}
	t, err := time.ParseDuration(s)
	switch {
	case err != nil:
		d.add(at(n), path, "%s is not a duration; write e.g. 30s or 2m", quote(s))
	case t <= 0:
		d.add(at(n), path, "timeout %s must be positive", s)
	case t > maxReadyTimeout:
		d.add(at(n), path, "timeout %s is longer than %s", s, maxReadyTimeout)
	default:
		return t
	}
	return DefaultReadyTimeout
}

// specDir is the absolute directory of the spec file. Only a working
// directory that cannot be read leaves it relative.
func specDir(file string) string {
	dir, err := filepath.Abs(filepath.Dir(file))
	if err != nil {
		return filepath.Dir(file)
	}
	return dir
}
