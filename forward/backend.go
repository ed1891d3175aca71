package forward

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// Backend is an iptables variant: the nf_tables one or the legacy
// x_tables one. Both can be active at once, and a packet must pass both.
type Backend string

const (
	NFT    Backend = "nft"
	Legacy Backend = "legacy"
)

func (b Backend) save() string    { return "iptables-" + string(b) + "-save" }
func (b Backend) restore() string { return "iptables-" + string(b) + "-restore" }

// Available reports whether the backend's save and restore programs exist.
func (b Backend) Available() bool {
	_, err1 := exec.LookPath(b.save())
	_, err2 := exec.LookPath(b.restore())
	return err1 == nil && err2 == nil
}

// Backends are the iptables backends nsrun knows, in the order it looks
// at them.
var Backends = []Backend{NFT, Legacy}

// ErrNoIptables is returned when neither backend is installed.
var ErrNoIptables = errors.New("iptables is not installed; install it (apt-get install iptables) and try again")

// Choose picks the backend for a new project's rules from what each
// holds: nsrun's own chains first (a backend once chosen stays), then the
// one whose FORWARD drops packets (accepts elsewhere would not help), then
// the one in use, else nft. A nil snapshot means the backend is not
// installed.
func Choose(nft, legacy *Snapshot) (Backend, error) {
	switch {
	case nft == nil && legacy == nil:
		return "", ErrNoIptables
	case nft == nil:
		return Legacy, nil
	case legacy == nil:
		return NFT, nil
	case nft.HasNsrun() && legacy.HasNsrun():
		return "", errors.New("nsrun's chains exist in both iptables-nft and iptables-legacy; remove them with 'nsrun down --all' and try again")
	case legacy.HasNsrun():
		return Legacy, nil
	case nft.HasNsrun():
		return NFT, nil
	case legacy.DropsForward() && !nft.DropsForward():
		return Legacy, nil
	case nft.DropsForward():
		return NFT, nil
	case legacy.InUse() && !nft.InUse():
		return Legacy, nil
	}
	return NFT, nil
}

// Placement says where a project's rules go: all of them in Backend, and
// its FORWARD accepts also in each backend of Accepts, whose FORWARD
// drops: a packet must pass both backends, and an accept in one does not
// override a drop in the other.
type Placement struct {
	Backend Backend
	Accepts []Backend
}

// Place decides a project's placement from the backend it recorded ("" for
// a new project, which Choose decides) and a snapshot of each installed
// backend (nil when not installed).
func Place(recorded Backend, snaps map[Backend]*Snapshot) (Placement, error) {
	b := recorded
	if b == "" {
		var err error
		if b, err = Choose(snaps[NFT], snaps[Legacy]); err != nil {
			return Placement{}, err
		}
	} else if snaps[b] == nil {
		return Placement{}, fmt.Errorf("the project's rules are in iptables-%s, which is not installed now; install it (apt-get install iptables) or take the project down first", b)
	}
	pl := Placement{Backend: b}
	for _, other := range Backends {
		if other != b && snaps[other] != nil && snaps[other].DropsForward() {
			pl.Accepts = append(pl.Accepts, other)
		}
	}
	return pl, nil
}

// Firewall runs one backend's save and restore programs.
type Firewall struct {
	Backend Backend
	// Wait bounds how long restore waits for the xtables lock.
	Wait time.Duration
}

// Snapshot reads the backend's nat and filter tables.
func (f Firewall) Snapshot(ctx context.Context) (*Snapshot, error) {
	return SaveOf(ctx, f.Backend)
}

// SaveOf runs BACKEND-save and parses it; it does not load any module.
func SaveOf(ctx context.Context, b Backend) (*Snapshot, error) {
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, b.save())
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s: %w: %s", b.save(), err, strings.TrimSpace(errOut.String()))
	}
	return ParseSave(out.String())
}

// Apply runs BACKEND-restore --noflush with the script, waiting a bounded
// time for the xtables lock. An empty script runs nothing.
func (f Firewall) Apply(ctx context.Context, script string) error {
	if script == "" {
		return nil
	}
	wait := f.Wait
	if wait <= 0 {
		wait = 30 * time.Second
	}
	var errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, f.Backend.restore(), "--noflush", "-w", fmt.Sprint(int(wait.Seconds())))
	cmd.Stdin, cmd.Stderr = strings.NewReader(script), &errOut
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s\ninput was:\n%s", f.Backend.restore(), err, strings.TrimSpace(errOut.String()), script)
	}
	return nil
}
