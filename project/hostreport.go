package project

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/forward/iptables"
	"github.com/nsrun/nsrun/host"
	"github.com/nsrun/nsrun/hostfw"
	"github.com/nsrun/nsrun/internal/quote"
	"github.com/nsrun/nsrun/state"
)

// HostReport is what nsrun found of the host's own firewalls, what it did
// about each, and whether nsrun's traffic passes them all.
type HostReport struct {
	Passes   bool      `json:"passes"`
	Findings []Finding `json:"findings"`
	// What was read, for scripts.
	Firewalld *hostfw.Firewalld `json:"firewalld,omitempty"` // when it runs
	UFW       *hostfw.UFW       `json:"ufw,omitempty"`       // when installed
	Uplinks   []string          `json:"uplinks"`
}

// Finding is one firewall of the host, as it bears on nsrun's traffic.
type Finding struct {
	Firewall string `json:"firewall"` // firewalld, ufw, docker, iptables-legacy, nftables
	Found    string `json:"found"`
	Action   string `json:"action"` // what nsrun does about it
	Passes   bool   `json:"passes"` // nsrun's traffic passes it
	// Fix is the command that lets nsrun's links through, where nsrun
	// cannot do it itself.
	Fix string `json:"fix,omitempty"`
}

// Warnings are the findings nsrun cannot fix, each with its command, as
// up prints them.
func (h HostReport) Warnings() []string {
	var out []string
	for _, f := range h.Findings {
		if !f.Passes && f.Fix != "" {
			out = append(out, fmt.Sprintf("%s: %s; %s; to let nsrun's links through: %s", f.Firewall, f.Found, f.Action, f.Fix))
		}
	}
	return out
}

// AssessHost judges the host's firewalls for the projects' traffic. It is
// pure.
func AssessHost(obs host.Observed, states []*state.Record) HostReport {
	var links []string
	used := map[forward.Backend]bool{}
	for _, st := range states {
		links = append(links, hostLinks(st)...)
		used[st.Backend] = true
	}
	h := HostReport{Uplinks: append([]string{}, obs.Host.Uplinks...), Findings: []Finding{}}
	if f := obs.Host.Firewalld; f.Running {
		h.Firewalld = &f
		h.Findings = append(h.Findings, firewalldFindings(f, links, obs.Host.Uplinks)...)
	}
	if u := obs.Host.UFW; u.Installed {
		h.UFW = &u
	}
	for _, b := range slices.Sorted(maps.Keys(obs.Tables)) {
		if t, ok := obs.Tables[b].(iptables.Tables); ok {
			h.Findings = append(h.Findings, iptablesFindings(b, t, states, used[b])...)
		}
	}
	for _, c := range obs.Host.NFT {
		h.Findings = append(h.Findings, nftFinding(c))
	}
	h.Passes = !slices.ContainsFunc(h.Findings, func(f Finding) bool { return !f.Passes })
	return h
}

func firewalldFindings(f hostfw.Firewalld, links, uplinks []string) []Finding {
	var zones []string
	for _, u := range uplinks {
		z := quote.Name(f.ZoneOf(u))
		if f.Interfaces[u] == "" {
			z += " (the default zone)"
		}
		zones = append(zones, fmt.Sprintf("%s in zone %s", quote.Name(u), z))
	}
	found := fmt.Sprintf("firewalld %s runs (backend %s)", f.Version, f.Backend)
	if len(zones) > 0 {
		found += "; uplink " + strings.Join(zones, ", ")
	}
	fd := Finding{Firewall: "firewalld", Found: found, Passes: true}
	switch unbound := f.Unbound(links); {
	case len(links) == 0:
		fd.Action = fmt.Sprintf("none yet: up puts nsrun's links in zone %s", hostfw.Zone)
	case len(unbound) == 0:
		fd.Action = fmt.Sprintf("nsrun's links (%d) are in zone %s at runtime: forwarding to and from the namespaces passes firewalld", len(links), hostfw.Zone)
	default:
		fd.Passes = false
		fd.Action = fmt.Sprintf("%s not in zone %s: firewalld rejects what those namespaces send through the host until the keeper (or 'sudo nsrun up') puts them there", names(unbound), hostfw.Zone)
	}
	out := []Finding{fd}
	if f.StrictForwardPorts {
		out = append(out, Finding{Firewall: "firewalld", Found: "StrictForwardPorts=yes: firewalld drops DNAT'd traffic that its own forward ports did not make",
			Action: "nsrun cannot change firewalld's configuration", Passes: len(links) == 0,
			Fix: "set StrictForwardPorts=no in /etc/firewalld/firewalld.conf, then firewall-cmd --reload"})
	}
	return out
}

// iptablesFindings judges one iptables backend: ufw's and Docker's chains
// in it, and its FORWARD chain.
func iptablesFindings(b forward.Backend, snap iptables.Tables, states []*state.Record, publishes bool) []Finding {
	var out []Finding
	if snap.HasChain("filter", "ufw-before-forward") {
		out = append(out, Finding{Firewall: "ufw", Found: fmt.Sprintf("ufw is active in %s (FORWARD policy %s)", b, snap.Policy("filter", "FORWARD")),
			Action: "nothing to configure: nsrun's accepts come before ufw's rules", Passes: true})
	}
	var docker []string
	for _, c := range []string{"DOCKER", "DOCKER-USER", "DOCKER-ISOLATION-STAGE-1"} {
		if snap.HasChain("filter", c) {
			docker = append(docker, c)
		}
	}
	if len(docker) > 0 {
		out = append(out, Finding{Firewall: "docker", Found: fmt.Sprintf("Docker's chains in %s (%s)", b, strings.Join(docker, ", ")),
			Action: "nothing to configure: Docker's FORWARD rules leave other links' traffic alone", Passes: true})
	}
	reason := snap.DropReason()
	if reason == "" {
		return out
	}
	fd := Finding{Firewall: string(b), Found: fmt.Sprintf("FORWARD drops (%s)", reason), Passes: true}
	switch {
	case len(states) == 0:
		fd.Action = "none yet: up puts nsrun's accepts first in FORWARD"
	case publishes:
		fd.Action = "nsrun's accepts are first in FORWARD, with its rules"
		if drop := snap.DropsBeforeNsrun(); drop != "" {
			fd.Found = fmt.Sprintf("FORWARD drops before nsrun's accepts (%s)", drop)
			fd.Action, fd.Passes = "nsrun does not move other programs' rules", false
			fd.Fix = fmt.Sprintf("%s -D FORWARD -m comment --comment nsrun -j %s (the keeper or 'sudo nsrun up' puts it back first)", b, iptables.ChainForward)
		}
	default:
		var lacking []string
		for _, st := range states {
			if st.Backend != b && len(snap.Drift(st.ForwardProject(), true)) > 0 {
				lacking = append(lacking, st.Project)
			}
		}
		fd.Action = "nsrun's FORWARD accepts for its links are in place"
		if len(lacking) > 0 {
			fd.Passes = false
			fd.Action = fmt.Sprintf("the FORWARD accepts of %s are missing until the keeper (or 'sudo nsrun up') adds them", projectsPhrase(lacking))
		}
	}
	return append(out, fd)
}

func nftFinding(c hostfw.Chain) Finding {
	fd := Finding{Firewall: "nftables", Action: "nsrun does not change other programs' tables", Fix: c.Fix()}
	switch c.Hook {
	case "forward":
		fd.Found = fmt.Sprintf("chain %s (hook forward) ends in %s: it drops what goes to and from the namespaces", c.Where(), c.Ends)
		fd.Passes = c.AcceptsLinks
	default:
		fd.Found = fmt.Sprintf("chain %s (hook input) ends in %s: it may drop what the namespaces send to the host", c.Where(), c.Ends)
		fd.Passes = c.AcceptsLinks || c.AcceptsEstablished
	}
	if fd.Passes {
		fd.Action, fd.Fix = "it accepts nsrun's links (or established connections) first", ""
	}
	return fd
}

func projectsPhrase(names []string) string {
	if len(names) == 1 {
		return "project " + names[0]
	}
	return "projects " + strings.Join(names, ", ")
}
