package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nsrun/nsrun/netns/nstest"
)

// TestUpFromAnotherDirectory: a spec's relative paths are taken from the
// spec's directory, as compose takes them from the compose file's: a
// process without workdir starts there, a relative workdir is below it, a
// command given as ./app.sh is found, whatever directory up runs in; and
// an up from elsewhere finds the project up to date.
func TestUpFromAnotherDirectory(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.DumpOnFailure(t)
	specDir, elsewhere := t.TempDir(), t.TempDir()
	project, ns := nstest.Name("wd"), nstest.Name("wd")
	script := "#!/bin/sh\npwd > \"$OUT\"\nexec sleep 300\n"
	for _, dir := range []string{specDir, filepath.Join(specDir, "sub")} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "app.sh"), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	spec := filepath.Join(specDir, "app.yaml")
	src := fmt.Sprintf(`name: %s
namespaces:
  %s:
    run:
      - {name: here, command: [./app.sh], env: {OUT: %s/here.out}}
      - {name: below, command: [./app.sh], workdir: sub, env: {OUT: %s/below.out}}
`, project, ns, specDir, specDir)
	if err := os.WriteFile(spec, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nsrunCmd(t, elsewhere, "down", "-q", "-p", project) })
	if code, _, errOut := nsrunCmd(t, elsewhere, "up", "-q", spec); code != 0 {
		t.Fatalf("up from another directory: exit %d\n%s", code, errOut)
	}
	for name, want := range map[string]string{"here": specDir, "below": filepath.Join(specDir, "sub")} {
		out := filepath.Join(specDir, name+".out")
		var got []byte
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if got, _ = os.ReadFile(out); strings.HasSuffix(string(got), "\n") {
				break
			}
		}
		if strings.TrimSpace(string(got)) != want {
			t.Errorf("%s/%s started in %q; want %q", ns, name, got, want)
		}
	}
	if code, out, errOut := nsrunCmd(t, specDir, "up", "app.yaml"); code != 0 || !strings.Contains(out, "project "+project+" is up to date") {
		t.Errorf("up again from the spec's directory: exit %d\n%s%s", code, out, errOut)
	}
	// exec finds ./where.sh in --workdir, not where it runs.
	sub := filepath.Join(specDir, "sub")
	if err := os.WriteFile(filepath.Join(sub, "where.sh"), []byte("#!/bin/sh\npwd\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := nsrunCmd(t, elsewhere, "exec", ns, "--workdir", sub, "--", "./where.sh"); code != 0 || out != sub+"\n" {
		t.Errorf("exec --workdir %s -- ./where.sh: exit %d\n%s%s", sub, code, out, errOut)
	}
}
