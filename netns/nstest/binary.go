package nstest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// The binaries are built once per test run into one directory, which Main
// removes at the end.
var build struct {
	mu   sync.Mutex
	dir  string
	done map[string]string // name -> path
}

// Binary builds nsrun as released, with cgo when a C compiler is
// installed (so that 'nsrun exec' takes the fast path of package
// fastexec), and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	return binary(t, haveCompiler())
}

// CgoBinary builds nsrun with cgo, for the tests of the fast exec path,
// and returns its path; "" when no C compiler is installed, which fails the
// test when NSRUN_REQUIRE_CGO=1 (set by scripts/test.sh, whose
// install-deps.sh installs gcc).
func CgoBinary(t testing.TB) string {
	t.Helper()
	if !haveCompiler() {
		if os.Getenv("NSRUN_REQUIRE_CGO") == "1" {
			t.Fatal("no C compiler for cgo and NSRUN_REQUIRE_CGO=1 is set; install gcc (scripts/install-deps.sh)")
		}
		return ""
	}
	return binary(t, true)
}

// PureGoBinary builds nsrun without cgo, where every command, exec
// included, runs in Go; the tests compare the two.
func PureGoBinary(t testing.TB) string {
	t.Helper()
	return binary(t, false)
}

// haveCompiler says whether go build can use cgo: the C compiler of 'go
// env CC' is installed. Asked once per test run.
var haveCompiler = sync.OnceValue(func() bool {
	out, err := exec.Command("go", "env", "CC").Output()
	if err != nil {
		return false
	}
	cc := strings.Fields(string(out))
	if len(cc) == 0 {
		return false
	}
	_, err = exec.LookPath(cc[0])
	return err == nil
})

// HelperBinary builds nsrun-exec, the helper of nsrun exec without root,
// as scripts/build.sh does, and returns its path.
func HelperBinary(t testing.TB) string {
	t.Helper()
	return buildOnce(t, "nsrun-exec", "./cmd/nsrun-exec", "CGO_ENABLED=0", "-trimpath", "-ldflags=-s -w")
}

func binary(t testing.TB, cgo bool) string {
	t.Helper()
	if cgo {
		return buildOnce(t, "nsrun", "./cmd/nsrun", "CGO_ENABLED=1")
	}
	return buildOnce(t, "nsrun-purego", "./cmd/nsrun", "CGO_ENABLED=0")
}

// buildOnce builds a command of this module as name, with that
// environment variable and those flags, once per test run.
func buildOnce(t testing.TB, name, pkg, env string, flags ...string) string {
	t.Helper()
	build.mu.Lock()
	defer build.mu.Unlock()
	if path, ok := build.done[name]; ok {
		return path
	}
	if build.dir == "" {
		dir, err := os.MkdirTemp("", "nsrun-test-")
		if err != nil {
			t.Fatal(err)
		}
		os.Chmod(dir, 0o755) // so tests can run it as another user
		build.dir, build.done = dir, map[string]string{}
	}
	path := filepath.Join(build.dir, name)
	_, file, _, _ := runtime.Caller(0)
	cmd := exec.Command("go", append(append([]string{"build"}, flags...), "-o", path, pkg)...)
	cmd.Env = append(os.Environ(), env)
	cmd.Dir = filepath.Join(filepath.Dir(file), "..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s (%s): %v\n%s", pkg, env, err, out)
	}
	build.done[name] = path
	return path
}

// isBinary says whether path is one of the binaries built for the tests.
func isBinary(path string) bool {
	return build.dir != "" && filepath.Dir(path) == build.dir
}

func removeBinary() {
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
}
