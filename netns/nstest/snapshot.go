package nstest

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/nsrun/nsrun/internal/nsexec"
	"golang.org/x/sys/unix"
)

var counters = regexp.MustCompile(`\[\d+:\d+\]`)

// Snapshot describes the host's network state: named namespaces, links,
// both iptables backends, nsrun's nftables tables, the sysctls nsrun touches, the programs on the
// root cgroup's connect and getpeername hooks, nsrun's cgroups (of the
// namespaces with resource limits), /run/nsrun and /run/nsrun-exec. Two
// equal snapshots mean nothing was left behind.
func Snapshot() string {
	var b strings.Builder
	section := func(name string, args ...string) {
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil && len(out) == 0 {
			out = []byte(err.Error())
		}
		b.WriteString("== " + name + "\n" + string(out))
	}
	section("netns", "ip", "netns", "list")
	section("links", "ip", "-o", "link", "show")
	for _, save := range []string{"iptables-nft-save", "iptables-legacy-save", "ip6tables-nft-save", "ip6tables-legacy-save"} {
		out, _ := exec.Command(save).Output()
		b.WriteString("== " + save + "\n" + normaliseSave(string(out)))
	}
	b.WriteString("== nft tables of nsrun\n" + nsrunTables())
	keys := []string{"net/ipv4/ip_forward", "net/ipv4/conf/all/route_localnet", "net/ipv6/conf/all/forwarding"}
	links, _ := os.ReadDir("/proc/sys/net/ipv6/conf")
	for _, l := range links {
		keys = append(keys, "net/ipv6/conf/"+l.Name()+"/accept_ra")
	}
	for _, key := range keys {
		v, _ := os.ReadFile("/proc/sys/" + key)
		b.WriteString("== " + key + " " + string(v))
	}
	b.WriteString("== cgroup programs" + cgroupPrograms() + "\n")
	for _, dir := range []string{"/run/nsrun", "/run/nsrun-exec"} {
		b.WriteString(listDir(dir))
	}
	for _, dir := range nsexec.CgroupDirs(nsexec.CgroupRoot, "") {
		b.WriteString(listDir(dir)) // each hierarchy's nsrun/
	}
	return linkNamesOnly(b.String())
}

// listDir is "== DIR" and the names in it, or "absent".
func listDir(dir string) string {
	var b strings.Builder
	b.WriteString("== " + dir)
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		b.WriteString(" absent")
	}
	for _, e := range entries {
		b.WriteString(" " + e.Name())
	}
	return b.String() + "\n"
}

// nsrunTables lists nftables tables whose name has "nsrun" in it, each
// with what it holds.
func nsrunTables() string {
	out, err := exec.Command("nft", "list", "tables").Output()
	if err != nil {
		return "(no nft)\n"
	}
	var b strings.Builder
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) == 3 && strings.Contains(f[2], "nsrun") {
			table, _ := exec.Command("nft", "list", "table", f[1], f[2]).CombinedOutput()
			b.WriteString(string(table))
		}
	}
	return b.String()
}

// normaliseSave drops comments and counters, and tables that hold only
// empty built-in chains with ACCEPT policies (looking at a legacy table
// creates it), so that only real differences remain.
func normaliseSave(s string) string {
	var out []string
	var table []string
	keep := false
	for _, line := range strings.Split(s, "\n") {
		line = counters.ReplaceAllString(line, "")
		switch {
		case strings.HasPrefix(line, "#") || line == "":
		case strings.HasPrefix(line, "*"):
			table, keep = []string{line}, false
		case line == "COMMIT":
			if keep {
				out = append(out, table...)
				out = append(out, line)
			}
		default:
			table = append(table, line)
			if !strings.HasPrefix(line, ":") || !strings.Contains(line, " ACCEPT") {
				keep = true
			}
		}
	}
	return strings.Join(out, "\n") + "\n"
}

// linkNamesOnly keeps of `ip -o link` the index, name, and state, which
// change only when links do.
func linkNamesOnly(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		f := strings.Fields(l)
		if len(f) > 2 && strings.HasSuffix(f[0], ":") && strings.HasSuffix(f[1], ":") {
			lines[i] = f[0] + " " + f[1]
		}
	}
	return strings.Join(lines, "\n")
}

// cgroupPrograms names the programs attached to the root cgroup's connect
// and getpeername hooks, IPv4 and IPv6, where the loopback shortcut goes.
func cgroupPrograms() string {
	var out strings.Builder
	for _, root := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		var fs unix.Statfs_t
		if unix.Statfs(root, &fs) != nil || fs.Type != unix.CGROUP2_SUPER_MAGIC {
			continue
		}
		cg, err := os.Open(root)
		if err != nil {
			return " " + err.Error()
		}
		defer cg.Close()
		for _, typ := range []ebpf.AttachType{ebpf.AttachCGroupInet4Connect, ebpf.AttachCgroupInet4GetPeername,
			ebpf.AttachCGroupInet6Connect, ebpf.AttachCgroupInet6GetPeername} {
			res, err := link.QueryPrograms(link.QueryOptions{Target: int(cg.Fd()), Attach: typ})
			if err != nil {
				fmt.Fprintf(&out, " %s: %v", typ, err)
				continue
			}
			for _, p := range res.Programs {
				name := "?"
				if prog, err := ebpf.NewProgramFromID(p.ID); err == nil {
					if info, err := prog.Info(); err == nil {
						name = info.Name
					}
					prog.Close()
				}
				fmt.Fprintf(&out, " %s:%s", typ, name)
			}
		}
		break
	}
	return out.String()
}
