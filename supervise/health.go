package supervise

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nsrun/nsrun/netns"
)

// Health is a process's health check, as the supervisor runs it: one of
// HTTP, TCP and Command, inside the process's namespace.
type Health struct {
	HTTP    string   `json:"http,omitempty"`    // http://ADDRESS:PORT/PATH; 2xx and 3xx are healthy
	TCP     uint16   `json:"tcp,omitempty"`     // a port that accepts a connection
	Command []string `json:"command,omitempty"` // exit status 0 is healthy
	// Address is the namespace's IPv4 address: a TCP check tries
	// 127.0.0.1, then it (a server may listen on either alone).
	Address     string        `json:"address,omitempty"`
	Interval    time.Duration `json:"interval"`
	Timeout     time.Duration `json:"timeout"`
	Retries     int           `json:"retries"`
	StartPeriod time.Duration `json:"start_period,omitempty"`
	OnFailure   string        `json:"on_failure"` // none | restart | stop
}

// Dependency is a process that must be ready, and healthy if it has a
// check, before the one that names it starts.
type Dependency struct {
	Key      string `json:"key"`                 // NS/NAME
	ReadyTCP uint16 `json:"ready_tcp,omitempty"` // its ready port: accepting connections, inside its namespace
	Address  string `json:"address,omitempty"`   // its namespace's IPv4 address
}

// Health states.
const (
	HealthStarting  = "starting" // no result that counts yet
	HealthHealthy   = "healthy"
	HealthUnhealthy = "unhealthy"
)

// HealthStatus is what the checks of a running process found.
type HealthStatus struct {
	State     string    `json:"state"`
	Failures  int       `json:"failures"` // consecutive failed checks that counted
	Retries   int       `json:"retries"`  // failures that make it unhealthy
	Since     time.Time `json:"since"`    // when State began
	LastCheck time.Time `json:"last_check,omitzero"`
	// Output is what the last check said: its output or answer, or why
	// it failed, cut to maxCheckOutput bytes.
	Output string `json:"output,omitempty"`
}

// maxCheckOutput bounds what a check's output keeps.
const maxCheckOutput = 300

// checkWorkers bounds the checks run at once by one supervisor.
const checkWorkers = 16

// DialFunc connects to a TCP address inside a network namespace.
type DialFunc func(ctx context.Context, ns, address string) (net.Conn, error)

// DialIn connects to a TCP address from inside the namespace: the socket
// is made there, by a thread that enters it and comes back, and stays
// there.
func DialIn(ctx context.Context, ns, address string) (net.Conn, error) {
	var c net.Conn
	err := netns.Do(ns, func() error {
		var err error
		c, err = (&net.Dialer{}).DialContext(ctx, "tcp", address)
		return err
	})
	return c, err
}

// check runs one health check of p and returns whether it passed and
// what it said.
func (s *Supervisor) check(ctx context.Context, p Process, client *http.Client) (bool, string) {
	h := p.Health
	ctx, cancel := context.WithTimeout(ctx, h.Timeout)
	defer cancel()
	var ok bool
	var out string
	switch {
	case h.HTTP != "":
		ok, out = checkHTTP(ctx, client, h.HTTP)
	case h.TCP != 0:
		if err := s.dialAny(ctx, p.Namespace, h.TCP, h.Address); err != nil {
			out = err.Error()
		} else {
			ok, out = true, fmt.Sprintf("port %d accepted a connection", h.TCP)
		}
	default:
		ok, out = s.checkCommand(ctx, p)
	}
	if !ok && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		out = cut(fmt.Sprintf("no answer within %s %s", h.Timeout, out))
	}
	return ok, out
}

// dialAny connects to the port at 127.0.0.1, then at address, inside ns.
func (s *Supervisor) dialAny(ctx context.Context, ns string, port uint16, address string) error {
	hosts := []string{"127.0.0.1"}
	if address != "" {
		hosts = append(hosts, address)
	}
	var err error
	for _, host := range hosts {
		var c net.Conn
		if c, err = s.dial(ctx, ns, net.JoinHostPort(host, strconv.Itoa(int(port)))); err == nil {
			c.Close()
			return nil
		}
	}
	return err
}

func (s *Supervisor) dial(ctx context.Context, ns, address string) (net.Conn, error) {
	if s.Dial != nil {
		return s.Dial(ctx, ns, address)
	}
	return DialIn(ctx, ns, address)
}

// healthClient is the HTTP client of one process's checks: its
// connections are made inside the namespace, and one kept open between
// checks is used again (a server that keeps it open saves a connection
// and an entry into the namespace per check; one that hangs answers on
// it no more than on a new one).
func (s *Supervisor) healthClient(ns string) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			DialContext:     func(ctx context.Context, _, addr string) (net.Conn, error) { return s.dial(ctx, ns, addr) },
			MaxIdleConns:    1,
			IdleConnTimeout: time.Hour,
			Proxy:           nil,
		},
		// A redirect is an answer: 3xx is healthy, as Docker and
		// Kubernetes count it.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func checkHTTP(ctx context.Context, client *http.Client, url string) (bool, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err.Error()
	}
	req.Header.Set("User-Agent", "nsrun-health")
	resp, err := client.Do(req)
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxCheckOutput))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // the rest, so that the connection can serve the next check
	out := cut(resp.Status + ": " + string(body))
	return resp.StatusCode >= 200 && resp.StatusCode < 400, out
}

// checkCommand runs the check's command inside the namespace through
// `nsrun exec`, as the process's user, and kills its process group when
// the timeout ends it.
func (s *Supervisor) checkCommand(ctx context.Context, p Process) (bool, string) {
	args := []string{"exec", p.Namespace}
	if p.User != "" {
		args = append(args, "--user", p.User)
	}
	args = append(append(args, "--"), p.Health.Command...)
	cmd := exec.Command(s.Self, args...)
	cmd.Env = baseEnv()
	var out limitedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return false, cut("cannot start: " + err.Error())
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		if err != nil {
			return false, cut(strings.TrimSpace(fmt.Sprintf("%s (exit status %d)", out.String(), exitCode(cmd, err))))
		}
		return true, cut(strings.TrimSpace(out.String()))
	case <-ctx.Done():
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-waited
		return false, cut(strings.TrimSpace(out.String()))
	}
}

// limitedBuffer keeps the first maxCheckOutput bytes written to it.
type limitedBuffer struct{ b bytes.Buffer }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := maxCheckOutput - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string { return l.b.String() }

// cut shortens a check's output to maxCheckOutput bytes, on one line.
func cut(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxCheckOutput {
		s = s[:maxCheckOutput] + "..."
	}
	return s
}

// watchHealth checks a running process on its schedule until ctx ends,
// recording each result, and calls act once the process turns
// unhealthy. Until its first healthy result it checks every second (at
// most every interval), so that a process is known healthy soon after it
// starts; a failure counts at most once per interval all the same, and
// not at all within the start period.
func (s *Supervisor) watchHealth(ctx context.Context, p *supervised, started time.Time, act func(output string)) {
	h := p.def.Health
	s.update(p, func(st *ProcessStatus) {
		st.Health = &HealthStatus{State: HealthStarting, Retries: h.Retries, Since: time.Now()}
	})
	var client *http.Client
	if h.HTTP != "" {
		client = s.healthClient(p.def.Namespace)
		defer client.CloseIdleConnections()
	}
	var counted time.Time // when a failure last counted
	timer := time.NewTimer(min(h.Interval, time.Second) / 2)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		select {
		case s.checkSlots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		ok, out := s.check(ctx, p.def, client)
		<-s.checkSlots
		if ctx.Err() != nil {
			return // the process ended meanwhile: the result is not its
		}
		now := time.Now()
		var turned string
		news := false // a change worth writing at once
		s.note(p, func(st *ProcessStatus) {
			hs := st.Health
			news = hs.Output != out
			hs.LastCheck, hs.Output = now, out
			switch {
			case ok:
				news = news || hs.Failures != 0
				hs.Failures = 0
				if hs.State != HealthHealthy {
					hs.State, hs.Since, turned = HealthHealthy, now, HealthHealthy
				}
			case now.Sub(started) < h.StartPeriod:
			case hs.State == HealthStarting && !counted.IsZero() && now.Sub(counted) < h.Interval-time.Second/2:
				// a failure counted within this interval (checks fall on
				// whole seconds: one a few ms early is the next)
			default:
				counted, news = now, true
				hs.Failures++
				if hs.Failures >= h.Retries && hs.State != HealthUnhealthy {
					hs.State, hs.Since, turned = HealthUnhealthy, now, HealthUnhealthy
				}
			}
		})
		if news || turned != "" {
			s.update(p, func(*ProcessStatus) {}) // written, and waiters woken
		}
		switch turned {
		case HealthHealthy:
			s.logf(p, "health: healthy (%s)", out)
		case HealthUnhealthy:
			s.logf(p, "health: unhealthy after %d failed checks: %s", h.Retries, out)
			act(out)
		}
		next := h.Interval
		if st := s.healthState(p); st == HealthStarting {
			next = min(h.Interval, time.Second)
		}
		timer.Reset(untilAligned(time.Now(), next))
	}
}

// untilAligned is how long from now until the next whole multiple of
// every (counted from the Unix epoch), at least half of every away: the
// checks of processes with the same interval fall due together, so the
// supervisor wakes once for all of them, not once for each (100
// processes checked every second cost 1.75% of a core woken one by
// one).
func untilAligned(now time.Time, every time.Duration) time.Duration {
	d := every - time.Duration(now.UnixNano()%int64(every))
	if d < every/2 {
		d += every
	}
	return d
}

func (s *Supervisor) healthState(p *supervised) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.st.Health == nil {
		return ""
	}
	return p.st.Health.State
}

// depsReady reports whether every dependency of p is ready (its ready
// port accepts a connection in its namespace) and, if it has a check,
// healthy; else what it waits for.
func (s *Supervisor) depsReady(ctx context.Context, p *supervised) (bool, string) {
	for _, d := range p.def.DependsOn {
		s.mu.Lock()
		dep, ok := s.procs[d.Key]
		var state, health string
		var hasHealth bool
		if ok {
			// Copied under the lock: the checks change the health in place.
			state, hasHealth, health = dep.st.State, dep.def.Health != nil, HealthStarting
			if dep.st.Health != nil {
				health = dep.st.Health.State
			}
		}
		s.mu.Unlock()
		switch {
		case !ok:
			return false, fmt.Sprintf("%s, which this supervisor does not run", d.Key)
		case state != Running:
			return false, fmt.Sprintf("%s to run (it is %s)", d.Key, state)
		case hasHealth && health != HealthHealthy:
			return false, fmt.Sprintf("%s to be healthy (it is %s)", d.Key, health)
		case d.ReadyTCP != 0:
			ns, _, _ := strings.Cut(d.Key, "/")
			dctx, cancel := context.WithTimeout(ctx, time.Second)
			err := s.dialAny(dctx, ns, d.ReadyTCP, d.Address)
			cancel()
			if err != nil {
				return false, fmt.Sprintf("%s to accept connections on port %d", d.Key, d.ReadyTCP)
			}
		}
	}
	return true, ""
}

// waitDeps holds p back until its dependencies are ready, reporting it
// as waiting; false when it is stopped meanwhile. It looks again when a
// process's status changes, and at most every 200 ms for a ready port.
func (s *Supervisor) waitDeps(p *supervised) bool {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-p.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		changed := s.changes()
		ok, what := s.depsReady(ctx, p)
		if ok {
			return true
		}
		s.update(p, func(st *ProcessStatus) { st.State, st.Waiting = Waiting, "waiting for "+what })
		select {
		case <-changed:
		case <-time.After(200 * time.Millisecond):
		case <-p.stop:
			return false
		}
	}
}

// changes returns a channel closed at the next status change.
func (s *Supervisor) changes() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.changed == nil {
		s.changed = make(chan struct{})
	}
	return s.changed
}
