package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/netns"
	"github.com/nsrun/nsrun/project"
	"github.com/nsrun/nsrun/supervise"
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
	st := store()
	var names []string
	if flags.project != "" || len(args) > 0 {
		name, _, err := pickProject(st, flags.project, args)
		if err != nil {
			return err
		}
		names = []string{name}
	} else {
		var err error
		if names, err = st.Projects(); err != nil {
			return err
		}
	}
	reports := []projectReport{}
	var drifted []string
	for _, name := range names {
		state, err := loadState(st, name)
		if err != nil {
			return err
		}
		sup, _ := supervise.ReadStatus(st.ProjectDir(name))
		r := report(state, sup, time.Now())
		k := project.Kernel{Firewall: forward.Firewall{Backend: state.Backend}}
		if r.Drift, err = k.Drift(c.Context(), state, sup); err != nil {
			return fmt.Errorf("checking project %s: %w", name, err)
		}
		if len(r.Drift) > 0 {
			drifted = append(drifted, name)
		}
		reports = append(reports, r)
	}
	if flags.output == "json" {
		enc := json.NewEncoder(c.OutOrStdout())
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(statusDoc{Version: statusVersion, Projects: reports}); err != nil {
			return err
		}
	} else if len(names) != 1 || (flags.project == "" && len(args) == 0) {
		printSummary(c.OutOrStdout(), reports)
	} else {
		printProject(c.OutOrStdout(), reports[0])
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
}

type projectReport struct {
	Name       string            `json:"name"`
	Spec       string            `json:"spec,omitempty"`
	Backend    string            `json:"backend"`
	Namespaces []namespaceReport `json:"namespaces"`
	Supervisor *processReport    `json:"supervisor,omitempty"`
	Processes  []processReport   `json:"processes"`
	Drift      []string          `json:"drift"` // each difference from the record; empty when none
}

type namespaceReport struct {
	Name        string       `json:"name"`
	Address     string       `json:"address"`
	HostLink    string       `json:"host_link"`
	HostAddress string       `json:"host_address"`
	Egress      bool         `json:"egress"`
	Ports       []portReport `json:"ports"`
}

type portReport struct {
	HostIP    string `json:"host_ip"`   // 0.0.0.0: every host address
	Published string `json:"published"` // host port or range, e.g. 6000 or 7000-7002
	Protocol  string `json:"protocol"`
	Address   string `json:"address"` // the namespace's address
	Target    string `json:"target"`  // port or range inside
}

func (p portReport) String() string {
	return fmt.Sprintf("%s:%s/%s -> %s:%s", p.HostIP, p.Published, p.Protocol, p.Address, p.Target)
}

type processReport struct {
	Name     string `json:"name"` // NS/PROC, or "supervisor"
	State    string `json:"state"`
	PID      int    `json:"pid,omitempty"`
	Restarts int    `json:"restarts"`
	Uptime   string `json:"uptime,omitempty"`
	ExitCode int    `json:"exit_code"`
}

func report(s *project.State, sup supervise.Status, now time.Time) projectReport {
	r := projectReport{Name: s.Project, Spec: s.SpecFile, Backend: string(s.Backend), Namespaces: []namespaceReport{}, Processes: []processReport{}, Drift: []string{}}
	for _, ns := range s.Namespaces {
		nr := namespaceReport{Name: ns.Name, Address: ns.Address.String(), HostLink: ns.Link, HostAddress: ns.HostAddress.String(), Egress: ns.Egress, Ports: []portReport{}}
		for _, p := range ns.Ports {
			nr.Ports = append(nr.Ports, portReport{HostIP: p.HostIP.String(), Published: p.Published.String(), Protocol: string(p.Protocol),
				Address: ns.Address.Addr().String(), Target: p.Target.String()})
		}
		r.Namespaces = append(r.Namespaces, nr)
	}
	supAlive := sup.PID != 0 && netns.Alive(netns.Process{PID: sup.PID, StartTime: sup.StartTime})
	if sup.PID != 0 {
		state := "running"
		if !supAlive {
			state = "gone"
		}
		r.Supervisor = &processReport{Name: "supervisor", State: state, PID: sup.PID}
	}
	seen := map[string]supervise.ProcessStatus{}
	for _, p := range sup.Processes {
		seen[p.Key()] = p
	}
	for _, ns := range s.Namespaces {
		for _, run := range ns.Run {
			p, ok := seen[run.Key()]
			pr := processReport{Name: run.Key(), State: "not started"}
			if ok {
				pr = processReport{Name: run.Key(), State: p.State, PID: p.PID, Restarts: p.Restarts, ExitCode: p.ExitCode}
				if p.State == supervise.Running && !p.StartedAt.IsZero() {
					pr.Uptime = now.Sub(p.StartedAt).Round(time.Second).String()
				}
				if !supAlive && p.State == supervise.Running {
					pr.State = "unsupervised"
				}
			}
			r.Processes = append(r.Processes, pr)
		}
	}
	return r
}

func printSummary(w io.Writer, reports []projectReport) {
	if len(reports) == 0 {
		fmt.Fprintln(w, "no project is up")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROJECT\tNAMESPACES\tPORTS\tPROCESSES\tSTATE\tSPEC")
	for _, r := range reports {
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
	fmt.Fprintf(w, "project %s (spec %s, iptables-%s)\n\n", r.Name, r.Spec, r.Backend)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tADDRESS\tHOST LINK\tPUBLISHED")
	for _, ns := range r.Namespaces {
		var ports []string
		for _, p := range ns.Ports {
			ports = append(ports, p.String())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s %s\t%s\n", ns.Name, ns.Address, ns.HostLink, strings.Split(ns.HostAddress, "/")[0], strings.Join(ports, ", "))
	}
	tw.Flush()
	defer printDrift(w, r.Drift)
	if len(r.Processes) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROCESS\tSTATE\tPID\tRESTARTS\tUPTIME\tLAST EXIT")
	for _, p := range append(r.Processes, supervisorRow(r)...) {
		pid := "-"
		if p.PID != 0 {
			pid = fmt.Sprint(p.PID)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%d\n", p.Name, p.State, pid, p.Restarts, p.Uptime, p.ExitCode)
	}
	tw.Flush()
}

func supervisorRow(r projectReport) []processReport {
	if r.Supervisor == nil {
		return nil
	}
	return []processReport{*r.Supervisor}
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
