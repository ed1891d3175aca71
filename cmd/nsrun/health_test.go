package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nsrun/nsrun/netns/nstest"
	"github.com/nsrun/nsrun/supervise"
)

// healthServer answers GET /healthz on port 8080 with 200 "ok"; with 500
// while the file "fail" is in its directory; and never (it hangs, and
// being single-threaded stops answering at all) while "hang" is.
const healthServer = `import http.server, os, sys, time
flags = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if os.path.exists(os.path.join(flags, "hang")):
            time.sleep(3600)
        bad = os.path.exists(os.path.join(flags, "fail"))
        self.send_response(500 if bad else 200)
        self.end_headers()
        self.wfile.write(b"database gone\n" if bad else b"ok\n")
    def log_message(self, *args):
        pass
http.server.HTTPServer(("", 8080), H).serve_forever()
`

// supervisorStatus reads the supervisor's status of a project.
func supervisorStatus(t *testing.T, project string) map[string]supervise.ProcessStatus {
	t.Helper()
	st, err := supervise.ReadStatus("/run/nsrun/" + project)
	if err != nil {
		t.Fatalf("reading the supervisor's status: %v", err)
	}
	out := map[string]supervise.ProcessStatus{}
	for _, p := range st.Processes {
		out[p.Key()] = p
	}
	return out
}

// waitProcess waits (generously) until process key's status satisfies ok.
func waitProcess(t *testing.T, project, key, what string, ok func(supervise.ProcessStatus) bool) supervise.ProcessStatus {
	t.Helper()
	var last supervise.ProcessStatus
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if last = supervisorStatus(t, project)[key]; ok(last) {
			return last
		}
	}
	t.Fatalf("%s never %s; last: %+v (health %+v)", key, what, last, last.Health)
	return last
}

func healthy(p supervise.ProcessStatus) bool {
	return p.State == supervise.Running && p.Health != nil && p.Health.State == supervise.HealthHealthy
}

// TestHealthChecks runs health checks of each kind on real processes in
// real namespaces: an HTTP check that turns unhealthy restarts its
// server (on_failure: restart), also when the server hangs; one with
// on_failure: none is only reported; a command check runs inside its
// namespace; depends_on starts a process only once its dependency is
// healthy; and up waits for the first healthy result of a process with a
// check and no ready port.
func TestHealthChecks(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.DumpOnFailure(t)
	dir := t.TempDir()
	server := filepath.Join(dir, "server.py")
	webFlags, watchFlags := filepath.Join(dir, "web"), filepath.Join(dir, "watch")
	for _, d := range []string{webFlags, watchFlags} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(server, []byte(healthServer), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := writeSpec(t, "hlth.yaml", fmt.Sprintf(`name: hlth
namespaces:
  hlth1:
    run:
      - name: web
        command: [python3, %[1]s, %[2]s]
        ready: {tcp: 8080}
        health: {http: /healthz, interval: 1s, timeout: 1s, retries: 2, on_failure: restart}
  hlth2:
    address: 10.241.77.2/30
    run:
      - name: watch
        command: [python3, %[1]s, %[3]s]
        ready: {tcp: 8080}
        health: {http: "http://127.0.0.1:8080/healthz", interval: 1s, retries: 2}
      - name: probe
        command: [sleep, "3600"]
        health: {command: "ip -4 -o addr show dev eth0 | grep -w 10.241.77.2", interval: 1s}
        depends_on: [hlth1/web]
`, server, webFlags, watchFlags))
	specDir := filepath.Dir(spec)
	before := nstest.Snapshot()
	t.Cleanup(func() {
		nsrunCmd(t, specDir, "down", "-q", "-p", "hlth")
		if after := nstest.Snapshot(); after != before {
			t.Errorf("down left the host changed:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})
	code, _, errOut := nsrunCmd(t, specDir, "up", spec)
	if code != 0 {
		t.Fatalf("up: exit %d\n%s", code, errOut)
	}
	// up returned once every process was ready or healthy.
	procs := supervisorStatus(t, "hlth")
	for _, key := range []string{"hlth1/web", "hlth2/watch", "hlth2/probe"} {
		if p := procs[key]; key == "hlth2/probe" && !healthy(p) {
			t.Errorf("up returned before %s was healthy: %+v %+v", key, p, p.Health)
		}
	}
	web, probe := waitProcess(t, "hlth", "hlth1/web", "was healthy", healthy), procs["hlth2/probe"]
	if probe.StartedAt.Before(web.Health.Since) {
		t.Errorf("hlth2/probe started at %s, before its dependency hlth1/web was healthy (%s)", probe.StartedAt, web.Health.Since)
	}
	if !strings.Contains(probe.Health.Output, "10.241.77.2/30") {
		t.Errorf("the command check did not see the namespace's eth0: %q", probe.Health.Output)
	}

	// Unhealthy with on_failure: restart: restarted, and healthy again.
	os.WriteFile(filepath.Join(webFlags, "fail"), nil, 0o644)
	waitProcess(t, "hlth", "hlth1/web", "was restarted for failing", func(p supervise.ProcessStatus) bool { return p.Restarts > web.Restarts })
	os.Remove(filepath.Join(webFlags, "fail"))
	again := waitProcess(t, "hlth", "hlth1/web", "was healthy again", func(p supervise.ProcessStatus) bool { return healthy(p) && p.PID != web.PID })
	// Hung: the check times out, and the server is restarted.
	os.WriteFile(filepath.Join(webFlags, "hang"), nil, 0o644)
	waitProcess(t, "hlth", "hlth1/web", "was restarted for hanging", func(p supervise.ProcessStatus) bool { return p.Restarts > again.Restarts })
	os.Remove(filepath.Join(webFlags, "hang"))
	waitProcess(t, "hlth", "hlth1/web", "was healthy after hanging", healthy)
	if code, out, errOut := nsrunCmd(t, specDir, "logs", "-p", "hlth", "hlth1/web"); !strings.Contains(out, "[nsrun] health: unhealthy after 2 failed checks: 500 Internal Server Error: database gone") ||
		!strings.Contains(out, "[nsrun] unhealthy: stopping it (on_failure: restart)") || !strings.Contains(out, "[nsrun] health: unhealthy after 2 failed checks: no answer within 1s") {
		raw, err := os.ReadFile(supervise.LogPath("/run/nsrun/hlth", "hlth1", "web"))
		t.Errorf("logs (exit %d) lack the health restarts:\n%s%s\nthe file (%v):\n%s", code, out, errOut, err, raw)
	}

	// Unhealthy with on_failure: none: reported, left running.
	watch := procs["hlth2/watch"]
	os.WriteFile(filepath.Join(watchFlags, "fail"), nil, 0o644)
	sick := waitProcess(t, "hlth", "hlth2/watch", "was unhealthy", func(p supervise.ProcessStatus) bool {
		return p.Health != nil && p.Health.State == supervise.HealthUnhealthy
	})
	if sick.PID != watch.PID || sick.Restarts != 0 {
		t.Errorf("on_failure none restarted the process: %+v then %+v", watch, sick)
	}
	_, out, _ := nsrunCmd(t, specDir, "status", "-p", "hlth")
	if !strings.Contains(out, "HEALTH") || !strings.Contains(out, "unhealthy 2/2 since") ||
		!strings.Contains(out, `hlth2/watch: its last health check said "500 Internal Server Error: database gone"`) {
		t.Errorf("status:\n%s", out)
	}
	_, out, _ = nsrunCmd(t, specDir, "status", "-p", "hlth", "-o", "json")
	var doc struct {
		Projects []struct {
			Processes []processReport `json:"processes"`
		} `json:"projects"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || len(doc.Projects) != 1 {
		t.Fatalf("status -o json: %v\n%s", err, out)
	}
	for _, p := range doc.Projects[0].Processes {
		if p.Name == "hlth2/watch" && (p.Health == nil || p.Health.State != "unhealthy" || p.Health.Failures < 2 || p.Health.Retries != 2 || p.Health.LastCheck == nil) {
			t.Errorf("status -o json has %s's health as %+v", p.Name, p.Health)
		}
	}
}

// A depends_on cycle is refused by validate, which names it.
func TestValidateRefusesDependencyCycle(t *testing.T) {
	spec := writeSpec(t, "cycle.yaml", `namespaces:
  a:
    run:
      - {name: app, command: [x], depends_on: [b/db]}
  b:
    run:
      - {name: db, command: [x], depends_on: [a/app]}
`)
	code, _, errOut := nsrun(t, "validate", spec)
	if code != 2 || !strings.Contains(errOut, "depends_on makes a cycle: a/app -> b/db -> a/app") {
		t.Errorf("validate: exit %d\n%s", code, errOut)
	}
}
