package supervise

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLogRotation(t *testing.T) {
	dir := t.TempDir()
	path := LogPath(dir, "ns1", "web")
	l, err := openLog(dir, "ns1", "web", 100)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 30; i++ {
		fmt.Fprintf(l, "line %02d\n", i) // 8 bytes a line
	}
	l.Close()
	cur, _ := os.ReadFile(path)
	old, _ := os.ReadFile(path + ".1")
	if len(cur) > 100 || len(old) > 100 || len(old) == 0 {
		t.Errorf("sizes %d and %d; want both at most 100, the old one not empty", len(cur), len(old))
	}
	tail := Tail(path, 3)
	if !slices.Equal(tail, []string{"line 27", "line 28", "line 29"}) {
		t.Errorf("Tail = %q", tail)
	}
	if got := Tail(path, 1000); len(got) < 12 || got[len(got)-1] != "line 29" {
		t.Errorf("Tail across the rotation = %q", got)
	}
	if Tail(filepath.Join(t.TempDir(), "none.log"), 5) != nil {
		t.Error("Tail of a missing log is not empty")
	}
}

func TestRestartPolicy(t *testing.T) {
	for _, tc := range []struct {
		policy string
		code   int
		want   bool
	}{
		{"no", 1, false}, {"no", 0, false},
		{"on-failure", 0, false}, {"on-failure", 3, true}, {"on-failure", 137, true},
		{"always", 0, true}, {"always", 1, true},
	} {
		if got := shouldRestart(tc.policy, tc.code); got != tc.want {
			t.Errorf("shouldRestart(%q, %d) = %v", tc.policy, tc.code, got)
		}
	}
}

func TestExecArgs(t *testing.T) {
	p := Process{Namespace: "ns1", Name: "web", Command: []string{"python3", "-m", "http.server"}, Workdir: "/srv", Env: []string{"A=1", "B=2"}, User: "nobody"}
	want := []string{"exec", "ns1", "--user", "nobody", "--env", "A=1", "--env", "B=2", "--workdir", "/srv", "--", "python3", "-m", "http.server"}
	if got := execArgs(p); !slices.Equal(got, want) {
		t.Errorf("execArgs = %q", got)
	}
	q := p
	q.Env = []string{"A=2", "B=2"}
	same := p
	same.Command = append([]string(nil), p.Command...)
	if p.Hash() == q.Hash() || p.Hash() != same.Hash() {
		t.Error("Hash does not tell changed definitions apart, or tells equal ones apart")
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestFollowAcrossRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "web.log")
	os.WriteFile(path, []byte("before\n"), 0o600)
	var out syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	// From the end as it is now, as up --attach does: a line written
	// before Follow has opened the file is still a new line.
	from := Size(path)
	go func() {
		Follow(ctx, &out, []Source{{Prefix: "ns1/web", Path: path, From: from}})
		close(done)
	}()
	appendTo(t, path, "one\n")
	waitFor(t, &out, "ns1/web | one\n")
	os.Rename(path, path+".1")
	appendTo(t, path, "two\n")
	waitFor(t, &out, "ns1/web | two\n")
	cancel()
	<-done
	if strings.Contains(out.String(), "before") {
		t.Errorf("Follow from the end printed old lines:\n%s", out.String())
	}
	var all bytes.Buffer
	Print(&all, []Source{{Prefix: "ns1/web", Path: path}}, -1)
	if all.String() != "ns1/web | before\nns1/web | one\nns1/web | two\n" {
		t.Errorf("Print = %q", all.String())
	}
}

func appendTo(t *testing.T, path, s string) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(s)
	f.Close()
}

func waitFor(t *testing.T, out *syncBuffer, want string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if strings.Contains(out.String(), want) {
			return
		}
	}
	t.Fatalf("never saw %q in:\n%s", want, out.String())
}

// A supervisor whose project directory is removed stops its processes and
// exits, and never makes the directory again, though its processes keep
// exiting and being restarted until then.
func TestSupervisorEndsWhenItsDirectoryGoes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// Self is a shell, so "exec NS -- CMD" fails at once: the process
	// exits and is restarted, and its status is written, over and over.
	plan := Plan{Generation: 1, Processes: []Process{{Namespace: "ns1", Name: "p", Command: []string{"true"}, Restart: "always"}}}
	if err := WritePlan(dir, plan); err != nil {
		t.Fatal(err)
	}
	s := &Supervisor{Dir: dir, Self: "/bin/sh", Grace: time.Second}
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background()) }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if st, err := ReadStatus(dir); err == nil && len(st.Processes) == 1 && st.Processes[0].State == Backoff {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the supervisor never reported its process restarting")
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the supervisor did not end after its directory was removed")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the supervisor made its directory again: %v", err)
	}
}
