#!/usr/bin/env bash
# pulsar-perf.sh: the Java client's benchmark tool, pulsar-perf, to compare with
# `pulsar-wire perf` on the same broker. No Pulsar tarball: pulsar-perf is the Maven
# artifact org.apache.pulsar:pulsar-testclient (main class
# org.apache.pulsar.testclient.PulsarPerfTestTool), resolved with the small project in
# tests/apache-pulsar/perf at the version that `scripts/apache-pulsar.sh install`
# resolved for the broker (its pulsar-classpath.meta), and cached beside that classpath.
#
# When pulsar-testclient cannot be resolved (it is not served everywhere), the script
# says which artifact was missing and uses its fallback instead: the Java program
# tests/apache-pulsar/perf/src/main/java/pulsarwire/perf/PerfTransaction.java, compiled
# against the Java client of the broker's classpath (pulsar-client-original). It runs
# `transaction` only, with pulsar-perf transaction's options (-u, --topics-c, --topics-p,
# -ss, -nmc, -nmp, -ntxn, -time, -tto, -threads, -abort, -q) and the loop of
# `pulsar-wire perf transaction`, and prints the same summary and JSON keys. `produce` and
# `consume` run PerfClient.java beside it, on the same Java client: the options of
# pulsar-perf produce and consume that scripts/bench-peers.sh passes (-u, -r, -s, -o, -p,
# -n, -t, -time, -m, -db, -bm, -bb, -b; -ss, -st, -sp, -q) and pulsar-perf's two final
# "Aggregated ..." lines on stderr, so that one parser reads both.
#
# Usage:
#   scripts/pulsar-perf.sh install
#       Resolve (or build the fallback) if not cached yet; prints PULSAR_PERF=pulsar-perf
#       or PULSAR_PERF=fallback (and MISSING_ARTIFACT= with the fallback).
#   scripts/pulsar-perf.sh ARGS...
#       Install if needed, then run pulsar-perf with ARGS, e.g.
#         scripts/pulsar-perf.sh transaction -u pulsar://127.0.0.1:6650 \
#             --topics-c in --topics-p out -nmc 1 -nmp 1 -ntxn 1000
#       bin/pulsar-perf passes a client configuration file as PulsarPerfTestTool's first
#       argument (its keys are the options' defaults); this script passes
#       $PULSAR_PERF_CONF, or an empty file of its own (options on the command line).
#
# Environment:
#   PULSAR_WIRE_CACHE     cache directory (default tests/apache-pulsar/target)
#   PULSAR_PERF_RETRY=1   try Maven again after a resolution that failed (a failure is
#                         remembered, so that each run does not wait for Maven)
#   PULSAR_PERF_CONF      the client configuration file for pulsar-perf
#   PULSAR_PERF_JVM_OPTS  JVM options (default -Xms128m -Xmx512m)
#   PULSAR_PERF_LOG_LEVEL log level, on stderr (default info for pulsar-perf, whose
#                         results are log lines; warn for the fallback)
#   PULSAR_MVN_TIMEOUT    seconds for the Maven resolution (default 900)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROJECT="$ROOT/tests/apache-pulsar/perf"
POM="$PROJECT/pom.xml"
SRC="$PROJECT/src/main/java"
CACHE="${PULSAR_WIRE_CACHE:-$ROOT/tests/apache-pulsar/target}"
BROKER_CP_FILE="$CACHE/pulsar-classpath.txt"
BROKER_META_FILE="$CACHE/pulsar-classpath.meta"
CP_FILE="$CACHE/perf-classpath.txt"
META_FILE="$CACHE/perf-classpath.meta"
CLASSES="$CACHE/perf-classes"
MAIN_CLASS=org.apache.pulsar.testclient.PulsarPerfTestTool
FALLBACK_CLASS=pulsarwire.perf.PerfTransaction
FALLBACK_CLIENT_CLASS=pulsarwire.perf.PerfClient
ARTIFACT=org.apache.pulsar:pulsar-testclient

log() { printf 'pulsar-perf: %s\n' "$*" >&2; }
fail() { log "error: $*"; exit 1; }

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
    exit 2
}

broker_version() {
    [[ -s $BROKER_META_FILE && -s $BROKER_CP_FILE ]] \
        || fail "no Apache Pulsar classpath in $CACHE: run scripts/apache-pulsar.sh install first"
    local v
    v=$(sed -n 's/^PULSAR_VERSION=//p' "$BROKER_META_FILE")
    [[ -n $v ]] || fail "no PULSAR_VERSION in $BROKER_META_FILE"
    printf '%s\n' "$v"
}

pom_sha() { sha256sum "$POM" | cut -d' ' -f1; }

meta() { sed -n "s/^$1=//p" "$META_FILE" 2>/dev/null || true; }

# True when the cache was made from this pom for this version: STATUS=ok with every jar
# present, or STATUS=missing (remembered unless PULSAR_PERF_RETRY=1).
cache_valid() {
    local version=$1
    [[ -s $META_FILE ]] || return 1
    [[ $(meta POM_SHA) == "$(pom_sha)" && $(meta PULSAR_VERSION) == "$version" ]] || return 1
    case "$(meta STATUS)" in
        ok)
            [[ -s $CP_FILE ]] || return 1
            local jar
            local -a jars
            IFS=: read -r -a jars < "$CP_FILE"
            for jar in "${jars[@]}"; do
                [[ -f $jar ]] || return 1
            done
            ;;
        missing) [[ ${PULSAR_PERF_RETRY:-} != 1 ]] || return 1 ;;
        *) return 1 ;;
    esac
}

# The first artifact Maven names as missing in a failed resolution's log (also when the
# failure was cached by an earlier attempt: "G:A:jar:V was not found in ...").
missing_artifact() {
    {
        grep -oE "(Could not find artifact|Could not transfer artifact|Failed to read artifact descriptor for|Missing artifact) [^ ]+" "$1" \
            | awk '{print $NF}' || true
        grep -oE "[^ ]+ was not found in" "$1" | awk '{print $1}' || true
    } | sed -n 1p | sed -e 's/:$//' -e 's/^.*: //'
}

resolve() {
    local version=$1 mvn_log="$CACHE/mvn-perf-$1.log" rc=0
    command -v mvn >/dev/null 2>&1 || fail "mvn not found on PATH (Maven resolves pulsar-perf)"
    log "resolving $ARTIFACT:$version with Maven"
    timeout "${PULSAR_MVN_TIMEOUT:-900}" mvn -B -q -Dstyle.color=never -f "$POM" \
        dependency:build-classpath \
        -Dpulsar.version="$version" \
        -Dmdep.includeScope=runtime \
        -Dmdep.outputFile="$CP_FILE.tmp" >"$mvn_log" 2>&1 || rc=$?
    if [[ $rc -eq 0 && -s $CP_FILE.tmp ]]; then
        mv "$CP_FILE.tmp" "$CP_FILE"
        printf 'POM_SHA=%s\nPULSAR_VERSION=%s\nSTATUS=ok\n' "$(pom_sha)" "$version" > "$META_FILE"
        return 0
    fi
    rm -f "$CP_FILE.tmp"
    [[ $rc -ne 124 ]] || fail "Maven timed out after ${PULSAR_MVN_TIMEOUT:-900}s (log: $mvn_log)"
    local missing
    missing=$(missing_artifact "$mvn_log")
    printf 'POM_SHA=%s\nPULSAR_VERSION=%s\nSTATUS=missing\nMISSING=%s\n' \
        "$(pom_sha)" "$version" "${missing:-unknown (see $mvn_log)}" > "$META_FILE"
    return 1
}

# Compiles the fallback if a source is newer than the last build.
build_fallback() {
    command -v javac >/dev/null 2>&1 || fail "javac not found on PATH (a JDK 17+ is needed)"
    local stamp="$CLASSES/.built" stale=false src
    local -a sources
    mapfile -t sources < <(find "$SRC" -name '*.java' | sort)
    [[ ${#sources[@]} -gt 0 ]] || fail "no Java sources under $SRC"
    if [[ ! -f $stamp || $BROKER_CP_FILE -nt $stamp ]]; then
        stale=true
    else
        for src in "${sources[@]}"; do
            [[ $src -nt $stamp ]] && { stale=true; break; }
        done
    fi
    if [[ $stale == true ]]; then
        log "compiling the fallback (${#sources[@]} Java sources)"
        rm -rf "$CLASSES.tmp"
        mkdir -p "$CLASSES.tmp"
        javac --release 17 -Xlint:all -Xlint:-options -Werror -encoding UTF-8 \
            -cp "$(<"$BROKER_CP_FILE")" -d "$CLASSES.tmp" "${sources[@]}"
        touch "$CLASSES.tmp/.built"
        rm -rf "$CLASSES"
        mv "$CLASSES.tmp" "$CLASSES"
    fi
}

# Installs; prints nothing on stdout. Sets MODE to pulsar-perf or fallback.
install() {
    local version
    version=$(broker_version)
    mkdir -p "$CACHE"
    if ! cache_valid "$version"; then
        resolve "$version" || true
    fi
    if [[ $(meta STATUS) == ok ]]; then
        MODE=pulsar-perf
    else
        log "$ARTIFACT:$version cannot be resolved: missing $(meta MISSING); using the fallback ($FALLBACK_CLASS on pulsar-client-original $version)"
        build_fallback
        MODE=fallback
    fi
}

# A log4j2 configuration that logs to stderr, so that stdout has the results only.
log_conf() {
    local file="$CACHE/perf-log4j2.properties"
    cat > "$file.tmp" <<EOF
# Written by scripts/pulsar-perf.sh: logs on stderr.
status = warn
appender.err.type = Console
appender.err.name = err
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = %d{HH:mm:ss.SSS} %-5level %logger{1} - %msg%n
rootLogger.level = $1
rootLogger.appenderRef.err.ref = err
EOF
    mv "$file.tmp" "$file"
    printf '%s\n' "$file"
}

run() {
    install
    local -a jvm
    read -r -a jvm <<< "${PULSAR_PERF_JVM_OPTS:--Xms128m -Xmx512m}"
    jvm+=(-Djava.net.preferIPv4Stack=true -Dio.netty.tryReflectionSetAccessible=true)
    if [[ $MODE == pulsar-perf ]]; then
        local conf=${PULSAR_PERF_CONF:-$CACHE/perf-client.conf}
        [[ -n ${PULSAR_PERF_CONF:-} || -f $conf ]] || : > "$conf"
        jvm+=(-Dlog4j2.configurationFile="$(log_conf "${PULSAR_PERF_LOG_LEVEL:-info}")")
        exec java "${jvm[@]}" -cp "$(<"$CP_FILE")" "$MAIN_CLASS" "$conf" "$@"
    fi
    local class
    case "${1:-}" in
        transaction) class=$FALLBACK_CLASS ;;
        produce | consume) class=$FALLBACK_CLIENT_CLASS ;;
        *) fail "the fallback runs \`transaction\`, \`produce\` and \`consume\` only (pulsar-perf itself is missing)" ;;
    esac
    jvm+=(-Dlog4j2.configurationFile="$(log_conf "${PULSAR_PERF_LOG_LEVEL:-warn}")")
    exec java "${jvm[@]}" -cp "$CLASSES:$(<"$BROKER_CP_FILE")" "$class" "$@"
}

MODE=""
case "${1:-}" in
    "" | -h | --help | help) usage ;;
    install)
        install
        printf 'PULSAR_PERF=%s\n' "$MODE"
        if [[ $MODE == fallback ]]; then
            printf 'MISSING_ARTIFACT=%s\n' "$(meta MISSING)"
        fi
        ;;
    *) run "$@" ;;
esac
