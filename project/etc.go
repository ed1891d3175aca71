package project

import (
	"bufio"
	"fmt"
	"net/netip"
	"strings"

	"github.com/nsrun/nsrun/host"
	"github.com/nsrun/nsrun/state"
)

// EtcFiles returns the files of /etc/netns/NS/ for each namespace of a
// project: hosts naming every namespace of the project, and resolv.conf
// with the host's real upstream nameservers, when it has any.
func EtcFiles(st *state.Record, hostResolv, systemdResolv string) map[string]string {
	files := map[string]string{"hosts": hostsFile(st)}
	if resolv, ok := ResolvConf(hostResolv, systemdResolv); ok {
		files["resolv.conf"] = resolv
	}
	return files
}

func hostsFile(st *state.Record) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s for project %s; removed by nsrun down\n", host.EtcMarker, st.Project)
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	for _, ns := range st.Namespaces {
		fmt.Fprintf(&b, "%s\t%s\n", ns.Address.Addr(), ns.Name)
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
