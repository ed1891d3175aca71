#!/usr/bin/env bash
# Installs what nsrun's tests and scripts need on a fresh Debian or Ubuntu
# machine that has only Go: iptables (nft and legacy), nftables (nft), iproute2, python3 for
# the bundled examples, curl for the demo, and gcc with the C library's
# headers for cgo (nsrun's fast exec path). With NSRUN_HOST_FIREWALLS=1
# (scripts/hostfw.sh sets it) also the host firewalls nsrun is tested
# beside: firewalld, ufw, docker.io and dbus; their daemons are not started
# on install. Packages already present are left alone.
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
# What scripts/test.sh needs beyond the demo (NSRUN_TEST_DEPS=1): a second
# JSON Schema validator, graphviz for the pictures, systemd-analyze for the
# unit, man for the pages, Flask for the lab note's example, radvd for the
# IPv6 tests' router advertisements, prometheus (promtool and the server)
# for the metrics test, tmux for top's.
# scripts/demo.sh --flask: the lab note's example (NSRUN_FLASK=1).
if [[ ${NSRUN_FLASK:-} == 1 ]]; then
	/usr/bin/python3 -c 'import flask' 2>/dev/null || need+=(python3-flask)
fi
if [[ ${NSRUN_TEST_DEPS:-} == 1 ]]; then
	/usr/bin/python3 -c 'import jsonschema' 2>/dev/null || need+=(python3-jsonschema)
	/usr/bin/python3 -c 'import yaml' 2>/dev/null || need+=(python3-yaml)
	command -v dot >/dev/null || need+=(graphviz)
	command -v systemd-analyze >/dev/null || need+=(systemd)
	command -v man >/dev/null || need+=(man-db)
	command -v radvd >/dev/null || need+=(radvd) # router advertisements for the IPv6 tests
	command -v promtool >/dev/null || need+=(prometheus) # promtool and a real server for nsrun metrics
	command -v tmux >/dev/null || need+=(tmux)             # a terminal for nsrun top's test
	command -v iperf3 >/dev/null || need+=(iperf3)         # traffic through shaped links (bandwidth tests)
	command -v setcap >/dev/null || need+=(libcap2-bin) # nsrun exec without root: the file capabilities
	/usr/bin/python3 -c 'import flask' 2>/dev/null || need+=(python3-flask)
fi
if [[ ${NSRUN_HOST_FIREWALLS:-} == 1 ]]; then
	command -v firewalld >/dev/null || need+=(firewalld)
	command -v ufw >/dev/null || need+=(ufw)
	command -v dockerd >/dev/null || need+=(docker.io)
	command -v dbus-daemon >/dev/null || need+=(dbus)
fi

if ((${#need[@]} > 0)); then
	if [[ $(id -u) -ne 0 ]]; then
		echo "install-deps: missing ${need[*]}; run as root (sudo $0) to install them" >&2
		exit 1
	fi
	echo "install-deps: installing ${need[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# No daemon starts on install (policy-rc.d, invoke-rc.d's answer 101):
	# the scripts start the ones they test, and stop them.
	norc=false
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		norc=true
	fi
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
	$norc && rm -f /usr/sbin/policy-rc.d
	command -v iptables-legacy >/dev/null || {
		echo "install-deps: iptables-legacy is still missing after installing iptables" >&2
		exit 1
	}
fi
