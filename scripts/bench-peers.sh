#!/usr/bin/env bash
# pulsar-wire beside the benchmark harness's clients, on one local pulsar-lite:
# - latency at the same fixed rate: every client sends the same paced load (`--rate`), and the
#   table compares p50/p99/p99.9. compare.sh only runs saturating loads, where latency is mostly
#   max-pending / throughput; at a fixed rate below every client's maximum, the latency is the
#   client's own path plus the broker;
# - throughput in the produce scenarios compare.sh does not run (RATES=0 SCENARIOS="f g h i").
#
# Usage:
#   BENCH_DIR=<harness directory, after its setup.sh> \
#   PULSAR_WIRE_BIN=target/release/pulsar-wire scripts/bench-peers.sh [SECS]
# Env:
#   RATES      msgs/s to run at, 0 for as fast as it goes (default "2000 20000 50000")
#   SCENARIOS  default "b c"; as compare.sh: a: 1 KiB non-persistent batching on,
#              b: 1 KiB persistent batching on, c: 1 KiB persistent batching off,
#              d: 100 B persistent batching on; beyond it: f: 100 B non-persistent batching on,
#              g: 1 KiB non-persistent batching off, h: 100 B persistent batching off,
#              i: 100 B non-persistent batching off
#   CLIENTS    default "official-c pulsar-rs pulsar-wire" (official-py also works, at low rates)
#   ROUNDS     rounds per cell, client order rotating (default 2); each cell is the median
# Output: a Markdown table on stdout; every run's JSON and stderr in a temporary directory
# whose path is printed on stderr.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECS=${1:-10}
RATES=${RATES:-"2000 20000 50000"}
SCENARIOS=${SCENARIOS:-"b c"}
CLIENTS=${CLIENTS:-"official-c pulsar-rs pulsar-wire"}
ROUNDS=${ROUNDS:-2}

die() { echo "bench-peers.sh: $*" >&2; exit 1; }
[ -n "${BENCH_DIR:-}" ] || die "set BENCH_DIR to the benchmark harness directory (after its setup.sh)"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd) || die "BENCH_DIR does not exist"
PY=$BENCH_DIR/.venv/bin/python
RS=$BENCH_DIR/.target/release/peer-pulsar-rs
OC=$BENCH_DIR/.target/peer-official-c
BROKER_BIN=$(ls "$BENCH_DIR"/.venv/lib/python3*/site-packages/pulsar_lite/bin/pulsar-lite 2>/dev/null | sed -n 1p)
[ -x "$PY" ] && [ -x "$RS" ] && [ -x "$OC" ] && [ -n "$BROKER_BIN" ] || die "harness not set up: run its setup.sh"
PW=${PULSAR_WIRE_BIN:-$ROOT/target/release/pulsar-wire}
case "$PW" in /*) ;; *) PW=$PWD/$PW ;; esac
[ -x "$PW" ] || die "no pulsar-wire binary at $PW: cargo build --release --features cli --bin pulsar-wire"
[[ "$SECS" =~ ^[0-9]+$ ]] || die "SECS must be a whole number, got '$SECS'"
for r in $RATES; do [[ "$r" =~ ^[0-9]+$ ]] || die "RATES must be whole numbers, got '$r'"; done

OUT=$(mktemp -d -t pw-bench-peers.XXXXXX)
DB_DIR=$OUT/db
RAW=$OUT/raw.jsonl
: > "$RAW"
BROKER_PID=""
CHILD_PID=""
cleanup() {
    [ -n "$CHILD_PID" ] && kill "$CHILD_PID" 2>/dev/null
    if [ -n "$BROKER_PID" ]; then
        kill "$BROKER_PID" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$BROKER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$BROKER_PID" 2>/dev/null
        wait "$BROKER_PID" 2>/dev/null
    fi
    rm -rf "$DB_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL=pulsar://127.0.0.1:$PORT
mkdir -p "$DB_DIR"
printf '[metrics]\nenabled = false\n' > "$OUT/broker.toml"
"$BROKER_BIN" --config "$OUT/broker.toml" --addr "127.0.0.1:$PORT" --db-path "$DB_DIR/db" \
    --log-level warn > "$OUT/broker.log" 2>&1 &
BROKER_PID=$!
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    kill -0 "$BROKER_PID" 2>/dev/null || die "broker exited at start; see $OUT/broker.log"
    sleep 0.1
done
echo "broker on $URL; runs in $OUT; $SECS s per run, rates: $RATES, scenarios: $SCENARIOS" >&2
echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

cmd_for() {  # CLIENT -> the command prefix, one word per line
    case "$1" in
        official-py) printf '%s\n' "$PY" "$BENCH_DIR/peer-official.py" perf-produce ;;
        official-c) printf '%s\n' "$OC" perf-produce ;;
        pulsar-rs) printf '%s\n' "$RS" perf-produce ;;
        pulsar-wire) printf '%s\n' "$PW" perf produce --no-progress ;;
        *) die "unknown client '$1'" ;;
    esac
}

read -r -a CLIENT_LIST <<< "$CLIENTS"
n=${#CLIENT_LIST[@]}
run=0
for scen in $SCENARIOS; do
    case "$scen" in
        a) size=1024; domain=non-persistent; batching=true ;;
        b) size=1024; domain=persistent; batching=true ;;
        c) size=1024; domain=persistent; batching=false ;;
        d) size=100; domain=persistent; batching=true ;;
        f) size=100; domain=non-persistent; batching=true ;;
        g) size=1024; domain=non-persistent; batching=false ;;
        h) size=100; domain=persistent; batching=false ;;
        i) size=100; domain=non-persistent; batching=false ;;
        *) die "unknown scenario '$scen' (a-d, f-i)" ;;
    esac
    for rate in $RATES; do
        for ((r = 1; r <= ROUNDS; r++)); do
            for ((i = 0; i < n; i++)); do
                client=${CLIENT_LIST[$(( (i + r - 1) % n ))]}
                run=$((run + 1))
                label="$scen-$rate-r$r-$client"
                mapfile -t cmd < <(cmd_for "$client")
                cmd+=(--url "$URL" --topic "$domain://public/default/lat-$label-$$"
                    --size "$size" --duration "$SECS" --rate "$rate" --batching "$batching"
                    --max-pending 1000)
                echo "  $label" >&2
                wrap=(timeout -k 5 $((SECS + 60)))
                [ -x /usr/bin/time ] && wrap+=(/usr/bin/time -f '%U %S %e' -o "$OUT/$label.time")
                "${wrap[@]}" "${cmd[@]}" > "$OUT/$label.out" 2> "$OUT/$label.err" &
                CHILD_PID=$!
                wait "$CHILD_PID"
                rc=$?
                CHILD_PID=""
                "$PY" - "$RAW" "$OUT/$label" "$scen" "$rate" "$r" "$client" "$rc" <<'EOF'
import json, os, sys
raw, base, scen, rate, rnd, client, rc = sys.argv[1:]
line = next((l for l in reversed(open(base + ".out").read().splitlines()) if l.startswith("{")), None)
rec = {"scenario": scen, "rate": int(rate), "round": int(rnd), "client": client, "rc": int(rc)}
try:
    u, s_, e = open(base + ".time").read().split()[-3:]
    rec["client_cpu"] = (float(u) + float(s_)) / max(float(e), 1e-9)
except (OSError, ValueError):
    pass
if line:
    rec.update({k: v for k, v in json.loads(line).items() if k != "client"})
open(raw, "a").write(json.dumps(rec) + "\n")
EOF
            done
        done
    done
done

echo "load average at the end: $(cut -d" " -f1-3 /proc/loadavg)" >&2
"$PY" - "$RAW" "$SECS" "$ROUNDS" <<'EOF'
import json, statistics, sys
raw, secs, rounds = sys.argv[1], sys.argv[2], sys.argv[3]
runs = [json.loads(l) for l in open(raw)]
names = {"a": "1 KiB non-persistent, batching on", "b": "1 KiB persistent, batching on",
         "c": "1 KiB persistent, batching off", "d": "100 B persistent, batching on",
         "f": "100 B non-persistent, batching on", "g": "1 KiB non-persistent, batching off",
         "h": "100 B persistent, batching off", "i": "100 B non-persistent, batching off"}
def ms(us):
    return f"{us / 1000:.2f} ms" if us is not None else "-"
cells = {}
for r in runs:
    cells.setdefault((r["scenario"], r["rate"], r["client"]), []).append(r)
print(f"| scenario | rate | client | msgs/s | p50 | p99 | p99.9 | max | client CPU | msgs/s, p99 per round |")
print("|---|---:|---|---:|---:|---:|---:|---:|---:|---|")
for (scen, rate, client), rs in cells.items():
    ok = [r for r in rs if r.get("rc") == 0 and "p99_us" in r]
    if not ok:
        print(f"| {scen}: {names[scen]} | {rate or 'max'} | {client} | FAILED | | | | | | |")
        continue
    med = lambda k: statistics.median(r[k] for r in ok)
    per = ", ".join(f"{r['msgs_per_sec']:,.0f} / {ms(r['p99_us'])}" for r in ok)
    cpus = [r["client_cpu"] for r in ok if "client_cpu" in r]
    cpu = f"{statistics.median(cpus):.2f}" if cpus else "-"
    print(f"| {scen}: {names[scen]} | {f'{rate:,}' if rate else 'max'} | {client} | {med('msgs_per_sec'):,.0f} | "
          f"{ms(med('p50_us'))} | {ms(med('p99_us'))} | {ms(med('p999_us'))} | {ms(med('max_us'))} | {cpu} | {per} |")
print()
print(f"{secs} s per run, {rounds} rounds (medians), one pulsar-lite 0.2.0 on 127.0.0.1, "
      "up to 1000 sends in flight; latency from the send call to the receipt; "
      "client CPU: user+sys cores over the run's wall time.")
EOF
