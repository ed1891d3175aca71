package project

import (
	"bufio"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/nsrun/nsrun/internal/atomicfile"
	"github.com/nsrun/nsrun/netns"
)

// etcMarker starts every file nsrun writes in /etc/netns/NS/; a file
// without it is someone else's and is left alone.
const etcMarker = "# written by nsrun"

// etcNames are the files nsrun writes in /etc/netns/NS/.
var etcNames = []string{"hosts", "resolv.conf"}

// EtcFiles returns the files of /etc/netns/NS/ for each namespace of a
// project: hosts naming every namespace of the project, and resolv.conf
// with the host's real upstream nameservers, when it has any.
func EtcFiles(st *State, hostResolv, systemdResolv string) map[string]string {
	files := map[string]string{"hosts": hostsFile(st)}
	if resolv, ok := ResolvConf(hostResolv, systemdResolv); ok {
		files["resolv.conf"] = resolv
	}
	return files
}

func hostsFile(st *State) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s for project %s; removed by nsrun down\n", etcMarker, st.Project)
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
	b.WriteString(etcMarker + "; removed by nsrun down\n")
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

// writeEtc writes nsrun's files into /etc/netns/NS/, leaving alone any
// file of that name nsrun did not write, and any that already holds the
// content. Each is written beside and renamed into place: a file nsrun
// was killed while writing would lack the marker and never be removed.
func writeEtc(ns string, files map[string]string) error {
	dir := filepath.Join(netns.EtcDir, ns)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	for name, content := range files {
		path := filepath.Join(dir, name)
		old, err := os.ReadFile(path)
		if err == nil && (string(old) == content || !strings.HasPrefix(string(old), etcMarker)) {
			continue
		}
		if err := atomicfile.Write(path, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// removeEtc removes the files nsrun wrote in /etc/netns/NS/ (and any it
// was killed while writing), then the directory and /etc/netns when they
// are left empty.
func removeEtc(ns string) error {
	dir := filepath.Join(netns.EtcDir, ns)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		if _, err := os.Stat(path); err == nil && (ours(path) || atomicfile.IsTemp(e.Name())) {
			if err := os.Remove(path); err != nil {
				return err
			}
		}
	}
	os.Remove(dir)          // only if empty
	os.Remove(netns.EtcDir) // likewise
	return nil
}

// ours reports whether a file is absent or was written by nsrun.
func ours(path string) bool {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return true
	}
	return err == nil && strings.HasPrefix(string(data), etcMarker)
}
