#!/usr/bin/env bash
# Runs the quickstart example (examples/quickstart.rs), the official Python SDK guide's flow.
#
#   scripts/quickstart.sh                                    # against a local broker (below)
#   PULSAR_URL=pulsar://localhost:6650 scripts/quickstart.sh  # against that broker
#
# Without PULSAR_URL it installs the local broker (pulsar-lite) if needed with
# scripts/setup-broker.sh, starts it on a free loopback port with a fresh database in a temporary
# directory, runs the example against it, then stops it and removes the directory.
# PULSAR_TOKEN and PULSAR_TOPIC are passed on to the example.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

if [ -n "${PULSAR_URL:-}" ]; then
    echo "quickstart: using the broker at $PULSAR_URL" >&2
    exec cargo run --quiet --example quickstart
fi

# Build first, so that the broker does not sit idle while the example compiles.
cargo build --quiet --example quickstart

if [ -n "${PULSAR_LITE_BIN:-}" ] && [ -x "$PULSAR_LITE_BIN" ]; then
    BROKER_BIN=$PULSAR_LITE_BIN
else
    BROKER_BIN=$(scripts/setup-broker.sh)
fi

DIR=$(mktemp -d "${TMPDIR:-/tmp}/pulsar-wire-quickstart.XXXXXX")
BROKER_PID=
stop_broker() {
    if [ -n "$BROKER_PID" ] && kill -0 "$BROKER_PID" 2>/dev/null; then
        kill "$BROKER_PID" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$BROKER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$BROKER_PID" 2>/dev/null || true
        wait "$BROKER_PID" 2>/dev/null || true
    fi
    rm -rf "$DIR"
}
trap stop_broker EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Metrics off: otherwise pulsar-lite also binds 0.0.0.0:8080.
cat >"$DIR/broker.toml" <<'TOML'
default_partitions = 0
max_message_size_bytes = 5242880
keep_alive_interval_secs = 30
[metrics]
enabled = false
TOML

# A loopback port nobody listens on right now.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Whether something accepts TCP connections on 127.0.0.1:$1.
accepts() {
    python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$1" 2>/dev/null
}

# Starts the broker and waits until it accepts connections; another process may take the port
# between the probe and the broker's bind, so a few ports are tried.
started=
for _attempt in 1 2 3 4 5; do
    PORT=$(free_port)
    : >"$DIR/broker.log"
    "$BROKER_BIN" --addr "127.0.0.1:$PORT" --db-path "$DIR/db" --config "$DIR/broker.toml" \
        --log-level info >"$DIR/broker.log" 2>&1 </dev/null &
    BROKER_PID=$!
    for _ in $(seq 300); do
        if ! kill -0 "$BROKER_PID" 2>/dev/null; then
            break
        fi
        if grep -q "listening on" "$DIR/broker.log" && accepts "$PORT"; then
            started=yes
            break
        fi
        sleep 0.1
    done
    [ -n "$started" ] && break
    if kill -0 "$BROKER_PID" 2>/dev/null; then
        break # running but not accepting within 30 s: give up
    fi
    wait "$BROKER_PID" 2>/dev/null || true
    BROKER_PID=
    grep -qi "in use" "$DIR/broker.log" || break
done
if [ -z "$started" ]; then
    echo "quickstart: the local broker ($BROKER_BIN) did not start; its log:" >&2
    tail -n 40 "$DIR/broker.log" >&2 || true
    exit 1
fi

export PULSAR_URL="pulsar://127.0.0.1:$PORT"
echo "quickstart: local pulsar-lite broker at $PULSAR_URL" >&2
cargo run --quiet --example quickstart
