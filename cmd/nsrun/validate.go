package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newValidateCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "validate SPEC",
		Short: "Check a spec and report every problem; changes nothing, needs no root",
		Long: `Validate parses the spec, fills in defaults (project name, automatic
addresses) and checks it completely. It prints a one-line summary and exits 0,
or prints every problem as FILE:LINE:COL: FIELD: message and exits 2.`,
		Example:           `  nsrun validate specs/examples/blog.yaml`,
		Args:              usageArgs(cobra.ExactArgs(1)),
		ValidArgsFunction: completeSpecFiles,
		RunE: func(c *cobra.Command, args []string) error {
			s, err := loadSpec(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "%s is valid: %s\n", args[0], s.Summary())
			return nil
		},
	}
}
