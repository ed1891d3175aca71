package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/netns/nstest"
	"github.com/nsrun/nsrun/specs"
	"github.com/nsrun/nsrun/traffic"
)

// TestTop runs nsrun top in a tmux of the test's own while connections
// flow: it shows the project's namespace and its port with a non-zero
// rate; q quits with status 0 and leaves the alternate screen.
func TestTop(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.DumpOnFailure(t)
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		if os.Getenv("NSRUN_REQUIRE_ROOT") == "1" {
			t.Fatal("tmux is missing; scripts/test.sh installs it (NSRUN_TEST_DEPS=1 scripts/install-deps.sh)")
		}
		t.Skip("no tmux")
	}
	name := strings.ToLower(nstest.Name("tp"))
	spec := writeSpec(t, name+".yaml", fmt.Sprintf("namespaces:\n  %s:\n    ports: [\"26151:8080\"]\n    run:\n"+
		"      - {name: web, command: [python3, -m, http.server, \"8080\"], ready: {tcp: 8080}}\n", name))
	t.Cleanup(func() { nsrunCmd(t, "/", "down", "-q", "-p", name) })
	if code, _, errOut := nsrunCmd(t, "/", "up", "-q", spec); code != 0 {
		t.Fatalf("up: %s", errOut)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // connections until the test ends
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if resp, err := http.Get("http://127.0.0.1:26151/"); err == nil {
				resp.Body.Close()
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })

	sock := name // a tmux server of the test's own
	run := func(args ...string) string {
		out, _ := exec.Command(tmux, append([]string{"-L", sock}, args...)...).CombinedOutput()
		return string(out)
	}
	t.Cleanup(func() { run("kill-server") })
	if out, err := exec.Command(tmux, "-L", sock, "new-session", "-d", "-s", "top", "-x", "120", "-y", "30",
		nstest.Binary(t)+" top -p "+name+"; echo EXIT=$?; sleep 120").CombinedOutput(); err != nil {
		t.Fatalf("tmux new-session: %v %s", err, out)
	}
	busy := regexp.MustCompile(`(?m)^0\.0\.0\.0:26151/tcp\s+` + name + `/` + name + `\s+([1-9][0-9]*\.[0-9]|0\.[1-9])\s+[1-9]`)
	var pane string
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if pane = run("capture-pane", "-p", "-t", "top"); busy.MatchString(pane) && strings.Contains(pane, name+"/"+name+"/web  running") {
			break
		}
	}
	if !busy.MatchString(pane) {
		t.Fatalf("top never showed the port with connections per second; the pane:\n%s", pane)
	}
	if !regexp.MustCompile(`(?m)^` + name + `/` + name + `\s+[0-9.]+[KMG]?\s`).MatchString(pane) {
		t.Errorf("top does not show the namespace's traffic; the pane:\n%s", pane)
	}
	run("send-keys", "-t", "top", "q")
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if pane = run("capture-pane", "-p", "-t", "top"); strings.Contains(pane, "EXIT=") {
			break
		}
	}
	if !strings.Contains(pane, "EXIT=0") {
		t.Fatalf("after q: the pane:\n%s", pane)
	}
	if alt := strings.TrimSpace(run("display-message", "-p", "-t", "top", "#{alternate_on}")); alt != "0" || strings.Contains(pane, "PUBLISHED") {
		t.Errorf("after q the terminal is not back: alternate screen %q; the pane:\n%s", alt, pane)
	}
}

// TestTopView: the tables from two samples, rates over the time between
// them, busiest first, cut to the lines there are.
func TestTopView(t *testing.T) {
	port := func(s string) specs.Port {
		p, err := specs.ParsePort(s)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Port b's forwarded connections carry bytesB in; a's none.
	sample := func(a, b uint64, inA, bytesB uint64) *traffic.Sample {
		return &traffic.Sample{
			Ports: []traffic.Port{
				{Project: "p", Namespace: "a", Port: port("6000:80"), Connections: a, Counted: true, Measured: true},
				{Project: "p", Namespace: "b", Port: port("6001:80"), Connections: b, Counted: true, Measured: true, In: forward.Flow{Bytes: bytesB}},
			},
			Namespaces: []traffic.Namespace{
				{Project: "p", Namespace: "a", Found: true, In: traffic.LinkCounts{Bytes: inA}},
				{Project: "p", Namespace: "b", Found: true, In: traffic.LinkCounts{Bytes: 4096}},
			},
			Processes: []traffic.Process{{Project: "p", Namespace: "a", Name: "web", Up: true, Health: "healthy"}},
		}
	}
	// The busiest port by bytes first, then by connections.
	out := topView(sample(10, 100, 0, 1000), sample(30, 104, 2048*2, 1000+2048*2), 2*time.Second, 0)
	want := []string{
		"0.0.0.0:6001/tcp  p/b        2.0     104          2.0K  0",
		"0.0.0.0:6000/tcp  p/a        10.0    30           0     0",
		"p/a        2.0K  0      4.0K  0    0",
		"p/b        0     0      4.0K  0    0",
		"p/a/web  running  healthy  0         0",
	}
	last := -1
	for _, w := range want {
		i := strings.Index(out, w)
		if i < 0 || i < last {
			t.Errorf("topView lacks %q, or not in this order:\n%s", w, out)
		}
		last = i
	}
	// A counter made anew (lower than before) counts from 0.
	if out := topView(sample(500, 0, 0, 0), sample(3, 0, 0, 0), time.Second, 0); !strings.Contains(out, "p/a        3.0") {
		t.Errorf("a reset counter:\n%s", out)
	}
	// Nine lines: headers and blank lines first, then rows in turn.
	if out := topView(sample(1, 2, 0, 0), sample(3, 4, 0, 0), time.Second, 9); strings.Count(out, "\n") != 9 {
		t.Errorf("cut to 9 lines, got %d:\n%s", strings.Count(out, "\n"), out)
	}
}
