#!/usr/bin/env bash
# Benchmarks nsrun side by side with the manual method and a userland
# proxy, in one run, as ratios (this machine is shared and noisy):
#
#   sudo scripts/bench.sh [--quick] [--firewalls] [--ipv6] [--tenants] [--limits] [--many] [--peers] [--health] [--metrics] [--bandwidth]
#
# Sections 2, 2b, 3, 3b and 3c run once per firewall backend (iptables,
# then nftables), marked [iptables] and [nftables]; --firewalls runs only
# those and section 6; --ipv6 only section 2b; --tenants only section 3c.
#
# 1. up and down of N namespaces with one published port each (N = 1, 10,
#    100), against the same setup done the manual way: one ip / iptables /
#    sysctl call per step, as the classic lab notes do; at scale, an up of
#    an unchanged spec (N = 100, 200, 500) and status (N = 500) against the
#    first up, and down of 1,000 against the floor (ip -batch, one firewall
#    batch);
# 1c. the cost of resource limits: up of 100 namespaces with one process
#    each and memory, cpus and pids limits on each, against the same spec
#    without limits, in interleaved rounds (--limits: only this);
# 1d. many namespaces on one host (--many: only this): ten projects of
#    1,000 namespaces with a published port each, brought up one after the
#    other, each once the keeper's look after the one before is over: up of
#    the 5th against the 1st's (the 1st and the kernel floor on an empty
#    host in five interleaved rounds, three with --quick, medians) and
#    against the floor of the same work with as many up (scripts/floor
#    -etc: the namespaces, pairs, addresses, routes and /etc/netns files,
#    then the project's rules in one restore batch and its counters in one
#    nft batch, as nsrun plan writes them, without the shared chains the
#    others made), and, as information, against the kernel floor alone
#    (the namespaces and pairs); the 5th and the floors in as many
#    interleaved rounds, each on a quiet host as the 1st's; the medians
#    are of the rounds measured at the machine's speed (a fixed loop timed
#    just before, within 15% of the fastest of the run: this VM slows by
#    up to 1.7x for minutes at a time);
#    an unchanged up and status of the 1st with 9,000 others up against the
#    same alone, in three rounds of the others up and down again, each
#    measured on a quiet host (the rounds' ratios, median); down of the 5th
#    with 4,000 others up against the floor for that teardown, the wait
#    for the pairs to go included in both (interleaved rounds); the keeper's
#    RSS with all 10,000 up;
# 1f. health checks (--health: only this): the supervisor's CPU time
#    over a minute with 100 web servers, each checked over HTTP every
#    second, against the same without checks; its open files and
#    threads after the first and after the last checks;
# 1g. the scrape cost (--metrics: only this): nsrun metrics of a project
#    of 1,000 namespaces with a published port each, in each firewall
#    backend; and what counting each packet costs: HTTP requests/s from
#    another machine to the last of those ports, counted against not;
# 1h. bandwidth limits (--bandwidth: only this): keep-alive and close HTTP
#    requests/s from another machine through a published port of a
#    namespace with bandwidth {ingress: 10gbit, egress: 10gbit} (more than
#    the path carries: what the two token buckets cost) against none, the
#    limits put on and taken off by up in place, in alternating rounds;
# 1e. nsrun against Podman and Docker (--peers: only this, in
#    scripts/bench-peers.sh): bring-up, teardown, memory and the data path
#    of 100 published web servers;
# 2. the data path: HTTP requests/s with wrk (keep-alive and
#    Connection: close) through the published port and straight to the
#    namespace's address, from another machine (a namespace routed through
#    the host) and from the host itself (at 127.0.0.1, the loopback
#    shortcut; at a host address, DNAT), and through socat; iperf3
#    throughput through the published port and through socat;
# 2b. the same over IPv6 (ipv6: true): from another machine, published at
#    the host's IPv6 address against the namespace's IPv6 address, and
#    from the host, [::1] (the loopback shortcut) against the namespace's
#    IPv6 address;
# 3. new connections/s to the last of 100 and of 1,000 published ports
#    against the first, from another machine (DNAT) and at 127.0.0.1 (the
#    shortcut);
#    and requests/s from another machine to the 100th of 100 namespaces
#    against the 1st;
# 3c. keep-alive requests/s from another machine to the published port of
#    the 100th of 100 projects (isolated from each other, as every project
#    is) against the 1st's;
# 4. 'nsrun exec NS true' against 'ip netns exec NS true', with nsrun as
#    released and built without cgo;
# 5. the supervisor's memory with 10 processes;
# 6. the time each backend takes to apply, read and remove 100 and 1,000
#    published ports.
#
# It installs wrk, iperf3, socat and hyperfine from Debian when missing,
# prints a table of medians and ratios, and leaves nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=false firewalls_only=false ipv6_only=false tenants_only=false limits_only=false many_only=false health_only=false metrics_only=false bandwidth_only=false
if [[ " $* " == *" --peers "* ]]; then
	[[ " $* " == *" --quick "* ]] && exec scripts/bench-peers.sh --quick
	exec scripts/bench-peers.sh
fi
for arg in "$@"; do
	case "$arg" in
	--quick) quick=true ;;
	--firewalls) firewalls_only=true ;;
	--ipv6) ipv6_only=true firewalls_only=true ;;
	--tenants) tenants_only=true firewalls_only=true ;;
	--limits) limits_only=true ;;
	--many) many_only=true ;;
	--health) health_only=true ;;
	--metrics) metrics_only=true ;;
	--bandwidth) bandwidth_only=true ;;
	*)
		echo "usage: sudo $0 [--quick] [--firewalls] [--ipv6] [--tenants] [--limits] [--many] [--peers] [--health] [--metrics] [--bandwidth]" >&2
		exit 2
		;;
	esac
done
if [[ $(id -u) -ne 0 ]]; then
	echo "bench.sh creates namespaces and firewall rules; run it as root: sudo $0" >&2
	exit 1
fi
scripts/install-deps.sh
need=()
for tool in wrk iperf3 socat hyperfine curl; do command -v "$tool" >/dev/null || need+=("$tool"); done
if ((${#need[@]} > 0)); then
	echo "bench.sh: installing ${need[*]}" >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

work=$(mktemp -d)
scripts/build.sh
go build -o "$work/benchserver" ./scripts/benchserver
nsrun=$PWD/bin/nsrun
runs=5 secs=4 rounds=5
$quick && runs=3 secs=2 rounds=3

pids=()
source scripts/lib.sh
# Closed connections leave TIME_WAIT on the client side; reuse them on
# every path alike (the default reuses them on loopback only).
tw_reuse=$(sysctl -n net.ipv4.tcp_tw_reuse)
sysctl -qw net.ipv4.tcp_tw_reuse=1
cleanup() {
	sysctl -qw net.ipv4.tcp_tw_reuse="$tw_reuse"
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in bench1 bench10 bench100 bench500 bench1000 benchdata benchdata6 benchscale benchns benchmem benchhealth benchmetrics benchbw many{1..10} fl; do
		"$nsrun" down -q -p "$p" >/dev/null 2>&1 || true
	done
	for ((i = 0; i < 100; i++)); do
		[[ -d /run/nsrun/benchp$i ]] && "$nsrun" down -q -p "benchp$i" >/dev/null 2>&1 || true
	done
	[[ -f $work/manual-down.sh ]] && bash "$work/manual-down.sh" >/dev/null 2>&1 || true
	[[ -x $work/floor ]] && "$work/floor" down fl 1000 >/dev/null 2>&1 || true
	remove_iptables_tables_if_new
	declare -F close_direct >/dev/null && close_direct
	ip link del benchout-h 2>/dev/null || true
	ip netns del benchout 2>/dev/null || true
	rm -rf "$work"
	remove_run_netns_if_new
}
trap cleanup EXIT

median() { python3 -c 'import sys,statistics; print(statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }
ms1() { awk -v x="$1" 'BEGIN{printf "%.1f", x*1000}'; }
each_ms() { for x in "$@"; do printf ' %s' "$(ms1 "$x")"; done; } # each_ms SECONDS... -> " MS MS ..."
ratio() { python3 -c 'import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(f"{a/b:.2f}x" if b else "n/a")' "$1" "$2"; }
# pratio "A1 A2 ..." "B1 B2 ..." -> the median of the rounds' ratios Ai/Bi:
# each pair is measured close together, so the machine's drift from one
# round to the next cancels out.
pratio() { python3 -c 'import sys,statistics; r=[float(a)/float(b) for a,b in zip(sys.argv[1].split(),sys.argv[2].split()) if float(b)]; print(f"{statistics.median(r):.2f}x" if r else "n/a")' "$1" "$2"; }
hyper() { # hyper PREPARE COMMAND -> median seconds
	hyperfine -N --runs "$runs" --prepare "$1" --export-json "$work/h.json" "$2" >/dev/null 2>&1 || hyperfine --runs "$runs" --prepare "$1" --export-json "$work/h.json" "$2" >/dev/null
	python3 -c 'import json; print(json.load(open("'"$work"'/h.json"))["results"][0]["median"])'
}
rows=()
row() { rows+=("$(printf '%-66s %14s %14s %9s %s' "$@")"); }
rps() { # rps URL [HEADER] -> requests/s, from the host, or from namespace $client_ns when set
	# wrk has been seen to hang, with no socket open, once in a while: it
	# gets a bounded time, and a run that does not finish counts as 0.
	local out
	out=$(${client_ns:+ip netns exec "$client_ns"} timeout -k 2 $((secs + 20)) wrk -t2 -c32 -d"${secs}s" ${2:+-H "$2"} "$1" | awk '/Requests\/sec/ {print $2}') || true
	if [[ -z $out ]]; then
		echo "bench: wrk did not finish on $1; counted as 0" >&2
		out=0
	fi
	echo "$out"
}

# --- 1. up and down at scale ------------------------------------------------
spec_n() { # spec_n N: N namespaces, one published port each, no processes
	echo "name: bench$1"
	echo "subnet: 10.240.0.0/16"
	echo "namespaces:"
	for ((i = 0; i < $1; i++)); do echo "  b$1x$i: {ports: [\"$((30000 + i)):8080\"]}"; done
}
manual_n() { # manual_n N: the same by hand, one command per step
	local n=$1
	echo "sysctl -qw net.ipv4.ip_forward=1"
	# The files nsrun writes for 'ip netns exec': hosts naming every
	# namespace, and resolv.conf without loopback nameservers (shell
	# builtins write them; only mkdir is a process).
	printf "hosts='127.0.0.1\tlocalhost\n"
	for ((i = 0; i < n; i++)); do
		local a=10.241.$((i / 64)).$(((i % 64) * 4))
		printf '%s\tm%sx%s\n' "${a%.*}.$((${a##*.} + 2))" "$1" "$i"
	done
	echo "'"
	echo "resolv='$(grep -v '^nameserver 127\.' /etc/resolv.conf)'"
	for ((i = 0; i < n; i++)); do
		local ns=m$1x$i h=mh$1x$i a=10.241.$((i / 64)).$(((i % 64) * 4))
		local host=${a%.*}.$((${a##*.} + 1)) peer=${a%.*}.$((${a##*.} + 2))
		echo "ip netns add $ns"
		echo "mkdir -p /etc/netns/$ns"
		echo "printf '%b' \"\$hosts\" >/etc/netns/$ns/hosts"
		echo "printf '%s\\n' \"\$resolv\" >/etc/netns/$ns/resolv.conf"
		echo "ip -n $ns link set lo up"
		echo "ip link add $h type veth peer name eth0 netns $ns"
		echo "ip addr add $host/30 dev $h"
		echo "ip link set $h up"
		echo "sysctl -qw net.ipv4.conf.$h.route_localnet=1"
		echo "ip -n $ns addr add $peer/30 dev eth0"
		echo "ip -n $ns link set eth0 up"
		echo "ip -n $ns route add default via $host"
		echo "iptables -t nat -A PREROUTING -p tcp --dport $((31000 + i)) -m addrtype --dst-type LOCAL -j DNAT --to-destination $peer:8080"
		echo "iptables -t nat -A OUTPUT -p tcp --dport $((31000 + i)) -m addrtype --dst-type LOCAL -j DNAT --to-destination $peer:8080"
		echo "iptables -t nat -A POSTROUTING -s $a/30 ! -o $h -j MASQUERADE"
		echo "iptables -A FORWARD -o $h -m conntrack --ctstate RELATED,ESTABLISHED,DNAT -j ACCEPT"
		echo "iptables -A FORWARD -i $h -j ACCEPT"
	done
}
manual_down_n() {
	local n=$1
	for ((i = 0; i < n; i++)); do
		local h=mh$1x$i a=10.241.$((i / 64)).$(((i % 64) * 4))
		local peer=${a%.*}.$((${a##*.} + 2))
		echo "iptables -t nat -D PREROUTING -p tcp --dport $((31000 + i)) -m addrtype --dst-type LOCAL -j DNAT --to-destination $peer:8080"
		echo "iptables -t nat -D OUTPUT -p tcp --dport $((31000 + i)) -m addrtype --dst-type LOCAL -j DNAT --to-destination $peer:8080"
		echo "iptables -t nat -D POSTROUTING -s $a/30 ! -o $h -j MASQUERADE"
		echo "iptables -D FORWARD -o $h -m conntrack --ctstate RELATED,ESTABLISHED,DNAT -j ACCEPT"
		echo "iptables -D FORWARD -i $h -j ACCEPT"
		echo "ip link del $h"
		echo "ip netns del m$1x$i"
		echo "rm -rf /etc/netns/m$1x$i"
	done
	echo "rmdir /etc/netns 2>/dev/null || true"
	echo "sysctl -qw net.ipv4.ip_forward=$(sysctl -n net.ipv4.ip_forward)"
}

# --- 1c. the cost of resource limits -----------------------------------------
limits_spec() { # limits_spec LIMITS: 100 namespaces, a port and a process each
	echo "name: benchlim"
	echo "subnet: 10.247.0.0/16"
	echo "namespaces:"
	for ((i = 0; i < 100; i++)); do
		echo "  bl$i:"
		echo "    ports: [\"$((31000 + i)):8080\"]"
		[[ -n $1 ]] && echo "    resources: $1"
		echo "    run: [{name: idle, command: [sleep, \"3600\"]}]"
	done
}
limits_cost() {
	limits_spec "" >"$work/plain.yaml"
	limits_spec "{memory: 64M, cpus: 0.5, pids: 32}" >"$work/limited.yaml"
	local plain="" limited="" r
	for ((r = 1; r <= rounds; r++)); do
		plain+=" $(hyper "bash -c '$nsrun down -q -p benchlim; sleep 2'" "$nsrun up -q $work/plain.yaml")"
		limited+=" $(hyper "bash -c '$nsrun down -q -p benchlim; sleep 2'" "$nsrun up -q $work/limited.yaml")"
	done
	"$nsrun" down -q -p benchlim >/dev/null
	echo "bench: up of 100 namespaces with a process each, by round: without limits$plain; with$limited" >&2
	row "up, 100 namespaces with a process: with limits vs without (ms)" "$(median $limited | awk '{printf "%.1f", $1*1000}')" "$(median $plain | awk '{printf "%.1f", $1*1000}')" "$(pratio "$limited" "$plain")" "(goal: <= 1.10x)"
}
# --- 1d. many namespaces on one host ----------------------------------------
many_spec() { # many_spec K: the K-th project of 1,000, ports 20000-29999
	echo "name: many$1"
	echo "subnet: 10.$((210 + $1)).0.0/16"
	echo "namespaces:"
	for ((i = 0; i < 1000; i++)); do echo "  m$1x$i: {ports: [\"$((20000 + ($1 - 1) * 1000 + i)):8080\"]}"; done
}
timed() { # timed COMMAND... -> seconds it took (its output dropped)
	local start end
	start=$(date +%s.%N)
	"$@" >/dev/null
	end=$(date +%s.%N)
	awk -v a="$start" -v b="$end" 'BEGIN{printf "%.3f", b - a}'
}
gone_line() { # gone_line PATTERN -> a shell line that waits, polling as nsrun's down does, until no host link matches (at most 60 s): a floor's wait for its pairs
	echo "end=\$((SECONDS + 60)); while ((SECONDS < end)) && ip -o link | grep -Eq '$1'; do sleep 0.005; done"
}
links_gone() { # links_gone PATTERN: wait until no host link matches
	local i
	for ((i = 0; i < 600; i++)); do
		ip -o link | grep -Eq "$1" || return 0
		sleep 0.1
	done
	echo "bench: links matching $1 are still there after 60 s" >&2
	return 1
}
floor_up() { # floor_up -> seconds the floor takes to bring up 1,000 namespaces
	local t
	t=$(timed "$work/floor" up fl 1000 10.209.0.0/16)
	"$work/floor" down fl 1000
	links_gone ': fl[0-9]+[@:]'
	echo "$t"
}
floor_spec() { # floor_spec: the floor's 1,000 as a project, for its rules and counters (ports 31000-31999)
	echo "name: fl"
	echo "subnet: 10.209.0.0/16"
	echo "namespaces:"
	for ((i = 0; i < 1000; i++)); do echo "  fl$i: {ports: [\"$((31000 + i)):8080\"]}"; done
}
floor_work() { # floor_work BACKEND: write the floor's script of the same work as an up beside others
	# nsrun plan's rules of project fl, without the shared chains a clean
	# host would need (the others' up made them): its own chains, and the
	# jumps to them; its counters and their elements in the counting table.
	case $1 in
	iptables*) ;;
	*)
		echo "bench: the floor of the same work writes iptables rules; the projects are in $1" >&2
		return 1
		;;
	esac
	"$nsrun" plan "$work/fl.yaml" >"$work/fl-plan.sh"
	{
		echo "set -e"
		echo "\"$work/floor\" up -etc fl 1000 10.209.0.0/16"
		echo "$1-restore -w 30 --noflush <<'EOF'"
		sed -n "/^iptables-restore -w 30 --noflush <<'EOF'/,/^EOF/p" "$work/fl-plan.sh" | sed '1d;$d' | grep -E '^\*|^COMMIT|NSR-fl-|NSR-N-'
		echo "EOF"
		echo "nft -f - <<'EOF'"
		sed -n "/^nft -f - <<'EOF'/,/^EOF/p" "$work/fl-plan.sh" | grep -E '^add counter .* port/fl/|^add element '
		echo "EOF"
	} >"$work/floor-same.sh"
}
floor_same() { # floor_same -> seconds the floor of the same work takes: namespaces, pairs, files, rules, counters
	local t
	t=$(timed bash "$work/floor-same.sh")
	"$work/floor" down fl 1000
	"$nsrun" down -q -p fl >/dev/null # its chains and counters: nsrun finds them by name
	links_gone ': fl[0-9]+[@:]'
	echo "$t"
}
keeper_settled() { # wait until the keeper's look after the last up is over: its CPU time stands still for 2 s (at most 60 s)
	local pid t0 t1 i
	pid=$(python3 -c 'import json; print(json.load(open("/run/nsrun/keeper.json"))["pid"])' 2>/dev/null) || return 0
	t0=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null) || return 0
	for ((i = 0; i < 30; i++)); do
		sleep 2
		t1=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null) || return 0
		[[ $t1 == "$t0" ]] && return 0
		t0=$t1
	done
	echo "bench: the keeper is still busy after 60 s" >&2
}
cpu_busy() { # cpu_busy -> the share of the host's CPU time busy over the next 2 s (%)
	local a b
	a=$(head -1 /proc/stat)
	sleep 2
	b=$(head -1 /proc/stat)
	awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " "); for (i = 2; i <= 9; i++) t += y[i] - x[i]; idle = y[5] - x[5] + y[6] - x[6]; print (t ? int(100 * (t - idle) / t) : 0) }'
}
loop_best="" loop_last="" # the fastest fixed loop this run has timed, and the last (CPU s)
loop_cpu() { # loop_cpu -> the CPU seconds a fixed loop takes: the machine's speed at that moment
	local TIMEFORMAT=%U
	{ time perl -e 'for (1 .. 4e7) {}'; } 2>&1
}
host_quiet() { # wait until the keeper's look is over, the host quiet (at most 10% busy over 2 s) and at its speed (at most 60 tries)
	# After thousands of namespaces are deleted the kernel frees them for
	# seconds, and anything measured meanwhile waits for it. This machine
	# (a VM) also slows down by up to 1.7x for a minute or two at a time,
	# idle or not: the fixed loop then takes that much longer. A measure
	# waits for the loop to be within 15% of the fastest this run has seen.
	keeper_settled
	local i
	for ((i = 0; i < 60; i++)); do
		(($(cpu_busy) <= 10)) || continue
		loop_last=$(loop_cpu)
		if [[ -z $loop_best ]] || awk -v t="$loop_last" -v b="$loop_best" 'BEGIN { exit !(t < b) }'; then loop_best=$loop_last; fi
		awk -v t="$loop_last" -v b="$loop_best" 'BEGIN { exit !(t <= 1.15 * b) }' && return 0
	done
	echo "bench: the host is still busy or slow after 60 tries; measuring anyway" >&2
}
fast() { # fast "VALUES" "LOOPS" -> the values measured at the machine's speed: their loop within 15% of the run's fastest (all if none)
	python3 -c 'import sys
v, l, b = sys.argv[1].split(), sys.argv[2].split(), float(sys.argv[3] or "inf")
kept = [x for x, t in zip(v, l) if float(t or "inf") <= 1.15 * b]
print(" ".join(kept or v))' "$1" "$2" "$loop_best"
}
many_ups() { # many_ups FROM TO: up of those projects, untimed
	local k
	for ((k = $1; k <= $2; k++)); do "$nsrun" up -q "$work/many$k.yaml" >/dev/null; done
}
many_down() { # many_down K: down of the K-th project, then wait until its pairs are gone
	"$nsrun" down -q -p "many$1" >/dev/null
	links_gone ": nsr-m$1x[0-9]+[@:]"
}
many_downs() { # many_downs FROM TO -> the seconds each down took, from FROM down to TO
	local k out=""
	for ((k = $1; k >= $2; k--)); do out+=" $(timed "$nsrun" down -q -p "many$k")"; done
	echo "$out"
}
many() {
	go build -o "$work/floor" ./scripts/floor
	local k up=() f1 f5
	for ((k = 1; k <= 10; k++)); do many_spec "$k" >"$work/many$k.yaml"; done
	floor_spec >"$work/fl.yaml"
	# The 1st up and the floor on an empty host, in interleaved rounds
	# (medians), as the 5th's below: one of each moves by 20% from one
	# minute to the next, and a fixed loop timed before each up shows
	# the machine's own speed moving as much. Each 1st up starts the
	# keeper, as the last down stopped it.
	local r ups1=() floors1=() loops1=() lfloors1=()
	for ((r = 1; r <= rounds; r++)); do
		host_quiet # the kernel frees the last round's namespaces
		lfloors1+=("$loop_last")
		floors1+=("$(floor_up)")
		host_quiet
		loops1+=("$loop_last")
		ups1+=("$(timed "$nsrun" up -q "$work/many1.yaml")")
		if ((r < rounds)); then many_down 1; fi
	done
	echo "bench: up of the 1st project on an empty host, by round (s): ${ups1[*]}; the kernel floor: ${floors1[*]}; the fixed loop timed before each (CPU s): ${loops1[*]} / ${lfloors1[*]}" >&2
	local fw
	fw=$("$nsrun" status -p many1 -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["projects"][0]["backend"])')
	floor_work "$fw"
	# Each up, and the floor, is timed once the keeper's look after the
	# last up is over, as a user who brings up a project at a time sees it.
	for k in 2 3 4; do
		keeper_settled
		up[k]=$(timed "$nsrun" up -q "$work/many$k.yaml")
	done
	# The 5th up and the floor beside the same 4,000, in interleaved
	# rounds (medians): one of each moved by 20% from run to run. Each
	# on a quiet host, as the 1st's: each follows the teardown of 1,000
	# namespaces.
	local ups5=() floors5=() sames5=() loops5=() lfloors5=() lsames5=()
	for ((r = 1; r <= rounds; r++)); do
		host_quiet
		lfloors5+=("$loop_last")
		floors5+=("$(floor_up)")
		host_quiet
		lsames5+=("$loop_last")
		sames5+=("$(floor_same)")
		host_quiet
		loops5+=("$loop_last")
		ups5+=("$(timed "$nsrun" up -q "$work/many5.yaml")")
		if ((r < rounds)); then many_down 5; fi
	done
	echo "bench: up of the 5th project, by round (s): ${ups5[*]}; beside the same 4,000, the floor of the same work: ${sames5[*]}; the kernel floor alone: ${floors5[*]}; the fixed loop timed before each (CPU s): ${loops5[*]} / ${lsames5[*]} / ${lfloors5[*]}" >&2
	# The medians of the rounds measured at the machine's speed, judged
	# by the fastest loop of the whole run: a run that starts while the
	# machine is slow takes its first rounds' loops for its speed.
	local kept1 kept5 keptf1 keptf5 kepts5 same5
	kept1=$(fast "${ups1[*]}" "${loops1[*]}") keptf1=$(fast "${floors1[*]}" "${lfloors1[*]}")
	kept5=$(fast "${ups5[*]}" "${loops5[*]}") kepts5=$(fast "${sames5[*]}" "${lsames5[*]}") keptf5=$(fast "${floors5[*]}" "${lfloors5[*]}")
	echo "bench: the rounds at the machine's speed (the fastest loop $loop_best s): the 1st $kept1 / the kernel floor $keptf1; the 5th $kept5 / the floor of the same work $kepts5 / the kernel floor alone $keptf5" >&2
	up[1]=$(median $kept1) f1=$(median $keptf1)
	up[5]=$(median $kept5) f5=$(median $keptf5) same5=$(median $kepts5)
	# down of the 5th against the floor for the same teardown: the
	# namespaces in one ip -batch, the firewall in one batch, the
	# /etc/netns files, and the wait for the kernel to remove the pairs,
	# as nsrun's down waits for them (a name is free again only then).
	# In interleaved rounds (medians), each after an up that brings the
	# project back, on a quiet host.
	for ((i = 0; i < 1000; i++)); do echo "netns del m5x$i"; done >"$work/delmany5.batch"
	{
		echo "ip -batch $work/delmany5.batch; $fw-save | grep -v NSR | $fw-restore; rm -rf /etc/netns/m5x*"
		gone_line ': nsr-m5x[0-9]+[@:]'
	} >"$work/floor-many5.sh"
	local downs5=() floors5d=()
	for ((r = 1; r <= rounds; r++)); do
		sync
		host_quiet
		downs5+=("$(timed "$nsrun" down -q -p many5)")
		links_gone ': nsr-m5x[0-9]+[@:]'
		"$nsrun" up -q "$work/many5.yaml" >/dev/null
		sync
		host_quiet
		floors5d+=("$(timed bash "$work/floor-many5.sh")")
		links_gone ': nsr-m5x[0-9]+[@:]' # says so if the floor's wait gave up
		keeper_settled # the keeper repairs the rules the floor removed: a foreign change
		"$nsrun" up -q "$work/many5.yaml" >/dev/null # repairs the rest
	done
	echo "bench: down of the 5th beside 4,000, by round (s): ${downs5[*]}; the floor: ${floors5d[*]}" >&2
	local down5 floor5
	down5=$(median "${downs5[@]}") floor5=$(median "${floors5d[@]}")
	for ((k = 6; k <= 10; k++)); do
		keeper_settled
		up[k]=$(timed "$nsrun" up -q "$work/many$k.yaml")
	done
	echo "bench: up of projects 1-10 of 1,000 (s): ${up[*]}; floor up of 1,000 with none and 4,000 up: $f1 $f5" >&2
	"$nsrun" up -q "$work/many1.yaml" >/dev/null
	sleep 10 # the keeper's looks after the last up are over
	local keeper rss
	keeper=$(python3 -c 'import json; print(json.load(open("/run/nsrun/keeper.json"))["pid"])')
	rss=$(awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$keeper/status")
	# An unchanged up and status of the 1st, with the 9,000 others up and
	# then with them down, in three rounds: this machine's speed drifts by
	# 10-20% over minutes, so each round's pair is measured minutes apart
	# at most, each on a quiet host, and the rounds' ratios give the
	# median. More runs than elsewhere: each takes a fifth of a second.
	local runs=$((runs * 3)) all_up=() all_status=() alone_up=() alone_status=() downs
	for r in 1 2 3; do
		if ((r > 1)); then
			many_ups 2 10
		fi
		host_quiet
		all_up+=("$(hyper true "$nsrun up -q $work/many1.yaml")")
		all_status+=("$(hyper true "$nsrun status -p many1")")
		downs=$(many_downs 10 2)
		((r == 1)) && echo "bench: down of projects 10-2 (s):$downs" >&2
		host_quiet
		alone_up+=("$(hyper true "$nsrun up -q $work/many1.yaml")")
		alone_status+=("$(hyper true "$nsrun status -p many1")")
	done
	"$nsrun" down -q -p many1 >/dev/null
	echo "bench: unchanged up of the 1st beside 9,000 / alone, by round (ms):$(each_ms "${all_up[@]}") /$(each_ms "${alone_up[@]}"); status -p:$(each_ms "${all_status[@]}") /$(each_ms "${alone_status[@]}")" >&2
	row "up, 5th project of 1,000 (vs the 1st, ms)" "$(ms1 "${up[5]}")" "$(ms1 "${up[1]}")" "$(ratio "${up[5]}" "${up[1]}")" "(goal: <= 1.2x)"
	row "up, 5th project of 1,000 (vs the floor of the same work with 4,000 up, ms)" "$(ms1 "${up[5]}")" "$(ms1 "$same5")" "$(ratio "${up[5]}" "$same5")" "(goal: <= 1.3x)"
	row "up, 5th project of 1,000 (vs the kernel floor alone with 4,000 up, ms)" "$(ms1 "${up[5]}")" "$(ms1 "$f5")" "$(ratio "${up[5]}" "$f5")" "(information)"
	row "up, 1st project of 1,000 (vs the floor with none up, ms)" "$(ms1 "${up[1]}")" "$(ms1 "$f1")" "$(ratio "${up[1]}" "$f1")" "(information)"
	row "up, 10th project of 1,000 (vs the 1st, ms)" "$(ms1 "${up[10]}")" "$(ms1 "${up[1]}")" "$(ratio "${up[10]}" "${up[1]}")" "(information)"
	row "unchanged up of 1,000 with 9,000 others up (vs none, ms)" "$(ms1 "$(median "${all_up[@]}")")" "$(ms1 "$(median "${alone_up[@]}")")" "$(pratio "${all_up[*]}" "${alone_up[*]}")" "(goal: <= 1.2x; the rounds' ratios, median)"
	row "status -p of 1,000 with 9,000 others up (vs none, ms)" "$(ms1 "$(median "${all_status[@]}")")" "$(ms1 "$(median "${alone_status[@]}")")" "$(pratio "${all_status[*]}" "${alone_status[*]}")" "(goal: <= 1.2x; the rounds' ratios, median)"
	row "down of 1,000 with 4,000 others up (vs the floor, ms)" "$(ms1 "$down5")" "$(ms1 "$floor5")" "$(ratio "$down5" "$floor5")" "(goal: <= 2x)"
	row "keeper RSS with 10,000 namespaces up (MiB)" "$rss" "" "" "(goal: < 40)"
}
# --- 1f. health checks ------------------------------------------------------
health_spec() { # health_spec CHECKED: 100 web servers, checked every second or not
	echo "name: benchhealth"
	echo "subnet: 10.239.0.0/16"
	echo "namespaces:"
	local check=""
	$1 && check=", health: {http: /, interval: 1s}"
	for ((i = 0; i < 100; i++)); do
		echo "  bh$i: {run: [{name: web, command: [\"$work/benchserver\", \"-addr\", \":8080\"], ready: {tcp: 8080}$check}]}"
	done
}
supervisor_of() { python3 -c 'import json; print(json.load(open("/run/nsrun/benchhealth/status.json"))["pid"])'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
health_cost() {
	local secs=60 checked pid t0 t1 fds0 fds1 thr0 thr1
	$quick && secs=20
	declare -A pct
	for checked in false true; do
		health_spec "$checked" >"$work/health.yaml"
		"$nsrun" up -q "$work/health.yaml" >/dev/null
		sleep 5 # the first checks are over
		pid=$(supervisor_of)
		t0=$(cpu_ticks "$pid") fds0=$(ls "/proc/$pid/fd" | wc -l) thr0=$(ls "/proc/$pid/task" | wc -l)
		sleep "$secs"
		t1=$(cpu_ticks "$pid") fds1=$(ls "/proc/$pid/fd" | wc -l) thr1=$(ls "/proc/$pid/task" | wc -l)
		pct[$checked]=$(awk -v a="$t0" -v b="$t1" -v hz="$(getconf CLK_TCK)" -v s="$secs" 'BEGIN{printf "%.2f", (b-a)/hz/s*100}')
		echo "bench: supervisor with checks=$checked: ${pct[$checked]}% of a core over ${secs}s; fds $fds0 -> $fds1, threads $thr0 -> $thr1" >&2
		"$nsrun" down -q -p benchhealth >/dev/null
	done
	row "supervisor CPU, 100 processes checked every second (% of a core)" "${pct[true]}" "${pct[false]}" "" "(goal: < 1%; other: no checks)"
	row "supervisor open files after ${secs}s of checks (first, last)" "$fds0" "$fds1" "" "(the same: nothing leaks)"
}
# --- 1g. the scrape cost ------------------------------------------------------
# Another machine: a namespace of the bench's own behind a veth, routed
# through the host like a LAN client (made by hand, not by nsrun).
make_benchout() {
	[[ -e /run/netns/benchout ]] && return
	ip netns add benchout
	ip link add benchout-h type veth peer name eth0 netns benchout
	ip addr add 10.239.0.1/30 dev benchout-h
	ip link set benchout-h up
	ip -n benchout addr add 10.239.0.2/30 dev eth0
	ip -n benchout link set eth0 up
	ip -n benchout link set lo up
	ip -n benchout route add default via 10.239.0.1
	ip netns exec benchout sysctl -qw net.ipv4.tcp_tw_reuse=1
}
# alternate SWITCH URL HEADER: requests/s from another machine (benchout)
# to URL, in rounds with SWITCH on and off (SWITCH on|off is run before
# each; which goes first alternates): the figures by round, in $on and
# $off.
alternate() {
	local i state
	on="" off=""
	for ((i = 0; i < rounds; i++)); do
		for state in on off; do
			((i % 2 == 1)) && state=$([[ $state == on ]] && echo off || echo on)
			$1 "$state"
			if [[ $state == on ]]; then on+=" $(client_ns=benchout rps "$2" "$3")"; else off+=" $(client_ns=benchout rps "$2" "$3")"; fi
		done
	done
}
# counting FIREWALL on|off: the jump to the counters of published ports'
# traffic (in table inet nsrun-count) put back (by up, which repairs it)
# or taken out by hand; each checked, so a figure is never of the wrong
# state.
counting() {
	local handle have=off
	case $2 in
	on) "$nsrun" up -q --no-heal --firewall "$1" "$work/metrics.yaml" >/dev/null ;;
	off)
		handle=$(nft -a list chain inet nsrun-count forward | awk '/jump count/ {print $NF}') # awk reads it all
		[[ -z $handle ]] || nft delete rule inet nsrun-count forward handle "$handle" ;;
	esac
	[[ $(nft list chain inet nsrun-count forward) == *"jump count"* ]] && have=on
	if [[ $have != "$2" ]]; then
		echo "bench: could not turn the counting $2 in $1" >&2
		exit 1
	fi
}
metrics_cost() {
	local fw ms mode header on off lp
	{
		echo "name: benchmetrics"
		echo "subnet: 10.238.0.0/16"
		echo "namespaces:"
		for ((i = 0; i < 999; i++)); do echo "  bm$i: {ports: [\"$((30000 + i)):8080\"]}"; done
		echo "  bm999: {ports: [\"30999:8080\"], run: [{name: web, command: [\"$work/benchserver\", \"-addr\", \":8080\"], ready: {tcp: 8080}}]}"
	} >"$work/metrics.yaml"
	make_benchout
	for fw in iptables nftables; do
		"$nsrun" up -q --no-heal --firewall "$fw" "$work/metrics.yaml" >/dev/null
		hyperfine -N -w 3 -r $((runs * 4)) --export-json "$work/metrics.json" "$nsrun metrics -p benchmetrics" >/dev/null 2>&1
		ms=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][0]["median"])' "$work/metrics.json")
		"$nsrun" metrics -p benchmetrics | grep -c '^nsrun_published_connections_total' | grep -qx 1000 ||
			{ echo "bench: nsrun metrics did not report the 1,000 ports" >&2; exit 1; }
		row "nsrun metrics, 1,000 published ports [$fw] (ms)" "$(ms1 "$ms")" "" "" "(the whole command)"
		# A scrape of nsrun metrics --listen, as Prometheus makes it: what
		# each scrape reads and encodes, without the program's start.
		"$nsrun" metrics --listen 127.0.0.1:9479 -p benchmetrics 2>/dev/null &
		lp=$!
		pids+=("$lp")
		for ((i = 0; i < 100; i++)); do curl -s -o /dev/null http://127.0.0.1:9479/metrics && break; sleep 0.1; done
		hyperfine -N -w 3 -r $((runs * 4)) --export-json "$work/scrape.json" "curl -s -o /dev/null http://127.0.0.1:9479/metrics" >/dev/null 2>&1
		kill "$lp"
		wait "$lp" 2>/dev/null || true
		ms=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][0]["median"])' "$work/scrape.json")
		row "a scrape of nsrun metrics --listen, 1,000 published ports [$fw] (ms)" "$(ms1 "$ms")" "" "" "(goal: < 50)"
		# What counting each packet costs: requests from another machine to
		# the last of the 1,000 published ports (the deepest in iptables'
		# counting tree), counted against not counted, in alternating rounds.
		for mode in keepalive close; do
			header=""
			[[ $mode == close ]] && header="Connection: close"
			alternate "counting $fw" http://10.239.0.1:30999/ "$header"
			counting "$fw" on
			echo "bench: [$fw] $mode counted req/s by round:$on; not counted:$off" >&2
			row "HTTP req/s, $mode, outside to the 1,000th port: counted vs not [$fw]" "$(median $on)" "$(median $off)" "$(pratio "$on" "$off")" "(target: >= 0.95x)"
		done
		"$nsrun" down -q -p benchmetrics >/dev/null
	done
}
# --- 1h. bandwidth limits ----------------------------------------------------
# shaped on|off: the project's namespace with 10gbit each way, or none,
# by up (in place), checked in the kernel each time.
shaped() {
	local have=off
	"$nsrun" up -q --no-heal "$work/bw-$1.yaml" >/dev/null
	[[ $(tc qdisc show dev nsr-bw0) == *"tbf 6e73: root"* && $(ip netns exec bw0 tc qdisc show dev eth0) == *"tbf 6e73: root"* ]] && have=on
	if [[ $have != "$1" ]]; then
		echo "bench: the shaping is not $1 after up" >&2
		exit 1
	fi
}
bandwidth_cost() {
	local mode header state on off
	for state in on off; do
		{
			echo "name: benchbw"
			echo "subnet: 10.237.0.0/16"
			echo "namespaces:"
			echo "  bw0:"
			[[ $state == on ]] && echo "    bandwidth: {ingress: 10gbit, egress: 10gbit}"
			echo "    ports: [\"31999:8080\"]"
			echo "    run: [{name: web, command: [\"$work/benchserver\", \"-addr\", \":8080\"], ready: {tcp: 8080}}]"
		} >"$work/bw-$state.yaml"
	done
	make_benchout
	for mode in keepalive close; do
		header=""
		[[ $mode == close ]] && header="Connection: close"
		alternate shaped http://10.239.0.1:31999/ "$header"
		echo "bench: $mode req/s through 10gbit limits by round:$on; unlimited:$off" >&2
		row "HTTP req/s, $mode, outside through limits of 10gbit vs none" "$(median $on)" "$(median $off)" "$(pratio "$on" "$off")" "(goal: >= 0.95x)"
	done
	"$nsrun" down -q -p benchbw >/dev/null
}
if $bandwidth_only; then
	bandwidth_cost
	printf '\n%-66s %14s %14s %9s %s\n' "measure" "nsrun" "other" "ratio" ""
	printf '%s\n' "${rows[@]}"
	exit 0
fi
if $metrics_only; then
	metrics_cost
	printf '\n%-66s %14s %14s %9s %s\n' "measure" "nsrun" "other" "ratio" ""
	printf '%s\n' "${rows[@]}"
	exit 0
fi
if $health_only; then
	health_cost
	printf '\n%-66s %14s %14s %9s %s\n' "measure" "nsrun" "other" "ratio" ""
	printf '%s\n' "${rows[@]}"
	exit 0
fi
if $many_only; then
	many
	printf '\n%-66s %14s %14s %9s %s\n' "measure" "nsrun" "other" "ratio" ""
	printf '%s\n' "${rows[@]}"
	exit 0
fi
if $limits_only; then
	limits_cost
	printf '\n%-66s %14s %14s %9s %s\n' "measure" "nsrun" "other" "ratio" ""
	printf '%s\n' "${rows[@]}"
	exit 0
fi

if ! $firewalls_only; then
# The root file system here (ext4 without a journal) passes over inodes
# freed in the last minutes when it makes a file, so after many files were
# deleted (by earlier tests or runs) making files is slow, for nsrun's
# /etc/netns files and the manual script's alike. Start from a settled file
# system: written out, and a minute with nothing deleted.
$quick || { sync; sleep 60; }
settle="sleep 2"
declare -A upms
for n in 1 10 100; do
	spec_n "$n" >"$work/bench$n.yaml"
	manual_n "$n" >"$work/manual-up.sh"
	manual_down_n "$n" >"$work/manual-down.sh"
	# The kernel finishes removing deleted namespaces in the background,
	# for a while after down returns; each prepare waits for it ("settle"),
	# so that neither side's figure holds the previous round's cleanup.
	nsrun_up=$(hyper "bash -c '$nsrun down -q -p bench$n; $settle'" "$nsrun up -q $work/bench$n.yaml")
	nsrun_down=$(hyper "bash -c '$nsrun up -q $work/bench$n.yaml; $settle'" "$nsrun down -q -p bench$n")
	manual_up=$(hyper "bash -c 'bash $work/manual-down.sh; $settle'" "bash $work/manual-up.sh")
	manual_down=$(hyper "bash -c 'bash $work/manual-up.sh; $settle'" "bash $work/manual-down.sh")
	((n == 100)) && nsrun_up_now=$(hyper "$nsrun down -q -p bench$n" "$nsrun up -q $work/bench$n.yaml")
	bash "$work/manual-down.sh" >/dev/null 2>&1 || true
	upms[$n]=$nsrun_up
	row "up, $n namespace(s) (nsrun vs manual, ms)" "$(median "$nsrun_up" | awk '{printf "%.1f", $1*1000}')" "$(awk -v x="$manual_up" 'BEGIN{printf "%.1f", x*1000}')" "$(ratio "$manual_up" "$nsrun_up")" "faster (target at N=100: >= 10x)"
	row "down, $n namespace(s) (nsrun vs manual, ms)" "$(awk -v x="$nsrun_down" 'BEGIN{printf "%.1f", x*1000}')" "$(awk -v x="$manual_down" 'BEGIN{printf "%.1f", x*1000}')" "$(ratio "$manual_down" "$nsrun_down")" "faster (target at N=100: >= 10x)"
done
rm -f "$work/manual-down.sh"
per_ns=$(python3 -c "print(f'{(${upms[100]}-${upms[1]})/99*1000:.2f}')")
row "up, extra time per extra namespace (ms)" "$per_ns" "" "" "(target: about 5 ms or less)"
row "up, 100 namespaces right after their down (ms)" "$(awk -v x="$nsrun_up_now" 'BEGIN{printf "%.1f", x*1000}')" "" "" "(information: waits for the kernel's cleanup)"

# --- 1b. at scale: up of an unchanged spec, status, down ---------------------
for n in 100 200 500; do
	spec_n "$n" >"$work/bench$n.yaml"
	first=$(hyper "bash -c '$nsrun down -q -p bench$n; $settle'" "$nsrun up -q $work/bench$n.yaml")
	# The project is up now, as the last run left it: each further up
	# finds everything in place and changes nothing. The first of them
	# reads the firewalls that the last up changed and keeps what it read
	# (/run/nsrun/nftables.cache/), and the digests of the /etc/netns
	# files, once they are a second old (etc-cache); the others find
	# them there. It comes 3 s after the first up.
	sleep 3
	"$nsrun" up -q "$work/bench$n.yaml" >/dev/null
	again=$(hyper true "$nsrun up -q $work/bench$n.yaml")
	row "up of an unchanged spec, $n namespaces (vs their first up, ms)" "$(ms1 "$again")" "$(ms1 "$first")" "$(ratio "$again" "$first")" "of it (goal: <= 0.10x)"
	if ((n == 500)); then
		status=$(hyper true "$nsrun status -p bench$n")
		row "status, $n namespaces (vs their first up, ms)" "$(ms1 "$status")" "$(ms1 "$first")" "$(ratio "$status" "$first")" "of it (goal: <= 0.15x)"
	fi
	"$nsrun" down -q -p "bench$n" >/dev/null
done
# down of 1,000 namespaces against the floor for the same teardown: the
# namespaces deleted in one ip -batch, the firewall in one batch, the
# /etc/netns files nsrun wrote (which the manual method removes too; this
# machine's root file system trims what it frees, so deleting files is
# slow here), and the wait for the kernel to remove the pairs, as nsrun's
# down waits for them. The bare floor, without the files, is shown as well.
spec_n 1000 >"$work/bench1000.yaml"
"$nsrun" up -q "$work/bench1000.yaml" >/dev/null
fw1000=$("$nsrun" status -p bench1000 -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["projects"][0]["backend"])')
"$nsrun" down -q -p bench1000 >/dev/null
for ((i = 0; i < 1000; i++)); do echo "netns del b1000x$i"; done >"$work/del1000.batch"
del1000="ip -batch $work/del1000.batch; $fw1000-save | grep -v NSR | $fw1000-restore"
gone1000=$(gone_line ': nsr-b1000x[0-9]+[@:]')
printf '%s\n' "$del1000" "$gone1000" >"$work/floor-bare.sh"
printf '%s\n' "$del1000" "rm -rf /etc/netns/b1000x*; rmdir /etc/netns 2>/dev/null || true" "$gone1000" >"$work/floor.sh"
# Each prepare brings the project up again; after a floor run, up finds its
# record and repairs what the floor removed.
prep1000="bash -c '$nsrun up -q $work/bench1000.yaml >/dev/null; sync; $settle'"
down1000=$(hyper "$prep1000" "$nsrun down -q -p bench1000")
floor1000=$(hyper "$prep1000" "bash $work/floor.sh")
bare1000=$(hyper "$prep1000" "bash $work/floor-bare.sh")
"$nsrun" down -q -p bench1000 >/dev/null
row "down, 1000 namespaces (vs the floor, ms)" "$(ms1 "$down1000")" "$(ms1 "$floor1000")" "$(ratio "$down1000" "$floor1000")" "of it (goal: <= 2x)"
row "down, 1000 namespaces (vs the floor without files, ms)" "$(ms1 "$down1000")" "$(ms1 "$bare1000")" "$(ratio "$down1000" "$bare1000")" "(information)"

limits_cost
many
fi # sections 1, 1b, 1c and 1d

# --- 2. the data path -------------------------------------------------------
cat >"$work/data.yaml" <<YAML
name: benchdata
subnet: 10.242.0.0/16
namespaces:
  benchd:
    ports: ["6500:8080", "6501:5201", "6502:8083"]
    run:
      # One server port per path measured: connections closed on one path
      # leave TIME_WAIT entries that would slow another path's new ones.
      - {name: web, command: ["$work/benchserver", "-addr", ":8080"], ready: {tcp: 8080}}
      - {name: direct, command: ["$work/benchserver", "-addr", ":8081"], ready: {tcp: 8081}}
      - {name: socat, command: ["$work/benchserver", "-addr", ":8082"], ready: {tcp: 8082}}
      - {name: local, command: ["$work/benchserver", "-addr", ":8083"], ready: {tcp: 8083}}
      - {name: outside, command: ["$work/benchserver", "-addr", ":8084"], ready: {tcp: 8084}}
      - {name: bare, command: ["$work/benchserver", "-addr", ":8085"], ready: {tcp: 8085}}
      - {name: iperf, command: [iperf3, -s, -p, "5201"], ready: {tcp: 5201}}
      - {name: iperf2, command: [iperf3, -s, -p, "5202"], ready: {tcp: 5202}}
YAML
make_benchout

json_of() { # json_of PROJECT PYTHON-EXPRESSION-ON-p: a field of the project's status
	"$nsrun" status -p "$1" -o json | python3 -c "import json,sys; p=json.load(sys.stdin)['projects'][0]; print($2)"
}
# open_direct PROJECT: let benchout reach the namespaces' own addresses,
# which only published ports may from other machines (nsrun drops the
# rest, in its backend), for the "direct" paths; and a bare DNAT rule,
# the least a port forward can be: one rule, first in nat OUTPUT (bare_*).
open_direct() {
	fw=$(json_of "$1" 'p["backend"]')
	if [[ $fw == nftables ]]; then
		for dir in iifname oifname; do nft insert rule inet nsrun filter-forward "$dir" benchout-h accept; done
		nft -f - <<NFT
table ip benchbare {
	chain out { type nat hook output priority -150; ip daddr $hostaddr tcp dport 6510 dnat to $addr:8085; }
}
NFT
	else
		for dir in -i -o; do "$fw" -w -I FORWARD "$dir" benchout-h -j ACCEPT; done
		bare=(-d "$hostaddr/32" -p tcp --dport 6510 -j DNAT --to-destination "$addr:8085")
		"$fw" -w -t nat -I OUTPUT 1 "${bare[@]}"
	fi
}
close_direct() {
	if [[ ${fw:-} == nftables ]]; then
		nft delete table ip benchbare 2>/dev/null || true
	elif [[ -n ${fw:-} ]]; then
		for dir in -i -o; do "$fw" -w -D FORWARD "$dir" benchout-h -j ACCEPT 2>/dev/null || true; done
		[[ -n ${bare[*]:-} ]] && "$fw" -w -t nat -D OUTPUT "${bare[@]}" 2>/dev/null || true
	fi
	fw="" bare=()
}
# data_path FIREWALL: the data.yaml project up with --firewall FIREWALL,
# every path measured; the project stays up for the exec section.
data_path() {
	local fwname=$1 tag="[$1]"
	# --no-heal: the "direct" paths need accepts inserted in nsrun's own
	# table (open_direct), which the keeper would take out as drift.
	"$nsrun" up -q --no-heal --firewall "$fwname" "$work/data.yaml" >/dev/null
	addr=$(json_of benchdata 'p["namespaces"][0]["ports"][0]["address"]')
	# The published port at a host address: DNAT in nat OUTPUT, after which the
	# kernel routes each packet again. At 127.0.0.1 nsrun's loopback shortcut
	# sends the connection straight to the namespace at connect() instead.
	hostaddr=$(json_of benchdata 'p["namespaces"][0]["host_address"].split("/")[0]')
	socat TCP-LISTEN:6600,fork,reuseaddr "TCP:$addr:8082" &
	pids+=($!)
	socat TCP-LISTEN:6601,fork,reuseaddr "TCP:$addr:5202" &
	pids+=($!)
	open_direct benchdata
	sleep 0.5
	declare -A r
	for mode in keepalive close; do
		header=""
		[[ $mode == close ]] && header="Connection: close"
		for target in published local direct socat outpub outdir bare; do r[$mode$target]=""; done
		# Interleaved, so drift of the machine hits all alike; what is compared
		# is measured back to back, and each ratio is the median of the rounds'.
		# The order of the paths is reversed every other round, so that what
		# comes first or last in a round (after a pause, or after another
		# path's load) falls on each path alike.
		local order=(direct local published bare socat outdir outpub)
		for ((i = 0; i < rounds; i++)); do
			local paths=("${order[@]}")
			((i % 2 == 1)) && paths=(outpub outdir socat bare published local direct)
			for target in "${paths[@]}"; do
				case $target in
				direct) r[${mode}direct]+=" $(rps "http://$addr:8081/" "$header")" ;;
				local) r[${mode}local]+=" $(rps http://127.0.0.1:6502/ "$header")" ;;
				published) r[${mode}published]+=" $(rps "http://$hostaddr:6500/" "$header")" ;;
				bare) r[${mode}bare]+=" $(rps "http://$hostaddr:6510/" "$header")" ;;
				socat) r[${mode}socat]+=" $(rps http://127.0.0.1:6600/ "$header")" ;;
				outdir) r[${mode}outdir]+=" $(client_ns=benchout rps "http://$addr:8084/" "$header")" ;;
				outpub) r[${mode}outpub]+=" $(client_ns=benchout rps "http://10.239.0.1:6500/" "$header")" ;;
				esac
			done
		done
		for target in direct local published bare socat outdir outpub; do
			echo "bench: $tag $mode $target req/s by round:${r[$mode$target]}" >&2
		done
		pub=$(median ${r[${mode}published]}) dir=$(median ${r[${mode}direct]}) soc=$(median ${r[${mode}socat]}) loc=$(median ${r[${mode}local]})
		opub=$(median ${r[${mode}outpub]}) odir=$(median ${r[${mode}outdir]}) bar=$(median ${r[${mode}bare]})
		row "HTTP req/s, $mode: from outside, published vs direct $tag" "$opub" "$odir" "$(pratio "${r[${mode}outpub]}" "${r[${mode}outdir]}")" "(target: >= 0.95x)"
		row "HTTP req/s, $mode: host at 127.0.0.1, published vs direct $tag" "$loc" "$dir" "$(pratio "${r[${mode}local]}" "${r[${mode}direct]}")" "(target: >= 0.95x; the shortcut)"
		row "HTTP req/s, $mode: host at its address, published vs direct $tag" "$pub" "$dir" "$(pratio "${r[${mode}published]}" "${r[${mode}direct]}")" "(DNAT in OUTPUT: the kernel's re-route)"
		row "HTTP req/s, $mode: host at its address, published vs bare DNAT $tag" "$pub" "$bar" "$(pratio "${r[${mode}published]}" "${r[${mode}bare]}")" "(nsrun's rules against one hand-made rule)"
		row "HTTP req/s, $mode: at 127.0.0.1 vs socat there $tag" "$loc" "$soc" "$(pratio "${r[${mode}local]}" "${r[${mode}socat]}")" "(target: >= 1.5x)"
	done
	close_direct
	bps() { iperf3 -c 127.0.0.1 -p "$1" -t "$secs" -J | python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"])'; }
	ip_pub="" ip_soc=""
	for ((i = 0; i < 3; i++)); do ip_pub+=" $(bps 6501)"; ip_soc+=" $(bps 6601)"; done # both at 127.0.0.1
	pub=$(median $ip_pub) soc=$(median $ip_soc)
	row "iperf3 Gbit/s: published port at 127.0.0.1 vs socat there $tag" "$(awk -v x="$pub" 'BEGIN{printf "%.2f", x/1e9}')" "$(awk -v x="$soc" 'BEGIN{printf "%.2f", x/1e9}')" "$(pratio "$ip_pub" "$ip_soc")" "(target: >= 3x)"
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	pids=()
}

# --- 2b. the data path over IPv6 ---------------------------------------------
cat >"$work/data6.yaml" <<YAML
name: benchdata6
subnet: 10.245.0.0/16
ipv6: true
subnet6: fd00:245::/48
namespaces:
  benchd6:
    ports: ["6530:8090", "6531:8092"]
    run:
      - {name: web, command: ["$work/benchserver", "-addr", ":8090"], ready: {tcp: 8090}}
      - {name: direct, command: ["$work/benchserver", "-addr", ":8091"], ready: {tcp: 8091}}
      - {name: local, command: ["$work/benchserver", "-addr", ":8092"], ready: {tcp: 8092}}
      - {name: hostdirect, command: ["$work/benchserver", "-addr", ":8093"], ready: {tcp: 8093}}
YAML
ipv6_path() {
	local fwname=$1 tag="[$1]" addr6
	"$nsrun" up -q --no-heal --firewall "$fwname" "$work/data6.yaml" >/dev/null # as data_path
	addr6=$(json_of benchdata6 'p["namespaces"][0]["address6"].split("/")[0]')
	# benchout reaches the namespace's own IPv6 address too, for "direct".
	fw6=$(json_of benchdata6 'p["backend"]')
	if [[ $fw6 == nftables ]]; then
		for dir in iifname oifname; do nft insert rule inet nsrun filter-forward "$dir" benchout-h accept; done
	else
		for dir in -i -o; do "ip6${fw6#ip}" -w -I FORWARD "$dir" benchout-h -j ACCEPT; done
	fi
	sleep 0.5
	declare -A r
	for mode in keepalive close; do
		header=""
		[[ $mode == close ]] && header="Connection: close"
		for target in outpub outdir local hostdir; do r[$mode$target]=""; done
		local order=(outdir outpub hostdir local)
		for ((i = 0; i < rounds; i++)); do
			local paths=("${order[@]}")
			((i % 2 == 1)) && paths=(local hostdir outpub outdir)
			for target in "${paths[@]}"; do
				case $target in
				outpub) r[${mode}outpub]+=" $(client_ns=benchout rps "http://[fd00:239::1]:6530/" "$header")" ;;
				outdir) r[${mode}outdir]+=" $(client_ns=benchout rps "http://[$addr6]:8091/" "$header")" ;;
				local) r[${mode}local]+=" $(rps "http://[::1]:6531/" "$header")" ;;
				hostdir) r[${mode}hostdir]+=" $(rps "http://[$addr6]:8093/" "$header")" ;;
				esac
			done
		done
		for target in outpub outdir local hostdir; do
			echo "bench: $tag IPv6 $mode $target req/s by round:${r[$mode$target]}" >&2
		done
		row "HTTP req/s, $mode: from outside over IPv6, published vs direct $tag" "$(median ${r[${mode}outpub]})" "$(median ${r[${mode}outdir]})" "$(pratio "${r[${mode}outpub]}" "${r[${mode}outdir]}")" "(target: >= 0.95x)"
		row "HTTP req/s, $mode: host at [::1], published vs direct $tag" "$(median ${r[${mode}local]})" "$(median ${r[${mode}hostdir]})" "$(pratio "${r[${mode}local]}" "${r[${mode}hostdir]}")" "(target: >= 0.95x; the shortcut)"
	done
	if [[ $fw6 == nftables ]]; then
		: # the accepts go with nsrun's table
	else
		for dir in -i -o; do "ip6${fw6#ip}" -w -D FORWARD "$dir" benchout-h -j ACCEPT 2>/dev/null || true; done
	fi
	"$nsrun" down -q -p benchdata6 >/dev/null
}
ip addr add fd00:239::1/64 dev benchout-h nodad
ip -n benchout addr add fd00:239::2/64 dev eth0 nodad
ip -n benchout -6 route add default via fd00:239::1

if $ipv6_only; then
	for fwname in iptables nftables; do ipv6_path "$fwname"; done
	printf '\n%-66s %14s %14s %9s %s\n' "measure" "nsrun" "other" "ratio" ""
	printf '%s\n' "${rows[@]}"
	exit 0
fi

# --- 4. exec startup ---------------------------------------------------------
# nsrun as released (the C fast path) and built without cgo (the Go path),
# in the data path's namespace.
exec_startup() {
	CGO_ENABLED=0 go build -o "$work/nsrun-purego" ./cmd/nsrun
	execs=("$nsrun exec benchd true" "ip netns exec benchd true" "$work/nsrun-purego exec benchd true")
	hyperfine -N --warmup 5 --runs 100 --export-json "$work/e.json" "${execs[@]}" >/dev/null 2>&1 ||
		hyperfine --warmup 5 --runs 100 --export-json "$work/e.json" "${execs[@]}" >/dev/null
	read -r ex ipx gox < <(python3 -c 'import json; r=json.load(open("'"$work"'/e.json"))["results"]; print(r[0]["median"], r[1]["median"], r[2]["median"])')
	ms() { awk -v x="$1" 'BEGIN{printf "%.2f", x*1000}'; }
	row "exec startup, ms: nsrun exec vs ip netns exec" "$(ms "$ex")" "$(ms "$ipx")" "$(ratio "$ipx" "$ex")" "(target: >= 1x)"
	row "exec startup, ms: built without cgo vs ip netns exec" "$(ms "$gox")" "$(ms "$ipx")" "$(ratio "$ipx" "$gox")" "(information: the Go path)"
}

# --- 3. the last of N published ports of one namespace ---------------------------
# last_of_ports FIREWALL N PATHS: new connections/s to the last of N ports
# against the first, from outside (DNAT: iptables' dispatch tree, nftables'
# verdict map) and at 127.0.0.1 (the shortcut's hash map).
last_of_ports() {
	local fwname=$1 n=$2 paths=$3
	local off=0
	[[ $fwname == nftables ]] && off=5000
	local tfirst=$((10000 + n + off)) tlast=$((20000 + n + off))
	{
		echo "name: benchscale"
		echo "subnet: 10.243.0.0/16"
		echo "namespaces:"
		echo "  benchs:"
		# The first n-1 ports go to one server, the last to another, on
		# ports of this size and backend only: a connection DNAT'd to a
		# server port that a closed connection of another published port
		# used leaves the host's conntrack with a clash to resolve (its
		# entries outlive the namespace), which would slow one side.
		echo "    ports: [$(for ((i = 0; i < n - 1; i++)); do printf '"%d:%d",' $((40000 + i)) "$tfirst"; done) \"$((40000 + n - 1)):$tlast\"]"
		echo "    run:"
		echo "      - {name: first, command: [\"$work/benchserver\", \"-addr\", \":$tfirst\"], ready: {tcp: $tfirst}}"
		echo "      - {name: last, command: [\"$work/benchserver\", \"-addr\", \":$tlast\"], ready: {tcp: $tlast}}"
	} >"$work/scale.yaml"
	"$nsrun" up -q --firewall "$fwname" "$work/scale.yaml" >/dev/null
	for path in $paths; do
		first="" last=""
		url=http://127.0.0.1
		client_ns=""
		[[ $path == outside ]] && url=http://10.239.0.1 client_ns=benchout
		for ((i = 0; i < rounds; i++)); do
			if ((i % 2 == 0)); then
				first+=" $(rps "$url:40000/" "Connection: close")"
				last+=" $(rps "$url:$((40000 + n - 1))/" "Connection: close")"
			else
				last+=" $(rps "$url:$((40000 + n - 1))/" "Connection: close")"
				first+=" $(rps "$url:40000/" "Connection: close")"
			fi
		done
		echo "bench: [$fwname] last of $n ports, $path, 1st by round:$first; last:$last" >&2
		client_ns=""
		f=$(median $first) l=$(median $last)
		row "new connections/s: last vs first of $n ports, $path [$fwname]" "$l" "$f" "$(pratio "$last" "$first")" "(target: >= 0.95x)"
	done
	"$nsrun" down -q -p benchscale >/dev/null
}

# --- 3b. the 100th of 100 namespaces -------------------------------------------
# One published port in each of 100 namespaces, servers in the first and
# the last; from outside, keep-alive and new connections to the 100th
# against the 1st, rounds interleaved and their order alternated.
{
	echo "name: benchns"
	echo "subnet: 10.245.0.0/16"
	echo "namespaces:"
	for ((i = 0; i < 100; i++)); do
		echo "  bn$i:"
		echo "    ports: [\"$((6900 + i)):8080\"]"
		if ((i == 0 || i == 99)); then
			echo "    run: [{name: web, command: [\"$work/benchserver\", \"-addr\", \":8080\"], ready: {tcp: 8080}}]"
		fi
	done
} >"$work/ns100.yaml"
hundredth() {
	local fwname=$1
	"$nsrun" up -q --firewall "$fwname" "$work/ns100.yaml" >/dev/null
	for mode in keepalive close; do
		header=""
		[[ $mode == close ]] && header="Connection: close"
		first="" last=""
		for ((i = 0; i < rounds; i++)); do
			if ((i % 2 == 0)); then
				first+=" $(client_ns=benchout rps http://10.239.0.1:6900/ "$header")"
				last+=" $(client_ns=benchout rps http://10.239.0.1:6999/ "$header")"
			else
				last+=" $(client_ns=benchout rps http://10.239.0.1:6999/ "$header")"
				first+=" $(client_ns=benchout rps http://10.239.0.1:6900/ "$header")"
			fi
		done
		echo "bench: [$fwname] 100 namespaces, $mode, 1st by round:$first; 100th:$last" >&2
		row "HTTP req/s, $mode: 100th of 100 namespaces vs the 1st, from outside [$fwname]" "$(median $last)" "$(median $first)" "$(pratio "$last" "$first")" "(target: >= 0.95x)"
	done
	"$nsrun" down -q -p benchns >/dev/null
}

# --- 3c. the 100th of 100 isolated projects --------------------------------------
# 100 projects of one namespace, one published port each, servers in the
# 1st and the 100th; from outside, keep-alive requests to the 100th's port
# against the 1st's, rounds interleaved and their order alternated. Every
# project is isolated from the others: what a connection meets must not
# grow with their number.
for ((i = 0; i < 100; i++)); do
	{
		echo "name: benchp$i"
		echo "subnet: 10.246.0.0/16"
		echo "namespaces:"
		echo "  bp$i:"
		echo "    ports: [\"$((7100 + i)):8080\"]"
		if ((i == 0 || i == 99)); then
			echo "    run: [{name: web, command: [\"$work/benchserver\", \"-addr\", \":8080\"], ready: {tcp: 8080}}]"
		fi
	} >"$work/tenant$i.yaml"
done
tenants() {
	local fwname=$1
	for ((i = 0; i < 100; i++)); do "$nsrun" up -q --firewall "$fwname" "$work/tenant$i.yaml" >/dev/null; done
	first="" last=""
	for ((i = 0; i < rounds; i++)); do
		if ((i % 2 == 0)); then
			first+=" $(client_ns=benchout rps http://10.239.0.1:7100/)"
			last+=" $(client_ns=benchout rps http://10.239.0.1:7199/)"
		else
			last+=" $(client_ns=benchout rps http://10.239.0.1:7199/)"
			first+=" $(client_ns=benchout rps http://10.239.0.1:7100/)"
		fi
	done
	echo "bench: [$fwname] 100 projects, keep-alive, 1st by round:$first; 100th:$last" >&2
	row "HTTP req/s, keepalive: 100th of 100 isolated projects vs the 1st, from outside [$fwname]" "$(median $last)" "$(median $first)" "$(pratio "$last" "$first")" "(target: >= 0.95x)"
	for ((i = 0; i < 100; i++)); do "$nsrun" down -q -p "benchp$i" >/dev/null; done
}
if $tenants_only; then
	for fwname in iptables nftables; do tenants "$fwname"; done
	printf '\n%-66s %14s %14s %9s %s\n' "measure" "nsrun" "other" "ratio" ""
	printf '%s\n' "${rows[@]}"
	exit 0
fi

# --- 6. applying the firewall -------------------------------------------------
# One namespace with 100 and 1,000 published ports: the time each backend
# takes to apply them from nothing (one iptables-restore batch, one nft -f
# transaction), to read them back (what every up and status does), and to
# remove them, through nsrun's own code (scripts/fwbench).
firewall_apply() {
	go build -o "$work/fwbench" ./scripts/fwbench
	"$work/fwbench" -runs "$runs" 100 1000 >"$work/fw.txt"
	for n in 100 1000; do
		read -r _ _ ie ir id < <(grep "^iptables-nft $n " "$work/fw.txt")
		read -r _ _ ne nr nd < <(grep "^nftables $n " "$work/fw.txt")
		row "firewall apply, $n ports: nftables vs iptables-restore (ms)" "$ne" "$ie" "$(ratio "$ne" "$ie")" "(information)"
		row "firewall read, $n ports: nft -j list vs iptables-save (ms)" "$nr" "$ir" "$(ratio "$nr" "$ir")" "(information: every up and status)"
		row "firewall remove, $n ports: nftables vs iptables (ms)" "$nd" "$id" "$(ratio "$nd" "$id")" "(information)"
	done
}

for fwname in iptables nftables; do
	data_path "$fwname"
	ipv6_path "$fwname"
	[[ $fwname == iptables ]] && ! $firewalls_only && exec_startup
	"$nsrun" down -q -p benchdata >/dev/null
	paths="outside"
	[[ $fwname == iptables ]] && paths="outside loopback" # the shortcut is the same for both
	last_of_ports "$fwname" 100 "$paths"
	last_of_ports "$fwname" 1000 outside
	hundredth "$fwname"
	tenants "$fwname"
done
firewall_apply

if ! $firewalls_only; then
# --- 5. the supervisor's memory -----------------------------------------------
{
	echo "name: benchmem"
	echo "subnet: 10.244.0.0/16"
	echo "namespaces:"
	echo "  benchm:"
	echo "    run:"
	for ((i = 0; i < 10; i++)); do echo "      - {name: p$i, command: [sleep, \"600\"]}"; done
} >"$work/mem.yaml"
"$nsrun" up -q "$work/mem.yaml" >/dev/null
sup=$("$nsrun" status -p benchmem -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["projects"][0]["supervisor"]["pid"])')
rss=$(awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$sup/status")
row "supervisor RSS with 10 processes (MiB)" "$rss" "" "" "(target: < 20)"
"$nsrun" down -q -p benchmem >/dev/null
fi

printf '\n%-66s %14s %14s %9s %s\n' "measure" "nsrun" "other" "ratio" ""
printf '%s\n' "${rows[@]}"
echo
echo "machine: $(nproc) cores, $(uname -r), $(iptables --version), $(nft --version), $(date -u +%Y-%m-%d)"
