package xtables_test

import (
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nsrun/nsrun/internal/xtables"
	"github.com/nsrun/nsrun/netns"
	"github.com/nsrun/nsrun/netns/nstest"
)

func TestMain(m *testing.M) { nstest.Main(m) }

// TestDigestFollowsRulesNotCounters changes iptables-legacy's rules in a
// namespace of its own: the digest changes with a rule replaced by one of
// the same size, and not with the traffic its counters count.
func TestDigestFollowsRulesNotCounters(t *testing.T) {
	nstest.RequireRoot(t)
	for _, prog := range []string{"iptables-legacy", "ip6tables-legacy"} {
		if _, err := exec.LookPath(prog); err != nil {
			t.Skipf("%s is not installed (scripts/install-deps.sh installs it)", prog)
		}
	}
	ns := nstest.Name("xt-")
	if err := netns.Create(ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := netns.Delete(ns); err != nil {
			t.Error(err)
		}
	})
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	digest := func(ipv6 bool) string {
		t.Helper()
		var d string
		err := netns.Do(ns, func() error {
			var err error
			d, err = xtables.Digest(ipv6)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if d := digest(false); d != "no x_tables" {
		t.Errorf("a new namespace: %q, want no x_tables", d)
	}
	run("iptables-legacy", "-A", "INPUT", "-p", "tcp", "--dport", "5555", "-j", "ACCEPT")
	d1 := digest(false)
	if !strings.HasPrefix(d1, "x_tables ") {
		t.Fatalf("after a rule: %q", d1)
	}
	// Traffic through the rule: a refused connection to port 5555 on lo.
	err := netns.Do(ns, func() error {
		c, err := net.DialTimeout("tcp", "127.0.0.1:5555", 10*time.Second)
		if err == nil {
			c.Close()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if out := run("iptables-legacy", "-L", "INPUT", "-v", "-x", "-n"); !strings.Contains(out, "dpt:5555") || strings.Contains(out, "\n       0        0 ACCEPT") {
		t.Fatalf("the rule counted nothing:\n%s", out)
	}
	if d := digest(false); d != d1 {
		t.Errorf("counters changed the digest: %q, then %q", d1, d)
	}
	run("iptables-legacy", "-R", "INPUT", "1", "-p", "tcp", "--dport", "5556", "-j", "ACCEPT")
	if d := digest(false); d == d1 {
		t.Error("a rule replaced by one of the same size left the digest as it was")
	}
	run("iptables-legacy", "-t", "nat", "-N", "NSRTEST")
	d2 := digest(false)
	if d2 == d1 {
		t.Error("a new table's chain left the digest as it was")
	}

	before6 := digest(true)
	run("ip6tables-legacy", "-A", "INPUT", "-p", "tcp", "--dport", "5555", "-j", "ACCEPT")
	if d := digest(true); d == before6 || !strings.HasPrefix(d, "x_tables ") {
		t.Errorf("IPv6: %q, then %q after a rule", before6, d)
	}
	if d := digest(false); d != d2 {
		t.Errorf("an IPv6 rule changed the IPv4 digest")
	}
}
