package traffic

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/nsrun/nsrun/forward"
	"github.com/prometheus/client_golang/prometheus"
)

// The metrics, their help and labels.
var (
	portLabels      = []string{"project", "namespace", "host_ip", "port", "protocol"}
	portWayLabels   = append(portLabels[:len(portLabels):len(portLabels)], "direction")
	namespaceLabels = []string{"project", "namespace", "direction"}
	processLabels   = []string{"project", "namespace", "process"}

	publishedConnections = prometheus.NewDesc("nsrun_published_connections_total",
		"Connections a published port has taken: what its DNAT rule counted since it was made.", portLabels, nil)
	publishedBytes = prometheus.NewDesc("nsrun_published_bytes_total",
		"Bytes of a published port's connections that the host forwarded, into (in) and out of (out) the namespace; not those of connections from the host itself.", portWayLabels, nil)
	publishedPackets = prometheus.NewDesc("nsrun_published_packets_total",
		"Packets of a published port's connections that the host forwarded, into (in) and out of (out) the namespace; not those of connections from the host itself.", portWayLabels, nil)
	namespaceBytes = prometheus.NewDesc("nsrun_namespace_bytes_total",
		"Bytes into (in) and out of (out) a namespace, counted by the host side of its link.", namespaceLabels, nil)
	namespacePackets = prometheus.NewDesc("nsrun_namespace_packets_total",
		"Packets into (in) and out of (out) a namespace, counted by the host side of its link.", namespaceLabels, nil)
	namespaceDrops = prometheus.NewDesc("nsrun_namespace_drops_total",
		"Packets dropped on their way into (in) or out of (out) a namespace, by the host side of its link.", namespaceLabels, nil)
	processUp = prometheus.NewDesc("nsrun_process_up",
		"1 while the process runs, 0 otherwise.", processLabels, nil)
	processRestarts = prometheus.NewDesc("nsrun_process_restarts_total",
		"Times the supervisor started the process again, since its project's supervisor started.", processLabels, nil)
	processOOMKills = prometheus.NewDesc("nsrun_process_oom_kills_total",
		"Exits of the process the OOM killer caused.", processLabels, nil)
	processHealthy = prometheus.NewDesc("nsrun_process_healthy",
		"1 while the process's health check finds it healthy, 0 while starting or unhealthy; only for running processes with a check.", processLabels, nil)
	scrapeErrors = prometheus.NewDesc("nsrun_scrape_error",
		"1 when the counters could not be read at this scrape (the error is logged), 0 otherwise.", nil, nil)
)

// Collector is a prometheus.Collector that reads the counters at each
// scrape, with a bound on how long a read may take.
type Collector struct {
	Read    func(ctx context.Context) (*Sample, error)
	Timeout time.Duration // 0: 10 s
	// Errorf is told why a read failed; may be nil.
	Errorf func(format string, args ...any)
}

// Describe sends the descriptions of every metric.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{publishedConnections, publishedBytes, publishedPackets, namespaceBytes, namespacePackets, namespaceDrops,
		processUp, processRestarts, processOOMKills, processHealthy, scrapeErrors} {
		ch <- d
	}
}

// Collect reads the counters and sends them.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	s, err := c.Read(ctx)
	if err != nil {
		if c.Errorf != nil {
			c.Errorf("reading the counters: %v", err)
		}
		ch <- prometheus.MustNewConstMetric(scrapeErrors, prometheus.GaugeValue, 1)
		return
	}
	ch <- prometheus.MustNewConstMetric(scrapeErrors, prometheus.GaugeValue, 0)
	for _, p := range s.Ports {
		labels := []string{p.Project, p.Namespace, p.Port.HostIP.String(), portText(p), string(p.Port.Protocol)}
		if p.Counted {
			ch <- prometheus.MustNewConstMetric(publishedConnections, prometheus.CounterValue, float64(p.Connections), labels...)
		}
		if !p.Measured {
			continue
		}
		for _, w := range []struct {
			dir  string
			flow forward.Flow
		}{{"in", p.In}, {"out", p.Out}} {
			ch <- prometheus.MustNewConstMetric(publishedBytes, prometheus.CounterValue, float64(w.flow.Bytes), append(labels, w.dir)...)
			ch <- prometheus.MustNewConstMetric(publishedPackets, prometheus.CounterValue, float64(w.flow.Packets), append(labels, w.dir)...)
		}
	}
	for _, n := range s.Namespaces {
		if !n.Found {
			continue
		}
		for _, d := range []struct {
			dir string
			c   LinkCounts
		}{{"in", n.In}, {"out", n.Out}} {
			ch <- prometheus.MustNewConstMetric(namespaceBytes, prometheus.CounterValue, float64(d.c.Bytes), n.Project, n.Namespace, d.dir)
			ch <- prometheus.MustNewConstMetric(namespacePackets, prometheus.CounterValue, float64(d.c.Packets), n.Project, n.Namespace, d.dir)
			ch <- prometheus.MustNewConstMetric(namespaceDrops, prometheus.CounterValue, float64(d.c.Drops), n.Project, n.Namespace, d.dir)
		}
	}
	for _, p := range s.Processes {
		up := 0.0
		if p.Up {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(processUp, prometheus.GaugeValue, up, p.Project, p.Namespace, p.Name)
		ch <- prometheus.MustNewConstMetric(processRestarts, prometheus.CounterValue, float64(p.Restarts), p.Project, p.Namespace, p.Name)
		ch <- prometheus.MustNewConstMetric(processOOMKills, prometheus.CounterValue, float64(p.OOMKills), p.Project, p.Namespace, p.Name)
		if p.Health != "" {
			healthy := 0.0
			if p.Health == "healthy" {
				healthy = 1
			}
			ch <- prometheus.MustNewConstMetric(processHealthy, prometheus.GaugeValue, healthy, p.Project, p.Namespace, p.Name)
		}
	}
}

// portText is the published port, or range FIRST-LAST.
func portText(p Port) string {
	r := p.Port.Published
	if r.Len() == 1 {
		return strconv.Itoa(int(r.First))
	}
	return fmt.Sprintf("%d-%d", r.First, r.Last)
}
