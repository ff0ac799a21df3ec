#!/usr/bin/env bash
# apache-pulsar.sh: a real Apache Pulsar standalone broker (broker + BookKeeper
# bookie + RocksDB metadata store in one JVM) built from Maven artifacts, with
# no Docker and no tarball. Tests, benches and users get their broker here.
#
# Usage:
#   scripts/apache-pulsar.sh install
#       Resolve Apache Pulsar (pulsar-broker, pulsar-client-original) with the
#       Maven project in tests/apache-pulsar and cache its classpath. A second
#       install takes seconds. Then resolves the Pulsar proxy (its jar and the
#       libraries it needs besides Pulsar's modules, which it takes from the
#       broker's classpath) at the broker's version, or, when that version of
#       it is not served, at another of the broker's line (major.minor): the
#       older ones newest first, then the newer ones; a proxy that resolves at
#       no version is a warning here and an error of start --proxy. Then builds the Java client peer of the
#       interop tests (scripts/java-peer.sh build). Prints PULSAR_VERSION=,
#       PULSAR_CLASSPATH_FILE= and, when resolved, PULSAR_PROXY_VERSION= and
#       PULSAR_PROXY_CLASSPATH_FILE=.
#   scripts/apache-pulsar.sh start [--auth token|basic] [--tls] [--transactions]
#                                  [--proxy] [--config KEY=VALUE]... DIR
#       Start a standalone on free 127.0.0.1 ports with its data in DIR, in the
#       background (DIR/broker.log, DIR/broker.pid). Returns once the admin API
#       answers and public/default exists (and, with --transactions, the
#       transaction coordinator is ready), then prints NAME=value lines on
#       stdout (nothing else goes to stdout):
#         PULSAR_URL, PULSAR_HTTP_URL                       always
#         PULSAR_TOKEN, PULSAR_TOKEN_SECRET_FILE            with --auth token
#         PULSAR_BASIC_USER, PULSAR_BASIC_PASSWORD          with --auth basic
#         PULSAR_TLS_URL, PULSAR_HTTPS_URL, PULSAR_CA,
#         PULSAR_CLIENT_CERT, PULSAR_CLIENT_KEY             with --tls
#         PULSAR_PROXY_URL, PULSAR_PROXY_HTTP_URL,
#         PULSAR_PROXY_VERSION                              with --proxy
#         PULSAR_PROXY_TLS_URL, PULSAR_PROXY_HTTPS_URL      with --proxy --tls
#       --proxy also starts the Pulsar proxy (ProxyServiceStarter, its own JVM
#       with a small heap: DIR/proxy.log, DIR/proxy.pid, DIR/proxy.conf) on
#       free 127.0.0.1 ports of its own, in front of the standalone: it is
#       given the broker's URLs (brokerServiceURL, brokerWebServiceURL; no
#       metadata store) and may proxy to the broker's ports only. With --tls it
#       also listens with TLS (the test CA, the broker's certificate for
#       127.0.0.1/localhost) and reaches the broker over TLS (its TLS ports,
#       verifying it with the test CA). With --auth it authenticates clients
#       the way the broker does and forwards their role to the broker
#       (forwardAuthorizationCredentials), itself authenticated as "proxy", a
#       super user and the broker's proxyRoles. start returns once the proxy
#       answers a partitioned-metadata request, which it asks of the broker.
#       --config KEY=VALUE adds a broker.conf key (repeatable; wins over ours);
#       {BROKER_PORT} and {BROKER_TLS_PORT} in VALUE stand for the ports picked.
#       Starting a DIR again reuses its ports, keys, certificates and data; with
#       no options it also reuses the options it was last started with. Of a DIR
#       whose broker runs, start starts what is down of the rest (the proxy).
#   scripts/apache-pulsar.sh start --brokers N [--config KEY=VALUE]... DIR
#       A cluster of N brokers (2 for the chaos tests) on one machine: one JVM
#       with ZooKeeper and a bookie (the standalone in its ZooKeeper mode with
#       --no-broker: DIR/meta.log, DIR/meta.pid), the cluster's metadata written
#       once (PulsarClusterMetadataSetup: cluster "standalone", public/default),
#       and one JVM per broker (PulsarBrokerStarter: DIR/broker-I.conf,
#       DIR/broker-I.log, DIR/broker-I.pid), each on its own free 127.0.0.1
#       ports, all on the same ZooKeeper. The brokers run the modular load
#       manager without shedding or splitting (bundles move when unloaded,
#       to ?destinationBroker=PULSAR_BROKER_I_ID when given), with
#       deduplication on (brokerDeduplicationEnabled) and a 6 s metadata
#       session (a broker killed with SIGKILL loses its bundles after it).
#       ~1 GB RSS in all (PULSAR_CLUSTER_JVM_OPTS, default -Xms128m -Xmx512m
#       -XX:MaxDirectMemorySize=256m, per broker; PULSAR_META_JVM_OPTS).
#       Returns once every broker serves its admin API and sees all the others,
#       then prints PULSAR_URL and PULSAR_HTTP_URL (broker 0's),
#       PULSAR_SERVICE_URL (pulsar://HOST:PORT,HOST:PORT: all of them),
#       PULSAR_BROKERS, and PULSAR_BROKER_I_URL, PULSAR_BROKER_I_HTTP_URL and
#       PULSAR_BROKER_I_ID (its id in the admin API) for each broker I. Of a
#       cluster DIR, start (with or without --brokers) starts what is down,
#       e.g. a broker killed with kill9 --broker I. stop, kill9 and env take a
#       cluster DIR too; a cluster takes none of --auth, --tls, --transactions,
#       --proxy.
#   scripts/apache-pulsar.sh kill9 --broker I DIR
#                                         SIGKILL broker I of a cluster, wait until
#                                         gone (--meta: ZooKeeper and the bookie;
#                                         no option: every process of the cluster)
#   scripts/apache-pulsar.sh stop DIR     SIGTERM, wait (then SIGKILL); ok if not running
#                                         (the proxy first, then the standalone)
#   scripts/apache-pulsar.sh kill9 [--proxy|--broker] DIR
#                                         SIGKILL, wait until gone: both, or only
#                                         the proxy, or only the standalone
#   scripts/apache-pulsar.sh env DIR      re-print the NAME=value lines of a running DIR
#   scripts/apache-pulsar.sh token DIR SUBJECT [EXP]
#       Mint an HS256 token with DIR's secret key (EXP: unix seconds, may be in
#       the past) for tests of wrong roles and expired tokens.
#
# With --auth token the broker authenticates (token; also the TLS client
# certificate when --tls is given too) and authorizes: the roles "admin" (the
# PULSAR_TOKEN subject) and "client" (the CN of PULSAR_CLIENT_CERT) are super
# users, any other role has no permission on public/default.
# With --auth basic it authenticates users and passwords (AuthenticationProviderBasic)
# and authorizes: "admin" (PULSAR_BASIC_USER, password PULSAR_BASIC_PASSWORD) is
# the super user; "nobody" (password nobody-password) has no permission.
# With --proxy too, the role (user) "proxy" is the proxy's own (a super user
# and the broker's proxyRoles; its token or password is in DIR/proxy.conf).
#
# Environment:
#   PULSAR_VERSION        resolve only this version (default: newest that works
#                         out of PULSAR_VERSIONS)
#   PULSAR_VERSIONS       candidates, newest first
#   PULSAR_WIRE_CACHE     cache directory (default tests/apache-pulsar/target)
#   PULSAR_MVN_TIMEOUT    seconds for one Maven resolution (default 900)
#   PULSAR_JVM_OPTS       JVM memory options (default -Xms256m -Xmx1g
#                         -XX:MaxDirectMemorySize=512m)
#   PULSAR_PROXY_JVM_OPTS the proxy's JVM options (default -Xms32m -Xmx160m
#                         -XX:MaxDirectMemorySize=192m -XX:+UseSerialGC
#                         -XX:TieredStopAtLevel=1)
#   PULSAR_PROXY_VERSION  resolve the proxy only at this version
#   PULSAR_CLUSTER_JVM_OPTS  a cluster broker's JVM options (see start --brokers)
#   PULSAR_META_JVM_OPTS  the cluster's ZooKeeper and bookie JVM options
#   PULSAR_START_TIMEOUT  seconds until ready (default 180)
#   PULSAR_STOP_TIMEOUT   seconds before stop sends SIGKILL (default 30)
#   PULSAR_LOG_LEVEL      broker log level (default info)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROJECT="$ROOT/tests/apache-pulsar"
POM="$PROJECT/pom.xml"
CACHE="${PULSAR_WIRE_CACHE:-$PROJECT/target}"
CP_FILE="$CACHE/pulsar-classpath.txt"
META_FILE="$CACHE/pulsar-classpath.meta"
PROXY_CP_FILE="$CACHE/pulsar-proxy-classpath.txt"
PROXY_META_FILE="$CACHE/pulsar-proxy-classpath.meta"
MAIN_CLASS=org.apache.pulsar.PulsarStandaloneStarter
PROXY_CLASS=org.apache.pulsar.proxy.server.ProxyServiceStarter
# Newest first. 4.0.x is the current LTS line, 3.0.x the previous one.
PULSAR_VERSIONS="${PULSAR_VERSIONS:-4.0.8 4.0.7 4.0.6 4.0.5 4.0.4 4.0.3 4.0.2 4.0.1 4.0.0 3.0.12 3.0.11 3.0.10 3.0.9 3.0.8 3.0.7}"

log() { printf 'apache-pulsar: %s\n' "$*" >&2; }
fail() { log "error: $*"; exit 1; }

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
    exit 2
}

need() {
    command -v "$1" >/dev/null 2>&1 || fail "$1 not found on PATH ($2)"
}

# ---------------------------------------------------------------- install --

pom_sha() { sha256sum "$POM" | cut -d' ' -f1; }

# True when the cached classpath was made from this pom (and the requested
# version, if any) and every jar in it still exists.
cache_valid() {
    [[ -s $CP_FILE && -s $META_FILE ]] || return 1
    local sha version
    sha=$(sed -n 's/^POM_SHA=//p' "$META_FILE")
    version=$(sed -n 's/^PULSAR_VERSION=//p' "$META_FILE")
    [[ $sha == "$(pom_sha)" ]] || return 1
    [[ -z ${PULSAR_VERSION:-} || ${PULSAR_VERSION:-} == "$version" ]] || return 1
    local jar
    local -a jars
    IFS=: read -r -a jars < "$CP_FILE"
    for jar in "${jars[@]}"; do
        [[ -f $jar ]] || return 1
    done
}

cached_version() { sed -n 's/^PULSAR_VERSION=//p' "$META_FILE"; }

# The first artifact Maven names as missing in a failed resolution's log.
missing_artifact() {
    local missing
    missing=$(grep -oE "(Could not find artifact|Could not transfer artifact|Failed to read artifact descriptor for|Missing artifact) [^ ]+" "$1" \
        | sed -n 1p | awk '{print $NF}' | sed 's/:$//' || true)
    # A miss Maven remembers from an earlier try: "G:A:jar:V was not found in ...".
    [[ -n $missing ]] || missing=$(grep -oE "[^ ]+ was not found in" "$1" | sed -n 1p | awk '{print $1}' || true)
    printf '%s\n' "$missing"
}

resolve_version() {
    local version=$1 mvn_log="$CACHE/mvn-$1.log" rc=0
    log "resolving Apache Pulsar $version with Maven (a cold cache takes a few minutes)"
    timeout "${PULSAR_MVN_TIMEOUT:-900}" mvn -B -q -Dstyle.color=never -f "$POM" \
        dependency:build-classpath \
        -Dpulsar.version="$version" \
        -Dmdep.includeScope=runtime \
        -Dmdep.outputFile="$CP_FILE.tmp" >"$mvn_log" 2>&1 || rc=$?
    if [[ $rc -eq 0 && -s $CP_FILE.tmp ]]; then
        mv "$CP_FILE.tmp" "$CP_FILE"
        printf 'POM_SHA=%s\nPULSAR_VERSION=%s\n' "$(pom_sha)" "$version" > "$META_FILE"
        return 0
    fi
    rm -f "$CP_FILE.tmp"
    if [[ $rc -eq 124 ]]; then
        log "Pulsar $version: Maven timed out after ${PULSAR_MVN_TIMEOUT:-900}s (log: $mvn_log)"
    else
        local missing
        missing=$(missing_artifact "$mvn_log")
        log "Pulsar $version: not resolvable, missing ${missing:-?} (log: $mvn_log)"
    fi
    return 1
}

# ------------------------------------------------------------ install proxy --
# The proxy's classpath: its jar (at a version that is served, the broker's
# first) and the libraries it needs besides Pulsar's modules, which it takes
# from the broker's classpath (see the profiles of the pom). Cached in
# PROXY_CP_FILE; PROXY_META_FILE records the pom, the broker version it was
# made for and the proxy version, or that no version resolved (not retried
# until the pom or the broker version changes, or PULSAR_PROXY_VERSION is set).

proxy_meta() { sed -n "s/^$1=//p" "$PROXY_META_FILE" 2>/dev/null || true; }

proxy_cache_valid() {
    [[ -s $PROXY_META_FILE ]] || return 1
    [[ $(proxy_meta POM_SHA) == "$(pom_sha)" ]] || return 1
    [[ $(proxy_meta BROKER_VERSION) == "$(cached_version)" ]] || return 1
    local version
    version=$(proxy_meta PROXY_VERSION)
    if [[ -n ${PULSAR_PROXY_VERSION:-} ]]; then
        [[ $version == "$PULSAR_PROXY_VERSION" ]] || return 1
    fi
    # Known unresolvable for this pom and broker version.
    [[ -z $version ]] && return 0
    [[ -s $PROXY_CP_FILE ]] || return 1
    local jar
    local -a jars
    IFS=: read -r -a jars < "$PROXY_CP_FILE"
    for jar in "${jars[@]}"; do
        [[ -f $jar ]] || return 1
    done
}

# The proxy's version once resolved ("" when none resolved).
proxy_version() { proxy_meta PROXY_VERSION; }

# The versions to try for the proxy of a broker of version $1: that one, then
# the older ones of its line (major.minor) newest first (a proxy built against
# older modules than the ones it runs on is the safer mismatch), then the
# newer ones of its line, nearest first.
proxy_candidates() {
    local broker=$1 line=${1%.*} v past=false
    local -a older=() newer=()
    if [[ -n ${PULSAR_PROXY_VERSION:-} ]]; then
        printf '%s\n' "$PULSAR_PROXY_VERSION"
        return
    fi
    # PULSAR_VERSIONS is newest first.
    for v in $PULSAR_VERSIONS; do
        if [[ $v == "$broker" ]]; then past=true; continue; fi
        [[ ${v%.*} == "$line" ]] || continue
        if [[ $past == true ]]; then older+=("$v"); else newer=("$v" "${newer[@]}"); fi
    done
    printf '%s\n' "$broker" "${older[@]}" "${newer[@]}"
}

resolve_proxy_version() {
    local version=$1 broker=$2 mvn_log="$CACHE/mvn-proxy-$1.log" rc=0
    log "resolving the Pulsar proxy $version (for the broker $broker) with Maven"
    timeout "${PULSAR_MVN_TIMEOUT:-900}" mvn -B -q -Dstyle.color=never -f "$POM" \
        dependency:build-classpath \
        -Dpulsar.version="$broker" \
        -Dpulsar.proxy.version="$version" \
        -Dmdep.includeScope=runtime \
        -Dmdep.outputFile="$PROXY_CP_FILE.tmp" >"$mvn_log" 2>&1 || rc=$?
    if [[ $rc -eq 0 ]] && grep -q "pulsar-proxy-$version.jar" "$PROXY_CP_FILE.tmp" 2>/dev/null; then
        mv "$PROXY_CP_FILE.tmp" "$PROXY_CP_FILE"
        return 0
    fi
    rm -f "$PROXY_CP_FILE.tmp"
    if [[ $rc -eq 124 ]]; then
        log "the proxy $version: Maven timed out after ${PULSAR_MVN_TIMEOUT:-900}s (log: $mvn_log)"
    else
        local missing
        missing=$(missing_artifact "$mvn_log")
        log "the proxy $version: not resolvable, missing ${missing:-?} (log: $mvn_log)"
    fi
    return 1
}

# Resolves the proxy if its cache is not valid. Never fails: a proxy that no
# version gives is a warning (start --proxy fails on it).
install_proxy() {
    local broker ok="" version tried=()
    broker=$(cached_version)
    if ! proxy_cache_valid; then
        if ! command -v mvn >/dev/null 2>&1; then
            log "warning: no mvn on PATH: the Pulsar proxy is not resolved"
            return 0
        fi
        for version in $(proxy_candidates "$broker"); do
            tried+=("$version")
            if resolve_proxy_version "$version" "$broker"; then ok=$version; break; fi
        done
        printf 'POM_SHA=%s\nBROKER_VERSION=%s\nPROXY_VERSION=%s\nTRIED=%s\n' \
            "$(pom_sha)" "$broker" "$ok" "${tried[*]}" > "$PROXY_META_FILE"
    fi
    version=$(proxy_version)
    if [[ -z $version ]]; then
        log "warning: the Pulsar proxy resolved at no version (tried: $(proxy_meta TRIED)); start --proxy will fail (remove $PROXY_META_FILE to try again)"
    elif [[ $version != "$broker" ]]; then
        log "the Pulsar proxy $version (not served at $broker), on the broker's $broker modules: classpath in $PROXY_CP_FILE"
    else
        log "the Pulsar proxy $version: classpath in $PROXY_CP_FILE"
    fi
}

cmd_install() {
    need java "a Java 17+ runtime is needed"
    mkdir -p "$CACHE"
    if ! cache_valid; then
        need mvn "Maven is needed to resolve Apache Pulsar"
        local version ok=""
        for version in ${PULSAR_VERSION:-$PULSAR_VERSIONS}; do
            if resolve_version "$version"; then ok=$version; break; fi
        done
        [[ -n $ok ]] || fail "no Apache Pulsar version could be resolved (tried: ${PULSAR_VERSION:-$PULSAR_VERSIONS})"
    fi
    local n
    n=$(tr ':' '\n' < "$CP_FILE" | grep -c .)
    log "Apache Pulsar $(cached_version): $n jars, classpath in $CP_FILE"
    install_proxy
    PULSAR_WIRE_CACHE="$CACHE" "$ROOT/scripts/java-peer.sh" build >&2
    printf 'PULSAR_VERSION=%s\nPULSAR_CLASSPATH_FILE=%s\n' "$(cached_version)" "$CP_FILE"
    if [[ -n $(proxy_version) ]]; then
        printf 'PULSAR_PROXY_VERSION=%s\nPULSAR_PROXY_CLASSPATH_FILE=%s\n' "$(proxy_version)" "$PROXY_CP_FILE"
    fi
}

# ------------------------------------------------------------ process util --

# Prints the pid in DIR/NAME.pid (NAME: broker, the default, or proxy) if that
# process is alive and is a standalone (a proxy) (never trusts a pid blindly:
# pids get reused).
running_pid() {
    local dir=$1 name=${2:-broker} pid state marker=$MAIN_CLASS
    [[ $name == proxy ]] && marker=$PROXY_CLASS
    [[ -s $dir/$name.pid ]] || return 1
    pid=$(<"$dir/$name.pid")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/cmdline ]] || return 1
    grep -qaF "$marker" "/proc/$pid/cmdline" 2>/dev/null || return 1
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo X)
    [[ $state != Z && $state != X ]] || return 1
    printf '%s\n' "$pid"
}

# Waits up to $2 seconds for pid $1 to be gone (a zombie counts as gone).
wait_gone() {
    local pid=$1 deadline=$((SECONDS + $2)) state
    while [[ -d /proc/$pid ]]; do
        state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo X)
        [[ $state == Z || $state == X ]] && return 0
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

abs_dir() {
    mkdir -p "$1"
    (cd "$1" && pwd)
}

# stop_one DIR NAME: SIGTERM the standalone (NAME broker) or the proxy, wait,
# then SIGKILL.
stop_one() {
    local dir=$1 name=$2 pid
    if ! pid=$(running_pid "$dir" "$name"); then
        rm -f "$dir/$name.pid"
        return 1
    fi
    log "stopping the $name, pid $pid (SIGTERM)"
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_gone "$pid" "${PULSAR_STOP_TIMEOUT:-30}"; then
        log "pid $pid still alive after ${PULSAR_STOP_TIMEOUT:-30}s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        wait_gone "$pid" 30 || fail "pid $pid survived SIGKILL"
    fi
    rm -f "$dir/$name.pid"
}

# kill_one DIR NAME: SIGKILL, wait until gone. False if it was not running.
kill_one() {
    local dir=$1 name=$2 pid
    if ! pid=$(running_pid "$dir" "$name"); then
        rm -f "$dir/$name.pid"
        return 1
    fi
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" 30 || fail "pid $pid survived SIGKILL"
    rm -f "$dir/$name.pid"
    log "killed the $name, pid $pid"
}

cmd_stop() {
    local dir any=false
    dir=$(abs_dir "$1")
    if is_cluster_dir "$dir"; then cluster_stop "$dir" TERM; return; fi
    # The proxy first: it would only log the broker going away.
    stop_one "$dir" proxy && any=true
    stop_one "$dir" broker && any=true
    if [[ $any == true ]]; then log "stopped"; else log "not running ($dir)"; fi
}

cmd_kill9() {
    local which=both dir any=false index=""
    case ${1:-} in
        --proxy) which=proxy; shift ;;
        --broker)
            which=broker; shift
            if [[ ${1:-} =~ ^[0-9]+$ && $# -eq 2 ]]; then index=$1; shift; fi ;;
        --meta) which=meta; shift ;;
    esac
    [[ $# -eq 1 ]] || usage
    dir=$(abs_dir "$1")
    if is_cluster_dir "$dir"; then
        case $which in
            both) cluster_stop "$dir" KILL ;;
            meta) cluster_stop_one "$dir" meta KILL || log "meta not running ($dir)" ;;
            broker)
                [[ -n $index ]] || fail "kill9 --broker of a cluster takes the broker's index (kill9 --broker N DIR)"
                ((index < $(cluster_brokers "$dir"))) || fail "no broker $index in $dir"
                cluster_stop_one "$dir" "broker-$index" KILL || log "broker-$index not running ($dir)" ;;
            *) fail "a cluster has no proxy" ;;
        esac
        return
    fi
    [[ -z $index && $which != meta ]] || fail "$dir is not a cluster"
    if [[ $which != broker ]]; then kill_one "$dir" proxy && any=true; fi
    if [[ $which != proxy ]]; then kill_one "$dir" broker && any=true; fi
    [[ $any == true ]] || log "not running ($dir)"
}

cmd_env() {
    local dir
    dir=$(abs_dir "$1")
    if is_cluster_dir "$dir"; then
        local i up=false
        for ((i = 0; i < $(cluster_brokers "$dir"); i++)); do
            cluster_pid "$dir" "broker-$i" >/dev/null && up=true
        done
        [[ $up == true ]] || fail "no broker of the cluster runs ($dir)"
        [[ -s $dir/env ]] || fail "no $dir/env"
        cat "$dir/env"
        return
    fi
    running_pid "$dir" >/dev/null || fail "not running ($dir)"
    [[ -s $dir/env ]] || fail "no $dir/env"
    cat "$dir/env"
}

# ------------------------------------------------------------- secrets/TLS --

b64url() { base64 -w0 | tr '+/' '-_' | tr -d '='; }

# mint_token SECRET_FILE SUBJECT [EXP]: an HS256 JWT, as Pulsar's token
# provider validates it (raw secret key bytes; "sub" is the role).
mint_token() {
    local key=$1 sub=$2 exp=${3:-} header payload sig
    header=$(printf '{"alg":"HS256"}' | b64url)
    if [[ -n $exp ]]; then
        payload=$(printf '{"sub":"%s","exp":%d}' "$sub" "$exp" | b64url)
    else
        payload=$(printf '{"sub":"%s"}' "$sub" | b64url)
    fi
    sig=$(printf '%s.%s' "$header" "$payload" \
        | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$(od -An -v -tx1 "$key" | tr -d ' \n')" -binary \
        | b64url)
    printf '%s.%s.%s\n' "$header" "$payload" "$sig"
}

# ensure_basic_users DIR: the users of --auth basic, made once per DIR: "admin"
# (a super user, also the broker's own client) with a random password in
# DIR/basic-password, and "nobody" (no permission), in DIR/basic-users as
# htpasswd-style lines with apr1 (MD5) hashes, which AuthenticationProviderBasic
# checks. Also "proxy" (the proxy's own user, a super user and the broker's
# proxy role) with a random password in DIR/basic-proxy-password, added to a
# DIR made before it was.
ensure_basic_users() {
    local dir=$1 password
    if [[ ! -s $dir/basic-users || ! -s $dir/basic-password ]]; then
        need openssl "to hash the basic auth passwords"
        password=$(openssl rand -hex 12)
        printf '%s' "$password" > "$dir/basic-password"
        chmod 600 "$dir/basic-password"
        {
            printf 'admin:%s\n' "$(openssl passwd -apr1 "$password")"
            printf 'nobody:%s\n' "$(openssl passwd -apr1 nobody-password)"
        } > "$dir/basic-users"
        chmod 600 "$dir/basic-users"
    fi
    if [[ ! -s $dir/basic-proxy-password ]] || ! grep -q '^proxy:' "$dir/basic-users"; then
        need openssl "to hash the basic auth passwords"
        password=$(openssl rand -hex 12)
        printf '%s' "$password" > "$dir/basic-proxy-password"
        chmod 600 "$dir/basic-proxy-password"
        sed -i '/^proxy:/d' "$dir/basic-users"
        printf 'proxy:%s\n' "$(openssl passwd -apr1 "$password")" >> "$dir/basic-users"
    fi
}

cmd_token() {
    local dir
    dir=$(abs_dir "$1")
    [[ -s $dir/secret.key ]] || fail "no $dir/secret.key (start it once with --auth token)"
    mint_token "$dir/secret.key" "$2" "${3:-}"
}

ensure_secret() {
    local dir=$1
    [[ -s $dir/secret.key ]] && return 0
    need openssl "to make the token secret key"
    (umask 077 && openssl rand 32 > "$dir/secret.key")
}

# A CA, a server certificate for 127.0.0.1/localhost and a client
# certificate (CN=client), made once per DIR.
ensure_tls() {
    local t=$1/tls
    [[ -s $t/client.key.pem ]] && return 0
    need openssl "to make the TLS certificates"
    mkdir -p "$t"
    (
        cd "$t"
        umask 077
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -sha256 \
            -keyout ca.key.pem -out ca.cert.pem -subj "/CN=pulsar-wire test CA" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
        local name
        for name in broker client; do
            openssl req -newkey rsa:2048 -nodes -keyout "$name.key.rsa.pem" \
                -out "$name.csr.pem" -subj "/CN=$( [[ $name == broker ]] && echo localhost || echo client )" 2>/dev/null
            if [[ $name == broker ]]; then
                printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
                    "extendedKeyUsage=serverAuth" "subjectAltName=IP:127.0.0.1,DNS:localhost" > "$name.ext"
            else
                printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
                    "extendedKeyUsage=clientAuth" > "$name.ext"
            fi
            openssl x509 -req -in "$name.csr.pem" -CA ca.cert.pem -CAkey ca.key.pem -CAcreateserial \
                -days 3650 -sha256 -extfile "$name.ext" -out "$name.cert.pem" 2>/dev/null
            # Pulsar wants the private key as unencrypted PKCS#8 PEM.
            openssl pkcs8 -topk8 -nocrypt -in "$name.key.rsa.pem" -out "$name.key.tmp"
            rm -f "$name.key.rsa.pem" "$name.csr.pem" "$name.ext"
            mv "$name.key.tmp" "$name.key.pem"
        done
        chmod 644 ./*.cert.pem
    )
}

# ------------------------------------------------------------------- start --

# Prints N distinct free TCP ports on 127.0.0.1, below the usual ephemeral
# range so outgoing connections are unlikely to take them later.
# (free_ports N "EXCLUDED PORTS": none of those either.)
free_ports() {
    python3 - "$1" "${2:-}" <<'PY'
import random, socket, sys
n, found, socks = int(sys.argv[1]), [], []
excluded = {int(p) for p in sys.argv[2].split()}
while len(found) < n:
    port = random.randrange(20000, 32000)
    if port in found or port in excluded:
        continue
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        s.close()
        continue
    socks.append(s)
    found.append(port)
print(" ".join(map(str, found)))
PY
}

port_free() {
    python3 - "$1" <<'PY'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
PY
}

# The bookie's frame size and storage settings, shared by the standalone's
# config and the cluster's metadata JVM: room for a 5 MB message
# (maxMessageSize) plus its headers (the bookie's default, 5 MB exactly,
# refuses such an entry, and the broker then retries it forever), DbLedgerStorage
# with small caches, no fsync, and no disk-usage or GC churn.
bookie_storage_conf() {
    echo "nettyMaxFrameSizeBytes=5253120"
    echo "ledgerStorageClass=org.apache.bookkeeper.bookie.storage.ldb.DbLedgerStorage"
    echo "dbStorage_writeCacheMaxSizeMb=16"
    echo "dbStorage_readAheadCacheMaxSizeMb=16"
    echo "dbStorage_rocksDB_blockCacheSize=16777216"
    echo "dbStorage_rocksDB_writeBufferSizeMB=4"
    echo "dbStorage_rocksDB_sstSizeInMB=4"
    echo "journalMaxGroupWaitMSec=1"
    echo "journalSyncData=false"
    echo "journalWriteData=true"
    echo "diskUsageThreshold=0.99"
    echo "diskUsageWarnThreshold=0.99"
    echo "gcWaitTime=300000"
    echo "flushInterval=60000"
}

write_broker_conf() {
    local dir=$1 auth=$2 tls=$3 txn=$4 proxy=$5
    shift 5
    local conf="$dir/broker.conf"
    {
        echo "# Written by scripts/apache-pulsar.sh on every start; edits are lost."
        echo "# Read both as the broker's ServiceConfiguration and the bookie's ServerConfiguration."
        echo "clusterName=standalone"
        echo "bindAddress=127.0.0.1"
        echo "advertisedAddress=127.0.0.1"
        echo "brokerServicePort=$BROKER_PORT"
        echo "webServicePort=$WEB_PORT"
        echo "metadataStoreUrl="
        echo "configurationMetadataStoreUrl="
        echo "# One bookie: every ledger has one copy."
        echo "managedLedgerDefaultEnsembleSize=1"
        echo "managedLedgerDefaultWriteQuorum=1"
        echo "managedLedgerDefaultAckQuorum=1"
        echo "# Small and quiet: no load balancing, websocket, functions or topic GC."
        echo "loadManagerClassName=org.apache.pulsar.broker.loadbalance.NoopLoadManager"
        echo "loadBalancerEnabled=false"
        echo "webSocketServiceEnabled=false"
        echo "functionsWorkerEnabled=false"
        echo "brokerDeleteInactiveTopicsEnabled=false"
        echo "allowAutoTopicCreation=true"
        echo "allowAutoTopicCreationType=non-partitioned"
        echo "systemTopicEnabled=true"
        echo "topicLevelPoliciesEnabled=true"
        echo "statusFilePath="
        echo "numOrderedExecutorThreads=4"
        echo "brokerShutdownTimeoutMs=15000"
        echo "bookkeeperUseV2WireProtocol=true"
        echo "bookkeeperNumberOfChannelsPerBookie=1"
        echo "# Bookie: listen on loopback only, no HTTP server, small caches."
        echo "listeningInterface=lo"
        echo "allowLoopback=true"
        echo "# Without this BKCluster ignores --bookkeeper-port and picks a random one."
        echo "allowEphemeralPorts=true"
        echo "httpServerEnabled=false"
        echo "# As Pulsar's bookkeeper.conf: room for a 5 MB message (maxMessageSize) plus its"
        echo "# headers. The bookie's default (5 MB exactly) refuses such an entry, and the"
        echo "# broker then retries it forever, failing every other write of the bookie."
        bookie_storage_conf
        echo "transactionCoordinatorEnabled=$txn"
        if [[ $tls == true ]]; then
            echo "# TLS: the plain ports stay open too."
            echo "brokerServicePortTls=$BROKER_TLS_PORT"
            echo "webServicePortTls=$WEB_TLS_PORT"
            echo "tlsCertificateFilePath=$dir/tls/broker.cert.pem"
            echo "tlsKeyFilePath=$dir/tls/broker.key.pem"
            echo "tlsTrustCertsFilePath=$dir/tls/ca.cert.pem"
            echo "tlsAllowInsecureConnection=false"
            echo "tlsRequireTrustedClientCertOnConnect=false"
        fi
        if [[ $auth == token ]]; then
            local providers=org.apache.pulsar.broker.authentication.AuthenticationProviderToken
            [[ $tls == true ]] && providers="$providers,org.apache.pulsar.broker.authentication.AuthenticationProviderTls"
            echo "# Token auth (HS256 secret key in secret.key); admin and client are super users."
            echo "authenticationEnabled=true"
            echo "authenticationProviders=$providers"
            echo "tokenSecretKey=file://$dir/secret.key"
            echo "authorizationEnabled=true"
            if [[ $proxy == true ]]; then
                echo "# The proxy authenticates as \"proxy\" and forwards the client's role."
                echo "superUserRoles=admin,client,proxy"
                echo "proxyRoles=proxy"
            else
                echo "superUserRoles=admin,client"
            fi
            echo "brokerClientAuthenticationPlugin=org.apache.pulsar.client.impl.auth.AuthenticationToken"
            echo "brokerClientAuthenticationParameters=token:$ADMIN_TOKEN"
        fi
        if [[ $auth == basic ]]; then
            echo "# Basic auth (htpasswd-style users in basicAuthConf, base64); admin is the super user."
            echo "authenticationEnabled=true"
            echo "authenticationProviders=org.apache.pulsar.broker.authentication.AuthenticationProviderBasic"
            echo "basicAuthConf=$(base64 -w0 < "$dir/basic-users")"
            echo "authorizationEnabled=true"
            if [[ $proxy == true ]]; then
                echo "# The proxy authenticates as \"proxy\" and forwards the client's role."
                echo "superUserRoles=admin,proxy"
                echo "proxyRoles=proxy"
            else
                echo "superUserRoles=admin"
            fi
            echo "brokerClientAuthenticationPlugin=org.apache.pulsar.client.impl.auth.AuthenticationBasic"
            echo "brokerClientAuthenticationParameters={\"userId\":\"admin\",\"password\":\"$BASIC_PASSWORD\"}"
        fi
        if [[ $# -gt 0 ]]; then
            echo "# --config"
            local kv
            for kv in "$@"; do
                # {BROKER_PORT} and {BROKER_TLS_PORT} stand for the ports picked here.
                kv=${kv//\{BROKER_PORT\}/$BROKER_PORT}
                printf '%s\n' "${kv//\{BROKER_TLS_PORT\}/$BROKER_TLS_PORT}"
            done
        fi
    } > "$conf"
    chmod 600 "$conf"
}

# write_proxy_conf DIR AUTH TLS: DIR/proxy.conf, the proxy's ProxyConfiguration.
write_proxy_conf() {
    local dir=$1 auth=$2 tls=$3
    local conf="$dir/proxy.conf"
    {
        echo "# Written by scripts/apache-pulsar.sh on every start; edits are lost."
        echo "clusterName=standalone"
        echo "bindAddress=127.0.0.1"
        echo "advertisedAddress=127.0.0.1"
        echo "servicePort=$PROXY_PORT"
        echo "webServicePort=$PROXY_WEB_PORT"
        echo "# Discovery: the broker's URLs, no metadata store (the standalone's is in its JVM)."
        echo "metadataStoreUrl="
        echo "configurationMetadataStoreUrl="
        echo "brokerServiceURL=pulsar://127.0.0.1:$BROKER_PORT"
        echo "brokerWebServiceURL=http://127.0.0.1:$WEB_PORT"
        echo "# Clients may be proxied to this broker's ports only (the default allows 6650 and 6651)."
        echo "brokerProxyAllowedHostNames=*"
        echo "brokerProxyAllowedIPAddresses=127.0.0.1"
        if [[ $tls == true ]]; then
            echo "brokerProxyAllowedTargetPorts=$BROKER_PORT,$BROKER_TLS_PORT"
        else
            echo "brokerProxyAllowedTargetPorts=$BROKER_PORT"
        fi
        echo "# Small: few threads, no websocket."
        echo "numIOThreads=2"
        echo "numAcceptorThreads=1"
        echo "httpNumThreads=8"
        echo "webSocketServiceEnabled=false"
        if [[ $tls == true ]]; then
            echo "# TLS towards clients (the plain ports stay open too), with the broker's"
            echo "# certificate (the test CA's, for 127.0.0.1 and localhost)."
            echo "servicePortTls=$PROXY_TLS_PORT"
            echo "webServicePortTls=$PROXY_WEB_TLS_PORT"
            echo "tlsCertificateFilePath=$dir/tls/broker.cert.pem"
            echo "tlsKeyFilePath=$dir/tls/broker.key.pem"
            echo "tlsTrustCertsFilePath=$dir/tls/ca.cert.pem"
            echo "tlsAllowInsecureConnection=false"
            echo "tlsRequireTrustedClientCertOnConnect=false"
            echo "# TLS towards the broker, as in production: its TLS ports, verified with the CA."
            echo "tlsEnabledWithBroker=true"
            echo "brokerServiceURLTLS=pulsar+ssl://127.0.0.1:$BROKER_TLS_PORT"
            echo "brokerWebServiceURLTLS=https://127.0.0.1:$WEB_TLS_PORT"
            echo "brokerClientTrustCertsFilePath=$dir/tls/ca.cert.pem"
            echo "tlsHostnameVerificationEnabled=true"
            echo "# Zero-copy (splice) proxying checks the client's side for TLS only (DirectProxyHandler"
            echo "# sets isTlsOutboundChannel from the inbound channel): a plain client of a proxy on TLS"
            echo "# to the broker would get the broker's raw TLS records. Off, bytes go through Netty."
            echo "proxyZeroCopyModeEnabled=false"
        fi
        if [[ -n $auth ]]; then
            echo "# The proxy authenticates clients as the broker does and forwards their role to the"
            echo "# broker, which authorizes it (the proxy itself authorizes nothing)."
            echo "authenticationEnabled=true"
            echo "authorizationEnabled=false"
            echo "forwardAuthorizationCredentials=true"
            echo "authenticateMetricsEndpoint=false"
        fi
        if [[ $auth == token ]]; then
            local providers=org.apache.pulsar.broker.authentication.AuthenticationProviderToken
            [[ $tls == true ]] && providers="$providers,org.apache.pulsar.broker.authentication.AuthenticationProviderTls"
            echo "authenticationProviders=$providers"
            echo "tokenSecretKey=file://$dir/secret.key"
            echo "brokerClientAuthenticationPlugin=org.apache.pulsar.client.impl.auth.AuthenticationToken"
            echo "brokerClientAuthenticationParameters=token:$PROXY_TOKEN"
        fi
        if [[ $auth == basic ]]; then
            echo "authenticationProviders=org.apache.pulsar.broker.authentication.AuthenticationProviderBasic"
            echo "basicAuthConf=$(base64 -w0 < "$dir/basic-users")"
            echo "brokerClientAuthenticationPlugin=org.apache.pulsar.client.impl.auth.AuthenticationBasic"
            echo "brokerClientAuthenticationParameters={\"userId\":\"proxy\",\"password\":\"$PROXY_BASIC_PASSWORD\"}"
        fi
    } > "$conf"
    chmod 600 "$conf"
}

write_log_conf() {
    cat > "$1/log4j2.properties" <<EOF
# Written by scripts/apache-pulsar.sh: everything to stdout, which is broker.log.
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = %d{ISO8601} [%t] %-5level %logger{1} - %msg%n
rootLogger.level = ${PULSAR_LOG_LEVEL:-info}
rootLogger.appenderRef.out.ref = out
EOF
}

# wire_probe MODE PORT METHOD DATA ARG: connects to a binary port (python3,
# standard library only) as a client does (CONNECT, with the auth METHOD and
# DATA unless METHOD is empty), then:
#   tc N: asks for transaction coordinators 0..N-1 as a client with
#     transactions does (TC_CLIENT_CONNECT_REQUEST). The broker answers once
#     each coordinator's log is open: exit 0 when all answered without error.
#     The admin API alone cannot load a coordinator.
#   partitions TOPIC: asks for the topic's partitioned metadata; exit 0 when
#     it is answered without error. Through the proxy this is asked of the
#     broker: the proxy is ready, reaches the broker and forwards the role.
wire_probe() {
    python3 - "$@" <<'PY'
import socket, struct, sys

mode, port = sys.argv[1], int(sys.argv[2])
method = sys.argv[3].encode()
data = sys.argv[4].encode()
arg = sys.argv[5]

def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])

def fv(num, value):   # varint field
    return varint(num << 3) + varint(value)

def fb(num, data):    # length-delimited field
    return varint(num << 3 | 2) + varint(len(data)) + data

def frame(kind, field, body):
    cmd = fv(1, kind) + fb(field, body)
    return struct.pack(">II", len(cmd) + 4, len(cmd)) + cmd

def fields(buf):
    i, out = 0, {}
    while i < len(buf):
        key, shift = 0, 0
        while True:
            b = buf[i]; i += 1
            key |= (b & 0x7F) << shift; shift += 7
            if b < 0x80:
                break
        num, wire = key >> 3, key & 7
        if wire == 0:
            val, shift = 0, 0
            while True:
                b = buf[i]; i += 1
                val |= (b & 0x7F) << shift; shift += 7
                if b < 0x80:
                    break
        elif wire == 2:
            ln, shift = 0, 0
            while True:
                b = buf[i]; i += 1
                ln |= (b & 0x7F) << shift; shift += 7
                if b < 0x80:
                    break
            val = buf[i:i + ln]; i += ln
        elif wire == 1:
            val = buf[i:i + 8]; i += 8
        elif wire == 5:
            val = buf[i:i + 4]; i += 4
        else:
            raise ValueError("wire type %d" % wire)
        out[num] = val
    return out

def read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError("connection closed")
        data += chunk
    return data

def next_command(sock):
    total = struct.unpack(">I", read_exact(sock, 4))[0]
    body = read_exact(sock, total)
    size = struct.unpack(">I", body[:4])[0]
    return fields(body[4:4 + size])

CONNECT, CONNECTED, ERROR, PING, PONG, TC_REQ, TC_RESP = 2, 3, 14, 18, 19, 62, 63
PARTITIONS, PARTITIONS_RESP = 21, 22

def answer(sock):
    while True:
        cmd = next_command(sock)
        if cmd.get(1) == PING:
            sock.sendall(frame(PONG, PONG, b""))
            continue
        return cmd

def error_text(cmd):
    if cmd.get(1) == ERROR:
        err = fields(cmd[ERROR])
        return "ERROR %s %s" % (err.get(2), err.get(3, b"").decode(errors="replace"))
    return "command type %s" % cmd.get(1)

try:
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    connect = fb(1, b"apache-pulsar.sh") + fv(4, 19)
    if method:
        connect += fb(5, method) + fb(3, data)
    sock.sendall(frame(CONNECT, 2, connect))
    cmd = next_command(sock)
    if cmd.get(1) != CONNECTED:
        sys.exit("not connected: %s" % error_text(cmd))
    if mode == "tc":
        for tc in range(int(arg)):
            sock.sendall(frame(TC_REQ, TC_REQ, fv(1, tc + 1) + fv(2, tc)))
            cmd = answer(sock)
            if cmd.get(1) != TC_RESP:
                sys.exit("coordinator %d: %s" % (tc, error_text(cmd)))
            resp = fields(cmd[TC_RESP])
            if 2 in resp:
                sys.exit("coordinator %d: error %d %s" % (tc, resp[2], resp.get(3, b"").decode(errors="replace")))
    elif mode == "partitions":
        sock.sendall(frame(PARTITIONS, PARTITIONS, fb(1, arg.encode()) + fv(2, 1)))
        cmd = answer(sock)
        if cmd.get(1) != PARTITIONS_RESP:
            sys.exit("partitioned metadata: %s" % error_text(cmd))
        resp = fields(cmd[PARTITIONS_RESP])
        if resp.get(3, 0) != 0:
            sys.exit("partitioned metadata: error %s %s" % (resp.get(4), resp.get(5, b"").decode(errors="replace")))
    else:
        sys.exit("unknown probe %s" % mode)
except (OSError, EOFError, ValueError) as e:
    sys.exit("%s probe: %s" % (mode, e))
PY
}

# curl of the admin API with the admin token when auth is on.
admin_get() {
    local -a args=(-s -m 5 -o /dev/stdout -w '\n%{http_code}')
    [[ -n ${ADMIN_TOKEN:-} ]] && args+=(-H "Authorization: Bearer $ADMIN_TOKEN")
    [[ -n ${BASIC_PASSWORD:-} ]] && args+=(-u "admin:$BASIC_PASSWORD")
    curl "${args[@]}" "http://127.0.0.1:$WEB_PORT$1" 2>/dev/null || true
}

# HTTP lookups of the coordinator-assign partitions 0..N-1.
tc_lookup() {
    local i out
    for ((i = 0; i < $1; i++)); do
        out=$(admin_get "/lookup/v2/topic/persistent/pulsar/system/transaction_coordinator_assign-partition-$i")
        [[ ${out##*$'\n'} == 200 ]] || return 1
    done
}

START_PID=""
start_failed() {
    local dir=$1 cause=$2
    log "error: $cause"
    if [[ -s $dir/broker.log ]]; then
        log "last lines of $dir/broker.log:"
        tail -n 40 "$dir/broker.log" >&2
    fi
    if [[ -n $START_PID ]] && [[ -d /proc/$START_PID ]]; then
        kill -TERM "$START_PID" 2>/dev/null || true
        wait_gone "$START_PID" 10 || { kill -KILL "$START_PID" 2>/dev/null || true; wait_gone "$START_PID" 30 || true; }
    fi
    rm -f "$dir/broker.pid"
    exit 1
}

# launch_broker DIR AUTH TLS TXN: starts the standalone and waits until it is
# ready (START_PID: its pid).
launch_broker() {
    local dir=$1 auth=$2 tls=$3 txn=$4
    local jvm_opts="${PULSAR_JVM_OPTS:--Xms256m -Xmx1g -XX:MaxDirectMemorySize=512m}"
    # Module openings Pulsar's own launcher passes on Java 17.
    local -a java_args
    read -r -a java_args <<<"$jvm_opts"
    java_args+=(
        -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError
        -Djava.net.preferIPv4Stack=true
        -Dio.netty.tryReflectionSetAccessible=true
        -Dlog4j2.configurationFile="$dir/log4j2.properties"
        -Dpulsar.log.dir="$dir"
        --add-opens java.base/java.io=ALL-UNNAMED
        --add-opens java.base/java.nio=ALL-UNNAMED
        --add-opens java.base/java.lang=ALL-UNNAMED
        --add-opens java.base/java.util.zip=ALL-UNNAMED
        --add-opens java.base/sun.net=ALL-UNNAMED
        --add-opens java.base/jdk.internal.misc=ALL-UNNAMED
        --add-opens java.base/jdk.internal.platform=ALL-UNNAMED
        --add-opens java.management/sun.management=ALL-UNNAMED
        --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED
        "$MAIN_CLASS"
        --config "$dir/broker.conf"
        --no-functions-worker
        --no-stream-storage
        --advertised-address 127.0.0.1
        --metadata-dir "$dir/data/metadata"
        --bookkeeper-dir "$dir/data/bookkeeper"
        --bookkeeper-port "$BOOKIE_PORT"
    )

    log "starting Apache Pulsar $(cached_version) standalone in $dir (broker $BROKER_PORT, web $WEB_PORT, bookie $BOOKIE_PORT)"
    printf '\n===== %s apache-pulsar.sh start =====\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >> "$dir/broker.log"
    rm -f "$dir/broker.pid"
    # The working directory is DIR: standalone looks for a ZooKeeper data dir
    # (data/standalone/zookeeper, never made here) relative to it, and would
    # switch to ZooKeeper mode if it found one.
    (
        cd "$dir"
        unset PULSAR_STANDALONE_USE_ZOOKEEPER
        CLASSPATH=$(<"$CP_FILE")
        export CLASSPATH
        exec setsid nohup bash -c 'echo $$ > broker.pid; exec java "$@"' java "${java_args[@]}" \
            >>"$dir/broker.log" 2>&1 </dev/null
    ) &
    local i
    for ((i = 0; i < 50; i++)); do
        [[ -s $dir/broker.pid ]] && break
        sleep 0.1
    done
    START_PID=$(cat "$dir/broker.pid" 2>/dev/null || true)
    [[ -n $START_PID ]] || start_failed "$dir" "the JVM did not start"
    trap 'start_failed "$dir" "interrupted"' INT TERM

    local deadline=$((SECONDS + ${PULSAR_START_TIMEOUT:-180})) stage="admin API" out
    while :; do
        running_pid "$dir" >/dev/null || start_failed "$dir" "the broker exited during start ($stage not ready)"
        ((SECONDS < deadline)) || start_failed "$dir" "not ready within ${PULSAR_START_TIMEOUT:-180}s (waiting for $stage)"
        case $stage in
            "admin API")
                out=$(admin_get /admin/v2/namespaces/public)
                if [[ ${out##*$'\n'} == 200 && $out == *'"public/default"'* ]]; then
                    if [[ $tls == true ]]; then stage="TLS web port"
                    elif [[ $txn == true ]]; then stage="transaction coordinator"
                    else break; fi
                    continue
                fi ;;
            "TLS web port")
                if curl -s -m 5 -o /dev/null --cacert "$dir/tls/ca.cert.pem" "https://127.0.0.1:$WEB_TLS_PORT/admin/v2/clusters" ; then
                    if [[ $txn == true ]]; then stage="transaction coordinator"; else break; fi
                    continue
                fi ;;
            "transaction coordinator")
                # Standalone creates the partitioned topic that assigns
                # coordinators (after public/default). As a client does, look
                # up each partition (this broker then owns its bundle) and
                # send TC_CLIENT_CONNECT: that loads the coordinator, whose
                # state must then be Ready.
                out=$(admin_get /admin/v2/persistent/pulsar/system/transaction_coordinator_assign/partitions)
                if [[ $out =~ \"partitions\":([1-9][0-9]*) ]] &&
                    tc_lookup "${BASH_REMATCH[1]}" &&
                    wire_probe tc "$BROKER_PORT" "$PROBE_METHOD" "$PROBE_DATA" "${BASH_REMATCH[1]}" 2>>"$dir/tc-probe.log"; then
                    out=$(admin_get /admin/v3/transactions/coordinatorStats)
                    [[ $out == *'"state":"Ready"'* ]] && break
                fi ;;
        esac
        sleep 0.5
    done
    trap - INT TERM
}

# The proxy's pid while start_proxy runs, for proxy_start_failed.
PROXY_START_PID=""
proxy_start_failed() {
    local dir=$1 cause=$2
    log "error: the proxy: $cause"
    if [[ -s $dir/proxy.log ]]; then
        log "last lines of $dir/proxy.log:"
        tail -n 40 "$dir/proxy.log" >&2
    fi
    if [[ -n $PROXY_START_PID ]] && [[ -d /proc/$PROXY_START_PID ]]; then
        kill -KILL "$PROXY_START_PID" 2>/dev/null || true
        wait_gone "$PROXY_START_PID" 30 || true
    fi
    rm -f "$dir/proxy.pid"
    # A standalone started by this same call goes too: start failed as a whole.
    [[ -n $START_PID ]] && start_failed "$dir" "the proxy did not start"
    exit 1
}

# launch_proxy DIR AUTH TLS: starts the Pulsar proxy in front of the running
# standalone and waits until it answers a partitioned-metadata request, which
# it asks of the broker (PROXY_START_PID: its pid).
launch_proxy() {
    local dir=$1 auth=$2 tls=$3
    write_proxy_conf "$dir" "$auth" "$tls"
    local jvm_opts="${PULSAR_PROXY_JVM_OPTS:--Xms32m -Xmx160m -XX:MaxDirectMemorySize=192m -XX:+UseSerialGC -XX:TieredStopAtLevel=1}"
    local -a java_args
    read -r -a java_args <<<"$jvm_opts"
    java_args+=(
        -XX:+ExitOnOutOfMemoryError
        -Djava.net.preferIPv4Stack=true
        -Dio.netty.tryReflectionSetAccessible=true
        -Dlog4j2.configurationFile="$dir/log4j2.properties"
        -Dpulsar.log.dir="$dir"
        --add-opens java.base/java.io=ALL-UNNAMED
        --add-opens java.base/java.nio=ALL-UNNAMED
        --add-opens java.base/java.lang=ALL-UNNAMED
        --add-opens java.base/sun.net=ALL-UNNAMED
        --add-opens java.base/jdk.internal.misc=ALL-UNNAMED
        "$PROXY_CLASS"
        --config "$dir/proxy.conf"
    )
    log "starting the Pulsar proxy $(proxy_version) in $dir (binary $PROXY_PORT, web $PROXY_WEB_PORT$( [[ $tls == true ]] && echo ", TLS $PROXY_TLS_PORT, HTTPS $PROXY_WEB_TLS_PORT"))"
    printf '\n===== %s apache-pulsar.sh start =====\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >> "$dir/proxy.log"
    rm -f "$dir/proxy.pid"
    mkdir -p "$dir/proxy-work"
    # Its working directory is its own: it looks for plugin directories relative to it.
    (
        cd "$dir/proxy-work"
        CLASSPATH="$(<"$PROXY_CP_FILE"):$(<"$CP_FILE")"
        export CLASSPATH
        exec setsid nohup bash -c 'echo $$ > ../proxy.pid; exec java "$@"' java "${java_args[@]}" \
            >>"$dir/proxy.log" 2>&1 </dev/null
    ) &
    local i
    for ((i = 0; i < 50; i++)); do
        [[ -s $dir/proxy.pid ]] && break
        sleep 0.1
    done
    PROXY_START_PID=$(cat "$dir/proxy.pid" 2>/dev/null || true)
    [[ -n $PROXY_START_PID ]] || proxy_start_failed "$dir" "the JVM did not start"
    trap 'proxy_start_failed "$dir" "interrupted"' INT TERM
    local deadline=$((SECONDS + ${PULSAR_START_TIMEOUT:-180}))
    while :; do
        running_pid "$dir" proxy >/dev/null || proxy_start_failed "$dir" "it exited during start"
        ((SECONDS < deadline)) || proxy_start_failed "$dir" "not ready within ${PULSAR_START_TIMEOUT:-180}s"
        if curl -s -m 5 -o /dev/null "http://127.0.0.1:$PROXY_WEB_PORT/status.html" &&
            wire_probe partitions "$PROXY_PORT" "$PROBE_METHOD" "$PROBE_DATA" \
                persistent://public/default/apache-pulsar-sh-proxy-probe 2>>"$dir/proxy-probe.log"; then
            break
        fi
        sleep 0.5
    done
    trap - INT TERM
}

cmd_start() {
    local auth="" tls=false txn=false proxy=false dir="" given=false brokers=""
    local -a extra=()
    while [[ $# -gt 0 ]]; do
        case $1 in
            --auth)
                [[ ${2:-} == token || ${2:-} == basic ]] || fail "--auth takes 'token' or 'basic'"
                auth=$2; given=true; shift 2 ;;
            --auth=token|--auth=basic) auth=${1#--auth=}; given=true; shift ;;
            --tls) tls=true; given=true; shift ;;
            --transactions) txn=true; given=true; shift ;;
            --proxy) proxy=true; given=true; shift ;;
            --config)
                [[ ${2:-} == ?*=* ]] || fail "--config takes KEY=VALUE"
                extra+=("$2"); given=true; shift 2 ;;
            --config=?*=*) extra+=("${1#--config=}"); given=true; shift ;;
            --brokers)
                [[ ${2:-} =~ ^[0-9]+$ ]] || fail "--brokers takes a number"
                brokers=$2; shift 2 ;;
            --brokers=*) brokers=${1#--brokers=}; shift ;;
            -*) log "unknown option $1"; usage ;;
            *) [[ -z $dir ]] || usage; dir=$1; shift ;;
        esac
    done
    [[ -n $dir ]] || usage
    dir=$(abs_dir "$dir")
    if [[ -n $brokers ]] || is_cluster_dir "$dir"; then
        [[ -n $auth || $tls == true || $txn == true || $proxy == true ]] &&
            fail "a cluster (--brokers) takes no --auth, --tls, --transactions or --proxy"
        [[ -n $brokers ]] || brokers=$(cluster_brokers "$dir")
        cmd_cluster_start "$dir" "$brokers" "${extra[@]}"
        return
    fi

    local broker_up=false proxy_up=false
    running_pid "$dir" >/dev/null && broker_up=true
    running_pid "$dir" proxy >/dev/null && proxy_up=true
    # A running standalone keeps the options it was started with.
    if [[ $broker_up == true && $given == true ]]; then
        log "the standalone runs (pid $(running_pid "$dir")): the options given are ignored"
        given=false
    fi
    # Options: the given ones, else those of the last start of this DIR.
    if [[ $given == false && -s $dir/options ]]; then
        # shellcheck source=/dev/null
        . "$dir/options"
        auth=${OPT_AUTH:-}; tls=${OPT_TLS:-false}; txn=${OPT_TXN:-false}; proxy=${OPT_PROXY:-false}
        extra=()
        [[ -n ${OPT_CONFIG:-} ]] && mapfile -t extra <<<"$OPT_CONFIG"
        [[ $broker_up == true ]] ||
            log "reusing the options of the last start: auth=${auth:-none} tls=$tls transactions=$txn proxy=$proxy config=${#extra[@]} keys"
    fi
    if [[ $broker_up == true ]] && [[ $proxy == false || $proxy_up == true ]]; then
        log "already running in $dir (pid $(running_pid "$dir"))"
        cmd_env "$dir"
        return 0
    fi

    need java "a Java 17+ runtime is needed"
    need python3 "to pick free ports"
    need curl "to wait for the admin API"
    cmd_install >/dev/null
    if [[ $proxy == true && -z $(proxy_version) ]]; then
        fail "the Pulsar proxy is not installed: no version of org.apache.pulsar:pulsar-proxy resolved (tried: $(proxy_meta TRIED); see the warning of scripts/apache-pulsar.sh install)"
    fi
    {
        printf 'OPT_AUTH=%q\nOPT_TLS=%q\nOPT_TXN=%q\nOPT_PROXY=%q\n' "$auth" "$tls" "$txn" "$proxy"
        if [[ ${#extra[@]} -gt 0 ]]; then
            printf 'OPT_CONFIG=%q\n' "$(printf '%s\n' "${extra[@]}")"
        fi
    } > "$dir/options"

    # Ports: picked once per DIR, reused on every later start (the bookie's
    # cookie records its port; clients may hold the URLs).
    if [[ ! -s $dir/ports ]]; then
        local -a p
        read -r -a p <<<"$(free_ports 5)"
        printf 'BROKER_PORT=%s\nWEB_PORT=%s\nBROKER_TLS_PORT=%s\nWEB_TLS_PORT=%s\nBOOKIE_PORT=%s\n' \
            "${p[0]}" "${p[1]}" "${p[2]}" "${p[3]}" "${p[4]}" > "$dir/ports"
    fi
    # shellcheck source=/dev/null
    . "$dir/ports"
    if [[ $proxy == true && -z ${PROXY_PORT:-} ]]; then
        local -a q
        read -r -a q <<<"$(free_ports 4 "$BROKER_PORT $WEB_PORT $BROKER_TLS_PORT $WEB_TLS_PORT $BOOKIE_PORT")"
        printf 'PROXY_PORT=%s\nPROXY_WEB_PORT=%s\nPROXY_TLS_PORT=%s\nPROXY_WEB_TLS_PORT=%s\n' \
            "${q[0]}" "${q[1]}" "${q[2]}" "${q[3]}" >> "$dir/ports"
        # shellcheck source=/dev/null
        . "$dir/ports"
    fi
    local port
    if [[ $broker_up == false ]]; then
        for port in "$BROKER_PORT" "$WEB_PORT" "$BROKER_TLS_PORT" "$WEB_TLS_PORT" "$BOOKIE_PORT"; do
            port_free "$port" || fail "port $port of $dir is taken by another process (see $dir/ports)"
        done
    fi
    if [[ $proxy == true && $proxy_up == false ]]; then
        for port in "$PROXY_PORT" "$PROXY_WEB_PORT" "$PROXY_TLS_PORT" "$PROXY_WEB_TLS_PORT"; do
            port_free "$port" || fail "port $port of $dir is taken by another process (see $dir/ports)"
        done
    fi

    ADMIN_TOKEN="" PROXY_TOKEN="" BASIC_PASSWORD="" PROXY_BASIC_PASSWORD=""
    PROBE_METHOD="" PROBE_DATA=""
    if [[ $auth == token ]]; then
        ensure_secret "$dir"
        ADMIN_TOKEN=$(mint_token "$dir/secret.key" admin)
        PROXY_TOKEN=$(mint_token "$dir/secret.key" proxy)
        PROBE_METHOD=token PROBE_DATA=$ADMIN_TOKEN
    fi
    if [[ $auth == basic ]]; then
        ensure_basic_users "$dir"
        BASIC_PASSWORD=$(<"$dir/basic-password")
        PROXY_BASIC_PASSWORD=$(<"$dir/basic-proxy-password")
        PROBE_METHOD=basic PROBE_DATA="admin:$BASIC_PASSWORD"
    fi
    [[ $tls == true ]] && ensure_tls "$dir"
    write_log_conf "$dir"

    local t0=$SECONDS
    START_PID=""
    if [[ $broker_up == false ]]; then
        write_broker_conf "$dir" "$auth" "$tls" "$txn" "$proxy" "${extra[@]}"
        mkdir -p "$dir/data"
        launch_broker "$dir" "$auth" "$tls" "$txn"
    fi
    if [[ $proxy == true && $proxy_up == false ]]; then
        launch_proxy "$dir" "$auth" "$tls"
    fi

    {
        echo "PULSAR_URL=pulsar://127.0.0.1:$BROKER_PORT"
        echo "PULSAR_HTTP_URL=http://127.0.0.1:$WEB_PORT"
        if [[ $auth == token ]]; then
            echo "PULSAR_TOKEN=$ADMIN_TOKEN"
            echo "PULSAR_TOKEN_SECRET_FILE=$dir/secret.key"
        fi
        if [[ $auth == basic ]]; then
            echo "PULSAR_BASIC_USER=admin"
            echo "PULSAR_BASIC_PASSWORD=$BASIC_PASSWORD"
        fi
        if [[ $tls == true ]]; then
            echo "PULSAR_TLS_URL=pulsar+ssl://127.0.0.1:$BROKER_TLS_PORT"
            echo "PULSAR_HTTPS_URL=https://127.0.0.1:$WEB_TLS_PORT"
            echo "PULSAR_CA=$dir/tls/ca.cert.pem"
            echo "PULSAR_CLIENT_CERT=$dir/tls/client.cert.pem"
            echo "PULSAR_CLIENT_KEY=$dir/tls/client.key.pem"
        fi
        if [[ $proxy == true ]]; then
            echo "PULSAR_PROXY_URL=pulsar://127.0.0.1:$PROXY_PORT"
            echo "PULSAR_PROXY_HTTP_URL=http://127.0.0.1:$PROXY_WEB_PORT"
            echo "PULSAR_PROXY_VERSION=$(proxy_version)"
            if [[ $tls == true ]]; then
                echo "PULSAR_PROXY_TLS_URL=pulsar+ssl://127.0.0.1:$PROXY_TLS_PORT"
                echo "PULSAR_PROXY_HTTPS_URL=https://127.0.0.1:$PROXY_WEB_TLS_PORT"
            fi
        fi
    } > "$dir/env"
    local rss pid what
    for what in broker proxy; do
        pid=$(running_pid "$dir" "$what") || continue
        rss=$(awk '/^VmRSS:/ {printf "%d", $2 / 1024}' "/proc/$pid/status" 2>/dev/null || echo "?")
        log "$what: pid $pid, RSS ${rss} MB"
    done
    log "ready after $((SECONDS - t0))s"
    cat "$dir/env"
}

# ---------------------------------------------------------------- cluster --
# start --brokers 2 DIR: one JVM for the metadata store and the bookie (the
# standalone in its ZooKeeper mode with --no-broker: DIR/meta.pid,
# DIR/meta.log) and one JVM per broker (PulsarBrokerStarter: DIR/broker-N.pid,
# DIR/broker-N.log, DIR/broker-N.conf), all on the same ZooKeeper (metadata
# and configuration store, and the bookie's metadata) and cluster name. The
# cluster's metadata (cluster, public/default, pulsar/system) is written once
# per DIR by PulsarClusterMetadataSetup. DIR/cluster marks a cluster DIR.

BROKER_CLASS=org.apache.pulsar.PulsarBrokerStarter
SETUP_CLASS=org.apache.pulsar.PulsarClusterMetadataSetup

is_cluster_dir() { [[ -s $1/cluster ]]; }
cluster_brokers() { sed -n 's/^BROKERS=//p' "$1/cluster"; }

# cluster_pid DIR NAME (meta or broker-N): its pid if alive and what it should be.
cluster_pid() {
    local dir=$1 name=$2 pid state marker=$BROKER_CLASS
    [[ $name == meta ]] && marker=$MAIN_CLASS
    [[ -s $dir/$name.pid ]] || return 1
    pid=$(<"$dir/$name.pid")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/cmdline ]] || return 1
    grep -qaF "$marker" "/proc/$pid/cmdline" 2>/dev/null || return 1
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo X)
    [[ $state != Z && $state != X ]] || return 1
    printf '%s\n' "$pid"
}

cluster_stop_one() {
    local dir=$1 name=$2 signal=$3 pid
    if ! pid=$(cluster_pid "$dir" "$name"); then
        rm -f "$dir/$name.pid"
        return 1
    fi
    if [[ $signal == KILL ]]; then
        kill -KILL "$pid" 2>/dev/null || true
        wait_gone "$pid" 30 || fail "pid $pid survived SIGKILL"
        log "killed $name, pid $pid"
    else
        log "stopping $name, pid $pid (SIGTERM)"
        kill -TERM "$pid" 2>/dev/null || true
        if ! wait_gone "$pid" "${PULSAR_STOP_TIMEOUT:-30}"; then
            log "pid $pid still alive after ${PULSAR_STOP_TIMEOUT:-30}s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            wait_gone "$pid" 30 || fail "pid $pid survived SIGKILL"
        fi
    fi
    rm -f "$dir/$name.pid"
}

# The brokers first (they would only log the metadata store going away), then the rest.
cluster_stop() {
    local dir=$1 signal=$2 n i any=false
    n=$(cluster_brokers "$dir")
    for ((i = 0; i < n; i++)); do cluster_stop_one "$dir" "broker-$i" "$signal" && any=true; done
    cluster_stop_one "$dir" meta "$signal" && any=true
    if [[ $any == true ]]; then log "stopped"; else log "not running ($dir)"; fi
}

cluster_write_meta_conf() {
    local dir=$1
    {
        echo "# Written by scripts/apache-pulsar.sh on every start; edits are lost."
        echo "# The standalone's ServiceConfiguration (no broker runs in it) and the bookie's ServerConfiguration."
        echo "clusterName=standalone"
        echo "bindAddress=127.0.0.1"
        echo "advertisedAddress=127.0.0.1"
        echo "listeningInterface=lo"
        echo "allowLoopback=true"
        echo "httpServerEnabled=false"
        bookie_storage_conf
    } > "$dir/meta.conf"
}

# cluster_write_broker_conf DIR I EXTRA...: DIR/broker-I.conf.
cluster_write_broker_conf() {
    local dir=$1 i=$2 port web
    shift 2
    port=BROKER${i}_PORT web=WEB${i}_PORT
    port=${!port} web=${!web}
    {
        echo "# Written by scripts/apache-pulsar.sh on every start; edits are lost."
        echo "clusterName=standalone"
        echo "bindAddress=127.0.0.1"
        echo "advertisedAddress=127.0.0.1"
        echo "brokerServicePort=$port"
        echo "webServicePort=$web"
        echo "metadataStoreUrl=zk:127.0.0.1:$ZK_PORT"
        echo "configurationMetadataStoreUrl=zk:127.0.0.1:$ZK_PORT"
        echo "# A broker killed with SIGKILL loses its bundles once its session expires."
        echo "metadataStoreSessionTimeoutMillis=6000"
        echo "zooKeeperSessionTimeoutMillis=6000"
        echo "managedLedgerDefaultEnsembleSize=1"
        echo "managedLedgerDefaultWriteQuorum=1"
        echo "managedLedgerDefaultAckQuorum=1"
        echo "# The modular load manager (bundles move on unload, to destinationBroker when given);"
        echo "# no shedding or splitting of its own: bundles move when the admin API says so."
        echo "loadManagerClassName=org.apache.pulsar.broker.loadbalance.impl.ModularLoadManagerImpl"
        echo "loadBalancerEnabled=true"
        echo "loadBalancerSheddingEnabled=false"
        echo "loadBalancerAutoBundleSplitEnabled=false"
        echo "loadBalancerAutoUnloadSplitBundlesEnabled=false"
        echo "# Deduplication everywhere (the chaos tests need it)."
        echo "brokerDeduplicationEnabled=true"
        echo "# Every acknowledgment moves the persisted cursor at once (no rate limit): an ack the"
        echo "# broker confirmed survives a SIGKILL of the broker."
        echo "managedLedgerDefaultMarkDeleteRateLimit=0"
        echo "webSocketServiceEnabled=false"
        echo "functionsWorkerEnabled=false"
        echo "brokerDeleteInactiveTopicsEnabled=false"
        echo "allowAutoTopicCreation=true"
        echo "allowAutoTopicCreationType=non-partitioned"
        echo "systemTopicEnabled=true"
        echo "topicLevelPoliciesEnabled=true"
        echo "statusFilePath="
        echo "numIOThreads=2"
        echo "numOrderedExecutorThreads=4"
        echo "numHttpServerThreads=8"
        echo "managedLedgerCacheSizeMB=64"
        echo "brokerShutdownTimeoutMs=15000"
        echo "bookkeeperUseV2WireProtocol=true"
        echo "bookkeeperNumberOfChannelsPerBookie=1"
        echo "transactionCoordinatorEnabled=false"
        if [[ $# -gt 0 ]]; then
            echo "# --config"
            local kv
            for kv in "$@"; do
                kv=${kv//\{BROKER_PORT\}/$port}
                printf '%s\n' "$kv"
            done
        fi
    } > "$dir/broker-$i.conf"
    chmod 600 "$dir/broker-$i.conf"
}

# cluster_java DIR NAME CLASS ARGS...: starts a JVM in the background (its pid
# in DIR/NAME.pid, its output in DIR/NAME.log) with the JVM options in JVM_OPTS.
cluster_java() {
    local dir=$1 name=$2
    shift 2
    local -a java_args
    read -r -a java_args <<<"$JVM_OPTS"
    java_args+=(
        -XX:+ExitOnOutOfMemoryError
        -Djava.net.preferIPv4Stack=true
        -Dio.netty.tryReflectionSetAccessible=true
        -Dlog4j2.configurationFile="$dir/log4j2.properties"
        -Dpulsar.log.dir="$dir"
        -Dpulsar.wire.dir="$dir/$name"
        --add-opens java.base/java.io=ALL-UNNAMED
        --add-opens java.base/java.nio=ALL-UNNAMED
        --add-opens java.base/java.lang=ALL-UNNAMED
        --add-opens java.base/java.util.zip=ALL-UNNAMED
        --add-opens java.base/sun.net=ALL-UNNAMED
        --add-opens java.base/jdk.internal.misc=ALL-UNNAMED
        --add-opens java.base/jdk.internal.platform=ALL-UNNAMED
        --add-opens java.management/sun.management=ALL-UNNAMED
        --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED
        "$@"
    )
    printf '\n===== %s apache-pulsar.sh start =====\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >> "$dir/$name.log"
    rm -f "$dir/$name.pid"
    mkdir -p "$dir/work-$name"
    (
        cd "$dir/work-$name"
        CLASSPATH=$(<"$CP_FILE")
        export CLASSPATH
        exec setsid nohup bash -c 'echo $$ > "$0"; exec java "$@"' "$dir/$name.pid" "${java_args[@]}" \
            >>"$dir/$name.log" 2>&1 </dev/null
    ) &
    local i
    for ((i = 0; i < 50; i++)); do
        [[ -s $dir/$name.pid ]] && return 0
        sleep 0.1
    done
    fail "$name: the JVM did not start (see $dir/$name.log)"
}

# cluster_lock_busy DIR NAME: whether NAME's log, since its last start, says a resource lock
# (its broker registration) was held by another session.
cluster_lock_busy() {
    [[ -s $1/$2.log ]] || return 1
    awk '/^===== .* apache-pulsar.sh start =====$/ { busy = 0 }
         /LockBusyException|is already locked/ { busy = 1 }
         END { exit busy ? 0 : 1 }' "$1/$2.log"
}

# cluster_wait_deregistered DIR I BROKERS: before broker I starts again, waits (up to 30 s)
# until no running broker lists it any more, which happens when the session of a killed
# broker I expires (metadataStoreSessionTimeoutMillis); its registration lock goes with it.
cluster_wait_deregistered() {
    local dir=$1 i=$2 brokers=$3 j web out listed deadline=$((SECONDS + 30))
    web=WEB${i}_PORT
    while ((SECONDS < deadline)); do
        listed=false
        for ((j = 0; j < brokers; j++)); do
            ((j == i)) && continue
            cluster_pid "$dir" "broker-$j" >/dev/null || continue
            out=$(cluster_admin_get "$j" /admin/v2/brokers/standalone)
            [[ ${out##*$'\n'} == 200 && $out == *"127.0.0.1:${!web}"* ]] && listed=true
        done
        [[ $listed == false ]] && return 0
        sleep 0.5
    done
    log "broker $i is still registered after 30 s; starting it anyway"
}

cluster_failed() {
    local dir=$1 name=$2 cause=$3
    log "error: $name: $cause"
    if [[ -s $dir/$name.log ]]; then
        log "last lines of $dir/$name.log:"
        tail -n 12 "$dir/$name.log" | cut -c1-400 >&2
        log "errors in $dir/$name.log since its last start:"
        awk '/^===== .* apache-pulsar.sh start =====$/ { n = 0; delete e }
             / ERROR |Exception/ && n < 15 { e[n++] = substr($0, 1, 400) }
             END { for (k = 0; k < n; k++) print e[k] }' "$dir/$name.log" >&2
    fi
    exit 1
}

# curl of broker I's admin API: prints the body, a newline and the status.
cluster_admin_get() {
    local web=WEB${1}_PORT
    curl -s -m 5 -o /dev/stdout -w '\n%{http_code}' "http://127.0.0.1:${!web}$2" 2>/dev/null || true
}

cmd_cluster_start() {
    local dir=$1 brokers=$2
    shift 2
    local -a extra=("$@")
    [[ $brokers =~ ^[1-9]$ ]] || fail "--brokers takes 1 to 9"
    if [[ -s $dir/options && ! -s $dir/cluster ]]; then
        fail "$dir holds a standalone, not a cluster"
    fi
    if is_cluster_dir "$dir" && [[ $(cluster_brokers "$dir") != "$brokers" ]]; then
        fail "$dir is a cluster of $(cluster_brokers "$dir") brokers"
    fi
    need java "a Java 17+ runtime is needed"
    need python3 "to pick free ports"
    need curl "to wait for the admin API"
    cmd_install >/dev/null
    printf 'BROKERS=%s\n' "$brokers" > "$dir/cluster"
    if [[ ${#extra[@]} -gt 0 ]]; then
        printf '%s\n' "${extra[@]}" > "$dir/cluster-config"
    elif [[ -s $dir/cluster-config ]]; then
        mapfile -t extra < "$dir/cluster-config"
    fi
    if [[ ! -s $dir/ports ]]; then
        local -a p
        read -r -a p <<<"$(free_ports $((2 + 2 * brokers)))"
        {
            printf 'ZK_PORT=%s\nBOOKIE_PORT=%s\n' "${p[0]}" "${p[1]}"
            local i
            for ((i = 0; i < brokers; i++)); do
                printf 'BROKER%s_PORT=%s\nWEB%s_PORT=%s\n' "$i" "${p[$((2 + 2 * i))]}" "$i" "${p[$((3 + 2 * i))]}"
            done
        } > "$dir/ports"
    fi
    # shellcheck source=/dev/null
    . "$dir/ports"
    write_log_conf "$dir"
    local t0=$SECONDS i deadline out port web
    local timeout=${PULSAR_START_TIMEOUT:-180}

    # The metadata store (ZooKeeper) and the bookie.
    if ! cluster_pid "$dir" meta >/dev/null; then
        for port in "$ZK_PORT" "$BOOKIE_PORT"; do
            port_free "$port" || fail "port $port of $dir is taken by another process (see $dir/ports)"
        done
        cluster_write_meta_conf "$dir"
        mkdir -p "$dir/data"
        log "starting ZooKeeper ($ZK_PORT) and a bookie ($BOOKIE_PORT) in $dir"
        JVM_OPTS=${PULSAR_META_JVM_OPTS:--Xms64m -Xmx256m -XX:MaxDirectMemorySize=256m -XX:+UseSerialGC} \
            PULSAR_STANDALONE_USE_ZOOKEEPER=1 cluster_java "$dir" meta "$MAIN_CLASS" \
            --config "$dir/meta.conf" --no-broker --no-functions-worker --no-stream-storage \
            --zookeeper-port "$ZK_PORT" --bookkeeper-port "$BOOKIE_PORT" \
            --zookeeper-dir "$dir/data/zookeeper" --bookkeeper-dir "$dir/data/bookkeeper"
        deadline=$((SECONDS + timeout))
        # Ready once the bookie has registered itself (its readonly parent is made with it).
        while :; do
            cluster_pid "$dir" meta >/dev/null || cluster_failed "$dir" meta "it exited during start"
            ((SECONDS < deadline)) || cluster_failed "$dir" meta "not ready within ${timeout}s"
            grep -qE "Bookie registered|Started component bookie-server|LocalBookkeeperEnsemble.*started|BookieServer.*started" "$dir/meta.log" 2>/dev/null && break
            sleep 0.5
        done
    fi

    # The cluster's metadata, once per DIR.
    if [[ ! -e $dir/initialized ]]; then
        log "writing the cluster metadata (PulsarClusterMetadataSetup)"
        (
            cd "$dir"
            CLASSPATH=$(<"$CP_FILE") timeout 120 java -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
                -Dlog4j2.configurationFile="$dir/log4j2.properties" -Dpulsar.wire.dir="$dir/setup" \
                "$SETUP_CLASS" --cluster standalone \
                --metadata-store "zk:127.0.0.1:$ZK_PORT" \
                --configuration-metadata-store "zk:127.0.0.1:$ZK_PORT" \
                --web-service-url "http://127.0.0.1:$WEB0_PORT" \
                --broker-service-url "pulsar://127.0.0.1:$BROKER0_PORT" >>"$dir/setup.log" 2>&1
        ) || cluster_failed "$dir" setup "PulsarClusterMetadataSetup failed"
        touch "$dir/initialized"
    fi

    # The brokers (all at once: most of their start is waiting).
    local -a started=()
    for ((i = 0; i < brokers; i++)); do
        cluster_pid "$dir" "broker-$i" >/dev/null && continue
        cluster_wait_deregistered "$dir" "$i" "$brokers"
        port=BROKER${i}_PORT web=WEB${i}_PORT
        for port in "${!port}" "${!web}"; do
            port_free "$port" || fail "port $port of $dir is taken by another process (see $dir/ports)"
        done
        cluster_write_broker_conf "$dir" "$i" "${extra[@]}"
        port=BROKER${i}_PORT
        log "starting broker $i ($BROKER_CLASS, broker ${!port}, web ${!web})"
        JVM_OPTS=${PULSAR_CLUSTER_JVM_OPTS:--Xms128m -Xmx512m -XX:MaxDirectMemorySize=256m -XX:+UseG1GC} \
            cluster_java "$dir" "broker-$i" "$BROKER_CLASS" --broker-conf "$dir/broker-$i.conf"
        started+=("$i")
    done
    deadline=$((SECONDS + timeout))
    local -A tries=()
    for i in "${started[@]}"; do
        tries[$i]=1
        while :; do
            if ! cluster_pid "$dir" "broker-$i" >/dev/null; then
                # A broker restarted soon after a SIGKILL can find its registration lock still
                # held by the dead session (ResourceLockImpl: LockBusyException) and exit; the
                # lock goes with that session, so starting it again a little later succeeds.
                if ((tries[$i] < 4)) && cluster_lock_busy "$dir" "broker-$i"; then
                    log "broker $i exited at start: its registration lock was still held by the killed broker's session; starting it again (try $((tries[$i] + 1)))"
                    tries[$i]=$((tries[$i] + 1))
                    sleep 3
                    port=BROKER${i}_PORT
                    JVM_OPTS=${PULSAR_CLUSTER_JVM_OPTS:--Xms128m -Xmx512m -XX:MaxDirectMemorySize=256m -XX:+UseG1GC} \
                        cluster_java "$dir" "broker-$i" "$BROKER_CLASS" --broker-conf "$dir/broker-$i.conf"
                    continue
                fi
                cluster_failed "$dir" "broker-$i" "it exited during start"
            fi
            ((SECONDS < deadline)) || cluster_failed "$dir" "broker-$i" "not ready within ${timeout}s"
            out=$(cluster_admin_get "$i" /admin/v2/namespaces/public)
            if [[ ${out##*$'\n'} == 200 && $out == *'"public/default"'* ]]; then
                out=$(cluster_admin_get "$i" /admin/v2/brokers/standalone)
                web=WEB${i}_PORT
                [[ $out == *"127.0.0.1:${!web}"* ]] && break
            fi
            sleep 0.5
        done
    done
    # Every broker sees every other one as available.
    while :; do
        local all=true j
        for ((i = 0; i < brokers; i++)); do
            out=$(cluster_admin_get "$i" /admin/v2/brokers/standalone)
            for ((j = 0; j < brokers; j++)); do
                web=WEB${j}_PORT
                [[ $out == *"127.0.0.1:${!web}"* ]] || all=false
            done
        done
        [[ $all == true ]] && break
        ((SECONDS < deadline)) || cluster_failed "$dir" "broker-0" "the brokers do not all see each other within ${timeout}s"
        sleep 0.5
    done

    {
        echo "PULSAR_URL=pulsar://127.0.0.1:$BROKER0_PORT"
        echo "PULSAR_HTTP_URL=http://127.0.0.1:$WEB0_PORT"
        local urls=""
        for ((i = 0; i < brokers; i++)); do
            port=BROKER${i}_PORT web=WEB${i}_PORT
            echo "PULSAR_BROKER_${i}_URL=pulsar://127.0.0.1:${!port}"
            echo "PULSAR_BROKER_${i}_HTTP_URL=http://127.0.0.1:${!web}"
            echo "PULSAR_BROKER_${i}_ID=127.0.0.1:${!web}"
            urls+="${urls:+,}127.0.0.1:${!port}"
        done
        echo "PULSAR_SERVICE_URL=pulsar://$urls"
        echo "PULSAR_BROKERS=$brokers"
    } > "$dir/env"
    local rss pid name total=0
    for name in meta $(for ((i = 0; i < brokers; i++)); do echo "broker-$i"; done); do
        pid=$(cluster_pid "$dir" "$name") || continue
        rss=$(awk '/^VmRSS:/ {printf "%d", $2 / 1024}' "/proc/$pid/status" 2>/dev/null || echo 0)
        total=$((total + rss))
        log "$name: pid $pid, RSS ${rss} MB"
    done
    log "cluster of $brokers brokers ready after $((SECONDS - t0))s (RSS ${total} MB)"
    cat "$dir/env"
}

# -------------------------------------------------------------------- main --

[[ $# -gt 0 ]] || usage
command=$1
shift
case $command in
    install) [[ $# -eq 0 ]] || usage; cmd_install ;;
    start) cmd_start "$@" ;;
    stop) [[ $# -eq 1 ]] || usage; cmd_stop "$1" ;;
    kill9) cmd_kill9 "$@" ;;
    env) [[ $# -eq 1 ]] || usage; cmd_env "$1" ;;
    token) [[ $# -ge 2 && $# -le 3 ]] || usage; cmd_token "$@" ;;
    -h|--help|help) usage ;;
    *) log "unknown command $command"; usage ;;
esac
