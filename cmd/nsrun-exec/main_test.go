package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestLinksLittle: the privileged helper links the standard library,
// golang.org/x/sys/unix and nsrun's nsexec, nothing else.
func TestLinksLittle(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	deps := strings.Fields(string(out))
	slices.Sort(deps)
	want := []string{"github.com/nsrun/nsrun/cmd/nsrun-exec", "github.com/nsrun/nsrun/internal/nsexec", "golang.org/x/sys/unix"}
	if !slices.Equal(deps, want) {
		t.Errorf("nsrun-exec links %v; want %v alone", deps, want)
	}
}

func TestParse(t *testing.T) {
	for _, c := range []struct {
		args []string
		name string
		argv []string
		ok   bool
	}{
		{[]string{"ns1", "--", "id", "-u"}, "ns1", []string{"id", "-u"}, true},
		{[]string{"ns1", "id"}, "ns1", []string{"id"}, true},
		{[]string{"ns1", "--", "--", "x"}, "ns1", []string{"--", "x"}, true},
		{[]string{"ns1", "--"}, "", nil, false},
		{[]string{"ns1"}, "", nil, false},
		{[]string{"--user", "root", "ns1", "id"}, "", nil, false},
		{nil, "", nil, false},
	} {
		name, argv, ok := parse(c.args)
		if ok != c.ok || (ok && (name != c.name || !slices.Equal(argv, c.argv))) {
			t.Errorf("parse(%q) = %q %q %v; want %q %q %v", c.args, name, argv, ok, c.name, c.argv, c.ok)
		}
	}
}

// TestCommandEnv: the command gets the caller's GOTRACEBACK back, not the
// none the Go runtime forced on the helper, and none when the caller had
// none.
func TestCommandEnv(t *testing.T) {
	got := commandEnv([]string{"A=1", "GOTRACEBACK=none", TracebackVar + "=crash", "LD_PRELOAD=/x.so"})
	if want := []string{"A=1", "LD_PRELOAD=/x.so", "GOTRACEBACK=crash"}; !slices.Equal(got, want) {
		t.Errorf("commandEnv = %q; want %q", got, want)
	}
	got = commandEnv([]string{"A=1", "GOTRACEBACK=none"})
	if want := []string{"A=1"}; !slices.Equal(got, want) {
		t.Errorf("without the caller's: commandEnv = %q; want %q", got, want)
	}
}
