package specs

import (
	"bytes"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Config renders the spec as nsrun understands it, as a spec of its own:
// the project name, the address pool, each namespace's address, ports in
// their full short form, each namespace's networks (the default one
// too), and each process's name, command, restart and
// ready timeout, defaults filled in. It parses back to the same spec.
// workdir and user are printed only when set, as written: a workdir is
// relative to the spec's directory, which the printed spec may not share,
// and the default user is root.
func (s *Spec) Config() ([]byte, error) {
	root := mapping()
	add(root, "name", scalar(s.Name))
	add(root, "subnet", scalar(s.Subnet.String()))
	if s.IPv6 {
		add(root, "ipv6", boolean(true))
		if s.Subnet6.IsValid() {
			add(root, "subnet6", scalar(s.Subnet6.String()))
		}
	}
	if s.Exec != nil {
		add(root, "exec", grant(s.Exec))
	}
	if len(s.Networks) > 0 {
		nws := mapping()
		for _, nw := range s.Networks {
			n := mapping()
			n.Style = yaml.FlowStyle
			if nw.External {
				add(n, "external", boolean(true))
			}
			add(nws, nw.Name, n)
		}
		add(root, "networks", nws)
	}
	nss := mapping()
	for _, ns := range s.Namespaces {
		n := mapping()
		add(n, "address", scalar(ns.Address.String()))
		if ns.Address6.IsValid() {
			add(n, "address6", scalar(ns.Address6.String()))
		}
		add(n, "egress", boolean(ns.Egress))
		nets := sequence()
		nets.Style = yaml.FlowStyle
		for _, name := range ns.Networks {
			nets.Content = append(nets.Content, quoted(name))
		}
		add(n, "networks", nets)
		if ns.Exec != nil {
			add(n, "exec", grant(ns.Exec))
		}
		if !ns.Resources.IsZero() {
			add(n, "resources", resourcesNode(ns.Resources))
		}
		if !ns.Bandwidth.IsZero() {
			add(n, "bandwidth", bandwidthNode(ns.Bandwidth))
		}
		if ns.Netem != nil {
			add(n, "netem", netemNode(ns.Netem))
		}
		if len(ns.Ports) > 0 {
			ports := sequence()
			for _, p := range ns.Ports {
				ports.Content = append(ports.Content, quoted(p.Full()))
			}
			add(n, "ports", ports)
		}
		if len(ns.Run) > 0 {
			run := sequence()
			for _, p := range ns.Run {
				run.Content = append(run.Content, process(p))
			}
			add(n, "run", run)
		}
		add(nss, ns.Name, n)
	}
	add(root, "namespaces", nss)
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{root}}); err != nil {
		return nil, err
	}
	return b.Bytes(), enc.Close()
}

func grant(g *ExecGrant) *yaml.Node {
	n := mapping()
	n.Style = yaml.FlowStyle
	for _, kv := range []struct {
		key   string
		names []string
	}{{"users", g.Users}, {"groups", g.Groups}} {
		if len(kv.names) > 0 {
			list := sequence()
			list.Style = yaml.FlowStyle
			for _, name := range kv.names {
				list.Content = append(list.Content, quoted(name))
			}
			add(n, kv.key, list)
		}
	}
	return n
}

func process(p Process) *yaml.Node {
	n := mapping()
	add(n, "name", scalar(p.Name))
	if p.Shell {
		add(n, "command", quoted(p.Command[2]))
	} else {
		cmd := sequence()
		cmd.Style = yaml.FlowStyle
		for _, arg := range p.Command {
			cmd.Content = append(cmd.Content, quoted(arg))
		}
		add(n, "command", cmd)
	}
	if p.Workdir != "" {
		add(n, "workdir", quoted(p.Workdir))
	}
	if len(p.Env) > 0 {
		env := mapping()
		for _, kv := range p.Env {
			k, v, _ := strings.Cut(kv, "=")
			add(env, k, quoted(v))
		}
		add(n, "env", env)
	}
	if p.User != "" {
		add(n, "user", quoted(p.User))
	}
	add(n, "restart", quoted(string(p.Restart)))
	if p.Ready != nil {
		r := mapping()
		r.Style = yaml.FlowStyle
		add(r, "tcp", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(int(p.Ready.TCP))})
		add(r, "timeout", scalar(p.Ready.Timeout.String()))
		add(n, "ready", r)
	}
	if !p.Resources.IsZero() {
		add(n, "resources", resourcesNode(p.Resources))
	}
	return n
}

func mapping() *yaml.Node  { return &yaml.Node{Kind: yaml.MappingNode} }
func sequence() *yaml.Node { return &yaml.Node{Kind: yaml.SequenceNode} }
func scalar(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}
func quoted(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s, Style: yaml.DoubleQuotedStyle}
}
func boolean(b bool) *yaml.Node {
	v := "false"
	if b {
		v = "true"
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: v}
}
func add(m *yaml.Node, key string, v *yaml.Node) { m.Content = append(m.Content, scalar(key), v) }
