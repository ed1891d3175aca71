package project

import (
	"crypto/sha256"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/host"
	"github.com/nsrun/nsrun/state"
	"github.com/nsrun/nsrun/veth"
)

// DriftKind says what a drift is about, and so what up repairs for it.
type DriftKind string

const (
	DriftForwarding  DriftKind = "ip-forward"   // the host's forwarding is off
	DriftForwarding6 DriftKind = "ipv6-forward" // the host's IPv6 forwarding is off, in a project with IPv6
	DriftNamespace   DriftKind = "namespace"    // a namespace is missing
	DriftLink        DriftKind = "link"         // a pair, its addresses, route or route_localnet
	DriftEtc         DriftKind = "etc"          // nsrun's /etc/netns files
	DriftFirewall    DriftKind = "firewall"     // the project's rules, or the accepts a backend needs
	DriftZone        DriftKind = "zone"         // a link is not in nsrun's firewalld zone
	DriftProcess     DriftKind = "process"      // the supervisor or a process is not running
	DriftCgroup      DriftKind = "cgroup"       // a namespace's cgroup is missing, or its limits are not the record's
	DriftShaping     DriftKind = "shaping"      // the qdiscs of a namespace's link are not the record's
)

// Drift is one way the host differs from a project's record.
type Drift struct {
	Kind      DriftKind
	Namespace string // the namespace it concerns; "" for the project as a whole
	Message   string
}

// NetworkDrift compares a project's record with what was observed: the
// host's forwarding, each namespace with its pair and files (others are
// the other projects' records, whose namespaces on its external networks
// its hosts files name), and the firewall. It is pure.
func NetworkDrift(st *state.Record, others []*state.Record, obs host.Observed) []Drift {
	var out []Drift
	if obs.IPForward != "1" {
		out = append(out, Drift{Kind: DriftForwarding, Message: fmt.Sprintf("net.ipv4.ip_forward is %s: the host forwards nothing to the namespaces", obs.IPForward)})
	}
	if st.IPv6 && obs.IPv6Forward != "1" {
		out = append(out, Drift{Kind: DriftForwarding6, Message: fmt.Sprintf("net.ipv6.conf.all.forwarding is %s: the host forwards no IPv6 to the namespaces", obs.IPv6Forward)})
	}
	etc := EtcFiles(st, others, obs.HostResolv, obs.SystemdResolv)
	for _, ns := range st.Namespaces {
		if !obs.Namespaces[ns.Name] {
			out = append(out, Drift{Kind: DriftNamespace, Namespace: ns.Name, Message: fmt.Sprintf("namespace %s is missing", ns.Name)})
			continue
		}
		out = append(out, linkDrift(st.Project, ns, obs)...)
		for _, name := range etcDiffers(obs.Etc[ns.Name], etc[ns.Name].Sums) {
			out = append(out, Drift{Kind: DriftEtc, Namespace: ns.Name, Message: fmt.Sprintf("/etc/netns/%s/%s is missing or out of date", ns.Name, name)})
		}
		for _, m := range cgroupDrift(ns, obs) {
			out = append(out, Drift{Kind: DriftCgroup, Namespace: ns.Name, Message: m})
		}
	}
	return append(out, keptDrift(st, obs)...)
}

func linkDrift(project string, ns *state.Namespace, obs host.Observed) []Drift {
	if err := obs.PeerErrors[ns.Name]; err != nil {
		return []Drift{{Kind: DriftLink, Namespace: ns.Name, Message: fmt.Sprintf("namespace %s cannot be read: %v", ns.Name, err)}}
	}
	var host *veth.Link
	if l, ok := obs.Links[ns.Link]; ok {
		host = &l
	}
	var out []Drift
	for _, m := range veth.Drift(pair(ns, project), host, obs.RouteLocalnet[ns.Link], obs.Peers[ns.Name]) {
		out = append(out, Drift{Kind: DriftLink, Namespace: ns.Name, Message: m})
	}
	return out
}

// cgroupDrift says how a recorded namespace's cgroup differs from the
// record: missing (whole, in a hierarchy, or a leaf), or other limits.
func cgroupDrift(ns *state.Namespace, obs host.Observed) []string {
	if !ns.Cgroup {
		return nil
	}
	want := cgroupTree(ns)
	have, ok := obs.Cgroups[ns.Name]
	if !ok {
		return []string{fmt.Sprintf("the cgroup of %s is missing: its processes run without their limits (%s)", ns.Name, ns.Resources)}
	}
	var out []string
	if !have.Complete {
		out = append(out, fmt.Sprintf("the cgroup of %s is missing from a hierarchy of %s", ns.Name, obs.CgroupLayout))
	}
	if have.Limits != want.Limits {
		out = append(out, fmt.Sprintf("the limits of %s are %s; the record's are %s", ns.Name, have.Limits, want.Limits))
	}
	for _, leaf := range slices.Sorted(maps.Keys(want.Leaves)) {
		if got, ok := have.Leaves[leaf]; !ok {
			out = append(out, fmt.Sprintf("the cgroup of %s lacks its leaf %s", ns.Name, leaf))
		} else if got != want.Leaves[leaf] {
			out = append(out, fmt.Sprintf("the limits of %s/%s are %s; the record's are %s", ns.Name, leaf, got, want.Leaves[leaf]))
		}
	}
	return out
}

// etcDiffers names the files of want (name -> SHA-256 of the content) that
// a namespace lacks or holds in an older version of nsrun's; a file nsrun
// did not write is left alone.
func etcDiffers(have map[string]host.EtcFile, want map[string][32]byte) []string {
	var out []string
	for _, name := range host.EtcNames {
		sum, wanted := want[name]
		old, exists := have[name]
		if wanted && (!exists || (old.Ours && old.Sum != sum)) {
			out = append(out, name)
		}
	}
	return out
}

// etcSums hashes the content of each file.
func etcSums(files map[string]string) map[string][32]byte {
	out := map[string][32]byte{}
	for name, content := range files {
		out[name] = sha256.Sum256([]byte(content))
	}
	return out
}

// firewallDrift checks the project's rules in its backend, and its FORWARD
// accepts in every other backend whose FORWARD drops.
func firewallDrift(st *state.Record, tables map[forward.Backend]forward.Tables) []Drift {
	fw := st.ForwardProject()
	mine := tables[st.Backend]
	if mine == nil {
		return []Drift{{Kind: DriftFirewall, Message: fmt.Sprintf("%s, which holds the project's rules, is not installed", st.Backend)}}
	}
	var out []Drift
	for _, m := range mine.Drift(fw, false) {
		out = append(out, Drift{Kind: DriftFirewall, Message: m})
	}
	for _, b := range slices.Sorted(maps.Keys(tables)) {
		other := tables[b]
		if b == st.Backend || other.DropReason() == "" || len(other.Drift(fw, true)) == 0 {
			continue
		}
		out = append(out, Drift{Kind: DriftFirewall, Message: fmt.Sprintf(
			"the FORWARD chain of %s drops forwarded packets (%s) and lacks the FORWARD accepts of project %s: other machines cannot reach its published ports",
			b, other.DropReason(), st.Project)})
	}
	return out
}

// processDrift reports the supervisor or processes that are not running.
func processDrift(st *state.Record, r *Report) []Drift {
	if len(st.Plan().Processes) == 0 {
		return nil
	}
	if r.Supervisor == nil || r.Supervisor.State != "running" {
		return []Drift{{Kind: DriftProcess, Message: "the supervisor is not running"}}
	}
	var out []Drift
	for _, p := range r.Processes {
		var m string
		switch p.State {
		case "running":
			continue
		case "not started":
			m = fmt.Sprintf("process %s is not started", p.Name)
		case "gone":
			m = fmt.Sprintf("process %s (pid %d) is gone", p.Name, p.PID)
		default:
			m = fmt.Sprintf("process %s is %s (last exit status %d)", p.Name, p.State, p.ExitCode)
		}
		ns, _, _ := strings.Cut(p.Name, "/")
		out = append(out, Drift{Kind: DriftProcess, Namespace: ns, Message: m})
	}
	return out
}

// messages returns the messages of the drift of one namespace ("" for the
// project as a whole) of the given kinds.
func messages(drift []Drift, ns string, kinds ...DriftKind) []string {
	var out []string
	for _, d := range drift {
		if d.Namespace == ns && slices.Contains(kinds, d.Kind) {
			out = append(out, d.Message)
		}
	}
	return out
}

// kindMessages returns the messages of every drift of a kind.
func kindMessages(drift []Drift, kind DriftKind) []string {
	var out []string
	for _, d := range drift {
		if d.Kind == kind {
			out = append(out, d.Message)
		}
	}
	return out
}

func hasKind(drift []Drift, kind DriftKind) bool {
	return slices.ContainsFunc(drift, func(d Drift) bool { return d.Kind == kind })
}
