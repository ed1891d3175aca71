package main

import (
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/nsrun/nsrun/graph"
	"github.com/nsrun/nsrun/project"
	"github.com/nsrun/nsrun/specs"
	"github.com/nsrun/nsrun/state"
	"github.com/spf13/cobra"
)

type graphFlags struct {
	project string
	format  string
}

func newGraphCommand() *cobra.Command {
	var flags graphFlags
	c := &cobra.Command{
		Use:   "graph [SPEC | -p NAME]",
		Short: "Draw a project's namespaces, links, published ports and processes (Mermaid or DOT)",
		Long: `Graph draws the host, each namespace with its address, the veth link
between them with both addresses, each published port (127.0.0.1-only ones
marked), the processes of each namespace, and egress: false namespaces
(dashed). From a spec file it draws what up would build; for a project that
is up (as root), what was built, with each process's state. The output is
text: Mermaid (the default), which renders in markdown, or DOT for graphviz.`,
		Example: `  nsrun graph specs/examples/blog.yaml
  sudo nsrun graph -p blog --format dot | dot -Tsvg > topology.svg`,
		Args:              usageArgs(cobra.MaximumNArgs(1)),
		ValidArgsFunction: completeSpecFiles,
		RunE: func(c *cobra.Command, args []string) error {
			return runGraph(c, args, flags)
		},
	}
	projectFlag(c, &flags.project, "the project to draw, by name (it must be up)")
	c.Flags().StringVar(&flags.format, "format", "mermaid", "mermaid or dot")
	return c
}

func runGraph(c *cobra.Command, args []string, flags graphFlags) error {
	render := map[string]func(graph.Topology) string{"mermaid": graph.Mermaid, "dot": graph.DOT}[flags.format]
	if render == nil {
		return usageError(fmt.Errorf("--format %q: use mermaid or dot", flags.format))
	}
	if flags.project == "" && len(args) == 0 {
		return usageError(fmt.Errorf("name a spec file or a project (-p NAME); usage: %s", c.UseLine()))
	}
	t, err := topology(c, args, flags.project)
	if err != nil {
		return err
	}
	_, err = io.WriteString(c.OutOrStdout(), render(t))
	return err
}

// topology is the project's record with its processes' states when it is
// up and readable (root), else what the spec describes.
func topology(c *cobra.Command, args []string, name string) (graph.Topology, error) {
	var st *state.Record
	if name == "" {
		s, err := loadSpec(args[0])
		if err != nil {
			return graph.Topology{}, err
		}
		st, name = project.FromSpec(s), s.Name
	}
	if os.Geteuid() != 0 {
		if st == nil {
			return graph.Topology{}, requireRootToRead("graph -p " + name)
		}
		return graphOf(st, nil), nil
	}
	e, err := newEngine(c.ErrOrStderr(), true)
	if err != nil {
		return graph.Topology{}, err
	}
	r, err := e.Status(c.Context(), name)
	switch {
	case err == nil:
		return graphOf(r.State, r.Processes), nil
	case st != nil: // the spec's project is not up
		return graphOf(st, nil), nil
	}
	_, err = loadState(e.Store, name) // says how to start it
	return graph.Topology{}, err
}

func graphOf(st *state.Record, procs []project.ProcessReport) graph.Topology {
	states := map[string]string{}
	for _, p := range procs {
		states[p.Name] = p.State
	}
	t := graph.Topology{Project: st.Project}
	// A project whose namespaces are all on its default network alone is
	// drawn without it: that is every project without networks.
	onlyDefault := !slices.ContainsFunc(st.Namespaces, func(ns *state.Namespace) bool {
		nws := st.NetworksOf(ns)
		return len(nws) != 1 || specs.NetworkOfKey(nws[0]) != specs.Network{Name: specs.DefaultNetwork}
	})
	for _, ns := range st.Namespaces {
		n := graph.Namespace{Name: ns.Name, Address: ns.Address.String(), HostLink: ns.Link, HostAddress: ns.HostAddress.String(), Egress: ns.Egress}
		for _, nw := range networksOf(st, ns) {
			if onlyDefault {
				break
			}
			n.Networks = append(n.Networks, nw.String())
		}
		for _, p := range ns.Ports {
			n.Ports = append(n.Ports, graph.Port{HostIP: p.HostIP.String(), Published: p.Published.String(), Protocol: string(p.Protocol), Target: p.Target.String()})
		}
		for _, r := range ns.Run {
			n.Processes = append(n.Processes, graph.Process{Name: r.Name, State: states[r.Key()]})
		}
		t.Namespaces = append(t.Namespaces, n)
	}
	return t
}
