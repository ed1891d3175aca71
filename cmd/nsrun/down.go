package main

import (
	"errors"
	"fmt"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/nsrun/nsrun/specs"
	"github.com/nsrun/nsrun/state"
	"github.com/spf13/cobra"
)

type downFlags struct {
	project string
	all     bool
	quiet   bool
}

func newDownCommand() *cobra.Command {
	var flags downFlags
	c := &cobra.Command{
		Use:   "down [SPEC | -p NAME | --all]",
		Short: "Stop the processes and remove everything a project created",
		Long: `Down stops every process inside a project's namespaces and removes its
forwards, links and namespaces, working from what up recorded: it works after
the spec was edited or deleted, and after up was killed half-way. Running it
on a project that is gone succeeds. --all removes every project and any
leftovers recognisable as nsrun's (labelled links, their namespaces, chains).
Needs root.`,
		Example: `  sudo nsrun down specs/examples/blog.yaml
  sudo nsrun down -p blog
  sudo nsrun down --all`,
		Args:              usageArgs(cobra.MaximumNArgs(1)),
		ValidArgsFunction: completeSpecFiles,
		RunE: func(c *cobra.Command, args []string) error {
			return runDown(c, args, flags)
		},
	}
	projectFlag(c, &flags.project, "the project to remove, by name")
	c.Flags().BoolVar(&flags.all, "all", false, "remove every project and nsrun's leftovers")
	c.Flags().BoolVarP(&flags.quiet, "quiet", "q", false, "print no progress lines")
	return c
}

func runDown(c *cobra.Command, args []string, flags downFlags) error {
	given := len(args)
	if flags.project != "" {
		given++
	}
	if flags.all {
		given++
	}
	if given != 1 {
		return usageError(errors.New("name exactly one of SPEC, -p NAME or --all; usage: " + c.UseLine()))
	}
	if err := requireRoot("nsrun down " + downTarget(args, flags)); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(c.Context(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	e, err := newEngine(c.ErrOrStderr(), flags.quiet)
	if err != nil {
		return err
	}
	if flags.all {
		if err := e.DownAll(ctx); err != nil {
			return fmt.Errorf("down --all: %w", err)
		}
		fmt.Fprintln(c.OutOrStdout(), "every nsrun project and leftover is removed")
		return nil
	}
	name := flags.project
	if name == "" {
		if name, err = projectOfSpec(e.Store, args[0]); err != nil {
			return err
		}
	} else if err := specs.CheckProjectName(name); err != nil {
		return usageError(err)
	}
	found, err := e.Down(ctx, name)
	if err != nil {
		return fmt.Errorf("down %s: %w", name, err)
	}
	if found {
		fmt.Fprintf(c.OutOrStdout(), "project %s is down\n", name)
	} else {
		fmt.Fprintf(c.OutOrStdout(), "project %s is not up; nothing to remove\n", name)
	}
	return nil
}

func downTarget(args []string, flags downFlags) string {
	switch {
	case flags.all:
		return "--all"
	case flags.project != "":
		return "-p " + flags.project
	}
	return args[0]
}

// projectOfSpec names the project of a spec file: the one whose record
// points at the file (so an edited or deleted spec still works), else the
// spec's name, else the name derived from the file name.
func projectOfSpec(st state.Store, path string) (string, error) {
	abs, _ := filepath.Abs(path)
	names, err := st.Projects()
	if err != nil {
		return "", err
	}
	for _, name := range names {
		if s, err := st.Load(name); err == nil && s.SpecFile == abs {
			return name, nil
		}
	}
	if s, err := specs.Load(path); err == nil {
		return s.Name, nil
	}
	name := specs.ProjectNameFromFile(path)
	if specs.CheckProjectName(name) != nil {
		return "", usageError(fmt.Errorf("cannot tell the project of %s; name it with -p NAME", path))
	}
	return name, nil
}
