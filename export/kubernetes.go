package export

import (
	"bytes"
	"fmt"
	"math"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nsrun/nsrun/specs"
	"gopkg.in/yaml.v3"
)

// Publish says how published ports are carried to Kubernetes.
const (
	PublishService  = "service"  // a ClusterIP Service: published port -> target port
	PublishHostPort = "hostport" // hostPort on the container: the literal meaning
)

// Kind is the workload each nsrun namespace becomes.
const (
	KindDeployment = "deployment"
	KindPod        = "pod"
)

// KubeOptions are nsrun export kubernetes's flags.
type KubeOptions struct {
	Images    Images
	Publish   string // PublishService (default) or PublishHostPort
	Kind      string // KindDeployment (default) or KindPod
	Namespace string // the Kubernetes namespace of every object; "" for none
}

// The labels every object carries, and its pods are selected by.
const (
	labelProject   = "app.kubernetes.io/part-of"
	labelNamespace = "app.kubernetes.io/name"
	labelManagedBy = "app.kubernetes.io/managed-by"
)

// startupPeriod is the startup probe's period: period x failureThreshold
// covers the spec's ready timeout.
const startupPeriod = time.Second

// Kubernetes renders the spec as Kubernetes objects, one YAML document
// each, in the spec's order: per nsrun namespace its Deployment (or Pod),
// its headless Service, the Service of its published ports, and for
// egress: false its NetworkPolicy.
func Kubernetes(s *specs.Spec, o KubeOptions) ([]byte, error) {
	if o.Publish == "" {
		o.Publish = PublishService
	}
	if o.Kind == "" {
		o.Kind = KindDeployment
	}
	problems := kubeProblems(s, o)
	if err := refusal("Kubernetes", problems); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(kubeHeader(s, o))
	for _, ns := range s.Namespaces {
		if len(ns.Run) == 0 {
			continue // listed in the header
		}
		for _, obj := range kubeObjects(s, ns, o) {
			if err := document(&b, "", obj); err != nil {
				return nil, err
			}
		}
	}
	return b.Bytes(), nil
}

// kubeProblems is every reason the spec cannot be carried, each with what
// to do.
func kubeProblems(s *specs.Spec, o KubeOptions) []string {
	var out []string
	switch {
	case o.Publish != PublishService && o.Publish != PublishHostPort:
		out = append(out, fmt.Sprintf("--publish %q: use service or hostport", o.Publish))
	case o.Kind != KindDeployment && o.Kind != KindPod:
		out = append(out, fmt.Sprintf("--kind %q: use deployment or pod", o.Kind))
	}
	if o.Namespace != "" {
		if p := checkLabel(o.Namespace, "--namespace", false); p != "" {
			out = append(out, strings.Replace(p, "; rename it in the spec", "", 1))
		}
	}
	out = append(out, o.Images.unknownEntries(s)...)
	for _, ns := range s.Namespaces {
		out = append(out, namespaceProblems(ns, o.Images)...)
		for _, suffix := range []string{"-published", "-egress"} {
			if len(ns.Run) > 0 && len(ns.Name)+len(suffix) > 63 && (suffix == "-egress" && !ns.Egress || suffix == "-published" && o.Publish == PublishService && len(ns.Ports) > 0) {
				out = append(out, fmt.Sprintf("namespace %q: its object %s%s would be longer than 63 characters; shorten the name", ns.Name, ns.Name, suffix))
			}
		}
	}
	return out
}

// namespaceProblems are what an nsrun namespace has that neither
// Kubernetes nor Compose can carry.
func namespaceProblems(ns *specs.Namespace, images Images) []string {
	var out []string
	where := fmt.Sprintf("namespace %q", ns.Name)
	if p := checkLabel(ns.Name, where+": the name", true); p != "" {
		out = append(out, p)
	}
	if !ns.AutoAddress || (ns.Address6.IsValid() && !ns.AutoAddress6) {
		out = append(out, where+": a fixed address cannot be carried (the cluster, or Compose's network, gives each its own); remove address:/address6: from the spec, and reach it by its name")
	}
	if len(ns.Run) == 0 && len(ns.Ports) > 0 {
		out = append(out, where+": it publishes ports but runs nothing; add the run entry that serves them")
	}
	for _, p := range ns.Ports {
		if !everyAddress(p) {
			out = append(out, fmt.Sprintf("%s: port %s is published on %s only; only every address (0.0.0.0 or ::) can be carried: a cluster has no host address to bind; remove host_ip", where, p, specs.HostIPText(p.HostIP)))
		}
	}
	for _, proc := range ns.Run {
		what := fmt.Sprintf("%s, run entry %q", where, proc.Name)
		if p := checkLabel(proc.Name, what+": the name", false); p != "" {
			out = append(out, p)
		}
		if images.image(ns.Name, proc.Name) == "" {
			out = append(out, fmt.Sprintf("%s: no image; give one with --image IMAGE, or --image %s/%s=IMAGE", what, ns.Name, proc.Name))
		}
		if proc.Workdir != "" && !filepath.IsAbs(proc.Workdir) {
			out = append(out, fmt.Sprintf("%s: workdir %q is relative to the spec's directory on this host; give the directory inside the image as an absolute path", what, proc.Workdir))
		}
		if proc.User != "" {
			if _, _, ok := numericUser(proc.User); !ok {
				out = append(out, fmt.Sprintf("%s: user %q is a name, and user names belong to the image; give the numeric uid[:gid]", what, proc.User))
			}
		}
	}
	return out
}

// kubeHeader says what the output is, how to use it, and what is dropped
// on purpose.
func kubeHeader(s *specs.Spec, o KubeOptions) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Kubernetes objects of nsrun project %s, from %s by `nsrun export kubernetes`.\n", s.Name, baseName(s.File))
	b.WriteString("# Each nsrun namespace is a pod: its run entries are the pod's containers and\n")
	b.WriteString("# share its network, as they share the namespace.\n")
	b.WriteString("# Use: kubectl apply -f FILE, then kubectl rollout status for each Deployment;\n")
	b.WriteString("# nothing here runs the pods, a cluster does.\n")
	b.WriteString("# Networks: each pod carries a label per network it is on, and a NetworkPolicy\n")
	b.WriteString("# lets in only the pods on one of them, and anyone to its published ports, as\n")
	b.WriteString("# nsrun does (the cluster's network plugin must enforce NetworkPolicies).\n")
	b.WriteString("# Not carried, on purpose:\n")
	b.WriteString("#   - the namespaces' addresses (automatic ones; the cluster gives each pod its own),\n")
	b.WriteString("#   - /etc/netns/NS/hosts and resolv.conf (the headless Service of each namespace\n")
	b.WriteString("#     gives its name in the cluster's DNS instead),\n")
	if s.IPv6 {
		b.WriteString("#   - ipv6: true (the Services ask for both families where the cluster has them),\n")
	}
	if empty := idle(s); len(empty) > 0 {
		fmt.Fprintf(&b, "#   - namespaces that run nothing: %s,\n", strings.Join(empty, ", "))
	}
	b.WriteString("#   - the host's loopback shortcut and firewall rules (a Service takes their place).\n")
	if limitedSpec(s) {
		b.WriteString("# Resource limits: each container's resources.limits are its process's own, else\n")
		b.WriteString("# an even share of its namespace's (Kubernetes limits each container, not the\n")
		b.WriteString("# pod's together); requests equal limits, so that a pod with memory and cpus\n")
		b.WriteString("# set is Guaranteed. pids is not carried: Kubernetes bounds a pod's processes\n")
		b.WriteString("# by the kubelet's podPidsLimit, a setting of the node.\n")
	}
	if shaped, emulated := shapingUse(s); shaped || emulated {
		b.WriteString("# Bandwidth limits are the pods' kubernetes.io/ingress-bandwidth and\n")
		b.WriteString("# egress-bandwidth annotations, which the CNI bandwidth plugin enforces where\n")
		b.WriteString("# the cluster's network configuration chains it (its bucket is its own, not\n")
		b.WriteString("# nsrun's).")
		if emulated {
			b.WriteString(" netem (delay, jitter, loss) is not carried: Kubernetes has no\n# equivalent.")
		}
		b.WriteString("\n")
	}
	if o.Kind == KindDeployment && hasRestart(s, specs.RestartNo, specs.RestartOnFailure) {
		b.WriteString("# restart: no and on-failure are the containers' own restartPolicy (Never,\n")
		b.WriteString("# OnFailure; Kubernetes 1.34 has it behind the ContainerRestartPolicy feature\n")
		b.WriteString("# gate, later releases by default); a Deployment's pods restart Always. For an\n")
		b.WriteString("# older cluster export with --kind pod.\n")
	}
	if checked, stopped, ordered := healthUse(s); checked || ordered {
		b.WriteString("# Health checks are probes: a readinessProbe for each, and a livenessProbe too\n")
		b.WriteString("# for on_failure: restart (the kubelet restarts the container).")
		if stopped {
			b.WriteString(" on_failure:\n# stop is not carried: the kubelet restarts or reports, never stops one container.")
		}
		b.WriteString("\n")
		if ordered {
			b.WriteString("# depends_on is not carried: a cluster starts pods in any order; the readiness\n")
			b.WriteString("# probe keeps a pod out of its Service until it answers, so dependants must retry.\n")
		}
	}
	if o.Publish == PublishHostPort {
		b.WriteString("# --publish hostport: each published port is a hostPort on the node that runs\n")
		b.WriteString("# the pod; Kubernetes discourages it (it ties a pod to a node and its ports).\n")
	}
	return b.String()
}

func baseName(path string) string {
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		return path[i+1:]
	}
	return path
}

// healthUse reports whether any run entry has a health check, one with
// on_failure: stop, and any depends_on.
func healthUse(s *specs.Spec) (checked, stopped, ordered bool) {
	for _, ns := range s.Namespaces {
		for _, p := range ns.Run {
			if p.Health != nil {
				checked = true
				stopped = stopped || p.Health.OnFailure == specs.OnFailureStop
			}
			ordered = ordered || len(p.DependsOn) > 0
		}
	}
	return checked, stopped, ordered
}

func hasRestart(s *specs.Spec, rs ...specs.Restart) bool {
	for _, ns := range s.Namespaces {
		for _, p := range ns.Run {
			for _, r := range rs {
				if p.Restart == r {
					return true
				}
			}
		}
	}
	return false
}

func labels(project, ns string) *yaml.Node {
	return mapping(labelProject, project, labelNamespace, ns, labelManagedBy, "nsrun")
}

func selector(project, ns string) *yaml.Node {
	return mapping(labelProject, project, labelNamespace, ns)
}

func metadata(name, namespace, project, ns string) *yaml.Node {
	return mapping("name", name, "namespace", namespace, "labels", labels(project, ns))
}

// kubeObjects are one nsrun namespace's objects, in order.
func kubeObjects(s *specs.Spec, ns *specs.Namespace, o KubeOptions) []*yaml.Node {
	pod := podSpec(s, ns, o)
	var out []*yaml.Node
	if o.Kind == KindPod {
		out = append(out, mapping("apiVersion", "v1", "kind", "Pod",
			"metadata", mapping("name", ns.Name, "namespace", o.Namespace, "labels", podLabels(s, ns), "annotations", bandwidthAnnotations(ns)), "spec", pod))
	} else {
		out = append(out, mapping("apiVersion", "apps/v1", "kind", "Deployment",
			"metadata", metadata(ns.Name, o.Namespace, s.Name, ns.Name),
			"spec", mapping("replicas", 1, "selector", mapping("matchLabels", selector(s.Name, ns.Name)),
				"template", mapping("metadata", mapping("labels", podLabels(s, ns), "annotations", bandwidthAnnotations(ns)), "spec", pod))))
	}
	// The namespace's name in the cluster's DNS, as /etc/netns/NS/hosts gives it.
	out = append(out, mapping("apiVersion", "v1", "kind", "Service",
		"metadata", metadata(ns.Name, o.Namespace, s.Name, ns.Name),
		"spec", mapping("clusterIP", "None", "selector", selector(s.Name, ns.Name), "ipFamilyPolicy", dualStack(s))))
	if ports := servicePorts(ns); o.Publish == PublishService && len(ports.Content) > 0 {
		out = append(out, mapping("apiVersion", "v1", "kind", "Service",
			"metadata", metadata(ns.Name+"-published", o.Namespace, s.Name, ns.Name),
			"spec", mapping("type", "ClusterIP", "selector", selector(s.Name, ns.Name), "ipFamilyPolicy", dualStack(s), "ports", ports)))
	}
	out = append(out, ingressPolicy(s, ns, o))
	if !ns.Egress {
		out = append(out, networkPolicy(s, ns, o))
	}
	return out
}

// Network labels: a pod carries one per network it is on, a project's own
// (selected with the project's label) or an external one (shared by every
// project that declares it, in any Kubernetes namespace).
const (
	labelNetwork         = "network.nsrun.io/"
	labelExternalNetwork = "external.network.nsrun.io/"
)

// bandwidthAnnotations are the annotations of a pod whose namespace has
// bandwidth limits, as the CNI bandwidth plugin reads them (through the
// container runtime): bits per second, a Kubernetes quantity; nil for none.
func bandwidthAnnotations(ns *specs.Namespace) *yaml.Node {
	if ns.Bandwidth.IsZero() {
		return nil
	}
	var kv []any
	if r := ns.Bandwidth.Ingress; r > 0 {
		kv = append(kv, "kubernetes.io/ingress-bandwidth", quantity(r))
	}
	if r := ns.Bandwidth.Egress; r > 0 {
		kv = append(kv, "kubernetes.io/egress-bandwidth", quantity(r))
	}
	return mapping(kv...)
}

// quantity writes a count as a Kubernetes quantity with the largest
// decimal suffix that divides it: 20000000 is 20M.
func quantity(n uint64) string {
	for _, u := range []struct {
		suffix string
		size   uint64
	}{{"G", 1e9}, {"M", 1e6}, {"k", 1e3}} {
		if n%u.size == 0 {
			return fmt.Sprint(n/u.size) + u.suffix
		}
	}
	return fmt.Sprint(n)
}

// podLabels are a namespace's pod's labels: the object's, and its networks'.
func podLabels(s *specs.Spec, ns *specs.Namespace) *yaml.Node {
	l := labels(s.Name, ns.Name)
	for _, name := range ns.Networks {
		key := labelNetwork + name
		if s.Network(name).External {
			key = labelExternalNetwork + name
		}
		l.Content = append(l.Content, scalar(key), str("true"))
	}
	return l
}

// peers are the NetworkPolicy peers of the pods on the namespace's
// networks.
func peers(s *specs.Spec, ns *specs.Namespace) []any {
	var out []any
	for _, name := range ns.Networks {
		if s.Network(name).External {
			out = append(out, mapping("namespaceSelector", mapping(), "podSelector", mapping("matchLabels", mapping(labelExternalNetwork+name, str("true")))))
		} else {
			out = append(out, mapping("podSelector", mapping("matchLabels", mapping(labelProject, s.Name, labelNetwork+name, str("true")))))
		}
	}
	return out
}

// ingressPolicy lets into a namespace's pod what nsrun lets into the
// namespace: connections from the pods it shares a network with, and to
// its published ports (their targets) from anywhere.
func ingressPolicy(s *specs.Spec, ns *specs.Namespace, o KubeOptions) *yaml.Node {
	rules := sequence()
	if from := peers(s, ns); len(from) > 0 {
		rules.Content = append(rules.Content, mapping("from", sequence(from...)))
	}
	published := sequence()
	seen := map[string]bool{}
	for _, p := range ns.Ports {
		for i := 0; i < p.Target.Len(); i++ {
			port := int(p.Target.First) + i
			proto := strings.ToUpper(string(p.Protocol))
			if key := fmt.Sprint(proto, port); !seen[key] {
				seen[key] = true
				published.Content = append(published.Content, mapping("protocol", proto, "port", port))
			}
		}
	}
	if len(published.Content) > 0 {
		rules.Content = append(rules.Content, mapping("ports", published))
	}
	return mapping("apiVersion", "networking.k8s.io/v1", "kind", "NetworkPolicy",
		"metadata", metadata(ns.Name+"-ingress", o.Namespace, s.Name, ns.Name),
		"spec", mapping("podSelector", mapping("matchLabels", selector(s.Name, ns.Name)),
			"policyTypes", []string{"Ingress"}, "ingress", rules))
}

// healthProbe is a health check as a probe: http as httpGet (to the pod's
// address: the kubelet probes from outside the pod), tcp as tcpSocket,
// command as exec; interval, timeout, retries and start period as
// periodSeconds, timeoutSeconds, failureThreshold and
// initialDelaySeconds.
func healthProbe(h *specs.Health) *yaml.Node {
	var probe *yaml.Node
	switch h.Kind() {
	case "http":
		u, _ := url.Parse(h.HTTP)
		port, _ := strconv.Atoi(u.Port())
		path := u.RequestURI()
		probe = mapping("httpGet", mapping("path", path, "port", port))
	case "tcp":
		probe = mapping("tcpSocket", mapping("port", int(h.TCP)))
	default:
		probe = mapping("exec", mapping("command", h.Command))
	}
	if h.StartPeriod > 0 {
		probe.Content = append(probe.Content, scalar("initialDelaySeconds"), node(int(h.StartPeriod/time.Second)))
	}
	probe.Content = append(probe.Content,
		scalar("periodSeconds"), node(int(h.Interval/time.Second)),
		scalar("timeoutSeconds"), node(int(h.Timeout/time.Second)),
		scalar("failureThreshold"), node(h.Retries))
	return probe
}

// dualStack asks for both families in a spec with IPv6.
func dualStack(s *specs.Spec) any {
	if s.IPv6 {
		return "PreferDualStack"
	}
	return nil
}

// podSpec is a namespace's pod: one container per run entry.
func podSpec(s *specs.Spec, ns *specs.Namespace, o KubeOptions) *yaml.Node {
	containers := sequence()
	same, podPolicy := samePolicy(ns)
	for i, p := range ns.Run {
		c := mapping("name", p.Name, "image", o.Images.image(ns.Name, p.Name), "command", p.Command, "workingDir", p.Workdir)
		if len(p.Env) > 0 {
			env := sequence()
			for _, kv := range p.Env {
				k, v, _ := strings.Cut(kv, "=")
				env.Content = append(env.Content, mapping("name", k, "value", quotedValue(v)))
			}
			c.Content = append(c.Content, scalar("env"), env)
		}
		if i == 0 && o.Publish == PublishHostPort {
			if ports := hostPorts(ns); len(ports.Content) > 0 {
				c.Content = append(c.Content, scalar("ports"), ports)
			}
		}
		if p.User != "" {
			uid, gid, _ := numericUser(p.User) // checked numeric by kubeProblems
			u, _ := strconv.Atoi(uid)
			sc := mapping("runAsUser", u)
			if gid != "" {
				g, _ := strconv.Atoi(gid)
				sc.Content = append(sc.Content, scalar("runAsGroup"), node(g))
			}
			c.Content = append(c.Content, scalar("securityContext"), sc)
		}
		if r := share(ns, i); r.Memory > 0 || r.CPUs > 0 {
			limits := mapping("cpu", kubeCPU(r.CPUs), "memory", kubeMemory(r.Memory))
			requests := mapping("cpu", kubeCPU(r.CPUs), "memory", kubeMemory(r.Memory))
			c.Content = append(c.Content, scalar("resources"), mapping("limits", limits, "requests", requests))
		}
		if p.Ready != nil {
			probe := func(extra ...any) *yaml.Node {
				return mapping(append([]any{"tcpSocket", mapping("port", int(p.Ready.TCP))}, extra...)...)
			}
			failures := int((p.Ready.Timeout + startupPeriod - 1) / startupPeriod)
			if p.Health == nil {
				c.Content = append(c.Content, scalar("readinessProbe"), probe("periodSeconds", 2))
			}
			c.Content = append(c.Content,
				scalar("startupProbe"), probe("periodSeconds", int(startupPeriod/time.Second), "failureThreshold", failures))
		}
		if h := p.Health; h != nil {
			// The check is the pod's readiness; with on_failure: restart
			// also its liveness (the kubelet restarts the container).
			c.Content = append(c.Content, scalar("readinessProbe"), healthProbe(h))
			if h.OnFailure == specs.OnFailureRestart {
				c.Content = append(c.Content, scalar("livenessProbe"), healthProbe(h))
			}
		}
		if policy := restartPolicy(p.Restart); policy != "Always" && !(o.Kind == KindPod && same) {
			c.Content = append(c.Content, scalar("restartPolicy"), scalar(policy))
		}
		containers.Content = append(containers.Content, c)
	}
	spec := mapping("containers", containers)
	if o.Kind == KindPod {
		policy := "Always"
		if same {
			policy = podPolicy
		}
		spec.Content = append(spec.Content, scalar("restartPolicy"), scalar(policy))
	}
	return spec
}

// kubeCPU is a CPU count as a Kubernetes quantity: 500m, 2; "" for none.
func kubeCPU(c float64) string {
	if c == 0 {
		return ""
	}
	m := int64(math.Round(c * 1000))
	if m%1000 == 0 {
		return strconv.FormatInt(m/1000, 10)
	}
	return strconv.FormatInt(m, 10) + "m"
}

// kubeMemory is a byte count as a Kubernetes quantity, in the largest
// binary unit that divides it: 256Mi; "" for none.
func kubeMemory(b int64) string {
	if b == 0 {
		return ""
	}
	s := specs.FormatBytes(b) // 256M, or plain bytes
	if last := s[len(s)-1]; last >= 'A' && last <= 'Z' {
		return s + "i"
	}
	return s
}

// samePolicy reports whether every run entry of a namespace restarts
// alike, and the pod-level policy that says so.
func samePolicy(ns *specs.Namespace) (bool, string) {
	for _, p := range ns.Run[1:] {
		if p.Restart != ns.Run[0].Restart {
			return false, ""
		}
	}
	return true, restartPolicy(ns.Run[0].Restart)
}

func restartPolicy(r specs.Restart) string {
	switch r {
	case specs.RestartOnFailure:
		return "OnFailure"
	case specs.RestartNo:
		return "Never"
	}
	return "Always"
}

// quotedValue keeps an environment value a string whatever it looks like
// (an empty one too).
func quotedValue(v string) *yaml.Node { return str(v) }

// servicePorts are the published ports as Service ports, a range one port
// each: published -> target.
func servicePorts(ns *specs.Namespace) *yaml.Node {
	out := sequence()
	seen := map[string]bool{} // "0.0.0.0:6000" and "[::]:6000" are one port to a cluster
	for _, p := range published(ns) {
		for i := 0; i < p.Published.Len(); i++ {
			port, target := int(p.Published.First)+i, int(p.Target.First)+i
			if key := fmt.Sprint(p.Protocol, port); seen[key] {
				continue
			} else {
				seen[key] = true
			}
			out.Content = append(out.Content, mapping("name", fmt.Sprintf("%s-%d", p.Protocol, port), "port", port,
				"targetPort", target, "protocol", strings.ToUpper(string(p.Protocol))))
		}
	}
	return out
}

// hostPorts are the published ports as the container's hostPorts.
func hostPorts(ns *specs.Namespace) *yaml.Node {
	out := sequence()
	seen := map[string]bool{}
	for _, p := range published(ns) {
		for i := 0; i < p.Published.Len(); i++ {
			if key := fmt.Sprint(p.Protocol, int(p.Published.First)+i); seen[key] {
				continue
			} else {
				seen[key] = true
			}
			out.Content = append(out.Content, mapping("containerPort", int(p.Target.First)+i, "hostPort", int(p.Published.First)+i,
				"protocol", strings.ToUpper(string(p.Protocol))))
		}
	}
	return out
}

// networkPolicy keeps a namespace with egress: false to the pods it
// shares a network with and the cluster's DNS.
func networkPolicy(s *specs.Spec, ns *specs.Namespace, o KubeOptions) *yaml.Node {
	dns := mapping("to", sequence(mapping(
		"namespaceSelector", mapping("matchLabels", mapping("kubernetes.io/metadata.name", "kube-system")),
		"podSelector", mapping("matchLabels", mapping("k8s-app", "kube-dns")))),
		"ports", sequence(mapping("protocol", "UDP", "port", 53), mapping("protocol", "TCP", "port", 53)))
	egress := sequence(dns)
	if to := peers(s, ns); len(to) > 0 {
		egress = sequence(mapping("to", sequence(to...)), dns)
	}
	return mapping("apiVersion", "networking.k8s.io/v1", "kind", "NetworkPolicy",
		"metadata", metadata(ns.Name+"-egress", o.Namespace, s.Name, ns.Name),
		"spec", mapping("podSelector", mapping("matchLabels", selector(s.Name, ns.Name)),
			"policyTypes", []string{"Egress"}, "egress", egress))
}
