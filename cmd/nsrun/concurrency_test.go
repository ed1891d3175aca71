package main

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/nsrun/nsrun/netns/nstest"
)

// TestConcurrentProjects brings 4 projects up at once, checks that none
// lost a rule or a link to another, takes them down at once, and repeats.
func TestConcurrentProjects(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.DumpOnFailure(t)
	before := nstest.Snapshot()
	id := strings.ToLower(nstest.Name(""))[:6]
	var specs, names []string
	for i := 0; i < 4; i++ {
		name := fmt.Sprintf("cc%d%s", i, id)
		names = append(names, name)
		specs = append(specs, writeSpec(t, name+".yaml", fmt.Sprintf(
			"namespaces:\n  %sa: {ports: [\"%d:8080\", \"%d:53/udp\"]}\n  %sb:\n    ports: [\"%d:8080\"]\n    run: [{command: [sleep, \"300\"]}]\n",
			name, 26000+i*10, 26001+i*10, name, 26002+i*10)))
	}
	t.Cleanup(func() {
		for _, n := range names {
			nsrunCmd(t, "/", "down", "-q", "-p", n)
		}
	})
	all := func(args func(i int) []string) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make([]string, len(names))
		for i := range names {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if code, out, errOut := nsrunCmd(t, "/", args(i)...); code != 0 {
					errs[i] = fmt.Sprintf("%v: exit %d\n%s%s", args(i), code, out, errOut)
				}
			}()
		}
		wg.Wait()
		for _, e := range errs {
			if e != "" {
				t.Error(e)
			}
		}
	}
	for round := 0; round < 3; round++ {
		all(func(i int) []string { return []string{"up", "-q", specs[i]} })
		all(func(i int) []string { return []string{"status", "-p", names[i]} }) // exit 3 on any lost rule or link
		all(func(i int) []string { return []string{"down", "-q", "-p", names[i]} })
		if t.Failed() {
			return
		}
		if after := nstest.Snapshot(); after != before {
			t.Fatalf("round %d left the host changed:\n%s\n%s", round, before, after)
		}
	}
}

// TestConcurrentUpOfOneProject: a second up of the same project waits for
// the first, and both succeed.
func TestConcurrentUpOfOneProject(t *testing.T) {
	nstest.RequireRoot(t)
	name := strings.ToLower(nstest.Name("cs"))
	spec := writeSpec(t, name+".yaml", "namespaces:\n  "+name+": {ports: [\"26100:8080\"]}\n")
	t.Cleanup(func() { nsrunCmd(t, "/", "down", "-q", "-p", name) })
	var wg sync.WaitGroup
	codes := make([]int, 3)
	outs := make([]string, 3)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], _, outs[i] = nsrunCmd(t, "/", "up", spec)
		}()
	}
	wg.Wait()
	for i, code := range codes {
		if code != 0 {
			t.Errorf("up %d: exit %d\n%s", i, code, outs[i])
		}
	}
	if code, out, _ := nsrunCmd(t, "/", "status", "-p", name); code != 0 {
		t.Errorf("status after concurrent ups: %d\n%s", code, out)
	}
}
