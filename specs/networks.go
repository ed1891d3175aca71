package specs

import (
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// DefaultNetwork is the network of every namespace that names none, as in
// docker compose; a spec may declare it (external: true shares it).
const DefaultNetwork = "default"

// MaxNetworkName bounds network names, which become set names and rule
// comments.
const MaxNetworkName = 32

// Network is one of a project's networks. Two namespaces reach each
// other's addresses directly if and only if they share a network; an
// external network is shared by every project that declares one of its
// name.
type Network struct {
	Name     string
	External bool

	pos position
}

var networkKeys = []string{"external"}

// CheckNetworkName reports why name cannot name a network.
func CheckNetworkName(name string) error {
	return checkName(name, "network name", MaxNetworkName)
}

// networks decodes the top-level networks: mapping.
func (d *decoder) networks(s *Spec, n *yaml.Node) {
	d.mapping(n, "networks", nil, func(name string, k, v *yaml.Node) {
		path := join("networks", name)
		nw := &Network{Name: name, pos: at(k)}
		if err := CheckNetworkName(name); err != nil {
			d.add(at(k), path, "%v", err)
		}
		s.Networks = append(s.Networks, nw)
		if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null" {
			return // "front:" alone
		}
		d.mapping(v, path, networkKeys, func(key string, k, v *yaml.Node) {
			nw.External, _ = d.boolean(v, join(path, key))
		})
	})
}

// namespaceNetworks decodes a namespace's networks: list.
func (d *decoder) namespaceNetworks(ns *Namespace, n *yaml.Node, path string) {
	ns.Networks = []string{} // networks: [] is on none
	d.sequence(n, path, func(i int, item *yaml.Node) {
		name, ok := d.str(item, index(path, i))
		switch {
		case !ok:
		case slices.Contains(ns.Networks, name):
			d.add(at(item), index(path, i), "network %s is listed twice", quote(name))
		default:
			ns.Networks = append(ns.Networks, name)
			ns.networkPos = append(ns.networkPos, at(item))
		}
	})
}

// checkNetworks puts every namespace that names no network on the
// default one, and reports networks a namespace names that the spec does
// not declare.
func (d *decoder) checkNetworks(s *Spec) {
	for _, ns := range s.Namespaces {
		if ns.Networks == nil {
			ns.Networks = []string{DefaultNetwork}
			continue
		}
		for i, name := range ns.Networks {
			if s.Network(name) == nil {
				d.add(ns.networkPos[i], index(join(join("namespaces", ns.Name), "networks"), i),
					"network %s is not declared; declare it under networks: at the top of the spec (declared: %s)", quote(name), s.networkNames())
			}
		}
	}
}

// Network returns the network of that name: a declared one, or the
// default network when the spec does not declare it.
func (s *Spec) Network(name string) *Network {
	for _, nw := range s.Networks {
		if nw.Name == name {
			return nw
		}
	}
	if name == DefaultNetwork {
		return &Network{Name: DefaultNetwork}
	}
	return nil
}

func (s *Spec) networkNames() string {
	if len(s.Networks) == 0 {
		return "none"
	}
	var names []string
	for _, nw := range s.Networks {
		names = append(names, quote(nw.Name))
	}
	return strings.Join(names, ", ")
}

// NetworkKey names a network on the host: PROJECT/NAME for a project's
// own network, NAME alone for an external one, which every project that
// declares it shares. Network names hold no '/', so the two never meet.
func NetworkKey(project string, nw *Network) string {
	if nw.External {
		return nw.Name
	}
	return project + "/" + nw.Name
}

// NetworkOfKey reads a network's name back from its key, and whether it
// is external.
func NetworkOfKey(key string) Network {
	if i := strings.LastIndexByte(key, '/'); i >= 0 {
		return Network{Name: key[i+1:]}
	}
	return Network{Name: key, External: true}
}

// NetworkKeys are the host-wide keys of a namespace's networks.
func (s *Spec) NetworkKeys(ns *Namespace) []string {
	out := make([]string, 0, len(ns.Networks))
	for _, name := range ns.Networks {
		if nw := s.Network(name); nw != nil {
			out = append(out, NetworkKey(s.Name, nw))
		}
	}
	return out
}

// Shares reports whether two namespaces of the spec share a network.
func (s *Spec) Shares(a, b *Namespace) bool {
	for _, n := range a.Networks {
		if slices.Contains(b.Networks, n) {
			return true
		}
	}
	return false
}
