package project

import (
	"fmt"
	"slices"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/specs"
	"github.com/nsrun/nsrun/veth"
)

// Op is what a step does.
type Op string

const (
	OpIPForward       Op = "ip-forward"       // turn on IPv4 forwarding
	OpCreateNamespace Op = "create-namespace" // ip netns add
	OpLink            Op = "link"             // make the veth pair as described
	OpForwards        Op = "forwards"         // publish the project's ports
	OpFlushUDP        Op = "flush-udp"        // drop stale UDP conntrack entries
	OpKill            Op = "kill"             // stop every process inside a namespace
	OpDeleteLink      Op = "delete-link"      // remove a link now
	OpLinkGone        Op = "link-gone"        // a link goes with its namespace: wait for it, remove it if it stays
	OpDeleteNamespace Op = "delete-namespace"
	OpRemoveForwards  Op = "remove-forwards"
	OpEtc             Op = "etc"        // write /etc/netns/NS/hosts and resolv.conf
	OpRemoveEtc       Op = "remove-etc" // remove them
	OpStarted         Op = "started"    // progress only: the supervisor runs the processes
	OpReady           Op = "ready"      // progress only: a process passed its ready check
)

// Step is one change to the system, as a plain value.
type Step struct {
	Op        Op
	Namespace string
	Link      string
	Pair      veth.Pair
	Firewall  forward.Project
	Ports     []specs.PortRange
	Project   string
	// Previous is, for OpForwards, the project's forwards before the step
	// (nil when it had none), which a rollback puts back.
	Previous *forward.Project
	// Created reports, for OpLink and OpEtc, that the link or files do
	// not exist yet, so that a rollback removes them.
	Created bool
	Files   map[string]string // OpEtc: file name in /etc/netns/NS -> content
	Process string            // OpReady: the process's name
}

// String describes the step for progress lines.
func (s Step) String() string {
	switch s.Op {
	case OpIPForward:
		return "IPv4 forwarding on"
	case OpCreateNamespace:
		return fmt.Sprintf("namespace %s created", s.Namespace)
	case OpLink:
		return fmt.Sprintf("link %s <-> %s:eth0 (%s, %s)", s.Pair.Host, s.Namespace, s.Pair.HostAddr, s.Pair.PeerAddr)
	case OpForwards:
		return fmt.Sprintf("forwards of project %s in place", s.Firewall.Name)
	case OpFlushUDP:
		return fmt.Sprintf("stale UDP conntrack entries for ports %v removed", s.Ports)
	case OpKill:
		return fmt.Sprintf("processes in namespace %s stopped", s.Namespace)
	case OpDeleteLink, OpLinkGone:
		return fmt.Sprintf("link %s removed", s.Link)
	case OpDeleteNamespace:
		return fmt.Sprintf("namespace %s removed", s.Namespace)
	case OpRemoveForwards:
		return fmt.Sprintf("forwards of project %s removed", s.Project)
	case OpEtc:
		return fmt.Sprintf("/etc/netns/%s written", s.Namespace)
	case OpRemoveEtc:
		return fmt.Sprintf("/etc/netns/%s removed", s.Namespace)
	case OpStarted:
		return fmt.Sprintf("processes of project %s started", s.Project)
	case OpReady:
		return fmt.Sprintf("process %s/%s ready", s.Namespace, s.Process)
	}
	return string(s.Op)
}

// PlanUp returns the steps that take the host from recorded (nil for a
// new project) to want. Steps that create come first, removals of what
// the spec no longer has come last.
func PlanUp(want, recorded *State, obs Observed) ([]Step, error) {
	fw := want.Firewall()
	steps := []Step{{Op: OpIPForward}}
	for _, ns := range want.Namespaces {
		if !slices.Contains(obs.Namespaces, ns.Name) {
			steps = append(steps, Step{Op: OpCreateNamespace, Namespace: ns.Name})
		}
	}
	for _, ns := range want.Namespaces {
		_, exists := obs.Links[ns.Link]
		steps = append(steps, Step{Op: OpLink, Namespace: ns.Name, Pair: ns.Pair(want.Project), Created: !exists})
	}
	files := EtcFiles(want, obs.HostResolv, obs.SystemdResolv)
	for _, ns := range want.Namespaces {
		steps = append(steps, Step{Op: OpEtc, Namespace: ns.Name, Files: files, Created: recorded.Namespace(ns.Name) == nil})
	}
	step := Step{Op: OpForwards, Firewall: fw}
	if recorded != nil {
		prev := recorded.Firewall()
		step.Previous = &prev
	}
	steps = append(steps, step)
	if changed := changedUDP(recorded, want); len(changed) > 0 {
		steps = append(steps, Step{Op: OpFlushUDP, Ports: changed})
	}
	if recorded != nil {
		for _, ns := range recorded.Namespaces {
			if want.Namespace(ns.Name) == nil {
				steps = append(steps, removeNamespace(ns)...)
			}
		}
	}
	return steps, nil
}

// PlanDown returns the steps that remove everything recorded.
func PlanDown(recorded *State) []Step {
	var steps []Step
	for _, ns := range recorded.Namespaces {
		steps = append(steps, Step{Op: OpKill, Namespace: ns.Name})
	}
	steps = append(steps, Step{Op: OpRemoveForwards, Project: recorded.Project})
	if udp := changedUDP(recorded, &State{}); len(udp) > 0 {
		steps = append(steps, Step{Op: OpFlushUDP, Ports: udp})
	}
	// Namespaces first: the kernel then removes their veth pairs in one
	// batch, where deleting each link would wait for the others.
	for _, ns := range recorded.Namespaces {
		steps = append(steps, Step{Op: OpDeleteNamespace, Namespace: ns.Name}, Step{Op: OpRemoveEtc, Namespace: ns.Name})
	}
	for _, ns := range recorded.Namespaces {
		steps = append(steps, Step{Op: OpLinkGone, Namespace: ns.Name, Link: ns.Link})
	}
	return steps
}

func removeNamespace(ns *NamespaceState) []Step {
	return []Step{
		{Op: OpKill, Namespace: ns.Name},
		{Op: OpDeleteNamespace, Namespace: ns.Name},
		{Op: OpRemoveEtc, Namespace: ns.Name},
		{Op: OpLinkGone, Namespace: ns.Name, Link: ns.Link},
	}
}

// changedUDP returns the host ports of UDP forwards in one state but not
// the other (in either direction), or whose target changed.
func changedUDP(a, b *State) []specs.PortRange {
	udp := func(s *State) map[string]specs.PortRange {
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
