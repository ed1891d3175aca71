package supervise

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// writeLog writes n numbered lines of 50 characters through a log that
// rotates at max bytes, and returns the log's path.
func writeLog(t *testing.T, n int, max int64) string {
	t.Helper()
	dir := t.TempDir()
	path := LogPath(dir, "ns1", "web")
	l, err := openLog(dir, "ns1", "web", max)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		fmt.Fprintf(l, "line %05d %s\n", i, strings.Repeat("x", 39)) // 50 characters and a newline
	}
	l.Close()
	return path
}

func printed(t *testing.T, path string, tail int) []string {
	t.Helper()
	var b bytes.Buffer
	if _, err := Print(&b, []Source{{Prefix: "ns1/web", Path: path}}, tail); err != nil {
		t.Fatal(err)
	}
	if b.Len() == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
}

func line(i int) string { return fmt.Sprintf("ns1/web | line %05d %s", i, strings.Repeat("x", 39)) }

func checkLines(t *testing.T, what string, got []string, first, last int) {
	t.Helper()
	if len(got) != last-first+1 {
		t.Fatalf("%s: %d lines; want %d (lines %d to %d)", what, len(got), last-first+1, first, last)
	}
	for i, l := range got {
		if l != line(first+i) {
			t.Fatalf("%s: line %d is %q; want %q", what, i, l, line(first+i))
		}
	}
}

func TestPrintEveryLine(t *testing.T) {
	path := writeLog(t, 10000, MaxLogSize)
	checkLines(t, "whole log", printed(t, path, -1), 0, 9999)
	checkLines(t, "--tail 3", printed(t, path, 3), 9997, 9999)
	checkLines(t, "--tail 20000", printed(t, path, 20000), 0, 9999)
	if got := printed(t, path, 0); got != nil {
		t.Errorf("--tail 0 printed %d lines", len(got))
	}
}

func TestPrintAcrossRotation(t *testing.T) {
	path := writeLog(t, 10000, 400<<10) // about 8,000 lines rotated, the rest current
	old, cur := len(readAll(t, path+".1")), len(readAll(t, path))
	if old == 0 || cur == 0 {
		t.Fatalf("want both parts written: %d and %d bytes", old, cur)
	}
	inCur := cur / 51
	checkLines(t, "whole log", printed(t, path, -1), 0, 9999)
	checkLines(t, "--tail within the current part", printed(t, path, inCur-1), 10000-inCur+1, 9999)
	checkLines(t, "--tail across the rotation", printed(t, path, inCur+5), 10000-inCur-5, 9999)
	tail := Tail(path, 2)
	if !slices.Equal(tail, []string{line(9998)[len("ns1/web | "):], line(9999)[len("ns1/web | "):]}) {
		t.Errorf("Tail = %q", tail)
	}
}

func readAll(t *testing.T, path string) []byte {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// A line still being written is not printed, and following starts at it.
func TestPrintStopsBeforeAPartialLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "web.log")
	os.WriteFile(path, []byte("one\ntwo\nthr"), 0o600)
	var b syncBuffer
	sources, err := Print(&b, []Source{{Prefix: "p", Path: path}}, -1)
	if err != nil || b.String() != "p | one\np | two\n" {
		t.Fatalf("Print = %q, %v", b.String(), err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { Follow(ctx, &b, sources); close(done) }()
	appendTo(t, path, "ee\n")
	waitFor(t, &b, "p | three\n")
	cancel()
	<-done
	if got := b.String(); got != "p | one\np | two\np | three\n" {
		t.Errorf("printed then followed: %q", got)
	}
	if got := Tail(path, 5); !slices.Equal(got, []string{"one", "two", "three"}) {
		t.Errorf("Tail = %q", got)
	}
}

// The rotated part is complete: its last line counts even without a newline.
func TestPrintRotatedPartWithoutNewline(t *testing.T) {
	path := filepath.Join(t.TempDir(), "web.log")
	os.WriteFile(path+".1", []byte("a\nb"), 0o600)
	os.WriteFile(path, []byte("c\n"), 0o600)
	if got := printed(t, path, -1); !slices.Equal(got, []string{"ns1/web | a", "ns1/web | b", "ns1/web | c"}) {
		t.Errorf("Print = %q", got)
	}
	if got := Tail(path, 2); !slices.Equal(got, []string{"b", "c"}) {
		t.Errorf("Tail = %q", got)
	}
}

func TestPrintLongLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "web.log")
	long := strings.Repeat("y", 200<<10)
	os.WriteFile(path, []byte("short\n"+long+"\nend\n"), 0o600)
	got := printed(t, path, -1)
	if len(got) != 3 || got[1] != "ns1/web | "+long || got[2] != "ns1/web | end" {
		t.Errorf("a line longer than the read buffer: %d lines, the second %d bytes", len(got), len(got[1]))
	}
}

// Printing a 10 MiB log streams it: the memory allocated does not grow
// with the log.
func TestPrintStreams(t *testing.T) {
	path := writeLog(t, (10<<20)/51, 11<<20)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if _, err := Print(io.Discard, []Source{{Prefix: "ns1/web", Path: path}}, -1); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
		t.Errorf("printing a 10 MiB log allocated %d KiB; want it streamed (under 1 MiB)", alloc>>10)
	}
}

func TestTailOfNothing(t *testing.T) {
	if Tail(filepath.Join(t.TempDir(), "none.log"), 5) != nil {
		t.Error("Tail of a missing log is not empty")
	}
	empty := filepath.Join(t.TempDir(), "empty.log")
	os.WriteFile(empty, nil, 0o600)
	if Tail(empty, 5) != nil {
		t.Error("Tail of an empty log is not empty")
	}
}
