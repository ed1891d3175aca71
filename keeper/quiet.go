package keeper

import (
	"context"
	"errors"

	"github.com/nsrun/nsrun/internal/xtables"
)

// QuietFingerprint is a digest of iptables-legacy's rules and policies
// in both families, not its counters (xtables.Digest, read from the
// kernel without running a program): it sends no events, so the keeper
// looks when this changes (with the qdiscs of the namespaces' sides of
// shaped links, which nsrun keep adds).
func QuietFingerprint(context.Context) string {
	v4, err4 := xtables.Digest(false)
	v6, err6 := xtables.Digest(true)
	if err := errors.Join(err4, err6); err != nil {
		return "unreadable: " + err.Error()
	}
	return v4 + "\n" + v6
}
