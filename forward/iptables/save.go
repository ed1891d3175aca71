package iptables

import (
	"fmt"
	"slices"
	"strings"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/internal/nftcache"
)

// Snapshot is the parsed output of iptables-save: per table, each chain's
// policy ("-" for user chains) and rules, as printed.
type Snapshot struct {
	Tables map[string]map[string]*Chain
	// V6 is the same backend's ip6tables, read alongside; nil when its
	// program is not installed (or for a snapshot of ip6tables itself).
	V6 *Snapshot

	// at is the version the tables were read at ("" when unknown), memo
	// the cache that keeps what Drift computes from them (nil: none), for
	// the backend read.
	at      string
	memo    *nftcache.Cache
	backend forward.Backend
}

// Chain is one chain of a snapshot.
type Chain struct {
	Policy string
	Rules  []string // each "-A CHAIN ..." line
}

// ParseSave parses iptables-save output. Its rules are slices of text,
// not copies: with thousands of namespaces the output is megabytes.
func ParseSave(text string) (*Snapshot, error) {
	s := &Snapshot{Tables: map[string]map[string]*Chain{}}
	var table map[string]*Chain
	n := 0
	for line := range strings.Lines(text) {
		n++
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || line == "COMMIT":
		case strings.HasPrefix(line, "*"):
			table = map[string]*Chain{}
			s.Tables[line[1:]] = table
		case table == nil:
			return nil, fmt.Errorf("iptables-save line %d: %q before any table", n, line)
		case strings.HasPrefix(line, ":"):
			f := strings.Fields(line[1:])
			if len(f) < 2 {
				return nil, fmt.Errorf("iptables-save line %d: bad chain line %q", n, line)
			}
			table[f[0]] = &Chain{Policy: f[1]}
		case strings.HasPrefix(line, "-A "):
			name, _, _ := strings.Cut(line[len("-A "):], " ")
			c := table[name]
			if c == nil {
				c = &Chain{Policy: "-"}
				table[name] = c
			}
			c.Rules = append(c.Rules, line)
		default:
			return nil, fmt.Errorf("iptables-save line %d: unexpected %q", n, line)
		}
	}
	return s, nil
}

// HasChain reports whether a chain exists.
func (s *Snapshot) HasChain(table, chain string) bool { return s.Chain(table, chain) != nil }

// Chain returns a chain, or nil when the table or chain does not exist.
func (s *Snapshot) Chain(table, chain string) *Chain {
	return s.Tables[table][chain]
}

// rules returns the chain's rules; a missing chain has none.
func (c *Chain) rules() []string {
	if c == nil {
		return nil
	}
	return c.Rules
}

// Has reports whether a rule is present.
func (s *Snapshot) Has(r Rule) bool {
	c := s.Chain(r.Table, r.Chain)
	if c == nil {
		return false
	}
	line := r.String()
	for _, have := range c.Rules {
		if have == line {
			return true
		}
	}
	return false
}

// InUse reports whether a backend holds anything: a rule, or a built-in
// chain whose policy is not ACCEPT.
func (s *Snapshot) InUse() bool {
	if s.V6 != nil && s.V6.InUse() {
		return true
	}
	for _, chains := range s.Tables {
		for _, c := range chains {
			if len(c.Rules) > 0 || (c.Policy != "-" && c.Policy != "ACCEPT") {
				return true
			}
		}
	}
	return false
}

// Publishes reports whether nsrun publishes ports in this backend: its
// shared nat chains exist. (A backend may hold only nsrun's FORWARD
// accepts, see AcceptScript; that does not count.)
func (s *Snapshot) Publishes() bool {
	return s.Chain("nat", ChainDNAT) != nil || s.Chain("nat", ChainPost) != nil || (s.V6 != nil && s.V6.Publishes())
}

// IPv6 reports whether the snapshot holds ip6tables' tables: whether its
// ip6tables is installed.
func (s *Snapshot) IPv6() bool { return s.V6 != nil }

// DropsForward reports whether forwarded packets may be dropped here.
func (s *Snapshot) DropsForward() bool { return s.DropReason() != "" }

// DropReason says what in FORWARD may drop forwarded packets: a policy
// other than ACCEPT ("policy DROP"), or a DROP or REJECT rule; "" when
// nothing does.
func (s *Snapshot) DropReason() string {
	c := s.Chain("filter", "FORWARD")
	if c == nil {
		if s.V6 != nil && s.V6.DropReason() != "" {
			return "ip6tables: " + s.V6.DropReason()
		}
		return ""
	}
	if c.Policy != "ACCEPT" {
		return "policy " + c.Policy
	}
	for _, r := range c.Rules {
		if strings.HasSuffix(r, "-j DROP") || strings.Contains(r, "-j REJECT") {
			return "rule " + r
		}
	}
	if s.V6 != nil && s.V6.DropReason() != "" {
		return "ip6tables: " + s.V6.DropReason()
	}
	return ""
}

// Projects returns the projects whose jumps are in the shared chains, of
// either family.
func (s *Snapshot) Projects() []string {
	out := s.ownProjects()
	if s.V6 != nil {
		for _, p := range s.V6.ownProjects() {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}

// ownProjects is Projects in this family's tables only.
func (s *Snapshot) ownProjects() []string {
	var out []string
	seen := map[string]bool{}
	for _, tc := range [][2]string{{"nat", ChainDNAT}, {"nat", ChainPost}, {"filter", ChainForward}} {
		c := s.Chain(tc[0], tc[1])
		if c == nil {
			continue
		}
		for _, r := range c.Rules {
			if p := projectOfJump(r); p != "" && !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out
}

// projectOfJump reads the project name from a jump's comment, which
// iptables-save prints quoted ("nsrun PROJECT").
func projectOfJump(line string) string {
	_, rest, ok := strings.Cut(line, `--comment "nsrun `)
	if !ok {
		return ""
	}
	name, _, _ := strings.Cut(rest, `"`)
	return name
}

// DropsBeforeNsrun returns the first DROP or REJECT rule of FORWARD that
// comes before nsrun's jump there: it drops nsrun's traffic before nsrun's
// accepts see it. "" when there is none, or no jump.
func (s *Snapshot) DropsBeforeNsrun() string {
	jump := Base()[3].Rule.String()
	var drop string
	for _, r := range s.Chain("filter", "FORWARD").rules() {
		switch {
		case r == jump:
			return drop
		case drop == "" && (strings.HasSuffix(r, "-j DROP") || strings.Contains(r, "-j REJECT")):
			drop = r
		}
	}
	return ""
}

// Policy returns a built-in chain's policy; "" when the chain is missing.
func (s *Snapshot) Policy(table, chain string) string {
	if c := s.Chain(table, chain); c != nil {
		return c.Policy
	}
	return ""
}

// Empty reports whether a table of the snapshot holds nothing: it exists,
// has no rule and no chain of its own, and every built-in chain's policy
// is ACCEPT, so removing it changes no packet's fate.
func (s *Snapshot) Empty(table string) bool {
	chains, ok := s.Tables[table]
	if !ok {
		return false
	}
	for _, c := range chains {
		if len(c.Rules) > 0 || c.Policy != "ACCEPT" {
			return false
		}
	}
	return true
}
