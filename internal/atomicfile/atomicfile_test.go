package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	for _, content := range []string{"first\n", "second\n"} {
		if err := Write(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != content {
			t.Fatalf("content %q, %v; want %q", got, err, content)
		}
	}
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, %v; want 0600", info.Mode().Perm(), err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries; want only the file (no temporary left)", len(entries))
	}
}

// A writer whose directory was removed must not bring it back.
func TestWriteDoesNotMakeTheDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "gone")
	err := Write(filepath.Join(dir, "status.json"), []byte("{}"), 0o600)
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Write into a missing directory = %v; want ErrNotExist", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the missing directory was made: %v", err)
	}
}

func TestIsTemp(t *testing.T) {
	if !IsTemp(TempPrefix+"hosts-123") || IsTemp("hosts") {
		t.Error("IsTemp does not tell temporary names from others")
	}
}

// TestLink: path becomes another name of src, over what it was, with no
// temporary name left behind; a missing src changes nothing.
func TestLink(t *testing.T) {
	dir := t.TempDir()
	src, path := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	if err := os.WriteFile(src, []byte("shared\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Link(src, path); err != nil {
		t.Fatal(err)
	}
	a, _ := os.Stat(src)
	b, _ := os.Stat(path)
	if !os.SameFile(a, b) {
		t.Error("path is not src's file")
	}
	if err := Link(filepath.Join(dir, "missing"), path); err == nil {
		t.Error("a link to a missing file succeeded")
	}
	if got, _ := os.ReadFile(path); string(got) != "shared\n" {
		t.Errorf("path holds %q after the failed link", got)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("directory holds %d entries; want a and b only", len(entries))
	}
}
