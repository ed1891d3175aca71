package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/nsrun/nsrun/specs"
	"github.com/nsrun/nsrun/state"
)

// store is where nsrun records its projects.
func store() state.Store { return state.Store{Dir: state.DefaultDir} }

// requireRootToRead fails plainly when the state cannot be read.
func requireRootToRead(command string) error {
	if os.Geteuid() == 0 {
		return nil
	}
	return fmt.Errorf("%s reads %s, which only root can; run it again with sudo: sudo nsrun %s", command, state.DefaultDir, command)
}

// pickProject finds the project a command is about, and the arguments
// left after it: -p NAME, else a spec file as first argument, else the
// only project there is.
func pickProject(st state.Store, flagProject string, args []string) (string, []string, error) {
	if flagProject != "" {
		if err := specs.CheckProjectName(flagProject); err != nil {
			return "", nil, usageError(err)
		}
		return flagProject, args, nil
	}
	if len(args) > 0 && isSpecFile(args[0]) {
		name, err := projectOfSpec(st, args[0])
		return name, args[1:], err
	}
	names, err := st.Projects()
	if err != nil {
		return "", nil, err
	}
	switch len(names) {
	case 0:
		return "", nil, errors.New("no project is up; start one with 'sudo nsrun up SPEC'")
	case 1:
		return names[0], args, nil
	}
	return "", nil, usageError(fmt.Errorf("several projects are up (%s); name one with -p NAME", strings.Join(names, ", ")))
}

func isSpecFile(arg string) bool {
	if strings.HasSuffix(arg, ".yaml") || strings.HasSuffix(arg, ".yml") {
		return true
	}
	st, err := os.Stat(arg)
	return err == nil && st.Mode().IsRegular()
}

// loadState loads a project's record, saying plainly when there is none.
func loadState(st state.Store, name string) (*state.Record, error) {
	s, err := st.Load(name)
	if errors.Is(err, state.ErrNoRecord) {
		return nil, fmt.Errorf("project %s is not up (nothing recorded in %s); start it with 'sudo nsrun up SPEC'", name, st.ProjectDir(name))
	}
	return s, err
}

// namedProject is the project a read-only command is narrowed to (-p NAME
// or SPEC), checked to be up; "" when none is named: every project.
func namedProject(st state.Store, flagProject string, args []string) (string, error) {
	if flagProject == "" && len(args) == 0 {
		return "", nil
	}
	name, _, err := pickProject(st, flagProject, args)
	if err != nil {
		return "", err
	}
	_, err = loadState(st, name)
	return name, err
}
