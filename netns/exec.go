package netns

import (
	"fmt"
	"os"
	"os/user"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"github.com/nsrun/nsrun/internal/nsexec"
)

// EtcDir holds per-namespace configuration files: each file in
// /etc/netns/NAME/ is bind-mounted over the same name in /etc for commands
// run in namespace NAME (as `ip netns exec` does).
const EtcDir = nsexec.EtcDir

// ExecOptions say how to run a command inside a namespace.
type ExecOptions struct {
	User    string   // name or uid, optionally ":group" or ":gid"; empty: stay root
	Env     []string // KEY=VALUE, added to (or replacing in) the current environment
	Workdir string   // empty: stay in the current directory
	// Cgroup is the leaf of the namespace's cgroup to run in, where the
	// namespace has one; empty: the one for commands run by hand (exec).
	Cgroup string
}

// ExitError is a failure with the exit status it calls for: 127 when the
// command is not found, 126 when it cannot be executed.
type ExitError = nsexec.ExitError

// Exec replaces the current process with argv, run inside the named
// network namespace the way `ip netns exec` runs it: in a mount namespace
// of its own where /sys shows the namespace's interfaces and the files of
// /etc/netns/NAME/ stand in for those in /etc; where the namespace has a
// cgroup of nsrun's (resource limits), in a leaf of it, joined first. It
// returns only on failure.
//
// This is the one place where nsrun enters a namespace to run something:
// the supervisor starts its processes through it, so no thread of a
// long-running process ever changes namespace.
func Exec(name string, argv []string, o ExecOptions) error {
	if err := nsexec.CheckName(name); err != nil {
		return err
	}
	f, err := nsexec.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	leaf := o.Cgroup
	if leaf == "" {
		leaf = nsexec.CgroupExecLeaf
	}
	if err := nsexec.JoinCgroup(name, leaf); err != nil {
		return err
	}
	// The thread that enters the namespace is the one that calls execve;
	// it is never unlocked (we exec, or the process exits).
	runtime.LockOSThread()
	if err := nsexec.Enter(name, f); err != nil {
		return err
	}
	return execAs(argv, o)
}

// execAs drops to the user, changes to the directory, applies the
// environment, and replaces the process with the command. The program is
// looked up last, as the user and in the directory: a relative path such
// as ./app.py names a file of the workdir.
func execAs(argv []string, o ExecOptions) error {
	env := os.Environ()
	if o.User != "" {
		env = userEnv(env, o.User)
	}
	env = MergeEnv(env, o.Env)
	if o.User != "" {
		if err := setUser(o.User); err != nil {
			return err
		}
	}
	if o.Workdir != "" {
		if err := os.Chdir(o.Workdir); err != nil {
			return fmt.Errorf("changing to workdir: %w", err)
		}
	}
	return nsexec.Exec(argv, env)
}

// setUser switches to a user given as name or uid, with ":group" or
// ":gid", and the user's supplementary groups.
func setUser(spec string) error {
	uid, gid, groups, err := LookupUser(spec)
	if err != nil {
		return err
	}
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("setting groups for %q: %w", spec, err)
	}
	if err := syscall.Setgid(gid); err != nil {
		return fmt.Errorf("setting group id %d: %w", gid, err)
	}
	if err := syscall.Setuid(uid); err != nil {
		return fmt.Errorf("setting user id %d: %w", uid, err)
	}
	return nil
}

// LookupUser resolves name-or-uid[:group-or-gid] to ids and the user's
// supplementary groups. A uid with no passwd entry runs with gid = uid's
// group given, or the same number, and no supplementary groups.
func LookupUser(spec string) (uid, gid int, groups []int, err error) {
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	u, lerr := user.Lookup(userPart)
	if lerr != nil {
		u, lerr = user.LookupId(userPart)
	}
	switch {
	case lerr == nil:
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		ids, _ := u.GroupIds()
		for _, g := range ids {
			if n, err := strconv.Atoi(g); err == nil {
				groups = append(groups, n)
			}
		}
	case isNumber(userPart):
		uid, _ = strconv.Atoi(userPart)
		gid = uid
	default:
		return 0, 0, nil, fmt.Errorf("user %q does not exist; give an existing name or a numeric uid", userPart)
	}
	if hasGroup {
		if g, err := user.LookupGroup(groupPart); err == nil {
			gid, _ = strconv.Atoi(g.Gid)
		} else if isNumber(groupPart) {
			gid, _ = strconv.Atoi(groupPart)
		} else {
			return 0, 0, nil, fmt.Errorf("group %q does not exist; give an existing name or a numeric gid", groupPart)
		}
		groups = []int{gid}
	}
	if len(groups) == 0 {
		groups = []int{gid}
	}
	return uid, gid, groups, nil
}

func isNumber(s string) bool {
	_, err := strconv.ParseUint(s, 10, 32)
	return err == nil
}

// MergeEnv returns env with each KEY=VALUE of extra set.
func MergeEnv(env, extra []string) []string {
	out := append([]string(nil), env...)
	for _, kv := range extra {
		key, _, _ := strings.Cut(kv, "=")
		out = setEnv(out, key, kv)
	}
	return out
}

func setEnv(env []string, key, kv string) []string {
	for i, e := range env {
		if k, _, _ := strings.Cut(e, "="); k == key {
			env[i] = kv
			return env
		}
	}
	return append(env, kv)
}

// userEnv sets HOME, USER and LOGNAME for a named user.
func userEnv(env []string, spec string) []string {
	name, _, _ := strings.Cut(spec, ":")
	u, err := user.Lookup(name)
	if err != nil {
		if u, err = user.LookupId(name); err != nil {
			return env
		}
	}
	for key, value := range map[string]string{"HOME": u.HomeDir, "USER": u.Username, "LOGNAME": u.Username} {
		env = setEnv(env, key, key+"="+value)
	}
	return env
}
