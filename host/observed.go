package host

import (
	"crypto/sha256"
	"slices"
	"strings"

	"github.com/nsrun/nsrun/cgroup"
	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/forward/shortcut"
	"github.com/nsrun/nsrun/hostfw"
	"github.com/nsrun/nsrun/netns"
	"github.com/nsrun/nsrun/shape"
	"github.com/nsrun/nsrun/specs"
	"github.com/nsrun/nsrun/veth"
)

// EtcMarker starts every file nsrun writes in /etc/netns/NS/; a file
// without it is someone else's and is left alone.
const EtcMarker = "# written by nsrun"

// EtcNames are the files nsrun writes in /etc/netns/NS/.
var EtcNames = []string{"hosts", "resolv.conf"}

// PeerName is the namespace side of every pair nsrun makes.
const PeerName = "eth0"

// Query says what Observe reads beyond the host-wide state: who is bound
// to the ports to be published, and the namespaces whose links and files
// are compared with a record.
type Query struct {
	Published  []specs.Port
	Namespaces []string
	// Links are the host links read whole (Observed.Links): the
	// namespaces' host sides. Other links are named only where a prefix
	// is theirs.
	Links []string
	// Cookies are the namespaces whose cookies are read: those that have
	// an exec grant to compare with.
	Cookies []string
	// Cgroups are the namespaces whose cgroups are read: those that have
	// one, or are to have one.
	Cgroups []string
	// Usage reads what the namespaces of Cgroups use, and the counters of
	// the Links, too.
	Usage bool
	// Shaped are the links whose qdiscs are read, both ends: those of
	// namespaces shaped, or to be (Observed.Shaping).
	Shaped []shape.Where
	// QdiscKinds are tried in a network namespace of the try's own, to
	// tell which the kernel has (Observed.QdiscKinds).
	QdiscKinds []string
	// Projects are those whose loopback shortcut entries are read
	// (Observed.Shortcuts); none: every project's.
	Projects []string
	// FirewallOnly reads only what the keeper keeps: the firewall
	// backends, the loopback shortcuts, firewalld, and the qdiscs of
	// Shaped.
	FirewallOnly bool
}

// Observed is what exists on the host, read in bulk before any change:
// one request per link queried, one dump of the addresses and of the
// routes, one read of each firewall backend, and per namespace queried
// one netlink socket.
type Observed struct {
	Namespaces map[string]bool      // the named network namespaces queried that exist
	Links      map[string]veth.Link // the host links queried that exist, by name
	Prefixes   []veth.HostPrefix    // host routes and addresses
	Listeners  []forward.Listener   // host sockets bound to the ports queried
	// The host's /etc/resolv.conf and systemd-resolved's upstream one,
	// for the namespaces' resolv.conf.
	HostResolv, SystemdResolv string
	IPForward                 string // net.ipv4.ip_forward
	IPv6Forward               string // net.ipv6.conf.all.forwarding; "" without IPv6
	// AcceptRA is, for each link with a default route learned from router
	// advertisements, its accept_ra.
	AcceptRA  map[string]string
	MachineID string // /etc/machine-id, which the default IPv6 pools derive from
	// NetnsCookies are the cookies of the namespaces Query.Cookies names
	// that exist, and Grants every namespace's published exec grant (the
	// engine reads them from its store).
	NetnsCookies  map[string]uint64
	Grants        map[string]netns.Grant
	Tables        map[forward.Backend]forward.Tables // each installed backend
	Backends      []forward.Backend                  // the installed backends, in order of preference
	RouteLocalnet map[string]string                  // nsrun's host links -> route_localnet
	Shortcuts     shortcut.Table                     // the loopback shortcut's entries
	Counting      forward.CountingState              // the counting table; nil where nft is not installed
	Host          hostfw.Host                        // the host's own firewalls

	// Of the namespaces queried that exist: the namespace side of the
	// pair (or why it could not be read), and nsrun's /etc/netns files.
	Peers      map[string]veth.Peer
	PeerErrors map[string]error
	Etc        map[string]map[string]EtcFile // namespace -> file name -> what it holds

	// Cgroups are the cgroups of the namespaces queried that have one;
	// CgroupLayout is the host's (cgroup v1 or v2), with the controllers
	// it offers.
	Cgroups      map[string]cgroup.State
	CgroupUsage  map[string]cgroup.Usage // with Query.Usage
	CgroupLayout cgroup.Layout
	Controllers  map[string]bool

	// Shaping is, by namespace, the qdiscs of both ends of the links of
	// Query.Shaped that exist; QdiscKinds, for each kind of Query.QdiscKinds, why
	// the kernel cannot make it (nil: it can).
	Shaping    map[string]shape.Link
	QdiscKinds map[string]error
}

// EtcFile is one of the files nsrun writes in /etc/netns/NS, as found:
// enough to tell whether nsrun wrote it and whether it holds some content.
type EtcFile struct {
	Ours bool     // it starts with nsrun's marker
	Sum  [32]byte // SHA-256 of its content
}

// EtcFileOf describes a file of that content.
func EtcFileOf(content string) EtcFile {
	return EtcFile{Ours: strings.HasPrefix(content, EtcMarker), Sum: sha256.Sum256([]byte(content))}
}

// NeedAcceptRA lists, sorted, the links with an RA-learned default route
// whose accept_ra is not 2: with forwarding on they would lose that route.
func (o Observed) NeedAcceptRA() []string {
	var out []string
	for l, v := range o.AcceptRA {
		if v != "2" {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return out
}

// Alias returns a queried host link's alias; "" for none, or no such
// link.
func (o Observed) Alias(link string) string { return o.Links[link].Alias }
