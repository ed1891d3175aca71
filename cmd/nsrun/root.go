package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/nsrun/nsrun/specs"
	"github.com/spf13/cobra"
)

// Exit statuses (shared/DESIGN.md section 1).
const (
	exitFailure = 1 // any other failure
	exitUsage   = 2 // usage or spec error: nothing was changed
	exitDrift   = 3 // status: what exists drifted from what was recorded
)

// exitError carries the exit status for an error.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageError marks err as a usage or spec error (exit status 2).
func usageError(err error) error { return &exitError{code: exitUsage, err: err} }

func exitCode(err error) int {
	var e *exitError
	if errors.As(err, &e) {
		return e.code
	}
	return exitFailure
}

// run executes the command line and returns the exit status. Errors are
// printed once, here, to stderr.
func run(args []string, stdout, stderr io.Writer) int {
	root := newRootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, formatError(err))
	return exitCode(err)
}

// formatError prefixes the message with "nsrun: "; spec problems, one per
// line in FILE:LINE:COL form, are printed as they are.
func formatError(err error) string {
	var problems *specs.Error
	if errors.As(err, &problems) {
		return err.Error()
	}
	return "nsrun: " + err.Error()
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "nsrun",
		Short: "Run port-published Linux network namespaces from a YAML spec",
		Long: `nsrun turns a YAML spec into named network namespaces, each joined to the
host by a veth pair, with host ports published onto ports inside them (as
docker's -p does) and the processes that serve there. It replaces the manual
ip netns / ip link / iptables / sysctl steps, and removes exactly what it made.`,
		Example: `  sudo nsrun up specs/examples/blog.yaml     # two servers on 8080, published as 6000 and 6001
  curl http://127.0.0.1:6000
  nsrun exec ns1 -- ss -ltn                  # run a command inside a namespace
  sudo nsrun down specs/examples/blog.yaml   # remove everything the project made`,
		SilenceUsage:               true,
		SilenceErrors:              true,
		SuggestionsMinimumDistance: 2,
		Args:                       noSubcommand,
		RunE:                       func(c *cobra.Command, _ []string) error { return c.Help() },
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError(fmt.Errorf("%w; see '%s --help'", err, c.CommandPath()))
	})
	root.AddCommand(
		newUpCommand(),
		newDownCommand(),
		newExecCommand(),
		newStatusCommand(),
		newMetricsCommand(),
		newTopCommand(),
		newLogsCommand(),
		newValidateCommand(),
		newPlanCommand(),
		newVersionCommand(),
		newSuperviseCommand(),
		newKeepCommand(),
		newSchemaCommand(),
		newGraphCommand(),
		newConfigCommand(),
		newExportCommand(),
		newManCommand(),
	)
	return root
}

// noSubcommand rejects words that name no command, suggesting close ones.
func noSubcommand(c *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q", args[0])
	if s := c.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf("; did you mean %q?", s[0])
	}
	return usageError(fmt.Errorf("%s; see 'nsrun --help'", msg))
}

// usageArgs turns a cobra argument check into a usage error (exit 2).
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if err := check(c, args); err != nil {
			return usageError(fmt.Errorf("%w; usage: %s", err, c.UseLine()))
		}
		return nil
	}
}
