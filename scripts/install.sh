#!/usr/bin/env bash
# Installs nsrun: the binary and its exec helper, its man pages, shell
# completions and the systemd template unit, to the usual places;
# --uninstall removes exactly what an install wrote (listed in
# PREFIX/share/nsrun/installed-files).
#
#   sudo scripts/install.sh [--exec-capability] [--uninstall]
#
# --exec-capability gives the helper, PREFIX/bin/nsrun-exec, the file
# capabilities that let users a spec grants exec to (exec: {users: [...]})
# run nsrun exec without sudo: setcap cap_dac_override,cap_setpcap,cap_sys_admin+p (see
# docs/security.md; undo with setcap -r PREFIX/bin/nsrun-exec, or install
# again without it). nsrun itself never gets any.
#
# PREFIX (default /usr/local) is where the binaries, pages and completions
# go; the unit goes to /etc/systemd/system, its ExecStart naming
# PREFIX/bin/nsrun. DESTDIR stages everything below another root, as
# packagers do. NSRUN_BINARY and NSRUN_EXEC_BINARY install those binaries
# instead of bin/nsrun and bin/nsrun-exec (built by scripts/build.sh when
# missing).
set -euo pipefail
cd "$(dirname "$0")/.."

prefix=${PREFIX:-/usr/local}
dest=${DESTDIR:-}
manifest=$dest$prefix/share/nsrun/installed-files

exec_capability=false
[[ ${1:-} == --exec-capability ]] && exec_capability=true && shift
if [[ ${1:-} == --uninstall ]]; then
	if [[ ! -f $manifest ]]; then
		echo "install.sh: nothing to uninstall: $manifest is missing" >&2
		exit 1
	fi
	while read -r f; do rm -f "$dest$f"; done <"$manifest"
	rm -f "$manifest"
	rmdir "$(dirname "$manifest")" 2>/dev/null || true
	echo "nsrun uninstalled from $dest$prefix; /etc/nsrun and its specs are left in place"
	exit 0
fi
if [[ -z $dest && $(id -u) -ne 0 ]]; then
	echo "install.sh writes to $prefix and /etc; run it as root: sudo $0" >&2
	exit 1
fi

binary=${NSRUN_BINARY:-bin/nsrun}
helper=${NSRUN_EXEC_BINARY:-bin/nsrun-exec}
[[ -x $binary && -x $helper ]] || scripts/build.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

installed=()
put() { # MODE SOURCE TARGET (TARGET without DESTDIR)
	install -D -m "$1" "$2" "$dest$3"
	installed+=("$3")
}

put 0755 "$binary" "$prefix/bin/nsrun"
put 0755 "$helper" "$prefix/bin/nsrun-exec"
if $exec_capability; then
	# Permitted only, not effective: the helper raises them itself, on the
	# one thread that enters, and drops every one before the command runs.
	setcap cap_dac_override,cap_setpcap,cap_sys_admin+p "$dest$prefix/bin/nsrun-exec"
fi
"$binary" man "$work/man"
for page in "$work"/man/*.1; do
	put 0644 "$page" "$prefix/share/man/man1/$(basename "$page")"
done
"$binary" completion bash >"$work/nsrun.bash"
"$binary" completion zsh >"$work/_nsrun"
"$binary" completion fish >"$work/nsrun.fish"
put 0644 "$work/nsrun.bash" "$prefix/share/bash-completion/completions/nsrun"
put 0644 "$work/_nsrun" "$prefix/share/zsh/site-functions/_nsrun"
put 0644 "$work/nsrun.fish" "$prefix/share/fish/vendor_completions.d/nsrun.fish"
sed "s|/usr/local/bin/nsrun|$prefix/bin/nsrun|g" contrib/systemd/nsrun@.service >"$work/nsrun@.service"
put 0644 "$work/nsrun@.service" /etc/systemd/system/nsrun@.service
sed "s|/usr/local/bin/nsrun|$prefix/bin/nsrun|g" contrib/systemd/nsrun-metrics.service >"$work/nsrun-metrics.service"
put 0644 "$work/nsrun-metrics.service" /etc/systemd/system/nsrun-metrics.service
install -d -m 0755 "$dest/etc/nsrun"

mkdir -p "$(dirname "$manifest")"
printf '%s\n' "${installed[@]}" >"$manifest"
if [[ -z $dest && -d /run/systemd/system ]]; then
	systemctl daemon-reload
fi
echo "nsrun installed to $dest$prefix (${#installed[@]} files; the list is in $manifest)"
echo "boot persistence: put a spec in /etc/nsrun/NAME.yaml, then: systemctl enable --now nsrun@NAME"
echo "metrics for Prometheus at 127.0.0.1:9469: systemctl enable --now nsrun-metrics"
if $exec_capability; then
	echo "nsrun exec without sudo: $prefix/bin/nsrun-exec has cap_dac_override,cap_setpcap,cap_sys_admin+p (getcap shows it; setcap -r removes it)"
fi
