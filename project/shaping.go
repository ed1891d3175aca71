package project

import (
	"fmt"
	"slices"
	"strings"

	"github.com/nsrun/nsrun/host"
	"github.com/nsrun/nsrun/shape"
	"github.com/nsrun/nsrun/specs"
	"github.com/nsrun/nsrun/state"
)

// shaping is the qdiscs a recorded namespace's link has (see package shape).
func shaping(ns *state.Namespace) shape.Link { return shape.Want(ns.Bandwidth, ns.Netem) }

// shaped reports whether a namespace's link is shaped.
func shaped(ns *state.Namespace) bool { return !ns.Bandwidth.IsZero() || ns.Netem != nil }

// describeShaping is a namespace's shaping as the spec writes it.
func describeShaping(ns *state.Namespace) string {
	switch {
	case !shaped(ns):
		return "none"
	case ns.Netem == nil:
		return ns.Bandwidth.String()
	case ns.Bandwidth.IsZero():
		return "netem " + ns.Netem.String()
	}
	return ns.Bandwidth.String() + "; netem " + ns.Netem.String()
}

// ShapedLinks are the links whose qdiscs are read for records: those of
// their shaped namespaces, each once.
func ShapedLinks(records ...*state.Record) []shape.Where {
	var out []shape.Where
	for _, st := range records {
		if st == nil {
			continue
		}
		for _, ns := range st.Namespaces {
			if s := (shape.Where{Namespace: ns.Name, Link: ns.Link}); shaped(ns) && !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

// specShaping is a record of a spec's namespaces' links and shaping
// alone, for what up reads before it decides.
func specShaping(s *specs.Spec) *state.Record {
	out := &state.Record{}
	for _, ns := range s.Namespaces {
		out.Namespaces = append(out.Namespaces, &state.Namespace{Name: ns.Name, Link: ns.HostLink, Bandwidth: ns.Bandwidth, Netem: ns.Netem})
	}
	return out
}

// newQdiscKinds are the qdisc kinds want's shaping needs that recorded's
// does not use already (which this kernel has, then): those up tries
// before any change.
func newQdiscKinds(want, recorded *state.Record) []string {
	var used []string
	for _, ns := range recorded.ByName() {
		used = append(used, shaping(ns).Kinds()...)
	}
	var out []string
	for _, ns := range want.Namespaces {
		for _, k := range shaping(ns).Kinds() {
			if !slices.Contains(used, k) && !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	return out
}

// checkShaping refuses shaping the kernel cannot do: a qdisc kind it
// lacks, named by its module.
func checkShaping(want *state.Record, obs host.Observed) []error {
	var errs []error
	for _, ns := range want.Namespaces {
		for _, kind := range shaping(ns).Kinds() {
			err, tried := obs.QdiscKinds[kind]
			if !tried || err == nil {
				continue
			}
			key := "bandwidth"
			if kind == shape.Netem {
				key = "netem"
			}
			errs = append(errs, fmt.Errorf("namespace %q has %s, which needs the kernel's %s qdisc, and this kernel cannot make one (%v); load its module (modprobe %s), use a kernel built with it (CONFIG_NET_SCH_%s), or remove %s from the spec",
				ns.Name, key, kind, err, shape.Module(kind), strings.ToUpper(kind), key))
		}
	}
	return errs
}

// shapingDrift says how a recorded namespace's shaping differs from its
// record, where its link was read (and exists: a missing link is drift of
// its own).
func shapingDrift(ns *state.Namespace, obs host.Observed) []string {
	have, read := obs.Shaping[ns.Name]
	if !read {
		return nil
	}
	return shape.Drift(ns.Name, ns.Link, shaping(ns), have)
}

// shapingSteps shape the links whose qdiscs differ from want's, and
// those up (re)makes, and remove nsrun's qdiscs from the links whose
// shaping the spec dropped.
func shapingSteps(want, recorded *state.Record, steps []Step, obs host.Observed, drift []Drift) []Step {
	var out []Step
	had := recorded.ByName()
	for _, ns := range want.Namespaces {
		have, read := obs.Shaping[ns.Name]
		w := shaping(ns)
		linked := slices.ContainsFunc(steps, func(s Step) bool { return s.Op == OpLink && s.Namespace == ns.Name })
		needed := read && (have.Host.Ours() || have.Peer.Ours()) // nsrun's qdiscs, to go
		if !w.IsZero() {
			needed = !read || linked || !have.Host.Matches(w.Host) || !have.Peer.Matches(w.Peer)
		}
		if !needed {
			continue
		}
		var previous shape.Link
		if r := had[ns.Name]; r != nil {
			previous = shaping(r)
		}
		out = append(out, Step{Op: OpShape, Namespace: ns.Name, Links: []string{ns.Link}, Shaping: &w, PreviousShaping: &previous,
			What: describeShaping(ns), Repair: messages(drift, ns.Name, DriftShaping)})
	}
	return out
}
