package supervise

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeSelf is an "nsrun" that runs what follows "--" on the host: the
// supervisor's own logic, without namespaces (the project package's
// tests run the real one).
func fakeSelf(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "nsrun")
	script := "#!/bin/sh\nwhile [ \"$#\" -gt 0 ] && [ \"$1\" != \"--\" ]; do shift; done\nshift\nexec \"$@\"\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// hostDial connects on the host, for fakeSelf's processes.
func hostDial(ctx context.Context, _, address string) (net.Conn, error) {
	return (&net.Dialer{}).DialContext(ctx, "tcp", address)
}

// startSupervisor runs a supervisor of plan until the test ends.
func startSupervisor(t *testing.T, plan Plan) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "demo")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := WritePlan(dir, plan); err != nil {
		t.Fatal(err)
	}
	s := &Supervisor{Dir: dir, Self: fakeSelf(t), Grace: time.Second, Dial: hostDial}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return dir
}

// waitStatus waits until the status of process key satisfies ok.
func waitStatus(t *testing.T, dir, key, what string, ok func(ProcessStatus) bool) ProcessStatus {
	t.Helper()
	var last ProcessStatus
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		st, err := ReadStatus(dir)
		if err != nil {
			continue
		}
		for _, p := range st.Processes {
			if p.Key() == key {
				last = p
				if ok(p) {
					return p
				}
			}
		}
	}
	t.Fatalf("%s never %s; last status %+v (health %+v)", key, what, last, last.Health)
	return last
}

func healthIs(state string) func(ProcessStatus) bool {
	return func(p ProcessStatus) bool { return p.Health != nil && p.Health.State == state }
}

// flakyServer answers 200, or 500 while failing is set.
func flakyServer(t *testing.T) (*httptest.Server, *atomic.Bool) {
	var failing atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if failing.Load() {
			http.Error(w, "database gone", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return srv, &failing
}

func fastHealth(h Health) *Health {
	h.Interval, h.Timeout, h.Retries = 100*time.Millisecond, time.Second, 2
	return &h
}

// A process whose check starts failing turns unhealthy after retries
// failures and, with on_failure: restart, is restarted (a restart, logged
// with the reason) and healthy again once the check passes.
func TestUnhealthyIsRestarted(t *testing.T) {
	srv, failing := flakyServer(t)
	h := fastHealth(Health{HTTP: srv.URL + "/healthz", OnFailure: "restart"})
	dir := startSupervisor(t, Plan{Generation: 1, Processes: []Process{{Namespace: "ns1", Name: "web", Command: []string{"sleep", "1000"}, Restart: "no", Health: h}}})
	first := waitStatus(t, dir, "ns1/web", "became healthy", healthIs(HealthHealthy))
	failing.Store(true)
	waitStatus(t, dir, "ns1/web", "was restarted", func(p ProcessStatus) bool { return p.Restarts >= 1 })
	failing.Store(false)
	again := waitStatus(t, dir, "ns1/web", "became healthy again", func(p ProcessStatus) bool {
		return p.State == Running && p.PID != first.PID && p.Health != nil && p.Health.State == HealthHealthy
	})
	if again.Restarts < 1 {
		t.Errorf("restarts = %d, want at least 1", again.Restarts)
	}
	log, _ := os.ReadFile(LogPath(dir, "ns1", "web"))
	for _, want := range []string{"[nsrun] health: unhealthy after 2 failed checks: 500 Internal Server Error: database gone",
		"[nsrun] unhealthy: stopping it (on_failure: restart)", "[nsrun] unhealthy (on_failure: restart): stopped with status 143; restarting in 1s",
		"[nsrun] health: healthy (200 OK: ok)"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("the log has no line %q:\n%s", want, log)
		}
	}
}

// With on_failure: none the process is reported unhealthy, and left
// running; the failing streak and the check's answer are in the status.
func TestUnhealthyIsOnlyReported(t *testing.T) {
	srv, failing := flakyServer(t)
	failing.Store(true)
	h := fastHealth(Health{HTTP: srv.URL + "/", OnFailure: "none"})
	dir := startSupervisor(t, Plan{Generation: 1, Processes: []Process{{Namespace: "ns1", Name: "web", Command: []string{"sleep", "1000"}, Restart: "no", Health: h}}})
	st := waitStatus(t, dir, "ns1/web", "became unhealthy", healthIs(HealthUnhealthy))
	time.Sleep(500 * time.Millisecond) // five more checks
	after := waitStatus(t, dir, "ns1/web", "stayed unhealthy", healthIs(HealthUnhealthy))
	if after.PID != st.PID || after.Restarts != 0 || after.State != Running {
		t.Errorf("with on_failure none the process changed: %+v then %+v", st, after)
	}
	if after.Health.Failures < 2 || after.Health.Retries != 2 || !strings.Contains(after.Health.Output, "500") || after.Health.Since.IsZero() {
		t.Errorf("health = %+v", *after.Health)
	}
}

// A process that stops answering (a listener that no longer accepts:
// connections time out) is restarted by a TCP check; on_failure: stop
// stops it for good.
func TestHungIsStopped(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	h := fastHealth(Health{TCP: port, OnFailure: "stop"})
	h.Timeout = 300 * time.Millisecond
	dir := startSupervisor(t, Plan{Generation: 1, Processes: []Process{{Namespace: "ns1", Name: "web", Command: []string{"sleep", "1000"}, Restart: "always", Health: h}}})
	waitStatus(t, dir, "ns1/web", "became healthy", healthIs(HealthHealthy))
	ln.Close()
	st := waitStatus(t, dir, "ns1/web", "was stopped", func(p ProcessStatus) bool { return p.State == Exited })
	if st.ExitCause != "unhealthy: stopped (on_failure: stop)" || st.Restarts != 0 {
		t.Errorf("status %+v", st)
	}
}

// A command check passes with exit status 0, and its output is kept.
func TestCommandCheck(t *testing.T) {
	flag := filepath.Join(t.TempDir(), "ok")
	h := fastHealth(Health{Command: []string{"sh", "-c", "echo looking; test -e " + flag}})
	dir := startSupervisor(t, Plan{Generation: 1, Processes: []Process{{Namespace: "ns1", Name: "db", Command: []string{"sleep", "1000"}, Restart: "no", Health: h}}})
	st := waitStatus(t, dir, "ns1/db", "became unhealthy", healthIs(HealthUnhealthy))
	if !strings.Contains(st.Health.Output, "looking (exit status 1)") {
		t.Errorf("output %q", st.Health.Output)
	}
	os.WriteFile(flag, nil, 0o600)
	st = waitStatus(t, dir, "ns1/db", "became healthy", healthIs(HealthHealthy))
	if st.Health.Output != "looking" || st.Health.Failures != 0 {
		t.Errorf("health %+v", *st.Health)
	}
}

// depends_on: the dependant starts only after its dependency is healthy,
// and says meanwhile what it waits for.
func TestDependantWaitsForHealthy(t *testing.T) {
	flag := filepath.Join(t.TempDir(), "ok")
	h := fastHealth(Health{Command: []string{"test", "-e", flag}})
	dir := startSupervisor(t, Plan{Generation: 1, Processes: []Process{
		{Namespace: "ns2", Name: "db", Command: []string{"sleep", "1000"}, Restart: "no", Health: h},
		{Namespace: "ns1", Name: "app", Command: []string{"sleep", "1000"}, Restart: "no", DependsOn: []Dependency{{Key: "ns2/db"}}},
	}})
	waiting := waitStatus(t, dir, "ns1/app", "waited", func(p ProcessStatus) bool { return p.State == Waiting })
	// Under load the first look may come before db itself has started.
	if !slices.Contains([]string{"waiting for ns2/db to run (it is starting)", "waiting for ns2/db to be healthy (it is starting)",
		"waiting for ns2/db to be healthy (it is unhealthy)"}, waiting.Waiting) {
		t.Errorf("waiting = %q", waiting.Waiting)
	}
	time.Sleep(300 * time.Millisecond)
	if st := waitStatus(t, dir, "ns1/app", "kept waiting", func(p ProcessStatus) bool { return true }); st.State != Waiting || st.PID != 0 {
		t.Fatalf("the dependant started before its dependency was healthy: %+v", st)
	}
	os.WriteFile(flag, nil, 0o600)
	db := waitStatus(t, dir, "ns2/db", "became healthy", healthIs(HealthHealthy))
	app := waitStatus(t, dir, "ns1/app", "started", func(p ProcessStatus) bool { return p.State == Running })
	if app.StartedAt.Before(db.Health.Since) || app.Waiting != "" {
		t.Errorf("app started at %s, before db turned healthy at %s (or still says %q)", app.StartedAt, db.Health.Since, app.Waiting)
	}
}

// A dependency's ready port: the dependant waits until it accepts.
func TestDependantWaitsForReadyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	dir := startSupervisor(t, Plan{Generation: 1, Processes: []Process{
		{Namespace: "ns2", Name: "db", Command: []string{"sleep", "1000"}, Restart: "no"},
		{Namespace: "ns1", Name: "app", Command: []string{"sleep", "1000"}, Restart: "no", DependsOn: []Dependency{{Key: "ns2/db", ReadyTCP: port}}},
	}})
	st := waitStatus(t, dir, "ns1/app", "waited", func(p ProcessStatus) bool { return p.State == Waiting })
	if want := fmt.Sprintf("waiting for ns2/db to accept connections on port %d", port); st.Waiting != want {
		t.Errorf("waiting = %q, want %q", st.Waiting, want)
	}
	ln, err = net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Skipf("the port was taken meanwhile: %v", err)
	}
	defer ln.Close()
	waitStatus(t, dir, "ns1/app", "started", func(p ProcessStatus) bool { return p.State == Running })
}

// Many cycles of checks leave no goroutine or file descriptor behind.
func TestChecksLeakNothing(t *testing.T) {
	srv, _ := flakyServer(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	var procs []Process
	for i := 0; i < 10; i++ {
		procs = append(procs,
			Process{Namespace: "ns", Name: fmt.Sprintf("http%d", i), Command: []string{"sleep", "1000"}, Restart: "no", Health: fastHealth(Health{HTTP: srv.URL + "/"})},
			Process{Namespace: "ns", Name: fmt.Sprintf("tcp%d", i), Command: []string{"sleep", "1000"}, Restart: "no", Health: fastHealth(Health{TCP: port})},
			Process{Namespace: "ns", Name: fmt.Sprintf("cmd%d", i), Command: []string{"sleep", "1000"}, Restart: "no", Health: fastHealth(Health{Command: []string{"true"}})})
	}
	dir := startSupervisor(t, Plan{Generation: 1, Processes: procs})
	checked := func() time.Time {
		return waitStatus(t, dir, "ns/cmd9", "was checked", healthIs(HealthHealthy)).Health.LastCheck
	}
	// The fewest over a second: checks that fall due together run
	// together, and one counted in flight is not a leak.
	settle := func() (int, int) {
		g, f := math.MaxInt, math.MaxInt
		for range 40 {
			time.Sleep(25 * time.Millisecond)
			g, f = min(g, runtime.NumGoroutine()), min(f, openFDs(t))
		}
		return g, f
	}
	// Every process checked healthy once: each HTTP check's kept
	// connection is open (a file and goroutines on both sides) before the
	// first count.
	for _, p := range procs {
		waitStatus(t, dir, p.Key(), "healthy", healthIs(HealthHealthy))
	}
	checked()
	g1, f1 := settle()
	// Thirty more rounds of 30 checks.
	for start := checked(); checked().Sub(start) < 3*time.Second; time.Sleep(100 * time.Millisecond) {
	}
	g2, f2 := settle()
	t.Logf("goroutines %d -> %d, open files %d -> %d", g1, g2, f1, f2)
	if g2 > g1+5 || f2 > f1+5 {
		t.Errorf("after 30 rounds of checks: %d goroutines and %d fds, %d and %d before", g2, f2, g1, f1)
	}
}

func openFDs(t *testing.T) int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// TestChecksFallDueTogether: the next check is on a whole multiple of
// the interval, at least half an interval away, so that processes with
// the same interval are checked in one wake-up.
func TestChecksFallDueTogether(t *testing.T) {
	base := time.Unix(1_700_000_000, 0)
	for _, c := range []struct {
		now   time.Duration // after a whole multiple
		every time.Duration
		want  time.Duration
	}{
		{0, time.Second, time.Second},
		{10 * time.Millisecond, time.Second, 990 * time.Millisecond},
		{400 * time.Millisecond, time.Second, 600 * time.Millisecond},
		{600 * time.Millisecond, time.Second, 1400 * time.Millisecond}, // 400 ms is too soon
		{3 * time.Second, 10 * time.Second, 7 * time.Second},
		{7 * time.Second, 10 * time.Second, 13 * time.Second},
	} {
		if got := untilAligned(base.Add(c.now), c.every); got != c.want {
			t.Errorf("untilAligned(+%s, %s) = %s, want %s", c.now, c.every, got, c.want)
		}
	}
	// Two processes started apart are then both checked on whole seconds.
	for _, start := range []time.Duration{130 * time.Millisecond, 770 * time.Millisecond} {
		now := base.Add(start)
		if at := now.Add(untilAligned(now, time.Second)); at.Nanosecond() != 0 {
			t.Errorf("a process started at +%s is checked at %s, not on a whole second", start, at)
		}
	}
}
