package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/nsrun/nsrun/specs"
	"github.com/nsrun/nsrun/traffic"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

type topFlags struct {
	project string
}

func newTopCommand() *cobra.Command {
	var flags topFlags
	c := &cobra.Command{
		Use:   "top [SPEC | -p NAME]",
		Short: "Watch the projects' published ports, namespaces and processes, busiest first",
		Long: `Top shows, refreshed each second, every project's published ports with
their new connections per second and the bytes per second each way of the
connections the host forwards to them, its namespaces with the bytes per
second into and out of each, and its processes with their state, health and
restarts, each busiest first; q (or Ctrl-C) quits and gives the terminal
back as it was. It reads the counters that nsrun metrics reads.

When standard output is not a terminal it prints the same tables once, the
rates measured over one second, and exits. Needs root.`,
		Example: `  sudo nsrun top
  sudo nsrun top -p blog
  sudo nsrun top | head`,
		Args:              usageArgs(cobra.MaximumNArgs(1)),
		ValidArgsFunction: completeSpecFiles,
		RunE: func(c *cobra.Command, args []string) error {
			return runTop(c, args, flags)
		},
	}
	projectFlag(c, &flags.project, "the project to watch, by name")
	return c
}

func runTop(c *cobra.Command, args []string, flags topFlags) error {
	if err := requireRootToRead("top"); err != nil {
		return err
	}
	st := store()
	only, err := namedProject(st, flags.project, args)
	if err != nil {
		return err
	}
	read := metricsReader(st, only)
	out := c.OutOrStdout()
	if f, ok := out.(*os.File); !ok || !term.IsTerminal(int(f.Fd())) {
		return topOnce(c.Context(), out, read)
	}
	m := topModel{read: read}
	_, err = tea.NewProgram(m, tea.WithAltScreen(), tea.WithContext(c.Context())).Run()
	if err != nil && !errors.Is(err, tea.ErrProgramKilled) && !errors.Is(err, context.Canceled) { // interrupted: as q
		return fmt.Errorf("top: %w", err)
	}
	return nil
}

// topOnce prints the tables once, the rates over one second.
func topOnce(ctx context.Context, out io.Writer, read func(context.Context) (*traffic.Sample, error)) error {
	first, err := read(ctx)
	if err != nil {
		return err
	}
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Second):
	}
	second, err := read(ctx)
	if err != nil {
		return err
	}
	_, err = io.WriteString(out, topView(first, second, time.Since(t0), 0))
	return err
}

// topModel is the live view: the last two samples and when they were read.
type topModel struct {
	read       func(context.Context) (*traffic.Sample, error)
	prev, cur  *traffic.Sample
	prevAt, at time.Time
	height     int
	err        error
}

type sampled struct {
	s   *traffic.Sample
	at  time.Time
	err error
}

func (m topModel) sample() tea.Msg {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := m.read(ctx)
	return sampled{s, time.Now(), err}
}

func (m topModel) Init() tea.Cmd { return m.sample }

func (m topModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.KeyMsg:
		switch msg.String() {
		case "q", "ctrl+c", "esc":
			return m, tea.Quit
		}
	case tea.WindowSizeMsg:
		m.height = msg.Height
	case sampled:
		m.err = msg.err
		if msg.err == nil {
			m.prev, m.prevAt, m.cur, m.at = m.cur, m.at, msg.s, msg.at
		}
		return m, tea.Tick(time.Second, func(time.Time) tea.Msg { return m.sample() })
	}
	return m, nil
}

func (m topModel) View() string {
	var b strings.Builder
	fmt.Fprintf(&b, "nsrun top  %s  (q quits)\n", time.Now().Format(time.TimeOnly))
	if m.err != nil {
		fmt.Fprintf(&b, "reading the counters: %v\n", m.err)
	}
	if m.cur == nil {
		return b.String() + "reading the counters...\n"
	}
	prev := m.prev
	if prev == nil {
		prev = m.cur
	}
	b.WriteString(topView(prev, m.cur, m.at.Sub(m.prevAt), m.height-2))
	return b.String()
}

// topView renders the tables from two samples taken dt apart, busiest
// first, in at most height lines (0: no bound).
func topView(prev, cur *traffic.Sample, dt time.Duration, height int) string {
	secs := dt.Seconds()
	if secs <= 0 {
		secs = 1
	}
	rate := func(now, before uint64) float64 {
		if now < before { // a counter made anew
			return float64(now) / secs
		}
		return float64(now-before) / secs
	}

	type portRow struct {
		name, where string
		perSec      float64
		total       uint64
		measured    bool
		in, out     float64 // bytes per second
	}
	before := map[string]traffic.Port{}
	for _, p := range prev.Ports {
		before[p.Project+"/"+p.Namespace+" "+p.Port.Full()] = p
	}
	var ports []portRow
	for _, p := range cur.Ports {
		if !p.Counted {
			continue
		}
		was := before[p.Project+"/"+p.Namespace+" "+p.Port.Full()]
		ports = append(ports, portRow{specs.HostIPText(p.Port.HostIP) + ":" + p.Port.Published.String() + "/" + string(p.Port.Protocol),
			p.Project + "/" + p.Namespace, rate(p.Connections, was.Connections), p.Connections,
			p.Measured, rate(p.In.Bytes, was.In.Bytes), rate(p.Out.Bytes, was.Out.Bytes)})
	}
	slices.SortStableFunc(ports, func(a, b portRow) int {
		return cmp.Or(cmp.Compare(b.in+b.out, a.in+a.out), cmp.Compare(b.perSec, a.perSec), cmp.Compare(b.total, a.total), cmp.Compare(a.where+a.name, b.where+b.name))
	})

	type nsRow struct {
		name          string
		in, out       float64
		inAll, outAll uint64
		drops         uint64
	}
	was := map[string]traffic.Namespace{}
	for _, n := range prev.Namespaces {
		was[n.Project+"/"+n.Namespace] = n
	}
	var nss []nsRow
	for _, n := range cur.Namespaces {
		if !n.Found {
			continue
		}
		key := n.Project + "/" + n.Namespace
		w := was[key]
		nss = append(nss, nsRow{key, rate(n.In.Bytes, w.In.Bytes), rate(n.Out.Bytes, w.Out.Bytes), n.In.Bytes, n.Out.Bytes, n.In.Drops + n.Out.Drops})
	}
	slices.SortStableFunc(nss, func(a, b nsRow) int {
		return cmp.Or(cmp.Compare(b.in+b.out, a.in+a.out), cmp.Compare(b.inAll+b.outAll, a.inAll+a.outAll), cmp.Compare(a.name, b.name))
	})

	procs := slices.Clone(cur.Processes)
	slices.SortStableFunc(procs, func(a, b traffic.Process) int {
		return cmp.Or(cmp.Compare(b.Restarts, a.Restarts), cmp.Compare(a.Project+"/"+a.Namespace+"/"+a.Name, b.Project+"/"+b.Namespace+"/"+b.Name))
	})

	// Each table gets its share of the lines: a header, and its rows.
	budget := []int{len(ports), len(nss), len(procs)}
	if height > 0 {
		budget = share(height-5, budget) // three headers, two blank lines
	}
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PUBLISHED\tNAMESPACE\tCONN/S\tCONNECTIONS\tIN/S\tOUT/S")
	for _, p := range ports[:budget[0]] {
		in, out := "-", "-"
		if p.measured {
			in, out = specs.FormatSize(int64(p.in)), specs.FormatSize(int64(p.out))
		}
		fmt.Fprintf(tw, "%s\t%s\t%.1f\t%d\t%s\t%s\n", p.name, p.where, p.perSec, p.total, in, out)
	}
	tw.Flush()
	b.WriteString("\n")
	tw = tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tIN/S\tOUT/S\tIN\tOUT\tDROPS")
	for _, n := range nss[:budget[1]] {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", n.name, specs.FormatSize(int64(n.in)), specs.FormatSize(int64(n.out)),
			specs.FormatSize(int64(n.inAll)), specs.FormatSize(int64(n.outAll)), n.drops)
	}
	tw.Flush()
	b.WriteString("\n")
	tw = tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROCESS\tSTATE\tHEALTH\tRESTARTS\tOOM KILLS")
	for _, p := range procs[:budget[2]] {
		state := "running"
		if !p.Up {
			state = "not running"
		}
		fmt.Fprintf(tw, "%s/%s/%s\t%s\t%s\t%d\t%d\n", p.Project, p.Namespace, p.Name, state, cmp.Or(p.Health, "-"), p.Restarts, p.OOMKills)
	}
	tw.Flush()
	return b.String()
}

// share splits lines among tables that want want[i] rows each: each gets
// what it wants while the lines last, the rest evenly.
func share(lines int, want []int) []int {
	got := make([]int, len(want))
	for lines > 0 {
		gave := false
		for i := range want {
			if lines > 0 && got[i] < want[i] {
				got[i]++
				lines--
				gave = true
			}
		}
		if !gave {
			break
		}
	}
	return got
}
