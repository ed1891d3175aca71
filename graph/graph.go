// Package graph draws a project's topology as text: Mermaid, for
// markdown, and DOT, for graphviz: the host, each namespace with its link,
// published ports and processes, and the networks that join namespaces.
// It is pure.
package graph

import (
	"fmt"
	"slices"
	"strings"
)

// Topology is what the picture shows.
type Topology struct {
	Project    string
	Namespaces []Namespace
}

// Namespace is one namespace, with its link to the host.
type Namespace struct {
	Name        string
	Address     string // the namespace side, with its prefix length
	HostLink    string
	HostAddress string // the host side
	Egress      bool
	// Networks it is on, by name ("shared (external)" for an external
	// one): it reaches directly the namespaces on one of them.
	Networks  []string
	Ports     []Port
	Processes []Process
}

// networks are the distinct networks of the topology, in order of first
// appearance.
func (t Topology) networks() []string {
	var out []string
	for _, n := range t.Namespaces {
		for _, nw := range n.Networks {
			if !slices.Contains(out, nw) {
				out = append(out, nw)
			}
		}
	}
	return out
}

// Port is one published port.
type Port struct {
	HostIP, Published, Protocol, Target string
}

// LocalOnly reports a port published to this machine only.
func (p Port) LocalOnly() bool { return strings.HasPrefix(p.HostIP, "127.") || p.HostIP == "::1" }

func (p Port) label(ns string) string {
	host := p.HostIP
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	l := fmt.Sprintf("host %s:%s/%s -> %s:%s", host, p.Published, p.Protocol, ns, p.Target)
	if p.LocalOnly() {
		l += "\n(this machine only)"
	}
	return l
}

// Process is one run entry; State is empty when the project is not up.
type Process struct {
	Name, State string
}

// lines are what a namespace's box says, one per line.
func (n Namespace) lines() []string {
	out := []string{"namespace " + n.Name, n.Address}
	if !n.Egress {
		out = append(out, "egress: false")
	}
	for _, p := range n.Processes {
		if p.State != "" {
			out = append(out, fmt.Sprintf("%s (%s)", p.Name, p.State))
		} else {
			out = append(out, p.Name)
		}
	}
	return out
}

func (n Namespace) linkLabel() string {
	return fmt.Sprintf("%s %s\n<-> eth0 %s", n.HostLink, strings.Split(n.HostAddress, "/")[0], strings.Split(n.Address, "/")[0])
}

// Mermaid renders a flowchart for markdown.
func Mermaid(t Topology) string {
	var b strings.Builder
	b.WriteString("flowchart LR\n")
	fmt.Fprintf(&b, "  host[%s]\n", mq("host\nproject "+t.Project))
	networks := t.networks()
	for k, nw := range networks {
		fmt.Fprintf(&b, "  net%d{{%s}}\n", k, mq("network "+nw))
	}
	for i, n := range t.Namespaces {
		id := fmt.Sprintf("ns%d", i)
		fmt.Fprintf(&b, "  %s[%s]\n", id, mq(strings.Join(n.lines(), "\n")))
		fmt.Fprintf(&b, "  host ---|%s| %s\n", mq(n.linkLabel()), id)
		for j, p := range n.Ports {
			pid := fmt.Sprintf("p%d_%d", i, j)
			fmt.Fprintf(&b, "  %s([%s]) --> %s\n", pid, mq(p.label(n.Name)), id)
		}
		for _, nw := range n.Networks {
			fmt.Fprintf(&b, "  %s -.- net%d\n", id, slices.Index(networks, nw))
		}
		if !n.Egress {
			fmt.Fprintf(&b, "  style %s stroke-dasharray: 5 5\n", id)
		}
	}
	return b.String()
}

// mq quotes a Mermaid label: newlines as <br/>, quotes as entities.
func mq(s string) string {
	r := strings.NewReplacer(`"`, "#quot;", "\n", "<br/>", "<", "#lt;", ">", "#gt;")
	return `"` + r.Replace(s) + `"`
}

// DOT renders a graph for graphviz (dot -Tsvg).
func DOT(t Topology) string {
	var b strings.Builder
	fmt.Fprintf(&b, "digraph %s {\n", dq("nsrun "+t.Project))
	b.WriteString("  rankdir=LR;\n  node [shape=box, fontname=\"Helvetica\"];\n  edge [fontname=\"Helvetica\", fontsize=10];\n")
	fmt.Fprintf(&b, "  host [label=%s, shape=box3d];\n", dq("host\nproject "+t.Project))
	networks := t.networks()
	for k, nw := range networks {
		fmt.Fprintf(&b, "  net%d [label=%s, shape=hexagon, style=dotted];\n", k, dq("network "+nw))
	}
	for i, n := range t.Namespaces {
		id := fmt.Sprintf("ns%d", i)
		style := ""
		if !n.Egress {
			style = ", style=dashed"
		}
		fmt.Fprintf(&b, "  %s [label=%s%s];\n", id, dq(strings.Join(n.lines(), "\n")), style)
		fmt.Fprintf(&b, "  host -> %s [label=%s, dir=none];\n", id, dq(n.linkLabel()))
		for j, p := range n.Ports {
			pid := fmt.Sprintf("p%d_%d", i, j)
			fmt.Fprintf(&b, "  %s [label=%s, shape=cds];\n  %s -> %s;\n", pid, dq(p.label(n.Name)), pid, id)
		}
		for _, nw := range n.Networks {
			fmt.Fprintf(&b, "  %s -> net%d [dir=none, style=dotted];\n", id, slices.Index(networks, nw))
		}
	}
	b.WriteString("}\n")
	return b.String()
}

// dq quotes a DOT string: backslashes and quotes escaped, newlines as \n.
func dq(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}
