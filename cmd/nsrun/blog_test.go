package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nsrun/nsrun/netns/nstest"
	"github.com/nsrun/nsrun/supervise"
)

func TestMain(m *testing.M) { nstest.Main(m) }

// nsrunCmd runs the built nsrun binary in dir and returns its exit status
// and output.
func nsrunCmd(t *testing.T, dir string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(nstest.Binary(t), args...)
	cmd.Dir = dir
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if exitErr, ok := err.(*exec.ExitError); ok {
		code = exitErr.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errOut.String()
}

// TestBlogExample is the lab exercise through the command line: up the
// bundled example, its two python3 servers on 8080 answer on host ports
// 6000 and 6001 the moment up returns, and down leaves the host exactly as
// before, also when the spec file is gone by then.
func TestBlogExample(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.DumpOnFailure(t)
	data, err := os.ReadFile("../../specs/examples/blog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	spec := writeSpec(t, "renamed.yaml", string(data)) // its own name: blog
	dir := filepath.Dir(spec)
	before := nstest.Snapshot()
	t.Cleanup(func() { nsrunCmd(t, dir, "down", "-q", "-p", "blog") })
	code, out, errOut := nsrunCmd(t, dir, "up", spec)
	if code != 0 {
		t.Fatalf("up: exit %d\n%s", code, errOut)
	}
	if !strings.Contains(out, "http://127.0.0.1:6000 -> ns1:8080\n") || !strings.Contains(errOut, "namespace ns1 created") || !strings.Contains(errOut, "process ns2/web ready") {
		t.Errorf("up printed:\n%s\n%s", out, errOut)
	}
	client := http.Client{Timeout: 2 * time.Second}
	for port, ns := range map[string]string{"6000": "ns1", "6001": "ns2"} {
		resp, err := client.Get("http://127.0.0.1:" + port + "/")
		if err != nil {
			t.Errorf("GET 127.0.0.1:%s: %v", port, err)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != "hello from "+ns+"\n" {
			t.Errorf("GET 127.0.0.1:%s: %s %q; want hello from %s", port, resp.Status, body, ns)
		}
		// The request shows in the log of the namespace's own server, once
		// the supervisor has copied it there.
		log := supervise.LogPath("/run/nsrun/blog", ns, "web")
		var tail string
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if tail = strings.Join(supervise.Tail(log, 20), "\n"); strings.Contains(tail, "GET / HTTP/1.1") {
				break
			}
		}
		if !strings.Contains(tail, "GET / HTTP/1.1") {
			t.Errorf("%s's log lacks the request to port %s:\n%s", ns, port, tail)
		}
	}
	// Two processes and the supervisor run, and the keeper.
	if code, out, _ := nsrunCmd(t, dir, "status", "-p", "blog"); code != 0 || strings.Count(out, "running") != 4 || !strings.Contains(out, "keeper: running") {
		t.Errorf("status: exit %d\n%s", code, out)
	}
	if code, out, _ := nsrunCmd(t, dir, "graph", "-p", "blog"); code != 0 || strings.Count(out, "web (running)") != 2 {
		t.Errorf("graph of the running project: exit %d\n%s", code, out)
	}
	doc := readStatus(t, dir, exitSuccess)
	if len(doc.Projects) != 1 || len(doc.Projects[0].Namespaces) != 2 || doc.Projects[0].Processes[0].State != "running" || len(doc.Projects[0].Drift) != 0 {
		t.Errorf("status -o json: %+v", doc)
	}

	// Drift: a link deleted behind nsrun's back is reported (exit 3), and
	// a following up repairs it.
	if out, err := exec.Command("ip", "link", "del", "nsr-ns1").CombinedOutput(); err != nil {
		t.Fatalf("ip link del: %v %s", err, out)
	}
	doc = readStatus(t, dir, exitDrift)
	if drift := strings.Join(doc.Projects[0].Drift, "\n"); !strings.Contains(drift, "link nsr-ns1 is missing") {
		t.Errorf("drift after deleting nsr-ns1:\n%s", drift)
	}
	if code, _, errOut := nsrunCmd(t, dir, "up", "-q", spec); code != 0 {
		t.Fatalf("up to repair: %s", errOut)
	}
	if doc = readStatus(t, dir, exitSuccess); len(doc.Projects[0].Drift) != 0 {
		t.Errorf("drift after up: %v", doc.Projects[0].Drift)
	}
	if resp, err := client.Get("http://127.0.0.1:6000/"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("port 6000 after the repair: %v", err)
	} else {
		resp.Body.Close()
	}
	if err := os.Remove(spec); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = nsrunCmd(t, dir, "down", spec)
	if code != 0 || out != "project blog is down\n" {
		t.Fatalf("down: exit %d\n%s%s", code, out, errOut)
	}
	if after := nstest.Snapshot(); after != before {
		t.Errorf("down left the host changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if code, out, _ := nsrunCmd(t, dir, "down", "-p", "blog"); code != 0 || !strings.Contains(out, "not up; nothing to remove") {
		t.Errorf("second down: exit %d, %q", code, out)
	}
}

// TestAttach: up --attach streams the processes' output prefixed, with
// the supervisor's lines about them (a health change), and Ctrl-C takes
// the project down.
func TestAttach(t *testing.T) {
	nstest.RequireRoot(t)
	name := strings.ToLower(nstest.Name("at"))
	spec := writeSpec(t, name+".yaml", "namespaces:\n  "+name+":\n    run:\n      - name: talker\n        command: while true; do echo tick; sleep 0.2; done\n"+
		"        health: {command: \"echo fine\", interval: 1s}\n")
	before := nstest.Snapshot()
	cmd := exec.Command(nstest.Binary(t), "up", "--attach", spec)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errOut strings.Builder
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); nsrunCmd(t, "/", "down", "-q", "-p", name) })
	lines := bufio.NewScanner(stdout)
	want := map[string]bool{name + "/talker | tick": false, name + "/talker | [nsrun] health: healthy (fine)": false}
	for seen := 0; seen < len(want) && lines.Scan(); {
		if found, ok := want[lines.Text()]; ok && !found {
			want[lines.Text()] = true
			seen++
		}
	}
	for line, found := range want {
		if !found {
			t.Fatalf("no %q line in the attached output; stderr:\n%s", line, errOut.String())
		}
	}
	cmd.Process.Signal(os.Interrupt)
	go func() {
		for lines.Scan() {
		}
	}()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("up --attach after Ctrl-C: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(errOut.String(), "taking project "+name+" down") {
		t.Errorf("stderr:\n%s", errOut.String())
	}
	if after := nstest.Snapshot(); after != before {
		t.Errorf("Ctrl-C did not take it all down:\n%s\n%s", before, after)
	}
}

// TestLogs: logs prints each process's output prefixed NS/PROC, narrowed
// to one process, the last N lines.
func TestLogs(t *testing.T) {
	nstest.RequireRoot(t)
	name := strings.ToLower(nstest.Name("lg"))
	spec := writeSpec(t, name+".yaml", "namespaces:\n  "+name+":\n    run:\n"+
		"      - {name: one, command: 'echo first; echo second; echo third >&2; sleep 300'}\n"+
		"      - {name: two, command: 'echo other; sleep 300'}\n")
	t.Cleanup(func() { nsrunCmd(t, "/", "down", "-q", "-p", name) })
	if code, _, errOut := nsrunCmd(t, "/", "up", "-q", spec); code != 0 {
		t.Fatalf("up: %s", errOut)
	}
	var out string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if _, out, _ = nsrunCmd(t, "/", "logs", "-p", name); strings.Count(out, "\n") == 4 {
			break
		}
	}
	for _, want := range []string{name + "/one | first\n", name + "/one | third\n", name + "/two | other\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lacks %q:\n%s", want, out)
		}
	}
	if _, out, _ := nsrunCmd(t, "/", "logs", spec, name+"/one", "--tail", "1"); out != name+"/one | third\n" {
		t.Errorf("logs NS/PROC --tail 1 = %q", out)
	}
	if code, _, errOut := nsrunCmd(t, "/", "logs", "-p", name, name+"/nope"); code != exitUsage || !strings.Contains(errOut, "has no process") {
		t.Errorf("logs of an unknown process: %d %q", code, errOut)
	}
}

const exitSuccess = 0

// readStatus runs status -o json and checks its exit status.
func readStatus(t *testing.T, dir string, wantCode int) statusDoc {
	t.Helper()
	code, out, errOut := nsrunCmd(t, dir, "status", "-p", "blog", "-o", "json")
	if code != wantCode {
		t.Fatalf("status -o json: exit %d, want %d\n%s%s", code, wantCode, out, errOut)
	}
	var doc statusDoc
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, out)
	}
	return doc
}
