// Package export carries a spec beyond one machine: it renders the
// objects a Kubernetes cluster runs it as (an nsrun namespace is a Pod:
// one network namespace shared by several processes) and the Compose file
// docker compose runs it as. It is pure: it reads a parsed spec and writes
// YAML, refusing, all problems at once, what cannot be carried.
package export

import (
	"bytes"
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"strings"

	"github.com/nsrun/nsrun/specs"
	"gopkg.in/yaml.v3"
)

// Images says which image runs each run entry: one for every entry, and
// one per entry ("NS/PROC") that overrides it.
type Images struct {
	Default string
	ByEntry map[string]string // "NS/PROC" -> image
}

// ParseImages reads --image values: IMG, or NS/PROC=IMG.
func ParseImages(values []string) (Images, error) {
	im := Images{ByEntry: map[string]string{}}
	for _, v := range values {
		key, img, per := strings.Cut(v, "=")
		switch {
		case !per && v == "":
			return im, fmt.Errorf("--image is empty; give an image such as python:3.12-slim, or NS/PROC=IMAGE")
		case !per && im.Default != "":
			return im, fmt.Errorf("--image %q: a default image is given twice (%q); give the others as NS/PROC=IMAGE", v, im.Default)
		case !per:
			im.Default = v
		case img == "" || !strings.Contains(key, "/"):
			return im, fmt.Errorf("--image %q: write NS/PROC=IMAGE, e.g. ns1/web=python:3.12-slim", v)
		default:
			im.ByEntry[key] = img
		}
	}
	return im, nil
}

// image is the image of a run entry; "" when none is given.
func (im Images) image(ns, proc string) string {
	if img, ok := im.ByEntry[ns+"/"+proc]; ok {
		return img
	}
	return im.Default
}

// unknownEntries lists the NS/PROC keys that name no run entry of s.
func (im Images) unknownEntries(s *specs.Spec) []string {
	var out []string
	for _, key := range slices.Sorted(maps.Keys(im.ByEntry)) {
		if !hasEntry(s, key) {
			out = append(out, fmt.Sprintf("--image %s=...: the spec has no run entry %s; the entries are %s", key, key, strings.Join(entries(s), ", ")))
		}
	}
	return out
}

func hasEntry(s *specs.Spec, key string) bool { return slices.Contains(entries(s), key) }

// entries lists the spec's run entries as NS/PROC.
func entries(s *specs.Spec) []string {
	var out []string
	for _, ns := range s.Namespaces {
		for _, p := range ns.Run {
			out = append(out, ns.Name+"/"+p.Name)
		}
	}
	return out
}

// idle lists the namespaces that run nothing: neither export carries
// them (a pod, or a service, needs a process).
func idle(s *specs.Spec) []string {
	var out []string
	for _, ns := range s.Namespaces {
		if len(ns.Run) == 0 {
			out = append(out, ns.Name)
		}
	}
	return out
}

// Refused is what an export cannot carry: every problem, each with its
// reason and what to do.
type Refused struct {
	What     string // "Kubernetes" or "Compose"
	Problems []string
}

func (r *Refused) Error() string {
	return fmt.Sprintf("the spec cannot be exported to %s (%d problem(s)); nothing was printed:\n  %s",
		r.What, len(r.Problems), strings.Join(r.Problems, "\n  "))
}

// refusal returns problems as a *Refused, or nil when there are none.
func refusal(what string, problems []string) error {
	if len(problems) == 0 {
		return nil
	}
	return &Refused{What: what, Problems: problems}
}

var (
	dns1035 = regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)
	dns1123 = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	numeric = regexp.MustCompile(`^[0-9]+$`)
)

// checkLabel reports a name that is not a DNS-1035 label (Kubernetes'
// rule for Service names), or not a DNS-1123 one when only that is asked.
func checkLabel(name, what string, rfc1035 bool) string {
	re, rule := dns1123, "a DNS-1123 label: lowercase letters, digits and '-', starting and ending with a letter or digit"
	if rfc1035 {
		re, rule = dns1035, "a DNS-1035 label: lowercase letters, digits and '-', starting with a letter and ending with a letter or digit"
	}
	if len(name) > 63 || !re.MatchString(name) {
		return fmt.Sprintf("%s %q is not %s, at most 63 characters; rename it in the spec", what, name, rule)
	}
	return ""
}

// numericUser splits a numeric "UID[:GID]"; ok is false for names.
func numericUser(u string) (uid, gid string, ok bool) {
	uid, gid, _ = strings.Cut(u, ":")
	if !numeric.MatchString(uid) || (gid != "" && !numeric.MatchString(gid)) {
		return "", "", false
	}
	return uid, gid, true
}

// everyAddress reports whether a port is published on every host address
// of its family (0.0.0.0 or ::), which is what a cluster can carry.
func everyAddress(p specs.Port) bool { return p.HostIP.IsUnspecified() }

// published lists a namespace's ports as the spec wrote them: without
// the IPv6 twin that ipv6: true gives a port written without a host
// address ("6000:8080" is both families to Compose, and one port to a
// cluster).
func published(ns *specs.Namespace) []specs.Port {
	var out []specs.Port
	for _, p := range ns.Ports {
		if !(p.Both && p.Is6()) {
			out = append(out, p)
		}
	}
	return out
}

// YAML building: ordered mappings, as the output reads best in a fixed
// order (apiVersion, kind, metadata, spec).

func mapping(kv ...any) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode}
	for i := 0; i+1 < len(kv); i += 2 {
		if v := node(kv[i+1]); v != nil {
			n.Content = append(n.Content, scalar(kv[i].(string)), v)
		}
	}
	return n
}

func sequence(items ...any) *yaml.Node {
	n := &yaml.Node{Kind: yaml.SequenceNode}
	for _, it := range items {
		if v := node(it); v != nil {
			n.Content = append(n.Content, v)
		}
	}
	return n
}

// node turns a value into a node; nil (and an empty string) is left out.
func node(v any) *yaml.Node {
	switch v := v.(type) {
	case nil:
		return nil
	case *yaml.Node:
		return v
	case string:
		if v == "" {
			return nil
		}
		return str(v)
	case int:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: fmt.Sprint(v)}
	case bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: fmt.Sprint(v)}
	case []string:
		n := &yaml.Node{Kind: yaml.SequenceNode}
		for _, s := range v {
			n.Content = append(n.Content, str(s))
		}
		return n
	}
	panic(fmt.Sprintf("export: no YAML for %T", v))
}

func scalar(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Value: s} }

// str is a string scalar: the encoder quotes it where YAML would read
// something else; a multi-line one is a literal block.
func str(s string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
	switch {
	case strings.Contains(strings.TrimSuffix(s, "\n"), "\n"):
		n.Style = yaml.LiteralStyle
	case yaml11.MatchString(s):
		n.Style = yaml.DoubleQuotedStyle
	}
	return n
}

// yaml11 matches what a YAML 1.1 reader (and so some tools) takes for a
// boolean or a number, though YAML 1.2 reads a string: "no", "on",
// "6000:8080" (sexagesimal).
var yaml11 = regexp.MustCompile(`^(?i:y|n|yes|no|on|off)$|^[0-9][0-9:._-]*$`)

// wrap breaks a line of comment text at spaces to about 76 columns.
func wrap(text string) []string {
	var out []string
	line := ""
	for _, w := range strings.Fields(text) {
		if line != "" && len(line)+1+len(w) > 76 {
			out = append(out, line)
			line = "  " + w
			continue
		}
		if line == "" {
			line = w
		} else {
			line += " " + w
		}
	}
	return append(out, line)
}

// document renders one YAML document, with a comment above it.
func document(b *bytes.Buffer, comment string, n *yaml.Node) error {
	if b.Len() > 0 {
		b.WriteString("---\n")
	}
	if comment != "" {
		for _, line := range strings.Split(comment, "\n") {
			b.WriteString(strings.TrimRight("# "+line, " ") + "\n")
		}
	}
	enc := yaml.NewEncoder(b)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return err
	}
	return enc.Close()
}

// share is the limits of run entry i of a namespace, as a container's of
// its own: the process's own limit where it has one, else an even share
// of the namespace's (the containers of a pod, the services of a Compose
// file, are each limited, never together), so that together they stay
// within the namespace's.
func share(ns *specs.Namespace, i int) specs.Resources {
	own, n := ns.Run[i].Resources, int64(len(ns.Run))
	out := own
	if out.Memory == 0 && ns.Resources.Memory > 0 {
		out.Memory = max(ns.Resources.Memory/n/(1<<20)*(1<<20), specs.MinMemory)
	}
	if out.CPUs == 0 && ns.Resources.CPUs > 0 {
		out.CPUs = max(math.Floor(ns.Resources.CPUs/float64(n)*1000)/1000, 0.001)
	}
	if out.PIDs == 0 && ns.Resources.PIDs > 0 {
		out.PIDs = max(ns.Resources.PIDs/n, 1)
	}
	return out
}

// limitedSpec reports whether a namespace that runs something has limits,
// which the outputs' headers explain.
func limitedSpec(s *specs.Spec) bool {
	for _, ns := range s.Namespaces {
		if len(ns.Run) > 0 && ns.Limited() {
			return true
		}
	}
	return false
}

// shapingUse reports whether a namespace that runs something has
// bandwidth limits, and whether one has netem.
func shapingUse(s *specs.Spec) (shaped, emulated bool) {
	for _, ns := range s.Namespaces {
		if len(ns.Run) > 0 {
			shaped = shaped || !ns.Bandwidth.IsZero()
			emulated = emulated || ns.Netem != nil
		}
	}
	return shaped, emulated
}
