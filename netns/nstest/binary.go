package nstest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

var build struct {
	once sync.Once
	dir  string
	path string
	err  error
	out  []byte
}

// Binary builds nsrun once per test run and returns its path; Main
// removes it at the end.
func Binary(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		build.dir, build.err = os.MkdirTemp("", "nsrun-test-")
		if build.err != nil {
			return
		}
		os.Chmod(build.dir, 0o755) // so tests can run it as another user
		build.path = filepath.Join(build.dir, "nsrun")
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		cmd := exec.Command("go", "build", "-o", build.path, "./cmd/nsrun")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0") // as released: static, quicker to start
		cmd.Dir = root
		build.out, build.err = cmd.CombinedOutput()
	})
	if build.err != nil {
		t.Fatalf("building nsrun: %v\n%s", build.err, build.out)
	}
	return build.path
}

func removeBinary() {
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
}
