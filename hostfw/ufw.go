package hostfw

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
)

// UFW is ufw's configuration, as its files say. Whether it is active is
// what iptables holds: its chains (ufw-before-forward) are there.
type UFW struct {
	Installed bool   `json:"installed"`
	Enabled   bool   `json:"enabled"`                  // ENABLED=yes in ufw.conf: it loads at boot
	Forward   string `json:"forward_policy,omitempty"` // DEFAULT_FORWARD_POLICY
}

// ReadUFW reads ufw's configuration below root ("/" for the host).
func ReadUFW(root string) UFW {
	conf := readVars(filepath.Join(root, "etc/ufw/ufw.conf"))
	if conf == nil {
		return UFW{}
	}
	defaults := readVars(filepath.Join(root, "etc/default/ufw"))
	return UFW{Installed: true, Enabled: strings.EqualFold(conf["ENABLED"], "yes"), Forward: defaults["DEFAULT_FORWARD_POLICY"]}
}

// readVars reads a shell-style NAME=value file; nil when it is missing.
func readVars(path string) map[string]string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		name, value, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		out[strings.TrimSpace(name)] = strings.Trim(strings.TrimSpace(value), `"'`)
	}
	return out
}

// Host is the host's firewalls beside nsrun's rules, as read at one time.
type Host struct {
	Firewalld Firewalld `json:"firewalld"`
	UFW       UFW       `json:"ufw"`
	// NFT are other programs' nftables chains that drop or reject.
	NFT []Chain `json:"nftables_chains"`
	// Uplinks hold the default routes.
	Uplinks []string `json:"uplinks"`
}
