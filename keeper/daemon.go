package keeper

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nsrun/nsrun/internal/atomicfile"
	"github.com/nsrun/nsrun/internal/daemon"
	"github.com/nsrun/nsrun/internal/proc"
)

// Status is what the keeper writes once it watches.
type Status struct {
	PID       int    `json:"pid"`
	StartTime uint64 `json:"start_time"`
}

// StatusFile is where the keeper writes its Status.
func StatusFile(dir string) string { return filepath.Join(dir, "keeper.json") }

// Log is the keeper's own output; each repair is logged to its
// project's supervisor.log.
func Log(dir string) string { return filepath.Join(dir, "keeper.log") }

// Daemon starts and stops the keeper: it runs `Self keep DIR` as a
// detached process (its own session, output to DIR/keeper.log).
type Daemon struct {
	Self string // the nsrun binary
}

func (k Daemon) Running(dir string) (proc.Process, bool) {
	var st Status
	if err := atomicfile.ReadJSON(StatusFile(dir), &st); err != nil || st.PID == 0 {
		return proc.Process{}, false
	}
	p := proc.Process{PID: st.PID, StartTime: st.StartTime}
	return p, proc.Alive(p)
}

func (k Daemon) Start(ctx context.Context, dir string) error {
	if _, ok := k.Running(dir); ok {
		return nil
	}
	if err := k.Stop(dir); err != nil { // one without a status must not go on beside it
		return err
	}
	pid, err := daemon.Start(Log(dir), k.Self, "keep", dir)
	if err != nil {
		return fmt.Errorf("starting the keeper: %w", err)
	}
	running := func() bool { p, ok := k.Running(dir); return ok && p.PID == pid }
	if !daemon.Await(ctx, 10*time.Second, 10*time.Millisecond, running) {
		return fmt.Errorf("the keeper did not start; see %s, or run up with --no-heal", Log(dir))
	}
	return nil
}

// Hold makes the running keeper of dir hold exactly the ports the
// projects publish now, and returns once it does. A keeper of an older
// nsrun, which cannot, is replaced.
func (k Daemon) Hold(ctx context.Context, dir string) error {
	err := ask(ctx, dir)
	if !errors.Is(err, errOldKeeper) {
		return err
	}
	if err := k.Stop(dir); err != nil {
		return err
	}
	return k.Start(ctx, dir) // a new keeper holds them from its start
}

func (k Daemon) Stop(dir string) error {
	procs := daemon.Find(k.Self, "keep", func(d string) bool { return d == dir })
	if p, ok := k.Running(dir); ok {
		procs = append(procs, p)
	}
	err := proc.Stop(procs, 5*time.Second)
	os.Remove(StatusFile(dir))
	os.Remove(Socket(dir))
	return err
}
