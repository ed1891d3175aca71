package main

import (
	"context"
	"fmt"
	"log"
	"os/signal"
	"syscall"
	"time"

	"github.com/nsrun/nsrun/host"
	"github.com/nsrun/nsrun/hostfw"
	"github.com/nsrun/nsrun/internal/rtnl"
	"github.com/nsrun/nsrun/keeper"
	"github.com/nsrun/nsrun/project"
	"github.com/nsrun/nsrun/shape"
	"github.com/nsrun/nsrun/state"
	"github.com/spf13/cobra"
)

// newKeepCommand is the keeper that up leaves running while any project
// heals or publishes a port, one for all projects; it is not for people to
// run.
func newKeepCommand() *cobra.Command {
	var period time.Duration
	c := &cobra.Command{
		Use:    "keep DIR",
		Short:  "Keep the firewall state of the projects in DIR true, and hold their published ports (started by up)",
		Hidden: true,
		Args:   usageArgs(cobra.ExactArgs(1)),
		RunE: func(c *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(c.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			e, err := newEngine(c.ErrOrStderr(), true)
			if err != nil {
				return err
			}
			e.Store, e.Waiting = state.Store{Dir: args[0]}, nil
			// It counts the host's changes, for its own reads of the host and
			// for up's and status's.
			changes, stopChanges, err := keeper.HostChanges()
			if err != nil {
				log.Printf("%v; each read of the host asks the kernel for all of it", err)
			} else {
				defer stopChanges()
			}
			e.System.(host.Kernel).Dumps.Changes = changes
			// It holds every published port, from its start.
			var holder keeper.Holder
			hold := func() error { return holder.Hold(e.Held()) }
			if err := hold(); err != nil {
				log.Print(err)
			}
			go holder.Retry(ctx, period, hold)
			go func() {
				if err := keeper.Serve(ctx, args[0], hold, changes); err != nil {
					log.Printf("%v; published ports are not held", err)
				}
			}()
			w := hostfw.NewWatcher()
			if err := w.Run(ctx, period); err != nil {
				return fmt.Errorf("watching the firewalls: %w", err)
			}
			records := state.Cache{Trim: project.BetweenLooks}
			e.Between = &records
			quiet := func(ctx context.Context) string {
				return keeper.QuietFingerprint(ctx) + "\n" + shapingFingerprint(e.Store, &records)
			}
			return keeper.Run(ctx, args[0], e, w.C, period, quiet)
		},
	}
	c.Flags().DurationVar(&period, "period", 5*time.Second, "how often to look at what sends no events (iptables-legacy)")
	return c
}

// shapingFingerprint is the qdiscs of both ends of the links the keeper
// keeps shaped: tc run inside a namespace sends the host no event. Only
// records that changed are decoded again, and of each only its shaped
// namespaces are kept; without shaped links it reads nothing more.
func shapingFingerprint(st state.Store, records *state.Cache) string {
	links := project.ShapedLinks(st.HealingFrom(records)...)
	if len(links) == 0 {
		return ""
	}
	read, err := shape.Read(links, host.PeerName, make([]byte, rtnl.BufferSize))
	return fmt.Sprint(read, err)
}
