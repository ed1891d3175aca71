package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/internal/atomicfile"
)

// Host is nsrun's record of the host settings it changed, so that the
// last down can put them back.
type Host struct {
	// IPForward is net.ipv4.ip_forward as it was before nsrun set it to 1;
	// empty when nsrun did not change it.
	IPForward string `json:"ip_forward,omitempty"`
	// IPv6Forward is net.ipv6.conf.all.forwarding as it was before nsrun
	// set it to 1, and AcceptRA each link's accept_ra before nsrun set it
	// to 2 (so that the link keeps its RA-learned default route when
	// forwarding is on); empty when nsrun did not change them.
	IPv6Forward string            `json:"ipv6_forward,omitempty"`
	AcceptRA    map[string]string `json:"accept_ra,omitempty"`
	// Tables are the tables each firewall backend's tools had made before
	// nsrun's first change (see forward.Firewall.MadeTables); nil until
	// recorded. The last down removes the others it finds empty: those
	// iptables-nft made for nsrun.
	Tables map[forward.Backend][]string `json:"tables"`
}

func (st Store) hostPath() string { return filepath.Join(st.Dir, "host.json") }

// LoadHost reads the host record; a missing one is empty.
func (st Store) LoadHost() (Host, error) {
	var h Host
	data, err := os.ReadFile(st.hostPath())
	if errors.Is(err, os.ErrNotExist) {
		return h, nil
	}
	if err != nil {
		return h, fmt.Errorf("reading %s: %w", st.hostPath(), err)
	}
	if err := json.Unmarshal(data, &h); err != nil {
		return Host{}, nil // corrupt: nothing known to restore
	}
	return h, nil
}

// SaveHost writes the host record atomically.
func (st Store) SaveHost(h Host) error {
	return atomicfile.WriteJSON(st.hostPath(), h)
}
