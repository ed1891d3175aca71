package project

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/nsrun/nsrun/cgroup"
	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/hostfw"
	"github.com/nsrun/nsrun/internal/quote"
	"github.com/nsrun/nsrun/internal/sysctl"
	"github.com/nsrun/nsrun/internal/words"
	"github.com/nsrun/nsrun/netns"
	"github.com/nsrun/nsrun/shape"
	"github.com/nsrun/nsrun/specs"
	"github.com/nsrun/nsrun/state"
	"github.com/nsrun/nsrun/veth"
)

// System is the thin layer that changes the kernel. Every method is
// idempotent: creating what exists and removing what is gone succeed.
type System interface {
	IPForward() (string, error)
	SetIPForward(value string) error
	// Sysctl reads and SetSysctl writes a host sysctl by its path below
	// /proc/sys, for IPv6 forwarding and accept_ra.
	Sysctl(path string) (string, error)
	SetSysctl(path, value string) error
	CreateNamespace(name string) error
	// NamespaceCookie is a named namespace's cookie, a number the kernel
	// never gives another namespace.
	NamespaceCookie(name string) (uint64, error)
	DeleteNamespace(name string) error
	// NamespaceHolders lists, for the named namespaces, the processes
	// that hold them open from outside (a namespace so held outlives its
	// deletion).
	NamespaceHolders(names []string) map[string][]netns.Holder
	// KillNamespaces stops every process inside the namespaces.
	KillNamespaces(names []string) error
	EnsureLink(p veth.Pair) error
	DeleteLink(name string) error
	// LinksGone waits a bounded time for links whose namespaces were
	// deleted to go with them, and deletes those that stay.
	LinksGone(names []string) error
	FlushUDP(ports []specs.PortRange) error
	// BindZone puts links in firewalld's zone for nsrun (hostfw.Zone), at
	// runtime; UnbindZone takes them out. Without firewalld both do nothing.
	BindZone(ctx context.Context, links []string) error
	UnbindZone(ctx context.Context, links []string) error
	// ZonedLinks lists the links in nsrun's firewalld zone.
	ZonedLinks(ctx context.Context) ([]string, error)
	WriteEtc(ns string, files map[string]string) error
	RemoveEtc(ns string) error
	// EnsureCgroup makes a namespace's cgroup, or sets its limits in
	// place; AdoptIntoCgroup moves the processes already in the namespace
	// into it; RemoveCgroups removes the cgroups of namespaces whose
	// processes are stopped (see package cgroup).
	EnsureCgroup(t cgroup.Tree) error
	// Shape gives both ends of a namespace's link (hostLink its host side)
	// the qdiscs of want, in place where their kind stays (shape.Ensure).
	Shape(ns, hostLink string, want shape.Link) error
	AdoptIntoCgroup(ns string) error
	RemoveCgroups(names []string) error
}

// Publisher publishes the projects' ports: the firewall backends and the
// loopback shortcut (forward.Publisher).
type Publisher interface {
	// Apply puts a project's rules where the placement says, and removes
	// them from every other backend.
	Apply(ctx context.Context, at forward.Placement, p forward.Project) error
	// Ready makes ready, in the background, what writing the
	// placement's tables needs (forward.Publisher.Ready).
	Ready(ctx context.Context, at forward.Placement)
	// Probe checks that a backend works here, changing nothing.
	Probe(ctx context.Context, b forward.Backend) error
	// Remove removes a project's rules from every backend.
	Remove(ctx context.Context, project string) error
	// MadeTables lists, per installed backend, the tables its tools made
	// on first use that exist now; RemoveEmptyTables removes those named
	// that hold nothing (see forward.Firewall).
	MadeTables(ctx context.Context) (map[forward.Backend][]string, error)
	RemoveEmptyTables(ctx context.Context, tables map[forward.Backend][]string) error
}

// opKind is what one op means: the stage its steps run in, how a step is
// described, and how it is done, registering its undo (nil: a step that
// only reports progress).
type opKind struct {
	stage    stage
	describe func(Step) string
	do       func(e *executor, s Step) error
}

// stage says which steps may run beside a step: steps of one stage in a
// row are independent of each other and run on several workers, but for
// the order waves gives them (a project's steps after its namespaces').
// The plans put them in this order.
type stage int

const (
	alone            stage = iota // runs by itself, in order
	createNamespaces              // each namespace made
	fillNamespaces                // links, /etc/netns files, exec grants, forwards, zones: once the namespaces exist (see waves)
	shapeLinks                    // each link's qdiscs: once the links exist
	deleteNamespaces              // each namespace deleted (its links go with it)
	clearAfterDelete              // what deleted namespaces leave: forwards, files, grants, zones
)

var ops = map[Op]opKind{
	OpIPForward: {stage: alone, describe: func(Step) string { return "IPv4 forwarding on" },
		do: func(e *executor, _ Step) error { return e.ipForward() }},
	OpIPv6Forward: {stage: alone, describe: func(s Step) string {
		if len(s.Links) == 0 {
			return "IPv6 forwarding on"
		}
		return fmt.Sprintf("IPv6 forwarding on; accept_ra=2 on %s, which learns its default route from router advertisements (forwarding alone would drop it)", names(quote.Names(s.Links)))
	}, do: func(e *executor, s Step) error { return e.ipv6Forward(s.Links) }},
	OpCreateNamespace: {stage: createNamespaces, describe: func(s Step) string { return fmt.Sprintf("namespace %s created", s.Namespace) },
		do: func(e *executor, s Step) error {
			if err := e.sys.CreateNamespace(s.Namespace); err != nil {
				return err
			}
			e.onUndo(func() error {
				return errors.Join(e.sys.KillNamespaces([]string{s.Namespace}), e.sys.DeleteNamespace(s.Namespace))
			})
			return nil
		}},
	OpLink: {stage: fillNamespaces, describe: func(s Step) string {
		if s.Pair.IPv6() {
			return fmt.Sprintf("link %s <-> %s:%s (%s %s, %s %s)", s.Pair.Host, s.Namespace, s.Pair.Peer, s.Pair.HostAddr, s.Pair.HostAddr6, s.Pair.PeerAddr, s.Pair.PeerAddr6)
		}
		return fmt.Sprintf("link %s <-> %s:%s (%s, %s)", s.Pair.Host, s.Namespace, s.Pair.Peer, s.Pair.HostAddr, s.Pair.PeerAddr)
	}, do: func(e *executor, s Step) error {
		if s.Created {
			e.onUndo(func() error { return e.sys.DeleteLink(s.Pair.Host) })
		}
		return e.sys.EnsureLink(s.Pair)
	}},
	OpEtc: {stage: fillNamespaces, describe: func(s Step) string { return fmt.Sprintf("/etc/netns/%s written", s.Namespace) },
		do: func(e *executor, s Step) error {
			if s.Created {
				e.onUndo(func() error { return e.sys.RemoveEtc(s.Namespace) })
			}
			return e.sys.WriteEtc(s.Namespace, s.Files)
		}},
	OpGrant: {stage: fillNamespaces, describe: func(s Step) string {
		return fmt.Sprintf("exec into %s granted to %s without root", s.Namespace, grantees(s.Grant))
	}, do: func(e *executor, s Step) error {
		g := *s.Grant
		var err error
		if g.Cookie, err = e.sys.NamespaceCookie(s.Namespace); err != nil {
			return err
		}
		e.onUndo(func() error {
			if s.PreviousGrant != nil {
				return e.store.WriteGrant(*s.PreviousGrant)
			}
			return e.store.RemoveGrant(s.Namespace)
		})
		return e.store.WriteGrant(g)
	}},
	OpRemoveGrant: {stage: clearAfterDelete, describe: func(s Step) string { return fmt.Sprintf("exec grant of %s withdrawn", s.Namespace) },
		do: func(e *executor, s Step) error { return e.store.RemoveGrant(s.Namespace) }},
	OpForwards: {stage: fillNamespaces, describe: func(s Step) string {
		where := string(s.Placement.Backend)
		for _, b := range s.Placement.Accepts {
			where += ", FORWARD accepts in " + string(b)
		}
		return fmt.Sprintf("forwards of project %s in place (%s)", s.Forward.Name, where)
	}, do: func(e *executor, s Step) error {
		e.onUndo(func() error {
			if s.Previous == nil {
				return e.pub.Remove(e.ctx, s.Forward.Name)
			}
			return e.pub.Apply(e.ctx, s.Previous.Placement, s.Previous.Project)
		})
		return e.pub.Apply(e.ctx, s.Placement, s.Forward)
	}},
	OpZone: {stage: fillNamespaces, describe: func(s Step) string { return fmt.Sprintf("firewalld: %s in zone %s", names(s.Links), hostfw.Zone) },
		do: func(e *executor, s Step) error {
			e.onUndo(func() error { return e.sys.UnbindZone(e.ctx, s.Links) })
			return e.sys.BindZone(e.ctx, s.Links)
		}},
	OpUnzone: {stage: clearAfterDelete, describe: func(s Step) string { return fmt.Sprintf("firewalld: %s out of zone %s", names(s.Links), hostfw.Zone) },
		do: func(e *executor, s Step) error { return e.sys.UnbindZone(e.ctx, s.Links) }},
	OpFlushUDP: {stage: alone, describe: func(s Step) string { return fmt.Sprintf("stale UDP conntrack entries for ports %v removed", s.Ports) },
		do: func(e *executor, s Step) error { return e.sys.FlushUDP(s.Ports) }},
	OpKill: {stage: alone, describe: func(s Step) string { return "processes stopped in " + words.Plural(len(s.Namespaces), "namespace") },
		do: func(e *executor, s Step) error { return e.sys.KillNamespaces(s.Namespaces) }},
	OpRemoveForwards: {stage: clearAfterDelete, describe: func(s Step) string { return fmt.Sprintf("forwards of project %s removed", s.Project) },
		do: func(e *executor, s Step) error { return e.pub.Remove(e.ctx, s.Project) }},
	OpDeleteNamespace: {stage: deleteNamespaces, describe: func(s Step) string { return fmt.Sprintf("namespace %s removed", s.Namespace) },
		do: func(e *executor, s Step) error { return e.sys.DeleteNamespace(s.Namespace) }},
	OpCgroup: {stage: fillNamespaces, describe: func(s Step) string {
		return fmt.Sprintf("cgroup of %s: %s", s.Namespace, s.Cgroup.Limits)
	}, do: func(e *executor, s Step) error {
		if s.Created && !s.Adopt {
			e.onUndo(func() error { return e.sys.RemoveCgroups([]string{s.Namespace}) })
		}
		if err := e.sys.EnsureCgroup(*s.Cgroup); err != nil {
			return err
		}
		if s.Adopt {
			return e.sys.AdoptIntoCgroup(s.Namespace)
		}
		return nil
	}},
	OpShape: {stage: shapeLinks, describe: func(s Step) string {
		if s.Shaping.IsZero() {
			return fmt.Sprintf("shaping of %s removed", s.Namespace)
		}
		return fmt.Sprintf("shaping of %s: %s", s.Namespace, s.What)
	}, do: func(e *executor, s Step) error {
		e.onUndo(func() error { return e.sys.Shape(s.Namespace, s.Links[0], *s.PreviousShaping) })
		return e.sys.Shape(s.Namespace, s.Links[0], *s.Shaping)
	}},
	OpRemoveCgroups: {stage: clearAfterDelete, describe: func(s Step) string { return "cgroups removed: " + names(s.Namespaces) },
		do: func(e *executor, s Step) error { return e.sys.RemoveCgroups(s.Namespaces) }},
	OpRemoveEtc: {stage: clearAfterDelete, describe: func(s Step) string { return fmt.Sprintf("/etc/netns/%s removed", s.Namespace) },
		do: func(e *executor, s Step) error { return e.sys.RemoveEtc(s.Namespace) }},
	OpLinksGone: {stage: alone, describe: func(s Step) string { return words.Plural(len(s.Links), "link") + " removed: " + names(s.Links) },
		do: func(e *executor, s Step) error { return e.sys.LinksGone(s.Links) }},
	OpStarted: {stage: alone, describe: func(s Step) string { return fmt.Sprintf("processes of project %s started", s.Project) }},
	OpReady:   {stage: alone, describe: func(s Step) string { return fmt.Sprintf("process %s/%s ready", s.Namespace, s.Process) }},
}

// grantees lists a grant's uids and gids for people.
func grantees(g *netns.Grant) string {
	var parts []string
	for _, u := range g.UIDs {
		parts = append(parts, fmt.Sprintf("uid %d", u))
	}
	for _, gid := range g.GIDs {
		parts = append(parts, fmt.Sprintf("gid %d", gid))
	}
	return strings.Join(parts, ", ")
}

// executor runs steps, remembering how to undo the ones that created
// something.
type executor struct {
	ctx      context.Context
	sys      System
	pub      Publisher
	store    state.Store
	progress func(Step)
	mu       sync.Mutex // guards undo while steps run in parallel
	undo     []func() error
}

// workers bounds how many steps run at once.
const workers = 8

// run runs the steps in order, stopping at the first failure.
func (e *executor) run(steps []Step) error {
	for _, b := range batches(steps) {
		if errs := e.batch(b); len(errs) > 0 {
			return errs[0]
		}
	}
	return nil
}

// runAll runs every step, going on after failures, and reports them all:
// down removes as much as it can.
func (e *executor) runAll(steps []Step) error {
	var errs []error
	for _, b := range batches(steps) {
		errs = append(errs, e.batch(b)...)
	}
	return errors.Join(errs...)
}

// batches splits steps into runs of one stage, and single steps.
func batches(steps []Step) [][]Step {
	var out [][]Step
	for len(steps) > 0 {
		n := 1
		for s := ops[steps[0].Op].stage; s != alone && n < len(steps) && ops[steps[n].Op].stage == s; {
			n++
		}
		out = append(out, steps[:n])
		steps = steps[n:]
	}
	return out
}

// errNotRun marks the steps of a batch that did not run, after a failure.
var errNotRun = errors.New("not run")

// batch runs a batch's steps on up to workers goroutines, wave by wave
// (see waves), and returns their failures in step order once all have
// ended; it reports progress for the steps that succeeded. A wave after
// one with a failure does not run.
func (e *executor) batch(steps []Step) []error {
	results := make([]error, len(steps))
	for i := range results {
		results[i] = errNotRun
	}
	for _, s := range steps {
		if s.Op == OpForwards { // written after the namespaces' wave: readied beside it
			e.pub.Ready(e.ctx, s.Placement)
		}
	}
	for _, wave := range waves(steps) {
		if slices.ContainsFunc(results, func(err error) bool { return err != nil && !errors.Is(err, errNotRun) }) {
			break
		}
		sem := make(chan struct{}, workers)
		var wg sync.WaitGroup
		for _, i := range wave {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				results[i] = e.step(steps[i])
			})
		}
		wg.Wait()
	}
	var errs []error
	for i, s := range steps {
		switch {
		case errors.Is(results[i], errNotRun):
		case results[i] != nil:
			errs = append(errs, fmt.Errorf("%s: %w", s.Op, results[i]))
		case e.progress != nil:
			e.progress(s)
		}
	}
	return errs
}

// waves orders a batch for the workers: the steps of a wave (their
// indexes) run side by side, and the next wave starts when all of them
// have ended. A batch that fills namespaces runs the steps of each
// namespace first (its link, files, grant, cgroup), then those of the
// whole project (its forwards, its links' zone): every namespace has its
// link by then, so no published port is DNAT'd towards an address the
// host does not route yet. Any other batch is one wave.
func waves(steps []Step) [][]int {
	var own, whole []int
	for i, s := range steps {
		if ops[s.Op].stage == fillNamespaces && s.Namespace == "" {
			whole = append(whole, i)
		} else {
			own = append(own, i)
		}
	}
	return [][]int{own, whole}
}

func (e *executor) step(s Step) error {
	k, ok := ops[s.Op]
	if !ok || k.do == nil {
		return fmt.Errorf("unknown step %q", s.Op)
	}
	return k.do(e, s)
}

func (e *executor) onUndo(f func() error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.undo = append(e.undo, f)
}

// rollback undoes, newest first, what run created; it returns what it
// could not undo. It runs to the end even when the run was interrupted
// (Ctrl-C cancels the context of the run, not of its undoing).
func (e *executor) rollback() error {
	e.ctx = context.WithoutCancel(e.ctx)
	var errs []error
	for i := len(e.undo) - 1; i >= 0; i-- {
		errs = append(errs, e.undo[i]())
	}
	e.undo = nil
	return errors.Join(errs...)
}

// ipv6Forward turns IPv6 forwarding on, first setting accept_ra=2 on the
// links that learn their default route from router advertisements, which
// a forwarding host otherwise ignores (moby#43466), recording the old
// values so the last down can put them back.
func (e *executor) ipv6Forward(raLinks []string) error {
	host, err := e.store.LoadHost()
	if err != nil {
		return err
	}
	for _, l := range raLinks {
		old, err := e.sys.Sysctl(sysctl.Link6(l, "accept_ra"))
		if err != nil || old == "2" {
			continue // gone since it was observed, or already right
		}
		if _, recorded := host.AcceptRA[l]; !recorded {
			if host.AcceptRA == nil {
				host.AcceptRA = map[string]string{}
			}
			host.AcceptRA[l] = old
			if err := e.store.SaveHost(host); err != nil {
				return err
			}
		}
		if err := e.sys.SetSysctl(sysctl.Link6(l, "accept_ra"), "2"); err != nil {
			return err
		}
	}
	old, err := e.sys.Sysctl(sysctl.IPv6Forward)
	if err != nil || old == "1" {
		return err
	}
	if host.IPv6Forward == "" {
		host.IPv6Forward = old
		if err := e.store.SaveHost(host); err != nil {
			return err
		}
	}
	return e.sys.SetSysctl(sysctl.IPv6Forward, "1")
}

// ipForward turns forwarding on, first recording the old value so the
// last down can put it back.
func (e *executor) ipForward() error {
	old, err := e.sys.IPForward()
	if err != nil || old == "1" {
		return err
	}
	host, err := e.store.LoadHost()
	if err != nil {
		return err
	}
	if host.IPForward == "" {
		host.IPForward = old
		if err := e.store.SaveHost(host); err != nil {
			return err
		}
	}
	return e.sys.SetIPForward("1")
}
