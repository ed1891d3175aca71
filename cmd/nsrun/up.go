package main

import (
	"time"

	"github.com/spf13/cobra"
)

type upFlags struct {
	attach  bool
	timeout time.Duration
}

func newUpCommand() *cobra.Command {
	var flags upFlags
	c := &cobra.Command{
		Use:   "up SPEC",
		Short: "Create or update the namespaces, links, published ports and processes of a spec",
		Long: `Up validates the spec, then creates what it describes: a named network
namespace per entry, a veth pair joining it to the host, the published host
ports, and the processes. Running it again changes nothing; running it on an
edited spec brings the system to the new spec. Needs root.`,
		Example: `  sudo nsrun up specs/examples/blog.yaml
  sudo nsrun up --attach specs/examples/blog.yaml   # stay in the foreground; Ctrl-C removes it all`,
		Args:              usageArgs(cobra.ExactArgs(1)),
		ValidArgsFunction: completeSpecFiles,
		RunE: func(c *cobra.Command, args []string) error {
			return runUp(c, args[0], flags)
		},
	}
	c.Flags().BoolVar(&flags.attach, "attach", false, "stay in the foreground, stream the processes' output, and tear down on Ctrl-C")
	c.Flags().DurationVar(&flags.timeout, "timeout", 60*time.Second, "how long to wait for every ready check")
	return c
}

func runUp(c *cobra.Command, path string, _ upFlags) error {
	if _, err := loadSpec(path); err != nil {
		return err
	}
	if err := requireRoot("nsrun up " + path); err != nil {
		return err
	}
	return notImplemented(c, nil)
}
