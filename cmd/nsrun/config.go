package main

import "github.com/spf13/cobra"

func newConfigCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "config SPEC",
		Short: "Print the spec as nsrun understands it, defaults and addresses filled in",
		Long: `Config validates the spec and prints it as nsrun understands it, as docker
compose config does: the project name, the address pool, each namespace's
address (automatic ones assigned from the default pool), ports in their full
form, each process's name, command, restart and ready timeout. The output
is itself a spec. up may still choose another default pool when this one
overlaps a route of the host it runs on. Changes nothing, needs no root.`,
		Example:           `  nsrun config specs/examples/blog.yaml`,
		Args:              usageArgs(cobra.ExactArgs(1)),
		ValidArgsFunction: completeSpecFiles,
		RunE: func(c *cobra.Command, args []string) error {
			s, err := loadSpec(args[0])
			if err != nil {
				return err
			}
			out, err := s.Config()
			if err != nil {
				return err
			}
			_, err = c.OutOrStdout().Write(out)
			return err
		},
	}
}
