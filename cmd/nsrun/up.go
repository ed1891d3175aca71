package main

import (
	"fmt"
	"io"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/nsrun/nsrun/project"
	"github.com/nsrun/nsrun/specs"
	"github.com/spf13/cobra"
)

type upFlags struct {
	attach  bool
	timeout time.Duration
	quiet   bool
}

func newUpCommand() *cobra.Command {
	var flags upFlags
	c := &cobra.Command{
		Use:   "up SPEC",
		Short: "Create or update the namespaces, links and published ports of a spec",
		Long: `Up validates the spec, checks the host for conflicts, then creates what the
spec describes: a named network namespace per entry, a veth pair joining it
to the host, and the published host ports. Running it again changes nothing;
running it on an edited spec brings the host to the new spec. If it fails
half-way it removes what it created. Needs root.`,
		Example: `  sudo nsrun up specs/examples/blog.yaml
  curl http://127.0.0.1:6000`,
		Args:              usageArgs(cobra.ExactArgs(1)),
		ValidArgsFunction: completeSpecFiles,
		RunE: func(c *cobra.Command, args []string) error {
			return runUp(c, args[0], flags)
		},
	}
	c.Flags().BoolVar(&flags.attach, "attach", false, "stay in the foreground and tear down on Ctrl-C (comes with process supervision)")
	c.Flags().DurationVar(&flags.timeout, "timeout", 60*time.Second, "how long to wait for every ready check (comes with process supervision)")
	c.Flags().BoolVarP(&flags.quiet, "quiet", "q", false, "print no progress lines")
	return c
}

func runUp(c *cobra.Command, path string, flags upFlags) error {
	s, err := loadSpec(path)
	if err != nil {
		return err
	}
	if err := requireRoot("nsrun up " + path); err != nil {
		return err
	}
	if abs, err := filepath.Abs(path); err == nil {
		s.File = abs // recorded, so that 'down SPEC' finds the project after the file is gone
	}
	if flags.attach {
		return usageError(fmt.Errorf("--attach is not implemented in this version yet; run 'nsrun up' without it"))
	}
	ctx, stop := signal.NotifyContext(c.Context(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	e, err := newEngine(ctx, c.ErrOrStderr(), flags.quiet)
	if err != nil {
		return err
	}
	state, err := e.Up(ctx, s)
	if err != nil {
		return fmt.Errorf("up %s: %w", path, err)
	}
	printReachable(c.OutOrStdout(), state)
	warnProcesses(c.ErrOrStderr(), s)
	return nil
}

// printReachable says what is reachable where, one line per published port.
func printReachable(w io.Writer, s *project.State) {
	fmt.Fprintf(w, "project %s is up\n", s.Project)
	for _, ns := range s.Namespaces {
		ports, _ := ns.ParsedPorts()
		fmt.Fprintf(w, "  %-12s %s (host side %s on %s)\n", ns.Name, ns.Address, ns.HostAddress.Addr(), ns.Link)
		for _, p := range ports {
			host := p.HostIP.String()
			if p.HostIP.IsUnspecified() {
				host = "127.0.0.1"
			}
			fmt.Fprintf(w, "    %s:%s/%s -> %s:%s\n", host, p.Published, p.Protocol, ns.Address.Addr(), p.Target)
		}
	}
}

func warnProcesses(w io.Writer, s *specs.Spec) {
	for _, ns := range s.Namespaces {
		if len(ns.Run) > 0 {
			fmt.Fprintf(w, "nsrun: note: this version does not start run: entries yet; start them with 'sudo ip netns exec NS CMD'\n")
			return
		}
	}
}
