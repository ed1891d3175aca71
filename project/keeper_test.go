package project

import (
	"context"
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/nsrun/nsrun/forward/iptables"
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
		k := l.e.Keeper.(Keeper)
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
		if procs := daemons("keep", func(d string) bool { return d == l.e.Store.Dir }); len(procs) > 0 {
			t.Errorf("keepers still run after down: %v", procs)
		}
	})
}

// TestNoHealStartsNoKeeper: a lab project (up --no-heal) has no keeper.
func TestNoHealStartsNoKeeper(t *testing.T) {
	l := newLab(t)
	l.up(twoServers(freePorts(t, 3)))
	if procs := daemons("keep", func(d string) bool { return d == l.e.Store.Dir }); len(procs) > 0 {
		t.Errorf("a keeper runs for a project up with --no-heal: %v", procs)
	}
	if _, err := os.Stat(keeperPath(l.e.Store.Dir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("keeper.json written for a project up with --no-heal: %v", err)
	}
}
