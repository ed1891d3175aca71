package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/nsrun/nsrun/cgroup"
	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/forward/iptables"
	"github.com/nsrun/nsrun/forward/nftables"
	"github.com/nsrun/nsrun/host"
	"github.com/nsrun/nsrun/project"
	"github.com/nsrun/nsrun/state"
	"github.com/spf13/cobra"
)

func newPlanCommand() *cobra.Command {
	var firewall, output string
	c := &cobra.Command{
		Use:   "plan SPEC",
		Short: "Print the ip, sysctl, tc and iptables (or nft) commands equivalent to up; changes nothing",
		Long: `Plan validates the spec and prints, as a shell script, the ip and sysctl
commands and the firewall input (iptables-restore, or nft -f with
--firewall nftables) that build the same namespaces, links and published
ports by hand on a clean machine, and the mkdir and echo commands of the
namespaces' cgroups with their resource limits (for this host's cgroup
layout, v1 or v2); 'nsrun down --all' removes what it made.
-o json prints instead the steps up would take on a clean machine, one
object each (version 1). It changes nothing and needs no root.`,
		Example: `  nsrun plan specs/examples/blog.yaml > blog.sh && sudo sh blog.sh
  nsrun plan --firewall nftables specs/examples/blog.yaml`,
		Args:              usageArgs(cobra.ExactArgs(1)),
		ValidArgsFunction: completeSpecFiles,
		RunE: func(c *cobra.Command, args []string) error {
			if output != "script" && output != "json" {
				return usageError(fmt.Errorf("-o %q: use script or json", output))
			}
			choice, err := firewallChoice(firewall)
			if err != nil {
				return err
			}
			s, err := loadSpec(args[0])
			if err != nil {
				return err
			}
			fw := planFirewall(choice)
			if output == "json" {
				return planJSON(c.OutOrStdout(), project.FromSpec(s), fw.Backend())
			}
			script, err := project.Script(project.FromSpec(s), fw, cgroup.Host())
			if err != nil {
				return err
			}
			fmt.Fprint(c.OutOrStdout(), script)
			return nil
		},
	}
	c.Flags().StringVar(&firewall, "firewall", "", firewallFlag)
	c.Flags().StringVarP(&output, "output", "o", "script", "output format: script or json")
	return c
}

// planDoc is plan -o json's document; its version changes only when its
// shape does.
type planDoc struct {
	Version  int        `json:"version"`
	Project  string     `json:"project"`
	Firewall string     `json:"firewall"` // the backend the rules would go to
	Steps    []planStep `json:"steps"`
}

type planStep struct {
	Op          string   `json:"op"`
	Namespace   string   `json:"namespace,omitempty"`
	Links       []string `json:"links,omitempty"`
	Description string   `json:"description"`
}

// planJSON prints the steps of an up on a clean machine.
func planJSON(w io.Writer, want *state.Record, b forward.Backend) error {
	want.Backend = b
	doc := planDoc{Version: 1, Project: want.Project, Firewall: string(b), Steps: []planStep{}}
	for _, s := range project.PlanUp(want, nil, nil, host.Observed{}, nil) {
		doc.Steps = append(doc.Steps, planStep{Op: string(s.Op), Namespace: s.Namespace, Links: s.Links, Description: s.String()})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(doc)
}

// planFirewall is the backend whose input plan prints: where up would
// place a new project on a clean machine with the backends installed here
// (forward.Place); iptables-nft, or nftables for --firewall nftables,
// when none that the choice allows is installed.
func planFirewall(c forward.Choice) forward.Firewall {
	fws := firewalls(nil)
	var installed []forward.Backend
	clean := map[forward.Backend]forward.Tables{}
	for _, fw := range fws {
		if fw.Installed() {
			installed = append(installed, fw.Backend())
			clean[fw.Backend()] = cleanTables{}
		}
	}
	want := iptables.NFT
	if c == forward.NFTables {
		want = nftables.Backend
	}
	if at, err := forward.Place("", c, installed, clean); err == nil {
		want = at.Backend
	}
	for _, fw := range fws {
		if fw.Backend() == want {
			return fw
		}
	}
	return fws[0]
}

// cleanTables is what a backend holds on a clean machine: nothing.
type cleanTables struct{}

func (cleanTables) Publishes() bool                      { return false }
func (cleanTables) InUse() bool                          { return false }
func (cleanTables) DropReason() string                   { return "" }
func (cleanTables) Drift(forward.Project, bool) []string { return nil }
func (cleanTables) IPv6() bool                           { return true }
