package main

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"

	"github.com/nsrun/nsrun/specs"
)

// loadSpec loads and validates a spec; any problem is a usage error (exit
// status 2), reported with every FILE:LINE:COL message.
func loadSpec(path string) (*specs.Spec, error) {
	s, err := specs.Load(path)
	if err == nil {
		// exec grants name users and groups of this host.
		err = specs.ResolveExec(s, lookupUID, lookupGID)
	}
	if err == nil {
		return s, nil
	}
	var serr *specs.Error
	if errors.As(err, &serr) {
		n := len(serr.Problems)
		noun := "problems"
		if n == 1 {
			noun = "problem"
		}
		return nil, usageError(fmt.Errorf("%w\nnsrun: %s is not a valid spec (%d %s); fix it and run again. Nothing was changed", err, path, n, noun))
	}
	return nil, usageError(err)
}

// requireRoot fails with a plain message when not run as root.
func requireRoot(command string) error {
	if os.Geteuid() == 0 {
		return nil
	}
	return fmt.Errorf("%s needs root to change namespaces, links and firewall rules; run it again with sudo: sudo %s", command, command)
}

func lookupUID(name string) (uint32, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return 0, err
	}
	id, err := strconv.ParseUint(u.Uid, 10, 32)
	return uint32(id), err
}

func lookupGID(name string) (uint32, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, err
	}
	id, err := strconv.ParseUint(g.Gid, 10, 32)
	return uint32(id), err
}
