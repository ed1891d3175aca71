#!/usr/bin/env bash
# The one test command: sudo scripts/test.sh
# Installs what the tests need, checks formatting and go vet, runs the demo
# as a user would, then every test with the race detector. Tests that need
# root or a C compiler (the fast exec path) fail instead of skipping
# (NSRUN_REQUIRE_ROOT=1, NSRUN_REQUIRE_CGO=1).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) -ne 0 ]]; then
	echo "test.sh: the integration tests create namespaces and firewall rules; run it as root: sudo $0" >&2
	exit 1
fi

NSRUN_TEST_DEPS=1 scripts/install-deps.sh

export NSRUN_REQUIRE_ROOT=1 NSRUN_REQUIRE_CGO=1
echo "== gofmt -l ."
unformatted=$(gofmt -l .)
if [[ -n $unformatted ]]; then
	echo "test.sh: these files need gofmt -w: $unformatted" >&2
	exit 1
fi
echo "== go vet ./..."
go vet ./...
# The spec's schema, by a validator independent of the Go tests'.
echo "== scripts/schema-check.py"
scripts/schema-check.py
# The README's other command, on the real machine, as a user runs it.
echo "== scripts/demo.sh"
scripts/demo.sh
# The same on an nftables-only host: no iptables program on PATH.
echo "== scripts/demo.sh --nftables-only"
scripts/demo.sh --nftables-only
# The lab note's example: two Flask apps.
echo "== scripts/demo.sh --flask"
scripts/demo.sh --flask

# The blog on IPv4 and IPv6: [::1] from the host, the host's IPv6 address from outside.
echo "== scripts/demo.sh --dual-stack"
scripts/demo.sh --dual-stack

# up killed with SIGKILL at random instants; down must converge every time.
echo "== scripts/chaos.sh 20"
scripts/chaos.sh 20

# Beside firewalld, ufw and Docker (real daemons, started and stopped by
# the script), and healing after their changes and flushes.
echo "== scripts/hostfw.sh"
scripts/hostfw.sh

# The Kubernetes export against a real API server (etcd and kube-apiserver
# built once into a cache outside the repository: about ten minutes the
# first time). Run when the binaries are cached, or with NSRUN_K8S=1, which
# CI sets.
if [[ ${NSRUN_K8S:-} == 1 || -x ${NSRUN_K8S_CACHE:-/var/cache/nsrun-k8s}/kube-apiserver ]]; then
	echo "== scripts/k8s-test.sh"
	scripts/k8s-test.sh
fi

# -p 1: packages one at a time. Their integration tests share the host's
# nat table and sysctls, and each package checks afterwards that it left
# the host as it found it, which only holds if no other package runs.
# -timeout 40m: the project package alone ran past go test's default 10
# minutes under -race with the other core busy (no test hung: the alarm
# found one 3 s into its run); .ci/run's limit is 90 minutes.
echo "== go test -race -p 1 ./..."
go test -race -count=1 -p 1 -timeout 40m ./...
