package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/nsrun/nsrun/project"
	"github.com/nsrun/nsrun/specs"
	"github.com/nsrun/nsrun/state"
	"github.com/nsrun/nsrun/supervise"
	"github.com/spf13/cobra"
)

type upFlags struct {
	attach   bool
	noHeal   bool
	firewall string
	timeout  time.Duration
	quiet    bool
}

func newUpCommand() *cobra.Command {
	var flags upFlags
	c := &cobra.Command{
		Use:   "up SPEC",
		Short: "Create or update the namespaces, links, published ports and processes of a spec",
		Long: `Up validates the spec, checks the host for conflicts, then creates what the
spec describes: a named network namespace per entry, a veth pair joining it
to the host, the published host ports, and the processes, kept running by a
detached supervisor. It returns once every ready check passed. Running it
again changes nothing; running it on an edited spec brings the host to the
new spec, restarting only changed processes. If the network fails half-way it
removes what it created; if a process fails, the network stays up for a look.
While the project is up, nsrun's keeper puts its firewall state back when
another program changes it (a firewalld reload, iptables -F, ...); --no-heal
leaves that to you. The keeper also holds every published host port (a bound
socket that never listens), so a host process cannot bind one by mistake.
Namespaces reach each other directly only on a network they share (networks:
in the spec); other projects' only by their published ports. Needs root.`,
		Example: `  sudo nsrun up specs/examples/blog.yaml
  curl http://127.0.0.1:6000
  sudo nsrun up --attach specs/examples/blog.yaml   # stay in the foreground; Ctrl-C removes it all`,
		Args:              usageArgs(cobra.ExactArgs(1)),
		ValidArgsFunction: completeSpecFiles,
		RunE: func(c *cobra.Command, args []string) error {
			return runUp(c, args[0], flags)
		},
	}
	c.Flags().BoolVar(&flags.attach, "attach", false, "stay in the foreground, stream the processes' output as NS/PROC | line, and take it all down on Ctrl-C or SIGTERM")
	c.Flags().DurationVar(&flags.timeout, "timeout", 60*time.Second, "how long to wait, in all, for the ready checks")
	c.Flags().BoolVarP(&flags.quiet, "quiet", "q", false, "print no progress lines")
	c.Flags().StringVar(&flags.firewall, "firewall", "", firewallFlag)
	c.Flags().BoolVar(&flags.noHeal, "no-heal", false, "do not keep the project's firewall state true after up (recorded; an up without it turns healing back on)")
	return c
}

func runUp(c *cobra.Command, path string, flags upFlags) error {
	firewall, err := firewallChoice(flags.firewall)
	if err != nil {
		return err
	}
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
	ctx, stop := signal.NotifyContext(c.Context(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	e, err := newEngine(c.ErrOrStderr(), flags.quiet)
	if err != nil {
		return err
	}
	e.ReadyWait, e.FirewallChoice, e.NoHeal = flags.timeout, firewall, flags.noHeal
	var sources []supervise.Source
	var notify systemdNotify
	if flags.attach {
		sources = attachSources(e.Store, s)
		notify = takeNotifySocket()
	}
	out, err := e.Up(ctx, s)
	if err != nil {
		return fmt.Errorf("up %s: %w", path, err)
	}
	for _, w := range out.Warnings {
		fmt.Fprintf(c.ErrOrStderr(), "nsrun: warning: %s\n", w)
	}
	printReachable(c.OutOrStdout(), out)
	if !flags.attach {
		return nil
	}
	// Attached: stream the output until Ctrl-C or SIGTERM, then take the
	// project down as down does.
	fmt.Fprintf(c.ErrOrStderr(), "nsrun: attached to project %s; Ctrl-C stops and removes it\n", s.Name)
	notify.send("READY=1\nSTATUS=project " + s.Name + " is up")
	supervise.Follow(ctx, c.OutOrStdout(), sources)
	notify.send("STOPPING=1\nSTATUS=taking project " + s.Name + " down")
	fmt.Fprintf(c.ErrOrStderr(), "nsrun: taking project %s down\n", s.Name)
	if _, err := e.Down(context.WithoutCancel(ctx), s.Name); err != nil {
		return fmt.Errorf("down %s: %w", s.Name, err)
	}
	return nil
}

// systemdNotify is the socket systemd gave a Type=notify service
// (NOTIFY_SOCKET); "" when there is none.
type systemdNotify string

// takeNotifySocket takes NOTIFY_SOCKET out of the environment, so that the
// supervisor and the project's processes do not inherit it, and returns it.
func takeNotifySocket() systemdNotify {
	sock := os.Getenv("NOTIFY_SOCKET")
	os.Unsetenv("NOTIFY_SOCKET")
	return systemdNotify(sock)
}

// send tells systemd a state (sd_notify(3)); nothing without a socket.
func (n systemdNotify) send(state string) {
	if n == "" {
		return
	}
	os.Setenv("NOTIFY_SOCKET", string(n))
	if _, err := daemon.SdNotify(true, state); err != nil {
		fmt.Fprintf(os.Stderr, "nsrun: telling systemd %q: %v\n", state, err)
	}
}

// attachSources lists the spec's process logs, each to be followed from
// where it ends before up, so that attach shows all this run's output.
func attachSources(st state.Store, s *specs.Spec) []supervise.Source {
	var out []supervise.Source
	for _, ns := range s.Namespaces {
		for _, r := range ns.Run {
			path := supervise.LogPath(st.ProjectDir(s.Name), ns.Name, r.Name)
			out = append(out, supervise.Source{Prefix: ns.Name + "/" + r.Name, Path: path, From: supervise.Size(path)})
		}
	}
	return out
}

// printReachable says what is reachable where, one line per published
// port: http://127.0.0.1:6000 -> ns1:8080; in one write, not one a line.
func printReachable(out io.Writer, o *project.Outcome) {
	w := bufio.NewWriter(out)
	defer w.Flush()
	s := o.State
	if o.UpToDate {
		fmt.Fprintf(w, "project %s is up to date\n", s.Project)
	} else {
		fmt.Fprintf(w, "project %s is up\n", s.Project)
	}
	for _, ns := range s.Namespaces {
		for _, p := range ns.Ports {
			host := specs.HostIPText(p.HostIP)
			switch {
			case p.HostIP == netip.IPv4Unspecified():
				host = "127.0.0.1" // and every other host address
			case p.HostIP == netip.IPv6Unspecified():
				host = "[::1]" // and every other IPv6 host address
			}
			scheme := "http"
			if p.Protocol == specs.UDP {
				scheme = "udp"
			}
			fmt.Fprintf(w, "  %s://%s:%s -> %s:%s\n", scheme, host, p.Published, ns.Name, p.Target)
		}
	}
}
