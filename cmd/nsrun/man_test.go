package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestManPages writes the pages, renders each with man -l, and finds in
// it the command's examples; hidden commands get none.
func TestManPages(t *testing.T) {
	if _, err := exec.LookPath("man"); err != nil {
		if os.Getenv("NSRUN_REQUIRE_ROOT") == "1" {
			t.Fatal("man is missing; scripts/test.sh installs it (NSRUN_TEST_DEPS=1 scripts/install-deps.sh)")
		}
		t.Skip("no man")
	}
	dir := t.TempDir()
	if code, _, errOut := nsrun(t, "man", dir); code != 0 {
		t.Fatalf("nsrun man: exit %d %s", code, errOut)
	}
	var walk func(c *cobra.Command)
	seen := 0
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			walk(sub)
		}
		page := filepath.Join(dir, strings.ReplaceAll(c.CommandPath(), " ", "-")+".1")
		_, err := os.Stat(page)
		if !c.IsAvailableCommand() && c != c.Root() {
			if err == nil {
				t.Errorf("hidden command %s has a page", c.CommandPath())
			}
			return
		}
		cmd := exec.Command("man", "-P", "cat", "-l", page)
		cmd.Env = append(os.Environ(), "MANWIDTH=200")
		out, err := cmd.Output()
		if err != nil {
			t.Errorf("man -l %s: %v", page, err)
			return
		}
		seen++
		for _, line := range strings.Split(c.Example, "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.Contains(string(out), line) {
				t.Errorf("%s: the page lacks the example %q", page, line)
			}
		}
		if !strings.Contains(string(out), c.Short) && c.Short != "" && !strings.Contains(strings.Join(strings.Fields(string(out)), " "), c.Short) {
			t.Errorf("%s: the page lacks %q", page, c.Short)
		}
	}
	root := newRootCommand()
	root.InitDefaultCompletionCmd() // as Execute does
	walk(root)
	if seen < 15 {
		t.Errorf("only %d pages rendered", seen)
	}
}

// TestWriteManEscapes: text that roff would read as requests or escapes
// comes out as text, indented lines stay as they are, and flags show
// their defaults as --help does.
func TestWriteManEscapes(t *testing.T) {
	c := &cobra.Command{Use: "demo", Short: `a \ backslash`, Long: ".dot first\n'quote first\n\n  indented line\nfilled line\n## Heading"}
	c.Flags().String("name", "x", "a name")
	c.Flags().Bool("on", false, "a switch")
	var b strings.Builder
	w := bufio.NewWriter(&b)
	writeMan(w, c, "Jan 2026")
	w.Flush()
	for _, want := range []string{
		`demo \- a \e backslash`,
		"\\&.dot first\n", "\\&'quote first\n",
		".PP\n.nf\n  indented line\n.fi\nfilled line\n",
		`.SS "Heading"`,
		"\\fB\\-\\-name\\fR=\"x\"\na name\n",
		"\\fB\\-\\-on\\fR\na switch\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("the page lacks %q:\n%s", want, b.String())
		}
	}
}
