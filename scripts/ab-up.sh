#!/usr/bin/env bash
# Compares the cost of `up` in two builds of nsrun, interleaved, for
# changes whose effect is smaller than the machine's noise:
#
#   sudo scripts/ab-up.sh OLD_NSRUN NEW_NSRUN [N] [ROUNDS]
#
# Each round, for each build in turn: the first `up` of a spec of N
# namespaces with one published port each (hyperfine, 3 runs, each after
# `down` and 2 s for the kernel to finish removing namespaces; median),
# then 10 unchanged `up`s (median). It prints each round, then the medians
# over the rounds and the median of the rounds' ratios (new / old). Build
# the old one with: git worktree add /tmp/old REV && (cd /tmp/old &&
# CGO_ENABLED=1 go build -o /tmp/nsrun-old ./cmd/nsrun).
set -euo pipefail
cd "$(dirname "$0")/.."
if (($# < 2)); then
	echo "usage: sudo $0 OLD_NSRUN NEW_NSRUN [N] [ROUNDS]" >&2
	exit 2
fi
old=$(realpath "$1") new=$(realpath "$2") n=${3:-100} rounds=${4:-5}
command -v hyperfine >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends hyperfine >/dev/null
source scripts/lib.sh
work=$(mktemp -d)
cleanup() {
	"$new" down -q -p "ab$n" >/dev/null 2>&1 || "$old" down -q -p "ab$n" >/dev/null 2>&1 || true
	remove_iptables_tables_if_new
	rm -rf "$work"
	remove_run_netns_if_new
}
trap cleanup EXIT
{
	echo "name: ab$n"
	echo "subnet: 10.240.0.0/16"
	echo "namespaces:"
	for ((i = 0; i < n; i++)); do echo "  ab${n}x$i: {ports: [\"$((30000 + i)):8080\"]}"; done
} >"$work/spec.yaml"
median() { python3 -c "import json; print(json.load(open('$work/h.json'))['results'][0]['median'])"; }
declare -A first again
for ((r = 1; r <= rounds; r++)); do
	line="round $r:"
	for b in old new; do
		bin=${!b}
		hyperfine -N --runs 3 --prepare "bash -c '$bin down -q -p ab$n; sleep 2'" --export-json "$work/h.json" "$bin up -q $work/spec.yaml" >/dev/null 2>&1
		f=$(median)
		sleep 3
		"$bin" up -q "$work/spec.yaml" >/dev/null
		hyperfine -N --runs 10 --export-json "$work/h.json" "$bin up -q $work/spec.yaml" >/dev/null 2>&1
		a=$(median)
		first[$b]+=" $f" again[$b]+=" $a"
		line+=$(python3 -c "print(f' $b: first {$f*1000:.0f} ms, unchanged {$a*1000:.1f} ms;')")
		"$bin" down -q -p "ab$n" >/dev/null
	done
	echo "$line"
done
python3 - "${first[old]}" "${first[new]}" "${again[old]}" "${again[new]}" <<'PY'
import statistics as st, sys
fo, fn, ao, an = ([float(x) for x in a.split()] for a in sys.argv[1:])
for what, o, n in (("first up", fo, fn), ("unchanged up", ao, an)):
    r = st.median(b / a for a, b in zip(o, n))
    print(f"{what}: old {st.median(o)*1000:.1f} ms, new {st.median(n)*1000:.1f} ms; median of the rounds' ratios {r:.3f}x, ratio of the medians {st.median(n)/st.median(o):.3f}x")
PY
