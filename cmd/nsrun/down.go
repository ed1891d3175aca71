package main

import (
	"github.com/spf13/cobra"
)

type downFlags struct {
	project string
	all     bool
}

func newDownCommand() *cobra.Command {
	var flags downFlags
	c := &cobra.Command{
		Use:   "down [SPEC | -p NAME | --all]",
		Short: "Stop the processes and remove everything a project created",
		Long: `Down stops a project's processes and removes its forwards, links and
namespaces, working from what up recorded: it works after the spec was
edited or deleted. --all removes every project and any leftovers recognisable
as nsrun's. Needs root.`,
		Example: `  sudo nsrun down specs/examples/blog.yaml
  sudo nsrun down -p blog
  sudo nsrun down --all`,
		Args:              usageArgs(cobra.MaximumNArgs(1)),
		ValidArgsFunction: completeSpecFiles,
		RunE:              notImplemented,
	}
	c.Flags().StringVarP(&flags.project, "project", "p", "", "the project to remove, by name")
	c.Flags().BoolVar(&flags.all, "all", false, "remove every project and nsrun's leftovers")
	return c
}
