package project

import (
	"bufio"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/nsrun/nsrun/host"
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
// with (itself too), and resolv.conf with the host's real upstream
// nameservers, when it has any. Namespaces on the same networks share one
// Etc.
func EtcFiles(st *state.Record, hostResolv, systemdResolv string) map[string]Etc {
	resolv, hasResolv := ResolvConf(hostResolv, systemdResolv)
	byNetworks := map[string]Etc{}
	out := make(map[string]Etc, len(st.Namespaces))
	for _, ns := range st.Namespaces {
		key := strings.Join(st.NetworksOf(ns), " ")
		if len(st.NetworksOf(ns)) == 0 {
			key = "\x00" + ns.Name // on no network: only itself
		}
		etc, ok := byNetworks[key]
		if !ok {
			etc = Etc{Files: map[string]string{"hosts": hostsFile(st, ns)}}
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

// hostsFile names, besides localhost, the namespaces of the project that
// ns shares a network with, and ns itself. Namespaces of other projects,
// even on an external network, are not named: their names are theirs.
func hostsFile(st *state.Record, ns *state.Namespace) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s for project %s; removed by nsrun down\n", host.EtcMarker, st.Project)
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	mine := st.NetworksOf(ns)
	for _, other := range st.Namespaces {
		if other == ns || slices.ContainsFunc(st.NetworksOf(other), func(k string) bool { return slices.Contains(mine, k) }) {
			fmt.Fprintf(&b, "%s\t%s\n", other.Address.Addr(), other.Name)
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
