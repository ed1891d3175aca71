package export

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/nsrun/nsrun/specs"
	"gopkg.in/yaml.v3"
)

// ComposeOptions are nsrun export compose's flags.
type ComposeOptions struct {
	Images Images
	// Checks are the healthcheck commands the user gives for ready checks
	// ("NS/PROC" -> a shell command run inside the container): Compose
	// has no TCP check of its own, and an image may lack every tool.
	Checks map[string]string
}

// ParseChecks reads --check values: NS/PROC=COMMAND.
func ParseChecks(values []string) (map[string]string, error) {
	out := map[string]string{}
	for _, v := range values {
		key, cmd, ok := strings.Cut(v, "=")
		if !ok || cmd == "" || !strings.Contains(key, "/") {
			return nil, fmt.Errorf("--check %q: write NS/PROC=COMMAND, e.g. ns1/web='curl -fsS http://localhost:8080/'", v)
		}
		out[key] = cmd
	}
	return out, nil
}

// Compose renders the spec as a Compose file: one service per run entry,
// NS-PROC; the first of each namespace owns its ports, and the others
// join its network (network_mode: service:FIRST), as they share the
// namespace.
func Compose(s *specs.Spec, o ComposeOptions) ([]byte, error) {
	var problems []string
	problems = append(problems, o.Images.unknownEntries(s)...)
	for _, key := range slices.Sorted(maps.Keys(o.Checks)) {
		if !hasEntry(s, key) {
			problems = append(problems, fmt.Sprintf("--check %s=...: the spec has no run entry %s; the entries are %s", key, key, strings.Join(entries(s), ", ")))
		}
	}
	for _, ns := range s.Namespaces {
		for _, p := range namespaceProblems(ns, o.Images) {
			if !strings.Contains(p, "published on") { // Compose keeps host_ip
				problems = append(problems, p)
			}
		}
		if len(ns.Networks) == 0 && len(ns.Ports) > 0 && len(ns.Run) > 0 {
			problems = append(problems, fmt.Sprintf("namespace %q: networks: [] with published ports cannot be carried: Compose's service on no network (network_mode: none) publishes nothing; put it on a network, or use nsrun export kubernetes (a NetworkPolicy)", ns.Name))
		}
		if !ns.Egress {
			problems = append(problems, fmt.Sprintf("namespace %q: egress: false cannot be carried: Compose's way to cut a service off, an internal network, cannot publish ports, and its services would lose the others' ports too; remove egress: false, or use nsrun export kubernetes (a NetworkPolicy)", ns.Name))
		}
	}
	if err := refusal("Compose", problems); err != nil {
		return nil, err
	}
	services := mapping()
	byKey := map[string]*yaml.Node{}
	var notes []string
	for _, ns := range s.Namespaces {
		for i, p := range ns.Run {
			svc, note := composeService(ns, i, p, o)
			services.Content = append(services.Content, scalar(serviceName(ns, p)), svc)
			byKey[ns.Name+"/"+p.Name] = svc
			if note != "" {
				notes = append(notes, note)
			}
		}
	}
	addDependsOn(s, byKey)
	var b bytes.Buffer
	b.WriteString(composeHeader(s, notes))
	root := mapping("name", s.Name, "services", services)
	if networks := composeNetworks(s); len(networks.Content) > 0 {
		root.Content = append(root.Content, scalar("networks"), networks)
	}
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return nil, err
	}
	return b.Bytes(), enc.Close()
}

// composeNetworks are the spec's networks as Compose's: the ones it
// declares (an external one is Compose's external network of that name),
// and with IPv6 the default one, each with IPv6 as the namespaces had.
func composeNetworks(s *specs.Spec) *yaml.Node {
	out := mapping()
	declared := false
	for _, nw := range s.Networks {
		declared = declared || nw.Name == specs.DefaultNetwork
		switch {
		case nw.External:
			out.Content = append(out.Content, scalar(nw.Name), mapping("external", true))
		case s.IPv6:
			out.Content = append(out.Content, scalar(nw.Name), mapping("enable_ipv6", true))
		default:
			out.Content = append(out.Content, scalar(nw.Name), mapping())
		}
	}
	if s.IPv6 && !declared {
		out.Content = append(out.Content, scalar(specs.DefaultNetwork), mapping("enable_ipv6", true))
	}
	return out
}

func serviceName(ns *specs.Namespace, p specs.Process) string { return ns.Name + "-" + p.Name }

// composeService is run entry i of a namespace as a service, and a note
// on what of it could not be carried.
func composeService(ns *specs.Namespace, i int, p specs.Process, o ComposeOptions) (*yaml.Node, string) {
	svc := mapping("image", o.Images.image(ns.Name, p.Name), "command", p.Command, "working_dir", p.Workdir, "user", p.User)
	if len(p.Env) > 0 {
		env := mapping()
		for _, kv := range p.Env {
			k, v, _ := strings.Cut(kv, "=")
			env.Content = append(env.Content, scalar(k), quotedValue(v))
		}
		svc.Content = append(svc.Content, scalar("environment"), env)
	}
	switch {
	case i == 0 && len(ns.Networks) == 0:
		svc.Content = append(svc.Content, scalar("network_mode"), node("none"))
	case i == 0:
		if ports := composePorts(ns); len(ports) > 0 {
			svc.Content = append(svc.Content, scalar("ports"), node(ports))
		}
		if !slices.Equal(ns.Networks, []string{specs.DefaultNetwork}) {
			svc.Content = append(svc.Content, scalar("networks"), node(ns.Networks))
		}
	default:
		svc.Content = append(svc.Content, scalar("network_mode"), node("service:"+serviceName(ns, ns.Run[0])))
	}
	svc.Content = append(svc.Content, scalar("restart"), node(string(p.Restart)))
	if r := share(ns, i); !r.IsZero() {
		// pids is said twice, as compose-go wants: pids_limit, which
		// docker compose has read the longest, and the same in deploy.
		limits := mapping()
		if r.CPUs > 0 {
			limits.Content = append(limits.Content, scalar("cpus"), str(specs.FormatCPUs(r.CPUs)))
		}
		if r.Memory > 0 {
			limits.Content = append(limits.Content, scalar("memory"), str(specs.FormatBytes(r.Memory)))
		}
		if r.PIDs > 0 {
			limits.Content = append(limits.Content, scalar("pids"), node(int(r.PIDs)))
		}
		svc.Content = append(svc.Content, scalar("deploy"), mapping("resources", mapping("limits", limits)))
		if r.PIDs > 0 {
			svc.Content = append(svc.Content, scalar("pids_limit"), node(int(r.PIDs)))
		}
	}
	key := ns.Name + "/" + p.Name
	if h := p.Health; h != nil {
		return composeHealth(svc, key, h, o)
	}
	if p.Ready == nil {
		return svc, ""
	}
	check, ok := o.Checks[key]
	if !ok {
		return svc, fmt.Sprintf("%s's ready check (TCP port %d) is not carried: Compose runs a command inside the container to check health, and nsrun cannot know what the image has; give one with --check %s='COMMAND'", key, p.Ready.TCP, key)
	}
	svc.Content = append(svc.Content, scalar("healthcheck"), mapping(
		"test", []string{"CMD-SHELL", check},
		"interval", "2s",
		"start_period", p.Ready.Timeout.String(),
		"start_interval", "1s"))
	return svc, ""
}

// composeHealth gives a service the run entry's health check: a command
// check as it is (CMD, or CMD-SHELL for a shell string), an http or tcp
// check only as the command --check gives (Compose runs a command inside
// the container, and nsrun cannot know what the image has).
func composeHealth(svc *yaml.Node, key string, h *specs.Health, o ComposeOptions) (*yaml.Node, string) {
	var test []string
	switch {
	case o.Checks[key] != "":
		test = []string{"CMD-SHELL", o.Checks[key]}
	case h.Kind() != "command":
		return svc, fmt.Sprintf("%s's %s health check is not carried: Compose runs a command inside the container to check health, and nsrun cannot know what the image has; give one with --check %s='COMMAND'", key, h.Kind(), key)
	case len(h.Command) == 3 && h.Command[0] == "/bin/sh" && h.Command[1] == "-c":
		test = []string{"CMD-SHELL", h.Command[2]}
	default:
		test = append([]string{"CMD"}, h.Command...)
	}
	check := mapping("test", test, "interval", h.Interval.String(), "timeout", h.Timeout.String(), "retries", h.Retries)
	if h.StartPeriod > 0 {
		check.Content = append(check.Content, scalar("start_period"), node(h.StartPeriod.String()))
	}
	svc.Content = append(svc.Content, scalar("healthcheck"), check)
	if h.OnFailure != specs.OnFailureNone {
		return svc, fmt.Sprintf("%s's on_failure: %s is not carried: Docker reports an unhealthy container and does nothing more", key, h.OnFailure)
	}
	return svc, ""
}

// addDependsOn gives each service its run entry's depends_on, with
// condition service_healthy for a service that has a healthcheck and
// service_started otherwise.
func addDependsOn(s *specs.Spec, services map[string]*yaml.Node) {
	for _, ns := range s.Namespaces {
		for _, p := range ns.Run {
			if len(p.DependsOn) == 0 {
				continue
			}
			deps := mapping()
			for _, key := range p.DependsOn {
				nsName, procName, _ := strings.Cut(key, "/")
				dns := s.Namespace(nsName)
				for _, q := range dns.Run {
					if q.Name != procName {
						continue
					}
					condition := "service_started"
					if hasKey(services[key], "healthcheck") {
						condition = "service_healthy"
					}
					deps.Content = append(deps.Content, scalar(serviceName(dns, q)), mapping("condition", condition))
				}
			}
			svc := services[ns.Name+"/"+p.Name]
			svc.Content = append(svc.Content, scalar("depends_on"), deps)
		}
	}
}

func hasKey(m *yaml.Node, key string) bool {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return true
		}
	}
	return false
}

// composePorts are a namespace's ports in Compose's short form: ranges and
// host addresses kept, IPv6 ones in brackets.
func composePorts(ns *specs.Namespace) []string {
	var out []string
	for _, p := range published(ns) {
		s := p.Published.String() + ":" + p.Target.String()
		if !p.Both { // a host address the spec wrote, 0.0.0.0 and :: included
			s = specs.HostIPText(p.HostIP) + ":" + s
		}
		if p.Protocol != specs.TCP {
			s += "/" + string(p.Protocol)
		}
		out = append(out, s)
	}
	return out
}

func composeHeader(s *specs.Spec, notes []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Compose file of nsrun project %s, from %s by `nsrun export compose`.\n", s.Name, baseName(s.File))
	b.WriteString("# One service per run entry, NS-PROC; the first of each namespace owns its\n")
	b.WriteString("# ports, the others share its network (network_mode: service:...), as they\n")
	b.WriteString("# share the namespace. Use: docker compose -f FILE up -d\n")
	b.WriteString("# The spec's networks are Compose's: services reach each other only on a\n")
	b.WriteString("# network they share; an external one must exist (docker network create).\n")
	b.WriteString("# Not carried, on purpose: the namespaces' addresses (automatic ones; Compose's\n")
	b.WriteString("# network gives each service its own), /etc/netns/NS/hosts (services reach\n")
	b.WriteString("# each other by service name), the loopback shortcut and firewall rules.\n")
	if empty := idle(s); len(empty) > 0 {
		fmt.Fprintf(&b, "# Namespaces that run nothing are left out: %s.\n", strings.Join(empty, ", "))
	}
	if limitedSpec(s) {
		b.WriteString("# Resource limits: each service's deploy.resources.limits and pids_limit are its\n")
		b.WriteString("# process's own, else an even share of its namespace's (Compose limits each\n")
		b.WriteString("# service, not the services of a namespace together).\n")
	}
	if shaped, emulated := shapingUse(s); shaped || emulated {
		b.WriteString("# Bandwidth limits and netem are not carried: Compose has no key for them\n")
		b.WriteString("# (Docker has no bandwidth option: moby#26767).\n")
	}
	for _, n := range notes {
		for _, line := range wrap(n + ".") {
			b.WriteString("# " + line + "\n")
		}
	}
	return b.String()
}
