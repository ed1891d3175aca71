package project

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/specs"
	"github.com/nsrun/nsrun/supervise"
	"github.com/nsrun/nsrun/veth"
)

// fakeSystem is an in-memory host that enforces what the kernel would
// (a link needs its namespace) and can fail its k-th change.
type fakeSystem struct {
	mu         sync.Mutex // steps run in parallel
	ipForward  string
	namespaces map[string]bool
	links      map[string]veth.Pair
	forwards   map[string]forward.Project
	calls      int
	failAt     int // 1-based index of the change that fails; 0 never
	log        []string
	onFail     func() // called when the change fails, e.g. to cancel the context
}

func newFake() *fakeSystem {
	return &fakeSystem{ipForward: "0", namespaces: map[string]bool{}, links: map[string]veth.Pair{}, forwards: map[string]forward.Project{}}
}

// fingerprint is the fake host's state, for comparing before and after.
func (f *fakeSystem) fingerprint() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fmt.Sprint(f.ipForward, slices.Sorted(maps.Keys(f.namespaces)), slices.Sorted(maps.Keys(f.links)), slices.Sorted(maps.Keys(f.forwards)))
}

func (f *fakeSystem) change(what string) error {
	f.calls++
	f.log = append(f.log, what)
	if f.calls == f.failAt {
		if f.onFail != nil {
			f.onFail()
		}
		return fmt.Errorf("injected failure at change %d (%s)", f.calls, what)
	}
	return nil
}

func (f *fakeSystem) IPForward() (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ipForward, nil
}
func (f *fakeSystem) SetIPForward(v string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.change("sysctl " + v); err != nil {
		return err
	}
	f.ipForward = v
	return nil
}
func (f *fakeSystem) CreateNamespace(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.namespaces[name] {
		return fmt.Errorf("netns %q exists", name)
	}
	if err := f.change("netns add " + name); err != nil {
		return err
	}
	f.namespaces[name] = true
	return nil
}
func (f *fakeSystem) DeleteNamespace(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.change("netns del " + name); err != nil {
		return err
	}
	delete(f.namespaces, name)
	return nil
}
func (f *fakeSystem) KillNamespace(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.change("kill " + name)
}
func (f *fakeSystem) EnsureLink(p veth.Pair) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.namespaces[p.Namespace] {
		return fmt.Errorf("netns %q does not exist", p.Namespace)
	}
	if err := f.change("link " + p.Host); err != nil {
		return err
	}
	f.links[p.Host] = p
	return nil
}
func (f *fakeSystem) LinkGone(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.links[name]; !ok {
		return nil
	}
	if err := f.change("link del " + name); err != nil {
		return err
	}
	delete(f.links, name)
	return nil
}
func (f *fakeSystem) DeleteLink(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.change("link del " + name); err != nil {
		return err
	}
	delete(f.links, name)
	return nil
}
func (f *fakeSystem) ApplyForwards(ctx context.Context, p forward.Project) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if ctx.Err() != nil {
		return ctx.Err() // as iptables-restore run with a cancelled context
	}
	if err := f.change("forwards " + p.Name); err != nil {
		return err
	}
	f.forwards[p.Name] = p
	return nil
}
func (f *fakeSystem) RemoveForwards(ctx context.Context, project string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := f.change("forwards del " + project); err != nil {
		return err
	}
	delete(f.forwards, project)
	return nil
}
func (f *fakeSystem) FlushUDP([]specs.PortRange) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.change("conntrack")
}

func (f *fakeSystem) LabelledLinks() ([]veth.Labelled, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []veth.Labelled
	for name, p := range f.links {
		if project, ns, ok := veth.ParseLabel(p.Alias); ok {
			out = append(out, veth.Labelled{Name: name, Project: project, Namespace: ns})
		}
	}
	return out, nil
}
func (f *fakeSystem) SweepFirewall(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forwards = map[string]forward.Project{}
	return nil
}

func (f *fakeSystem) observe([]specs.Port) (Observed, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	obs := Observed{Links: map[string]string{}}
	obs.Namespaces = slices.Sorted(maps.Keys(f.namespaces))
	for name, p := range f.links {
		obs.Links[name] = p.Alias
	}
	return obs, nil
}

func (f *fakeSystem) WriteEtc(ns string, _ map[string]string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.change("etc " + ns)
}
func (f *fakeSystem) RemoveEtc(ns string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.change("etc del " + ns)
}

// fakeSupervision records the plans it is given.
type fakeSupervision struct{ plans []supervise.Plan }

func (f *fakeSupervision) Apply(_ context.Context, _ string, p supervise.Plan) error {
	f.plans = append(f.plans, p)
	return nil
}
func (f *fakeSupervision) Stop(string) error                       { return nil }
func (f *fakeSupervision) StopAll(string) error                    { return nil }
func (f *fakeSupervision) Dial(string, []netip.Addr, uint16) error { return nil }
