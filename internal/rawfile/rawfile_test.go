package rawfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	big := strings.Repeat("0123456789", 1000) // more than one buffer
	for name, content := range map[string]string{"empty": "", "small": "1\n", "big": big} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := Read(path)
		if err != nil || string(got) != content {
			t.Errorf("%s: %d bytes, %v; want %d bytes", name, len(got), err, len(content))
		}
		var parts []string
		if err := Stream(path, make([]byte, 7), func(b []byte) { parts = append(parts, string(b)) }); err != nil || strings.Join(parts, "") != content {
			t.Errorf("%s: streamed %d bytes, %v", name, len(strings.Join(parts, "")), err)
		}
	}
	if _, err := Read(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing file: %v; want ErrNotExist", err)
	}
	if _, err := Read(dir); err == nil {
		t.Error("reading a directory gave no error")
	}
}
