package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExportCommand: nsrun export prints what the export package's
// golden files hold, refuses a spec it cannot carry with exit 2 and every
// problem, and refuses bad flags as usage errors.
func TestExportCommand(t *testing.T) {
	abs, _ := filepath.Abs("../../specs/examples/blog.yaml")
	for _, c := range []struct {
		args   []string
		golden string
	}{
		{[]string{"export", "kubernetes", abs, "--image", "python:3.12-slim"}, "blog.k8s.yaml"},
		{[]string{"export", "compose", abs, "--image", "python:3.12-slim", "--check", `ns1/web=python3 -c 'import socket; socket.create_connection(("127.0.0.1", 8080))'`}, "blog.compose.yaml"},
	} {
		code, out, errOut := nsrunCmd(t, t.TempDir(), c.args...)
		want, err := os.ReadFile(filepath.Join("../../export/testdata", c.golden))
		if err != nil {
			t.Fatal(err)
		}
		if code != 0 || out != string(want) {
			t.Errorf("nsrun %s: exit %d, stderr %s\noutput differs from export/testdata/%s:\n%s", strings.Join(c.args, " "), code, errOut, c.golden, out)
		}
	}
	full, _ := filepath.Abs("../../specs/examples/full.yaml")
	code, out, errOut := nsrunCmd(t, t.TempDir(), "export", "kubernetes", full, "--image", "img")
	if code != 2 || out != "" || !strings.Contains(errOut, "cannot be exported to Kubernetes (3 problem(s))") || !strings.Contains(errOut, `user "nobody" is a name`) {
		t.Errorf("export of full.yaml: exit %d, stdout %q, stderr %s", code, out, errOut)
	}
	for _, args := range [][]string{
		{"export", "kubernetes", abs},                                          // no image
		{"export", "kubernetes", abs, "--image", "a", "--image", "b"},          // two defaults
		{"export", "kubernetes", abs, "--image", "a", "--publish", "nodeport"}, // no such way
		{"export", "compose", abs, "--image", "a", "--check", "web"},           // not NS/PROC=COMMAND
		{"export", "openshift", abs},
	} {
		if code, out, errOut := nsrunCmd(t, t.TempDir(), args...); code != 2 || out != "" || errOut == "" {
			t.Errorf("nsrun %s: exit %d, stdout %q, stderr %q; want a usage error", strings.Join(args, " "), code, out, errOut)
		}
	}
}
