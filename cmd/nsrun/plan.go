package main

import (
	"fmt"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/forward/iptables"
	"github.com/nsrun/nsrun/forward/nftables"
	"github.com/nsrun/nsrun/project"
	"github.com/spf13/cobra"
)

func newPlanCommand() *cobra.Command {
	var firewall string
	c := &cobra.Command{
		Use:   "plan SPEC",
		Short: "Print the ip, sysctl and iptables (or nft) commands equivalent to up; changes nothing",
		Long: `Plan validates the spec and prints, as a shell script, the ip and sysctl
commands and the firewall input (iptables-restore, or nft -f with
--firewall nftables) that build the same namespaces, links and published
ports by hand on a clean machine; 'nsrun down --all' removes what it made.
It changes nothing and needs no root.`,
		Example: `  nsrun plan specs/examples/blog.yaml > blog.sh && sudo sh blog.sh
  nsrun plan --firewall nftables specs/examples/blog.yaml`,
		Args:              usageArgs(cobra.ExactArgs(1)),
		ValidArgsFunction: completeSpecFiles,
		RunE: func(c *cobra.Command, args []string) error {
			choice, err := firewallChoice(firewall)
			if err != nil {
				return err
			}
			s, err := loadSpec(args[0])
			if err != nil {
				return err
			}
			script, err := project.Script(project.FromSpec(s), planFirewall(choice))
			if err != nil {
				return err
			}
			fmt.Fprint(c.OutOrStdout(), script)
			return nil
		},
	}
	c.Flags().StringVar(&firewall, "firewall", "", firewallFlag)
	return c
}

// planFirewall is the backend whose input plan prints: for auto, the one
// up would give a new project here (iptables where it is installed).
func planFirewall(c forward.Choice) forward.Firewall {
	ipt := iptables.New(iptables.NFT, 0)
	switch {
	case c == forward.NFTables:
		return nftables.New()
	case c == forward.Auto && !ipt.Installed() && !iptables.New(iptables.Legacy, 0).Installed():
		return nftables.New()
	}
	return ipt
}
