#!/usr/bin/env bash
# The whole test suite of pulsar-wire, and what CI runs:
#   formatting, clippy, unit and integration tests (against a local pulsar-lite broker, or the
#   Apache Pulsar at PULSAR_URL when set), doc tests, examples, and the fuzz targets' build when
#   a nightly toolchain is there.
# Usage: scripts/test.sh            (installs the local broker into .venv/ on first use)
#        PULSAR_URL=pulsar://localhost:6650 scripts/test.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

SUITE_START=$SECONDS
section() {
    printf '\n==== %s ====\n' "$*"
    STEP_START=$SECONDS
}
done_step() {
    printf -- '---- %s: %ss\n' "$1" "$((SECONDS - STEP_START))"
}

section "broker"
if [ -n "${PULSAR_URL:-}" ]; then
    echo "PULSAR_URL=$PULSAR_URL: the shared broker of the tests is that one (no local broker started)"
    # Tests that kill and restart a private broker still need pulsar-lite, when it is installed.
    if [ -z "${PULSAR_LITE_BIN:-}" ]; then
        for bin in .venv/lib/python3*/site-packages/pulsar_lite/bin/pulsar-lite; do
            if [ -x "$bin" ]; then
                PULSAR_LITE_BIN="$ROOT/$bin"
                export PULSAR_LITE_BIN
            fi
        done
    fi
else
    PULSAR_LITE_BIN=$(scripts/setup-broker.sh)
    export PULSAR_LITE_BIN
    echo "local broker: pulsar-lite at $PULSAR_LITE_BIN"
fi
done_step "broker"

section "cargo fmt --all -- --check"
cargo fmt --all -- --check
done_step "fmt"

section "cargo clippy --all-targets --features cli -- -D warnings"
cargo clippy --all-targets --features cli -- -D warnings
# The library alone, as a dependency sees it (no CLI crates).
cargo clippy --lib -- -D warnings
done_step "clippy"

section "cargo test --all-targets --features cli"
cargo test --all-targets --features cli
done_step "tests"

section "feature tests (serde) and the real-broker suite's build"
cargo test --features "serde real-broker" --test serde_json
# The real-broker suite runs only against PULSAR_URL (see the README); here it must build.
cargo build --features "serde real-broker" --tests
if [ -n "${PULSAR_URL:-}" ]; then
    cargo test --features "serde real-broker" --test real_broker
fi
done_step "feature tests"

section "cargo test --doc"
cargo test --doc
done_step "doc tests"

section "cargo build --examples"
cargo build --examples
done_step "examples"

section "fuzz targets (cargo +nightly fuzz build)"
if [ ! -d fuzz ]; then
    echo "note: no fuzz/ directory yet, skipping the fuzz build"
elif ! cargo +nightly --version >/dev/null 2>&1; then
    echo "note: no nightly toolchain (rustup toolchain install nightly), skipping the fuzz build"
else
    if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
        echo "cargo-fuzz is missing: cargo install cargo-fuzz --locked"
        if ! cargo install cargo-fuzz --locked; then
            echo "note: installing cargo-fuzz failed, skipping the fuzz build"
        fi
    fi
    if cargo +nightly fuzz --version >/dev/null 2>&1; then
        (cd fuzz && cargo +nightly fuzz build)
    fi
fi
done_step "fuzz build"

printf '\n==== all checks passed in %ss ====\n' "$((SECONDS - SUITE_START))"
