#!/usr/bin/env bash
# The kill -9 consume soak: the fault tests' kill -9 consume stream on every subscription
# type, RUNS times in a row with MESSAGES messages each, each test against a private
# pulsar-lite (release build). Prints each test's line (messages, duplicates, time to the
# first new message after the restart, total time); stops at the first run that fails.
# Usage: scripts/fault-soak.sh [RUNS [MESSAGES]]      (default: 20 runs of 100,000)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
RUNS=${1:-20}
MESSAGES=${2:-100000}
if [ -z "${PULSAR_LITE_BIN:-}" ]; then
    PULSAR_LITE_BIN=$(scripts/setup-broker.sh)
    export PULSAR_LITE_BIN
fi
export PULSAR_WIRE_FAULT_MESSAGES=$MESSAGES
cargo test --release --test faults --no-run
for run in $(seq 1 "$RUNS"); do
    echo "== run $run of $RUNS: $MESSAGES messages per subscription type"
    log=$(mktemp)
    # One test at a time: each kills and restarts a broker of its own.
    if ! cargo test --release --test faults kill_9_during_a -- --test-threads=1 --nocapture \
        >"$log" 2>&1; then
        grep -E -A2 'consume fault|panicked|FAILED' "$log" || tail -n 40 "$log"
        kept="${CARGO_TARGET_DIR:-target}/fault-soak-run-$run.log"
        mv "$log" "$kept"
        echo "run $run failed; its whole output (set RUST_LOG=pulsar_wire=info for the client's log): $kept" >&2
        exit 1
    fi
    grep -oE 'consume fault.*' "$log" || true
    rm -f "$log"
done
echo "$RUNS runs passed"
