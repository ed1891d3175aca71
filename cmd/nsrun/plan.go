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

// planFirewall is the backend whose input plan prints: the first one up
// would choose among those installed here (iptables-nft when none is).
func planFirewall(c forward.Choice) forward.Firewall {
	fws := firewalls()
	var installed []forward.Backend
	for _, fw := range fws {
		if fw.Installed() {
			installed = append(installed, fw.Backend())
		}
	}
	want := iptables.NFT
	if candidates := c.Candidates(installed); len(candidates) > 0 {
		want = candidates[0]
	} else if c == forward.NFTables {
		want = nftables.Backend
	}
	for _, fw := range fws {
		if fw.Backend() == want {
			return fw
		}
	}
	return fws[0]
}
