//go:build k8s

package k8stest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/nsrun/nsrun/export"
	"github.com/nsrun/nsrun/specs"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	sigsyaml "sigs.k8s.io/yaml"
)

// server is the API server the tests share: etcd and kube-apiserver from
// KUBEBUILDER_ASSETS (scripts/k8s-test.sh builds them), started by envtest.
var (
	server *version.Info
	kube   client.Client
)

func TestMain(m *testing.M) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		fmt.Fprintln(os.Stderr, "k8stest: KUBEBUILDER_ASSETS is not set; run scripts/k8s-test.sh, which builds etcd and kube-apiserver")
		os.Exit(1)
	}
	env := &envtest.Environment{}
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "k8stest: starting etcd and kube-apiserver:", err)
		os.Exit(1)
	}
	code := func() int {
		dc, err := discovery.NewDiscoveryClientForConfig(cfg)
		if err == nil {
			server, err = dc.ServerVersion()
		}
		if err == nil {
			kube, err = client.New(cfg, client.Options{})
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "k8stest:", err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "k8stest: kube-apiserver %s\n", server.GitVersion)
		return m.Run()
	}()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "k8stest: stopping the control plane:", err)
		code = 1
	}
	os.Exit(code)
}

// objects decodes the YAML documents of an export.
func objects(t *testing.T, data []byte) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		obj := map[string]any{}
		if err := sigsyaml.Unmarshal(doc, &obj); err != nil {
			t.Fatal(err)
		}
		if len(obj) == 0 {
			continue // the header comment
		}
		out = append(out, &unstructured.Unstructured{Object: obj})
	}
}

// namespace makes a Kubernetes namespace for one case; it goes with the
// control plane.
func namespace(t *testing.T, name string) string {
	t.Helper()
	ns := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": name}}}
	if err := kube.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return name
}

// TestExportsAreAccepted creates, for real, every object of every
// example's export in each of its forms.
func TestExportsAreAccepted(t *testing.T) {
	examples := map[string][]string{
		"blog":       {"../../specs/examples/blog.yaml", "python:3.12-slim"},
		"flask":      {"../../specs/examples/flask/flask.yaml", "registry.example/flask-app:1"},
		"dual-stack": {"../../specs/examples/dual-stack.yaml", "python:3.12-slim"},
		"tenants":    {"../../specs/examples/tenants.yaml", "python:3.12-slim"},
	}
	for name, ex := range examples {
		s, err := specs.Load(ex[0])
		if err != nil {
			t.Fatal(err)
		}
		for _, kind := range []string{export.KindDeployment, export.KindPod} {
			for _, publish := range []string{export.PublishService, export.PublishHostPort} {
				t.Run(fmt.Sprintf("%s/%s/%s", name, kind, publish), func(t *testing.T) {
					ns := namespace(t, fmt.Sprintf("%s-%s-%s", name, kind, publish))
					out, err := export.Kubernetes(s, export.KubeOptions{Images: export.Images{Default: ex[1]}, Kind: kind, Publish: publish, Namespace: ns})
					if err != nil {
						t.Fatal(err)
					}
					objs := objects(t, out)
					if len(objs) == 0 {
						t.Fatal("no object")
					}
					for _, o := range objs {
						if err := kube.Create(context.Background(), o); err != nil {
							t.Errorf("the API server refused %s %s: %v", o.GetKind(), o.GetName(), err)
						}
					}
					if name == "tenants" && kind == export.KindPod {
						// Limits and requests, memory and CPU, on every
						// container: the server makes the pod Guaranteed.
						got := &unstructured.Unstructured{}
						got.SetAPIVersion("v1")
						got.SetKind("Pod")
						if err := kube.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "edge"}, got); err != nil {
							t.Fatal(err)
						}
						if qos, _, _ := unstructured.NestedString(got.Object, "status", "qosClass"); qos != "Guaranteed" {
							t.Errorf("pod edge has QoS class %q; want Guaranteed", qos)
						}
					}
				})
			}
		}
	}
}

// TestEveryField exports a spec with the fields the examples leave out
// (egress: false, a user, a workdir, a string command, port ranges, a
// ready timeout, restart always and on-failure) and creates it.
func TestEveryField(t *testing.T) {
	s, err := specs.Parse("every.yaml", []byte(`name: every
ipv6: true
namespaces:
  web:
    egress: false
    ports: ["6000:8080", "7000-7002:8000-8002/udp"]
    run:
      - {name: app, command: "exec app --port 8080", user: "1000:1000", workdir: /srv, env: {A: "1"}, restart: on-failure, ready: {tcp: 8080, timeout: 2m}}
      - {name: side, command: [sleep, "600"], restart: always}
  db:
    run: [{name: db, command: [postgres], user: "999"}]
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{export.KindDeployment, export.KindPod} {
		ns := namespace(t, "every-"+kind)
		out, err := export.Kubernetes(s, export.KubeOptions{Images: export.Images{Default: "img:1"}, Kind: kind, Namespace: ns})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objects(t, out) {
			if err := kube.Create(context.Background(), o); err != nil {
				t.Errorf("%s: the API server refused %s %s: %v", kind, o.GetKind(), o.GetName(), err)
			}
		}
		// The containers' own restartPolicy is kept, not dropped as the
		// field of a disabled feature would be.
		got := &unstructured.Unstructured{}
		apiVersion, kindName, path := "apps/v1", "Deployment", []string{"spec", "template", "spec", "containers"}
		if kind == export.KindPod {
			apiVersion, kindName, path = "v1", "Pod", []string{"spec", "containers"}
		}
		got.SetAPIVersion(apiVersion)
		got.SetKind(kindName)
		if err := kube.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "web"}, got); err != nil {
			t.Fatal(err)
		}
		containers, _, _ := unstructured.NestedSlice(got.Object, path...)
		policies := []any{}
		for _, c := range containers {
			policies = append(policies, c.(map[string]any)["restartPolicy"])
		}
		if fmt.Sprint(policies) != "[OnFailure <nil>]" {
			t.Errorf("%s web: the containers' restartPolicy as stored: %v; want [OnFailure <nil>] (app on-failure, side always)", kind, policies)
		}
	}
}

// TestWrongObjectsAreRefused: the server checks what it is given, so
// that its accepting the exports means something.
func TestWrongObjectsAreRefused(t *testing.T) {
	ns := namespace(t, "wrong")
	wrong := map[string]string{
		"pod-level restartPolicy Never in a Deployment": `apiVersion: apps/v1
kind: Deployment
metadata: {name: never}
spec:
  replicas: 1
  selector: {matchLabels: {app: never}}
  template:
    metadata: {labels: {app: never}}
    spec:
      restartPolicy: Never
      containers: [{name: c, image: img}]
`,
		"a name with '_'": `apiVersion: v1
kind: Service
metadata: {name: bad_name}
spec: {clusterIP: None, selector: {app: x}}
`,
		"memory requests above limits": `apiVersion: v1
kind: Pod
metadata: {name: requests}
spec:
  containers: [{name: c, image: img, resources: {limits: {memory: 128Mi}, requests: {memory: 256Mi}}}]
`,
		"hostPort 70000": `apiVersion: v1
kind: Pod
metadata: {name: hostport}
spec:
  containers: [{name: c, image: img, ports: [{containerPort: 8080, hostPort: 70000}]}]
`,
	}
	for what, doc := range wrong {
		for _, o := range objects(t, []byte(doc)) {
			o.SetNamespace(ns)
			err := kube.Create(context.Background(), o)
			if err == nil {
				t.Errorf("%s: accepted", what)
			} else if !apierrors.IsInvalid(err) {
				t.Errorf("%s: refused, but not as invalid: %v", what, err)
			} else {
				t.Logf("%s: refused: %v", what, strings.SplitN(err.Error(), "\n", 2)[0])
			}
		}
	}
}
