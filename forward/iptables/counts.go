package iptables

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/specs"
)

// Counts are the packets each DNAT rule of nsrun's chains counted, by
// family and the rule's arguments after its chain: the connections of
// that published port (forward.Counts).
type Counts map[Family]map[string]uint64

// Connections returns the count of the port's DNAT rule.
func (c Counts) Connections(project string, ns forward.Namespace, port specs.Port) (uint64, bool) {
	to, ok := forward.DNATTo(ns, port)
	if !ok {
		return 0, false
	}
	f := IPv4
	if port.Is6() {
		f = IPv6
	}
	args := cat(dnatMatch(port), comment(Comment(project, ns.Name)), []string{"-j", "DNAT", "--to-destination", dnatTarget(to, port)})
	n, ok := c[f][joinArgs(args)]
	return n, ok
}

// Counts reads the counters of the projects' DNAT rules, of both
// families, never from the cache (counters change with no change of the
// rules): iptables-nft's in process, chain by chain (see
// countsInProcess), and otherwise, as iptables-legacy's, from one
// BACKEND-save -c -t nat each.
func (f *Firewall) Counts(ctx context.Context, projects []forward.Project) (forward.Counts, error) {
	c := Counts{}
	for fam, r := range map[Family]runner{IPv4: f.run, IPv6: f.run6} {
		if fam == IPv6 && !r.installed() {
			continue
		}
		if _, kernel := r.(programs); kernel && f.backend == NFT {
			if got, ok, err := countsInProcess(fam, projects); err == nil && ok {
				c[fam] = got
				continue
			}
		}
		out, err := r.counted(ctx)
		if err != nil {
			return nil, err
		}
		if c[fam], err = parseCounts(out); err != nil {
			return nil, fmt.Errorf("%s: %w", fam.program(f.backend), err)
		}
	}
	return c, nil
}

// parseCounts reads the DNAT rules of what iptables-save -c -t nat
// prints: "[PACKETS:BYTES] -A CHAIN ARGS", by ARGS.
func parseCounts(text string) (map[string]uint64, error) {
	out := map[string]uint64{}
	n := 0
	for line := range strings.Lines(text) {
		n++
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "[") || !strings.Contains(line, " -j DNAT ") {
			continue
		}
		counters, rule, ok := strings.Cut(line[1:], "] -A ")
		packets, _, ok2 := strings.Cut(counters, ":")
		_, args, ok3 := strings.Cut(rule, " ")
		if !ok || !ok2 || !ok3 {
			return nil, fmt.Errorf("line %d: not a counted rule: %q", n, line)
		}
		v, err := strconv.ParseUint(packets, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("line %d: packet count %q: %v", n, packets, err)
		}
		out[args] += v
	}
	return out, nil
}
