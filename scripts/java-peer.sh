#!/usr/bin/env bash
# java-peer.sh: builds the Java client peer of the interop tests (tests/interop_java.rs,
# tests/interop_txn.rs): tests/apache-pulsar/src/main/java/pulsarwire/*.java compiled with
# javac against the Apache Pulsar classpath that `scripts/apache-pulsar.sh install` cached.
# Offline and idempotent: it compiles only when a source is newer than the last build (a no-op
# takes milliseconds).
#
# Usage:
#   scripts/java-peer.sh build    compile if needed; prints PEER_CLASSES= and
#                                 PULSAR_CLASSPATH_FILE= (the peer runs with
#                                 java -cp PEER_CLASSES:<classpath> pulsarwire.JavaPeer)
#
# Environment: PULSAR_WIRE_CACHE as for apache-pulsar.sh (default tests/apache-pulsar/target).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROJECT="$ROOT/tests/apache-pulsar"
SRC="$PROJECT/src/main/java"
CACHE="${PULSAR_WIRE_CACHE:-$PROJECT/target}"
CP_FILE="$CACHE/pulsar-classpath.txt"
CLASSES="$CACHE/peer-classes"
STAMP="$CLASSES/.built"

log() { printf 'java-peer: %s\n' "$*" >&2; }
fail() { log "error: $*"; exit 1; }

cmd_build() {
    command -v javac >/dev/null 2>&1 || fail "javac not found on PATH (a JDK 17+ is needed)"
    [[ -s $CP_FILE ]] || fail "no $CP_FILE: run scripts/apache-pulsar.sh install first"
    local -a sources
    mapfile -t sources < <(find "$SRC" -name '*.java' | sort)
    [[ ${#sources[@]} -gt 0 ]] || fail "no Java sources under $SRC"
    local stale=false src
    if [[ ! -f $STAMP || $CP_FILE -nt $STAMP ]]; then
        stale=true
    else
        for src in "${sources[@]}"; do
            [[ $src -nt $STAMP ]] && { stale=true; break; }
        done
    fi
    if [[ $stale == true ]]; then
        log "compiling ${#sources[@]} Java sources"
        rm -rf "$CLASSES.tmp"
        mkdir -p "$CLASSES.tmp"
        javac --release 17 -Xlint:all -Xlint:-options -Werror -encoding UTF-8 \
            -cp "$(<"$CP_FILE")" -d "$CLASSES.tmp" "${sources[@]}"
        touch "$CLASSES.tmp/.built"
        rm -rf "$CLASSES"
        mv "$CLASSES.tmp" "$CLASSES"
    fi
    printf 'PEER_CLASSES=%s\nPULSAR_CLASSPATH_FILE=%s\n' "$CLASSES" "$CP_FILE"
}

case "${1:-}" in
    build) cmd_build ;;
    *) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
