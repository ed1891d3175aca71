#!/usr/bin/env bash
# The main job on the bundled example: sudo scripts/demo.sh [--keep] [--nftables-only] [--flask] [--dual-stack]
#
# Two web servers, both on port 8080, each in its own network namespace,
# published on the host as ports 6000 and 6001 (specs/examples/blog.yaml).
# It installs what is missing (Debian packages), builds nsrun into bin/,
# brings the example up, reaches both servers from the host and from an
# "outside" machine (a namespace of the demo's, joined to the host by its
# own veth) and from one namespace to the other's port, prints the status,
# and takes it all down again. With --keep it leaves the example running
# and says how to remove it. With --nftables-only nsrun runs with no
# iptables program on its PATH, as on a host with only nftables: up must
# choose its nftables backend by itself. With --flask it runs the lab
# note's example instead, two Flask apps (specs/examples/flask/). With
# --dual-stack it runs the blog on IPv4 and IPv6 (specs/examples/dual-stack.yaml)
# and reaches it over IPv6 too: curl -6 http://[::1]:6000 from the host,
# and the host's IPv6 address from the outside machine.
set -euo pipefail
cd "$(dirname "$0")/.."

keep=false
nftables_only=false
spec=specs/examples/blog.yaml
for arg in "$@"; do
	case "$arg" in
	--keep) keep=true ;;
	--nftables-only) nftables_only=true ;;
	--flask) spec=specs/examples/flask/flask.yaml ;;
	--dual-stack) spec=specs/examples/dual-stack.yaml ;;
	*)
		echo "usage: sudo $0 [--keep] [--nftables-only] [--flask] [--dual-stack]" >&2
		exit 2
		;;
	esac
done
if [[ $(id -u) -ne 0 ]]; then
	echo "demo.sh creates namespaces and firewall rules; run it as root: sudo $0" >&2
	exit 1
fi

if [[ -t 1 ]]; then
	say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
	say() { printf '\n== %s\n' "$*"; }
fi

say "installing what is missing"
if [[ $spec == */flask.yaml ]]; then
	NSRUN_FLASK=1 scripts/install-deps.sh
else
	scripts/install-deps.sh
fi

say "building nsrun"
scripts/build.sh
nsrun=bin/nsrun
project=$("$nsrun" config "$spec" | sed -n 's/^name: //p')

source scripts/lib.sh

want_backend=
if $nftables_only; then
	# A PATH with every program of this machine's but iptables'.
	bare=$(mktemp -d)
	for dir in /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin; do
		for prog in "$dir"/*; do
			name=${prog##*/}
			case "$name" in iptables* | ip6tables* | xtables* | arptables* | ebtables*) continue ;; esac
			[[ -x $prog && ! -e $bare/$name ]] && ln -s "$prog" "$bare/$name"
		done
	done
	export PATH=$bare
	want_backend=nftables
	say "no iptables program on PATH: up must choose nftables"
fi

# The demo's "outside" machine: its own namespace and veth, not nsrun's.
outside=nsrun-demo-out
outlink=nsrdemo-out
outhost=10.254.254.1
outhost6=fd00:254:254::1
ipv6=false
[[ $spec == */dual-stack.yaml ]] && ipv6=true
remove_outside() {
	ip link del "$outlink" 2>/dev/null || true
	ip netns del "$outside" 2>/dev/null || true
}
finish() {
	status=$?
	remove_outside
	if ! $keep || ((status != 0)); then
		"$nsrun" down -q "$spec" >/dev/null 2>&1 || true
	fi
	remove_run_netns_if_new
	[[ -n ${bare:-} ]] && rm -rf "$bare"
	exit $status
}
trap finish EXIT

say "nsrun up $spec"
"$nsrun" up "$spec"

# answer URL NS [CMD...]: CMD (default: here) gets the page at URL, which
# must come from namespace NS.
answer() {
	local url=$1 ns=$2 reply
	shift 2
	printf 'curl %s  ->  ' "$url"
	reply=$("$@" curl -gsS --max-time 5 "$url")
	echo "$reply"
	if [[ $reply != *"$ns"* ]]; then
		echo "demo: $url did not answer from $ns" >&2
		exit 1
	fi
}

say "from the host"
answer http://127.0.0.1:6000/ ns1
answer http://127.0.0.1:6001/ ns2
if $ipv6; then
	answer 'http://[::1]:6000/' ns1 # the loopback shortcut: no DNAT can carry [::1]
	answer 'http://[::1]:6001/' ns2
fi

say "from another machine (namespace $outside, routed through the host)"
remove_outside
ip netns add "$outside"
ip link add "$outlink" type veth peer name eth0 netns "$outside"
ip addr add "$outhost/30" dev "$outlink"
ip link set "$outlink" up
ip -n "$outside" addr add 10.254.254.2/30 dev eth0
ip -n "$outside" link set eth0 up
ip -n "$outside" link set lo up
ip -n "$outside" route add default via "$outhost"
ip addr add "$outhost6/64" dev "$outlink" nodad
ip -n "$outside" addr add fd00:254:254::2/64 dev eth0 nodad
ip -n "$outside" -6 route add default via "$outhost6"
answer "http://$outhost:6000/" ns1 ip netns exec "$outside"
answer "http://$outhost:6001/" ns2 ip netns exec "$outside"
if $ipv6; then
	answer "http://[$outhost6]:6000/" ns1 ip netns exec "$outside"
	answer "http://[$outhost6]:6001/" ns2 ip netns exec "$outside"
fi

say "from one namespace to the other's published port (through the host)"
printf 'nsrun exec ns1 -- '
answer "http://$outhost:6001/" ns2 "$nsrun" exec ns1 --

say "nsrun status -p $project"
"$nsrun" status -p "$project"
if [[ -n $want_backend ]] && ! "$nsrun" status -p "$project" -o json | grep -q "\"backend\": \"$want_backend\""; then
	echo "demo: the project's rules are not in $want_backend" >&2
	exit 1
fi

if $keep; then
	say "left running"
	echo "remove it with: sudo $nsrun down $spec"
	exit 0
fi

say "nsrun down $spec"
"$nsrun" down "$spec"
