package main

import (
	"github.com/nsrun/nsrun/netns"
	"github.com/spf13/cobra"
)

// completeSpecFiles completes YAML file names.
func completeSpecFiles(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return []string{"yaml", "yml"}, cobra.ShellCompDirectiveFilterFileExt
}

// completeNamespaces completes the names of existing namespaces (the first
// argument of exec).
func completeNamespaces(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveDefault
	}
	names, _ := netns.List()
	return names, cobra.ShellCompDirectiveNoFileComp
}

// completeProjects completes project names (for -p), from /run/nsrun.
func completeProjects(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	names, _ := store().Projects()
	return names, cobra.ShellCompDirectiveNoFileComp
}

// completeProcesses completes NS and NS/PROC of the project named by -p,
// or of every project.
func completeProcesses(c *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
	st := store()
	names := []string{}
	if p, _ := c.Flags().GetString("project"); p != "" {
		names = append(names, p)
	} else {
		names, _ = st.Projects()
	}
	var out []string
	for _, name := range names {
		s, err := st.Load(name)
		if err != nil {
			continue
		}
		for _, ns := range s.Namespaces {
			out = append(out, ns.Name)
			for _, r := range ns.Run {
				out = append(out, r.Key())
			}
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// projectFlag adds -p/--project with completion of project names.
func projectFlag(c *cobra.Command, p *string, usage string) {
	c.Flags().StringVarP(p, "project", "p", "", usage)
	c.RegisterFlagCompletionFunc("project", completeProjects)
}
