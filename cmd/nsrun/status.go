package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nsrun/nsrun/cgroup"
	"github.com/nsrun/nsrun/forward/shortcut"
	"github.com/nsrun/nsrun/internal/words"
	"github.com/nsrun/nsrun/project"
	"github.com/nsrun/nsrun/specs"
	"github.com/nsrun/nsrun/state"
	"github.com/nsrun/nsrun/supervise"
	"github.com/nsrun/nsrun/traffic"
	"github.com/spf13/cobra"
)

type statusFlags struct {
	project string
	output  string
}

func newStatusCommand() *cobra.Command {
	var flags statusFlags
	c := &cobra.Command{
		Use:     "status [SPEC | -p NAME]",
		Aliases: []string{"ps"},
		Short:   "Show each project's namespaces, published ports and processes, and what drifted",
		Long: `Status shows a project's namespaces with their addresses and host-side
links, its published ports, its processes with PID, state, restarts and
uptime, and its supervisor. Without a project it prints one line per project.
It compares the record with what the kernel has (namespaces, links,
addresses, routes, rules, processes), prints each difference on its own line
and exits 3 when anything drifted (a following up repairs it). -o json prints
one document with a version field. Needs root.`,
		Example: `  sudo nsrun status
  sudo nsrun status -p blog -o json`,
		Args:              usageArgs(cobra.MaximumNArgs(1)),
		ValidArgsFunction: completeSpecFiles,
		RunE: func(c *cobra.Command, args []string) error {
			return runStatus(c, args, flags)
		},
	}
	projectFlag(c, &flags.project, "the project to show, by name")
	c.Flags().StringVarP(&flags.output, "output", "o", "table", "output format: table or json")
	return c
}

func runStatus(c *cobra.Command, args []string, flags statusFlags) error {
	if flags.output != "table" && flags.output != "json" {
		return usageError(fmt.Errorf("-o %q: use table or json", flags.output))
	}
	if err := requireRootToRead("status"); err != nil {
		return err
	}
	e, err := newEngine(c.ErrOrStderr(), true)
	if err != nil {
		return err
	}
	one := flags.project != "" || len(args) > 0
	var reports []*project.Report
	if one {
		name, _, err := pickProject(e.Store, flags.project, args)
		if err != nil {
			return err
		}
		r, err := e.Status(c.Context(), name)
		if errors.Is(err, state.ErrNoRecord) {
			_, err = loadState(e.Store, name) // says how to start it
		}
		if err != nil {
			return err
		}
		reports = []*project.Report{r}
	} else if reports, err = e.StatusAll(c.Context()); err != nil {
		return err
	}
	host, err := hostReport(c, e, reports)
	if err != nil {
		return err
	}
	var keeper *processReport
	if p, ok := e.Keeper.Running(e.Store.Dir); ok {
		keeper = &processReport{Name: "keeper", State: "running", PID: p.PID}
	}
	sample := readTraffic(c, e.Store, reports)
	docs := []projectReport{}
	var drifted, unreadable []string
	for _, r := range reports {
		doc := report(r, time.Now())
		addTraffic(&doc, sample)
		docs = append(docs, doc)
		switch {
		case r.Err != nil:
			unreadable = append(unreadable, r.Project)
		case len(r.Drift) > 0:
			drifted = append(drifted, r.Project)
		}
	}
	if flags.output == "json" {
		enc := json.NewEncoder(c.OutOrStdout())
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(statusDoc{Version: statusVersion, Projects: docs, Keeper: keeper, HostFirewall: host}); err != nil {
			return err
		}
	} else {
		// Buffered: each table writes a line at a time, and a project of
		// 1,000 namespaces has thousands.
		out := bufio.NewWriter(c.OutOrStdout())
		if one {
			printProject(out, docs[0])
		} else {
			printSummary(out, docs)
		}
		printHost(out, host, keeper)
		if err := out.Flush(); err != nil {
			return err
		}
	}
	if len(unreadable) > 0 {
		return fmt.Errorf("the record of %s cannot be read; 'sudo nsrun down --all' removes what is left", projectsPhrase(unreadable))
	}
	if len(drifted) > 0 {
		return &exitError{code: exitDrift, err: fmt.Errorf("%s drifted from what up recorded; 'sudo nsrun up SPEC' repairs it", projectsPhrase(drifted))}
	}
	return nil
}

func projectsPhrase(names []string) string {
	if len(names) == 1 {
		return "project " + names[0]
	}
	return "projects " + strings.Join(names, ", ")
}

// statusVersion is the version of the status -o json document; it changes
// only when the document's shape does.
const statusVersion = 1

// statusDoc is the JSON document of status -o json.
type statusDoc struct {
	Version  int             `json:"version"`
	Projects []projectReport `json:"projects"`
	// Keeper is the process that heals the projects' firewall state.
	Keeper       *processReport     `json:"keeper,omitempty"`
	HostFirewall project.HostReport `json:"host_firewall"`
}

type projectReport struct {
	Name string `json:"name"`
	// Error says why the project's record cannot be read; the other
	// fields are then empty.
	Error string `json:"error,omitempty"`
	Spec  string `json:"spec,omitempty"`
	// Backend holds the project's rules: nftables, iptables-nft or
	// iptables-legacy. ForwardAccepts are the iptables backends that also
	// hold its FORWARD accepts, because their FORWARD drops.
	Backend        string            `json:"backend"`
	ForwardAccepts []string          `json:"forward_accepts,omitempty"`
	Namespaces     []namespaceReport `json:"namespaces"`
	Supervisor     *processReport    `json:"supervisor,omitempty"`
	Processes      []processReport   `json:"processes"`
	Drift          []string          `json:"drift"` // each difference from the record; empty when none
	// Heal: the keeper keeps the project's firewall state (not up --no-heal).
	Heal       bool       `json:"heal"`
	Repairs    int        `json:"repairs"`
	LastRepair *time.Time `json:"last_repair,omitempty"`
	LastFixed  []string   `json:"last_fixed,omitempty"` // what the last repair put back
	LastCause  []string   `json:"last_cause,omitempty"` // what the keeper was told before it
	LastError  string     `json:"last_error,omitempty"` // why the last repair failed
	// Loopback6 says whether the host reaches the TCP ports published on
	// IPv6 at [::1]; absent for a project without.
	Loopback6 string `json:"loopback6,omitempty"`
}

type namespaceReport struct {
	Name        string `json:"name"`
	Address     string `json:"address"`
	HostLink    string `json:"host_link"`
	HostAddress string `json:"host_address"`
	// The IPv6 twins, in a project with IPv6.
	Address6     string `json:"address6,omitempty"`
	HostAddress6 string `json:"host_address6,omitempty"`
	Egress       bool   `json:"egress"`
	// Networks: the namespaces it reaches directly are those on one of them.
	Networks []networkReport `json:"networks"`
	Ports    []portReport    `json:"ports"`
	// Resources: the namespace's limits and what it uses, where it has a
	// cgroup (limits in the spec, now or before).
	Resources *resourcesReport `json:"resources,omitempty"`
	// Traffic is what its link counted; absent where it was not read.
	Traffic *trafficReport `json:"traffic,omitempty"`
	// Shaping is its link's bandwidth limits and netem, where it has any.
	Shaping *shapingReport `json:"shaping,omitempty"`
}

type shapingReport struct {
	Bandwidth specs.Bandwidth `json:"bandwidth"` // bits per second into the namespace (ingress) and out of it (egress); absent: no limit
	Netem     *netemReport    `json:"netem,omitempty"`
	// InPlace: the qdiscs of both ends are the record's (drift says how
	// they are not).
	InPlace bool `json:"in_place"`
}

type netemReport struct {
	Delay  string  `json:"delay,omitempty"`
	Jitter string  `json:"jitter,omitempty"`
	Loss   float64 `json:"loss_percent,omitempty"`
	text   string  // as the spec writes it, for the table
}

type resourcesReport struct {
	Limits specs.Resources `json:"limits"` // memory in bytes, cpus in cores, pids; absent: no limit
	// Usage is read from the cgroup's counters; absent when it cannot be.
	Usage *cgroup.Usage `json:"usage,omitempty"`
	// Processes are the limits of its processes that have their own.
	Processes map[string]specs.Resources `json:"processes,omitempty"`
}

type networkReport struct {
	Name     string `json:"name"`
	External bool   `json:"external"` // shared with the other projects that declare it
}

// networksOf reports a recorded namespace's networks.
func networksOf(st *state.Record, ns *state.Namespace) []networkReport {
	out := []networkReport{}
	for _, key := range st.NetworksOf(ns) {
		nw := specs.NetworkOfKey(key)
		out = append(out, networkReport{Name: nw.Name, External: nw.External})
	}
	return out
}

func (n networkReport) String() string {
	if n.External {
		return n.Name + " (external)"
	}
	return n.Name
}

type portReport struct {
	HostIP    string `json:"host_ip"`   // 0.0.0.0: every IPv4 host address, "::" every IPv6 one
	Published string `json:"published"` // host port or range, e.g. 6000 or 7000-7002
	Protocol  string `json:"protocol"`
	Address   string `json:"address"` // the namespace's address
	Target    string `json:"target"`  // port or range inside
	// Connections it took since its rule was made (see nsrun metrics);
	// absent where no counter was read.
	Connections *uint64 `json:"connections,omitempty"`
	// Traffic is what its connections that the host forwarded carried
	// each way (In into the namespace); absent where not read.
	Traffic *portTraffic `json:"traffic,omitempty"`
	full    string       // the port in the full short form, to match the counters
}

// portTraffic is what a published port's counters counted each way.
type portTraffic struct {
	In  flowReport `json:"in"`
	Out flowReport `json:"out"`
}

type flowReport struct {
	Bytes   uint64 `json:"bytes"`
	Packets uint64 `json:"packets"`
}

// trafficReport is what a namespace's link counted each way: In is into
// the namespace.
type trafficReport struct {
	In  traffic.LinkCounts `json:"in"`
	Out traffic.LinkCounts `json:"out"`
}

func (p portReport) String() string {
	host, to := p.HostIP, p.Address
	if strings.Contains(host, ":") {
		host, to = "["+host+"]", "["+to+"]"
	}
	return fmt.Sprintf("%s:%s/%s -> %s:%s", host, p.Published, p.Protocol, to, p.Target)
}

type processReport struct {
	Name     string `json:"name"` // NS/PROC, or "supervisor"
	State    string `json:"state"`
	PID      int    `json:"pid,omitempty"`
	Restarts int    `json:"restarts"`
	Uptime   string `json:"uptime,omitempty"`
	ExitCode int    `json:"exit_code"`
	// ExitCause says why it last exited where the status cannot:
	// "killed: out of memory (limit 256M)"; OOMKills counts such exits.
	ExitCause string `json:"exit_cause,omitempty"`
	OOMKills  int    `json:"oom_kills,omitempty"`
	// Health is what its health check found while it runs.
	Health *healthReport `json:"health,omitempty"`
	// Waiting says what it waits for before its first start
	// (depends_on); Failing, its dependencies that no longer run or are
	// unhealthy.
	Waiting string   `json:"waiting,omitempty"`
	Failing []string `json:"failing_dependencies,omitempty"`
}

// healthReport is a process's health as status shows it.
type healthReport struct {
	State     string     `json:"state"`    // starting, healthy or unhealthy
	Failures  int        `json:"failures"` // consecutive failed checks
	Retries   int        `json:"retries"`  // failures that make it unhealthy
	Since     time.Time  `json:"since"`
	LastCheck *time.Time `json:"last_check,omitempty"`
	Output    string     `json:"output,omitempty"` // the last check's, cut to a few hundred bytes
}

// healthColumn is the HEALTH column: "-" without a check, "healthy",
// "starting", or "unhealthy 3/3 since 14:02:11".
func (p processReport) healthColumn() string {
	h := p.Health
	switch {
	case h == nil:
		return "-"
	case h.State == supervise.HealthUnhealthy:
		return fmt.Sprintf("unhealthy %d/%d since %s", h.Failures, h.Retries, h.Since.Local().Format(time.TimeOnly))
	case h.State == supervise.HealthStarting && h.Failures > 0:
		return fmt.Sprintf("starting (%d/%d failed)", h.Failures, h.Retries)
	}
	return h.State
}

// lastExit is the LAST EXIT column: the status, and why where known.
func (p processReport) lastExit() string {
	out := fmt.Sprint(p.ExitCode)
	if p.ExitCause != "" {
		out += ", " + p.ExitCause
	}
	if p.OOMKills > 0 {
		out += fmt.Sprintf(" (%s so far)", words.Plural(p.OOMKills, "OOM kill"))
	}
	return out
}

// report renders what project reports for people and for JSON.
func report(r *project.Report, now time.Time) projectReport {
	out := projectReport{Name: r.Project, Namespaces: []namespaceReport{}, Processes: []processReport{}, Drift: []string{}}
	if r.Err != nil {
		out.Error = r.Err.Error()
		return out
	}
	s := r.State
	out.Spec, out.Backend = s.SpecFile, string(s.Backend)
	for _, b := range s.Accepts {
		out.ForwardAccepts = append(out.ForwardAccepts, string(b))
	}
	for _, ns := range s.Namespaces {
		nr := namespaceReport{Name: ns.Name, Address: ns.Address.String(), HostLink: ns.Link, HostAddress: ns.HostAddress.String(), Egress: ns.Egress, Ports: []portReport{}}
		if ns.Address6.IsValid() {
			nr.Address6, nr.HostAddress6 = ns.Address6.String(), ns.HostAddress6.String()
		}
		nr.Networks = networksOf(s, ns)
		if ns.Cgroup {
			nr.Resources = &resourcesReport{Limits: ns.Resources}
			if u, ok := r.Usage[ns.Name]; ok {
				nr.Resources.Usage = &u
			}
			for _, p := range ns.Run {
				if !p.Resources.IsZero() {
					if nr.Resources.Processes == nil {
						nr.Resources.Processes = map[string]specs.Resources{}
					}
					nr.Resources.Processes[p.Name] = p.Resources
				}
			}
		}
		if !ns.Bandwidth.IsZero() || ns.Netem != nil {
			nr.Shaping = &shapingReport{Bandwidth: ns.Bandwidth, InPlace: !slices.ContainsFunc(r.Drift, func(d project.Drift) bool {
				return d.Namespace == ns.Name && slices.Contains([]project.DriftKind{project.DriftShaping, project.DriftLink, project.DriftNamespace}, d.Kind)
			})}
			if n := ns.Netem; n != nil {
				nr.Shaping.Netem = &netemReport{Loss: n.Loss, text: n.String()}
				if n.Delay > 0 {
					nr.Shaping.Netem.Delay = n.Delay.String()
				}
				if n.Jitter > 0 {
					nr.Shaping.Netem.Jitter = n.Jitter.String()
				}
			}
		}
		for _, p := range ns.Ports {
			to := ns.Address.Addr()
			if p.Is6() {
				to = ns.Address6.Addr()
			}
			nr.Ports = append(nr.Ports, portReport{HostIP: p.HostIP.String(), Published: p.Published.String(), Protocol: string(p.Protocol),
				Address: to.String(), Target: p.Target.String(), full: p.Full()})
		}
		out.Namespaces = append(out.Namespaces, nr)
	}
	if r.Supervisor != nil {
		sup := processRow(*r.Supervisor, now)
		out.Supervisor = &sup
	}
	for _, p := range r.Processes {
		out.Processes = append(out.Processes, processRow(p, now))
	}
	for _, d := range r.Drift {
		out.Drift = append(out.Drift, d.Message)
	}
	out.Heal, out.Repairs, out.Loopback6 = !s.NoHeal, r.Heal.Repairs, r.Loopback6
	if !r.Heal.LastRepair.IsZero() {
		at := r.Heal.LastRepair
		out.LastRepair, out.LastFixed, out.LastCause, out.LastError = &at, r.Heal.LastFixed, r.Heal.LastCause, r.Heal.LastError
	}
	return out
}

func processRow(p project.ProcessReport, now time.Time) processReport {
	row := processReport{Name: p.Name, State: p.State, PID: p.PID, Restarts: p.Restarts, ExitCode: p.ExitCode, ExitCause: p.ExitCause, OOMKills: p.OOMKills,
		Waiting: p.Waiting, Failing: p.Failing}
	if h := p.Health; h != nil {
		row.Health = &healthReport{State: h.State, Failures: h.Failures, Retries: h.Retries, Since: h.Since, Output: h.Output}
		if !h.LastCheck.IsZero() {
			last := h.LastCheck
			row.Health.LastCheck = &last
		}
	}
	if !p.StartedAt.IsZero() {
		row.Uptime = now.Sub(p.StartedAt).Round(time.Second).String()
	}
	return row
}

func printSummary(w io.Writer, reports []projectReport) {
	if len(reports) == 0 {
		fmt.Fprintln(w, "no project is up")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROJECT\tNAMESPACES\tPORTS\tPROCESSES\tSTATE\tSPEC")
	for _, r := range reports {
		if r.Error != "" {
			fmt.Fprintf(tw, "%s\t-\t-\t-\tunreadable record\t%s\n", r.Name, r.Error)
			continue
		}
		ports, running := 0, 0
		for _, ns := range r.Namespaces {
			ports += len(ns.Ports)
		}
		for _, p := range r.Processes {
			if p.State == supervise.Running {
				running++
			}
		}
		state := "as recorded"
		if len(r.Drift) > 0 {
			state = fmt.Sprintf("drifted (%d)", len(r.Drift))
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d/%d running\t%s\t%s\n", r.Name, len(r.Namespaces), ports, running, len(r.Processes), state, r.Spec)
	}
	tw.Flush()
}

func printProject(w io.Writer, r projectReport) {
	if r.Error != "" {
		fmt.Fprintf(w, "project %s: %s\n", r.Name, r.Error)
		return
	}
	accepts := ""
	for _, b := range r.ForwardAccepts {
		accepts += ", FORWARD accepts in " + b
	}
	fmt.Fprintf(w, "project %s (spec %s, %s%s)\n\n", r.Name, r.Spec, r.Backend, accepts)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tADDRESS\tHOST LINK\tNETWORKS\tPUBLISHED")
	for _, ns := range r.Namespaces {
		var ports, networks []string
		for _, p := range ns.Ports {
			ports = append(ports, p.String())
		}
		for _, n := range ns.Networks {
			networks = append(networks, n.String())
		}
		if len(networks) == 0 {
			networks = []string{"(none)"}
		}
		addr, host := ns.Address, strings.Split(ns.HostAddress, "/")[0]
		if ns.Address6 != "" {
			addr, host = addr+" "+ns.Address6, host+" "+strings.Split(ns.HostAddress6, "/")[0]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s %s\t%s\t%s\n", ns.Name, addr, ns.HostLink, host, strings.Join(networks, ", "), strings.Join(ports, ", "))
	}
	tw.Flush()
	if r.Loopback6 != "" {
		fmt.Fprintf(w, "\n[::1] (ports published on IPv6, from this host): %s\n", r.Loopback6)
	}
	printResources(w, r)
	printShaping(w, r)
	printTraffic(w, r)
	printProcesses(w, r)
	printDrift(w, r.Drift)
	printHealing(w, r)
}

// printProcesses prints the table of a project's processes, if it has any.
func printProcesses(w io.Writer, r projectReport) {
	if len(r.Processes) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROCESS\tSTATE\tHEALTH\tPID\tRESTARTS\tUPTIME\tLAST EXIT")
	for _, p := range append(r.Processes, supervisorRow(r)...) {
		pid := "-"
		if p.PID != 0 {
			pid = fmt.Sprint(p.PID)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", p.Name, p.State, p.healthColumn(), pid, p.Restarts, p.Uptime, p.lastExit())
	}
	tw.Flush()
	for _, p := range r.Processes {
		switch {
		case p.Waiting != "":
			fmt.Fprintf(w, "%s is %s\n", p.Name, p.Waiting)
		case len(p.Failing) > 0:
			fmt.Fprintf(w, "%s depends on what is failing: %s\n", p.Name, strings.Join(p.Failing, ", "))
		}
		if h := p.Health; h != nil && h.State == supervise.HealthUnhealthy {
			fmt.Fprintf(w, "%s: its last health check said %s\n", p.Name, strconv.Quote(h.Output))
		}
	}
}

// printResources prints the limits and usage of the namespaces that have
// a cgroup, and the limits of their processes that have their own.
func printResources(w io.Writer, r projectReport) {
	if !slices.ContainsFunc(r.Namespaces, func(ns namespaceReport) bool { return ns.Resources != nil }) {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LIMITS OF\tLIMITS\tMEMORY USED\tCPU TIME\tPIDS")
	for _, ns := range r.Namespaces {
		res := ns.Resources
		if res == nil {
			continue
		}
		memory, cpu, pids := "-", "-", "-"
		if u := res.Usage; u != nil {
			memory, cpu, pids = specs.FormatSize(int64(u.Memory)), fmt.Sprintf("%.2fs", u.CPUSeconds), fmt.Sprint(u.PIDs)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", ns.Name, res.Limits, memory, cpu, pids)
		for _, name := range slices.Sorted(maps.Keys(res.Processes)) {
			fmt.Fprintf(tw, "%s/%s\t%s\t\t\t\n", ns.Name, name, res.Processes[name])
		}
	}
	tw.Flush()
}

// printShaping prints the bandwidth limits and netem of the namespaces
// that have them, and whether their qdiscs are in place.
func printShaping(w io.Writer, r projectReport) {
	if !slices.ContainsFunc(r.Namespaces, func(ns namespaceReport) bool { return ns.Shaping != nil }) {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SHAPING OF\tINTO IT\tOUT OF IT\tNETEM (OUT OF IT)\tIN PLACE")
	for _, ns := range r.Namespaces {
		sh := ns.Shaping
		if sh == nil {
			continue
		}
		in, out, netem := "-", "-", "-"
		if sh.Bandwidth.Ingress > 0 {
			in = specs.FormatRate(sh.Bandwidth.Ingress)
		}
		if sh.Bandwidth.Egress > 0 {
			out = specs.FormatRate(sh.Bandwidth.Egress)
		}
		if sh.Netem != nil {
			netem = sh.Netem.text
		}
		inPlace := "yes"
		if !sh.InPlace {
			inPlace = "no (see drift)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", ns.Name, in, out, netem, inPlace)
	}
	tw.Flush()
}

func supervisorRow(r projectReport) []processReport {
	if r.Supervisor == nil {
		return nil
	}
	return []processReport{*r.Supervisor}
}

// hostReport is the host's firewalls as the reports judged them, or, with
// no project, as they are.
func hostReport(c *cobra.Command, e *project.Engine, reports []*project.Report) (project.HostReport, error) {
	for _, r := range reports {
		if r.Err == nil {
			return r.Host, nil
		}
	}
	return e.HostFirewall(c.Context())
}

// printHealing tells what the keeper did for a project.
func printHealing(w io.Writer, r projectReport) {
	switch {
	case !r.Heal:
		fmt.Fprintln(w, "\nhealing: off (up --no-heal)")
	case r.LastRepair == nil:
		fmt.Fprintln(w, "\nhealing: on, no repair so far")
	default:
		fmt.Fprintf(w, "\nhealing: on, %s, the last at %s: %s\n", words.Plural(r.Repairs, "repair"), r.LastRepair.Format(time.RFC3339), strings.Join(r.LastFixed, "; "))
		if len(r.LastCause) > 0 {
			fmt.Fprintf(w, "  after: %s\n", strings.Join(r.LastCause, ", "))
		}
		if r.LastError != "" {
			fmt.Fprintf(w, "  it failed: %s\n", r.LastError)
		}
	}
}

// printHost prints the HOST FIREWALL section.
func printHost(w io.Writer, h project.HostReport, keeper *processReport) {
	verdict := "nsrun's traffic passes"
	if !h.Passes {
		verdict = "nsrun's traffic does NOT pass everywhere"
	}
	fmt.Fprintf(w, "\nHOST FIREWALL (%s)\n", verdict)
	if len(h.Findings) == 0 {
		fmt.Fprintln(w, "  nothing beside nsrun's own rules: no firewalld, ufw, Docker, dropping FORWARD policy or dropping nftables table")
	}
	for _, f := range h.Findings {
		mark := "ok"
		if !f.Passes {
			mark = "BLOCKS"
		}
		fmt.Fprintf(w, "  %-6s %s: %s\n         %s\n", mark, f.Firewall, f.Found, f.Action)
		if f.Fix != "" {
			fmt.Fprintf(w, "         to let nsrun's links through: %s\n", f.Fix)
		}
	}
	if keeper != nil {
		fmt.Fprintf(w, "  keeper: running (pid %d), heals within seconds\n", keeper.PID)
	}
}

func printDrift(w io.Writer, drift []string) {
	if len(drift) == 0 {
		return
	}
	fmt.Fprintf(w, "\nDRIFT (%d)\n", len(drift))
	for _, d := range drift {
		fmt.Fprintln(w, "  "+d)
	}
}

// readTraffic reads the counters of the reported projects, as nsrun
// metrics does, but for the links' counters and the loopback shortcut's,
// which the reports' read of the host holds already; nil, said on
// stderr, when they cannot be read (status shows the rest all the same).
func readTraffic(c *cobra.Command, st state.Store, reports []*project.Report) *traffic.Sample {
	var records []*state.Record
	links := map[string]traffic.LinkStats{}
	var shortcuts shortcut.Table
	for _, r := range reports {
		if r.State != nil {
			records = append(records, r.State)
			maps.Copy(links, r.LinkStats)
			shortcuts = r.Shortcuts
		}
	}
	src := trafficSources(st)
	src.Links = func() (map[string]traffic.LinkStats, error) { return links, nil }
	src.Shortcut = func() (shortcut.Table, error) { return shortcuts, nil }
	s, err := traffic.Read(c.Context(), records, src)
	if err != nil {
		fmt.Fprintf(c.ErrOrStderr(), "nsrun: warning: the traffic counters were not read: %v\n", err)
		return nil
	}
	return s
}

// addTraffic puts the counters of a project's ports and namespaces in
// its report.
func addTraffic(r *projectReport, s *traffic.Sample) {
	if s == nil {
		return
	}
	ports := map[string]traffic.Port{}
	for _, p := range s.Ports {
		if p.Project == r.Name {
			ports[p.Namespace+" "+p.Port.Full()] = p
		}
	}
	links := map[string]traffic.Namespace{}
	for _, n := range s.Namespaces {
		if n.Project == r.Name && n.Found {
			links[n.Namespace] = n
		}
	}
	for i := range r.Namespaces {
		ns := &r.Namespaces[i]
		if n, ok := links[ns.Name]; ok {
			ns.Traffic = &trafficReport{In: n.In, Out: n.Out}
		}
		for j := range ns.Ports {
			p, ok := ports[ns.Name+" "+ns.Ports[j].full]
			if ok && p.Counted {
				ns.Ports[j].Connections = &p.Connections
			}
			if ok && p.Measured {
				ns.Ports[j].Traffic = &portTraffic{In: flowReport{p.In.Bytes, p.In.Packets}, Out: flowReport{p.Out.Bytes, p.Out.Packets}}
			}
		}
	}
}

// printTraffic prints what each namespace's link and each published port
// counted, where they were read.
func printTraffic(w io.Writer, r projectReport) {
	var links, ports []string
	for _, ns := range r.Namespaces {
		if t := ns.Traffic; t != nil {
			links = append(links, fmt.Sprintf("%s\t%s\t%s\t%d, %d", ns.Name, trafficText(t.In), trafficText(t.Out), t.In.Drops, t.Out.Drops))
		}
		for _, p := range ns.Ports {
			if p.Connections == nil {
				continue
			}
			in, out := "-", "-"
			if t := p.Traffic; t != nil {
				in, out = flowText(t.In), flowText(t.Out)
			}
			ports = append(ports, fmt.Sprintf("%s\t%d\t%s\t%s", p, *p.Connections, in, out))
		}
	}
	printRows(w, "NAMESPACE\tIN\tOUT\tDROPS (IN, OUT)", links)
	printRows(w, "PUBLISHED\tCONNECTIONS\tIN (FORWARDED)\tOUT (FORWARDED)", ports)
}

// printRows prints a table after a blank line, if it has rows.
func printRows(w io.Writer, header string, rows []string) {
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, row := range rows {
		fmt.Fprintln(tw, row)
	}
	tw.Flush()
}

// trafficText is one direction of a link's counters: "1.2M, 340 packets"
// (bytes as the resources table writes them).
func trafficText(c traffic.LinkCounts) string {
	return flowText(flowReport{c.Bytes, c.Packets})
}

func flowText(f flowReport) string {
	return fmt.Sprintf("%s, %s", specs.FormatSize(int64(f.Bytes)), words.Plural(int(f.Packets), "packet"))
}
