package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/project"
)

// newEngine wires the engine to the real host: the iptables backend that
// suits it, netlink, and the state in /run/nsrun. Progress goes to w.
func newEngine(ctx context.Context, w io.Writer, quiet bool) (*project.Engine, error) {
	backend, err := forward.Detect(ctx)
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	k := project.Kernel{Firewall: forward.Firewall{Backend: backend, Wait: 30 * time.Second}, Grace: 5 * time.Second}
	e := &project.Engine{
		Store:       store(),
		System:      k,
		Sweeper:     k,
		Supervision: project.Supervisor{Self: self, Grace: 5 * time.Second},
		Observe:     project.Observe,
		Backend:     backend,
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
