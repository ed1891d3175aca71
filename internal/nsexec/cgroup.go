package nsexec

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Where nsrun keeps the cgroups of namespaces with resource limits: on
// cgroup v2, CgroupRoot/nsrun/NS; on cgroup v1, the same path in each
// hierarchy of CgroupControllers mounted at CgroupRoot/CONTROLLER. The
// processes live in leaves of it: CgroupExecLeaf for those started by
// nsrun exec, run.NAME for each supervised one (see package cgroup).
const (
	CgroupRoot     = "/sys/fs/cgroup"
	CgroupParent   = "nsrun"
	CgroupExecLeaf = "exec"
)

// CgroupControllers are the cgroup v1 hierarchies nsrun uses: the three
// limits and cpuacct, which counts CPU time.
var CgroupControllers = []string{"memory", "cpu", "cpuacct", "pids"}

// CgroupV2 reports whether the cgroup root is the unified hierarchy
// (cgroup v2); otherwise it holds the v1 hierarchies.
func CgroupV2(root string) bool {
	var st unix.Statfs_t
	return unix.Statfs(root, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}

// CgroupDirs are the namespace's cgroup directories, one per hierarchy,
// whether they exist or not, on the layout the root has (ns "": nsrun's
// parent cgroups).
func CgroupDirs(root, ns string) []string { return CgroupDirsOf(root, CgroupV2(root), ns) }

// CgroupDirsOf are CgroupDirs on the layout given: v2, or v1 with a
// hierarchy per controller of CgroupControllers, in that order.
func CgroupDirsOf(root string, v2 bool, ns string) []string {
	if v2 {
		return []string{filepath.Join(root, CgroupParent, ns)}
	}
	var dirs []string
	for _, c := range CgroupControllers {
		dirs = append(dirs, filepath.Join(root, c, CgroupParent, ns))
	}
	return dirs
}

// HasCgroup reports whether the namespace has a cgroup of nsrun's in any
// hierarchy.
func HasCgroup(ns string) bool {
	for _, dir := range CgroupDirs(CgroupRoot, ns) {
		if _, err := os.Lstat(dir); err == nil {
			return true
		}
	}
	return false
}

// JoinCgroup moves the calling process into the leaf of the namespace's
// cgroup, in every hierarchy where the namespace has one; a namespace
// without one (no limits) is left as it is. The leaf must exist where
// the namespace's cgroup does: a process never runs outside limits that
// are in place. Each file written is checked to be a cgroup file first.
// It runs before the namespace is entered (the mount namespace made then
// no longer shows the host's cgroups).
func JoinCgroup(ns, leaf string) error {
	for _, dir := range CgroupDirs(CgroupRoot, ns) {
		if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err := writeProcs(filepath.Join(dir, leaf, "cgroup.procs")); err != nil {
			return fmt.Errorf("joining the cgroup of namespace %q (its resource limits): %w; run nsrun up again to put it back", ns, err)
		}
	}
	return nil
}

// writeProcs writes 0 (the writer itself) into a cgroup.procs file.
func writeProcs(path string) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		return &os.PathError{Op: "statfs", Path: path, Err: err}
	}
	if st.Type != unix.CGROUP_SUPER_MAGIC && st.Type != unix.CGROUP2_SUPER_MAGIC {
		return fmt.Errorf("%s is not on a cgroup file system", path)
	}
	if _, err := unix.Write(fd, []byte("0")); err != nil {
		return &os.PathError{Op: "write", Path: path, Err: err}
	}
	return nil
}
