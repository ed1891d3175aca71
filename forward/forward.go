// Package forward is the backend-neutral side of publishing ports: what a
// project publishes and lets through (Project), the Firewall interface
// that each backend implements (packages forward/iptables and
// forward/nftables; the loopback shortcut is forward/shortcut), which
// backend a project's rules go to (Choice, Place), and the host's
// listeners and conntrack entries that publishing meets.
package forward

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/nsrun/nsrun/specs"
)

// Project is what one project publishes and lets through.
type Project struct {
	Name       string
	Namespaces []Namespace
}

// Digest names everything a backend reads of the project: projects with
// the same digest get the same rules.
func (p Project) Digest() string {
	h := sha256.New()
	fmt.Fprintf(h, "%q\n", p.Name)
	for _, ns := range p.Namespaces {
		fmt.Fprintf(h, "%q %q %s %s %t %q\n", ns.Name, ns.Link, ns.Address, ns.Address6, ns.Egress, ns.Networks)
		for _, port := range ns.Ports {
			fmt.Fprintf(h, "\t%s %t\n", port.Full(), port.Both)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Namespace is one namespace of a project as the firewall sees it.
type Namespace struct {
	Name    string
	Link    string       // host side of its veth
	Address netip.Prefix // namespace side, with the link's prefix length
	// Address6 is the namespace's IPv6 address, invalid without IPv6;
	// the ports published on IPv6 go there.
	Address6 netip.Prefix
	Egress   bool
	// Networks are the keys of its networks (specs.NetworkKey): it reaches
	// the namespaces it shares one with directly, and no other.
	Networks []string
	Ports    []specs.Port
}

// Backend names a firewall backend, as records and status show it:
// "nftables", "iptables-nft", "iptables-legacy".
type Backend string

// IsIPTables reports whether the backend is one of iptables'.
func (b Backend) IsIPTables() bool { return strings.HasPrefix(string(b), "iptables-") }

// Choice is the firewall a user asks for (up --firewall, NSRUN_FIREWALL).
type Choice string

const (
	// Auto is iptables when one of its backends is installed (where nsrun's
	// users look: iptables -t nat -L), else nftables.
	Auto     Choice = "auto"
	NFTables Choice = "nftables"
	IPTables Choice = "iptables" // iptables-nft or iptables-legacy
)

// ParseChoice reads a --firewall value; "" is auto.
func ParseChoice(s string) (Choice, error) {
	switch c := Choice(s); c {
	case "":
		return Auto, nil
	case Auto, NFTables, IPTables:
		return c, nil
	}
	return "", fmt.Errorf("unknown firewall %q; use auto, nftables or iptables", s)
}

// allows reports whether a project may stay in backend b.
func (c Choice) allows(b Backend) bool {
	switch c {
	case NFTables:
		return b == Backend(NFTables)
	case IPTables:
		return b.IsIPTables()
	}
	return true
}

// Candidates are the installed backends a new project may get, in order:
// for auto, the iptables ones when there are any, else nftables.
func (c Choice) Candidates(installed []Backend) []Backend {
	if c == Auto {
		c = NFTables
		if slices.ContainsFunc(installed, Backend.IsIPTables) {
			c = IPTables
		}
	}
	return slices.DeleteFunc(slices.Clone(installed), func(b Backend) bool { return !c.allows(b) })
}

// missing says what to install for a choice that has no backend.
func (c Choice) missing() error {
	switch c {
	case NFTables:
		return errors.New("nftables is not installed (no nft program); install it (apt-get install nftables) or use --firewall iptables")
	case IPTables:
		return ErrNoFirewall
	}
	return errors.New("neither iptables nor nftables is installed; install one (apt-get install iptables, or apt-get install nftables) and try again")
}

// Firewall is one backend, as nsrun changes it. Every method is
// idempotent, and each change is one transaction of only what differs.
type Firewall interface {
	Backend() Backend
	// Installed reports whether the backend's tools are there.
	Installed() bool
	// Read takes one look at what the backend holds.
	Read(ctx context.Context) (Tables, error)
	// PrepareEnsure reads the backend now and returns the write that puts
	// the project's rules in place (with acceptsOnly, only its FORWARD
	// accepts: see Placement), run when called; nil when nothing differs.
	// Reading every backend before writing any keeps the reads in the
	// cache of the nftables generation (package nftcache).
	PrepareEnsure(ctx context.Context, p Project, acceptsOnly bool) (func(context.Context) error, error)
	// PrepareRemove reads the backend now and returns the write that
	// removes whatever of the project's it holds; nil when it holds none.
	PrepareRemove(ctx context.Context, project string) (func(context.Context) error, error)
	// Remove removes whatever of the project's the backend holds.
	Remove(ctx context.Context, project string) error
	// Sweep removes everything recognisably nsrun's.
	Sweep(ctx context.Context) error
	// Script is the shell commands that make the project's rules on a
	// clean host, for nsrun plan.
	Script(p Project) string
	// Probe checks that the backend works on this host, changing nothing.
	Probe(ctx context.Context) error
	// MadeTables lists, by their nftables names ("ip nat", "ip6 filter"),
	// the tables the backend holds now that its tools made on first use
	// (iptables-nft's): nsrun may have made them, and may remove them
	// again. None for a backend whose tables come and go with nsrun's own
	// rules (nftables) or stay whatever happens (iptables-legacy's).
	MadeTables(ctx context.Context) ([]string, error)
	// RemoveEmptyTables removes those of the tables, named as MadeTables
	// names them, that hold nothing: no rule, no chain but built-in ones,
	// every policy ACCEPT.
	RemoveEmptyTables(ctx context.Context, tables []string) error
}

// Tables is what one backend holds, as one Read saw it.
type Tables interface {
	// Publishes reports whether nsrun publishes ports here (a backend may
	// hold only some project's FORWARD accepts; that does not count).
	Publishes() bool
	// InUse reports whether the backend holds anything at all.
	InUse() bool
	// DropReason says what may drop forwarded packets here, e.g. "policy
	// DROP"; "" when nothing does.
	DropReason() string
	// Drift reports, one line each, how the project's rules here differ
	// from what it needs (with acceptsOnly, its FORWARD accepts only).
	Drift(p Project, acceptsOnly bool) []string
	// IPv6 reports whether the backend holds IPv6 rules too (an iptables
	// backend only with its ip6tables of the same flavour).
	IPv6() bool
}

// Placement says where a project's rules go: all of them in Backend, and
// its FORWARD accepts also in each iptables backend of Accepts, whose
// FORWARD drops: a packet must pass every backend, and an accept in one
// does not override a drop in another (nft(8): accept ends only the
// current base chain, a drop ends all).
type Placement struct {
	Backend Backend
	Accepts []Backend
}

// ErrNoFirewall is returned when no backend is installed.
var ErrNoFirewall = errors.New("iptables is not installed; install it (apt-get install iptables) and try again")

// Place decides a project's placement from the backend it recorded ("" for
// a new project), the user's choice and what each installed backend holds
// (order: the installed backends, in order of preference). A project stays
// in its backend while the choice allows it; otherwise Choose decides,
// among the backends the choice allows.
func Place(recorded Backend, choice Choice, order []Backend, tables map[Backend]Tables) (Placement, error) {
	b := recorded
	switch {
	case b == "" || !choice.allows(b):
		candidates := choice.Candidates(order)
		if len(candidates) == 0 {
			return Placement{}, choice.missing()
		}
		var err error
		if b, err = Choose(candidates, tables); err != nil {
			return Placement{}, err
		}
	case tables[b] == nil:
		return Placement{}, fmt.Errorf("the project's rules are in %s, which is not installed now; install it (%s) or take the project down first", b, install(b))
	}
	pl := Placement{Backend: b}
	for _, other := range order {
		if other != b && tables[other] != nil && tables[other].DropReason() != "" {
			pl.Accepts = append(pl.Accepts, other)
		}
	}
	return pl, nil
}

func install(b Backend) string {
	if b.IsIPTables() {
		return "apt-get install iptables"
	}
	return "apt-get install nftables"
}

// Choose picks the backend for a new project's rules, from the installed
// ones (those in tables) in order of preference: the one that publishes
// nsrun's ports already (a backend once chosen stays), then the first
// whose FORWARD drops packets (accepts elsewhere would not help), then the
// first in use, else the first.
func Choose(order []Backend, tables map[Backend]Tables) (Backend, error) {
	var installed, publishing []Backend
	for _, b := range order {
		if tables[b] != nil {
			installed = append(installed, b)
			if tables[b].Publishes() {
				publishing = append(publishing, b)
			}
		}
	}
	switch {
	case len(installed) == 0:
		return "", ErrNoFirewall
	case len(publishing) > 1:
		return "", fmt.Errorf("nsrun's chains exist in both %s and %s; remove them with 'nsrun down --all' and try again", publishing[0], publishing[1])
	case len(publishing) == 1:
		return publishing[0], nil
	}
	for _, b := range installed {
		if tables[b].DropReason() != "" {
			return b, nil
		}
	}
	for _, b := range installed {
		if tables[b].InUse() {
			return b, nil
		}
	}
	return installed[0], nil
}
