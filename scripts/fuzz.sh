#!/usr/bin/env bash
# fuzz.sh: runs the cargo-fuzz targets of fuzz/ and keeps a log of the fuzzing done.
#
# Usage:
#   scripts/fuzz.sh TARGET SECONDS [LIBFUZZER-ARG]...
#       Fuzz TARGET (see `cargo +nightly fuzz list`) for SECONDS under nice -n 19, on the
#       corpus fuzz/corpus/TARGET (seeded by fuzz/seeds.py first when it is empty). Appends one
#       line to fuzz/hours.tsv: the date (UTC), the target, the seconds fuzzed, the executions,
#       and "ok" or "crash FILE" (FILE under fuzz/artifacts/TARGET/). The libFuzzer output goes
#       to fuzz/artifacts/TARGET/last-run.log. Exits 1 on a crash.
#   scripts/fuzz.sh all SECONDS [LIBFUZZER-ARG]...
#       Every target in turn, SECONDS each; exits 1 if any crashed.
#   scripts/fuzz.sh cmin TARGET [LIBFUZZER-ARG]...
#       Minimizes fuzz/corpus/TARGET in place (cargo fuzz cmin), keeping inputs that cover new
#       edges (-use_counters=0: hit counts are not features), so the committed corpus stays
#       small.
#
# Needs a nightly toolchain and cargo-fuzz (cargo install cargo-fuzz). Replay a crash with
# `cargo +nightly fuzz run TARGET FILE`.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
hours=fuzz/hours.tsv

usage() {
    sed -n '3,18p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# The libFuzzer arguments every run of TARGET gets.
default_args() {
    case "$1" in
        # Past the 64 KiB max frame size the wire targets use.
        frame_decode | batch_parse | roundtrip) echo "-max_len=70000" ;;
        *) echo "" ;;
    esac
}

# The first line of $2 matching the extended regex $1, after the match's prefix $3 (sed).
field() {
    local regex=$1 file=$2 expr=$3
    sed -nE "/$regex/{s/$expr/\1/p;q}" "$file"
}

run() {
    local target=$1 seconds=$2
    shift 2
    local corpus=fuzz/corpus/$target artifacts=fuzz/artifacts/$target
    mkdir -p "$corpus" "$artifacts"
    if [ -z "$(ls -A "$corpus")" ]; then
        python3 fuzz/seeds.py >/dev/null
    fi
    # Built first, so that the time measured is fuzzing.
    nice -n 19 cargo +nightly fuzz build "$target"
    local log=$artifacts/last-run.log
    local started status=0
    started=$(date +%s)
    # shellcheck disable=SC2046 # the default arguments are words
    nice -n 19 cargo +nightly fuzz run "$target" "$corpus" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 \
        $(default_args "$target") "$@" >"$log" 2>&1 || status=$?
    local elapsed=$(($(date +%s) - started))
    local fuzzed execs unit result
    fuzzed=$(field '^Done [0-9]+ runs in' "$log" '^Done [0-9]+ runs in ([0-9]+) second.*')
    execs=$(field '^stat::number_of_executed_units:' "$log" '^stat::number_of_executed_units: *([0-9]+).*')
    if [ -z "$execs" ]; then
        execs=$(field '^Done [0-9]+ runs' "$log" '^Done ([0-9]+) runs.*')
    fi
    unit=$(field 'Test unit written to ' "$log" '.*Test unit written to (.*)$')
    if [ "$status" -eq 0 ]; then
        result=ok
    elif [ -n "$unit" ]; then
        result="crash ${unit#"$root"/}"
    else
        result="error $status (see $log)"
    fi
    if [ ! -f "$hours" ]; then
        printf 'date\ttarget\tseconds\texecutions\tresult\n' >"$hours"
    fi
    printf '%s\t%s\t%s\t%s\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$target" \
        "${fuzzed:-$elapsed}" "${execs:--}" "$result" >>"$hours"
    tail -n 3 "$log"
    echo "$target: $result (${fuzzed:-$elapsed} s, ${execs:--} executions; log in $log)"
    [ "$status" -eq 0 ]
}

[ $# -ge 2 ] || usage
case "$1" in
    cmin)
        target=$2
        shift 2
        nice -n 19 cargo +nightly fuzz cmin "$target" "fuzz/corpus/$target" -- \
            -use_counters=0 -rss_limit_mb=2048 "$@"
        ;;
    all)
        seconds=$2
        shift 2
        failed=0
        for target in $(cargo +nightly fuzz list); do
            run "$target" "$seconds" "$@" || failed=1
        done
        exit "$failed"
        ;;
    *)
        target=$1 seconds=$2
        shift 2
        case "$seconds" in
            '' | *[!0-9]*) usage ;;
        esac
        run "$target" "$seconds" "$@"
        ;;
esac
