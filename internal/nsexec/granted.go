package nsexec

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Capabilities the unprivileged exec needs in its permitted set (file
// capabilities of the nsrun-exec helper: see docs/security.md):
// CAP_SYS_ADMIN to enter the namespace and make its mount namespace,
// CAP_SETPCAP to empty the bounding set before the command runs. A
// namespace with resource limits takes CAP_DAC_OVERRIDE too, to write the
// command's pid into its cgroup (a file of root's).
var execCaps = []uintptr{unix.CAP_SYS_ADMIN, unix.CAP_SETPCAP}

// CanExecUnprivileged reports whether this process holds, in its
// permitted set, the capabilities ExecGranted needs.
func CanExecUnprivileged() bool {
	data, err := capget()
	if err != nil {
		return false
	}
	for _, c := range execCaps {
		if data[c/32].Permitted&(1<<(c%32)) == 0 {
			return false
		}
	}
	return true
}

// HoldsCapabilities reports whether any capability is permitted to this
// process.
func HoldsCapabilities() bool {
	data, err := capget()
	return err != nil || data[0].Permitted|data[1].Permitted != 0
}

func capget() ([2]unix.CapUserData, error) {
	var data [2]unix.CapUserData
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	err := unix.Capget(&hdr, &data[0])
	return data, err
}

func capset(data [2]unix.CapUserData) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	return unix.Capset(&hdr, &data[0])
}

// ExecGranted runs argv inside the named namespace for a caller who is not
// root, with the capabilities of nsrun-exec: it checks the namespace's
// grant (see CheckGrant), raises the capabilities on this thread alone,
// enters the network namespace, checks there that it is the one the grant
// names (its cookie), makes the mount namespace as Exec does, then gives up
// every privilege (the effective, permitted, inheritable and ambient
// capabilities and the bounding set, and sets no_new_privs) and execs the
// command as the caller, with the caller's ids and that environment. It
// returns only on failure, with every privilege given up already; nothing
// runs when the grant refuses.
func ExecGranted(name string, argv, env []string) error {
	if err := CheckName(name); err != nil {
		return err
	}
	g, err := CheckGrant(GrantDir, name, os.Getuid(), callerGroups())
	if err != nil {
		return err
	}
	f, err := Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	// Capabilities are a thread's: this one raises them, enters, drops
	// them all and execs; it is never unlocked.
	runtime.LockOSThread()
	data, err := capget()
	if err != nil {
		return fmt.Errorf("reading this process's capabilities: %w", err)
	}
	if HasCgroup(name) {
		if err := joinGranted(name, &data); err != nil {
			return err
		}
	}
	for _, c := range execCaps {
		data[c/32].Effective |= data[c/32].Permitted & (1 << (c % 32))
	}
	if err := capset(data); err != nil {
		return fmt.Errorf("raising the capabilities of nsrun-exec: %w", err)
	}
	if err := enterGranted(name, f, g.Cookie); err != nil {
		// Nothing more is done with them: give them up before saying why.
		return errors.Join(err, DropPrivileges())
	}
	if err := DropPrivileges(); err != nil {
		return err
	}
	return Exec(argv, env)
}

// joinGranted puts the caller into the exec leaf of the namespace's
// cgroup (its resource limits): it raises CAP_DAC_OVERRIDE alone, for the
// one write of its pid into a file of root's, and then drops it from
// every set for good. data is the process's capabilities, which it
// updates.
func joinGranted(name string, data *[2]unix.CapUserData) error {
	const c = unix.CAP_DAC_OVERRIDE
	if data[c/32].Permitted&(1<<(c%32)) == 0 {
		return fmt.Errorf("namespace %q has resource limits, and nsrun-exec lacks cap_dac_override, which putting the command in the namespace's cgroup takes; root installs it with it (sudo scripts/install.sh --exec-capability; see docs/security.md)", name)
	}
	data[c/32].Effective |= 1 << (c % 32)
	if err := capset(*data); err != nil {
		return fmt.Errorf("raising cap_dac_override: %w", err)
	}
	err := JoinCgroup(name, CgroupExecLeaf)
	if err != nil {
		// Nothing more is done: every capability goes before saying why.
		return errors.Join(err, capset([2]unix.CapUserData{}))
	}
	data[c/32].Effective &^= 1 << (c % 32)
	data[c/32].Permitted &^= 1 << (c % 32)
	if err := capset(*data); err != nil {
		return errors.Join(fmt.Errorf("dropping cap_dac_override: %w", err), capset([2]unix.CapUserData{}))
	}
	return nil
}

// enterGranted enters the namespace f is, checks there that its cookie is
// the grant's, and makes the mount namespace.
func enterGranted(name string, f *os.File, cookie uint64) error {
	if err := EnterNet(name, f); err != nil {
		return err
	}
	now, err := CurrentCookie()
	if err != nil {
		return err
	}
	if now != cookie {
		return ErrGone(name)
	}
	return EnterMounts(name)
}

// DropPrivileges empties the bounding set (CAP_SETPCAP still effective),
// the ambient set and then every other set, and sets no_new_privs: the
// command, running as the caller, has no capability and can gain none.
func DropPrivileges() error {
	last := lastCap()
	for c := 0; c <= last; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("dropping capability %d from the bounding set: %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("clearing the ambient capabilities: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("setting no_new_privs: %w", err)
	}
	if err := capset([2]unix.CapUserData{}); err != nil {
		return fmt.Errorf("dropping every capability: %w", err)
	}
	return nil
}

// lastCap is the highest capability the kernel knows.
func lastCap() int {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if n, perr := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && perr == nil {
		return n
	}
	return 63
}

// callerGroups are the caller's real gid and supplementary groups.
func callerGroups() []int {
	groups, _ := unix.Getgroups()
	return append(groups, os.Getgid())
}
