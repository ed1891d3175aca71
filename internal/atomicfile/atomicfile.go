// Package atomicfile writes files so that a reader, or a later nsrun after
// a crash, sees the old content or the new, never a part of it.
package atomicfile

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
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

// Link makes path another name of the file src (a hard link), as Write
// does: a link beside path first, renamed over it. Both must be on one
// file system.
func Link(src, path string) error {
	for range 10 {
		tmp := filepath.Join(filepath.Dir(path), TempPrefix+filepath.Base(path)+"-"+randomSuffix())
		err := os.Link(src, tmp)
		if errors.Is(err, os.ErrExist) {
			continue // another writer's name: draw again
		}
		if err != nil {
			return fmt.Errorf("linking %s to %s: %w", path, src, err)
		}
		if err := os.Rename(tmp, path); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("linking %s to %s: %w", path, src, err)
		}
		return nil
	}
	return fmt.Errorf("linking %s to %s: no free temporary name", path, src)
}

// randomSuffix is a random name part, as os.CreateTemp draws them.
func randomSuffix() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
