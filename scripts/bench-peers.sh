#!/usr/bin/env bash
# pulsar-wire beside the benchmark harness's clients (and, on Apache Pulsar, the Java client's
# pulsar-perf), every client on the same work against one local broker.
#
# BROKER=lite (the default): one pulsar-lite from the harness:
# - latency at the same fixed rate: every client sends the same paced load (`--rate`), and the
#   table compares p50/p99/p99.9. compare.sh only runs saturating loads, where latency is mostly
#   max-pending / throughput; at a fixed rate below every client's maximum, the latency is the
#   client's own path plus the broker;
# - throughput in the produce scenarios compare.sh does not run (RATES=0 SCENARIOS="f g h i").
#
# BROKER=apache: one Apache Pulsar standalone (scripts/apache-pulsar.sh start, in the run's
# directory; stopped at exit, on errors and ^C too), and the clients pulsar-perf (the Java
# client, scripts/pulsar-perf.sh), official-c, pulsar-rs and pulsar-wire:
# - produce (b, c, d, T, P): pulsar-perf gets `produce -u URL -r RATE -s SIZE -o 1000 -time SECS`
#   and, batching on, `-b 10 -bm 1000 -bb 131072` (the harness's batch limits: 1000 messages,
#   128 KiB, 10 ms), batching off `-db`; the others the perf contract's flags (--rate, --size,
#   --duration, --batching, --max-pending 1000);
# - consume (e): the harness's official-c fills a topic with CONSUME_MSGS 1 KiB messages, then
#   every client drains it on its own subscription: pulsar-perf `consume -st Shared -sp Earliest
#   -ss SUB -m N -time CONSUME_TIMEOUT`, the others `--expect N --duration CONSUME_TIMEOUT`;
# - T: one client, 1,000 topics (TOPICS), one producer each, named TOPIC-0..TOPIC-999:
#   pulsar-perf `-t 1000`, pulsar-wire `--topics 1000` (skipped, with a row saying so, when the
#   binary has no --topics); the harness's peers drive one topic only;
# - P: one 16-partition topic (PARTITIONS), created before each run with curl on the admin API
#   (PUT .../partitions) the same way for every client; every client produces to it through its
#   partitioned producer (1000 pending per partition);
# - pulsar-perf's two final lines ("Aggregated throughput stats --- N records sent --- R msg/s
#   --- T Mbit/s" and "Aggregated latency stats --- ... med: .. 99pct: .. 99.9pct: .. Max: ..",
#   in ms) are parsed into the JSON fields of the others (msgs/s, MB/s, p50/p99/p99.9/max).
#   Where the Maven artifact pulsar-testclient cannot be resolved, scripts/pulsar-perf.sh runs
#   its fallback on the same Java client (PerfClient.java: the same options, the same two
#   lines) and the table names the client `java (pulsar-perf fallback)`;
# - every run's topic is fresh, and deleted (force) after the run.
#
# Usage:
#   BENCH_DIR=<harness directory, after its setup.sh> \
#   PULSAR_WIRE_BIN=target/release/pulsar-wire scripts/bench-peers.sh [SECS]
#   BROKER=apache BENCH_DIR=... PULSAR_WIRE_BIN=... scripts/bench-peers.sh [SECS]
# Env:
#   BROKER     lite (default) or apache
#   RATES      msgs/s to run at, 0 for as fast as it goes (default "2000 20000 50000"; apache: "0")
#   SCENARIOS  lite default "b c", apache default "b c d e T P"; as compare.sh: a: 1 KiB
#              non-persistent batching on, b: 1 KiB persistent batching on, c: 1 KiB persistent
#              batching off, d: 100 B persistent batching on, e: drain a backlog (apache only);
#              beyond it: f: 100 B non-persistent batching on, g: 1 KiB non-persistent batching
#              off, h: 100 B persistent batching off, i: 100 B non-persistent batching off;
#              T: 1 KiB batched on TOPICS topics, P: 1 KiB batched on a PARTITIONS-partition
#              topic (T and P: apache only)
#   CLIENTS    lite default "official-c pulsar-rs pulsar-wire" (official-py also works, at low
#              rates); apache default "pulsar-perf official-c pulsar-rs pulsar-wire"
#   ROUNDS     rounds per cell, client order rotating (default 2); each cell is the median
#   CONSUME_MSGS, CONSUME_TIMEOUT   backlog of e (default 200000) and its limit in s (default 60)
#   TOPICS, PARTITIONS              T's topics (default 1000), P's partitions (default 16)
# Output: a Markdown table on stdout (per-round values beside each median; then pulsar-wire's
# throughput and client CPU over each peer's); every run's command, output, /usr/bin/time and
# JSON, the broker's log and the table in a temporary directory whose path is printed on stderr.
# Client CPU: user+sys of the client process over its wall time (as compare.sh); broker CPU: the
# broker process's utime+stime during the run over the same wall time (1.00 = one core).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECS=${1:-10}
BROKER=${BROKER:-lite}
ROUNDS=${ROUNDS:-2}
CONSUME_MSGS=${CONSUME_MSGS:-200000}
CONSUME_TIMEOUT=${CONSUME_TIMEOUT:-60}
TOPICS=${TOPICS:-1000}
PARTITIONS=${PARTITIONS:-16}
case "$BROKER" in
    lite)
        RATES=${RATES:-"2000 20000 50000"}
        SCENARIOS=${SCENARIOS:-"b c"}
        CLIENTS=${CLIENTS:-"official-c pulsar-rs pulsar-wire"}
        ;;
    apache)
        RATES=${RATES:-"0"}
        SCENARIOS=${SCENARIOS:-"b c d e T P"}
        CLIENTS=${CLIENTS:-"pulsar-perf official-c pulsar-rs pulsar-wire"}
        ;;
    *) echo "bench-peers.sh: BROKER must be lite or apache, got '$BROKER'" >&2; exit 1 ;;
esac

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
for v in ROUNDS CONSUME_MSGS CONSUME_TIMEOUT TOPICS PARTITIONS; do
    [[ "${!v}" =~ ^[0-9]+$ ]] && [ "${!v}" -gt 0 ] || die "$v must be a positive whole number, got '${!v}'"
done
for s in $SCENARIOS; do
    case "$BROKER:$s" in
        *:[abcdfghi] | apache:[eTP]) ;;
        lite:[eTP]) die "scenario '$s' runs with BROKER=apache only (compare.sh runs e on pulsar-lite)" ;;
        *) die "unknown scenario '$s' (a-d, f-i; apache also e, T, P)" ;;
    esac
done
for c in $CLIENTS; do
    case "$BROKER:$c" in
        *:official-c | *:pulsar-rs | *:pulsar-wire | *:official-py | apache:pulsar-perf) ;;
        *) die "unknown client '$c' for BROKER=$BROKER" ;;
    esac
done
command -v curl >/dev/null || [ "$BROKER" = lite ] || die "BROKER=apache needs curl (the admin API)"

OUT=$(mktemp -d -t pw-bench-peers.XXXXXX)
DB_DIR=$OUT/db
APACHE_DIR=$OUT/apache
RAW=$OUT/raw.jsonl
: > "$RAW"
BROKER_PID=""
CHILD_PID=""
APACHE_STARTED=""
cleanup() {
    [ -n "$CHILD_PID" ] && kill "$CHILD_PID" 2>/dev/null && wait "$CHILD_PID" 2>/dev/null
    if [ -n "$APACHE_STARTED" ]; then
        "$ROOT/scripts/apache-pulsar.sh" stop "$APACHE_DIR" >/dev/null 2>>"$OUT/apache-stop.err"
        [ -f "$APACHE_DIR/broker.log" ] && cp "$APACHE_DIR/broker.log" "$OUT/broker.log" 2>/dev/null
        rm -rf "$APACHE_DIR"
    elif [ -n "$BROKER_PID" ]; then
        kill "$BROKER_PID" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$BROKER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$BROKER_PID" 2>/dev/null
        wait "$BROKER_PID" 2>/dev/null
    fi
    rm -rf "$DB_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

HTTP_URL=""
if [ "$BROKER" = apache ]; then
    APACHE_STARTED=1
    echo "starting Apache Pulsar standalone in $APACHE_DIR (log: $OUT/apache-start.err)" >&2
    "$ROOT/scripts/apache-pulsar.sh" start "$APACHE_DIR" > "$OUT/apache.env" 2> "$OUT/apache-start.err" \
        || die "Apache Pulsar did not start; see $OUT/apache-start.err"
    URL=$(sed -n 's/^PULSAR_URL=//p' "$OUT/apache.env")
    HTTP_URL=$(sed -n 's/^PULSAR_HTTP_URL=//p' "$OUT/apache.env")
    BROKER_PID=$(cat "$APACHE_DIR/broker.pid" 2>/dev/null)
    [ -n "$URL" ] && [ -n "$HTTP_URL" ] && [ -n "$BROKER_PID" ] || die "no PULSAR_URL/PULSAR_HTTP_URL/broker.pid from apache-pulsar.sh"
    BROKER_NAME="Apache Pulsar $(sed -n 's/^apache-pulsar: starting Apache Pulsar \([^ ]*\) .*/\1/p' "$OUT/apache-start.err" | sed -n 1p) standalone"
    PERF_MODE=pulsar-perf
    if [[ " $CLIENTS " == *" pulsar-perf "* ]]; then
        "$ROOT/scripts/pulsar-perf.sh" install > "$OUT/pulsar-perf-install.out" 2> "$OUT/pulsar-perf-install.err" \
            || die "scripts/pulsar-perf.sh install failed; see $OUT/pulsar-perf-install.err"
        PERF_MODE=$(sed -n 's/^PULSAR_PERF=//p' "$OUT/pulsar-perf-install.out")
        echo "pulsar-perf: $PERF_MODE $(sed -n 's/^MISSING_ARTIFACT=/(missing: /p' "$OUT/pulsar-perf-install.out")${PERF_MODE/pulsar-perf/}" >&2
    fi
else
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
    BROKER_NAME="pulsar-lite 0.2.0"
    PERF_MODE=""
fi
echo "broker $BROKER_NAME on $URL; runs in $OUT; $SECS s per run, rates: $RATES, scenarios: $SCENARIOS, clients: $CLIENTS" >&2
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
echo "load average at the start: $LOAD_START" >&2

PW_TOPICS=0
"$PW" perf produce --help 2>/dev/null | grep -q -- '--topics' && PW_TOPICS=1

broker_ticks() {  # utime+stime of the broker in clock ticks
    local s; s=$(cat "/proc/$BROKER_PID/stat" 2>/dev/null) || { echo 0; return; }
    s=${s##*) }; set -- $s; echo $(( ${12} + ${13} ))
}
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)

topic_path() {  # persistent://public/default/X -> persistent/public/default/X
    local t=${1/:\/\//\/}
    printf '%s\n' "$t"
}
admin() {  # METHOD PATH [BODY]: the HTTP status on stdout
    local -a body=()
    [ $# -ge 3 ] && body=(-H 'Content-Type: application/json' --data "$3")
    curl -s -o /dev/null -w '%{http_code}' --max-time 60 -X "$1" "${body[@]}" "$HTTP_URL/admin/v2/$2"
}
delete_topics() {  # TOPIC COUNT(0: one topic) PARTITIONED(0|1)
    [ "$BROKER" = apache ] || return 0
    local t=$1 n=$2 p=$3 i
    if [ "$p" = 1 ]; then
        admin DELETE "$(topic_path "$t")/partitions?force=true" > /dev/null
    elif [ "$n" = 0 ]; then
        admin DELETE "$(topic_path "$t")?force=true" > /dev/null
    else
        for ((i = 0; i < n; i++)); do echo "$HTTP_URL/admin/v2/$(topic_path "$t-$i")?force=true"; done \
            | xargs -P 4 -n 20 curl -s -o /dev/null --max-time 60 -X DELETE
    fi
}

# cmd_for CLIENT OP TOPIC SIZE RATE BATCHING EXTRA -> the command, one word per line.
# OP: produce | consume; EXTRA: topics=N | sub=S.
cmd_for() {
    local client=$1 op=$2 topic=$3 size=$4 rate=$5 batching=$6 extra=$7
    local ntopics=1 sub=""
    case "$extra" in topics=*) ntopics=${extra#topics=} ;; sub=*) sub=${extra#sub=} ;; esac
    case "$client:$op" in
        pulsar-perf:produce)
            printf '%s\n' "$ROOT/scripts/pulsar-perf.sh" produce -u "$URL" -r "$rate" -s "$size" -o 1000 \
                -time "$SECS"
            if [ "$batching" = true ]; then printf '%s\n' -b 10 -bm 1000 -bb 131072; else echo -db; fi
            [ "$ntopics" -gt 1 ] && printf '%s\n' -t "$ntopics"
            echo "$topic"
            ;;
        pulsar-perf:consume)
            printf '%s\n' "$ROOT/scripts/pulsar-perf.sh" consume -u "$URL" -st Shared -sp Earliest \
                -ss "$sub" -m "$CONSUME_MSGS" -time "$CONSUME_TIMEOUT" "$topic"
            ;;
        *:produce)
            case "$client" in
                official-py) printf '%s\n' "$PY" "$BENCH_DIR/peer-official.py" perf-produce ;;
                official-c) printf '%s\n' "$OC" perf-produce ;;
                pulsar-rs) printf '%s\n' "$RS" perf-produce ;;
                pulsar-wire) printf '%s\n' "$PW" perf produce --no-progress ;;
            esac
            printf '%s\n' --url "$URL" --topic "$topic" --size "$size" --duration "$SECS" --rate "$rate" \
                --batching "$batching" --max-pending 1000
            [ "$ntopics" -gt 1 ] && printf '%s\n' --topics "$ntopics"
            ;;
        *:consume)
            case "$client" in
                official-py) printf '%s\n' "$PY" "$BENCH_DIR/peer-official.py" perf-consume ;;
                official-c) printf '%s\n' "$OC" perf-consume ;;
                pulsar-rs) printf '%s\n' "$RS" perf-consume ;;
                pulsar-wire) printf '%s\n' "$PW" perf consume --no-progress ;;
            esac
            printf '%s\n' --url "$URL" --topic "$topic" --subscription "$sub" --duration "$CONSUME_TIMEOUT" \
                --expect "$CONSUME_MSGS"
            ;;
    esac
}

# record LABEL SCEN RATE ROUND CLIENT RC SIZE WALL BROKER_CPU_SECS [NOTE]: one JSON line in RAW.
record() {
    "$PY" - "$RAW" "$OUT/$1" "$2" "$3" "$4" "$5" "$6" "$7" "$8" "$9" "${10:-}" <<'EOF'
import json, re, sys
raw, base, scen, rate, rnd, client, rc, size, wall, bcpu, note = sys.argv[1:]
rec = {"scenario": scen, "rate": int(rate), "round": int(rnd), "client": client, "rc": int(rc)}
if note:
    rec["note"] = note
try:
    u, s_, e = open(base + ".time").read().split()[-3:]
    rec["client_cpu"] = (float(u) + float(s_)) / max(float(e), 1e-9)
except (OSError, ValueError):
    pass
try:
    rec["broker_cpu"] = float(bcpu) / max(float(wall), 1e-9)
except ValueError:
    pass
def read(p):
    try:
        return open(p, errors="replace").read()
    except OSError:
        return ""
out, err = read(base + ".out"), read(base + ".err")
num = r"([0-9][0-9,]*(?:\.[0-9]+)?|NaN)"
def f(x):
    return float(x.replace(",", "")) if x != "NaN" else 0.0
tp = re.findall(r"Aggregated throughput stats --- " + num + r" records (?:sent|received) --- " + num
                + r" msg/s --- " + num + r" (Mbit/s|MB/s)", out + err)
lat = re.findall(r"Aggregated latency stats --- Latency: mean: " + num + r" ms - med: " + num
                 + r" - 95pct: " + num + r" - 99pct: " + num + r" - 99\.9pct: " + num
                 + r" - 99\.99pct: " + num + r" - 99\.999pct: " + num + r" - Max: " + num, out + err)
line = next((l for l in reversed(out.splitlines()) if l.startswith("{")), None)
if client == "pulsar-perf":
    if tp and lat:
        n, r, t, unit = tp[-1]
        l = [f(x) for x in lat[-1]]
        msgs, msgs_per_sec = int(f(n)), f(r)
        rec.update({"msgs": msgs, "msgs_per_sec": msgs_per_sec,
                    # Mbit/s of pulsar-perf: bytes / 2^20 * 8; MB/s here: 10^6 bytes.
                    "mb_per_sec": f(t) * (1 << 20) / (8 if unit == "Mbit/s" else 1) / 1e6,
                    "secs": msgs / msgs_per_sec if msgs_per_sec > 0 else 0.0,
                    "p50_us": l[1] * 1000, "p99_us": l[3] * 1000, "p999_us": l[4] * 1000,
                    "max_us": l[7] * 1000})
        if msgs == 0:
            rec["rc"] = rec["rc"] or 1
elif line:
    try:
        rec.update({k: v for k, v in json.loads(line).items() if k != "client"})
    except ValueError:
        pass
open(raw, "a").write(json.dumps(rec) + "\n")
EOF
}

# run_one LABEL SCEN RATE ROUND CLIENT SIZE LIMIT CMD...
run_one() {
    local label=$1 scen=$2 rate=$3 round=$4 client=$5 size=$6 limit=$7; shift 7
    echo "  $label" >&2
    printf '%q ' "$@" > "$OUT/$label.cmd"; echo >> "$OUT/$label.cmd"
    local -a wrap=(timeout -k 5 "$limit")
    [ -x /usr/bin/time ] && wrap+=(/usr/bin/time -f '%U %S %e' -o "$OUT/$label.time")
    local b0 b1 t0 t1 rc
    b0=$(broker_ticks); t0=$(date +%s.%N)
    "${wrap[@]}" "$@" > "$OUT/$label.out" 2> "$OUT/$label.err" &
    CHILD_PID=$!
    wait "$CHILD_PID"
    rc=$?
    CHILD_PID=""
    t1=$(date +%s.%N); b1=$(broker_ticks)
    record "$label" "$scen" "$rate" "$round" "$client" "$rc" "$size" \
        "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}')" \
        "$(awk -v a="$b0" -v b="$b1" -v h="$CLK_TCK" 'BEGIN{printf "%.3f", (b-a)/h}')"
}

read -r -a CLIENT_LIST <<< "$CLIENTS"
n=${#CLIENT_LIST[@]}
PRODUCE_LIMIT=$((SECS + 60))

prefill_e() {  # the backlog of e, written once by official-c; sets E_TOPIC
    E_TOPIC="persistent://public/default/bench-e-backlog-$$"
    echo "  e: filling $E_TOPIC with $CONSUME_MSGS x 1 KiB (official-c)" >&2
    "$OC" perf-produce --url "$URL" --topic "$E_TOPIC" --size 1024 --duration 600 --rate 0 \
        --batching true --max-pending 1000 --count "$CONSUME_MSGS" > "$OUT/e-prefill.out" 2> "$OUT/e-prefill.err"
    local filled
    filled=$("$PY" -c 'import json,sys
ls=[l for l in open(sys.argv[1]) if l.startswith("{")]
print(json.loads(ls[-1])["msgs"] if ls else 0)' "$OUT/e-prefill.out" 2>/dev/null)
    [ "${filled:-0}" = "$CONSUME_MSGS" ] || echo "bench-peers.sh: warning: the prefill wrote ${filled:-0} of $CONSUME_MSGS" >&2
}

for scen in $SCENARIOS; do
    ntopics=0; partitioned=0; op=produce
    case "$scen" in
        a) size=1024; domain=non-persistent; batching=true ;;
        b) size=1024; domain=persistent; batching=true ;;
        c) size=1024; domain=persistent; batching=false ;;
        d) size=100; domain=persistent; batching=true ;;
        e) size=1024; domain=persistent; batching=true; op=consume ;;
        f) size=100; domain=non-persistent; batching=true ;;
        g) size=1024; domain=non-persistent; batching=false ;;
        h) size=100; domain=persistent; batching=false ;;
        i) size=100; domain=non-persistent; batching=false ;;
        T) size=1024; domain=persistent; batching=true; ntopics=$TOPICS ;;
        P) size=1024; domain=persistent; batching=true; partitioned=1 ;;
    esac
    rates=$RATES
    if [ "$op" = consume ]; then rates=0; prefill_e; fi
    for rate in $rates; do
        for ((r = 1; r <= ROUNDS; r++)); do
            for ((i = 0; i < n; i++)); do
                client=${CLIENT_LIST[$(( (i + r - 1) % n ))]}
                label="$scen-$rate-r$r-$client"
                if [ "$ntopics" -gt 0 ]; then
                    case "$client" in
                        pulsar-perf) ;;
                        pulsar-wire)
                            if [ "$PW_TOPICS" = 0 ]; then
                                [ "$r" = 1 ] && record "$label" "$scen" "$rate" "$r" "$client" 2 "$size" 1 0 \
                                    "this pulsar-wire has no perf produce --topics"
                                continue
                            fi
                            ;;
                        *) continue ;;  # one topic per process only
                    esac
                fi
                topic="$domain://public/default/bench-$label-$$"
                if [ "$op" = consume ]; then
                    topic=$E_TOPIC
                    mapfile -t cmd < <(cmd_for "$client" consume "$topic" "$size" 0 true "sub=sub-$label")
                    run_one "$label" "$scen" 0 "$r" "$client" "$size" $((CONSUME_TIMEOUT + 60)) "${cmd[@]}"
                    continue
                fi
                if [ "$partitioned" = 1 ]; then
                    code=$(admin PUT "$(topic_path "$topic")/partitions" "$PARTITIONS")
                    [ "$code" = 204 ] || echo "bench-peers.sh: warning: creating $topic with $PARTITIONS partitions: HTTP $code" >&2
                fi
                extra=""; [ "$ntopics" -gt 0 ] && extra="topics=$ntopics"
                mapfile -t cmd < <(cmd_for "$client" produce "$topic" "$size" "$rate" "$batching" "$extra")
                limit=$PRODUCE_LIMIT; [ "$ntopics" -gt 0 ] && limit=$((SECS + 300))
                run_one "$label" "$scen" "$rate" "$r" "$client" "$size" "$limit" "${cmd[@]}"
                delete_topics "$topic" "$ntopics" "$partitioned"
            done
        done
    done
    [ "$op" = consume ] && delete_topics "$E_TOPIC" 0 0
done

LOAD_END=$(cut -d" " -f1-3 /proc/loadavg)
echo "load average at the end: $LOAD_END" >&2
PERF_LABEL=pulsar-perf
[ "$PERF_MODE" = fallback ] && PERF_LABEL="java (pulsar-perf fallback)"
"$PY" - "$RAW" "$SECS" "$ROUNDS" "$BROKER" "$BROKER_NAME" "$PERF_LABEL" "$TOPICS" "$PARTITIONS" \
    "$CONSUME_MSGS" "$LOAD_START" "$LOAD_END" <<'EOF' | tee "$OUT/table.md"
import json, statistics, sys
raw, secs, rounds, broker, broker_name, perf_label, topics, parts, cmsgs, l0, l1 = sys.argv[1:]
runs = [json.loads(l) for l in open(raw)]
names = {"a": "1 KiB non-persistent, batching on", "b": "1 KiB persistent, batching on",
         "c": "1 KiB persistent, batching off", "d": "100 B persistent, batching on",
         "e": f"drain a {int(cmsgs):,} x 1 KiB backlog", "f": "100 B non-persistent, batching on",
         "g": "1 KiB non-persistent, batching off", "h": "100 B persistent, batching off",
         "i": "100 B non-persistent, batching off",
         "T": f"1 KiB batched, {int(topics):,} topics", "P": f"1 KiB batched, one {parts}-partition topic"}
def ms(us):
    return f"{us / 1000:.2f} ms" if us is not None else "-"
def cname(c):
    return perf_label if c == "pulsar-perf" else c
cells = {}
for r in runs:
    cells.setdefault((r["scenario"], r["rate"], r["client"]), []).append(r)
med_of = {}
print("| scenario | rate | client | msgs/s | MB/s | p50 | p99 | p99.9 | max | client CPU | broker CPU "
      "| per round: msgs/s, client CPU, p99 |")
print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
for (scen, rate, client), rs in cells.items():
    ok = [r for r in rs if r.get("rc") == 0 and "p99_us" in r and r.get("msgs", 0) > 0]
    label = f"{scen}: {names[scen]}"
    rt = f"{rate:,}" if rate else "max"
    if not ok:
        why = next((r["note"] for r in rs if "note" in r), "FAILED")
        print(f"| {label} | {rt} | {cname(client)} | {why} | | | | | | | | |")
        continue
    med = lambda k: statistics.median(r[k] for r in ok)
    def cpu(k):
        v = [r[k] for r in ok if k in r]
        return statistics.median(v) if v else None
    per = "; ".join(f"{r['msgs_per_sec']:,.0f}, {r.get('client_cpu', 0):.2f}, {ms(r['p99_us'])}" for r in ok)
    if len(ok) < len(rs):
        per += f"; {len(rs) - len(ok)} failed"
    if scen == "e":
        per += "; " + ", ".join(f"{r['msgs']:,} msgs" for r in ok)
    ccpu, bcpu = cpu("client_cpu"), cpu("broker_cpu")
    med_of[(scen, rate, client)] = (med("msgs_per_sec"), ccpu)
    mb = med("mb_per_sec") if all("mb_per_sec" in r for r in ok) else None
    fmt = lambda v, f: f.format(v) if v is not None else "-"
    print(f"| {label} | {rt} | {cname(client)} | {med('msgs_per_sec'):,.0f} | {fmt(mb, '{:.1f}')} | "
          f"{ms(med('p50_us'))} | {ms(med('p99_us'))} | {ms(med('p999_us'))} | {ms(med('max_us'))} | "
          f"{fmt(ccpu, '{:.2f}')} | {fmt(bcpu, '{:.2f}')} | {per} |")
print()
print("pulsar-wire over each peer (median over median): throughput ratio (above 1: pulsar-wire faster), "
      "client CPU ratio (below 1: pulsar-wire uses less).")
print()
print("| scenario | rate | peer | msgs/s ratio | client CPU ratio |")
print("|---|---:|---|---:|---:|")
for (scen, rate, client), (mps, ccpu) in med_of.items():
    if client == "pulsar-wire" or (scen, rate, "pulsar-wire") not in med_of:
        continue
    pw_mps, pw_cpu = med_of[(scen, rate, "pulsar-wire")]
    tr = f"{pw_mps / mps:.2f}x" if mps > 0 else "-"
    cr = f"{pw_cpu / ccpu:.2f}x" if pw_cpu is not None and ccpu else "-"
    print(f"| {scen} | {f'{rate:,}' if rate else 'max'} | {cname(client)} | {tr} | {cr} |")
print()
print(f"{secs} s per produce run, {rounds} rounds (medians), client order rotating; one {broker_name} on "
      "127.0.0.1, up to 1000 sends in flight (per partition, per topic); produce latency from the send call "
      "to the receipt, consume latency from the publish time to the receipt (ms precision); client CPU: "
      "user+sys cores of the client process over its wall time (a JVM's start included for the Java "
      "client); broker CPU: the broker process's cores over the run. Load average at the start "
      f"{l0}, at the end {l1}.")
EOF
echo "table and runs in $OUT" >&2
