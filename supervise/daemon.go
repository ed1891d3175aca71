package supervise

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/nsrun/nsrun/internal/daemon"
	"github.com/nsrun/nsrun/internal/proc"
	"github.com/nsrun/nsrun/netns"
	"golang.org/x/sys/unix"
)

// Daemon starts, reloads and stops the supervisor of a project
// directory: it runs `Self supervise DIR` as a detached process (its own
// session, output to DIR/supervisor.log).
type Daemon struct {
	Self  string        // the nsrun binary
	Grace time.Duration // the supervisor's own grace for its processes
}

func (s Daemon) Apply(ctx context.Context, dir string, plan Plan) error {
	if err := WritePlan(dir, plan); err != nil {
		return err
	}
	st, err := ReadStatus(dir)
	running := err == nil && proc.Alive(proc.Process{PID: st.PID, StartTime: st.StartTime})
	switch {
	case len(plan.Processes) == 0:
		if running {
			return s.Stop(dir)
		}
		return nil
	case running:
		if err := proc.Signal(proc.Process{PID: st.PID, StartTime: st.StartTime}, unix.SIGHUP); err != nil {
			return err
		}
	default:
		// One that runs without a status (its up was killed before it wrote
		// one) must not go on beside the new one.
		if err := s.Stop(dir); err != nil {
			return err
		}
		os.Remove(StatusPath(dir))
		if err := s.start(dir); err != nil {
			return err
		}
	}
	return waitGeneration(ctx, dir, plan.Generation)
}

func (s Daemon) start(dir string) error {
	_, err := daemon.Start(SupervisorLog(dir), s.Self, "supervise", "--grace", s.Grace.String(), dir)
	if err != nil {
		return fmt.Errorf("starting the supervisor: %w", err)
	}
	return nil
}

// startStall is how long up waits for the supervisor to start another
// process before it gives up.
var startStall = 10 * time.Second

// waitGeneration waits until the supervisor reports the plan's generation
// with every process started (running, or already exited): up returns
// once every process exists. It waits as long as the supervisor runs and
// starts processes, and gives up after stall with none started (a busy
// machine starting a hundred programs at once takes a while; a stuck
// supervisor starts none).
func waitGeneration(ctx context.Context, dir string, gen int) error {
	stall := startStall
	started, since := -1, time.Now()
	for {
		st, err := ReadStatus(dir)
		alive := err == nil && proc.Alive(proc.Process{PID: st.PID, StartTime: st.StartTime})
		if alive && st.Generation == gen {
			n := len(slices.DeleteFunc(slices.Clone(st.Processes), func(p ProcessStatus) bool { return p.State == Starting }))
			if n == len(st.Processes) {
				return nil
			}
			if n > started {
				started, since = n, time.Now()
			}
		}
		if time.Since(since) > stall {
			return fmt.Errorf("the supervisor did not take up the new processes (none started for %s); see %s", stall, SupervisorLog(dir))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the supervisor did not take up the new processes: %w; see %s", ctx.Err(), SupervisorLog(dir))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Stop stops the supervisor of dir: the one its status names, and any
// other found running for dir (one started by an up that was killed
// before the supervisor wrote its status).
func (s Daemon) Stop(dir string) error {
	procs := daemon.Find(s.Self, "supervise", func(d string) bool { return d == dir })
	// A missing or corrupt status names none: the scan above and the
	// namespaces' process lists catch what is left.
	if st, err := ReadStatus(dir); err == nil && st.PID != 0 {
		procs = append(procs, proc.Process{PID: st.PID, StartTime: st.StartTime})
	}
	return proc.Stop(procs, s.Grace+5*time.Second)
}

// StopAll stops every supervisor of a project directory below root,
// recorded or not: down --all after the records were lost.
func (s Daemon) StopAll(root string) error {
	return proc.Stop(daemon.Find(s.Self, "supervise", func(d string) bool { return filepath.Dir(d) == root }), s.Grace+5*time.Second)
}

func (s Daemon) Status(dir string) (Status, error) { return ReadStatus(dir) }

func (s Daemon) Dial(ns string, addrs []netip.Addr, port uint16) error {
	return netns.Do(ns, func() error {
		var err error
		for _, a := range addrs {
			var c net.Conn
			c, err = net.DialTimeout("tcp4", net.JoinHostPort(a.String(), strconv.Itoa(int(port))), 200*time.Millisecond)
			if err == nil {
				c.Close()
				return nil
			}
		}
		return err
	})
}
