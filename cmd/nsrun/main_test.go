package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// nsrun runs the command line in process and returns its exit status,
// stdout and stderr.
func nsrun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func writeSpec(t *testing.T, name, src string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestValidate(t *testing.T) {
	code, out, errOut := nsrun(t, "validate", "../../specs/examples/blog.yaml")
	if code != 0 || errOut != "" {
		t.Fatalf("validate blog.yaml: exit %d, stderr %q", code, errOut)
	}
	want := `../../specs/examples/blog.yaml is valid: project "blog": 2 namespaces, 2 published ports, 2 processes` + "\n"
	if out != want {
		t.Errorf("stdout = %q, want %q", out, want)
	}
}

func TestValidateBadSpec(t *testing.T) {
	path := writeSpec(t, "bad.yaml", "namespaces:\n  ns1:\n    ports: [\"70000:8080\"]\n    colour: red\n")
	for _, cmd := range []string{"validate", "up", "plan"} {
		t.Run(cmd, func(t *testing.T) {
			code, out, errOut := nsrun(t, cmd, path)
			if code != exitUsage || out != "" {
				t.Fatalf("%s: exit %d, stdout %q; want 2 and nothing on stdout", cmd, code, out)
			}
			want := path + ":3:13: namespaces.ns1.ports[0]: host port 70000 is out of range 1-65535\n" +
				path + `:4:5: namespaces.ns1.colour: unknown key "colour"; known keys here: address, address6, egress, networks, ports, run, exec, resources, bandwidth, netem` + "\n" +
				"nsrun: " + path + " is not a valid spec (2 problems); fix it and run again. Nothing was changed\n"
			if errOut != want {
				t.Errorf("stderr:\n%s\nwant:\n%s", errOut, want)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		msg  string
	}{
		{[]string{"validate"}, "accepts 1 arg(s), received 0; usage: nsrun validate SPEC"},
		{[]string{"validate", "a.yaml", "b.yaml"}, "accepts 1 arg(s), received 2"},
		{[]string{"validate", "/nonexistent/spec.yaml"}, "no such file or directory; check the path"},
		{[]string{"upp"}, `unknown command "upp"; did you mean "up"?`},
		{[]string{"frobnicate"}, `unknown command "frobnicate"; see 'nsrun --help'`},
		{[]string{"up", "--bogus", "x.yaml"}, "unknown flag: --bogus; see 'nsrun up --help'"},
		{[]string{"up", "--timeout", "soon", "x.yaml"}, `invalid argument "soon" for "--timeout"`},
		{[]string{"up", "--firewall", "nft", "x.yaml"}, `--firewall (or NSRUN_FIREWALL): unknown firewall "nft"; use auto, nftables or iptables`},
		{[]string{"plan", "--firewall", "pf", "x.yaml"}, `unknown firewall "pf"`},
		{[]string{"exec", "ns1"}, "no command to run"},
		{[]string{"exec", "ns1", "--"}, "no command to run"},
		{[]string{"exec", "--user", "x", "ns1", "true"}, "name the namespace first"},
		{[]string{"exec", "ns1", "--bogus", "true"}, "unknown flag: --bogus"},
		{[]string{"exec", "ns1", "--env", "NOEQUALS", "true"}, `--env "NOEQUALS" is not KEY=VALUE`},
		{[]string{"version", "extra"}, `unknown command "extra"`},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, _, errOut := nsrun(t, tc.args...)
			if code != exitUsage || !strings.Contains(errOut, tc.msg) || !strings.HasPrefix(errOut, "nsrun: ") {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, errOut, tc.msg)
			}
			if strings.Count(errOut, "\n") != 1 {
				t.Errorf("stderr %q: want the error printed once, on one line", errOut)
			}
		})
	}
}

func TestVersionAndCompletion(t *testing.T) {
	code, out, _ := nsrun(t, "version")
	if code != 0 || !strings.HasPrefix(out, "nsrun ") {
		t.Errorf("version: exit %d, %q", code, out)
	}
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		code, out, errOut := nsrun(t, "completion", shell)
		if code != 0 || !strings.Contains(out, "nsrun") || errOut != "" {
			t.Errorf("completion %s: exit %d, %d bytes, stderr %q", shell, code, len(out), errOut)
		}
	}
}

func TestEveryCommandIsDocumented(t *testing.T) {
	root := newRootCommand()
	want := []string{"up", "down", "exec", "status", "logs", "validate", "plan", "version"}
	for _, name := range want {
		c, _, err := root.Find([]string{name})
		if err != nil || c.Name() != name {
			t.Errorf("command %q is not registered: %v", name, err)
			continue
		}
		if c.Short == "" || c.Example == "" {
			t.Errorf("%s: want a short description and examples in --help", name)
		}
	}
	if c, _, err := root.Find([]string{"ps"}); err != nil || c.Name() != "status" {
		t.Errorf("ps is not an alias of status")
	}
}

// TestAsOrdinaryUser runs nsrun as the user nobody (built, when the test
// runs as root): validate needs no root; up validates first (exit 2 on a
// bad spec) and then says plainly that it needs root.
func TestAsOrdinaryUser(t *testing.T) {
	nobody := ordinaryUser(t)
	dir := filepath.Dir(nobody.bin)
	for _, example := range []string{"blog.yaml", "full.yaml"} {
		data, err := os.ReadFile(filepath.Join("../../specs/examples", example))
		if err != nil {
			t.Fatal(err)
		}
		spec := filepath.Join(dir, example)
		if err := os.WriteFile(spec, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if code, out := nobody.run(t, "validate", spec); code != 0 || !strings.Contains(out, "is valid") {
			t.Errorf("validate %s as nobody: exit %d\n%s", example, code, out)
		}
	}
	blog := filepath.Join(dir, "blog.yaml")
	if code, out := nobody.run(t, "up", blog); code != exitFailure || !strings.Contains(out, "needs root") || !strings.Contains(out, "sudo nsrun up "+blog) {
		t.Errorf("up as nobody: exit %d, %q; want 1 and a message suggesting sudo", code, out)
	}
	if code, out := nobody.run(t, "down", "-p", "blog"); code != exitFailure || !strings.Contains(out, "sudo nsrun down -p blog") {
		t.Errorf("down as nobody: exit %d, %q; want 1 and a message suggesting sudo", code, out)
	}
	if code, out := nobody.run(t, "plan", blog); code != 0 || !strings.Contains(out, "ip netns add ns1") {
		t.Errorf("plan as nobody: exit %d, %q", code, out)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("namespaces: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out := nobody.run(t, "up", bad); code != exitUsage || !strings.Contains(out, "bad.yaml:1:13: namespaces: is empty") {
		t.Errorf("up of a bad spec as nobody: exit %d, %q; want 2 and the problem", code, out)
	}
}

type userRunner struct{ bin string }

// ordinaryUser returns a runner of nsrun as an unprivileged user: the
// test's own user when that is not root, else nobody (65534).
func ordinaryUser(t *testing.T) userRunner {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} { // testing makes both 0700
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "nsrun")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return userRunner{bin: bin}
}

func (u userRunner) run(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(u.bin, args...)
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	out, err := cmd.CombinedOutput()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &exitErr):
		return exitErr.ExitCode(), string(out)
	}
	t.Fatalf("running %v: %v", args, err)
	return 0, ""
}

// TestPlanFirewall: plan prints iptables-restore input for iptables and
// an nft -f heredoc for nftables, with NSRUN_FIREWALL as the default.
func TestPlanFirewall(t *testing.T) {
	const spec = "../../specs/examples/blog.yaml"
	for _, tc := range []struct {
		args []string
		env  string
		want string
	}{
		{[]string{"plan", "--firewall", "iptables", spec}, "", "iptables-restore -w 30 --noflush <<'EOF'\n*nat\n"},
		{[]string{"plan", "--firewall", "nftables", spec}, "", "nft -f - <<'EOF'\nadd table inet nsrun"},
		{[]string{"plan", spec}, "nftables", "add element inet nsrun publish-any { tcp . 6000 comment \"nsrun blog/ns1\" : goto port/blog/ns1/tcp/6000 }"},
		{[]string{"plan", "--firewall", "iptables", spec}, "nftables", "iptables-restore"},
	} {
		t.Setenv("NSRUN_FIREWALL", tc.env)
		code, out, errOut := nsrun(t, tc.args...)
		if code != 0 || !strings.Contains(out, tc.want) {
			t.Errorf("%v (NSRUN_FIREWALL=%s): exit %d, stderr %q; want stdout with %q:\n%s", tc.args, tc.env, code, errOut, tc.want, out)
		}
	}
}
