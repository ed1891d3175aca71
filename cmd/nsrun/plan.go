package main

import (
	"fmt"

	"github.com/nsrun/nsrun/forward/iptables"
	"github.com/nsrun/nsrun/project"
	"github.com/spf13/cobra"
)

func newPlanCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "plan SPEC",
		Short: "Print the ip, iptables and sysctl commands equivalent to up; changes nothing",
		Long: `Plan validates the spec and prints, as a shell script, the ip, sysctl and
iptables commands that build the same namespaces, links and published ports by
hand on a clean machine. It changes nothing and needs no root.`,
		Example:           `  nsrun plan specs/examples/blog.yaml > blog.sh && sudo sh blog.sh`,
		Args:              usageArgs(cobra.ExactArgs(1)),
		ValidArgsFunction: completeSpecFiles,
		RunE: func(c *cobra.Command, args []string) error {
			s, err := loadSpec(args[0])
			if err != nil {
				return err
			}
			script, err := project.Script(project.FromSpec(s), iptables.New(iptables.NFT, 0))
			if err != nil {
				return err
			}
			fmt.Fprint(c.OutOrStdout(), script)
			return nil
		},
	}
}
