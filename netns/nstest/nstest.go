// Package nstest has helpers for tests that need root and real network
// namespaces.
package nstest

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"testing"
)

// RequireRoot skips the test when not running as root, or fails it when
// NSRUN_REQUIRE_ROOT=1 (set by scripts/test.sh, so CI never skips).
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("NSRUN_REQUIRE_ROOT") == "1" {
		t.Fatal("this test needs root and NSRUN_REQUIRE_ROOT=1 is set; run sudo scripts/test.sh")
	}
	t.Skip("needs root: creates network namespaces (run sudo scripts/test.sh)")
}

// Name returns a unique name with the given prefix, short enough for an
// interface name (15 characters) when prefix is at most 5.
func Name(prefix string) string {
	b := make([]byte, 5)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// Dump logs the host's firewall and links, for the reader of a failed
// integration test.
func Dump(t testing.TB) {
	t.Helper()
	for _, args := range [][]string{
		{"iptables-nft-save"}, {"iptables-legacy-save"}, {"ip", "-d", "link"}, {"ip", "netns", "list"},
	} {
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		t.Logf("$ %v (err %v)\n%s", args, err, out)
	}
}

// DumpOnFailure registers Dump to run at cleanup when the test failed.
func DumpOnFailure(t testing.TB) {
	t.Helper()
	t.Cleanup(func() {
		if t.Failed() {
			Dump(t)
		}
	})
}
