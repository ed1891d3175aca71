package main

import (
	"github.com/spf13/cobra"
)

type statusFlags struct {
	project string
	output  string
}

func newStatusCommand() *cobra.Command {
	var flags statusFlags
	c := &cobra.Command{
		Use:     "status [SPEC | -p NAME]",
		Aliases: []string{"ps"},
		Short:   "Show what exists, what runs and what drifted",
		Long: `Status shows each project's namespaces, links, published ports and
processes, compares them with what the kernel has, and exits 3 when anything
drifted from what up recorded.`,
		Example: `  nsrun status
  nsrun status -p blog -o json`,
		Args:              usageArgs(cobra.MaximumNArgs(1)),
		ValidArgsFunction: completeSpecFiles,
		RunE:              notImplemented,
	}
	c.Flags().StringVarP(&flags.project, "project", "p", "", "the project to show, by name")
	c.Flags().StringVarP(&flags.output, "output", "o", "table", "output format: table or json")
	return c
}
