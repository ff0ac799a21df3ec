#!/usr/bin/env bash
# The whole test suite of pulsar-wire, and what CI runs:
#   formatting, clippy, unit and integration tests against a local pulsar-lite broker (the fast
#   default), the Apache-specific suites (real-broker, apache_security) against Apache Pulsar,
#   then the conformance, interop, fault and TLS suites a second time against Apache Pulsar
#   (PULSAR_WIRE_BROKER=apache), the seed flow, conformance and fault suites through the Pulsar
#   proxy (PULSAR_WIRE_BROKER=apache-proxy), the chaos suite and a 2-minute soak on a two-broker
#   Apache Pulsar cluster (the `chaos` feature), doc tests, examples, and the fuzz targets' build.
# Apache Pulsar comes from scripts/apache-pulsar.sh (installed here with Maven on first use; it
# needs Java 17+ and Maven); each test binary starts and stops its own standalone.
# Usage: scripts/test.sh            (installs the local brokers on first use)
#        PULSAR_URL=pulsar://localhost:6650 scripts/test.sh
#            (the shared broker of the default pass is that one; the Apache pass still starts
#            its own)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

SUITE_START=$SECONDS
section() {
    printf '\n==== %s ====\n' "$*"
    STEP_START=$SECONDS
}
SUMMARY=()
done_step() {
    printf -- '---- %s: %ss\n' "$1" "$((SECONDS - STEP_START))"
    SUMMARY+=("$(printf '%6ss  %s' "$((SECONDS - STEP_START))" "$1")")
}

section "brokers (pulsar-lite, Apache Pulsar)"
if [ -n "${PULSAR_URL:-}" ]; then
    echo "PULSAR_URL=$PULSAR_URL: the shared broker of the default pass is that one"
fi
if [ -z "${PULSAR_LITE_BIN:-}" ]; then
    PULSAR_LITE_BIN=$(scripts/setup-broker.sh)
fi
export PULSAR_LITE_BIN
echo "pulsar-lite at $PULSAR_LITE_BIN"
scripts/apache-pulsar.sh install
done_step "brokers"

section "cargo fmt --all -- --check"
cargo fmt --all -- --check
done_step "fmt"

section "cargo clippy --all-targets --features \"cli chaos\" -- -D warnings"
cargo clippy --all-targets --features "cli chaos" -- -D warnings
# The library alone, as a dependency sees it (no CLI crates).
cargo clippy --lib -- -D warnings
# Without the default features (no HTTP client): pulsar:// and pulsar+ssl:// only.
cargo clippy --lib --no-default-features -- -D warnings
done_step "clippy"

section "cargo test --all-targets --features cli"
cargo test --all-targets --features cli --no-fail-fast
done_step "tests"

section "feature tests (serde) and the real-broker suite (Apache Pulsar)"
cargo test --features "serde real-broker" --test serde_json
cargo test --features "serde real-broker" --test real_broker
done_step "feature tests"

section "conformance, interop, fault and TLS suites on Apache Pulsar (PULSAR_WIRE_BROKER=apache)"
# One standalone per test binary (the binaries run one after another); PULSAR_URL is not used.
env -u PULSAR_URL PULSAR_WIRE_BROKER=apache cargo test --no-fail-fast \
    --test conformance --test interop --test interop_encryption --test interop_codecs --test faults \
    --test tls --test stats --test metrics --test partitioned_producer --test consumer_api \
    --test subscription_options --test tracing --test receiver_queue --test memory_at_scale
done_step "suites on Apache Pulsar"

section "seed flow, conformance and fault suites through the Pulsar proxy (PULSAR_WIRE_BROKER=apache-proxy)"
# The clients get the proxy's URL; the fault tests kill -9 and restart the broker and its proxy.
# (tests/apache_proxy.rs, in the default pass, has the proxy's own: TLS, tokens, kill -9 of one
# of the two, resets and stalls.)
env -u PULSAR_URL PULSAR_WIRE_BROKER=apache-proxy cargo test --no-fail-fast \
    --test seed_flow --test conformance --test faults
done_step "suites through the Pulsar proxy"

section "chaos on a two-broker Apache Pulsar cluster, and the soak (cargo test --features chaos)"
# One cluster per test binary (scripts/apache-pulsar.sh start --brokers 2): topic unloads, bundle
# unloads and kill -9 of a broker under four subscription types, partitioned and not; then the
# 2-minute soak (PULSAR_WIRE_SOAK_SECS) with every kind of fault through the fault proxy. Their
# report lines (recovery times, the loss report) are printed.
env -u PULSAR_URL cargo test --features chaos --no-fail-fast --test chaos_cluster --test soak \
    -- --nocapture
# Every connection through the fault proxy, on an Apache Pulsar standalone: latency, stalls,
# resets, half-open connections, byte-at-a-time delivery, refused connections.
env -u PULSAR_URL PULSAR_WIRE_BROKER=apache cargo test --features chaos --no-fail-fast \
    --test chaos_network -- --nocapture
done_step "chaos and soak"

section "cargo test --doc"
cargo test --doc
done_step "doc tests"

section "cargo build --examples"
cargo build --examples
done_step "examples"

section "fuzz targets' build"
# cargo-fuzz needs a nightly toolchain; without one the targets are built on stable with
# RUSTC_BOOTSTRAP=1 and the flags cargo fuzz passes (coverage instrumentation, --cfg fuzzing),
# so that they keep compiling. --target, as cargo fuzz does, keeps RUSTFLAGS off the build
# scripts and proc macros (instrumented, they would not link). Their own target directory keeps these flags away from the
# main build's cache.
FUZZ_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}/fuzz"
if cargo +nightly fuzz --version >/dev/null 2>&1; then
    (cd fuzz && CARGO_TARGET_DIR="$FUZZ_TARGET_DIR" cargo +nightly fuzz build)
else
    echo "no cargo-fuzz on nightly: building the fuzz targets on stable with RUSTC_BOOTSTRAP=1"
    RUSTC_BOOTSTRAP=1 RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table -Cllvm-args=-sanitizer-coverage-trace-compares" \
        cargo build --release --manifest-path fuzz/Cargo.toml --target-dir "$FUZZ_TARGET_DIR" \
        --target "$(rustc -vV | sed -n 's/^host: //p')" --bins
fi
done_step "fuzz build"

printf '\n==== step times ====\n'
printf '%s\n' "${SUMMARY[@]}"
printf '\n==== all checks passed in %ss ====\n' "$((SECONDS - SUITE_START))"
