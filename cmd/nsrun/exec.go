package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/nsrun/nsrun/cgroup"
	"github.com/nsrun/nsrun/netns"
	"github.com/nsrun/nsrun/specs"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

type execFlags struct {
	user    string
	env     []string
	workdir string
	cgroup  string
}

func newExecCommand() *cobra.Command {
	var flags execFlags
	c := &cobra.Command{
		Use:   "exec NS [flags] [--] CMD [ARG...]",
		Short: "Run a command inside a named network namespace, like ip netns exec",
		Long: `Exec runs CMD inside the named network namespace NS (nsrun's or any other
that ip netns list shows), in a mount namespace of its own where /sys shows
the namespace's interfaces and each file of /etc/netns/NS/ stands in for the
same name in /etc. The command replaces nsrun: stdin, stdout, stderr, the
terminal and signals are its own, and so is the exit status (127: not found,
126: not executable, 128+N: killed by signal N). Needs root, or, for a user
the project's spec grants exec to (exec: {users: [...]}), its helper
nsrun-exec installed beside nsrun with its capabilities: the command then
runs as that user, with no privilege at all (see docs/security.md).`,
		Example: `  nsrun exec ns1 -- python3 app.py     # as yourself, where the spec grants it
  sudo nsrun exec ns1 -- ip addr
  sudo nsrun exec ns1 --user nobody --env GREETING=hi --workdir /tmp -- python3 -m http.server 8080`,
		ValidArgsFunction: completeNamespaces,
		// Flags come after NS and end at the command (or at --), so that
		// 'nsrun exec ns1 ls -l' passes -l to ls, as ip netns exec does.
		DisableFlagParsing: true,
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
				return c.Help()
			}
			if len(args) == 0 || strings.HasPrefix(args[0], "-") {
				return usageError(errors.New("name the namespace first; usage: " + c.UseLine()))
			}
			if err := c.Flags().Parse(args[1:]); err != nil {
				return usageError(fmt.Errorf("%w; usage: %s", err, c.UseLine()))
			}
			if len(c.Flags().Args()) == 0 {
				return usageError(errors.New("no command to run; usage: " + c.UseLine()))
			}
			return runExec(args[0], c.Flags().Args(), flags)
		},
	}
	c.Flags().SetInterspersed(false)
	c.Flags().StringVar(&flags.user, "user", "", "run as this user: name or uid, optionally :group or :gid")
	c.Flags().StringArrayVar(&flags.env, "env", nil, "set an environment variable, KEY=VALUE (repeatable)")
	c.Flags().StringVar(&flags.workdir, "workdir", "", "run in this directory")
	c.Flags().StringVar(&flags.cgroup, "cgroup", "", "where NS has resource limits, run in this leaf of its cgroup: exec (the default) or run.PROCESS (the supervisor's)")
	return c
}

func runExec(ns string, argv []string, flags execFlags) error {
	for _, kv := range flags.env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return usageError(fmt.Errorf("--env %q is not KEY=VALUE", kv))
		}
	}
	if flags.cgroup != "" && flags.cgroup != cgroup.ExecLeaf {
		if name, ok := strings.CutPrefix(flags.cgroup, "run."); !ok || specs.CheckProcessName(name) != nil {
			return usageError(fmt.Errorf("--cgroup %q: give exec, or run.PROCESS for a process of the namespace", flags.cgroup))
		}
	}
	var err error
	if os.Geteuid() == 0 {
		err = netns.Exec(ns, argv, netns.ExecOptions{User: flags.user, Env: flags.env, Workdir: flags.workdir, Cgroup: flags.cgroup})
	} else {
		err = execUnprivileged(ns, argv, flags)
	}
	var exitErr *netns.ExitError
	if errors.As(err, &exitErr) {
		return &exitError{code: exitErr.Code, err: err}
	}
	return err
}

// helperName is the privileged helper that runs a command in a namespace
// for a user the namespace's grant lists (cmd/nsrun-exec), installed
// beside nsrun.
const helperName = "nsrun-exec"

// execUnprivileged runs the command as the caller, who is not root, where
// a grant allows it, through nsrun-exec with its capabilities (see
// docs/security.md): this nsrun holds no privilege, and hands the command
// and the caller's environment over.
func execUnprivileged(ns string, argv []string, flags execFlags) error {
	if flags.user != "" || flags.workdir != "" || flags.cgroup != "" {
		return usageError(errors.New("--user, --workdir and --cgroup need root: without root, exec runs the command as you, in the directory you are in, in the namespace's cgroup for exec"))
	}
	helper := findHelper()
	if helper == "" {
		me := "YOUR_USER"
		if u, err := user.Current(); err == nil {
			me = u.Username
		}
		return fmt.Errorf("exec needs root to enter a network namespace; run it again with sudo: sudo nsrun exec %s -- %s\n"+
			"or, to run it as yourself without sudo: the project's spec grants it (exec: {users: [%s]}), and root installs nsrun-exec with its capabilities (sudo scripts/install.sh --exec-capability; see docs/security.md)",
			ns, strings.Join(argv, " "), me)
	}
	env := netns.MergeEnv(os.Environ(), flags.env)
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "GOTRACEBACK="); ok {
			env = append(env, "NSRUN_EXEC_GOTRACEBACK="+v) // nsrun-exec's own is none
		}
	}
	err := syscall.Exec(helper, append([]string{helper, ns, "--"}, argv...), env)
	return fmt.Errorf("running %s: %w", helper, err)
}

// findHelper returns nsrun-exec beside this nsrun, else on PATH, when it
// carries file capabilities; "" when there is none such.
func findHelper() string {
	candidates := []string{}
	if self, err := os.Executable(); err == nil {
		candidates = append(candidates, filepath.Join(filepath.Dir(self), helperName))
	}
	if p, err := exec.LookPath(helperName); err == nil {
		candidates = append(candidates, p)
	}
	for _, p := range candidates {
		if _, err := unix.Getxattr(p, "security.capability", nil); err == nil {
			return p
		}
	}
	return ""
}
