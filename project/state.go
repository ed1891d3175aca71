package project

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/nsrun/nsrun/forward"
	"github.com/nsrun/nsrun/forward/iptables"
	"github.com/nsrun/nsrun/internal/atomicfile"
	"github.com/nsrun/nsrun/netns"
	"github.com/nsrun/nsrun/specs"
	"github.com/nsrun/nsrun/supervise"
)

// StateVersion is the version of state.json this code writes and reads.
const StateVersion = 1

// State is what nsrun records of a project: enough to remove everything
// it made without the spec.
type State struct {
	Version  int             `json:"version"`
	Project  string          `json:"project"`
	SpecFile string          `json:"spec_file,omitempty"`
	Backend  forward.Backend `json:"backend,omitempty"` // where the project's rules are
	// Accepts are the other backends that hold the project's FORWARD
	// accepts, because their FORWARD drops (see forward.Placement).
	Accepts []forward.Backend `json:"forward_accepts,omitempty"`
	Subnet  netip.Prefix      `json:"subnet"`
	// IPv6: the namespaces have IPv6 addresses too, from Subnet6.
	IPv6       bool              `json:"ipv6,omitempty"`
	Subnet6    netip.Prefix      `json:"subnet6,omitzero"`
	Namespaces []*NamespaceState `json:"namespaces"`
	// Generation counts the ups; the supervisor reports the generation
	// whose processes it runs.
	Generation int `json:"generation"`
	// NoHeal: the keeper leaves the project's firewall state alone (up --no-heal).
	NoHeal bool `json:"no_heal,omitempty"`
}

// NamespaceState is one namespace as recorded.
type NamespaceState struct {
	Name        string       `json:"name"`
	Link        string       `json:"link"`
	Address     netip.Prefix `json:"address"`
	HostAddress netip.Prefix `json:"host_address"`
	AutoAddress bool         `json:"auto_address,omitempty"`
	// The IPv6 twins, in a project with IPv6.
	Address6     netip.Prefix `json:"address6,omitzero"`
	HostAddress6 netip.Prefix `json:"host_address6,omitzero"`
	AutoAddress6 bool         `json:"auto_address6,omitempty"`
	// ExecUIDs and ExecGIDs may run nsrun exec here without root (the
	// spec's exec grant, resolved), published in Store's grant directory.
	ExecUIDs []uint32       `json:"exec_uids,omitempty"`
	ExecGIDs []uint32       `json:"exec_gids,omitempty"`
	Egress   bool           `json:"egress"`
	Ports    []specs.Port   `json:"ports,omitempty"` // in the full short form, e.g. 127.0.0.1:6000:8080/udp
	Run      []ProcessState `json:"run,omitempty"`
}

// ProcessState is a run entry as recorded.
type ProcessState struct {
	supervise.Process
	ReadyTCP     uint16        `json:"ready_tcp,omitempty"`
	ReadyTimeout time.Duration `json:"ready_timeout,omitempty"`
}

// Plan is what the supervisor should run for this state.
func (s *State) Plan() supervise.Plan {
	p := supervise.Plan{Generation: s.Generation}
	for _, ns := range s.Namespaces {
		for _, r := range ns.Run {
			p.Processes = append(p.Processes, r.Process)
		}
	}
	return p
}

// Namespace returns the recorded namespace of that name, or nil.
func (s *State) Namespace(name string) *NamespaceState {
	if s == nil {
		return nil
	}
	for _, ns := range s.Namespaces {
		if ns.Name == name {
			return ns
		}
	}
	return nil
}

// ForwardProject returns the project as the forward package sees it.
func (s *State) ForwardProject() forward.Project {
	p := forward.Project{Name: s.Project}
	for _, ns := range s.Namespaces {
		p.Namespaces = append(p.Namespaces, forward.Namespace{Name: ns.Name, Link: ns.Link, Address: ns.Address, Address6: ns.Address6, Egress: ns.Egress, Ports: ns.Ports})
	}
	return p
}

// Placement is where the project's rules are.
func (s *State) Placement() forward.Placement {
	return forward.Placement{Backend: s.Backend, Accepts: s.Accepts}
}

// Merge returns the state that covers both a and b: b's namespaces, and
// a's that b lacks. It is recorded before a change, so that a down after
// a crash finds everything either side may have made.
func Merge(a, b *State) *State {
	if a == nil {
		return b
	}
	out := *b
	out.Namespaces = append([]*NamespaceState(nil), b.Namespaces...)
	for _, ns := range a.Namespaces {
		if b.Namespace(ns.Name) == nil {
			out.Namespaces = append(out.Namespaces, ns)
		}
	}
	return &out
}

// Store is the directory that holds every project's state.
type Store struct {
	Dir string // /run/nsrun
}

// DefaultDir is where state lives; it vanishes on reboot together with the
// namespaces and rules it describes.
const DefaultDir = "/run/nsrun"

// ProjectDir is where a project's state, plan, status and logs live.
func (st Store) ProjectDir(project string) string { return filepath.Join(st.Dir, project) }
func (st Store) statePath(project string) string {
	return filepath.Join(st.ProjectDir(project), "state.json")
}

// ErrNoState means a project has no recorded state.
var ErrNoState = errors.New("no recorded state")

// Load reads a project's state. A missing state is ErrNoState; a corrupt
// one is an error that says so.
func (st Store) Load(project string) (*State, error) {
	data, err := os.ReadFile(st.statePath(project))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("project %q: %w", project, ErrNoState)
	}
	if err != nil {
		return nil, fmt.Errorf("reading state of project %q: %w", project, err)
	}
	return DecodeState(project, data)
}

// DecodeState parses and checks a state file's contents.
func DecodeState(project string, data []byte) (*State, error) {
	var s State
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("state of project %q is corrupt (%v); remove what is left with 'nsrun down --all'", project, err)
	}
	if s.Version != StateVersion || s.Project != project {
		return nil, fmt.Errorf("state of project %q has version %d for project %q; remove what is left with 'nsrun down --all'", project, s.Version, s.Project)
	}
	s.Backend = backendName(s.Backend)
	for i, b := range s.Accepts {
		s.Accepts[i] = backendName(b)
	}
	for _, ns := range s.Namespaces {
		if ns == nil || specs.CheckNamespaceName(ns.Name) != nil || ns.Link == "" {
			return nil, fmt.Errorf("state of project %q holds a bad namespace entry; remove what is left with 'nsrun down --all'", project)
		}
	}
	return &s, nil
}

// Save writes a project's state atomically (a temporary file renamed over
// the old one), in a directory only root can read. It does not fsync: the
// record lives in /run, and a power loss takes the namespaces and rules it
// describes with it.
func (st Store) Save(s *State) error {
	dir := st.ProjectDir(s.Project)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	return atomicfile.WriteJSON(st.statePath(s.Project), s)
}

// grantDir holds the namespaces' exec grants, readable by every user:
// beside the state directory, not in it, where each directory is a
// project's (nsexec.GrantDir, /run/nsrun-exec, for the default store).
func (st Store) grantDir() string { return st.Dir + "-exec" }

// Grants reads every namespace's exec grant; unreadable ones are left
// out (up writes them again).
func (st Store) Grants() map[string]netns.Grant {
	out := map[string]netns.Grant{}
	entries, _ := os.ReadDir(st.grantDir())
	for _, e := range entries {
		var g netns.Grant
		if atomicfile.ReadJSON(filepath.Join(st.grantDir(), e.Name()), &g) == nil && g.Namespace == e.Name() {
			out[e.Name()] = g
		}
	}
	return out
}

// WriteGrant publishes a namespace's exec grant: a file any user can read
// and only root can write, in a directory likewise.
func (st Store) WriteGrant(g netns.Grant) error {
	if err := os.MkdirAll(st.grantDir(), 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", st.grantDir(), err)
	}
	if err := os.Chmod(st.grantDir(), 0o755); err != nil {
		return fmt.Errorf("making %s readable for exec grants: %w", st.grantDir(), err)
	}
	data, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(st.grantDir(), g.Namespace), append(data, '\n'), 0o644)
}

// RemoveGrant withdraws a namespace's exec grant; a missing one is no error.
func (st Store) RemoveGrant(ns string) error {
	if err := os.Remove(filepath.Join(st.grantDir(), ns)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing the exec grant of namespace %s: %w", ns, err)
	}
	os.Remove(st.grantDir()) // once empty
	return nil
}

// Remove deletes a project's state directory.
func (st Store) Remove(project string) error {
	if err := os.RemoveAll(st.ProjectDir(project)); err != nil {
		return fmt.Errorf("removing state of project %q: %w", project, err)
	}
	return nil
}

// RemoveUnrecorded deletes the directory of a project without a record
// when it holds nothing but what an up killed before writing the record
// leaves (files being written, or nothing); a directory holding anything
// else is not nsrun's to remove, and stays as it is.
func (st Store) RemoveUnrecorded(project string) error {
	entries, err := os.ReadDir(st.ProjectDir(project))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the directory of project %q: %w", project, err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasPrefix(e.Name(), atomicfile.TempPrefix) {
			return nil
		}
	}
	return st.Remove(project)
}

// Projects lists the projects that have a state directory, sorted: those
// with a record, and those whose record an interrupted up did not get to
// write (down removes them).
func (st Store) Projects() ([]string, error) {
	entries, err := os.ReadDir(st.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", st.Dir, err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && specs.CheckProjectName(e.Name()) == nil {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// Others loads the state of every project but one; unreadable states are
// skipped (down --all deals with them).
func (st Store) Others(project string) ([]*State, error) {
	names, err := st.Projects()
	if err != nil {
		return nil, err
	}
	var out []*State
	for _, name := range names {
		if name == project {
			continue
		}
		if s, err := st.Load(name); err == nil {
			out = append(out, s)
		}
	}
	return out, nil
}

// backendName reads a recorded backend: nsrun before 2026-12 recorded the
// iptables backends as "nft" and "legacy".
func backendName(b forward.Backend) forward.Backend {
	switch b {
	case "nft":
		return iptables.NFT
	case "legacy":
		return iptables.Legacy
	}
	return b
}
