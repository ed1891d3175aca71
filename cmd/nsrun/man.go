package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

func newManCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "man DIR",
		Short: "Write a man page for each command into DIR",
		Long: `Man writes nsrun.1 and one page per command (nsrun-up.1, nsrun-down.1, ...)
into DIR, from the same text as --help. scripts/install.sh installs them;
read one in place with man -l DIR/nsrun-up.1.`,
		Example: `  nsrun man /tmp/man && man -l /tmp/man/nsrun-up.1`,
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(c *cobra.Command, args []string) error {
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return err
			}
			header := &doc.GenManHeader{Title: "NSRUN", Section: "1", Source: "nsrun " + versionString(), Manual: "nsrun manual"}
			root := c.Root()
			root.DisableAutoGenTag = true
			if err := doc.GenManTree(root, header, args[0]); err != nil {
				return fmt.Errorf("writing the man pages to %s: %w", args[0], err)
			}
			return nil
		},
	}
}
