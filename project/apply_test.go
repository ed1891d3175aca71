package project

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/veth"
)

// orderedSystem is the fake host, watched for the order in which an up
// makes things: the link of one namespace waits a moment for the
// forwards, which come in that moment only if they may be published
// before every link exists; and that link may fail.
type orderedSystem struct {
	*fakeSystem
	slow      string        // the namespace whose link waits for the forwards
	fail      bool          // its link fails after the wait
	applied   chan struct{} // closed at the first Apply
	applyOnce sync.Once
	mu        sync.Mutex
	early     []string // the links missing when the forwards were applied
	readied   []string // the links there when the forwards' tables were readied, one entry per Ready
}

func (o *orderedSystem) Ready(ctx context.Context, at forward.Placement) {
	o.fakeSystem.mu.Lock()
	n := len(o.fakeSystem.links)
	o.fakeSystem.mu.Unlock()
	o.mu.Lock()
	defer o.mu.Unlock()
	o.readied = append(o.readied, fmt.Sprintf("%d links, backend %s", n, at.Backend))
}

func (o *orderedSystem) EnsureLink(p veth.Pair) error {
	if p.Namespace == o.slow {
		select {
		case <-o.applied:
		case <-time.After(2 * time.Second):
		}
		if o.fail {
			return fmt.Errorf("injected failure: link %s", p.Host)
		}
	}
	return o.fakeSystem.EnsureLink(p)
}

func (o *orderedSystem) Apply(ctx context.Context, at forward.Placement, p forward.Project) error {
	o.applyOnce.Do(func() { close(o.applied) })
	o.fakeSystem.mu.Lock()
	for _, ns := range p.Namespaces {
		if _, ok := o.fakeSystem.links[ns.Link]; !ok {
			o.mu.Lock()
			o.early = append(o.early, ns.Link)
			o.mu.Unlock()
		}
	}
	o.fakeSystem.mu.Unlock()
	return o.fakeSystem.Apply(ctx, at, p)
}

// orderedUp brings up a project of 3*workers namespaces on an
// orderedSystem whose last namespace's link is the slow one.
func orderedUp(t *testing.T, fail bool) (*orderedSystem, error) {
	var src strings.Builder
	src.WriteString("namespaces:\n")
	n := 3 * workers
	for i := range n {
		fmt.Fprintf(&src, "  ns%d: {ports: [\"%d:8080\"]}\n", i, 6000+i)
	}
	sys := &orderedSystem{fakeSystem: newFake(), slow: fmt.Sprintf("ns%d", n-1), fail: fail, applied: make(chan struct{})}
	e := newEngine(t, sys.fakeSystem)
	e.System, e.Publisher = sys, sys
	_, err := e.Up(context.Background(), spec(t, src.String()))
	return sys, err
}

// TestForwardsWaitForEveryLink: an up publishes the ports only once every
// namespace has its link (the forwards were the last step of the same
// batch as the links, and could run beside the last few).
func TestForwardsWaitForEveryLink(t *testing.T) {
	sys, err := orderedUp(t, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(sys.early) > 0 {
		t.Errorf("forwards published before the links %v existed", sys.early)
	}
	if len(sys.links) != 3*workers {
		t.Errorf("%d links made, want %d", len(sys.links), 3*workers)
	}
	// What writing the forwards needs is readied beside the links, once.
	if len(sys.readied) != 1 || !strings.HasPrefix(sys.readied[0], "0 links, backend ") {
		t.Errorf("the forwards' tables readied %q; want once, before the first link", sys.readied)
	}
}

// TestAFailedLinkKeepsTheForwardsBack: when a link cannot be made, the
// ports are not published at all, and the up rolls back what the other
// steps made.
func TestAFailedLinkKeepsTheForwardsBack(t *testing.T) {
	sys, err := orderedUp(t, true)
	if err == nil || !strings.Contains(err.Error(), "injected failure: link") {
		t.Fatalf("up = %v, want the failure of the link of %s", err, sys.slow)
	}
	for _, l := range sys.log {
		if strings.HasPrefix(l, "forwards ") {
			t.Errorf("forwards published although a link failed (changes: %v)", sys.log)
			break
		}
	}
	if len(sys.links) != 0 || len(sys.namespaces) != 0 {
		t.Errorf("after the rollback: links %v, namespaces %v; want none", sys.links, sys.namespaces)
	}
}
