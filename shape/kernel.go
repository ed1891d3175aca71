package shape

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"

	"github.com/nsrun/nsrun/internal/rtnl"
	"github.com/nsrun/nsrun/netns"
	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Where names a namespace and the host side of its link.
type Where struct{ Namespace, Link string }

// Read reads the shaping of namespaces' links as the kernel has it, by
// namespace: the root qdisc of each end, and the one under nsrun's
// netem. The host's qdiscs are dumped once for all the links (a request
// for one qdisc is answered only when echoed, and then sent to every tc
// listener as if it were new), and each namespace's, which has two links;
// buf is rtnl.BufferSize bytes at least. A link whose end (or namespace)
// is missing is left out: its own drift says so.
func Read(links []Where, peer string, buf []byte) (map[string]Link, error) {
	out := make(map[string]Link, len(links))
	if len(links) == 0 {
		return out, nil
	}
	host, err := rtnl.Dial(nil, buf)
	if err != nil {
		return nil, fmt.Errorf("reading the host's qdiscs: %w", err)
	}
	index := map[string]int{}
	var qdiscs []rtnl.Qdisc
	for _, w := range links {
		l, ok, err := host.Link(w.Link)
		if err != nil {
			host.Close()
			return nil, fmt.Errorf("looking up link %q: %w", w.Link, err)
		}
		if ok {
			index[w.Link] = l.Index
		}
	}
	if len(index) > 0 {
		qdiscs, err = host.Qdiscs()
	}
	host.Close()
	if err != nil {
		return nil, fmt.Errorf("reading the host's qdiscs: %w", err)
	}
	byLink := map[int][]rtnl.Qdisc{}
	for _, q := range qdiscs {
		byLink[q.Index] = append(byLink[q.Index], q)
	}
	for _, w := range links {
		i, ok := index[w.Link]
		if !ok {
			continue
		}
		hostSide, err := sideOf(byLink[i])
		if err != nil {
			return nil, fmt.Errorf("reading the qdiscs of %q: %w", w.Link, err)
		}
		peerSide, found, err := readPeer(w.Namespace, peer, buf)
		if err != nil {
			return nil, err
		}
		if found {
			out[w.Namespace] = Link{Host: hostSide, Peer: peerSide}
		}
	}
	return out, nil
}

// readPeer reads the qdiscs of the namespace side; false when the
// namespace or its link is missing.
func readPeer(ns, peer string, buf []byte) (Side, bool, error) {
	f, err := os.Open(netns.Path(ns))
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("opening netns %q: %w", ns, err)
	}
	defer f.Close()
	c, err := rtnl.Dial(f, buf)
	if err != nil {
		return nil, false, fmt.Errorf("netlink socket in netns %q: %w", ns, err)
	}
	defer c.Close()
	l, ok, err := c.Link(peer)
	if err != nil || !ok {
		return nil, false, wrap(err, "looking up %q in netns %q", peer, ns)
	}
	qdiscs, err := c.Qdiscs()
	if err != nil {
		return nil, false, fmt.Errorf("reading the qdiscs of netns %q: %w", ns, err)
	}
	side, err := sideOf(slices.DeleteFunc(qdiscs, func(q rtnl.Qdisc) bool { return q.Index != l.Index }))
	return side, true, wrap(err, "reading the qdiscs of %q in netns %q", peer, ns)
}

// sideOf picks, of one link's qdiscs, its root and, under nsrun's netem,
// the qdisc of its class. A link without qdiscs of nsrun's reads as its
// root alone (noqueue, or someone else's).
func sideOf(qdiscs []rtnl.Qdisc) (Side, error) {
	var side Side
	for _, r := range qdiscs {
		if r.Parent == rootParent {
			q, err := Parse(r)
			if err != nil {
				return nil, err
			}
			side = Side{q}
		}
	}
	if len(side) == 0 || side[0].Handle != RootHandle || side[0].Kind != Netem {
		return side, nil
	}
	for _, r := range qdiscs {
		if r.Handle == ChildHandle && r.Parent == ChildParent {
			q, err := Parse(r)
			return append(side, q), err
		}
	}
	return side, nil
}

// wrap says what failed; nil stays nil.
func wrap(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf(format+": %w", append(args, err)...)
}

// Ensure gives each end of a namespace's link the qdiscs of want, read
// first: a qdisc of the same kind and place is changed in place (its
// queue and the link stay), one of another kind is replaced, and nsrun's
// are removed from an end that should have none. Someone else's root
// qdisc on an end that should be shaped is replaced. Both links must
// exist.
func Ensure(ns, hostLink, peer string, want Link) error {
	read, err := Read([]Where{{ns, hostLink}}, peer, make([]byte, rtnl.BufferSize))
	if err != nil {
		return err
	}
	have, found := read[ns]
	if !found {
		return fmt.Errorf("shaping the link of namespace %q: link %q or its peer %q is missing", ns, hostLink, peer)
	}
	hh, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink handle: %w", err)
	}
	defer hh.Close()
	if err := ensureSide(hh, hostLink, want.Host, have.Host); err != nil {
		return err
	}
	nh, err := netns.Netlink(ns)
	if err != nil {
		return err
	}
	defer nh.Close()
	if err := ensureSide(nh, peer, want.Peer, have.Peer); err != nil {
		return fmt.Errorf("netns %q: %w", ns, err)
	}
	return nil
}

func ensureSide(h *netlink.Handle, name string, want, have Side) error {
	if have.Matches(want) {
		return nil
	}
	link, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("looking up link %q: %w", name, err)
	}
	index := link.Attrs().Index
	// nsrun's qdiscs of another shape go first: the kernel changes a qdisc
	// in place only for the same kind.
	if have.Ours() && (len(want) != len(have) || slices.ContainsFunc(want, func(q Qdisc) bool { return !sameKindAt(q, have) })) {
		if err := deleteRoot(h, index); err != nil {
			return fmt.Errorf("removing the qdiscs of %q: %w", name, err)
		}
	}
	for _, q := range want {
		if err := h.QdiscReplace(kernelQdisc(index, q)); err != nil {
			if errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("adding a %s qdisc to %q: this kernel has no %s (%w); load it (modprobe %s), or remove it from the spec", q.Kind, name, Module(q.Kind), err, Module(q.Kind))
			}
			return fmt.Errorf("setting %s on %q: %w", q, name, err)
		}
	}
	if len(want) == 0 && have.Ours() {
		if err := deleteRoot(h, index); err != nil {
			return fmt.Errorf("removing the qdiscs of %q: %w", name, err)
		}
	}
	return nil
}

// sameKindAt reports whether have holds a qdisc of q's kind at q's place.
func sameKindAt(q Qdisc, have Side) bool {
	return slices.ContainsFunc(have, func(h Qdisc) bool { return h.Kind == q.Kind && h.Handle == q.Handle && h.Parent == q.Parent })
}

// deleteRoot removes nsrun's root qdisc (and what is under it); the
// kernel puts the link's default back. One already gone is no error.
func deleteRoot(h *netlink.Handle, index int) error {
	q := &netlink.GenericQdisc{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: index, Handle: RootHandle, Parent: netlink.HANDLE_ROOT}}
	if err := h.QdiscDel(q); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENODEV) {
		return err
	}
	return nil
}

// kernelQdisc is q for the netlink library, in the kernel's units.
func kernelQdisc(index int, q Qdisc) netlink.Qdisc {
	attrs := netlink.QdiscAttrs{LinkIndex: index, Handle: q.Handle, Parent: q.Parent}
	if q.Kind == Netem {
		return &netlink.Netem{QdiscAttrs: attrs, Latency: q.Latency, Jitter: q.Jitter, Loss: q.Loss, Limit: q.Limit}
	}
	return &netlink.Tbf{QdiscAttrs: attrs, Rate: q.Rate, Buffer: q.Buffer, Limit: q.Limit}
}

// Remove removes nsrun's qdiscs from both ends of a namespace's link;
// ends that have none, or are gone, are no error.
func Remove(ns, hostLink, peer string) error { return Ensure(ns, hostLink, peer, Link{}) }

// Supported tries each qdisc kind in a network namespace of its own,
// made for the try and gone after it, and says for each kind the kernel
// lacks why (nil for those it has). Nothing on the host changes: the
// namespace has no name, and goes when the try closes it.
func Supported(kinds []string) (map[string]error, error) {
	try, err := newNetns()
	if err != nil {
		return nil, fmt.Errorf("making a network namespace to try qdiscs in: %w", err)
	}
	defer try.Close()
	h, err := netlink.NewHandleAt(try, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink handle in a new network namespace: %w", err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return nil, fmt.Errorf("looking up lo in a new network namespace: %w", err)
	}
	out := map[string]error{}
	for _, kind := range kinds {
		q := Qdisc{Kind: kind, Handle: RootHandle, Parent: rootParent, Limit: NetemLimit}
		if kind == TBF {
			q = tbf(1e6, RootHandle, rootParent)
		}
		err := h.QdiscReplace(kernelQdisc(lo.Attrs().Index, q))
		if err == nil {
			err = deleteRoot(h, lo.Attrs().Index)
		}
		out[kind] = err
	}
	return out, nil
}

// newNetns makes a network namespace and returns a handle to it, on a
// thread that goes back to its own namespace before anything else runs
// on it. A thread left in the new namespace, to end with its goroutine,
// was seen to stay in the process (the main thread, which the runtime
// never ends, is one it may be), and the process then read iptables-legacy
// as having no tables. A thread that cannot go back stays locked, and ends
// with its goroutine.
func newNetns() (vnetns.NsHandle, error) {
	type result struct {
		ns  vnetns.NsHandle
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := vnetns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		ns, err := vnetns.Get()
		if serr := vnetns.Set(orig); serr != nil {
			if err == nil {
				ns.Close()
			}
			done <- result{err: fmt.Errorf("going back to the thread's network namespace: %w", serr)}
			return // locked: the runtime ends the thread with this goroutine
		}
		runtime.UnlockOSThread()
		done <- result{ns: ns, err: err}
	}()
	r := <-done
	return r.ns, r.err
}
