// Package forward is the backend-neutral side of publishing ports: what a
// project publishes and lets through (Project), the Firewall interface
// that each backend implements (package forward/iptables; the loopback
// shortcut is forward/shortcut), where a project's rules go (Placement),
// and the host's listeners and conntrack entries that publishing meets.
package forward

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/nsrun/nsrun/specs"
)

// Project is what one project publishes and lets through.
type Project struct {
	Name       string
	Namespaces []Namespace
}

// Namespace is one namespace of a project as the firewall sees it.
type Namespace struct {
	Name    string
	Link    string       // host side of its veth
	Address netip.Prefix // namespace side, with the link's prefix length
	Egress  bool
	Ports   []specs.Port
}

// Backend names a firewall backend, as records and status show it:
// "iptables-nft", "iptables-legacy".
type Backend string

// Firewall is one backend, as nsrun changes it. Every method is
// idempotent, and each change is one transaction of only what differs.
type Firewall interface {
	Backend() Backend
	// Installed reports whether the backend's tools are there.
	Installed() bool
	// Read takes one look at what the backend holds.
	Read(ctx context.Context) (Tables, error)
	// Ensure puts the project's rules in place (with acceptsOnly, only its
	// FORWARD accepts: see Placement).
	Ensure(ctx context.Context, p Project, acceptsOnly bool) error
	// Remove removes whatever of the project's the backend holds.
	Remove(ctx context.Context, project string) error
	// Sweep removes everything recognisably nsrun's.
	Sweep(ctx context.Context) error
	// Script is the shell commands that make the project's rules on a
	// clean host, for nsrun plan.
	Script(p Project) string
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
}

// Placement says where a project's rules go: all of them in Backend, and
// its FORWARD accepts also in each backend of Accepts, whose FORWARD
// drops: a packet must pass both iptables backends, and an accept in one
// does not override a drop in the other.
type Placement struct {
	Backend Backend
	Accepts []Backend
}

// ErrNoFirewall is returned when no backend is installed.
var ErrNoFirewall = errors.New("iptables is not installed; install it (apt-get install iptables) and try again")

// Place decides a project's placement from the backend it recorded ("" for
// a new project, which Choose decides) and what each installed backend
// holds, in order of preference.
func Place(recorded Backend, order []Backend, tables map[Backend]Tables) (Placement, error) {
	b := recorded
	if b == "" {
		var err error
		if b, err = Choose(order, tables); err != nil {
			return Placement{}, err
		}
	} else if tables[b] == nil {
		return Placement{}, fmt.Errorf("the project's rules are in %s, which is not installed now; install it (apt-get install iptables) or take the project down first", b)
	}
	pl := Placement{Backend: b}
	for _, other := range order {
		if other != b && tables[other] != nil && tables[other].DropReason() != "" {
			pl.Accepts = append(pl.Accepts, other)
		}
	}
	return pl, nil
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
