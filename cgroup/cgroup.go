// Package cgroup keeps the cgroups that hold a namespace's processes
// within the spec's resource limits, on cgroup v2 and on cgroup v1 (the
// memory, cpu, cpuacct and pids hierarchies), through containerd's
// cgroups library.
//
// A namespace with limits has the cgroup nsrun/NS (in each v1 hierarchy,
// or once in the v2 one), which carries the namespace's limits, and
// leaves in it that hold the processes: exec for those nsrun exec starts,
// run.NAME for each supervised process, carrying its own limits if it has
// any. Processes live only in leaves, as cgroup v2 requires; each
// supervised process having its own leaf, an OOM kill is told apart from
// one of its neighbours'.
package cgroup

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	"github.com/nsrun/nsrun/internal/nsexec"
	"github.com/nsrun/nsrun/specs"
	rspec "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// ExecLeaf holds the processes nsrun exec starts by hand.
const ExecLeaf = nsexec.CgroupExecLeaf

// RunLeaf is the leaf of a supervised process.
func RunLeaf(process string) string { return "run." + process }

// Layout is where the host's cgroups are.
type Layout struct {
	Root string // the mount point: /sys/fs/cgroup
	V2   bool   // the unified hierarchy; otherwise v1, a hierarchy per controller under Root
}

// Host is the layout of this host.
func Host() Layout {
	return Layout{Root: nsexec.CgroupRoot, V2: nsexec.CgroupV2(nsexec.CgroupRoot)}
}

func (l Layout) String() string {
	if l.V2 {
		return "cgroup v2"
	}
	return "cgroup v1"
}

// Controllers are the ones the limits need: memory, cpu, pids.
var Controllers = []string{"memory", "cpu", "pids"}

// Available lists the controllers of Controllers this host offers: on v1
// those whose hierarchy is mounted (cpuacct too, for usage), on v2 those
// the root's cgroup.controllers lists.
func (l Layout) Available() map[string]bool {
	out := map[string]bool{}
	if l.V2 {
		data, _ := os.ReadFile(filepath.Join(l.Root, "cgroup.controllers"))
		for _, c := range strings.Fields(string(data)) {
			out[c] = true
		}
		return out
	}
	for _, c := range nsexec.CgroupControllers {
		// A hierarchy's root cgroup has cgroup.procs; the directory a
		// hierarchy would be mounted on does not.
		if _, err := os.Stat(filepath.Join(l.Root, c, "cgroup.procs")); err == nil {
			out[c] = true
		}
	}
	return out
}

// Needed lists the controllers the limits use.
func Needed(limits ...specs.Resources) []string {
	var out []string
	for _, r := range limits {
		for c, used := range map[string]bool{"memory": r.Memory > 0, "cpu": r.CPUs > 0, "pids": r.PIDs > 0} {
			if used && !slices.Contains(out, c) {
				out = append(out, c)
			}
		}
	}
	slices.Sort(out)
	return out
}

// Tree is a namespace's cgroup as up wants it.
type Tree struct {
	Namespace string
	Limits    specs.Resources
	// Leaves are the leaves by name, with their own limits (zero: none
	// beyond the namespace's).
	Leaves map[string]specs.Resources
}

// Dirs are the namespace's cgroup directories, one per hierarchy of the
// layout (on v1, in the order of nsexec.CgroupControllers).
func (l Layout) Dirs(ns string) []string { return nsexec.CgroupDirsOf(l.Root, l.V2, ns) }

// group is the cgroup path of a namespace (and leaf) below the root of a
// hierarchy.
func group(ns string, leaf ...string) string {
	return "/" + filepath.Join(append([]string{nsexec.CgroupParent, ns}, leaf...)...)
}

// Ensure makes the namespace's cgroup and its leaves, or brings their
// limits to the tree's in place; a limit the tree no longer has is
// lifted. Leaves the tree does not name are removed where they are empty.
func (l Layout) Ensure(t Tree) error {
	if err := specs.CheckNamespaceName(t.Namespace); err != nil {
		return err
	}
	var err error
	if l.V2 {
		err = l.ensure2(t)
	} else {
		err = l.ensure1(t)
	}
	if err != nil {
		return fmt.Errorf("cgroup of namespace %s (%s): %w", t.Namespace, l, err)
	}
	l.removeStaleLeaves(t)
	return nil
}

// hierarchy is the v1 subsystems nsrun uses that the host has mounted.
func (l Layout) hierarchy() ([]cgroup1.Subsystem, error) {
	avail := l.Available()
	var out []cgroup1.Subsystem
	for _, s := range []cgroup1.Subsystem{cgroup1.NewMemory(l.Root), cgroup1.NewCpu(l.Root), cgroup1.NewCpuacct(l.Root), cgroup1.NewPids(l.Root)} {
		if avail[string(s.Name())] {
			out = append(out, s)
		}
	}
	return out, nil
}

func (l Layout) ensure1(t Tree) error {
	pids := l.Available()["pids"]
	set := func(path string, r specs.Resources) error {
		_, err := cgroup1.New(cgroup1.StaticPath(path), resources1(r), cgroup1.WithHierarchy(l.hierarchy))
		if err != nil || r.PIDs > 0 || !pids {
			return err
		}
		// The library writes pids.max only to set a limit; lifting one
		// takes "max", written here.
		return os.WriteFile(filepath.Join(l.Root, "pids", path, "pids.max"), []byte("max"), 0)
	}
	if err := set(group(t.Namespace), t.Limits); err != nil {
		return err
	}
	for _, leaf := range sortedLeaves(t) {
		if err := set(group(t.Namespace, leaf), t.Leaves[leaf]); err != nil {
			return err
		}
	}
	return nil
}

// resources1 are the limits as the v1 library takes them: each one set,
// -1 for none.
func resources1(r specs.Resources) *rspec.LinuxResources {
	memory, quota, period := int64(-1), int64(-1), uint64(specs.CPUPeriod)
	if r.Memory > 0 {
		memory = r.Memory
	}
	if r.CPUs > 0 {
		quota = specs.CPUQuota(r.CPUs)
	}
	out := &rspec.LinuxResources{Memory: &rspec.LinuxMemory{Limit: &memory}, CPU: &rspec.LinuxCPU{Quota: &quota, Period: &period}}
	if r.PIDs > 0 {
		out.Pids = &rspec.LinuxPids{Limit: &r.PIDs}
	}
	return out
}

func (l Layout) ensure2(t Tree) error {
	avail := l.Available()
	m, err := cgroup2.NewManager(l.Root, group(t.Namespace), resources2(t.Limits, avail))
	if err != nil {
		return err
	}
	for _, leaf := range sortedLeaves(t) {
		if _, err := m.NewChild(leaf, resources2(t.Leaves[leaf], avail)); err != nil {
			return err
		}
	}
	return nil
}

// resources2 are the limits as the v2 library takes them, for the
// controllers the host has: each one set, "max" for none (memory: the
// largest value, which the kernel shows as max).
func resources2(r specs.Resources, avail map[string]bool) *cgroup2.Resources {
	out := &cgroup2.Resources{}
	if avail["memory"] {
		memory := int64(math.MaxInt64)
		if r.Memory > 0 {
			memory = r.Memory
		}
		out.Memory = &cgroup2.Memory{Max: &memory}
	}
	if avail["cpu"] {
		period := uint64(specs.CPUPeriod)
		var quota *int64
		if r.CPUs > 0 {
			q := specs.CPUQuota(r.CPUs)
			quota = &q
		}
		out.CPU = &cgroup2.CPU{Max: cgroup2.NewCPUMax(quota, &period)}
	}
	if avail["pids"] {
		out.Pids = &cgroup2.Pids{Max: -1}
		if r.PIDs > 0 {
			out.Pids.Max = r.PIDs
		}
	}
	return out
}

func sortedLeaves(t Tree) []string {
	var out []string
	for leaf := range t.Leaves {
		out = append(out, leaf)
	}
	slices.Sort(out)
	return out
}

// removeStaleLeaves removes the leaves the tree no longer names, where no
// process is left in them; the others go with the namespace's cgroup.
func (l Layout) removeStaleLeaves(t Tree) {
	for _, dir := range l.Dirs(t.Namespace) {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if _, want := t.Leaves[e.Name()]; e.IsDir() && !want {
				syscall.Rmdir(filepath.Join(dir, e.Name()))
			}
		}
	}
}

// Namespaces lists the namespaces that have a cgroup of nsrun's.
func (l Layout) Namespaces() []string {
	var out []string
	for _, parent := range l.Dirs("") {
		entries, _ := os.ReadDir(parent)
		for _, e := range entries {
			if e.IsDir() && !slices.Contains(out, e.Name()) {
				out = append(out, e.Name())
			}
		}
	}
	slices.Sort(out)
	return out
}

// Remove removes the namespace's cgroup, its leaves first, waiting a
// bounded time for the processes stopped just before to leave it; then
// nsrun's parent cgroup where no namespace is left in it.
func (l Layout) Remove(ns string, wait time.Duration) error {
	var errs []error
	for _, dir := range l.Dirs(ns) {
		errs = append(errs, removeTree(dir, wait))
		syscall.Rmdir(filepath.Dir(dir)) // nsrun/, once empty
	}
	return errors.Join(errs...)
}

// removeTree removes a cgroup directory and its children, children first.
func removeTree(dir string, wait time.Duration) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	var errs []error
	for _, e := range entries {
		if e.IsDir() {
			errs = append(errs, removeTree(filepath.Join(dir, e.Name()), wait))
		}
	}
	for deadline := time.Now().Add(wait); ; time.Sleep(10 * time.Millisecond) {
		err := syscall.Rmdir(dir)
		if err == nil || errors.Is(err, syscall.ENOENT) {
			break
		}
		if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
			errs = append(errs, fmt.Errorf("removing cgroup %s: %w (processes left in it: %s)", dir, err, pidsIn(dir)))
			break
		}
	}
	return errors.Join(errs...)
}

// Procs lists the processes in the namespace's cgroup, leaves included.
func (l Layout) Procs(ns string) []int {
	var out []int
	for _, dir := range l.Dirs(ns) {
		filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				for _, pid := range readPids(path) {
					if !slices.Contains(out, pid) {
						out = append(out, pid)
					}
				}
			}
			return nil
		})
	}
	return out
}

// Kill sends SIGKILL to every process in the namespace's cgroup. Each is
// held by a pidfd, and still in the cgroup once held, before it is sent
// the signal: a pid freed and given to another process meanwhile is left
// alone.
func (l Layout) Kill(ns string) {
	for _, pid := range l.Procs(ns) {
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			continue // gone
		}
		if slices.Contains(l.Procs(ns), pid) {
			unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
		}
		unix.Close(fd)
	}
}

func readPids(dir string) []int {
	data, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	var out []int
	for _, f := range strings.Fields(string(data)) {
		if pid, err := strconv.Atoi(f); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

func pidsIn(dir string) string {
	pids := readPids(dir)
	if len(pids) == 0 {
		return "none"
	}
	return fmt.Sprint(pids)
}

// Move puts processes into a leaf of the namespace's cgroup, in every
// hierarchy; a process that has exited meanwhile is no error.
func (l Layout) Move(ns, leaf string, pids []int) error {
	var add func(pid int) error
	if l.V2 {
		m, err := cgroup2.Load(group(ns, leaf), cgroup2.WithMountpoint(l.Root))
		if err != nil {
			return err
		}
		add = func(pid int) error { return m.AddProc(uint64(pid)) }
	} else {
		cg, err := cgroup1.Load(cgroup1.StaticPath(group(ns, leaf)), cgroup1.WithHierarchy(l.hierarchy))
		if err != nil {
			return err
		}
		add = func(pid int) error { return cg.Add(cgroup1.Process{Pid: pid}) }
	}
	for _, pid := range pids {
		if err := add(pid); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("moving process %d into the cgroup of namespace %s: %w", pid, ns, err)
		}
	}
	return nil
}
