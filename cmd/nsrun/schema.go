package main

import (
	"github.com/nsrun/nsrun/specs"
	"github.com/spf13/cobra"
)

func newSchemaCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of the spec, for editors",
		Long: `Schema prints the JSON Schema (draft 2020-12) of spec version 1: every key
with its description, both port forms, and no unknown keys, so an editor
underlines what nsrun validate would report and shows each key's meaning.
The same file is schemas/nsrun.schema.json. Point an editor at it with a
first line "# yaml-language-server: $schema=PATH" in the spec, or with the
yaml.schemas setting (see docs/spec.md).`,
		Example: `  nsrun schema > nsrun.schema.json`,
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			_, err := c.OutOrStdout().Write(specs.Schema())
			return err
		},
	}
}
