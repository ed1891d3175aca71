package project

import (
	"fmt"
	"slices"
	"strings"

	"github.com/nsrun/nsrun/cgroup"
	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/host"
	"github.com/nsrun/nsrun/netns"
	"github.com/nsrun/nsrun/shape"
	"github.com/nsrun/nsrun/specs"
	"github.com/nsrun/nsrun/state"
	"github.com/nsrun/nsrun/veth"
)

// Op is what a step does; ops (apply.go) holds what each one means.
type Op string

const (
	OpIPForward       Op = "ip-forward"       // turn on IPv4 forwarding
	OpIPv6Forward     Op = "ipv6-forward"     // turn on IPv6 forwarding, keeping RA-learned default routes
	OpCreateNamespace Op = "create-namespace" // ip netns add
	OpLink            Op = "link"             // make the veth pair as described
	OpEtc             Op = "etc"              // write /etc/netns/NS/hosts and resolv.conf
	OpGrant           Op = "grant"            // publish who may exec into the namespace without root
	OpRemoveGrant     Op = "remove-grant"     // withdraw it
	OpForwards        Op = "forwards"         // publish the project's ports
	OpFlushUDP        Op = "flush-udp"        // drop stale UDP conntrack entries
	OpZone            Op = "zone"             // put the links in firewalld's zone for nsrun
	OpUnzone          Op = "unzone"           // take the links out of it
	OpKill            Op = "kill"             // stop every process inside the namespaces
	OpDeleteNamespace Op = "delete-namespace"
	OpShape           Op = "shape"          // put a namespace's shaping on both ends of its link, or change it in place
	OpCgroup          Op = "cgroup"         // make a namespace's cgroup with its limits, or change them in place
	OpRemoveCgroups   Op = "remove-cgroups" // remove the cgroups of namespaces whose processes are stopped
	OpRemoveEtc       Op = "remove-etc"     // remove nsrun's /etc/netns files
	OpRemoveForwards  Op = "remove-forwards"
	OpLinksGone       Op = "links-gone" // links go with their namespaces: wait for them, remove those that stay
	OpStarted         Op = "started"    // progress only: the supervisor runs the processes
	OpReady           Op = "ready"      // progress only: a process passed its ready check
)

// Step is one change to the system, as a plain value.
type Step struct {
	Op         Op
	Namespace  string
	Namespaces []string // OpKill
	Links      []string // OpLinksGone, OpZone, OpUnzone; OpIPv6Forward: the links to get accept_ra=2
	Pair       veth.Pair
	Forward    forward.Project
	Placement  forward.Placement
	Ports      []specs.PortRange
	Project    string
	// Previous is, for OpForwards, the project's forwards before the step
	// (nil when it had none), which a rollback puts back.
	Previous *Forwards
	// Created reports, for OpLink and OpEtc, that the link or files do
	// not exist yet, so that a rollback removes them.
	Created bool
	Files   map[string]string // OpEtc: file name in /etc/netns/NS -> content
	Process string            // OpReady: the process's name
	// Grant is, for OpGrant, the grant to publish (its namespace's identity
	// is read when it is); PreviousGrant the one it replaces, which a
	// rollback puts back.
	Grant, PreviousGrant *netns.Grant
	// Repair is the drift the step repairs, for its progress line.
	Repair []string
	// Cgroup is, for OpCgroup, the namespace's cgroup as it should be;
	// Adopt: the namespace exists without one, and its processes move in.
	Cgroup *cgroup.Tree
	Adopt  bool
	// Shaping is, for OpShape, the qdiscs of the link of the namespace
	// (Links[0] its host side), as the spec writes it in What; Previous
	// Shaping what the record had, which a rollback puts back.
	Shaping, PreviousShaping *shape.Link
	What                     string
}

// Forwards are a project's rules and where they go.
type Forwards struct {
	Project   forward.Project
	Placement forward.Placement
}

// String describes the step for progress lines.
func (s Step) String() string {
	d := string(s.Op)
	if k, ok := ops[s.Op]; ok {
		d = k.describe(s)
	}
	switch len(s.Repair) {
	case 0:
		return d
	case 1:
		return d + " (repaired: " + s.Repair[0] + ")"
	}
	return fmt.Sprintf("%s (repaired: %s, and %d more)", d, s.Repair[0], len(s.Repair)-1)
}

// PlanUp returns the steps that take the host from recorded (nil for a
// new project) to want, given the other projects' records, what was
// observed and how the host drifted from the record: only what is new,
// changed or drifted. Steps that create come first, removals of what the
// spec no longer has come last.
func PlanUp(want, recorded *state.Record, others []*state.Record, obs host.Observed, drift []Drift) []Step {
	var steps []Step
	if obs.IPForward != "1" {
		steps = append(steps, Step{Op: OpIPForward, Repair: messages(drift, "", DriftForwarding)})
	}
	if want.IPv6 && (obs.IPv6Forward != "1" || len(obs.NeedAcceptRA()) > 0) {
		steps = append(steps, Step{Op: OpIPv6Forward, Links: obs.NeedAcceptRA(), Repair: messages(drift, "", DriftForwarding6)})
	}
	for _, ns := range want.Namespaces {
		if !obs.Namespaces[ns.Name] {
			steps = append(steps, Step{Op: OpCreateNamespace, Namespace: ns.Name, Repair: messages(drift, ns.Name, DriftNamespace)})
		}
	}
	had := recorded.ByName()
	for _, ns := range want.Namespaces {
		r, p := had[ns.Name], pair(ns, want.Project)
		repair := messages(drift, ns.Name, DriftLink)
		if r == nil || pair(r, want.Project) != p || len(repair) > 0 || !obs.Namespaces[ns.Name] {
			_, exists := obs.Links[ns.Link]
			steps = append(steps, Step{Op: OpLink, Namespace: ns.Name, Pair: p, Created: !exists, Repair: repair})
		}
	}
	etc := EtcFiles(want, others, obs.HostResolv, obs.SystemdResolv)
	for _, ns := range want.Namespaces {
		if len(etcDiffers(obs.Etc[ns.Name], etc[ns.Name].Sums)) > 0 {
			steps = append(steps, Step{Op: OpEtc, Namespace: ns.Name, Files: etc[ns.Name].Files, Created: had[ns.Name] == nil,
				Repair: messages(drift, ns.Name, DriftEtc)})
		}
	}
	steps = append(steps, grantSteps(want, obs)...)
	steps = append(steps, cgroupSteps(want, obs, drift)...)
	if repair := messages(drift, "", DriftFirewall); recorded == nil || !sameForwards(recorded, want) || len(repair) > 0 {
		step := Step{Op: OpForwards, Forward: want.ForwardProject(), Placement: want.Placement(), Repair: repair}
		if recorded != nil {
			step.Previous = &Forwards{Project: recorded.ForwardProject(), Placement: recorded.Placement()}
		}
		steps = append(steps, step)
	}
	steps = append(steps, shapingSteps(want, recorded, steps, obs, drift)...)
	if f := obs.Host.Firewalld; f.Running {
		if unbound := f.Unbound(hostLinks(want)); len(unbound) > 0 {
			steps = append(steps, Step{Op: OpZone, Links: unbound, Repair: kindMessages(drift, DriftZone)})
		}
	}
	if changed := changedUDP(recorded, want); len(changed) > 0 {
		steps = append(steps, Step{Op: OpFlushUDP, Ports: changed})
	}
	if recorded != nil {
		wanted := want.ByName()
		for _, ns := range recorded.Namespaces {
			if wanted[ns.Name] == nil {
				steps = append(steps, removeNamespaces(recorded.Project, []*state.Namespace{ns}, obs.Host.Firewalld.Zoned())...)
			}
		}
	}
	return steps
}

// PlanDown returns the steps that remove everything recorded, each kind
// of object in bulk; zoned are the links firewalld has in nsrun's zone.
func PlanDown(recorded *state.Record, zoned []string) []Step {
	return removeNamespaces(recorded.Project, recorded.Namespaces, zoned, Step{Op: OpRemoveForwards, Project: recorded.Project})
}

// removeNamespaces stops the processes of the namespaces and removes the
// namespaces; then, side by side, their files and the extra steps (down
// removes the project's forwards there); then flushes their UDP forwards'
// conntrack entries, and waits for their links to go. Those of their links
// that are among zoned leave firewalld's zone. Namespaces go first
// and links last: the kernel removes the veth pairs of deleted namespaces
// in one batch, in the background, while the rest is removed (deleting
// each link would wait for the others).
func removeNamespaces(project string, namespaces []*state.Namespace, zoned []string, extra ...Step) []Step {
	var names, links, unzone []string
	for _, ns := range namespaces {
		names, links = append(names, ns.Name), append(links, ns.Link)
		if slices.Contains(zoned, ns.Link) {
			unzone = append(unzone, ns.Link)
		}
	}
	steps := []Step{{Op: OpKill, Namespaces: names}}
	for _, ns := range names {
		steps = append(steps, Step{Op: OpDeleteNamespace, Namespace: ns})
	}
	steps = append(steps, extra...)
	var cgroups []string
	for _, ns := range namespaces {
		if ns.Cgroup {
			cgroups = append(cgroups, ns.Name)
		}
	}
	if len(cgroups) > 0 {
		steps = append(steps, Step{Op: OpRemoveCgroups, Namespaces: cgroups})
	}
	for _, ns := range names {
		steps = append(steps, Step{Op: OpRemoveEtc, Namespace: ns})
	}
	for _, ns := range namespaces {
		if len(ns.ExecUIDs)+len(ns.ExecGIDs) > 0 {
			steps = append(steps, Step{Op: OpRemoveGrant, Namespace: ns.Name})
		}
	}
	if len(unzone) > 0 {
		steps = append(steps, Step{Op: OpUnzone, Links: unzone})
	}
	if udp := changedUDP(&state.Record{Project: project, Namespaces: namespaces}, &state.Record{}); len(udp) > 0 {
		steps = append(steps, Step{Op: OpFlushUDP, Ports: udp})
	}
	return append(steps, Step{Op: OpLinksGone, Links: links})
}

// cgroupSteps make the cgroups of the namespaces that are to have one and
// lack it, or whose limits or leaves differ from the record's: in place.
func cgroupSteps(want *state.Record, obs host.Observed, drift []Drift) []Step {
	var steps []Step
	for _, ns := range want.Namespaces {
		if !ns.Cgroup {
			continue
		}
		tree := cgroupTree(ns)
		have, exists := obs.Cgroups[ns.Name]
		if exists && have.Complete && have.Limits == tree.Limits && hasLeaves(have.Leaves, tree.Leaves) {
			continue
		}
		steps = append(steps, Step{Op: OpCgroup, Namespace: ns.Name, Cgroup: &tree, Created: !exists,
			Adopt: !exists && obs.Namespaces[ns.Name], Repair: messages(drift, ns.Name, DriftCgroup)})
	}
	return steps
}

// hasLeaves reports whether every leaf wanted is there with its limits.
// Others are left: a leaf of a process the spec dropped goes once the
// supervisor has stopped it, at the next change of the cgroup, or with it.
func hasLeaves(have, want map[string]specs.Resources) bool {
	for leaf, r := range want {
		if got, ok := have[leaf]; !ok || got != r {
			return false
		}
	}
	return true
}

// grantSteps publish the exec grants that are missing, differ, or name a
// namespace that is not the one there now (or is yet to be made), and
// withdraw those of namespaces that grant nobody any more.
func grantSteps(want *state.Record, obs host.Observed) []Step {
	var steps []Step
	for _, ns := range want.Namespaces {
		old, had := obs.Grants[ns.Name]
		if len(ns.ExecUIDs)+len(ns.ExecGIDs) == 0 {
			if had {
				steps = append(steps, Step{Op: OpRemoveGrant, Namespace: ns.Name})
			}
			continue
		}
		cookie, known := obs.NetnsCookies[ns.Name]
		g := &netns.Grant{Version: netns.GrantVersion, Namespace: ns.Name, UIDs: ns.ExecUIDs, GIDs: ns.ExecGIDs}
		if had && known && obs.Namespaces[ns.Name] && old.Version == g.Version && old.Cookie == cookie &&
			slices.Equal(old.UIDs, g.UIDs) && slices.Equal(old.GIDs, g.GIDs) {
			continue
		}
		step := Step{Op: OpGrant, Namespace: ns.Name, Grant: g}
		if had {
			step.PreviousGrant = &old
		}
		steps = append(steps, step)
	}
	return steps
}

// hostLinks lists the host-side links of a record.
func hostLinks(st *state.Record) []string {
	var out []string
	for _, ns := range st.Namespaces {
		out = append(out, ns.Link)
	}
	return out
}

// sameForwards reports whether two records publish the same rules in the
// same places: the rules are rendered from the firewall's model alone, so
// equal models make equal rules.
func sameForwards(a, b *state.Record) bool {
	if a.Backend != b.Backend || !slices.Equal(a.Accepts, b.Accepts) {
		return false
	}
	return slices.EqualFunc(a.ForwardProject().Namespaces, b.ForwardProject().Namespaces, func(x, y forward.Namespace) bool {
		return x.Name == y.Name && x.Link == y.Link && x.Address == y.Address && x.Address6 == y.Address6 && x.Egress == y.Egress &&
			slices.Equal(x.Networks, y.Networks) && slices.EqualFunc(x.Ports, y.Ports, specs.Port.Same)
	})
}

// changedUDP returns the host ports of UDP forwards in one state but not
// the other (in either direction), or whose target changed.
func changedUDP(a, b *state.Record) []specs.PortRange {
	udp := func(s *state.Record) map[string]specs.PortRange {
		out := map[string]specs.PortRange{}
		if s == nil {
			return out
		}
		for _, ns := range s.Namespaces {
			for _, p := range ns.Ports {
				if p.Protocol == specs.UDP {
					out[ns.Address.Addr().String()+"|"+p.Full()] = p.Published
				}
			}
		}
		return out
	}
	pa, pb := udp(a), udp(b)
	var out []specs.PortRange
	for _, m := range []struct{ x, y map[string]specs.PortRange }{{pa, pb}, {pb, pa}} {
		for k, r := range m.x {
			if _, same := m.y[k]; !same && !slices.Contains(out, r) {
				out = append(out, r)
			}
		}
	}
	slices.SortFunc(out, func(x, y specs.PortRange) int { return int(x.First) - int(y.First) })
	return out
}

func names(list []string) string {
	if len(list) <= 3 {
		return strings.Join(list, ", ")
	}
	return fmt.Sprintf("%s, ... (%d)", strings.Join(list[:3], ", "), len(list))
}
