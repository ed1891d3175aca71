//go:build cgo && linux

// The fast path of 'nsrun exec NS [--] CMD [ARG...]'; see doc.go.
//
// It runs as an ELF constructor, before the Go runtime starts, while the
// process has a single thread. It does what netns.Exec does, in the same
// order, and changes nothing the Go path cannot redo: on any failure it
// returns, the Go runtime starts, and netns.Exec does every step again from
// where this left off and reports what failed. So this file has no error
// messages and no exit codes of its own.

#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <unistd.h>

#ifdef __GLIBC__ // glibc passes argc and argv to constructors; musl does not.

extern char **environ;

// join writes a/b into buf; 0 when it does not fit.
static int join(char *buf, size_t size, const char *a, int alen, const char *b)
{
	int n = snprintf(buf, size, "%.*s/%s", alen, a, b);
	return n > 0 && (size_t)n < size;
}

// valid_name is netns.checkExecName: a plain file name in /run/netns.
static int valid_name(const char *name)
{
	return name[0] != '\0' && strcmp(name, ".") != 0 && strcmp(name, "..") != 0 &&
	       strchr(name, '/') == NULL && strlen(name) <= 255;
}

// open_netns is netns.openNamed without the messages.
static int open_netns(const char *name)
{
	static const char *const dirs[] = {"/run/netns", "/var/run/netns"};
	char path[PATH_MAX];
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		if (!join(path, sizeof(path), dirs[i], (int)strlen(dirs[i]), name))
			return -1;
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0 || errno != ENOENT)
			return fd;
	}
	return -1;
}

// join_cgroup is nsexec.JoinCgroup for the exec leaf: where the namespace
// has a cgroup of nsrun's (resource limits), in each hierarchy, write 0
// into exec/cgroup.procs, a file checked to be a cgroup file. 1 when done
// or nothing is to be done, 0 to leave it to the Go path.
static int join_cgroup(const char *name)
{
	static const char *const v1[] = {"memory", "cpu", "cpuacct", "pids"};
	struct statfs st;
	int v2 = statfs("/sys/fs/cgroup", &st) == 0 && st.f_type == CGROUP2_SUPER_MAGIC;
	for (int i = 0; i < (v2 ? 1 : 4); i++) {
		char dir[PATH_MAX], path[PATH_MAX];
		int len = v2 ? snprintf(dir, sizeof(dir), "/sys/fs/cgroup/nsrun/%s", name)
			     : snprintf(dir, sizeof(dir), "/sys/fs/cgroup/%s/nsrun/%s", v1[i], name);
		if (len <= 0 || (size_t)len >= sizeof(dir))
			return 0;
		struct stat sb;
		if (lstat(dir, &sb) != 0) {
			if (errno == ENOENT)
				continue;
			return 0;
		}
		if (!join(path, sizeof(path), dir, len, "exec/cgroup.procs"))
			return 0;
		int fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return 0;
		struct statfs fs;
		int ok = fstatfs(fd, &fs) == 0 && (fs.f_type == CGROUP_SUPER_MAGIC || fs.f_type == CGROUP2_SUPER_MAGIC) &&
			 write(fd, "0", 1) == 1;
		close(fd);
		if (!ok)
			return 0;
	}
	return 1;
}

// remount_sys is netns.remountSys.
static int remount_sys(const char *name)
{
	struct statfs st;
	unsigned long flags = 0;
	if (statfs("/sys", &st) == 0 && (st.f_flags & ST_RDONLY) != 0)
		flags = MS_RDONLY;
	if (umount2("/sys", MNT_DETACH) != 0 && errno != EINVAL)
		return 0;
	return mount(name, "/sys", "sysfs", flags, NULL) == 0;
}

// bind_etc is netns.bindEtc, except that a file it cannot bind sends the
// whole exec to the Go path, which reports that file and goes on.
static int bind_etc(const char *name)
{
	char dir[PATH_MAX], src[PATH_MAX], dst[PATH_MAX];
	if (!join(dir, sizeof(dir), "/etc/netns", 10, name))
		return 0;
	DIR *d = opendir(dir);
	if (d == NULL)
		return 1; // nothing to bind, as in the Go path
	int ok = 1;
	struct dirent *e;
	while (ok && (e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		ok = join(src, sizeof(src), dir, (int)strlen(dir), e->d_name) &&
		     join(dst, sizeof(dst), "/etc", 4, e->d_name) &&
		     mount(src, dst, "none", MS_BIND, NULL) == 0;
	}
	closedir(d);
	return ok;
}

// exec_cmd is netns.lookPath and syscall.Exec: a name with a slash is run
// as it is; otherwise the first executable file of that name in PATH (an
// empty entry is the current directory). It returns only on failure.
static void exec_cmd(char **cmd)
{
	if (strchr(cmd[0], '/') != NULL) {
		execve(cmd[0], cmd, environ);
		return;
	}
	const char *path = getenv("PATH");
	if (path == NULL || path[0] == '\0')
		return;
	char p[PATH_MAX];
	for (const char *dir = path;; ) {
		const char *end = strchrnul(dir, ':');
		int ok = end == dir ? join(p, sizeof(p), ".", 1, cmd[0])
				    : join(p, sizeof(p), dir, (int)(end - dir), cmd[0]);
		struct stat st;
		if (ok && stat(p, &st) == 0 && !S_ISDIR(st.st_mode) && (st.st_mode & 0111) != 0) {
			execve(p, cmd, environ);
			return;
		}
		if (*end == '\0')
			return;
		dir = end + 1;
	}
}

// nsrun_fastexec takes 'nsrun exec NS CMD...' and 'nsrun exec NS -- CMD...'
// as root; anything else (flags, help, a missing command, another user) is
// left to the Go path.
__attribute__((constructor)) static void nsrun_fastexec(int argc, char **argv)
{
	if (argc < 4 || strcmp(argv[1], "exec") != 0)
		return;
	const char *name = argv[2];
	char **cmd = argv + 3;
	if (strcmp(cmd[0], "--") == 0)
		cmd++;
	else if (cmd[0][0] == '-')
		return;
	if (name[0] == '-' || !valid_name(name) || cmd[0] == NULL || geteuid() != 0)
		return;
	int fd = open_netns(name);
	if (fd < 0)
		return;
	if (!join_cgroup(name)) {
		close(fd);
		return;
	}
	int entered = setns(fd, CLONE_NEWNET) == 0;
	close(fd);
	if (!entered || unshare(CLONE_NEWNS) != 0 ||
	    mount("", "/", "none", MS_SLAVE | MS_REC, NULL) != 0 ||
	    !remount_sys(name) || !bind_etc(name))
		return;
	exec_cmd(cmd);
}

#endif
