// Package atomicfile writes files so that a reader, or a later nsrun after
// a crash, sees the old content or the new, never a part of it.
package atomicfile

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// TempPrefix starts the name of a file being written. A file of this name
// is what a writer killed half-way left; whoever cleans the directory may
// remove it.
const TempPrefix = ".nsrun-tmp-"

// Write writes data to path: to a temporary file beside it first, renamed
// over it. The directory must exist: a writer whose directory was removed
// does not bring it back. It does not fsync (nsrun's files live in /run or
// are rewritten by the next up).
func Write(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), TempPrefix+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // fails once renamed
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// IsTemp reports whether a file name is that of a file being written.
func IsTemp(name string) bool { return strings.HasPrefix(name, TempPrefix) }

// WriteJSON writes v to path as indented JSON with Write, readable by its
// owner only.
func WriteJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return Write(path, append(data, '\n'), 0o600)
}

// ReadJSON reads a file WriteJSON wrote into v; one that is not JSON is
// an error that says the file is corrupt.
func ReadJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s is corrupt: %w", path, err)
	}
	return nil
}
