package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/forward/nftables"
	"github.com/nsrun/nsrun/forward/shortcut"
	"github.com/nsrun/nsrun/project"
	"github.com/nsrun/nsrun/state"
	"github.com/nsrun/nsrun/supervise"
	"github.com/nsrun/nsrun/traffic"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
	"github.com/spf13/cobra"
)

type metricsFlags struct {
	project string
	listen  string
}

func newMetricsCommand() *cobra.Command {
	var flags metricsFlags
	c := &cobra.Command{
		Use:   "metrics [SPEC | -p NAME] [--listen ADDRESS:PORT]",
		Short: "Print the projects' traffic and process counters in the Prometheus text format, or serve them",
		Long: `Metrics reads what the kernel counted and prints it in the Prometheus text
exposition format: each published port's connections (the counter on its
DNAT rule), each namespace's bytes, packets and drops each way (its link's
host side), and each process's state, restarts, OOM kills and health.
Without a project it prints every project's.

With --listen it serves them over HTTP at /metrics instead, reading the
kernel at each scrape, until SIGINT or SIGTERM; bind it to a loopback or
management address: the metrics name every tenant's projects and ports.
Needs root.`,
		Example: `  sudo nsrun metrics
  sudo nsrun metrics -p blog
  sudo nsrun metrics --listen 127.0.0.1:9469`,
		Args:              usageArgs(cobra.MaximumNArgs(1)),
		ValidArgsFunction: completeSpecFiles,
		RunE: func(c *cobra.Command, args []string) error {
			return runMetrics(c, args, flags)
		},
	}
	projectFlag(c, &flags.project, "the project whose counters to show, by name")
	c.Flags().StringVar(&flags.listen, "listen", "", "serve /metrics over HTTP at this address and port, e.g. 127.0.0.1:9469")
	return c
}

func runMetrics(c *cobra.Command, args []string, flags metricsFlags) error {
	if err := requireRootToRead("metrics"); err != nil {
		return err
	}
	st := store()
	only, err := namedProject(st, flags.project, args)
	if err != nil {
		return err
	}
	read := metricsReader(st, only)
	// Not the pedantic registry: it checks each of the thousands of series
	// against its description at every scrape (a sixth of a scrape's time
	// with 1,000 ports); the tests run those checks (traffic's
	// TestCollector), and promtool's, once.
	reg := prometheus.NewRegistry()
	errOut := c.ErrOrStderr()
	reg.MustRegister(&traffic.Collector{Read: read, Errorf: func(format string, a ...any) {
		fmt.Fprintf(errOut, "nsrun metrics: "+format+"\n", a...)
	}})
	if flags.listen == "" {
		families, err := reg.Gather()
		if err != nil {
			return err
		}
		enc := expfmt.NewEncoder(c.OutOrStdout(), expfmt.NewFormat(expfmt.TypeTextPlain))
		for _, f := range families {
			if err := enc.Encode(f); err != nil {
				return err
			}
		}
		for _, f := range families {
			if f.GetName() == "nsrun_scrape_error" && f.GetMetric()[0].GetGauge().GetValue() != 0 {
				return errors.New("some counters could not be read (see above); nothing was changed")
			}
		}
		return nil
	}
	return serveMetrics(c.Context(), flags.listen, reg, errOut)
}

// metricsReader reads the counters of every project, or of one; the
// records are decoded again only when they change (a scrape of 1,000
// namespaces saves 5 ms).
func metricsReader(st state.Store, only string) func(ctx context.Context) (*traffic.Sample, error) {
	src := trafficSources(st)
	var cache state.Cache
	return func(ctx context.Context) (*traffic.Sample, error) {
		names := []string{only}
		if only == "" {
			var err error
			if names, err = st.Projects(); err != nil {
				return nil, err
			}
		}
		var records []*state.Record
		for _, name := range names {
			r, err := cache.Load(st, name)
			if errors.Is(err, state.ErrNoRecord) {
				continue // taken down meanwhile
			}
			if err != nil {
				return nil, err
			}
			records = append(records, r)
		}
		return traffic.Read(ctx, records, src)
	}
}

// trafficSources are where nsrun metrics and status read the counters:
// the real firewall backends, the counting table, the loopback shortcut,
// the host's links, and the supervisors' status files.
func trafficSources(st state.Store) traffic.Sources {
	counters := map[forward.Backend]forward.Counter{}
	for _, fw := range firewalls(nil) {
		if c, ok := fw.(forward.Counter); ok {
			counters[fw.Backend()] = c
		}
	}
	return traffic.Sources{
		Counters: counters,
		Traffic:  nftables.NewCounting(nil).Traffic,
		Shortcut: func() (shortcut.Table, error) { return shortcut.Read() },
		Links:    traffic.HostLinks,
		Processes: func(r *state.Record) []traffic.Process {
			sup, _ := supervise.ReadStatus(st.ProjectDir(r.Project))
			_, reports := project.ProcessReports(r, sup)
			out := make([]traffic.Process, 0, len(reports))
			for _, p := range reports {
				ns, name, _ := strings.Cut(p.Name, "/")
				tp := traffic.Process{Project: r.Project, Namespace: ns, Name: name, Up: p.State == supervise.Running, Restarts: p.Restarts, OOMKills: p.OOMKills}
				if p.Health != nil {
					tp.Health = p.Health.State
				}
				out = append(out, tp)
			}
			return out
		},
	}
}

// serveMetrics serves /metrics at address until SIGINT or SIGTERM.
func serveMetrics(ctx context.Context, address string, reg *prometheus.Registry, errOut io.Writer) error {
	l, err := net.Listen("tcp", address)
	if err != nil {
		return fmt.Errorf("--listen %s: %w; pick a free address and port", address, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "nsrun metrics: scrape /metrics")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(errOut, "nsrun metrics: serving http://%s/metrics\n", l.Addr())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}
