package main

import (
	"github.com/spf13/cobra"
)

type logsFlags struct {
	project string
	follow  bool
	tail    int
}

func newLogsCommand() *cobra.Command {
	var flags logsFlags
	c := &cobra.Command{
		Use:   "logs [SPEC | -p NAME] [NS[/PROC]]",
		Short: "Show the output of a project's processes",
		Long: `Logs prints what the project's processes wrote to stdout and stderr, each
line prefixed with NS/PROC. Name a namespace or one process to narrow it.`,
		Example: `  nsrun logs -p blog
  nsrun logs -p blog ns1/web -f --tail 20`,
		Args: usageArgs(cobra.MaximumNArgs(2)),
		RunE: notImplemented,
	}
	c.Flags().StringVarP(&flags.project, "project", "p", "", "the project, by name")
	c.Flags().BoolVarP(&flags.follow, "follow", "f", false, "keep printing new output")
	c.Flags().IntVar(&flags.tail, "tail", -1, "print only the last N lines of each log (-1: all)")
	return c
}
