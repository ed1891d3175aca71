package nftables

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/specs"
)

// Counts are the packets each publication chain's rule counted: the
// connections of that published port (forward.Counts).
type Counts map[string]uint64

// Connections returns the count of the port's publication chain.
func (c Counts) Connections(project string, ns forward.Namespace, port specs.Port) (uint64, bool) {
	to, ok := forward.DNATTo(ns, port)
	if !ok {
		return 0, false
	}
	n, ok := c[publicationOf(project, ns.Name, to.String(), port).chain]
	return n, ok
}

// Counts reads the counters of every publication chain, in one nft run;
// none when the table is not there.
func (f *Firewall) Counts(ctx context.Context) (forward.Counts, error) {
	out, err := f.run.list(ctx)
	if err != nil {
		return nil, err
	}
	return parseCounts(out)
}

// parseCounts reads the counters of the publication chains' rules from
// what nft -j list table prints.
func parseCounts(out []byte) (Counts, error) {
	var doc struct {
		Nftables []struct {
			Rule *struct {
				Family string                       `json:"family"`
				Table  string                       `json:"table"`
				Chain  string                       `json:"chain"`
				Expr   []map[string]json.RawMessage `json:"expr"`
			} `json:"rule"`
		} `json:"nftables"`
	}
	c := Counts{}
	if len(out) == 0 {
		return c, nil
	}
	if err := json.NewDecoder(bytes.NewReader(out)).Decode(&doc); err != nil {
		return nil, fmt.Errorf("nft -j list table %s %s: %w", Family, Table, err)
	}
	for _, o := range doc.Nftables {
		r := o.Rule
		if r == nil || r.Family != string(Family) || r.Table != Table || !strings.HasPrefix(r.Chain, publicationPrefix) {
			continue
		}
		for _, e := range r.Expr {
			if raw, ok := e["counter"]; ok {
				var n struct {
					Packets uint64 `json:"packets"`
				}
				if err := json.Unmarshal(raw, &n); err != nil {
					return nil, fmt.Errorf("nft -j list table %s %s: the counter of chain %q: %w", Family, Table, r.Chain, err)
				}
				c[r.Chain] += n.Packets
			}
		}
	}
	return c, nil
}

// list runs nft -j list table inet nsrun, never from the cache (the
// counters change with no change of the ruleset); nothing when the table
// is not there.
func (p *program) list(ctx context.Context) ([]byte, error) {
	var errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, "nft", "-j", "list", "table", string(Family), Table)
	cmd.Stderr = &errOut
	out, err := cmd.Output()
	if err != nil {
		if strings.Contains(errOut.String(), "No such file or directory") {
			return nil, nil
		}
		return nil, fmt.Errorf("nft -j list table %s %s: %w: %s", Family, Table, err, strings.TrimSpace(errOut.String()))
	}
	return out, nil
}

// list of the fake: its counters are not kept, so it has none.
func (f fake) list(ctx context.Context) ([]byte, error) { return nil, ctx.Err() }
