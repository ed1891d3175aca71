package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nsrun/nsrun/specs"
)

// TestGraphExamples draws every example as DOT and has graphviz render it:
// dot -Tsvg succeeds and the picture names every namespace and port.
func TestGraphExamples(t *testing.T) {
	if _, err := exec.LookPath("dot"); err != nil {
		if os.Getenv("NSRUN_REQUIRE_ROOT") == "1" {
			t.Fatal("graphviz's dot is missing; scripts/test.sh installs it (NSRUN_TEST_DEPS=1 scripts/install-deps.sh)")
		}
		t.Skip("no graphviz")
	}
	examples, _ := filepath.Glob("../../specs/examples/*.yaml")
	nested, _ := filepath.Glob("../../specs/examples/*/*.yaml")
	for _, path := range append(examples, nested...) {
		abs, _ := filepath.Abs(path)
		code, out, errOut := nsrunCmd(t, t.TempDir(), "graph", abs, "--format", "dot")
		if code != 0 {
			t.Fatalf("graph %s: exit %d %s", path, code, errOut)
		}
		cmd := exec.Command("dot", "-Tsvg")
		cmd.Stdin = strings.NewReader(out)
		svg, err := cmd.Output()
		if err != nil {
			t.Fatalf("dot -Tsvg of %s: %v\n%s", path, err, out)
		}
		text := strings.ReplaceAll(string(svg), "&#45;", "-") // as graphviz writes '-'
		s, err := specs.Load(abs)
		if err != nil {
			t.Fatal(err)
		}
		for _, ns := range s.Namespaces {
			if !strings.Contains(text, "namespace "+ns.Name) {
				t.Errorf("%s: the SVG does not name namespace %s", path, ns.Name)
			}
			for _, p := range ns.Ports {
				if want := specs.HostIPText(p.HostIP) + ":" + p.Published.String() + "/" + string(p.Protocol); !strings.Contains(text, want) {
					t.Errorf("%s: the SVG lacks port %s", path, want)
				}
			}
		}
	}
}

// TestGraphOfTheBlogSpec is the README's picture, from the spec file.
func TestGraphOfTheBlogSpec(t *testing.T) {
	abs, _ := filepath.Abs("../../specs/examples/blog.yaml")
	code, out, errOut := nsrunCmd(t, t.TempDir(), "graph", abs)
	want, err := os.ReadFile("testdata/blog.mmd")
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 || out != string(want) {
		t.Errorf("graph blog.yaml: exit %d %s\n%s\nwant:\n%s", code, errOut, out, want)
	}
	if code, _, errOut := nsrunCmd(t, t.TempDir(), "graph", abs, "--format", "svg"); code != 2 || !strings.Contains(errOut, "use mermaid or dot") {
		t.Errorf("--format svg: exit %d %s", code, errOut)
	}
}
