package cgroup

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	"github.com/nsrun/nsrun/internal/nsexec"
	"github.com/nsrun/nsrun/specs"
)

// Limits reads the limits in place on a namespace's cgroup (leaf "") or
// one of its leaves; a limit that is not set reads as zero. ok is false
// when the cgroup is missing from a hierarchy the host has.
func (l Layout) Limits(ns, leaf string) (r specs.Resources, ok bool) {
	path := group(ns)
	if leaf != "" {
		path = group(ns, leaf)
	}
	avail := l.Available()
	file := func(controller, name string) (string, bool) {
		dir := filepath.Join(l.Root, path)
		if !l.V2 {
			dir = filepath.Join(l.Root, controller, path)
		}
		if !avail[controller] {
			return "", true
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		return strings.TrimSpace(string(data)), err == nil
	}
	ok = true
	if l.V2 {
		if _, err := os.Stat(filepath.Join(l.Root, path)); err != nil {
			return r, false
		}
	}
	mem, cpu, pids := "memory.max", "cpu.max", "pids.max"
	if !l.V2 {
		mem, cpu = "memory.limit_in_bytes", "cpu.cfs_quota_us"
	}
	if v, found := file("memory", mem); !found {
		ok = false
	} else if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 && n < pageCounterMax {
		r.Memory = n
	}
	if v, found := file("cpu", cpu); !found {
		ok = false
	} else if q, err := strconv.ParseInt(strings.Fields(v + " ")[0], 10, 64); err == nil && q > 0 {
		r.CPUs = float64(q) / specs.CPUPeriod
	}
	if v, found := file("pids", pids); !found {
		ok = false
	} else if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		r.PIDs = n
	}
	return r, ok
}

// pageCounterMax: a memory limit at or above it is none (v1 shows no
// limit as the largest multiple of the page size below 2^63).
const pageCounterMax = math.MaxInt64 &^ 0xfff

// Usage is what a namespace's processes use now.
type Usage struct {
	Memory     uint64  `json:"memory_bytes"`
	CPUSeconds float64 `json:"cpu_seconds"`
	PIDs       uint64  `json:"pids"`
}

// Usage reads the namespace's usage from its cgroup's counters.
func (l Layout) Usage(ns string) (Usage, error) {
	if l.V2 {
		m, err := cgroup2.Load(group(ns), cgroup2.WithMountpoint(l.Root))
		if err != nil {
			return Usage{}, err
		}
		st, err := m.StatFiltered(cgroup2.StatMemory | cgroup2.StatCPU | cgroup2.StatPids)
		if err != nil {
			return Usage{}, fmt.Errorf("reading the usage of namespace %s: %w", ns, err)
		}
		var u Usage
		if st.Memory != nil {
			u.Memory = st.Memory.Usage
		}
		if st.CPU != nil {
			u.CPUSeconds = float64(st.CPU.UsageUsec) / 1e6
		}
		if st.Pids != nil {
			u.PIDs = st.Pids.Current
		}
		return u, nil
	}
	cg, err := cgroup1.Load(cgroup1.StaticPath(group(ns)), cgroup1.WithHierarchy(l.hierarchy))
	if err != nil {
		return Usage{}, fmt.Errorf("reading the usage of namespace %s: %w", ns, err)
	}
	st, err := cg.Stat(cgroup1.IgnoreNotExist)
	if err != nil {
		return Usage{}, fmt.Errorf("reading the usage of namespace %s: %w", ns, err)
	}
	var u Usage
	if st.Memory != nil && st.Memory.Usage != nil {
		u.Memory = st.Memory.Usage.Usage
	}
	if st.CPU != nil && st.CPU.Usage != nil {
		u.CPUSeconds = float64(st.CPU.Usage.Total) / 1e9
	}
	if st.Pids != nil {
		u.PIDs = st.Pids.Current
	}
	return u, nil
}

// OOMKills counts the processes of a leaf the kernel's OOM killer ended
// (v1: memory.oom_control, v2: memory.events); 0 when it cannot be read.
func (l Layout) OOMKills(ns, leaf string) uint64 {
	dir, file := filepath.Join(l.Root, group(ns, leaf)), "memory.events"
	if !l.V2 {
		dir, file = filepath.Join(l.Root, "memory", group(ns, leaf)), "memory.oom_control"
	}
	f, err := os.Open(filepath.Join(dir, file))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "oom_kill "); ok {
			n, _ := strconv.ParseUint(v, 10, 64)
			return n
		}
	}
	return 0
}

// MemoryLimit is the memory limit that binds a leaf: its own or its
// namespace's, the lower; 0 when neither has one.
func (l Layout) MemoryLimit(ns, leaf string) int64 {
	own, _ := l.Limits(ns, leaf)
	outer, _ := l.Limits(ns, "")
	switch {
	case own.Memory > 0 && (outer.Memory == 0 || own.Memory < outer.Memory):
		return own.Memory
	}
	return outer.Memory
}

// Commands are the shell commands that make the tree by hand on this
// layout, for plan.
func (l Layout) Commands(t Tree) []string {
	var out []string
	avail := l.Available()
	write := func(dir, file, value string) {
		out = append(out, fmt.Sprintf("echo %s > %s", value, filepath.Join(dir, file)))
	}
	limits := func(path string, r specs.Resources) {
		if l.V2 {
			dir := filepath.Join(l.Root, path)
			out = append(out, "mkdir -p "+dir)
			if r.Memory > 0 {
				write(dir, "memory.max", strconv.FormatInt(r.Memory, 10))
			}
			if r.CPUs > 0 {
				write(dir, "cpu.max", fmt.Sprintf("'%d %d'", specs.CPUQuota(r.CPUs), specs.CPUPeriod))
			}
			if r.PIDs > 0 {
				write(dir, "pids.max", strconv.FormatInt(r.PIDs, 10))
			}
			return
		}
		for _, c := range []string{"memory", "cpu", "cpuacct", "pids"} {
			if !avail[c] {
				continue
			}
			dir := filepath.Join(l.Root, c, path)
			out = append(out, "mkdir -p "+dir)
			switch {
			case c == "memory" && r.Memory > 0:
				write(dir, "memory.limit_in_bytes", strconv.FormatInt(r.Memory, 10))
			case c == "cpu" && r.CPUs > 0:
				write(dir, "cpu.cfs_period_us", strconv.Itoa(specs.CPUPeriod))
				write(dir, "cpu.cfs_quota_us", strconv.FormatInt(specs.CPUQuota(r.CPUs), 10))
			case c == "pids" && r.PIDs > 0:
				write(dir, "pids.max", strconv.FormatInt(r.PIDs, 10))
			}
		}
	}
	if l.V2 {
		// Each level hands the controllers down to the next: the root,
		// nsrun's parent, the namespace's (its leaves hold the processes).
		var enable []string
		for _, c := range Controllers {
			if avail[c] {
				enable = append(enable, "+"+c)
			}
		}
		parent := filepath.Join(l.Root, nsexec.CgroupParent)
		write(l.Root, "cgroup.subtree_control", "'"+strings.Join(enable, " ")+"'")
		out = append(out, "mkdir -p "+parent)
		write(parent, "cgroup.subtree_control", "'"+strings.Join(enable, " ")+"'")
		limits(group(t.Namespace), t.Limits)
		write(filepath.Join(l.Root, group(t.Namespace)), "cgroup.subtree_control", "'"+strings.Join(enable, " ")+"'")
	} else {
		limits(group(t.Namespace), t.Limits)
	}
	for _, leaf := range sortedLeaves(t) {
		limits(group(t.Namespace, leaf), t.Leaves[leaf])
	}
	return out
}

// State is a namespace's cgroup as found.
type State struct {
	// Complete: it is in every hierarchy the host has, with every leaf
	// of Leaves in each.
	Complete bool
	Limits   specs.Resources
	Leaves   map[string]specs.Resources // by name, with their own limits
}

// Read reads the namespace's cgroup: its limits and its leaves' in the
// first hierarchy that has it; ok is false when it has none.
func (l Layout) Read(ns string) (st State, ok bool) {
	avail := l.Available()
	st.Complete = true
	var first string
	var leaves []string
	for i, dir := range l.Dirs(ns) {
		if !l.V2 && !avail[nsexec.CgroupControllers[i]] {
			continue
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			st.Complete = false
			continue
		}
		var here []string
		for _, e := range entries {
			if e.IsDir() {
				here = append(here, e.Name())
			}
		}
		if first == "" {
			first, leaves = dir, here
		} else if !slices.Equal(here, leaves) {
			st.Complete = false
		}
	}
	if first == "" {
		return State{}, false
	}
	st.Limits, _ = l.Limits(ns, "")
	st.Leaves = map[string]specs.Resources{}
	for _, leaf := range leaves {
		st.Leaves[leaf], _ = l.Limits(ns, leaf)
	}
	return st, true
}
