package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/nsrun/nsrun/internal/atomicfile"
	"github.com/nsrun/nsrun/netns"
	"github.com/nsrun/nsrun/specs"
)

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

// ErrNoRecord means a project has no recorded state.
var ErrNoRecord = errors.New("no recorded state")

// Load reads a project's state. A missing state is ErrNoRecord; a corrupt
// one is an error that says so.
func (st Store) Load(project string) (*Record, error) {
	data, err := os.ReadFile(st.statePath(project))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("project %q: %w", project, ErrNoRecord)
	}
	if err != nil {
		return nil, fmt.Errorf("reading state of project %q: %w", project, err)
	}
	return Decode(project, data)
}

// Decode parses and checks a state file's contents.
func Decode(project string, data []byte) (*Record, error) {
	var s Record
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("state of project %q is corrupt (%v); remove what is left with 'nsrun down --all'", project, err)
	}
	if s.Version != Version || s.Project != project {
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
func (st Store) Save(s *Record) error {
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

// Grants reads the exec grants of the namespaces named, of those that
// have one (one file each: not every namespace's, which costs what the
// whole host's do); unreadable ones are left out (up writes them again).
func (st Store) Grants(names []string) map[string]netns.Grant {
	out := map[string]netns.Grant{}
	for _, name := range names {
		var g netns.Grant
		if atomicfile.ReadJSON(filepath.Join(st.grantDir(), name), &g) == nil && g.Namespace == name {
			out[name] = g
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
func (st Store) Others(project string) ([]*Record, error) {
	names, err := st.Projects()
	if err != nil {
		return nil, err
	}
	// Decoding is most of the cost, and each record is its own: they are
	// decoded side by side, one per CPU.
	loaded := make([]*Record, len(names))
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for i, name := range names {
		if name == project {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			loaded[i], _ = st.Load(name)
		})
	}
	wg.Wait()
	var out []*Record
	for _, s := range loaded {
		if s != nil {
			out = append(out, s)
		}
	}
	return out, nil
}

// RemoveAll removes the state directory itself, and the exec grants
// beside it, once no project is left. The caller holds the lock; the lock
// file goes too.
func (st Store) RemoveAll() error {
	for _, dir := range []string{st.grantDir(), st.Dir} {
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("removing %s: %w", dir, err)
		}
	}
	return nil
}
