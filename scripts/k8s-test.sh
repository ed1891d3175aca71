#!/usr/bin/env bash
# The Kubernetes export against a real API server: scripts/k8s-test.sh [--build-only]
#
# Builds etcd (go.etcd.io/etcd/server/v3) and kube-apiserver
# (k8s.io/kubernetes/cmd/kube-apiserver, from a scratch module with the
# replace lines k8s.io/kubernetes's go.mod needs for its staging modules)
# into a cache outside the repository, never committed:
# ${NSRUN_K8S_CACHE:-/var/cache/nsrun-k8s}. The first time takes about ten
# minutes and 3 GB of Go build cache; later runs find the binaries and take
# seconds. Then it runs the tests of scripts/k8stest (build tag k8s), which
# start both with controller-runtime's envtest, create every object nsrun
# exports for real (not a dry run), and check that wrong objects are
# refused. Needs no root; leaves no process behind.
set -euo pipefail
cd "$(dirname "$0")/.."

k8s_version=v1.37.2
etcd_version=v3.7.0 # the etcd k8s.io/kubernetes $k8s_version requires
cache=${NSRUN_K8S_CACHE:-/var/cache/nsrun-k8s}
stamp="kubernetes $k8s_version, etcd $etcd_version"

build_only=false
for arg in "$@"; do
	case "$arg" in
	--build-only) build_only=true ;;
	*)
		echo "usage: $0 [--build-only]" >&2
		exit 2
		;;
	esac
done

build() {
	local work
	work=$(mktemp -d)
	trap 'rm -rf "$work"' RETURN
	mkdir -p "$cache"
	echo "k8s-test: building etcd $etcd_version into $cache (once)" >&2
	mkdir "$work/etcd"
	(
		cd "$work/etcd"
		go mod init nsrun-build-etcd >/dev/null 2>&1
		go get "go.etcd.io/etcd/server/v3@$etcd_version" >/dev/null 2>&1
		go build -trimpath -o "$cache/etcd.new" go.etcd.io/etcd/server/v3
	)
	echo "k8s-test: building kube-apiserver $k8s_version into $cache (once; about ten minutes)" >&2
	mkdir "$work/apiserver"
	(
		cd "$work/apiserver"
		go mod init nsrun-build-apiserver >/dev/null 2>&1
		# k8s.io/kubernetes requires its staging modules at v0.0.0 and
		# replaces them by directories of its own repository; a module that
		# builds it must replace them by their released versions.
		gomod=$(go mod download -json "k8s.io/kubernetes@$k8s_version" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
		staging=$(sed -n 's|^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*|\1|p' "$gomod")
		release=v0.${k8s_version#v1.}
		for m in $staging; do go mod edit -replace="$m=$m@$release"; done
		go get "k8s.io/kubernetes/cmd/kube-apiserver@$k8s_version" >/dev/null 2>&1
		go build -trimpath -o "$cache/kube-apiserver.new" \
			-ldflags "-X k8s.io/component-base/version.gitVersion=$k8s_version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "$k8s_version" | cut -d. -f2)" \
			k8s.io/kubernetes/cmd/kube-apiserver
	)
	mv "$cache/etcd.new" "$cache/etcd"
	mv "$cache/kube-apiserver.new" "$cache/kube-apiserver"
	echo "$stamp" >"$cache/VERSION"
}

if [[ ! -x $cache/etcd || ! -x $cache/kube-apiserver || $(cat "$cache/VERSION" 2>/dev/null) != "$stamp" ]]; then
	build
fi
echo "k8s-test: $("$cache/kube-apiserver" --version), etcd $("$cache/etcd" --version | sed -n 's/^etcd Version: //p')" >&2
$build_only && exit 0

cd scripts/k8stest
KUBEBUILDER_ASSETS=$cache go test -tags k8s -count=1 -v ./... 2>&1 | grep -v '^=== RUN'
