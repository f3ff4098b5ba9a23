#!/usr/bin/env bash
# Instructions per check_resources call, counted by callgrind (deterministic
# on a shared machine): cerbos_client::Client against a raw tonic call on the
# same generated stubs, both against an in-process stub PDP, for 1 and 10
# resources. Each count is (total for N calls - total for M calls) / (N - M),
# so startup and warm-up are excluded.
#
# Two tables: with the stub in the measured process (a current-thread
# runtime: the count is deterministic, and includes the stub's own cost),
# and with the stub in a child process that callgrind does not trace (only
# the client side is counted; wake-up patterns can move it by ~1%).
#
#   benches/callgrind.sh            # N=400, M=200
#   N=1000 M=500 benches/callgrind.sh
#   benches/callgrind.sh layer      # the tower layer instead (N=2000, M=1000)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = layer ]; then
    # Instructions per request through a bare service_fn and through the
    # same service behind the layer (stub PDP in process, its answer
    # included): the difference is the layer's cost.
    N=${N:-2000}
    M=${M:-1000}
    cargo build --quiet --release -p cerbos-benches --bin callgrind_layer
    count() {
        valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/callgrind_layer "$@" 2>&1 |
            sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
    }
    bare=$(( ($(count bare "$N") - $(count bare "$M")) / (N - M) ))
    layered=$(( ($(count layered "$N") - $(count layered "$M")) / (N - M) ))
    printf 'bare %s, layered %s, layer %s instructions per request\n' "$bare" "$layered" $((layered - bare))
    exit 0
fi

N=${N:-400}
M=${M:-200}
cargo build --quiet --release -p cerbos-benches --bin callgrind_client
bin=target/release/callgrind_client

# Total instructions of one run (callgrind's "Collected" line).
total() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$@" 2>&1 |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}

per_call() {
    local mode=$1 resources=$2 stub=$3 long short
    long=$(total "$mode" "$resources" "$N" "$stub")
    short=$(total "$mode" "$resources" "$M" "$stub")
    echo $(((long - short) / (N - M)))
}

for stub in in-process separate; do
    echo "stub: $stub (instructions per call)"
    printf '%-10s %12s %12s %7s\n' resources client raw ratio
    for resources in 1 10; do
        client=$(per_call client "$resources" "$stub")
        raw=$(per_call raw "$resources" "$stub")
        ratio=$(awk -v c="$client" -v r="$raw" 'BEGIN { printf "%.3f", c / r }')
        printf '%-10s %12s %12s %7s\n' "$resources" "$client" "$raw" "$ratio"
    done
done
