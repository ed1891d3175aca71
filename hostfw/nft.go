package hostfw

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"

	"github.com/nsrun/nsrun/internal/nftcache"
	"github.com/nsrun/nsrun/internal/quote"
)

// Chain is a base chain of another program's nftables table, on the
// forward or input hook, that ends in drop or reject: a packet it drops
// is dropped whatever any other table accepts (nft(8)).
type Chain struct {
	Family string `json:"family"`
	Table  string `json:"table"`
	Name   string `json:"chain"`
	Hook   string `json:"hook"`
	// Ends is how it ends: "policy drop", or its last rule's "drop" or
	// "reject".
	Ends string `json:"ends"`
	// AcceptsLinks: a rule of it accepts nsrun's links by name (an
	// admin's iifname "nsr-*" accept).
	AcceptsLinks bool `json:"accepts_nsrun_links"`
	// AcceptsEstablished: a rule of it accepts established connections.
	AcceptsEstablished bool `json:"accepts_established"`
}

// Where names the chain as nft does: "inet filter forward".
func (c Chain) Where() string {
	return quote.Name(c.Family) + " " + quote.Name(c.Table) + " " + quote.Name(c.Name)
}

// LinkPatterns match nsrun's host-side links, as nft writes wildcards.
var LinkPatterns = []string{"nsr-*", "nsh-*"}

// Fix is the command that lets the traffic of nsrun's links through the
// chain: an accept for them first (nsrun's own table still drops what it
// means to).
func (c Chain) Fix() string {
	if c.Where() != c.Family+" "+c.Table+" "+c.Name {
		// A name a shell would not take as one word: no command to paste.
		return fmt.Sprintf("an accept of iifname and oifname 'nsr-*' and 'nsh-*' at the start of chain %s", c.Where())
	}
	var cmds []string
	for _, dir := range []string{"iifname", "oifname"} {
		for _, p := range LinkPatterns {
			if c.Hook == "input" && dir == "oifname" {
				continue
			}
			cmds = append(cmds, fmt.Sprintf("nft insert rule %s %s %s %s '%s' accept", c.Family, c.Table, c.Name, dir, p))
		}
	}
	return strings.Join(cmds, "; ")
}

// ReadNFT lists the dropping forward and input chains of every nftables
// table but nsrun's, firewalld's and iptables-nft's (those are read on
// their own); none without the nft program. It lists the chains, then the
// rules of only those base chains: nsrun's own table may hold thousands.
// What nft prints is kept in the cache while the nftables generation stays
// the same (nil: nothing is kept).
func ReadNFT(ctx context.Context, cache *nftcache.Cache) ([]Chain, error) {
	if _, err := exec.LookPath("nft"); err != nil {
		return nil, nil
	}
	list := []string{"nft", "-j", "list", "chains"}
	r, err := cache.Run(ctx, list...)
	if err == nil {
		err = r.Err(list...)
	}
	if err != nil {
		return nil, err
	}
	candidates, err := ParseNFT([]byte(r.Stdout), true)
	if err != nil {
		return nil, err
	}
	var found []Chain
	for _, c := range candidates {
		r, err := cache.Run(ctx, "nft", "-j", "list", "chain", c.Family, c.Table, c.Name)
		if err != nil || r.Code != 0 {
			continue // gone since
		}
		chains, err := ParseNFT([]byte(r.Stdout), false)
		if err != nil {
			return nil, err
		}
		found = append(found, chains...)
	}
	return found, nil
}

// ParseNFT reads nft -j list output (a ruleset, chains, or one chain) and
// returns the chains of ReadNFT; with all, every foreign forward and input
// base chain, however it ends.
func ParseNFT(data []byte, all bool) ([]Chain, error) {
	var doc struct {
		NFTables []struct {
			Chain *struct {
				Family, Table, Name, Type, Hook, Policy string
			}
			Rule *struct {
				Family, Table, Chain string
				Expr                 []map[string]json.RawMessage
			}
		} `json:"nftables"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("reading nft's ruleset: %w", err)
	}
	type key struct{ family, table, chain string }
	var order []key
	chains := map[key]*Chain{}
	last := map[key]string{} // the verdict of each chain's last rule, if unconditional
	for _, o := range doc.NFTables {
		switch {
		case o.Chain != nil:
			c := o.Chain
			if c.Type != "filter" || (c.Hook != "forward" && c.Hook != "input") || !foreign(c.Family, c.Table, c.Name) {
				continue
			}
			k := key{c.Family, c.Table, c.Name}
			order = append(order, k)
			chains[k] = &Chain{Family: c.Family, Table: c.Table, Name: c.Name, Hook: c.Hook}
			if c.Policy == "drop" {
				chains[k].Ends = "policy drop"
			}
		case o.Rule != nil:
			r := o.Rule
			k := key{r.Family, r.Table, r.Chain}
			c := chains[k]
			if c == nil {
				continue
			}
			last[k] = unconditional(r.Expr)
			verdict := verdictOf(r.Expr)
			if verdict == "accept" && matchesLinks(r.Expr) {
				c.AcceptsLinks = true
			}
			if verdict == "accept" && matchesEstablished(r.Expr) {
				c.AcceptsEstablished = true
			}
		}
	}
	var out []Chain
	for _, k := range order {
		c := chains[k]
		if c.Ends == "" {
			c.Ends = last[k]
		}
		if c.Ends != "" || all {
			out = append(out, *c)
		}
	}
	return out, nil
}

// foreign reports whether a table is another program's: not nsrun's, not
// firewalld's (firewalld is dealt with through its zones), and not one
// that iptables-nft manages (its built-in chains are in upper case).
func foreign(family, table, chain string) bool {
	switch {
	case family == "inet" && strings.HasPrefix(table, "nsrun"):
		return false
	case table == "firewalld":
		return false
	case (family == "ip" || family == "ip6") && slices.Contains([]string{"filter", "nat", "mangle", "raw", "security"}, table) &&
		strings.ToUpper(chain) == chain:
		return false
	}
	return true
}

// unconditional returns "drop" or "reject" for a rule that is only that
// verdict (with a counter or log at most), else "".
func unconditional(expr []map[string]json.RawMessage) string {
	verdict := ""
	for _, e := range expr {
		for k := range e {
			switch k {
			case "counter", "log":
			case "drop", "reject":
				verdict = k
			default:
				return ""
			}
		}
	}
	return verdict
}

func verdictOf(expr []map[string]json.RawMessage) string {
	for _, e := range expr {
		for k := range e {
			switch k {
			case "accept", "drop", "reject", "jump", "goto", "return":
				return k
			}
		}
	}
	return ""
}

type match struct {
	Left  json.RawMessage `json:"left"`
	Right json.RawMessage `json:"right"`
}

func matches(expr []map[string]json.RawMessage, ok func(m match) bool) bool {
	for _, e := range expr {
		raw, found := e["match"]
		if !found {
			continue
		}
		var m match
		if json.Unmarshal(raw, &m) == nil && ok(m) {
			return true
		}
	}
	return false
}

// matchesLinks: the rule matches iifname or oifname "nsr-*" or "nsh-*".
func matchesLinks(expr []map[string]json.RawMessage) bool {
	return matches(expr, func(m match) bool {
		left := string(m.Left)
		return (strings.Contains(left, `"iifname"`) || strings.Contains(left, `"oifname"`)) &&
			slices.ContainsFunc(LinkPatterns, func(p string) bool { return strings.Contains(string(m.Right), `"`+p+`"`) })
	})
}

// matchesEstablished: the rule matches ct state established.
func matchesEstablished(expr []map[string]json.RawMessage) bool {
	return matches(expr, func(m match) bool {
		return strings.Contains(string(m.Left), `"state"`) && strings.Contains(string(m.Right), `"established"`)
	})
}
