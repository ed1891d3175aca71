#!/usr/bin/env bash
# Builds nsrun as released into bin/nsrun: with cgo, so that 'nsrun exec NS
# CMD' takes the C fast path of netns/fastexec and starts as quickly as
# 'ip netns exec' (scripts/install-deps.sh installs the C compiler).
# CGO_ENABLED=0 go build ./cmd/nsrun gives the same nsrun without it.
set -euo pipefail
cd "$(dirname "$0")/.."
CGO_ENABLED=1 go build -o bin/nsrun ./cmd/nsrun
