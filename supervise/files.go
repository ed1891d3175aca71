// Package supervise keeps a project's processes running: a detached
// supervisor per project starts each through `nsrun exec` (the one code
// path that enters a namespace), writes their output to size-capped logs,
// restarts them by policy with backoff, runs their health checks and
// holds back those whose dependencies are not ready yet, and records
// their status. It never changes namespace itself: a check's socket is
// made inside the namespace by a thread that enters it and comes back
// (DialIn), and a check's command starts through `nsrun exec` too.
package supervise

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/nsrun/nsrun/internal/atomicfile"
)

// Process is one process to keep running.
type Process struct {
	Namespace string   `json:"namespace"`
	Name      string   `json:"name"`
	Command   []string `json:"command"`
	Workdir   string   `json:"workdir,omitempty"`
	Env       []string `json:"env,omitempty"`
	User      string   `json:"user,omitempty"`
	Restart   string   `json:"restart"` // no | on-failure | always
	// Cgroup is the leaf of the namespace's cgroup the process runs in
	// (nsrun exec --cgroup); "" when the namespace has none.
	Cgroup string `json:"cgroup,omitempty"`
	// Health is checked while the process runs; nil for none.
	Health *Health `json:"health,omitempty"`
	// DependsOn are the processes that must be ready, and healthy if
	// they have a check, before this one first starts.
	DependsOn []Dependency `json:"depends_on,omitempty"`
}

// Key names a process within its project: NS/NAME.
func (p Process) Key() string { return p.Namespace + "/" + p.Name }

// Hash identifies a process definition; a process whose hash changes is
// restarted, one whose hash stays is left running.
func (p Process) Hash() string {
	data, _ := json.Marshal(p)
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:8])
}

// Plan is what the supervisor should run; up writes it, the supervisor
// reads it at start and on SIGHUP.
type Plan struct {
	Generation int       `json:"generation"`
	Processes  []Process `json:"processes"`
}

// Status is what the supervisor reports.
type Status struct {
	PID        int             `json:"pid"`
	StartTime  uint64          `json:"start_time"` // of the supervisor, in clock ticks since boot
	Generation int             `json:"generation"` // of the plan it runs
	Processes  []ProcessStatus `json:"processes"`
}

// Process states.
const (
	Starting = "starting"
	Waiting  = "waiting" // for its dependencies, before its first start
	Running  = "running"
	Backoff  = "backoff" // exited, restarting after a pause
	Exited   = "exited"  // exited, not to be restarted
	Stopped  = "stopped" // stopped by the supervisor
)

// ProcessStatus is one process as the supervisor last saw it.
type ProcessStatus struct {
	Namespace string    `json:"namespace"`
	Name      string    `json:"name"`
	Hash      string    `json:"hash"`
	State     string    `json:"state"`
	PID       int       `json:"pid,omitempty"`
	StartTime uint64    `json:"start_time,omitempty"`
	StartedAt time.Time `json:"started_at,omitempty"`
	Restarts  int       `json:"restarts"`
	ExitCode  int       `json:"exit_code"` // of the last exit; 128+N for signal N
	// ExitCause says why the last exit happened where the exit status
	// cannot: "killed: out of memory (limit 256M)". OOMKills counts the
	// exits the OOM killer caused.
	ExitCause string `json:"exit_cause,omitempty"`
	OOMKills  int    `json:"oom_kills,omitempty"`
	Error     string `json:"error,omitempty"`
	// Health is what its checks found while it runs; nil without a
	// check, or before it runs.
	Health *HealthStatus `json:"health,omitempty"`
	// Waiting says what a process held back by its dependencies waits
	// for.
	Waiting string `json:"waiting,omitempty"`
}

// Key names the process: NS/NAME.
func (s ProcessStatus) Key() string { return s.Namespace + "/" + s.Name }

// Files in a project's state directory.
func planPath(dir string) string   { return filepath.Join(dir, "processes.json") }
func statusPath(dir string) string { return StatusPath(dir) }

// StatusPath is where the supervisor writes its status.
func StatusPath(dir string) string { return filepath.Join(dir, "status.json") }

// LogPath is where a process's output goes.
func LogPath(dir, ns, name string) string { return filepath.Join(dir, "logs", ns, name+".log") }

// SupervisorLog is where the supervisor's own messages go.
func SupervisorLog(dir string) string { return filepath.Join(dir, "supervisor.log") }

// WritePlan records the plan for the supervisor.
func WritePlan(dir string, p Plan) error { return atomicfile.WriteJSON(planPath(dir), p) }

// ReadPlan reads the plan; a missing plan is an empty one.
func ReadPlan(dir string) (Plan, error) {
	var p Plan
	err := atomicfile.ReadJSON(planPath(dir), &p)
	if errors.Is(err, os.ErrNotExist) {
		return Plan{}, nil
	}
	return p, err
}

// ReadStatus reads the supervisor's status; a missing one is ErrNotExist.
func ReadStatus(dir string) (Status, error) {
	var s Status
	err := atomicfile.ReadJSON(statusPath(dir), &s)
	return s, err
}
