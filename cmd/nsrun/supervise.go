package main

import (
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nsrun/nsrun/supervise"
	"github.com/spf13/cobra"
)

// newSuperviseCommand is the supervisor that up leaves running, one per
// project; it is not for people to run.
func newSuperviseCommand() *cobra.Command {
	var grace time.Duration
	c := &cobra.Command{
		Use:    "supervise DIR",
		Short:  "Keep a project's processes running (started by up)",
		Hidden: true,
		Args:   usageArgs(cobra.ExactArgs(1)),
		RunE: func(c *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(c.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			self, err := os.Executable()
			if err != nil {
				return err
			}
			s := &supervise.Supervisor{Dir: args[0], Self: self, Grace: grace}
			return s.Run(ctx)
		},
	}
	c.Flags().DurationVar(&grace, "grace", 5*time.Second, "how long processes get between SIGTERM and SIGKILL")
	return c
}
