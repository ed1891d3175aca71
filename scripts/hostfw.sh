#!/usr/bin/env bash
# Published ports beside the host's own firewalls, and healing when they
# change under a running project: firewalld, ufw, Docker, the other
# iptables backend, and flushes. Each scenario runs once per nsrun backend
# (--firewall iptables, --firewall nftables) with real daemons, started
# here by hand (the machine may have no init system), and checks, from an
# "outside" namespace routed through the host, from the host at 127.0.0.1
# and from a namespace's egress, that traffic passes again within 5 s with
# no command run, that status tells what happened, and that down leaves
# the host as it was.
#
#   sudo scripts/hostfw.sh [SCENARIO...]    (default: all; -l lists them)
#   sudo scripts/hostfw.sh --bench [N]      (healing times over N reloads, default 20,
#                                           and the keeper's idle cost; BENCHMARKS.md)
#
# It prints one line per scenario and backend with the time traffic took
# to pass again, and ends with "N/N passed". It puts the host back as it
# found it: the daemons it started stopped, their chains, tables, links
# and zones removed, ufw's files and sysctls restored.
set -euo pipefail
cd "$(dirname "$0")/.."

scenarios=(firewalld-before firewalld-iptables firewalld-unbound firewalld-after firewalld-reload firewalld-stop zone-external zone-drop
	legacy-policy nft-policy nat-flush forward-flush nft-flush-ruleset
	ufw-before ufw-after ufw-reload docker-before docker-after docker-restart)
bench=0
case ${1:-} in
-l)
	printf '%s\n' "${scenarios[@]}"
	exit 0
	;;
--bench)
	bench=${2:-20}
	scenarios=()
	;;
*) ((${#@} > 0)) && scenarios=("$@") ;;
esac
if [[ $(id -u) -ne 0 ]]; then
	echo "hostfw.sh starts firewalld, dockerd and ufw and changes the firewall; run it as root: sudo $0" >&2
	exit 1
fi
NSRUN_HOST_FIREWALLS=1 scripts/install-deps.sh
scripts/build.sh
nsrun=$PWD/bin/nsrun
source scripts/lib.sh

work=$(mktemp -d /tmp/nsrun-hostfw.XXXXXX)
go build -o "$work/hoststate" ./scripts/hoststate
out=hfout$$ outlink=hfo$$ outhost=10.252.250.1 outpeer=10.252.250.2 port=16600
pids=()     # every process this script started, stopped at the end
dbus_pid="" # the system bus, when this script started it

# What the host holds that a scenario may change: compared at the end.
# Counters and the comments of iptables-save are left out.
host_state() {
	"$work/hoststate"
	echo "== nft tables"
	nft list tables 2>/dev/null | sort
	for prog in iptables-nft-save ip6tables-nft-save; do
		echo "== $prog"
		"$prog" 2>/dev/null | grep -v '^#' | sed 's/\[[0-9]*:[0-9]*\]//' || true
	done
	# Legacy tables stay once loaded: their rules and dropping policies.
	echo "== iptables-legacy-save"
	iptables-legacy-save 2>/dev/null | grep -E '^(-A|:[A-Z]+ (DROP|REJECT))' || true
	echo "== links"
	ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort
	echo "== sysctls"
	sysctl net.ipv4.ip_forward
	sysctl_keys | xargs -r sysctl 2>/dev/null || true
	echo "== /etc/ufw"
	cat /etc/ufw/ufw.conf 2>/dev/null || true
}

# ufw enable sets the sysctls of /etc/ufw/sysctl.conf.
sysctl_keys() {
	[[ -f /etc/ufw/sysctl.conf ]] || return 0
	sed -n 's/^\([a-z][^=]*\)=.*/\1/p' /etc/ufw/sysctl.conf | tr / .
}

save_host() {
	host_state >"$work/host.before"
	save_firewalls
	sysctl_keys | xargs -r sysctl -e >"$work/sysctl.before" 2>/dev/null || true
	cp -a /etc/ufw "$work/ufw.before" 2>/dev/null || true
}

# restore_host puts back what a daemon or a scenario changed: iptables in
# both backends, tables that were not there, Docker's bridge, ufw's files
# and sysctls.
restore_host() {
	[[ -f $work/v4.before ]] || return 0
	restore_firewalls
	if [[ -d $work/ufw.before ]]; then
		rm -rf /etc/ufw && cp -a "$work/ufw.before" /etc/ufw
	fi
	sed 's/ = /=/' "$work/sysctl.before" | xargs -r sysctl -q -w
}

cleanup() {
	"$nsrun" down -q -p hostfw >/dev/null 2>&1 || true
	stop_daemons
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	ip netns del "$out" 2>/dev/null || true
	ip link del "$outlink" 2>/dev/null || true
	restore_host
	rm -rf "$work"
	remove_run_netns_if_new
}
trap cleanup EXIT

# --- the daemons, started and stopped by their PIDs ---
fw_pid="" containerd_pid="" dockerd_pid=""

start_dbus() {
	if [[ -S /run/dbus/system_bus_socket ]] && dbus-send --system --print-reply --dest=org.freedesktop.DBus / org.freedesktop.DBus.GetId >/dev/null 2>&1; then
		return # a system bus runs already: leave it be
	fi
	mkdir -p /run/dbus
	rm -f /run/dbus/system_bus_socket
	dbus-daemon --system --nofork --nopidfile >"$work/dbus.log" 2>&1 &
	dbus_pid=$!
	pids+=("$dbus_pid")
	wait_for "the system bus" 10 test -S /run/dbus/system_bus_socket
}

# start_firewalld [BACKEND]: firewalld with its own configuration, or one
# whose FirewallBackend is BACKEND (a copy of /etc/firewalld).
start_firewalld() {
	start_dbus
	local config=/etc/firewalld
	if [[ -n ${1:-} ]]; then
		config=$work/firewalld-$1
		rm -rf "$config"
		cp -a /etc/firewalld "$config"
		sed -i "s/^FirewallBackend=.*/FirewallBackend=$1/" "$config/firewalld.conf"
	fi
	firewalld --nofork --nopid --log-target console --system-config "$config" >>"$work/firewalld.log" 2>&1 &
	fw_pid=$!
	pids+=("$fw_pid")
	wait_for firewalld 30 sh -c 'firewall-cmd --state 2>/dev/null | grep -qx running'
}

stop_firewalld() { stop_pid "$fw_pid"; fw_pid=""; }

stop_daemons() {
	stop_docker
	stop_containerd
	stop_firewalld
	if [[ -n $dbus_pid ]]; then
		stop_pid "$dbus_pid"
		rm -f /run/dbus/system_bus_socket # it leaves it behind
	fi
	dbus_pid=""
}

# --- the outside machine, and the project ---
ip netns add "$out"
ip link add "$outlink" type veth peer name eth0 netns "$out"
ip addr add "$outhost/30" dev "$outlink"
ip link set "$outlink" up
sysctl -qw "net.ipv4.conf.$outlink.route_localnet=0"
ip -n "$out" addr add "$outpeer/30" dev eth0
ip -n "$out" link set eth0 up
ip -n "$out" link set lo up
mkdir -p "$work/outside" "$work/hfa"
echo outside >"$work/outside/index.html"
echo hfa >"$work/hfa/index.html"
ip netns exec "$out" python3 -m http.server 9000 --bind "$outpeer" --directory "$work/outside" >/dev/null 2>&1 &
pids+=($!)
cat >"$work/hostfw.yaml" <<YAML
name: hostfw
namespaces:
  hfa:
    ports: ["$port:8080"]
    run:
      - command: [python3, -m, http.server, "8080", --directory, "$work/hfa"]
        ready: {tcp: 8080}
YAML

# Each try waits at most $wait seconds to connect: short while healing is
# polled (a dropped SYN would otherwise hide the time it took), long for a
# single check on a busy machine.
wait=2
get() { curl -sf --connect-timeout "$wait" -m 5 "$@" 2>/dev/null; }
from_outside() { ip netns exec "$out" curl -sf --connect-timeout "$wait" -m 5 "http://$outhost:$port/" 2>/dev/null | grep -qx hfa; }
from_host() { get "http://127.0.0.1:$port/" | grep -qx hfa; }
egress() { "$nsrun" exec hfa -- curl -sf --connect-timeout "$wait" -m 5 "http://$outpeer:9000/" 2>/dev/null | grep -qx outside; }
passes() { from_outside && from_host && egress; }

# why_not says which of the three ways fails.
why_not() {
	local bad=()
	from_outside || bad+=("from outside")
	from_host || bad+=("from 127.0.0.1")
	egress || bad+=("the namespace's egress")
	echo "${bad[*]}"
}

ms() { echo $(($(date +%s%N) / 1000000)); }

# healed WHAT: traffic passes within 5 s of the change, with no command run.
healed() {
	local t0 elapsed
	t0=$(ms)
	while ! wait=0.05 passes; do
		if (($(ms) - t0 > 5000)); then
			fail "$1: traffic did not pass again within 5 s ($(why_not) fails)"
			return 1
		fi
		sleep 0.05
	done
	elapsed=$(($(ms) - t0))
	echo "    $1: passes again after ${elapsed} ms"
	echo "$scenario $backend $elapsed" >>"$work/times"
}

# passing WHAT: traffic passes now.
passing() { passes || fail "$1: $(why_not) fails"; }

# status_has JSON-PATH-CHECK: status -o json satisfies a Python expression
# of d (the document) and p (the project).
# A change that does not stop traffic (iptables -F FORWARD under the
# policy ACCEPT) is repaired all the same: it waits up to 5 s for that.
status_has() {
	local doc t0
	t0=$(ms)
	while doc=$("$nsrun" status -p hostfw -o json 2>/dev/null || true); do
		python3 -c 'import json,sys; d=json.loads(sys.argv[1]); p=d["projects"][0]; sys.exit(0 if ('"$1"') else 1)' "$doc" 2>/dev/null && return 0
		(($(ms) - t0 < 5000)) || break
		sleep 0.1
	done
	fail "status -o json does not show $1: $(python3 -c 'import json,sys; p=json.loads(sys.argv[1])["projects"][0]; print({k: p.get(k) for k in ("repairs", "last_repair", "last_cause", "last_error")})' "$doc" 2>&1)"
}

failed=0
fail() {
	echo "    FAIL: $*" >&2
	failed=1
}

up() { "$nsrun" up -q --firewall "$backend" "$work/hostfw.yaml" >/dev/null; }
down() { "$nsrun" down -q -p hostfw >/dev/null; }

# leftovers lists what of nsrun's is still on the host after down, with
# the daemons still running: rules, tables, links, zone membership, state
# and its own processes.
leftovers() {
	local prog
	for prog in iptables-nft-save iptables-legacy-save; do
		"$prog" 2>/dev/null | grep -E 'NSR|nsrun' | sed "s/^/$prog: /" || true
	done
	nft list tables 2>/dev/null | grep nsrun || true
	ip -o link show | awk -F': ' '{print $2}' | grep -E '^ns[rh]-' || true
	[[ ! -e /run/nsrun ]] || echo "/run/nsrun is still there"
	pgrep -f "$nsrun (keep|supervise)" -a || true
	if [[ -n $fw_pid ]]; then
		firewall-cmd --zone=trusted --list-interfaces | tr ' ' '\n' | grep . | sed 's/^/in zone trusted: /' || true
	fi
}

# --- the scenarios: each brings the project up, changes the host, checks ---
run_scenario() {
	case $1 in
	firewalld-before)
		start_firewalld
		up
		passing "up with firewalld running"
		status_has '[f for f in d["host_firewall"]["findings"] if f["firewall"]=="firewalld" and f["passes"]]'
		[[ $(firewall-cmd --get-zone-of-interface=nsr-hfa) == trusted ]] || fail "nsr-hfa is not in zone trusted"
		# The D-Bus client's own test, against this firewalld.
		NSRUN_FIREWALLD=1 go test -count=1 -run TestFirewalldBus ./hostfw/ >"$work/bus-test.log" 2>&1 ||
			fail "TestFirewalldBus: $(cat "$work/bus-test.log")"
		;;
	firewalld-iptables)
		# firewalld with its iptables backend: its FORWARD ends in REJECT in
		# iptables-nft, and its reload flushes it all.
		start_firewalld iptables
		up
		passing "up with firewalld's iptables backend"
		status_has '[f for f in d["host_firewall"]["findings"] if f["firewall"]=="firewalld" and "backend iptables" in f["found"] and f["passes"]]'
		firewall-cmd --reload >/dev/null
		healed "firewall-cmd --reload (iptables backend)"
		status_has 'p["repairs"] >= 1'
		;;
	firewalld-unbound)
		# The control: without nsrun's zone, firewalld rejects the
		# namespace's egress; with --no-heal nothing puts it back, and
		# the next up does.
		start_firewalld
		"$nsrun" up -q --no-heal --firewall "$backend" "$work/hostfw.yaml" >/dev/null
		status_has 'not p["heal"]'
		firewall-cmd --zone=trusted --remove-interface=nsr-hfa >/dev/null
		sleep 1
		! egress || fail "egress passes with nsr-hfa in no zone: the zone is not what lets it through"
		from_outside || fail "published ports must pass firewalld by its ct status dnat accept"
		up
		passing "up after the zone was lost"
		;;
	firewalld-after)
		up
		start_firewalld
		healed "firewalld started after up"
		status_has 'p["repairs"] >= 1'
		;;
	firewalld-reload)
		start_firewalld
		up
		firewall-cmd --reload >/dev/null
		healed "firewall-cmd --reload"
		status_has 'p["repairs"] >= 1'
		;;
	firewalld-stop)
		start_firewalld
		up
		stop_firewalld
		healed "firewalld stopped"
		# Stopping flushes iptables; nftables' nsrun table stays.
		status_has 'p["repairs"] >= 1 or p["backend"] == "nftables"'
		;;
	zone-external | zone-drop)
		start_firewalld
		up
		firewall-cmd --zone="${1#zone-}" --change-interface="$outlink" >/dev/null
		healed "the uplink moved to zone ${1#zone-}"
		status_has 'd["host_firewall"]["firewalld"]["interfaces"]["'"$outlink"'"] == "'"${1#zone-}"'"'
		firewall-cmd --zone="${1#zone-}" --remove-interface="$outlink" >/dev/null
		;;
	legacy-policy | nft-policy)
		local prog=iptables-${1%-policy}
		[[ $prog == iptables-nft-policy ]] && prog=iptables-nft
		up
		"$prog" -P FORWARD DROP
		healed "$prog -P FORWARD DROP"
		status_has 'p["repairs"] >= 1 or "'"$prog"'" == p["backend"]'
		;;
	nat-flush)
		up
		iptables -t nat -F
		healed "iptables -t nat -F"
		status_has 'p["repairs"] >= 1 or p["backend"] == "nftables"'
		;;
	forward-flush)
		up
		iptables -F FORWARD
		healed "iptables -F FORWARD"
		status_has 'p["repairs"] >= 1 or p["backend"] == "nftables"'
		;;
	nft-flush-ruleset)
		# Only on a host whose nftables hold nothing but nsrun's and empty
		# iptables-nft tables: flushing must not lose anyone's rules.
		if nft list ruleset | grep -vE '^\s*(table|chain|type|}|$)' | grep -q .; then
			fail "the host's nftables hold rules of their own: not flushing them"
			return
		fi
		up
		nft flush ruleset
		healed "nft flush ruleset"
		status_has 'p["repairs"] >= 1'
		;;
	ufw-before)
		ufw --force enable >/dev/null
		up
		passing "up with ufw enabled"
		status_has '[f for f in d["host_firewall"]["findings"] if f["firewall"]=="ufw"]'
		;;
	ufw-after)
		up
		ufw --force enable >/dev/null
		healed "ufw enabled after up"
		ufw --force disable >/dev/null
		healed "ufw disabled"
		;;
	ufw-reload)
		ufw --force enable >/dev/null
		up
		ufw reload >/dev/null
		healed "ufw reload"
		;;
	docker-before)
		start_docker
		up
		passing "up with dockerd running"
		status_has '[f for f in d["host_firewall"]["findings"] if f["firewall"]=="docker"]'
		;;
	docker-after)
		up
		start_docker
		healed "dockerd started after up"
		;;
	docker-restart)
		start_docker
		up
		stop_docker
		start_docker
		healed "dockerd restarted"
		;;
	*)
		echo "hostfw.sh: unknown scenario $1; -l lists them" >&2
		exit 2
		;;
	esac
}

# stats: median and worst of the numbers on stdin.
stats() { sort -n | awk '{v[NR]=$1} END {printf "median %d ms, worst %d ms (n=%d)", v[int((NR+1)/2)], v[NR], NR}'; }

# bench_heal CHANGE...: run the change N times with the project up, and
# time from its end to traffic passing again.
bench_heal() {
	local i t0 t1 t2
	: >"$work/change.ms"
	: >"$work/heal.ms"
	for i in $(seq "$bench"); do
		sleep 1 # the keeper's look after its own last repair is over
		t0=$(ms)
		"$@" >/dev/null
		t1=$(ms)
		until wait=0.05 passes; do
			(($(ms) - t1 < 10000)) || { fail "not healed within 10 s after $*"; return 1; }
			sleep 0.01
		done
		t2=$(ms)
		echo $((t1 - t0)) >>"$work/change.ms"
		echo $((t2 - t1)) >>"$work/heal.ms"
	done
	echo "  $backend, $*: passes again $(stats <"$work/heal.ms") after it returned; it took $(stats <"$work/change.ms")"
}

# keeper_cost SECONDS: the keeper's CPU (its own and its children's, the
# iptables-legacy-save of its periodic look) while nothing changes, and
# its resident memory.
keeper_cost() {
	local pid ticks0 ticks1 hz
	pid=$(python3 -c 'import json; print(json.load(open("/run/nsrun/keeper.json"))["pid"])')
	hz=$(getconf CLK_TCK)
	ticks0=$(awk '{print $14+$15+$16+$17}' "/proc/$pid/stat")
	sleep "$1"
	ticks1=$(awk '{print $14+$15+$16+$17}' "/proc/$pid/stat")
	echo "  keeper idle for $1 s: CPU $(python3 -c "print(f'{($ticks1-$ticks0)/$hz/$1*100:.3f}')")% of a core, RSS $(awk '/VmRSS/ {print $2, $3}' "/proc/$pid/status")"
}

if ((bench > 0)); then
	save_host
	echo "== healing, $bench changes each (firewalld running)"
	start_firewalld
	for backend in iptables nftables; do
		up
		passing "up"
		bench_heal firewall-cmd --reload
		bench_heal iptables -t nat -F
		[[ $backend == iptables ]] && keeper_cost 60
		down
	done
	# A project in iptables-legacy (chosen for its dropping FORWARD): a
	# change by an iptables command (it opens /run/xtables.lock, which the
	# keeper watches), and one from a mount namespace with a /run of its
	# own (as in a container on the host's network), which only the
	# periodic look sees.
	backend=iptables
	iptables-legacy -P FORWARD DROP
	up
	passing "up in iptables-legacy"
	[[ $("$nsrun" status -p hostfw -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["projects"][0]["backend"])') == iptables-legacy ]] ||
		fail "the project is not in iptables-legacy"
	backend=iptables-legacy
	bench_heal iptables-legacy -t nat -F
	bench_heal unshare -m sh -c 'mount -t tmpfs tmpfs /run && iptables-legacy -t nat -F'
	down
	iptables-legacy -P FORWARD ACCEPT
	# Many projects, one keeper: 50 more, named to be repaired before the
	# measured one, so that its time is that of all 51.
	backend=iptables
	echo "== 51 projects"
	for i in $(seq -w 1 50); do
		printf 'name: aa-%s\nnamespaces:\n  aa%s: {ports: ["%d:8080"]}\n' "$i" "$i" $((17100 + 10#$i)) >"$work/aa-$i.yaml"
		"$nsrun" up -q "$work/aa-$i.yaml" >/dev/null
	done
	up
	passing "up beside 50 projects"
	bench_heal iptables -t nat -F
	keeper_cost 60
	down
	for i in $(seq -w 1 50); do "$nsrun" down -q -p "aa-$i" >/dev/null; done
	stop_daemons
	restore_host
	((failed == 0))
	exit
fi

save_host
passed=0 total=0
for scenario in "${scenarios[@]}"; do
	for backend in iptables nftables; do
		total=$((total + 1))
		echo "== $scenario ($backend)"
		failed=0
		run_scenario "$scenario" || failed=1
		# Whatever happened, status finds nothing left to repair (within
		# the 5 s a change that stops no traffic may take to be healed).
		t0=$(ms)
		until "$nsrun" status -p hostfw >"$work/status.out" 2>&1; do
			if (($(ms) - t0 > 5000)); then
				fail "status after healing: $(cat "$work/status.out")"
				break
			fi
			sleep 0.1
		done
		down || fail "down failed"
		left=$(leftovers)
		[[ -z $left ]] || fail "down left: $left"
		stop_daemons
		ufw --force disable >/dev/null 2>&1 || true
		restore_host
		host_state >"$work/host.after"
		if ! diff -u "$work/host.before" "$work/host.after" >"$work/host.diff"; then
			fail "the host is not as before:"
			cat "$work/host.diff" >&2
		fi
		((failed == 0)) && passed=$((passed + 1))
	done
done
if [[ -s $work/times ]]; then
	echo "healing times (ms): $(sort -k3 -n "$work/times" | awk '{print $3}' | tr '\n' ' ')"
fi
echo "$passed/$total passed"
((passed == total))
