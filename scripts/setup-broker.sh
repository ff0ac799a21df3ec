#!/usr/bin/env bash
# Installs the local test broker (pulsar-lite) and the official Python client (the interop peer)
# with fastavro (which the client's AvroSchema needs, for the schema interop tests) into a
# project-local virtualenv, .venv/ at the repository root. Idempotent: pip runs only when
# a pinned version is missing. Prints the broker binary's path on stdout.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${PULSAR_WIRE_VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3}
PULSAR_LITE_VERSION=0.2.0
PULSAR_CLIENT_VERSION=3.13.0
FASTAVRO_VERSION=1.13.1

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup-broker: creating $VENV" >&2
    "$PYTHON" -m venv "$VENV"
fi
if ! "$VENV/bin/python" - "$PULSAR_LITE_VERSION" "$PULSAR_CLIENT_VERSION" "$FASTAVRO_VERSION" <<'PYEOF'
import sys
from importlib import metadata
want = {"pulsar-lite": sys.argv[1], "pulsar-client": sys.argv[2], "fastavro": sys.argv[3]}
try:
    ok = all(metadata.version(k) == v for k, v in want.items())
except metadata.PackageNotFoundError:
    ok = False
sys.exit(0 if ok else 1)
PYEOF
then
    echo "setup-broker: pip install pulsar-lite==$PULSAR_LITE_VERSION pulsar-client==$PULSAR_CLIENT_VERSION fastavro==$FASTAVRO_VERSION" >&2
    "$VENV/bin/pip" install -q --disable-pip-version-check \
        "pulsar-lite==$PULSAR_LITE_VERSION" "pulsar-client==$PULSAR_CLIENT_VERSION" \
        "fastavro==$FASTAVRO_VERSION"
fi
BROKER_BIN=$(ls "$VENV"/lib/python3*/site-packages/pulsar_lite/bin/pulsar-lite 2>/dev/null | sed -n 1p)
if [ -z "$BROKER_BIN" ]; then
    echo "setup-broker: the pulsar-lite binary is not in $VENV" >&2
    exit 1
fi
chmod +x "$BROKER_BIN"
echo "$BROKER_BIN"
