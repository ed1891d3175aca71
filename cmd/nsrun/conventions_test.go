package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/nsrun/nsrun/specs"
)

// TestValidateJSON: every problem with its position, and exit 2; a good
// spec with its summary, and exit 0. The shape is the README's.
func TestValidateJSON(t *testing.T) {
	bad := writeSpec(t, "bad.yaml", "namespaces:\n  ns1:\n    colour: red\n    ports: [\"6000:0\"]\n")
	code, out, _ := nsrun(t, "validate", "-o", "json", bad)
	var doc validateDoc
	if err := json.Unmarshal([]byte(out), &doc); err != nil || code != exitUsage {
		t.Fatalf("exit %d, %v\n%s", code, err, out)
	}
	if doc.Version != 1 || doc.Valid || len(doc.Problems) != 2 {
		t.Fatalf("document %+v", doc)
	}
	if p := doc.Problems[0]; p.File != bad || p.Line != 3 || p.Column != 5 || p.Path != "namespaces.ns1.colour" || !strings.Contains(p.Message, "unknown key") {
		t.Errorf("first problem %+v", p)
	}
	code, out, _ = nsrun(t, "validate", "-o", "json", "../../specs/examples/blog.yaml")
	if err := json.Unmarshal([]byte(out), &doc); err != nil || code != 0 || !doc.Valid || doc.Project != "blog" || len(doc.Problems) != 0 {
		t.Errorf("good spec: exit %d %v %+v", code, err, doc)
	}
	if code, _, errOut := nsrun(t, "validate", "-o", "yaml", bad); code != exitUsage || !strings.Contains(errOut, "use text or json") {
		t.Errorf("-o yaml: exit %d %s", code, errOut)
	}
}

// TestPlanJSON: the steps of an up on a clean machine, in order.
func TestPlanJSON(t *testing.T) {
	code, out, errOut := nsrun(t, "plan", "-o", "json", "--firewall", "nftables", "../../specs/examples/blog.yaml")
	var doc planDoc
	if err := json.Unmarshal([]byte(out), &doc); err != nil || code != 0 {
		t.Fatalf("exit %d %v %s\n%s", code, err, errOut, out)
	}
	var ops []string
	for _, s := range doc.Steps {
		ops = append(ops, s.Op)
	}
	if got := strings.Join(ops, " "); doc.Version != 1 || doc.Project != "blog" || doc.Firewall != "nftables" ||
		got != "ip-forward create-namespace create-namespace link link etc etc forwards" {
		t.Errorf("plan: %+v (ops %s)", doc, got)
	}
}

// TestConfigCommand: config prints a spec nsrun accepts, with the
// assigned addresses.
func TestConfigCommand(t *testing.T) {
	code, out, errOut := nsrun(t, "config", "../../specs/examples/blog.yaml")
	if code != 0 {
		t.Fatalf("exit %d %s", code, errOut)
	}
	s, err := specs.Parse("config.yaml", []byte(out))
	if err != nil || s.Name != "blog" || len(s.Namespaces) != 2 || !strings.Contains(out, "address: 10.203.45.214/30") {
		t.Errorf("config output: %v\n%s", err, out)
	}
}
