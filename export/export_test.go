package export

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/nsrun/nsrun/specs"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// examples are the bundled examples, each with the flags its exports get.
var examples = []struct {
	name, path string
	images     []string
	checks     []string
}{
	{"blog", "../specs/examples/blog.yaml", []string{"python:3.12-slim"}, []string{"ns1/web=python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", 8080))'"}},
	{"flask", "../specs/examples/flask/flask.yaml", []string{"ns1/app=registry.example/flask-app:1", "ns2/app=registry.example/flask-app:1"}, nil},
	{"dual-stack", "../specs/examples/dual-stack.yaml", []string{"python:3.12-slim"}, nil},
	{"tenants", "../specs/examples/tenants.yaml", []string{"python:3.12-slim"}, nil},
	// Every field of the spec, some of which no cluster can carry: the
	// golden file is the refusal, every problem listed.
	{"full", "../specs/examples/full.yaml", []string{"python:3.12-slim"}, nil},
}

func load(t *testing.T, path string) *specs.Spec {
	t.Helper()
	s, err := specs.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// exported runs both exports of an example: their output, or the refusal.
func exported(t *testing.T, ex struct {
	name, path string
	images     []string
	checks     []string
}) (kube, compose []byte) {
	t.Helper()
	s := load(t, ex.path)
	images, err := ParseImages(ex.images)
	if err != nil {
		t.Fatal(err)
	}
	checks, err := ParseChecks(ex.checks)
	if err != nil {
		t.Fatal(err)
	}
	kube, err = Kubernetes(s, KubeOptions{Images: images})
	if err != nil {
		kube = []byte(err.Error() + "\n")
	}
	compose, err = Compose(s, ComposeOptions{Images: images, Checks: checks})
	if err != nil {
		compose = []byte(err.Error() + "\n")
	}
	return kube, compose
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v; make it with go test ./export -update", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output; if the change is right: go test ./export -update\ngot:\n%s", path, got)
	}
}

// TestGolden: both exports of every example, as committed.
func TestGolden(t *testing.T) {
	for _, ex := range examples {
		kube, compose := exported(t, ex)
		golden(t, ex.name+".k8s.yaml", kube)
		golden(t, ex.name+".compose.yaml", compose)
	}
}

// TestStrictKubernetes decodes every exported document into its
// k8s.io/api type with apimachinery's strict YAML serializer: a field
// that is unknown, duplicated or of the wrong type fails.
func TestStrictKubernetes(t *testing.T) {
	for _, ex := range examples {
		kube, _ := exported(t, ex)
		if ex.name == "full" {
			continue // refused
		}
		objs := decodeStrict(t, kube)
		if len(objs) == 0 {
			t.Fatalf("%s: no object", ex.name)
		}
		for _, o := range objs {
			if d, ok := o.(*appsv1.Deployment); ok && (d.Spec.Replicas == nil || *d.Spec.Replicas != 1 || len(d.Spec.Template.Spec.Containers) == 0) {
				t.Errorf("%s: deployment %s: %+v", ex.name, d.Name, d.Spec)
			}
		}
	}
}

func decodeStrict(t *testing.T, data []byte) []runtime.Object {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{appsv1.AddToScheme, corev1.AddToScheme, networkingv1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	ser := json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme, scheme, json.SerializerOptions{Yaml: true, Strict: true})
	var out []runtime.Object
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		obj, _, err := ser.Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("strict decoding of\n%s\n: %v", doc, err)
		}
		out = append(out, obj)
	}
}

func stripComments(doc []byte) []byte {
	var out []string
	for _, l := range strings.Split(string(doc), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			out = append(out, l)
		}
	}
	return []byte(strings.Join(out, "\n"))
}

// TestStrictDecoderRefuses: the strict decoding above fails on an unknown
// field, so its passing means something.
func TestStrictDecoderRefuses(t *testing.T) {
	scheme := runtime.NewScheme()
	appsv1.AddToScheme(scheme)
	ser := json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme, scheme, json.SerializerOptions{Yaml: true, Strict: true})
	bad := "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replica: 1}\n"
	if _, _, err := ser.Decode([]byte(bad), nil, nil); err == nil || !strings.Contains(err.Error(), "unknown field") {
		t.Errorf("an unknown field decoded: %v", err)
	}
}

// TestComposeLoads loads every exported Compose file with compose-go, the
// loader docker compose itself uses, and checks what it read.
func TestComposeLoads(t *testing.T) {
	for _, ex := range examples {
		if ex.name == "full" {
			continue // refused
		}
		_, compose := exported(t, ex)
		p := loadCompose(t, ex.name, compose)
		s := load(t, ex.path)
		for _, ns := range s.Namespaces {
			for i, proc := range ns.Run {
				svc, ok := p.Services[ns.Name+"-"+proc.Name]
				if !ok {
					t.Errorf("%s: no service %s-%s in %v", ex.name, ns.Name, proc.Name, p.ServiceNames())
					continue
				}
				if i == 0 && len(svc.Ports) != len(published(ns)) {
					t.Errorf("%s: service %s has ports %+v; want %d", ex.name, svc.Name, svc.Ports, len(published(ns)))
				}
				if i > 0 && svc.NetworkMode != "service:"+ns.Name+"-"+ns.Run[0].Name {
					t.Errorf("%s: service %s has network_mode %q", ex.name, svc.Name, svc.NetworkMode)
				}
				if svc.Restart != string(proc.Restart) {
					t.Errorf("%s: service %s restarts %q, want %q", ex.name, svc.Name, svc.Restart, proc.Restart)
				}
			}
		}
	}
}

func loadCompose(t *testing.T, name string, data []byte) *types.Project {
	t.Helper()
	p, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  t.TempDir(),
		ConfigFiles: []types.ConfigFile{{Filename: name + ".compose.yaml", Content: data}},
	}, func(o *loader.Options) { o.SkipResolveEnvironment = true })
	if err != nil {
		t.Fatalf("%s: compose-go: %v\n%s", name, err, data)
	}
	return p
}

// TestComposeDetails: ports keep their host addresses and ranges, a
// string command stays a shell command, a ready check with --check is a
// healthcheck, and the run entries of a namespace share the first's
// network.
func TestComposeDetails(t *testing.T) {
	s, err := specs.Parse("d.yaml", []byte(`name: d
namespaces:
  a:
    ports: ["6000:8080", "127.0.0.1:6100:53/udp", "7000-7002:8000-8002"]
    run:
      - {name: web, command: "exec server --port 8080", user: "1000:1000", workdir: /srv, env: {N: "1", FLAG: "no"}, restart: on-failure, ready: {tcp: 8080, timeout: 20s}}
      - {name: side, command: [sleep, "600"], restart: always}
`))
	if err != nil {
		t.Fatal(err)
	}
	out, err := Compose(s, ComposeOptions{Images: Images{Default: "img:1"}, Checks: map[string]string{"a/web": "nc -z localhost 8080"}})
	if err != nil {
		t.Fatal(err)
	}
	p := loadCompose(t, "d", out)
	web, side := p.Services["a-web"], p.Services["a-side"]
	var ports []string
	for _, port := range web.Ports {
		ports = append(ports, fmt.Sprintf("%s:%s:%d/%s", port.HostIP, port.Published, port.Target, port.Protocol))
	}
	want := ":6000:8080/tcp 127.0.0.1:6100:53/udp :7000:8000/tcp :7001:8001/tcp :7002:8002/tcp"
	if strings.Join(ports, " ") != want {
		t.Errorf("ports %v; want %s", ports, want)
	}
	if strings.Join(web.Command, " ") != "/bin/sh -c exec server --port 8080" || web.User != "1000:1000" || web.WorkingDir != "/srv" ||
		*web.Environment["FLAG"] != "no" || web.Restart != "on-failure" {
		t.Errorf("web: %+v", web)
	}
	if web.HealthCheck == nil || strings.Join(web.HealthCheck.Test, " ") != "CMD-SHELL nc -z localhost 8080" || web.HealthCheck.StartPeriod == nil || web.HealthCheck.StartPeriod.String() != "20s" {
		t.Errorf("healthcheck: %+v", web.HealthCheck)
	}
	if side.NetworkMode != "service:a-web" || len(side.Ports) != 0 || side.Restart != "always" {
		t.Errorf("side: %+v", side)
	}
}

// TestRefusals: what cannot be carried is refused, every problem at
// once, with its reason and what to do.
func TestRefusals(t *testing.T) {
	s, err := specs.Parse("r.yaml", []byte(`name: r
namespaces:
  Bad_Name:
    run: [{name: web, command: [srv]}]
  fixed:
    address: 10.9.1.2/24
    ports: ["127.0.0.1:6000:8080"]
    run: [{name: Web_1, command: [srv], user: nobody, workdir: app}]
  closed:
    egress: false
    run: [{name: web, command: [srv]}]
  empty:
    ports: ["6001:80"]
`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Kubernetes(s, KubeOptions{Images: Images{ByEntry: map[string]string{"closed/web": "img", "nope/x": "img"}}})
	var r *Refused
	if !errors.As(err, &r) {
		t.Fatalf("Kubernetes: %v; want a refusal", err)
	}
	for _, want := range []string{
		`--image nope/x=...: the spec has no run entry nope/x`,
		`namespace "Bad_Name": the name "Bad_Name" is not a DNS-1035 label`,
		`namespace "Bad_Name", run entry "web": no image; give one with --image IMAGE, or --image Bad_Name/web=IMAGE`,
		`namespace "fixed": a fixed address cannot be carried`,
		`namespace "fixed": port 127.0.0.1:6000:8080 is published on 127.0.0.1 only`,
		`run entry "Web_1": the name "Web_1" is not a DNS-1123 label`,
		`user "nobody" is a name, and user names belong to the image; give the numeric uid[:gid]`,
		`namespace "empty": it publishes ports but runs nothing`,
		`run entry "Web_1": workdir "app" is relative to the spec's directory on this host`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Kubernetes refusal lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), `"closed"`) {
		t.Errorf("egress: false is no problem for Kubernetes (a NetworkPolicy):\n%v", err)
	}
	_, err = Compose(s, ComposeOptions{Images: Images{Default: "img"}})
	for _, want := range []string{`namespace "closed": egress: false cannot be carried`, `namespace "fixed": a fixed address cannot be carried`, `workdir "app" is relative`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Compose refusal lacks %q:\n%v", want, err)
		}
	}
	if err != nil && strings.Contains(err.Error(), "127.0.0.1 only") {
		t.Errorf("Compose keeps host addresses:\n%v", err)
	}
	for _, bad := range [][]string{{""}, {"a", "b"}, {"ns1/web="}, {"web=img"}} {
		if _, err := ParseImages(bad); err == nil {
			t.Errorf("--image %q accepted", bad)
		}
	}
}

// TestKubernetesMapping checks the mapping of each field where the
// golden files would not say why.
func TestKubernetesMapping(t *testing.T) {
	s, err := specs.Parse("m.yaml", []byte(`name: m
ipv6: true
namespaces:
  a:
    egress: false
    ports: ["6000:8080", "7000-7001:9000-9001/udp"]
    run:
      - {name: web, command: "srv --port 8080", user: "1000:2000", restart: on-failure, ready: {tcp: 8080, timeout: 45s}, env: {N: "007"}}
      - {name: side, command: [sleep, "600"], restart: always}
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{KindDeployment, KindPod} {
		for _, publish := range []string{PublishService, PublishHostPort} {
			out, err := Kubernetes(s, KubeOptions{Images: Images{Default: "img:1"}, Kind: kind, Publish: publish, Namespace: "team"})
			if err != nil {
				t.Fatal(err)
			}
			var pod corev1.PodSpec
			var services []*corev1.Service
			var policy *networkingv1.NetworkPolicy
			for _, o := range decodeStrict(t, out) {
				switch o := o.(type) {
				case *appsv1.Deployment:
					pod = o.Spec.Template.Spec
				case *corev1.Pod:
					pod = o.Spec
				case *corev1.Service:
					services = append(services, o)
					if o.Namespace != "team" || o.Labels[labelProject] != "m" || o.Labels[labelNamespace] != "a" {
						t.Errorf("service %s: namespace %q labels %v", o.Name, o.Namespace, o.Labels)
					}
				case *networkingv1.NetworkPolicy:
					policy = o
				}
			}
			web := pod.Containers[0]
			if strings.Join(web.Command, " ") != "/bin/sh -c srv --port 8080" || *web.SecurityContext.RunAsUser != 1000 || *web.SecurityContext.RunAsGroup != 2000 ||
				web.Env[0].Value != "007" || web.ReadinessProbe.TCPSocket.Port.IntValue() != 8080 ||
				web.StartupProbe.PeriodSeconds*web.StartupProbe.FailureThreshold < 45 {
				t.Errorf("%s/%s: web container %+v", kind, publish, web)
			}
			if kind == KindDeployment && (web.RestartPolicy == nil || *web.RestartPolicy != corev1.ContainerRestartPolicyOnFailure || pod.RestartPolicy != "" || pod.Containers[1].RestartPolicy != nil) {
				t.Errorf("%s: restart policies: pod %q, web %v, side %v", kind, pod.RestartPolicy, web.RestartPolicy, pod.Containers[1].RestartPolicy)
			}
			if kind == KindPod && pod.RestartPolicy != corev1.RestartPolicyAlways {
				t.Errorf("pod: restart policy %q (the entries differ: Always, and the containers' own)", pod.RestartPolicy)
			}
			wantServices := 2
			if publish == PublishHostPort {
				wantServices = 1
				if len(web.Ports) != 3 || web.Ports[0].HostPort != 6000 || web.Ports[0].ContainerPort != 8080 || web.Ports[2].HostPort != 7001 || web.Ports[2].ContainerPort != 9001 || web.Ports[2].Protocol != corev1.ProtocolUDP {
					t.Errorf("hostports: %+v", web.Ports)
				}
			}
			if len(services) != wantServices || services[0].Spec.ClusterIP != "None" || services[0].Name != "a" {
				t.Fatalf("%s: services %+v", publish, services)
			}
			if publish == PublishService {
				ports := services[1].Spec.Ports
				if len(ports) != 3 || ports[0].Port != 6000 || ports[0].TargetPort.IntValue() != 8080 || ports[2].Port != 7001 || ports[2].TargetPort.IntValue() != 9001 ||
					*services[1].Spec.IPFamilyPolicy != corev1.IPFamilyPolicyPreferDualStack {
					t.Errorf("published ports (one for both families, ranges expanded): %+v", ports)
				}
			}
			if policy == nil || len(policy.Spec.Egress) != 2 || policy.Spec.Egress[0].To[0].PodSelector.MatchLabels[labelProject] != "m" || policy.Spec.Egress[1].Ports[0].Port.IntValue() != 53 {
				t.Errorf("network policy: %+v", policy)
			}
		}
	}
	// Every entry alike: the pod's own policy, no container field.
	s, _ = specs.Parse("p.yaml", []byte("name: p\nnamespaces:\n  a:\n    run: [{name: x, command: [a]}, {name: y, command: [b]}]\n"))
	out, err := Kubernetes(s, KubeOptions{Images: Images{Default: "img"}, Kind: KindPod})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range decodeStrict(t, out) {
		if p, ok := o.(*corev1.Pod); ok && (p.Spec.RestartPolicy != corev1.RestartPolicyNever || p.Spec.Containers[0].RestartPolicy != nil) {
			t.Errorf("pod of entries that all restart no: %q, %v", p.Spec.RestartPolicy, p.Spec.Containers[0].RestartPolicy)
		}
	}
}

// TestComposeNetworks: the spec's networks are Compose's, as compose-go
// reads them: each first service on its namespace's networks (the
// default one too, undeclared), an external one external, a namespace
// on none without a network; with IPv6 each network has it.
func TestComposeNetworks(t *testing.T) {
	s, err := specs.Parse("n.yaml", []byte(`name: n
ipv6: true
networks:
  front: {}
  shared: {external: true}
namespaces:
  a: {networks: [default, front], ports: ["6000:8080"], run: [{name: web, command: [srv]}]}
  b: {networks: [front, shared], run: [{name: app, command: [app]}, {name: side, command: [side]}]}
  c: {networks: [], run: [{name: job, command: [job]}]}
  d: {run: [{name: tool, command: [tool]}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	images, _ := ParseImages([]string{"busybox"})
	out, err := Compose(s, ComposeOptions{Images: images})
	if err != nil {
		t.Fatal(err)
	}
	p := loadCompose(t, "n", out)
	for svc, want := range map[string][]string{"a-web": {"default", "front"}, "b-app": {"front", "shared"}, "d-tool": {"default"}} {
		var got []string
		for name := range p.Services[svc].Networks {
			got = append(got, name)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("service %s on networks %v; want %v\n%s", svc, got, want, out)
		}
	}
	if mode := p.Services["c-job"].NetworkMode; mode != "none" {
		t.Errorf("c-job (networks: []) has network_mode %q; want none", mode)
	}
	if mode := p.Services["b-side"].NetworkMode; mode != "service:b-app" {
		t.Errorf("b-side has network_mode %q; want service:b-app", mode)
	}
	if !bool(p.Networks["shared"].External) {
		t.Errorf("network shared is not external: %+v", p.Networks["shared"])
	}
	for _, name := range []string{"front", "default"} {
		if v6 := p.Networks[name].EnableIPv6; v6 == nil || !*v6 {
			t.Errorf("network %s without IPv6 in a spec with ipv6: true: %+v", name, p.Networks[name])
		}
	}
	// A namespace on no network that publishes a port is refused, with why.
	s, _ = specs.Parse("r.yaml", []byte("namespaces:\n  a: {networks: [], ports: [\"6000:8080\"], run: [{command: [srv]}]}\n"))
	if _, err := Compose(s, ComposeOptions{Images: images}); err == nil || !strings.Contains(err.Error(), "networks: [] with published ports cannot be carried") {
		t.Errorf("networks: [] with ports: %v", err)
	}
}

// TestExportLimits: the limits reach each container and each service as
// Kubernetes and compose-go read them: a process's own, else an even
// share of its namespace's; requests equal limits.
func TestExportLimits(t *testing.T) {
	s, err := specs.Parse("l.yaml", []byte(`name: l
namespaces:
  a:
    resources: {memory: 512M, cpus: 1.5, pids: 100}
    run:
      - {name: web, command: [web], resources: {memory: 128M}}
      - {name: side, command: [side]}
  b:
    resources: {memory: 1G}
    run:
      - {name: db, command: [db]}
`))
	if err != nil {
		t.Fatal(err)
	}
	kube, err := Kubernetes(s, KubeOptions{Images: Images{Default: "img:1"}, Kind: KindDeployment})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][2]string{"web": {"750m", "128Mi"}, "side": {"750m", "256Mi"}, "db": {"", "1Gi"}}
	seen := 0
	for _, o := range decodeStrict(t, kube) {
		d, ok := o.(*appsv1.Deployment)
		if !ok {
			continue
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			w := want[c.Name]
			seen++
			lim, req := c.Resources.Limits, c.Resources.Requests
			cpu := ""
			if q, ok := lim["cpu"]; ok {
				cpu = q.String()
			}
			if cpu != w[0] || lim.Memory().String() != w[1] || !maps.EqualFunc(lim, req, func(a, b resource.Quantity) bool { return a.Cmp(b) == 0 }) {
				t.Errorf("container %s: limits %v, requests %v; want cpu %q memory %q, requests the same", c.Name, lim, req, w[0], w[1])
			}
		}
	}
	if seen != 3 {
		t.Errorf("%d containers; want 3", seen)
	}
	compose, err := Compose(s, ComposeOptions{Images: Images{Default: "img:1"}})
	if err != nil {
		t.Fatal(err)
	}
	p := loadCompose(t, "l", compose)
	for name, w := range map[string]struct {
		memory int64
		cpus   float32
		pids   int64
	}{"a-web": {128 << 20, 0.75, 50}, "a-side": {256 << 20, 0.75, 50}, "b-db": {1 << 30, 0, 0}} {
		svc := p.Services[name]
		if svc.Deploy == nil || svc.Deploy.Resources.Limits == nil {
			t.Errorf("service %s has no limits:\n%s", name, compose)
			continue
		}
		lim := svc.Deploy.Resources.Limits
		if int64(lim.MemoryBytes) != w.memory || float32(lim.NanoCPUs.Value()) != w.cpus || svc.PidsLimit != w.pids {
			t.Errorf("service %s: memory %d, cpus %v, pids_limit %d; want %d, %v, %d", name, lim.MemoryBytes, lim.NanoCPUs, svc.PidsLimit, w.memory, w.cpus, w.pids)
		}
	}
}

// TestExportShaping: bandwidth limits are the pod annotations the CNI
// bandwidth plugin reads, on the Deployment's pod template and on a bare
// Pod; netem is named among what Kubernetes does not carry, and both among
// what Compose does not.
func TestExportShaping(t *testing.T) {
	s, err := specs.Parse("sh.yaml", []byte(`name: sh
namespaces:
  a:
    bandwidth: {ingress: 20mbit, egress: 1500kbit}
    netem: {delay: 20ms}
    run: [{name: web, command: [web]}]
  b:
    run: [{name: db, command: [db]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{KindDeployment, KindPod} {
		kube, err := Kubernetes(s, KubeOptions{Images: Images{Default: "img:1"}, Kind: kind})
		if err != nil {
			t.Fatal(err)
		}
		found := map[string]map[string]string{}
		for _, o := range decodeStrict(t, kube) {
			switch o := o.(type) {
			case *appsv1.Deployment:
				found[o.Name] = o.Spec.Template.Annotations
			case *corev1.Pod:
				found[o.Name] = o.Annotations
			}
		}
		want := map[string]string{"kubernetes.io/ingress-bandwidth": "20M", "kubernetes.io/egress-bandwidth": "1500k"}
		if !maps.Equal(found["a"], want) || len(found["b"]) != 0 {
			t.Errorf("%s: pod annotations %v; want %v on a, none on b", kind, found, want)
		}
		if !strings.Contains(string(kube), "netem (delay, jitter, loss) is not carried: Kubernetes has no") {
			t.Errorf("%s: the header does not say netem is not carried:\n%s", kind, kube)
		}
	}
	compose, err := Compose(s, ComposeOptions{Images: Images{Default: "img:1"}})
	if err != nil {
		t.Fatal(err)
	}
	loadCompose(t, "sh", compose)
	if !strings.Contains(string(compose), "# Bandwidth limits and netem are not carried: Compose has no key for them") {
		t.Errorf("the compose header does not say what is not carried:\n%s", compose)
	}
}

// TestHealthExport: health checks become probes (http httpGet, tcp
// tcpSocket, command exec; the schedule in seconds; liveness only with
// on_failure: restart) and Compose healthchecks (a command as it is, http
// and tcp only through --check); depends_on becomes Compose's, healthy
// where the dependency has a healthcheck.
func TestHealthExport(t *testing.T) {
	s, err := specs.Parse("h.yaml", []byte(`name: h
namespaces:
  a:
    ports: ["6000:8080"]
    run:
      - {name: web, command: [srv], ready: {tcp: 8080}, health: {http: "/healthz?full=1", interval: 5s, timeout: 2s, retries: 4, start_period: 10s, on_failure: restart},
         depends_on: [b/db, b/cache]}
      - {name: probe, command: [srv], health: {tcp: 9000, on_failure: stop}}
  b:
    run:
      - {name: db, command: [pg], health: {command: "pg_isready -q", interval: 3s}}
      - {name: cache, command: [redis]}
`))
	if err != nil {
		t.Fatal(err)
	}
	out, err := Kubernetes(s, KubeOptions{Images: Images{Default: "img:1"}, Kind: KindDeployment, Publish: PublishService})
	if err != nil {
		t.Fatal(err)
	}
	for _, said := range []string{"# Health checks are probes", "on_failure:\n# stop is not carried", "# depends_on is not carried"} {
		if !strings.Contains(string(out), said) {
			t.Errorf("the header does not say %q:\n%s", said, out)
		}
	}
	containers := map[string]corev1.Container{}
	for _, o := range decodeStrict(t, out) {
		if d, ok := o.(*appsv1.Deployment); ok {
			for _, c := range d.Spec.Template.Spec.Containers {
				containers[c.Name+"@"+d.Name] = c
			}
		}
	}
	web := containers["web@a"]
	r, l := web.ReadinessProbe, web.LivenessProbe
	if r == nil || r.HTTPGet == nil || r.HTTPGet.Path != "/healthz?full=1" || r.HTTPGet.Port.IntValue() != 8080 ||
		r.PeriodSeconds != 5 || r.TimeoutSeconds != 2 || r.FailureThreshold != 4 || r.InitialDelaySeconds != 10 {
		t.Errorf("web's readiness probe: %+v", r)
	}
	if l == nil || l.HTTPGet == nil || l.FailureThreshold != 4 || web.StartupProbe == nil || web.StartupProbe.TCPSocket.Port.IntValue() != 8080 {
		t.Errorf("web's liveness %+v and startup %+v probes", l, web.StartupProbe)
	}
	probe := containers["probe@a"]
	if probe.ReadinessProbe == nil || probe.ReadinessProbe.TCPSocket.Port.IntValue() != 9000 || probe.LivenessProbe != nil ||
		probe.ReadinessProbe.PeriodSeconds != 10 || probe.ReadinessProbe.FailureThreshold != 3 {
		t.Errorf("probe's probes: %+v, %+v (on_failure none: readiness only)", probe.ReadinessProbe, probe.LivenessProbe)
	}
	db := containers["db@b"]
	if db.ReadinessProbe == nil || strings.Join(db.ReadinessProbe.Exec.Command, " ") != "/bin/sh -c pg_isready -q" || db.ReadinessProbe.PeriodSeconds != 3 {
		t.Errorf("db's probe: %+v", db.ReadinessProbe)
	}

	compose, err := Compose(s, ComposeOptions{Images: Images{Default: "img:1"}, Checks: map[string]string{"a/web": "wget -qO- localhost:8080/healthz"}})
	if err != nil {
		t.Fatal(err)
	}
	p := loadCompose(t, "h", compose)
	w, d := p.Services["a-web"], p.Services["b-db"]
	if w.HealthCheck == nil || strings.Join(w.HealthCheck.Test, " ") != "CMD-SHELL wget -qO- localhost:8080/healthz" || w.HealthCheck.Interval.String() != "5s" ||
		*w.HealthCheck.Retries != 4 || w.HealthCheck.StartPeriod.String() != "10s" {
		t.Errorf("web's healthcheck: %+v", w.HealthCheck)
	}
	if d.HealthCheck == nil || strings.Join(d.HealthCheck.Test, " ") != "CMD-SHELL pg_isready -q" || d.HealthCheck.Interval.String() != "3s" {
		t.Errorf("db's healthcheck: %+v", d.HealthCheck)
	}
	if p.Services["a-probe"].HealthCheck != nil {
		t.Error("a tcp check without --check became a healthcheck")
	}
	if w.DependsOn["b-db"].Condition != "service_healthy" || w.DependsOn["b-cache"].Condition != "service_started" || len(w.DependsOn) != 2 {
		t.Errorf("web's depends_on: %+v", w.DependsOn)
	}
	for _, note := range []string{"a/probe's tcp health check is not carried", "a/web's on_failure: restart is not carried"} {
		if !strings.Contains(string(compose), note) {
			t.Errorf("the header does not say %q:\n%s", note, compose)
		}
	}
}
