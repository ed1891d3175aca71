package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/nsrun/nsrun/internal/quote"
	"github.com/nsrun/nsrun/state"
	"github.com/nsrun/nsrun/supervise"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

type logsFlags struct {
	project string
	follow  bool
	tail    int
}

func newLogsCommand() *cobra.Command {
	var flags logsFlags
	c := &cobra.Command{
		Use:   "logs [SPEC | -p NAME] [NS[/PROC]]",
		Short: "Show the output of a project's processes",
		Long: `Logs prints what the project's processes wrote to stdout and stderr, each
line prefixed with NS/PROC. Name a namespace or one process to narrow it;
-f keeps printing new lines until Ctrl-C. Needs root (the logs live in
/run/nsrun/PROJECT/logs).`,
		Example: `  sudo nsrun logs -p blog
  sudo nsrun logs specs/examples/blog.yaml ns1/web -f --tail 20`,
		Args:              usageArgs(cobra.MaximumNArgs(2)),
		ValidArgsFunction: completeProcesses,
		RunE: func(c *cobra.Command, args []string) error {
			return runLogs(c, args, flags)
		},
	}
	projectFlag(c, &flags.project, "the project, by name")
	c.Flags().BoolVarP(&flags.follow, "follow", "f", false, "keep printing new output")
	c.Flags().IntVar(&flags.tail, "tail", -1, "print only the last N lines of each log (-1: all)")
	return c
}

func runLogs(c *cobra.Command, args []string, flags logsFlags) error {
	if err := requireRootToRead("logs"); err != nil {
		return err
	}
	st := store()
	name, rest, err := pickProject(st, flags.project, args)
	if err != nil {
		return err
	}
	if len(rest) > 1 {
		return usageError(fmt.Errorf("too many arguments; usage: %s", c.UseLine()))
	}
	rec, err := loadState(st, name)
	if err != nil {
		return err
	}
	filter := ""
	if len(rest) == 1 {
		filter = rest[0]
	}
	sources, err := logSources(st, rec, filter)
	if err != nil {
		return err
	}
	out := c.OutOrStdout()
	if isTerminal(out) {
		// The processes wrote these lines: they do not write to root's
		// terminal (piped or redirected, they are passed on as written).
		out = quote.Terminal(out)
	}
	sources, err = supervise.Print(out, sources, flags.tail)
	if err != nil {
		return err
	}
	if flags.follow {
		ctx, stop := signal.NotifyContext(c.Context(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		supervise.Follow(ctx, out, sources)
	}
	return nil
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// logSources lists the logs of a project's processes, narrowed to NS or
// NS/PROC.
func logSources(st state.Store, rec *state.Record, filter string) ([]supervise.Source, error) {
	wantNS, wantProc, _ := strings.Cut(filter, "/")
	var out []supervise.Source
	for _, ns := range rec.Namespaces {
		for _, r := range ns.Run {
			if (wantNS == "" || wantNS == ns.Name) && (wantProc == "" || wantProc == r.Name) {
				out = append(out, supervise.Source{Prefix: ns.Name + "/" + r.Name, Path: supervise.LogPath(st.ProjectDir(rec.Project), ns.Name, r.Name)})
			}
		}
	}
	if len(out) == 0 && filter != "" {
		return nil, usageError(fmt.Errorf("project %s has no process %q; give NS or NS/PROC, as 'nsrun status -p %s' lists them", rec.Project, filter, rec.Project))
	}
	return out, nil
}
