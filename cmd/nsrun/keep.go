package main

import (
	"fmt"
	"log"
	"os/signal"
	"syscall"
	"time"

	"github.com/nsrun/nsrun/hostfw"
	"github.com/nsrun/nsrun/keeper"
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
			// It holds every published port, from its start.
			var holder keeper.Holder
			hold := func() error { return holder.Hold(e.Held()) }
			if err := hold(); err != nil {
				log.Print(err)
			}
			go holder.Retry(ctx, period, hold)
			go func() {
				if err := keeper.Serve(ctx, args[0], hold); err != nil {
					log.Printf("%v; published ports are not held", err)
				}
			}()
			w := hostfw.NewWatcher()
			if err := w.Run(ctx, period); err != nil {
				return fmt.Errorf("watching the firewalls: %w", err)
			}
			return keeper.Run(ctx, args[0], e, w.C, period, keeper.QuietFingerprint)
		},
	}
	c.Flags().DurationVar(&period, "period", 5*time.Second, "how often to look at what sends no events (iptables-legacy)")
	return c
}
