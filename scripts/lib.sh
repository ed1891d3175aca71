# Shared by the scripts: source scripts/lib.sh

# /run/netns is made on first use (as ip netns add makes it: a shared bind
# mount on itself). A script that finds it absent removes it at the end,
# once empty, so the machine is left as it was found.
run_netns_was_there=false
[[ -d /run/netns ]] && run_netns_was_there=true

remove_run_netns_if_new() {
	if ! $run_netns_was_there && [[ -d /run/netns && -z $(ls -A /run/netns) ]]; then
		for _ in 1 2 3 4 5; do mountpoint -q /run/netns && umount -l /run/netns; done
		rmdir /run/netns 2>/dev/null || true
	fi
}

# iptables-nft makes its tables (ip filter, ip nat, ...) the first time a
# rule goes in, and nothing removes them. A script whose own iptables
# commands may make them removes, at the end, those it found absent that
# hold nothing (no rule, set or chain of their own, every policy accept),
# as nsrun's down does.
nft_tables_before=$(nft list tables 2>/dev/null || true)

remove_iptables_tables_if_new() {
	command -v nft >/dev/null || return 0
	local fam table
	for fam in ip ip6; do
		for table in filter nat mangle raw; do
			grep -qx "table $fam $table" <<<"$nft_tables_before" && continue
			nft list table "$fam" "$table" >/dev/null 2>&1 || continue
			nft -j list table "$fam" "$table" 2>/dev/null | python3 -c '
import json, sys
objs = json.load(sys.stdin)["nftables"]
def busy(o):
    if any(k in o for k in ("rule", "set", "map", "element")):
        return True
    c = o.get("chain")
    return c is not None and ("hook" not in c or c.get("policy", "accept") != "accept")
sys.exit(1 if any(busy(o) for o in objs) else 0)' && nft delete table "$fam" "$table"
		done
	done
	return 0
}

# --- daemons a script starts, and what they leave in the firewall ---
# These use the caller's $work (a directory of its own), pids (every
# process it started, killed at the end) and containerd_pid/dockerd_pid.

wait_for() { # WHAT SECONDS CMD...: until CMD succeeds
	local what=$1 secs=$2
	shift 2
	for _ in $(seq $((secs * 10))); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "$(basename "$0"): $what did not come up in ${secs}s" >&2
	tail -20 "$work"/*.log >&2 2>/dev/null || true
	return 1
}

stop_pid() { # PID: SIGTERM, then wait for it to end
	[[ -n $1 ]] || return 0
	kill "$1" 2>/dev/null || return 0
	for _ in $(seq 300); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
	kill -9 "$1" 2>/dev/null || true
}

# start_docker [STORAGE DRIVER]: containerd (unless it runs) and dockerd,
# with their state in $work and the API at unix://$work/docker/sock; vfs
# unless told.
start_docker() {
	mkdir -p "$work/containerd" "$work/docker"
	if [[ -z $containerd_pid ]]; then
		containerd --root "$work/containerd/root" --state "$work/containerd/state" --address "$work/containerd/sock" \
			>>"$work/containerd.log" 2>&1 &
		containerd_pid=$!
		pids+=("$containerd_pid")
		wait_for containerd 30 test -S "$work/containerd/sock"
	fi
	dockerd --containerd "$work/containerd/sock" --data-root "$work/docker/root" --exec-root "$work/docker/exec" \
		--pidfile "$work/docker/pid" --host "unix://$work/docker/sock" --storage-driver "${1:-vfs}" \
		>>"$work/dockerd.log" 2>&1 &
	dockerd_pid=$!
	pids+=("$dockerd_pid")
	wait_for dockerd 60 docker -H "unix://$work/docker/sock" version
	wait_for "Docker's chains" 30 sh -c 'iptables -S DOCKER-USER >/dev/null 2>&1'
}

stop_docker() { stop_pid "$dockerd_pid"; dockerd_pid=""; }

stop_containerd() { stop_pid "$containerd_pid"; containerd_pid=""; }

# save_firewalls saves what Docker, netavark and the like change and leave
# behind: both iptables flavours, the nftables tables, ip_forward;
# restore_firewalls puts it back, deleting the tables made since and
# Docker's and Podman's bridges.
save_firewalls() {
	iptables-nft-save >"$work/v4.before" 2>/dev/null
	ip6tables-nft-save >"$work/v6.before" 2>/dev/null
	iptables-legacy-save >"$work/legacy.before"
	nft list tables | sort >"$work/tables.before"
	sysctl net.ipv4.ip_forward >"$work/forward.before"
}

restore_firewalls() {
	[[ -f $work/v4.before ]] || return 0
	iptables-nft-restore <"$work/v4.before" 2>/dev/null
	ip6tables-nft-restore <"$work/v6.before" 2>/dev/null
	iptables-legacy-restore <"$work/legacy.before"
	grep -q "^\*filter" "$work/legacy.before" || iptables-legacy -P FORWARD ACCEPT 2>/dev/null || true # loaded since: no saved policy
	nft list tables | sort | comm -13 "$work/tables.before" - | while read -r _ family name; do
		nft delete table "$family" "$name"
	done
	ip link del docker0 2>/dev/null || true
	ip link del podman0 2>/dev/null || true
	sed 's/ = /=/' "$work/forward.before" | xargs -r sysctl -q -w
}
