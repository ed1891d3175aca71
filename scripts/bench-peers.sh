#!/usr/bin/env bash
# nsrun side by side with what users would pick instead, Podman and Docker
# as Debian ships them (run by 'sudo scripts/bench.sh --peers'):
#
#   sudo scripts/bench-peers.sh [--quick]
#
# N web servers (N = 100; 20 with --quick), each in its own network
# namespace listening on port 8080 and published as host port 6000 + i:
# one spec for nsrun, one 'run -d -p' per service for Podman and Docker.
# The same static server (scripts/benchserver) runs in all three; the
# containers' image is Debian's busybox-static and that server, made with
# 'podman import' and 'docker import' (no registry is reachable here).
# For each system in turn:
#
# - bring-up: from the first command until every published port answers
#   an HTTP request from another machine (a namespace routed through the
#   host, to the host's address on that link);
# - memory: the processes' PSS and the host's MemAvailable after the
#   bring-up against before it (each daemon already running), less the
#   servers' own PSS, per service;
# - the data path: keep-alive requests/s (wrk) to the first service, from
#   the other machine and from the host at 127.0.0.1;
# - teardown: removing every service ('nsrun down', 'podman rm -f --all',
#   'docker rm -f' of them all).
#
# It installs podman, netavark, docker.io, containerd, runc, busybox-static
# and wrk from Debian when missing (they stay installed), starts containerd
# and dockerd with their state in a directory of its own and stops them by
# their PIDs, runs Podman with its storage there too (runc and cgroupfs:
# this host has cgroup v1 and no systemd; explicit ulimits, as root here
# cannot raise them), and leaves the host as it found it: the firewall
# rules, tables and bridges the daemons made are put back, ip_forward too.
set -euo pipefail
cd "$(dirname "$0")/.."

n=100 secs=5
case "${1:-}" in
--quick) n=20 secs=3 ;;
"") ;;
*)
	echo "usage: sudo $0 [--quick]" >&2
	exit 2
	;;
esac
if [[ $(id -u) -ne 0 ]]; then
	echo "bench-peers.sh starts Podman's and Docker's containers and dockerd; run it as root: sudo $0" >&2
	exit 1
fi
scripts/install-deps.sh
need=()
for pkg in podman netavark docker.io containerd runc busybox-static wrk; do
	dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if ((${#need[@]} > 0)); then
	echo "bench-peers.sh: installing ${need[*]}" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
scripts/build.sh
nsrun=$PWD/bin/nsrun

work=$(mktemp -d /tmp/nsrun-peers.XXXXXX)
pids=() containerd_pid="" dockerd_pid=""
source scripts/lib.sh
# Podman, runc and containerd make these on first use, whatever their
# state directories say.
made_dirs=()
for d in /run/libpod /run/containers /run/runc /run/containerd /var/lib/containers; do [[ -e $d ]] || made_dirs+=("$d"); done

out=peersout$$ outlink=pro$$ outhost=10.251.0.1 outpeer=10.251.0.2 first=6000 image=nsrun-peer:1
export DOCKER_HOST=unix://$work/docker/sock
podman() { CONTAINERS_CONF=$work/containers.conf command podman --root "$work/podman/root" --runroot "$work/podman/run" --storage-driver overlay "$@"; }

cleanup() {
	set +e
	"$nsrun" down -q -p peers >/dev/null 2>&1
	[[ -f $work/containers.conf ]] && podman rm -f --all >/dev/null 2>&1
	[[ -n $dockerd_pid ]] && docker rm -f $(docker ps -aq) >/dev/null 2>&1
	stop_docker
	stop_containerd
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	ip netns del "$out" 2>/dev/null
	ip link del "$outlink" 2>/dev/null
	restore_firewalls
	# Podman's overlay mounts go with its containers; its storage's own
	# mount (if any) before the directory.
	grep -o " $work/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
	rm -rf "$work" "${made_dirs[@]}"
	remove_run_netns_if_new
}
trap cleanup EXIT
save_firewalls

# --- the image: busybox-static and the server -------------------------------
mkdir -p "$work/rootfs/bin"
cp /bin/busybox "$work/rootfs/bin/busybox"
ln -s busybox "$work/rootfs/bin/sh"
CGO_ENABLED=0 go build -o "$work/rootfs/benchserver" ./scripts/benchserver
tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
cat >"$work/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
tmp_dir = "$work/podman/tmp"
[network]
network_backend = "netavark"
EOF

# --- the other machine: a namespace routed through the host -----------------
ip netns add "$out"
ip link add "$outlink" type veth peer name eth0 netns "$out"
ip addr add "$outhost/30" dev "$outlink"
ip link set "$outlink" up
ip -n "$out" addr add "$outpeer/30" dev eth0
ip -n "$out" link set eth0 up
ip -n "$out" link set lo up
ip -n "$out" route add default via "$outhost"

cat >"$work/answer.py" <<'EOF'
# answer.py HOST FIRST N TIMEOUT: until every port FIRST..FIRST+N-1 of HOST
# answers "ok"; exit 1 at the timeout.
import sys, time, urllib.request
host, first, n, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
left = set(range(first, first + n))
end = time.monotonic() + timeout
while left and time.monotonic() < end:
    for port in sorted(left):
        try:
            if urllib.request.urlopen(f"http://{host}:{port}/", timeout=1).read() == b"ok\n":
                left.discard(port)
        except OSError:
            pass
    if left:
        time.sleep(0.05)
if left:
    sys.exit(f"ports {sorted(left)[:5]}... did not answer in {timeout:.0f} s")
EOF
cat >"$work/memory.py" <<'EOF'
# memory.py: the PSS of every process (kB), that of the servers, and the
# host's MemAvailable (kB).
import os
total = servers = 0
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            pss = next(int(l.split()[1]) for l in f if l.startswith("Pss:"))
        with open(f"/proc/{pid}/comm") as f:
            comm = f.read().strip()
    except (OSError, StopIteration):
        continue
    total += pss
    if comm == "benchserver":
        servers += pss
avail = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemAvailable:"))
print(total, servers, avail)
EOF

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.2f", b-a}'; }
answered() { ip netns exec "$out" python3 "$work/answer.py" "$outhost" "$first" "$n" 600; }
rate() { # rate WRK-ARGS...: requests/s
	"$@" -t2 -c32 -d"${secs}s" 2>/dev/null | awk '/Requests\/sec/ {print $2}'
}
declare -A up_s down_s mem_pss mem_avail rps_out rps_lo

# measure NAME START-CMD STOP-CMD: one system's rows.
measure() {
	local name=$1 start=$2 stop=$3 t before after
	sync
	sleep 2
	read -r -a before < <(python3 "$work/memory.py")
	t=$(now)
	eval "$start"
	answered
	up_s[$name]=$(since "$t")
	sleep 2
	read -r -a after < <(python3 "$work/memory.py")
	mem_pss[$name]=$(awk -v a="${after[0]}" -v b="${before[0]}" -v s="${after[1]}" -v n="$n" 'BEGIN{printf "%.2f", (a-b-s)/n/1024}')
	mem_avail[$name]=$(awk -v a="${before[2]}" -v b="${after[2]}" -v s="${after[1]}" -v n="$n" 'BEGIN{printf "%.2f", (a-b-s)/n/1024}')
	rps_out[$name]=$(rate ip netns exec "$out" wrk "http://$outhost:$first/")
	rps_lo[$name]=$(rate wrk "http://127.0.0.1:$first/")
	t=$(now)
	eval "$stop"
	down_s[$name]=$(since "$t")
	echo "bench-peers.sh: $name: up ${up_s[$name]} s, down ${down_s[$name]} s, ${mem_pss[$name]} MiB PSS and ${mem_avail[$name]} MiB MemAvailable per service, ${rps_out[$name]} and ${rps_lo[$name]} requests/s" >&2
}

# nsrun: one spec.
{
	echo "name: peers"
	echo "subnet: 10.250.0.0/16"
	echo "namespaces:"
	for ((i = 0; i < n; i++)); do
		echo "  peer$i: {ports: [\"$((first + i)):8080\"], run: [{name: web, command: [\"$work/rootfs/benchserver\", \"-addr\", \":8080\"]}]}"
	done
} >"$work/peers.yaml"
measure nsrun '"$nsrun" up -q "$work/peers.yaml" >/dev/null' '"$nsrun" down -q -p peers >/dev/null'

# Podman: one 'podman run' per service, as its documentation does.
podman import -q "$work/rootfs.tar" "$image" >/dev/null
podman_up() {
	for ((i = 0; i < n; i++)); do
		podman run -d -q --name "peer$i" -p "$((first + i)):8080" "$image" /benchserver -addr :8080 >/dev/null
	done
}
measure podman podman_up 'podman rm -f --all >/dev/null'
podman rmi -f "$image" >/dev/null

# Docker: the same, with dockerd (overlay2, its userland proxy on, as
# installed) started for it.
start_docker overlay2
docker import "$work/rootfs.tar" "$image" >/dev/null
docker_up() {
	for ((i = 0; i < n; i++)); do
		docker run -d --name "peer$i" -p "$((first + i)):8080" "$image" /benchserver -addr :8080 >/dev/null
	done
}
measure docker docker_up 'docker rm -f $(docker ps -aq) >/dev/null'

row() { printf '%-58s %10s %10s %10s %s\n' "$@"; }
x() { python3 -c 'import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(f"{a/b:.1f}x" if b else "n/a")' "$1" "$2"; }
echo
echo "== nsrun, Podman $(command podman version -f '{{.Client.Version}}' 2>/dev/null) and Docker $(command dockerd --version | awk '{print $3}' | tr -d ,), $n services"
row "measure" "nsrun" "podman" "docker" "nsrun's lead (podman, docker)"
row "bring-up until every port answers (s)" "${up_s[nsrun]}" "${up_s[podman]}" "${up_s[docker]}" "$(x "${up_s[podman]}" "${up_s[nsrun]}"), $(x "${up_s[docker]}" "${up_s[nsrun]}")"
row "teardown (s)" "${down_s[nsrun]}" "${down_s[podman]}" "${down_s[docker]}" "$(x "${down_s[podman]}" "${down_s[nsrun]}"), $(x "${down_s[docker]}" "${down_s[nsrun]}")"
row "memory per service beyond the server, PSS (MiB)" "${mem_pss[nsrun]}" "${mem_pss[podman]}" "${mem_pss[docker]}" "(information)"
row "memory per service beyond the server, MemAvailable (MiB)" "${mem_avail[nsrun]}" "${mem_avail[podman]}" "${mem_avail[docker]}" "(information)"
row "requests/s from another machine, keep-alive" "${rps_out[nsrun]}" "${rps_out[podman]}" "${rps_out[docker]}" "$(x "${rps_out[nsrun]}" "${rps_out[podman]}"), $(x "${rps_out[nsrun]}" "${rps_out[docker]}")"
row "requests/s at 127.0.0.1, keep-alive" "${rps_lo[nsrun]}" "${rps_lo[podman]}" "${rps_lo[docker]}" "$(x "${rps_lo[nsrun]}" "${rps_lo[podman]}"), $(x "${rps_lo[nsrun]}" "${rps_lo[docker]}")"
