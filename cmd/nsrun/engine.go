package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/forward/iptables"
	"github.com/nsrun/nsrun/project"
)

// newEngine wires the engine to the real host: netlink, the iptables
// backends, and the state in /run/nsrun. Progress goes to w.
func newEngine(w io.Writer, quiet bool) (*project.Engine, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	k := project.Kernel{Firewalls: firewalls(), Grace: 5 * time.Second}
	e := &project.Engine{
		Store:       store(),
		System:      k,
		Sweeper:     k,
		Supervision: project.Supervisor{Self: self, Grace: 5 * time.Second},
		Observe:     k.Observe,
		Waiting:     func() { fmt.Fprintln(w, "nsrun: waiting for another nsrun up or down to finish...") },
	}
	if !quiet {
		start := time.Now()
		e.Progress = func(s project.Step) {
			fmt.Fprintf(w, "  %-60s %6s\n", s.String(), time.Since(start).Round(time.Millisecond))
		}
	}
	return e, nil
}

// firewalls are the firewall backends nsrun uses, in order of preference.
func firewalls() []forward.Firewall {
	var out []forward.Firewall
	for _, b := range iptables.Backends {
		out = append(out, iptables.New(b, 30*time.Second))
	}
	return out
}
