package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nsrun/nsrun/forward/iptables"
	"github.com/nsrun/nsrun/netns/nstest"
)

// TestUnchangedUpRunsNoFirewallProgram: an up that changes nothing reads
// the firewalls from the cache (what iptables-nft-save and nft printed at
// the same nftables generation) and runs neither; once another program
// changes nftables, the next up reads them again.
func TestUnchangedUpRunsNoFirewallProgram(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.DumpOnFailure(t)
	// Wrappers that log each run, then run the real program.
	wrappers, calls := t.TempDir(), filepath.Join(t.TempDir(), "calls")
	for _, prog := range []string{"iptables-nft-save", "ip6tables-nft-save", "nft"} {
		real, err := exec.LookPath(prog)
		if err != nil {
			t.Fatalf("%s: %v; scripts/install-deps.sh installs it", prog, err)
		}
		script := "#!/bin/sh\necho " + prog + " >> " + calls + "\nexec " + real + " \"$@\"\n"
		if err := os.WriteFile(filepath.Join(wrappers, prog), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", wrappers+":"+os.Getenv("PATH"))
	ran := func() string {
		b, _ := os.ReadFile(calls)
		os.Remove(calls)
		return strings.Join(strings.Fields(string(b)), " ")
	}
	project := nstest.Name("c")
	spec := writeSpec(t, "cache.yaml", "name: "+project+"\nnamespaces:\n  "+project+": {ports: [\"127.0.0.1:26141:8080\"]}\n")
	dir := filepath.Dir(spec)
	t.Cleanup(func() { nsrunCmd(t, dir, "down", "-q", "-p", project) })
	if code, _, errOut := nsrunCmd(t, dir, "up", "-q", "--no-heal", spec); code != 0 {
		t.Fatalf("up: exit %d\n%s", code, errOut)
	}
	if got := ran(); !strings.Contains(got, "iptables-nft-save") {
		t.Fatalf("the first up ran %q; want iptables-nft-save among them (the wrappers are not in use)", got)
	}
	// The first up changed nftables after reading it: the next reads anew
	// and keeps what it read; the one after that reads nothing.
	for i := 0; i < 2; i++ {
		ran()
		if code, out, errOut := nsrunCmd(t, dir, "up", "--no-heal", spec); code != 0 || !strings.Contains(out, "is up to date") {
			t.Fatalf("up again: exit %d\n%s%s", code, out, errOut)
		}
	}
	if got := ran(); got != "" {
		t.Errorf("an up that changed nothing ran %q; want no firewall program (the cache)", got)
	}
	// Another program changes nftables: the cache no longer holds.
	table := nstest.Name("other")
	t.Cleanup(func() { exec.Command("nft", "delete", "table", "ip", table).Run() })
	if out, err := exec.Command("nft", "add", "table", "ip", table).CombinedOutput(); err != nil {
		t.Fatalf("nft add table: %v %s", err, out)
	}
	ran()
	if code, out, errOut := nsrunCmd(t, dir, "up", "--no-heal", spec); code != 0 || !strings.Contains(out, "is up to date") {
		t.Fatalf("up after another program's change: exit %d\n%s%s", code, out, errOut)
	}
	if got := ran(); !strings.Contains(got, "iptables-nft-save") || !strings.Contains(got, "nft") {
		t.Errorf("after nftables changed, up ran %q; want the firewalls read again", got)
	}
	// The verdict on the project's rules is kept too, as long as what it
	// was drawn from: once a rule of the project goes, status sees it.
	if code, out, errOut := nsrunCmd(t, dir, "status", "-p", project); code != 0 {
		t.Fatalf("status before the change: exit %d\n%s%s", code, out, errOut)
	}
	if out, err := exec.Command("iptables-nft", "-t", "nat", "-F", iptables.ChainDNAT).CombinedOutput(); err != nil {
		t.Fatalf("iptables-nft -F: %v %s", err, out)
	}
	if code, out, _ := nsrunCmd(t, dir, "status", "-p", project); code != exitDrift || !strings.Contains(out, "rule missing") {
		t.Errorf("status after a rule of the project went: exit %d\n%s\nwant exit %d and the missing rule", code, out, exitDrift)
	}
}

// TestNFTablesVerdictFollowsTheRuleset: with the nftables backend, the
// verdict kept on the project's rules holds only while the ruleset does:
// once an element of the project goes, status reports it.
func TestNFTablesVerdictFollowsTheRuleset(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.DumpOnFailure(t)
	project := nstest.Name("cn")
	spec := writeSpec(t, "cache.yaml", "name: "+project+"\nnamespaces:\n  "+project+": {ports: [\"127.0.0.1:26142:8080\"]}\n")
	dir := filepath.Dir(spec)
	t.Cleanup(func() { nsrunCmd(t, dir, "down", "-q", "-p", project) })
	if code, _, errOut := nsrunCmd(t, dir, "up", "-q", "--no-heal", "--firewall", "nftables", spec); code != 0 {
		t.Fatalf("up: exit %d\n%s", code, errOut)
	}
	for i := 0; i < 2; i++ { // the second answers from what the first kept
		if code, out, errOut := nsrunCmd(t, dir, "status", "-p", project); code != 0 {
			t.Fatalf("status %d: exit %d\n%s%s", i+1, code, out, errOut)
		}
	}
	if out, err := exec.Command("nft", "flush", "set", "inet", "nsrun", "hairpin").CombinedOutput(); err != nil {
		t.Fatalf("nft flush set: %v %s", err, out)
	}
	if code, out, _ := nsrunCmd(t, dir, "status", "-p", project); code != exitDrift || !strings.Contains(out, "hairpin") {
		t.Errorf("status after the project's hairpin element went: exit %d\n%s\nwant exit %d and the element", code, out, exitDrift)
	}
}
