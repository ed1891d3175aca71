package main

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nsrun/nsrun/netns/nstest"
)

// TestInstallScript stages an install below a root of the test's own
// (DESTDIR, PREFIX=/opt/nsrun): the binary runs, the unit names it, the
// pages and completions are there; with --exec-capability the helper has
// the capabilities and nsrun none; --uninstall leaves no file behind.
func TestInstallScript(t *testing.T) {
	nstest.RequireRoot(t) // setcap
	dest := t.TempDir()
	env := append(os.Environ(), "DESTDIR="+dest, "PREFIX=/opt/nsrun", "NSRUN_BINARY="+nstest.Binary(t), "NSRUN_EXEC_BINARY="+nstest.HelperBinary(t))
	script := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("../../scripts/install.sh", args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("install.sh %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	script("--exec-capability")
	getcap := func(name string) string {
		t.Helper()
		out, err := exec.Command("getcap", filepath.Join(dest, "opt/nsrun/bin", name)).CombinedOutput()
		if err != nil {
			t.Fatalf("getcap %s: %v\n%s", name, err, out)
		}
		return string(out)
	}
	if caps := getcap("nsrun-exec"); !strings.Contains(caps, "cap_dac_override,cap_setpcap,cap_sys_admin=p") {
		t.Errorf("getcap nsrun-exec: %q; want cap_dac_override,cap_setpcap,cap_sys_admin=p", caps)
	}
	if caps := getcap("nsrun"); caps != "" {
		t.Errorf("getcap nsrun: %q; want nothing: only the helper is privileged", caps)
	}
	if out, err := exec.Command(filepath.Join(dest, "opt/nsrun/bin/nsrun"), "version").Output(); err != nil || !strings.HasPrefix(string(out), "nsrun ") {
		t.Errorf("the installed binary: %v %s", err, out)
	}
	unit, err := os.ReadFile(filepath.Join(dest, "etc/systemd/system/nsrun@.service"))
	if err != nil || !strings.Contains(string(unit), "ExecStart=/opt/nsrun/bin/nsrun up --attach") {
		t.Errorf("the installed unit: %v\n%s", err, unit)
	}
	if unit, err := os.ReadFile(filepath.Join(dest, "etc/systemd/system/nsrun-metrics.service")); err != nil || !strings.Contains(string(unit), "ExecStart=/opt/nsrun/bin/nsrun metrics --listen 127.0.0.1:9469") {
		t.Errorf("the installed metrics unit: %v\n%s", err, unit)
	}
	for _, f := range []string{"opt/nsrun/share/man/man1/nsrun-up.1", "opt/nsrun/share/man/man1/nsrun-metrics.1", "opt/nsrun/share/bash-completion/completions/nsrun",
		"opt/nsrun/share/zsh/site-functions/_nsrun", "opt/nsrun/share/fish/vendor_completions.d/nsrun.fish"} {
		if _, err := os.Stat(filepath.Join(dest, f)); err != nil {
			t.Errorf("not installed: %v", err)
		}
	}
	if info, err := os.Stat(filepath.Join(dest, "etc/nsrun")); err != nil || !info.IsDir() {
		t.Errorf("/etc/nsrun: %v", err)
	}
	script("--uninstall")
	filepath.WalkDir(dest, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			t.Errorf("left after --uninstall: %s", path)
		}
		return nil
	})
}
