package specs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

const (
	// MaxFileSize bounds the spec file; real specs are a few KiB.
	MaxFileSize = 1 << 20
	// maxNodes bounds the YAML values walked, aliases expanded, so an alias
	// bomb costs bounded time and memory.
	maxNodes = 200_000
)

// Load reads, parses and validates the spec file at path. A spec with
// problems yields an *Error listing all of them.
func Load(path string) (*Spec, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading spec: %w; check the path", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading spec %s: %w", path, err)
	}
	return Parse(path, data)
}

// Parse parses and validates a spec; file names it in messages and gives
// the default project name.
func Parse(file string, data []byte) (*Spec, error) {
	d := &decoder{problems: problems{file: file}, budget: maxNodes}
	if len(data) > MaxFileSize {
		d.add(position{}, "", "spec is larger than %d bytes; a spec is a short YAML file", MaxFileSize)
		return nil, d.err()
	}
	root := d.document(data)
	if root == nil {
		return nil, d.err()
	}
	s := d.spec(root)
	if len(d.list) > 0 {
		return nil, d.err()
	}
	return s, nil
}

// decoder walks the YAML node tree, building the spec and collecting every
// problem with its position.
type decoder struct {
	problems
	budget int
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// document parses data into a single YAML document and returns its root
// node, or nil after recording why it cannot.
func (d *decoder) document(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	var doc yaml.Node
	err := dec.Decode(&doc)
	if errors.Is(err, io.EOF) || (err == nil && len(doc.Content) == 0) {
		d.add(position{1, 1}, "", "spec is empty; it needs at least a namespaces: mapping")
		return nil
	}
	if err != nil {
		d.addYAMLError(err)
		return nil
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		if err != nil {
			d.addYAMLError(err)
		} else {
			d.add(at(&next), "", "spec holds more than one YAML document; keep one")
		}
		return nil
	}
	return doc.Content[0]
}

func (d *decoder) addYAMLError(err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		d.add(position{line, 1}, "", "not valid YAML: %s", m[2])
		return
	}
	d.add(position{}, "", "not valid YAML: %s", msg)
}

func at(n *yaml.Node) position { return position{n.Line, n.Column} }

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// node follows aliases and charges the walk budget. It returns nil once the
// budget is spent.
func (d *decoder) node(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	d.budget--
	if d.budget == 0 {
		d.add(at(n), "", "spec has more than %d values (counting aliases expanded); a spec is a short file", maxNodes)
	}
	if d.budget <= 0 {
		return nil
	}
	return n
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	switch n.ShortTag() {
	case "!!str":
		return "a string"
	case "!!int":
		return "an integer"
	case "!!float":
		return "a number with a fraction"
	case "!!bool":
		return "true or false"
	case "!!null":
		return "nothing (null)"
	}
	return "a value of type " + n.ShortTag()
}

func (d *decoder) wrongType(n *yaml.Node, path, want string) {
	d.add(at(n), path, "expected %s, found %s", want, kindName(n))
}

// mapping calls each for every entry of the mapping n, in order. It
// reports duplicate keys, merge keys and, when known is not nil, keys not
// in known. It returns false when n is not a mapping.
func (d *decoder) mapping(n *yaml.Node, path string, known []string, each func(key string, k, v *yaml.Node)) bool {
	if n.Kind != yaml.MappingNode {
		d.wrongType(n, path, "a mapping")
		return false
	}
	seen := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := d.node(n.Content[i]), d.node(n.Content[i+1])
		if k == nil || v == nil {
			return true
		}
		switch {
		case k.Kind != yaml.ScalarNode:
			d.add(at(k), path, "keys must be plain names, found %s", kindName(k))
		case k.ShortTag() == "!!merge":
			d.add(at(k), path, "merge keys (<<) are not supported; write the fields out")
		case seen[k.Value]:
			d.add(at(k), join(path, k.Value), "duplicate key %s", quote(k.Value))
		case known != nil && !slices.Contains(known, k.Value):
			d.add(at(k), join(path, k.Value), "unknown key %s; known keys here: %s", quote(k.Value), strings.Join(known, ", "))
		default:
			seen[k.Value] = true
			each(k.Value, k, v)
		}
	}
	return true
}

// sequence calls each for every item of the list n.
func (d *decoder) sequence(n *yaml.Node, path string, each func(i int, item *yaml.Node)) {
	if n.Kind != yaml.SequenceNode {
		d.wrongType(n, path, "a list")
		return
	}
	for i, item := range n.Content {
		if item = d.node(item); item == nil {
			return
		}
		each(i, item)
	}
}

// str returns the string value of n.
func (d *decoder) str(n *yaml.Node, path string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		d.wrongType(n, path, "a string")
		return "", false
	}
	return n.Value, true
}

// text returns the text of a string or number scalar as written.
func (d *decoder) text(n *yaml.Node, path, want string) (string, bool) {
	if n.Kind == yaml.ScalarNode {
		switch n.ShortTag() {
		case "!!str", "!!int", "!!float":
			return n.Value, true
		}
	}
	d.wrongType(n, path, want)
	return "", false
}

func (d *decoder) boolean(n *yaml.Node, path string) (bool, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
		d.wrongType(n, path, "true or false")
		return false, false
	}
	var b bool
	if err := n.Decode(&b); err != nil {
		d.add(at(n), path, "expected true or false: %v", err)
		return false, false
	}
	return b, true
}

// port returns a port number (1-65535) given as an integer.
func (d *decoder) port(n *yaml.Node, path, what string) (uint16, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		d.wrongType(n, path, "a port number")
		return 0, false
	}
	v, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
	if err != nil {
		d.add(at(n), path, "%s %s is out of range 1-65535", what, quote(n.Value))
		return 0, false
	}
	p, err := checkPortNumber(v, what)
	if err != nil {
		d.add(at(n), path, "%v", err)
		return 0, false
	}
	return p, true
}
