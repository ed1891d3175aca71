package main

import (
	"github.com/spf13/cobra"
)

func newPlanCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "plan SPEC",
		Short: "Print the ip, iptables and sysctl commands equivalent to up; changes nothing",
		Long: `Plan validates the spec and prints, as a shell script, the commands that
would build the same setup by hand on a clean machine. It needs no root.`,
		Example:           `  nsrun plan specs/examples/blog.yaml > blog.sh`,
		Args:              usageArgs(cobra.ExactArgs(1)),
		ValidArgsFunction: completeSpecFiles,
		RunE: func(c *cobra.Command, args []string) error {
			if _, err := loadSpec(args[0]); err != nil {
				return err
			}
			return notImplemented(c, args)
		},
	}
}
