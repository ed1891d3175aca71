#!/usr/bin/env bash
# Kill 'nsrun up' with SIGKILL at random instants, run 'nsrun down', and
# check that the host is exactly as before each time. Runs alternate
# between the firewall backends: odd ones --firewall iptables, even ones
# --firewall nftables.
#
#   sudo scripts/chaos.sh [RUNS] [SEED]      (default: 50 runs, a random seed)
#
# It prints the seed, so a run can be replayed, and ends with
# "N/N converged". Exit status 0 only when every run converged.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${1:-50}
seed=${2:-$((RANDOM * 32768 + RANDOM))}
if [[ $(id -u) -ne 0 ]]; then
	echo "chaos.sh creates namespaces and firewall rules; run it as root: sudo $0" >&2
	exit 1
fi
scripts/install-deps.sh
scripts/build.sh
nsrun=$PWD/bin/nsrun

work=$(mktemp -d)
go build -o "$work/hoststate" ./scripts/hoststate
spec=$work/chaos.yaml
cat >"$spec" <<'YAML'
name: chaos
namespaces:
  chaos1:
    ports: ["16000:8080", "16100:9090/udp"]
    resources: {memory: 64M, pids: 32}
    run:
      - command: [sleep, "600"]
  chaos2:
    egress: false
    ports: ["16001:8080"]
    run:
      - command: sleep 600
        restart: always
  chaos3:
    ports: ["127.0.0.1:16002:8080", "17000-17010:8000-8010"]
YAML
source scripts/lib.sh
cleanup() {
	"$nsrun" down -q -p chaos >/dev/null 2>&1 || true
	rm -rf "$work"
	remove_run_netns_if_new
}
trap cleanup EXIT

# Everything nsrun could leave behind: what the test suite compares
# (namespaces, links, rules, sysctls, cgroup programs, nsrun's cgroups,
# /run/nsrun), and more.
snapshot() {
	"$work/hoststate"
	echo "== /etc/netns"
	ls -A /etc/netns 2>/dev/null || true
	echo "== processes"
	pgrep -f "$nsrun" || true
	pgrep -x sleep -a | grep -w 600 || true
}

before=$(snapshot)
RANDOM=$seed
echo "chaos: $runs runs, seed $seed (replay: sudo $0 $runs $seed)"
converged=0
declare -A ok=([iptables]=0 [nftables]=0) tried=([iptables]=0 [nftables]=0)
for ((i = 1; i <= runs; i++)); do
	delay_ms=$((RANDOM % 120)) # up takes about 50-100ms here: most kills land inside it
	firewall=iptables
	((i % 2 == 0)) && firewall=nftables
	tried[$firewall]=$((tried[$firewall] + 1))
	"$nsrun" up -q --firewall "$firewall" "$spec" >/dev/null 2>&1 &
	pid=$!
	sleep "$(printf '0.%03d' "$delay_ms")"
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	if ! "$nsrun" down -q -p chaos >"$work/down.log" 2>&1; then
		echo "run $i ($firewall, kill after ${delay_ms}ms): down failed:"
		cat "$work/down.log"
		continue
	fi
	after=$(snapshot)
	if [[ $after == "$before" ]]; then
		converged=$((converged + 1))
		ok[$firewall]=$((ok[$firewall] + 1))
	else
		echo "run $i ($firewall, kill after ${delay_ms}ms): the host differs after down:"
		diff <(echo "$before") <(echo "$after") || true
		"$nsrun" down --all >/dev/null 2>&1 || true
	fi
done
echo "$converged/$runs converged (iptables ${ok[iptables]}/${tried[iptables]}, nftables ${ok[nftables]}/${tried[nftables]})"
[[ $converged == "$runs" ]]
