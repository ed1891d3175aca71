package project

import (
	"bufio"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/nsrun/nsrun/host"
	"github.com/nsrun/nsrun/specs"
	"github.com/nsrun/nsrun/state"
)

// Etc is the files of one namespace's /etc/netns/NS/, by name, and the
// sum of each.
type Etc struct {
	Files map[string]string
	Sums  map[string][32]byte
}

// EtcFiles returns the files of /etc/netns/NS/ of each namespace of a
// project, by namespace: hosts naming the namespaces it shares a network
// with (itself too; of other projects, from their records, those on its
// external networks), and resolv.conf with the host's real upstream
// nameservers, when it has any. Namespaces on the same networks share one
// Etc.
func EtcFiles(st *state.Record, others []*state.Record, hostResolv, systemdResolv string) map[string]Etc {
	resolv, hasResolv := ResolvConf(hostResolv, systemdResolv)
	neighbours := neighboursOf(st, others)
	byNetworks := map[string]Etc{}
	out := make(map[string]Etc, len(st.Namespaces))
	for _, ns := range st.Namespaces {
		key := strings.Join(st.NetworksOf(ns), " ")
		if len(st.NetworksOf(ns)) == 0 {
			key = "\x00" + ns.Name // on no network: only itself
		}
		etc, ok := byNetworks[key]
		if !ok {
			etc = Etc{Files: map[string]string{"hosts": hostsFile(st, ns, neighbours)}}
			if hasResolv {
				etc.Files["resolv.conf"] = resolv
			}
			etc.Sums = etcSums(etc.Files)
			byNetworks[key] = etc
		}
		out[ns.Name] = etc
	}
	return out
}

// neighbour is a namespace of another project on an external network.
type neighbour struct {
	name string
	addr netip.Addr
}

// neighboursOf returns, for each external network the project is on, the
// namespaces of the other projects on it, in their records' order.
// Namespace names are the host's, so they never clash.
func neighboursOf(st *state.Record, others []*state.Record) map[string][]neighbour {
	external := externalNetworks(st)
	if len(external) == 0 {
		return nil
	}
	out := map[string][]neighbour{}
	for _, o := range others {
		if o.Project == st.Project {
			continue
		}
		for _, ns := range o.Namespaces {
			for _, key := range o.NetworksOf(ns) {
				if slices.Contains(external, key) {
					out[key] = append(out[key], neighbour{ns.Name, ns.Address.Addr()})
				}
			}
		}
	}
	return out
}

// externalNetworks are the keys of the external networks a project's
// namespaces are on; none for no record.
func externalNetworks(st *state.Record) []string {
	var out []string
	if st == nil {
		return nil
	}
	for _, ns := range st.Namespaces {
		for _, key := range st.NetworksOf(ns) {
			if specs.NetworkOfKey(key).External && !slices.Contains(out, key) {
				out = append(out, key)
			}
		}
	}
	return out
}

// refreshNeighbours rewrites the hosts files of the other projects'
// namespaces on the external networks a project was on (before, its
// record; nil for none) or is on now (after; nil after its down), so
// that they name its namespaces there as they are now. Files they do not
// change are not written. The caller holds the lock.
func (e *Engine) refreshNeighbours(before, after *state.Record) error {
	keys := externalNetworks(before)
	for _, k := range externalNetworks(after) {
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	project := before
	if project == nil {
		project = after
	}
	all, err := e.Store.Others(project.Project)
	if err != nil {
		return err
	}
	if after != nil {
		all = append(all, after)
	}
	var errs []error
	for _, st := range all {
		if st == after || !slices.ContainsFunc(externalNetworks(st), func(k string) bool { return slices.Contains(keys, k) }) {
			continue
		}
		etc := EtcFiles(st, all, "", "")
		for _, ns := range st.Namespaces {
			if slices.ContainsFunc(st.NetworksOf(ns), func(k string) bool { return slices.Contains(keys, k) }) {
				if err := e.System.WriteEtc(ns.Name, map[string]string{"hosts": etc[ns.Name].Files["hosts"]}); err != nil {
					errs = append(errs, fmt.Errorf("naming project %s's namespaces in /etc/netns/%s/hosts of project %s: %w", project.Project, ns.Name, st.Project, err))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// hostsFile names, besides localhost, the namespaces of the project that
// ns shares a network with, ns itself, and the neighbours on its external
// networks, each once.
func hostsFile(st *state.Record, ns *state.Namespace, neighbours map[string][]neighbour) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s for project %s; removed by nsrun down\n", host.EtcMarker, st.Project)
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	mine := st.NetworksOf(ns)
	for _, other := range st.Namespaces {
		if other == ns || slices.ContainsFunc(st.NetworksOf(other), func(k string) bool { return slices.Contains(mine, k) }) {
			fmt.Fprintf(&b, "%s\t%s\n", other.Address.Addr(), other.Name)
		}
	}
	named := map[string]bool{}
	for _, key := range mine {
		for _, n := range neighbours[key] {
			if !named[n.name] {
				named[n.name] = true
				fmt.Fprintf(&b, "%s\t%s\n", n.addr, n.name)
			}
		}
	}
	return b.String()
}

// ResolvConf builds a resolv.conf for namespaces from the host's: a
// loopback nameserver (such as systemd-resolved's 127.0.0.53 stub) is
// unreachable inside a namespace, so the upstream servers behind it are
// used instead. It reports false when there is no usable nameserver.
func ResolvConf(hostResolv, systemdResolv string) (string, bool) {
	servers, rest := parseResolv(hostResolv)
	if len(servers) == 0 {
		servers, rest = parseResolv(systemdResolv)
	}
	if len(servers) == 0 {
		return "", false
	}
	var b strings.Builder
	b.WriteString(host.EtcMarker + "; removed by nsrun down\n")
	for _, s := range servers {
		b.WriteString("nameserver " + s + "\n")
	}
	for _, l := range rest {
		b.WriteString(l + "\n")
	}
	return b.String(), true
}

// parseResolv returns the non-loopback nameservers and the search and
// options lines of a resolv.conf.
func parseResolv(text string) (servers, rest []string) {
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "nameserver":
			if a, err := netip.ParseAddr(f[1]); err == nil && !a.IsLoopback() {
				servers = append(servers, f[1])
			}
		case "search", "domain", "options":
			rest = append(rest, strings.Join(f, " "))
		}
	}
	return servers, rest
}
