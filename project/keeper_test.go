package project

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nsrun/nsrun/forward/iptables"
	"github.com/nsrun/nsrun/internal/daemon"
	"github.com/nsrun/nsrun/keeper"
	"github.com/nsrun/nsrun/netns/nstest"
)

// TestKeeperHeals: on the real kernel, with the real keeper process, a
// project's rules flushed behind its back, and another backend's FORWARD
// turned to DROP, are repaired with no command run: published ports from
// outside and egress work again. down stops the keeper.
func TestKeeperHeals(t *testing.T) {
	eachFirewall(t, func(t *testing.T, l *lab) {
		l.e.NoHeal = false
		ports := freePorts(t, 3)
		st := l.up(twoServers(ports))
		a := l.ns("a")
		nstest.StartServer(t, a, a, "8080", "")
		nstest.StartServer(t, l.outside, l.outside, "9999", "")
		works := func(what string) {
			t.Helper()
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				r, err := nstest.DialFrom(t, l.outside, "tcp", addr(l.outHost, ports[0]), "")
				r2, err2 := nstest.DialFrom(t, a, "tcp", addr(l.outPeer, 9999), "")
				if err == nil && err2 == nil {
					l.expect(r, err, a, what+": outside -> host:P0")
					l.expect(r2, err2, l.outside, what+": a -> outside")
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: not repaired within 10 s: %v, %v", what, err, err2)
				}
			}
		}
		works("after up")
		k := keeper.Daemon{Self: nstest.Binary(t)}
		if _, ok := k.Running(l.e.Store.Dir); !ok {
			t.Fatal("no keeper runs after up")
		}
		if st.Backend.IsIPTables() {
			run(t, string(st.Backend), "-t", "nat", "-F", iptables.ChainDNAT)
			run(t, string(st.Backend), "-F", iptables.ChainForward)
		} else {
			run(t, "nft", "delete", "table", "inet", "nsrun")
		}
		works("after the rules were flushed")
		// The other iptables backend's FORWARD starts dropping.
		other := iptables.Legacy
		if st.Backend == iptables.Legacy {
			other = iptables.NFT
		}
		l.dropForward(other)
		works("after " + string(other) + " -P FORWARD DROP")
		rec, err := l.e.Store.Load("t" + l.id)
		if err != nil || !slices.Contains(rec.Accepts, other) {
			t.Errorf("record after the repair: accepts %v, %v; want %s", rec.Accepts, err, other)
		}
		if h := l.e.Store.Repairs("t" + l.id); h.Repairs < 2 {
			t.Errorf("repairs recorded: %+v; want at least 2", h)
		}
		if _, err := l.e.Down(context.Background(), "t"+l.id); err != nil {
			t.Fatal(err)
		}
		if procs := daemon.Find(nstest.Binary(t), "keep", func(d string) bool { return d == l.e.Store.Dir }); len(procs) > 0 {
			t.Errorf("keepers still run after down: %v", procs)
		}
	})
}

// TestNoHealStartsNoKeeper: a lab project (up --no-heal) that publishes
// no port has no keeper.
func TestNoHealStartsNoKeeper(t *testing.T) {
	l := newLab(t)
	l.up("name: t{ID}\nnamespaces:\n  a{ID}: {}\n")
	if procs := daemon.Find(nstest.Binary(t), "keep", func(d string) bool { return d == l.e.Store.Dir }); len(procs) > 0 {
		t.Errorf("a keeper runs for a project up with --no-heal: %v", procs)
	}
	if _, err := os.Stat(keeper.StatusFile(l.e.Store.Dir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("keeper.json written for a project up with --no-heal: %v", err)
	}
}

// TestForeignTableDrops: an admin's own nftables table whose forward
// chain drops is what nsrun cannot fix: up warns with the command, status
// reports it, and the command lets the project's traffic through.
func TestForeignTableDrops(t *testing.T) {
	l := newLab(t)
	table := "admin" + l.id
	run(t, "nft", "add", "table", "inet", table)
	t.Cleanup(func() { exec.Command("nft", "delete", "table", "inet", table).Run() })
	run(t, "nft", "add chain inet "+table+" forward { type filter hook forward priority 0 ; policy drop ; }")
	run(t, "nft", "add", "rule", "inet", table, "forward", "iifname", l.outLink, "oifname", l.outLink, "accept")
	ports := freePorts(t, 3)
	out, err := l.e.Up(context.Background(), l.parse(twoServers(ports)))
	if err != nil {
		t.Fatal(err)
	}
	var fix string
	for _, w := range out.Warnings {
		if strings.Contains(w, "inet "+table+" forward") {
			fix = w[strings.LastIndex(w, ": ")+2:]
		}
	}
	if fix == "" {
		t.Fatalf("up warned %q; want the admin's table with its command", out.Warnings)
	}
	a := l.ns("a")
	nstest.StartServer(t, a, a, "8080", "")
	if r, err := nstest.DialFrom(t, l.outside, "tcp", addr(l.outHost, ports[0]), ""); err == nil {
		t.Fatalf("the admin's table let %q through before the fix", r)
	}
	if rep, err := l.e.Status(context.Background(), "t"+l.id); err != nil || rep.Host.Passes {
		t.Errorf("status: host passes %v, %v; want the admin's table reported as blocking", rep.Host.Passes, err)
	}
	for _, cmd := range strings.Split(fix, "; ") {
		run(t, "sh", "-c", cmd)
	}
	r, err := nstest.DialFrom(t, l.outside, "tcp", addr(l.outHost, ports[0]), "")
	l.expect(r, err, a, "outside -> host:P0 after the warning's command")
	if rep, err := l.e.Status(context.Background(), "t"+l.id); err != nil || !rep.Host.Passes {
		t.Errorf("status after the fix: %+v, %v", rep.Host.Findings, err)
	}
}

// TestKeeperNeverMakesUpWait: 20 ups and downs of a small project one
// after the other, with the keeper running for a bigger project beside them (its
// look reads the firewall's rules of all), never wait for the lock: the
// keeper looks at what they change without it, and takes it only to
// repair what no up or down made.
func TestKeeperNeverMakesUpWait(t *testing.T) {
	eachFirewall(t, func(t *testing.T, l *lab) {
		l.e.NoHeal = false
		ports := freePorts(t, 60)
		var big strings.Builder
		big.WriteString("name: t{ID}\nnamespaces:\n")
		for i := range 50 {
			fmt.Fprintf(&big, "  a%d{ID}: {ports: [\"%d:8080\"]}\n", i, ports[i])
		}
		l.up(big.String())
		if _, ok := (keeper.Daemon{Self: nstest.Binary(t)}).Running(l.e.Store.Dir); !ok {
			t.Fatal("no keeper runs after up")
		}
		waits := 0
		l.e.Waiting = func() { waits++ }
		var small strings.Builder
		small.WriteString("name: s{ID}\nnamespaces:\n")
		for i := range 5 {
			fmt.Fprintf(&small, "  s%d{ID}: {ports: [\"%d:8080\"]}\n", i, ports[50+i])
		}
		// A pause after each, as between commands typed or scripted: the
		// keeper looks once the events of one have settled (100 ms), and
		// the next begins while it looks.
		pause := func(i int) { time.Sleep(time.Duration(100+i%5*10) * time.Millisecond) }
		for i := range 20 {
			l.up(small.String())
			pause(i)
			if _, err := l.e.Down(context.Background(), "s"+l.id); err != nil {
				t.Fatalf("down %d: %v", i, err)
			}
			pause(i)
		}
		if waits > 0 {
			t.Errorf("20 ups and downs with the keeper running waited for the lock %d times; want none", waits)
		}
		// The project beside them is as recorded (TestKeeperHeals shows
		// the keeper still repairs what no up or down did).
		rep, err := l.e.Status(context.Background(), "t"+l.id)
		if err != nil || len(rep.Drift) > 0 {
			t.Fatalf("status: %+v, %v", rep, err)
		}
	})
}
