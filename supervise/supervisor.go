package supervise

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/nsrun/nsrun/cgroup"
	"github.com/nsrun/nsrun/internal/atomicfile"
	"github.com/nsrun/nsrun/internal/proc"
	"github.com/nsrun/nsrun/specs"
)

// Backoff bounds for restarts: the pause doubles from the first to the
// cap, and starts over once a process has run for resetAfter.
const (
	firstBackoff = time.Second
	maxBackoff   = 30 * time.Second
	resetAfter   = 10 * time.Second
)

// Supervisor runs the processes of one project.
type Supervisor struct {
	Dir   string        // the project's state directory
	Self  string        // the nsrun binary: processes start through `nsrun exec`
	Grace time.Duration // between SIGTERM and SIGKILL when stopping
	// Dial connects inside a namespace for health and dependency checks;
	// nil is DialIn.
	Dial DialFunc

	checkSlots chan struct{} // bounds the checks run at once

	mu      sync.Mutex
	procs   map[string]*supervised
	status  Status
	changed chan struct{} // closed at the next status change (see changes)
	dirty   bool          // the status changed quietly since it was written (see note)
}

// supervised is one process under supervision.
type supervised struct {
	def  Process
	st   ProcessStatus
	stop chan struct{} // closed to stop the process for good
	done chan struct{} // closed when its monitor has ended
	log  *logFile      // its log, once its monitor opened it
}

// Run supervises until ctx ends, then stops every process. SIGHUP makes
// it read the plan again: new and changed processes start, removed and
// changed ones stop, unchanged ones are left alone.
func (s *Supervisor) Run(ctx context.Context) error {
	s.procs = map[string]*supervised{}
	s.checkSlots = make(chan struct{}, checkWorkers)
	s.status.PID = os.Getpid()
	start, err := proc.StartTime(s.status.PID)
	if err != nil {
		return err
	}
	s.status.StartTime = start
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	s.reload()
	check := time.NewTicker(dirCheck)
	defer check.Stop()
	for {
		select {
		case <-hup:
			s.reload()
		case <-check.C:
			s.flush()
			if _, err := os.Stat(s.Dir); errors.Is(err, os.ErrNotExist) {
				log.Printf("%s was removed: stopping every process and exiting", s.Dir)
				s.stopAll()
				return nil
			}
		case <-ctx.Done():
			s.stopAll()
			return nil
		}
	}
}

// dirCheck is how often the supervisor checks that its project directory
// still exists: once it is gone (rm -rf /run/nsrun, then down --all), the
// project is, and the supervisor ends rather than run what nobody records.
const dirCheck = time.Second

func (s *Supervisor) reload() {
	plan, err := ReadPlan(s.Dir)
	if err != nil {
		log.Printf("reading the plan: %v; keeping what runs", err)
		return
	}
	want := map[string]Process{}
	for _, p := range plan.Processes {
		want[p.Key()] = p
	}
	s.mu.Lock()
	var stale []*supervised
	for key, p := range s.procs {
		// Removed, changed and exited ones go; changed and exited start anew.
		if w, ok := want[key]; !ok || w.Hash() != p.def.Hash() || p.st.State == Exited {
			stale = append(stale, p)
			delete(s.procs, key)
		}
	}
	s.mu.Unlock()
	stopEach(stale)
	s.mu.Lock()
	for key, def := range want {
		if _, running := s.procs[key]; !running {
			p := &supervised{def: def, stop: make(chan struct{}), done: make(chan struct{}),
				st: ProcessStatus{Namespace: def.Namespace, Name: def.Name, Hash: def.Hash(), State: Starting}}
			s.procs[key] = p
			go s.monitor(p)
		}
	}
	s.status.Generation = plan.Generation
	s.writeStatusLocked()
	s.mu.Unlock()
}

func (s *Supervisor) stopAll() {
	s.mu.Lock()
	var all []*supervised
	for _, p := range s.procs {
		all = append(all, p)
	}
	s.mu.Unlock()
	stopEach(all)
}

// stopEach stops processes in parallel and waits for all of them.
func stopEach(procs []*supervised) {
	for _, p := range procs {
		close(p.stop)
	}
	for _, p := range procs {
		<-p.done
	}
}

// monitor runs one process for as long as its restart policy says.
func (s *Supervisor) monitor(p *supervised) {
	defer close(p.done)
	logf, err := openLog(s.Dir, p.def.Namespace, p.def.Name, MaxLogSize)
	if err != nil {
		s.update(p, func(st *ProcessStatus) { st.State, st.Error = Exited, err.Error() })
		return
	}
	defer logf.Close()
	s.mu.Lock()
	p.log = logf
	s.mu.Unlock()
	if len(p.def.DependsOn) > 0 {
		if !s.waitDeps(p) {
			s.update(p, func(st *ProcessStatus) { st.State, st.Waiting = Stopped, "" })
			return
		}
		s.update(p, func(st *ProcessStatus) { st.Waiting = "" })
	}
	backoff := firstBackoff
	for {
		started := time.Now()
		ooms := s.oomKills(p.def)
		code, stopped, unhealthy := s.runOnce(p, logf)
		if stopped {
			s.update(p, func(st *ProcessStatus) { st.State, st.PID, st.ExitCode, st.ExitCause = Stopped, 0, code, "" })
			return
		}
		if unhealthy == onFailureStop {
			s.update(p, func(st *ProcessStatus) {
				st.State, st.PID, st.ExitCode, st.ExitCause = Exited, 0, code, "unhealthy: stopped (on_failure: stop)"
			})
			return
		}
		cause := s.exitCause(p.def, code, ooms)
		exited := func(state string) func(*ProcessStatus) {
			return func(st *ProcessStatus) {
				st.State, st.PID, st.ExitCode, st.ExitCause = state, 0, code, cause
				if cause != "" {
					st.OOMKills++
				}
			}
		}
		if cause != "" {
			fmt.Fprintf(logf, "[nsrun] %s\n", cause)
		}
		if unhealthy != onFailureRestart && !shouldRestart(p.def.Restart, code) {
			s.update(p, exited(Exited))
			return
		}
		if time.Since(started) >= resetAfter {
			backoff = firstBackoff
		}
		s.update(p, exited(Backoff))
		if unhealthy == onFailureRestart {
			fmt.Fprintf(logf, "[nsrun] unhealthy (on_failure: restart): stopped with status %d; restarting in %s\n", code, backoff)
		} else {
			fmt.Fprintf(logf, "[nsrun] exited with status %d; restarting in %s\n", code, backoff)
		}
		select {
		case <-time.After(backoff):
		case <-p.stop:
			s.update(p, func(st *ProcessStatus) { st.State = Stopped })
			return
		}
		backoff = min(backoff*2, maxBackoff)
		s.update(p, func(st *ProcessStatus) { st.Restarts++ })
	}
}

// oomKills counts the OOM kills in the process's leaf of its namespace's
// cgroup; 0 without one.
func (s *Supervisor) oomKills(def Process) uint64 {
	if def.Cgroup == "" {
		return 0
	}
	return cgroup.Host().OOMKills(def.Namespace, def.Cgroup)
}

// exitCause is "killed: out of memory (limit ...)" for a process killed
// by SIGKILL (or whose command exited as such, 137) while the OOM killer
// ended a process of its leaf; "" otherwise.
func (s *Supervisor) exitCause(def Process, code int, before uint64) string {
	if code != 128+int(syscall.SIGKILL) || def.Cgroup == "" || s.oomKills(def) <= before {
		return ""
	}
	if limit := cgroup.Host().MemoryLimit(def.Namespace, def.Cgroup); limit > 0 {
		return fmt.Sprintf("killed: out of memory (limit %s)", specs.FormatBytes(limit))
	}
	return "killed: out of memory"
}

// What a process that turned unhealthy gets (its check's on_failure).
const (
	onFailureRestart = string(specs.OnFailureRestart)
	onFailureStop    = string(specs.OnFailureStop)
)

// runOnce starts the process, checks its health while it runs, and
// waits for it to exit, or stops it when asked or when it turned
// unhealthy with an on_failure of restart or stop. It returns the exit
// status (128+N for signal N) and, when its health ended it, that
// on_failure.
func (s *Supervisor) runOnce(p *supervised, logf *logFile) (code int, stopped bool, unhealthy string) {
	cmd := exec.Command(s.Self, execArgs(p.def)...)
	cmd.Env = baseEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(logf, "[nsrun] cannot start: %v\n", err)
		return 127, false, ""
	}
	started := time.Now()
	start, _ := proc.StartTime(cmd.Process.Pid)
	s.update(p, func(st *ProcessStatus) {
		st.State, st.PID, st.StartTime, st.StartedAt, st.Error, st.Health = Running, cmd.Process.Pid, start, started, "", nil
	})
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	sick := make(chan string, 1)
	if h := p.def.Health; h != nil {
		ctx, cancel := context.WithCancel(context.Background())
		checked := make(chan struct{})
		defer func() { cancel(); <-checked }()
		go func() {
			defer close(checked)
			s.watchHealth(ctx, p, started, func(string) {
				if h.OnFailure == onFailureRestart || h.OnFailure == onFailureStop {
					select {
					case sick <- h.OnFailure:
					default: // told already
					}
				}
			})
		}()
	}
	select {
	case err := <-waited:
		return exitCode(cmd, err), false, ""
	case <-p.stop:
		s.terminate(cmd.Process.Pid, waited)
		return exitCode(cmd, nil), true, ""
	case action := <-sick:
		fmt.Fprintf(logf, "[nsrun] unhealthy: stopping it (on_failure: %s)\n", action)
		s.terminate(cmd.Process.Pid, waited)
		return exitCode(cmd, nil), false, action
	}
}

// terminate sends SIGTERM to the process group, then SIGKILL after the
// grace period.
func (s *Supervisor) terminate(pid int, waited chan error) {
	syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-waited:
	case <-time.After(s.Grace):
		syscall.Kill(-pid, syscall.SIGKILL)
		<-waited
	}
	syscall.Kill(-pid, syscall.SIGKILL) // what is left of the group
}

func exitCode(cmd *exec.Cmd, err error) int {
	st := cmd.ProcessState
	if st == nil {
		return 127
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) || err == nil {
		return st.ExitCode()
	}
	return 127
}

func shouldRestart(policy string, code int) bool {
	switch policy {
	case "always":
		return true
	case "on-failure":
		return code != 0
	}
	return false
}

// execArgs runs a process through `nsrun exec`.
func execArgs(p Process) []string {
	args := []string{"exec", p.Namespace}
	if p.User != "" {
		args = append(args, "--user", p.User)
	}
	for _, kv := range p.Env {
		args = append(args, "--env", kv)
	}
	if p.Workdir != "" {
		args = append(args, "--workdir", p.Workdir)
	}
	if p.Cgroup != "" {
		args = append(args, "--cgroup", p.Cgroup)
	}
	return append(append(args, "--"), p.Command...)
}

// baseEnv is the environment processes start from: the supervisor's PATH
// and locale, and root's HOME (nsrun exec sets the user's own).
func baseEnv() []string {
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	env := []string{"PATH=" + path, "HOME=/root"}
	for _, key := range []string{"LANG", "LC_ALL", "TZ"} {
		if v, ok := os.LookupEnv(key); ok {
			env = append(env, key+"="+v)
		}
	}
	return env
}

func (s *Supervisor) update(p *supervised, change func(*ProcessStatus)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	change(&p.st)
	s.writeStatusLocked()
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
}

// note records a change of a process's status that tells nothing new (a
// check that found what the last one did, at a later time): the status
// file is written with the next change, or within dirCheck, rather than
// on every check (100 processes checked each second made 100 writes of
// the whole status a second).
func (s *Supervisor) note(p *supervised, change func(*ProcessStatus)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	change(&p.st)
	s.dirty = true
}

// flush writes the status if a noted change is not in it yet.
func (s *Supervisor) flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dirty {
		s.writeStatusLocked()
	}
}

// logf writes one of nsrun's lines to a process's log.
func (s *Supervisor) logf(p *supervised, format string, args ...any) {
	s.mu.Lock()
	l := p.log
	s.mu.Unlock()
	if l != nil {
		fmt.Fprintf(l, "[nsrun] "+format+"\n", args...)
	}
}

func (s *Supervisor) writeStatusLocked() {
	s.status.Processes = s.status.Processes[:0]
	for _, p := range s.procs {
		s.status.Processes = append(s.status.Processes, p.st)
	}
	sort.Slice(s.status.Processes, func(i, j int) bool { return s.status.Processes[i].Key() < s.status.Processes[j].Key() })
	s.dirty = false
	if err := atomicfile.WriteJSON(statusPath(s.Dir), s.status); err != nil {
		log.Printf("writing status: %v", err)
	}
}
