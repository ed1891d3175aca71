package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/nsrun/nsrun/internal/words"
	"github.com/nsrun/nsrun/specs"
	"github.com/spf13/cobra"
)

func newValidateCommand() *cobra.Command {
	var output string
	c := &cobra.Command{
		Use:   "validate SPEC",
		Short: "Check a spec and report every problem; changes nothing, needs no root",
		Long: `Validate parses the spec, fills in defaults (project name, automatic
addresses) and checks it completely. It prints a one-line summary and exits 0,
or prints every problem as FILE:LINE:COL: FIELD: message and exits 2.
-o json prints one document (version 1) with every problem's file, line,
column, path and message, and exits the same way.`,
		Example: `  nsrun validate specs/examples/blog.yaml
  nsrun validate -o json spec.yaml`,
		Args:              usageArgs(cobra.ExactArgs(1)),
		ValidArgsFunction: completeSpecFiles,
		RunE: func(c *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return usageError(fmt.Errorf("-o %q: use text or json", output))
			}
			s, err := loadSpec(args[0])
			if output == "json" {
				return validateJSON(c.OutOrStdout(), args[0], s, err)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "%s is valid: %s\n", args[0], s.Summary())
			return nil
		},
	}
	c.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return c
}

// validateDoc is validate -o json's document; its version changes only
// when its shape does.
type validateDoc struct {
	Version  int            `json:"version"`
	File     string         `json:"file"`
	Valid    bool           `json:"valid"`
	Project  string         `json:"project,omitempty"`
	Summary  string         `json:"summary,omitempty"`
	Problems []problemEntry `json:"problems"`
}

type problemEntry struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Path    string `json:"path"`
	Message string `json:"message"`
}

// validateJSON prints the document; a spec with problems still exits 2.
func validateJSON(w io.Writer, file string, s *specs.Spec, err error) error {
	doc := validateDoc{Version: 1, File: file, Valid: err == nil, Problems: []problemEntry{}}
	var problems *specs.Error
	switch {
	case err == nil:
		doc.Project, doc.Summary = s.Name, s.Summary()
	case errors.As(err, &problems):
		for _, p := range problems.Problems {
			doc.Problems = append(doc.Problems, problemEntry{File: p.File, Line: p.Line, Column: p.Col, Path: p.Path, Message: p.Msg})
		}
	default: // the file cannot be read
		doc.Problems = append(doc.Problems, problemEntry{File: file, Message: err.Error()})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if eerr := enc.Encode(doc); eerr != nil {
		return eerr
	}
	if err != nil {
		return &exitError{code: exitUsage, err: fmt.Errorf("%s is not a valid spec (%s)", file, words.Plural(len(doc.Problems), "problem"))}
	}
	return nil
}
