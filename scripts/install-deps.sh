#!/usr/bin/env bash
# Installs what nsrun's tests and scripts need on a fresh Debian or Ubuntu
# machine that has only Go: iptables (nft and legacy), nftables (nft), iproute2, python3 for
# the bundled examples, curl for the demo, and gcc with the C library's
# headers for cgo (nsrun's fast exec path). Packages already present are left
# alone.
set -euo pipefail

need=()
command -v iptables >/dev/null || need+=(iptables)
command -v iptables-legacy >/dev/null || need+=(iptables)
command -v nft >/dev/null || need+=(nftables)
command -v ip >/dev/null || need+=(iproute2) # the tests and the demo check with ip
command -v python3 >/dev/null || need+=(python3) # the bundled examples' web servers
command -v curl >/dev/null || need+=(curl)       # the demo's client
command -v gcc >/dev/null || need+=(gcc)         # cgo: netns/fastexec
[[ -e /usr/include/stdio.h ]] || need+=(libc6-dev)

if ((${#need[@]} > 0)); then
	if [[ $(id -u) -ne 0 ]]; then
		echo "install-deps: missing ${need[*]}; run as root (sudo $0) to install them" >&2
		exit 1
	fi
	echo "install-deps: installing ${need[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
	command -v iptables-legacy >/dev/null || {
		echo "install-deps: iptables-legacy is still missing after installing iptables" >&2
		exit 1
	}
fi
