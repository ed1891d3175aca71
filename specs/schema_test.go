package specs

import (
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

// TestSchemaFile fails when schemas/nsrun.schema.json is not what nsrun
// schema prints; regenerate it with: go run ./cmd/nsrun schema > schemas/nsrun.schema.json
func TestSchemaFile(t *testing.T) {
	committed, err := os.ReadFile("../schemas/nsrun.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(committed, Schema()) {
		t.Error("schemas/nsrun.schema.json differs from Schema(); run: go run ./cmd/nsrun schema > schemas/nsrun.schema.json")
	}
}

// TestSchemaKnowsEveryKey walks the decoder's keys: the schema has each
// one, and no other.
func TestSchemaKnowsEveryKey(t *testing.T) {
	for _, c := range []struct {
		what  string
		keys  []string
		props map[string]any
	}{
		{"the spec", specKeys, specProps},
		{"a namespace", namespaceKeys, namespaceProps},
		{"a port", portKeys, portProps},
		{"a process", processKeys, processProps},
		{"ready", readyKeys, readyProps},
		{"health", healthKeys, healthProps},
		{"resources", resourceKeys, resourceProps},
		{"exec", execKeys, execProps},
		{"a network", networkKeys, networkProps},
	} {
		if got, want := slices.Sorted(maps.Keys(c.props)), slices.Sorted(slices.Values(c.keys)); !slices.Equal(got, want) {
			t.Errorf("%s: the schema has keys %v; the decoder %v", c.what, got, want)
		}
		for k, v := range c.props {
			if d, _ := v.(map[string]any)["description"].(string); d == "" {
				t.Errorf("%s: key %s has no description", c.what, k)
			}
		}
	}
}

var (
	schemaOnce     sync.Once
	compiledForAll *jsonschema.Schema
)

// schemaForTests compiles the schema once for every test.
func schemaForTests(t *testing.T) *jsonschema.Schema {
	schemaOnce.Do(func() { compiledForAll = compiledSchema(t) })
	return compiledForAll
}

func compiledSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(Schema()))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("nsrun.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("nsrun.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return sch
}

// asJSON reads YAML as an editor's validator sees it: as JSON values.
func asJSON(t *testing.T, src []byte) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal(src, &v); err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// TestSchemaValidates: every example and every good spec passes both nsrun
// and the schema; every bad spec the schema can express fails both.
func TestSchemaValidates(t *testing.T) {
	sch := compiledSchema(t)
	good, _ := filepath.Glob("examples/*.yaml")
	more, _ := filepath.Glob("testdata/schema/good/*.yaml")
	for _, path := range append(good, more...) {
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(path, src); err != nil {
			t.Errorf("%s: nsrun refuses it: %v", path, err)
		}
		if err := sch.Validate(asJSON(t, src)); err != nil {
			t.Errorf("%s: the schema refuses it: %v", path, err)
		}
	}
	if len(good) < 2 || len(more) < 3 {
		t.Fatalf("only %d examples and %d good specs found", len(good), len(more))
	}
	bad, _ := filepath.Glob("testdata/schema/bad/*.yaml")
	for _, path := range bad {
		src, _ := os.ReadFile(path)
		if _, err := Parse(path, src); err == nil {
			t.Errorf("%s: nsrun accepts it", path)
		}
		if err := sch.Validate(asJSON(t, src)); err == nil {
			t.Errorf("%s: the schema accepts it", path)
		}
	}
	// The validator's own bad specs that a schema can express.
	expressible := []string{
		"unknown top-level key", "namespaces missing", "namespaces empty", "namespaces is a list",
		"namespace name with slash", "namespace name dot", "namespace name leading dash", "namespace name with space",
		"namespace name too long", "namespace is a list", "unknown namespace key", "project name uppercase",
		"project name with dot", "project name too long", "project name is a number", "subnet without length",
		"subnet IPv6", "address without length", "egress is a string", "ports not a list", "port without host port",
		"port as integer", "port zero", "port not a number", "port protocol sctp", "port host ip is a name",
		"port too many parts", "port is a list", "long port missing target",
		"long port missing published", "long port unknown key", "long port published zero",
		"long port target negative", "long port published is bool", "long port bad protocol", "long port bad host_ip",
		"run not a list", "run entry without command", "run unknown key", "command empty list", "command empty string",
		"command null", "command argument is a mapping", "command program empty", "process name with slash",
		"restart unknown", "restart boolean", "ready without tcp", "ready port zero", "ready port string",
		"ready timeout not a duration", "ready timeout without unit", "ready timeout negative", "env is a list",
		"env value is a mapping", "env name with equals", "user with space", "user uid out of range",
		"user empty group", "workdir empty", "merge key",
	}
	byName := map[string]string{}
	for _, b := range badSpecs {
		byName[b.name] = b.src
	}
	for _, name := range expressible {
		src, ok := byName[name]
		if !ok {
			t.Errorf("no bad spec named %q", name)
			continue
		}
		if err := sch.Validate(asJSON(t, []byte(src))); err == nil {
			t.Errorf("%s: the schema accepts:\n%s", name, src)
		}
	}
}

// TestExamplesNameTheSchema: every example starts with the line editors
// read, and the path it names is the schema's file.
func TestExamplesNameTheSchema(t *testing.T) {
	examples, _ := filepath.Glob("examples/*.yaml")
	nested, _ := filepath.Glob("examples/*/*.yaml")
	for _, path := range append(examples, nested...) {
		src, _ := os.ReadFile(path)
		first, _, _ := bytes.Cut(src, []byte("\n"))
		rel, ok := bytes.CutPrefix(first, []byte("# yaml-language-server: $schema="))
		if !ok {
			t.Errorf("%s starts with %q; want the yaml-language-server line", path, first)
			continue
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(path), string(rel))); err != nil {
			t.Errorf("%s names %s: %v", path, rel, err)
		}
	}
}

// TestConfig: what config prints is a spec that parses, prints itself
// again (so each address, port and process is what nsrun understood), and
// passes the schema.
func TestConfig(t *testing.T) {
	sch := compiledSchema(t)
	examples, _ := filepath.Glob("examples/*.yaml")
	nested, _ := filepath.Glob("examples/*/*.yaml")
	good, _ := filepath.Glob("testdata/schema/good/*.yaml")
	for _, path := range append(append(examples, nested...), good...) {
		s, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		out, err := s.Config()
		if err != nil {
			t.Fatal(err)
		}
		again, err := Parse(path, out)
		if err != nil {
			t.Errorf("%s: config does not parse: %v\n%s", path, err, out)
			continue
		}
		// Everything config prints is what it read back: the same text.
		if out2, _ := again.Config(); !bytes.Equal(out, out2) {
			t.Errorf("%s: config of config differs:\n%s\n%s", path, out, out2)
		}
		if err := sch.Validate(asJSON(t, out)); err != nil {
			t.Errorf("%s: config fails the schema: %v\n%s", path, err, out)
		}
	}
}

func TestConfigFillsDefaults(t *testing.T) {
	s := mustParse(t, "namespaces:\n  ns1:\n    ports: [\"6000:8080\"]\n    run:\n      - command: python3 -m http.server\n        ready: {tcp: 8000}\n")
	out, err := s.Config()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"name: demo\n", "subnet: 10.203.0.0/16\n", "address: ", "egress: true", `"0.0.0.0:6000:8080/tcp"`,
		"name: python3", `command: "python3 -m http.server"`, `restart: "no"`, "ready: {tcp: 8000, timeout: 30s}"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("config lacks %q:\n%s", want, out)
		}
	}
}
