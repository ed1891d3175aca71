// Command nsrun-exec runs a command inside a named network namespace for
// a user that namespace's exec grant lists, without root:
//
//	nsrun-exec NS [--] CMD [ARG...]
//
// It is nsrun's only privileged program: scripts/install.sh
// --exec-capability gives it the file capabilities cap_sys_admin and
// cap_setpcap, permitted and not effective, and 'nsrun exec' run by a
// user who is not root hands the command to it. It checks the grant,
// raises the capabilities on one thread, enters the namespace, checks
// there that it is the one the grant names, drops every privilege and
// runs the command as the caller (internal/nsexec.ExecGranted). It links
// the standard library and golang.org/x/sys/unix alone, and is built
// without cgo: no C library, no dynamic loader.
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/nsrun/nsrun/internal/nsexec"
	"golang.org/x/sys/unix"
)

// TracebackVar carries the caller's GOTRACEBACK from 'nsrun exec' to the
// command: the Go runtime sets GOTRACEBACK=none in the environment of a
// program that gained capabilities (its secure mode), so this one never
// prints its stacks, whatever its caller asks.
const TracebackVar = "NSRUN_EXEC_GOTRACEBACK"

func main() {
	os.Exit(run(os.Args[1:], os.Environ()))
}

func run(args, env []string) int {
	// Not dumpable: no core file, no ptrace, no /proc/PID/mem of this
	// process by its caller. The kernel already decides so for a program
	// that gains capabilities; this does not rely on it.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fail(fmt.Errorf("making nsrun-exec not dumpable: %w", err))
	}
	if nsexec.HoldsCapabilities() && os.Getenv("GOTRACEBACK") != "none" {
		return fail(errors.New("the Go runtime's secure mode is off while nsrun-exec holds capabilities; refusing to run. Build nsrun-exec with scripts/build.sh (CGO_ENABLED=0)"))
	}
	name, argv, ok := parse(args)
	if !ok {
		fmt.Fprintln(os.Stderr, "usage: nsrun-exec NS [--] CMD [ARG...]  (nsrun exec NS -- CMD runs it for you)")
		return 2
	}
	if os.Geteuid() == 0 {
		return fail(errors.New("as root, run nsrun exec: nsrun-exec is for users a spec grants exec to"))
	}
	if !nsexec.CanExecUnprivileged() {
		return fail(fmt.Errorf("nsrun-exec does not have its capabilities; root installs it with them (sudo scripts/install.sh --exec-capability; see docs/security.md), or run: sudo nsrun exec %s -- %s", name, strings.Join(argv, " ")))
	}
	return fail(nsexec.ExecGranted(name, argv, commandEnv(env)))
}

// parse reads NS [--] CMD [ARG...].
func parse(args []string) (name string, argv []string, ok bool) {
	if len(args) < 2 || strings.HasPrefix(args[0], "-") {
		return "", nil, false
	}
	name, argv = args[0], args[1:]
	if argv[0] == "--" {
		argv = argv[1:]
	}
	return name, argv, len(argv) > 0
}

// commandEnv is the environment the command gets: this one, with the
// caller's GOTRACEBACK put back (or none, when the caller had none).
func commandEnv(env []string) []string {
	var out []string
	traceback, had := "", false
	for _, kv := range env {
		switch {
		case strings.HasPrefix(kv, "GOTRACEBACK="):
		case strings.HasPrefix(kv, TracebackVar+"="):
			traceback, had = strings.TrimPrefix(kv, TracebackVar+"="), true
		default:
			out = append(out, kv)
		}
	}
	if had {
		out = append(out, "GOTRACEBACK="+traceback)
	}
	return out
}

// fail reports err (nil: success, which never happens: the command
// replaces this process) and returns the exit status it calls for.
func fail(err error) int {
	if err == nil {
		return 0
	}
	fmt.Fprintln(os.Stderr, "nsrun exec:", err)
	var exitErr *nsexec.ExitError
	if errors.As(err, &exitErr) {
		return exitErr.Code
	}
	return 1
}
