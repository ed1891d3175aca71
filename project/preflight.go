package project

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/nsrun/nsrun/cgroup"
	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/host"
	"github.com/nsrun/nsrun/internal/overlap"
	"github.com/nsrun/nsrun/internal/quote"
	"github.com/nsrun/nsrun/specs"
	"github.com/nsrun/nsrun/state"
	"github.com/nsrun/nsrun/veth"
)

// Preflight checks, before any change, that want can be built on this
// host next to the other projects. It reports every conflict at once.
func Preflight(want, recorded *state.Record, others []*state.Record, obs host.Observed) error {
	var errs []error
	near := newNeighbours(others, foreignPrefixes(meeting(want, obs.Prefixes), obs, others))
	if want.IPv6 && obs.IPv6Forward == "" {
		errs = append(errs, errors.New("the spec has ipv6: true, but IPv6 is off on this host (net.ipv6.conf.all.disable_ipv6=1, or a kernel without IPv6); turn it on with 'sudo sysctl -w net.ipv6.conf.all.disable_ipv6=0' or remove ipv6: true"))
	}
	if want.IPv6 {
		errs = append(errs, checkIP6Tables(want, obs)...)
	}
	had := recorded.ByName()
	for _, ns := range want.Namespaces {
		errs = append(errs, checkNamespace(want.Project, ns, had[ns.Name] != nil, others, obs, near)...)
	}
	errs = append(errs, checkPorts(want, had, others, obs.Listeners)...)
	errs = append(errs, checkResources(want, obs)...)
	errs = append(errs, checkShaping(want, obs)...)
	return errors.Join(errs...)
}

// checkResources refuses limits this host cannot enforce: a controller
// it lacks, or more CPUs than it has (as Docker does).
func checkResources(want *state.Record, obs host.Observed) []error {
	var errs []error
	cpus := runtime.NumCPU()
	for _, ns := range want.Namespaces {
		if !ns.Cgroup {
			continue
		}
		limits := []specs.Resources{ns.Resources}
		for _, p := range ns.Run {
			limits = append(limits, p.Resources)
		}
		for _, c := range cgroup.Needed(limits...) {
			if !obs.Controllers[c] {
				errs = append(errs, fmt.Errorf("namespace %q has resource limits that need the %s cgroup controller, which this host lacks (%s%s); enable it, or remove the limit from the spec",
					ns.Name, c, obs.CgroupLayout, missingWhere(obs.CgroupLayout, c)))
			}
		}
		for _, r := range limits {
			if r.CPUs > float64(cpus) {
				errs = append(errs, fmt.Errorf("namespace %q asks for cpus %s, more than the %d this host has; give at most %d", ns.Name, specs.FormatCPUs(r.CPUs), cpus, cpus))
				break
			}
		}
	}
	return errs
}

// missingWhere says where a controller would be.
func missingWhere(l cgroup.Layout, controller string) string {
	if l.V2 {
		return fmt.Sprintf(": %s/cgroup.controllers does not list it", l.Root)
	}
	return fmt.Sprintf(": no hierarchy is mounted at %s/%s", l.Root, controller)
}

// checkNamespace checks one namespace the project wants; recorded: the
// project's record has it.
func checkNamespace(project string, ns *state.Namespace, recorded bool, others []*state.Record, obs host.Observed, near *neighbours) []error {
	var errs []error
	mine := recorded || obs.Alias(ns.Link) == veth.Label(project, ns.Name)
	if obs.Namespaces[ns.Name] && !mine {
		if owner := ownerOf(others, ns.Name); owner != "" {
			errs = append(errs, fmt.Errorf("namespace %q belongs to nsrun project %q; choose another name, or take that project down with 'sudo nsrun down -p %s'", ns.Name, owner, owner))
		} else {
			errs = append(errs, fmt.Errorf("namespace %q already exists and was not made by project %q; choose another name, or remove it with 'sudo ip netns del %s' if nothing needs it", ns.Name, project, ns.Name))
		}
	}
	if l, taken := obs.Links[ns.Link]; taken && l.Alias != veth.Label(project, ns.Name) {
		alias := l.Alias
		errs = append(errs, fmt.Errorf("interface %q, which namespace %q needs on the host, already exists (alias %q); rename the namespace or remove the interface", ns.Link, ns.Name, alias))
	}
	link := ns.Address.Masked()
	for _, i := range near.host.Of(link) {
		hp := near.foreign[i]
		errs = append(errs, fmt.Errorf("namespace %q's subnet %s overlaps the host's %s %s on %s; give it another address, or set subnet: to a free range", ns.Name, link, hp.What, hp.Prefix, quote.Name(hp.Link)))
	}
	for _, i := range near.v4.Of(link) {
		o := near.others[i]
		errs = append(errs, fmt.Errorf("namespace %q's subnet %s overlaps namespace %q of project %q (%s); give it another address or subnet", ns.Name, link, o.ns.Name, o.project, o.ns.Address.Masked()))
	}
	if !ns.Address6.IsValid() {
		return errs
	}
	link6 := ns.Address6.Masked()
	for _, i := range near.host.Of(link6) {
		hp := near.foreign[i]
		errs = append(errs, fmt.Errorf("namespace %q's IPv6 subnet %s overlaps the host's %s %s on %s; give it another address6, or set subnet6: to a free range", ns.Name, link6, hp.What, hp.Prefix, quote.Name(hp.Link)))
	}
	for _, i := range near.v6.Of(link6) {
		o := near.others[i]
		errs = append(errs, fmt.Errorf("namespace %q's IPv6 subnet %s overlaps namespace %q of project %q (%s); give it another address6 or subnet6", ns.Name, link6, o.ns.Name, o.project, o.ns.Address6.Masked()))
	}
	return errs
}

// neighbours is what a project's namespaces must not overlap, indexed:
// the host's own prefixes and the other projects' namespaces.
type neighbours struct {
	foreign []veth.HostPrefix
	host    *overlap.Index // of foreign
	others  []otherNamespace
	v4, v6  *overlap.Index // of others' addresses (an invalid one where none)
}

type otherNamespace struct {
	project string
	ns      *state.Namespace
}

func newNeighbours(others []*state.Record, foreign []veth.HostPrefix) *neighbours {
	n := &neighbours{foreign: foreign}
	var host, v4, v6 []netip.Prefix
	for _, hp := range foreign {
		host = append(host, hp.Prefix)
	}
	for _, o := range others {
		for _, ns := range o.Namespaces {
			n.others = append(n.others, otherNamespace{project: o.Project, ns: ns})
			v4 = append(v4, ns.Address)
			v6 = append(v6, ns.Address6)
		}
	}
	n.host, n.v4, n.v6 = overlap.New(host...), overlap.New(v4...), overlap.New(v6...)
	return n
}

// foreignPrefixes are those of the prefixes (the host's) that are not
// nsrun's: neither on a queried link (the project's own) that carries an
// nsrun label, nor the subnet of another project's namespace, which the
// checks against the other projects' records cover (by their records:
// naming every link of a host with thousands of them costs more than the
// rest of an up).
func foreignPrefixes(prefixes []veth.HostPrefix, obs host.Observed, others []*state.Record) []veth.HostPrefix {
	theirs := map[netip.Prefix]bool{}
	for _, o := range others {
		for _, ns := range o.Namespaces {
			theirs[ns.Address.Masked()] = true
			if ns.Address6.IsValid() {
				theirs[ns.Address6.Masked()] = true
			}
		}
	}
	var out []veth.HostPrefix
	for _, p := range prefixes {
		if _, _, ours := veth.ParseLabel(obs.Links[p.Link].Alias); !ours && !theirs[p.Prefix] {
			out = append(out, p)
		}
	}
	return out
}

// meeting are those of the host's prefixes that overlap a namespace of
// want: the only ones its checks can meet. Beside thousands of other
// namespaces the host has tens of thousands of prefixes, which an index
// of them all took longer to build than the rest of an unchanged up's
// checks.
func meeting(want *state.Record, prefixes []veth.HostPrefix) []veth.HostPrefix {
	var mine []netip.Prefix
	for _, ns := range want.Namespaces {
		mine = append(mine, ns.Address, ns.Address6)
	}
	x := overlap.New(mine...)
	var out []veth.HostPrefix
	for _, p := range prefixes {
		if len(x.Of(p.Prefix)) > 0 {
			out = append(out, p)
		}
	}
	return out
}

// foreign is foreignPrefixes' prefixes alone, of all the host's, found
// when first asked for (Desire).
func foreign(obs host.Observed, others []*state.Record) func() []netip.Prefix {
	return sync.OnceValue(func() []netip.Prefix {
		var out []netip.Prefix
		for _, p := range foreignPrefixes(obs.Prefixes, obs, others) {
			out = append(out, p.Prefix)
		}
		return out
	})
}

// checkIP6Tables reports an iptables backend of the project's placement
// whose ip6tables of the same flavour is missing: nsrun never mixes
// flavours (a packet meets both, and a project's rules are in one).
func checkIP6Tables(want *state.Record, obs host.Observed) []error {
	var errs []error
	for _, b := range append([]forward.Backend{want.Backend}, want.Accepts...) {
		if t, ok := obs.Tables[b]; ok && !t.IPv6() {
			errs = append(errs, fmt.Errorf("the spec has ipv6: true and the project's rules go to %s, but %s is not installed (nsrun does not mix iptables flavours); install it (apt-get install iptables) or use --firewall nftables",
				b, "ip6"+strings.TrimPrefix(string(b), "ip")))
		}
	}
	return errs
}

func ownerOf(states []*state.Record, ns string) string {
	for _, s := range states {
		if s.Namespace(ns) != nil {
			return s.Project
		}
	}
	return ""
}

// checkPorts reports host ports another project publishes, and new host
// ports that a host process is bound to (DNAT would steal its traffic);
// recorded are the project's recorded namespaces by name.
func checkPorts(want *state.Record, recorded map[string]*state.Namespace, others []*state.Record, listeners []forward.Listener) []error {
	var errs []error
	published := newPortIndex(others)
	for _, ns := range want.Namespaces {
		var had []specs.Port
		if r := recorded[ns.Name]; r != nil {
			had = r.Ports
		}
		for _, p := range ns.Ports {
			if o, ok := published.first(p); ok {
				errs = append(errs, fmt.Errorf("host port %s/%s is already published by project %q (namespace %q); publish another port, or take that project down with 'sudo nsrun down -p %s'", p.Published, p.Protocol, o.project, o.ns, o.project))
			}
			if slices.ContainsFunc(had, p.Same) {
				continue // published by this project already: its traffic is ours
			}
			for _, l := range listeners {
				if l.Blocks(p) {
					errs = append(errs, fmt.Errorf("port %d/%s is already in use by %s on the host; stop it or publish another port", l.Port, l.Protocol, l))
				}
			}
		}
	}
	return errs
}

// portIndex holds the other projects' published ports by protocol and
// block of host ports, so that a port is compared with those of its
// blocks, not with every port of the host.
type portIndex struct {
	ports  []publishedPort
	blocks map[portBlock][]int // indexes into ports, in order
}

type publishedPort struct {
	project, ns string
	port        specs.Port
}

type portBlock struct {
	protocol specs.Protocol
	block    uint16 // port / portBlockSize
}

const portBlockSize = 64

func newPortIndex(others []*state.Record) *portIndex {
	x := &portIndex{blocks: map[portBlock][]int{}}
	for _, o := range others {
		for _, ns := range o.Namespaces {
			for _, p := range ns.Ports {
				i := len(x.ports)
				x.ports = append(x.ports, publishedPort{project: o.Project, ns: ns.Name, port: p})
				for _, b := range blocksOf(p) {
					x.blocks[b] = append(x.blocks[b], i)
				}
			}
		}
	}
	return x
}

// blocksOf lists the blocks a port's host range falls in.
func blocksOf(p specs.Port) []portBlock {
	var out []portBlock
	for b := int(p.Published.First) / portBlockSize; b <= int(p.Published.Last)/portBlockSize; b++ {
		out = append(out, portBlock{protocol: p.Protocol, block: uint16(b)})
	}
	return out
}

// first returns the first port, in the others' order, that p conflicts
// with (specs.Conflicts).
func (x *portIndex) first(p specs.Port) (publishedPort, bool) {
	found := -1
	for _, b := range blocksOf(p) {
		for _, i := range x.blocks[b] {
			if found >= 0 && i >= found {
				break // the block's later ones come after the one found
			}
			if specs.Conflicts(p, x.ports[i].port) {
				found = i
				break
			}
		}
	}
	if found < 0 {
		return publishedPort{}, false
	}
	return x.ports[found], true
}
