#!/usr/bin/env bash
# Builds nsrun as released into bin/: bin/nsrun with cgo, so that 'nsrun
# exec NS CMD' takes the C fast path of netns/fastexec and starts as
# quickly as 'ip netns exec' (scripts/install-deps.sh installs the C
# compiler; CGO_ENABLED=0 go build ./cmd/nsrun gives the same nsrun
# without it), and bin/nsrun-exec, the helper that runs 'nsrun exec' for
# users a spec grants it to (the one program install.sh --exec-capability
# gives capabilities): without cgo, no C library, no loader.
set -euo pipefail
cd "$(dirname "$0")/.."
CGO_ENABLED=1 go build -o bin/nsrun ./cmd/nsrun
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o bin/nsrun-exec ./cmd/nsrun-exec
