"""Shared by the interop helper scripts that tests/interop.rs runs with the official client.

Output protocol: one JSON object per line on stdout, nothing else. The official client (C++)
writes its log to file descriptor 1, so on import this module keeps a private copy of stdout for
the JSON lines and points descriptor 1 at stderr: whatever else is printed goes to stderr.
"""

import base64
import json
import os
import sys

# Before the client starts any thread: the JSON goes to a duplicate of the real stdout, and
# descriptor 1 (the C++ log, stray prints) becomes stderr.
sys.stdout.flush()
_JSON_OUT = os.fdopen(os.dup(1), "w", encoding="ascii")
os.dup2(2, 1)

import pulsar  # noqa: E402  (after the redirection)


def make_client(url):
    return pulsar.Client(
        url,
        operation_timeout_seconds=15,
        connection_timeout_ms=10000,
        logger=pulsar.ConsoleLogger(pulsar.LoggerLevel.Warn),
    )


def emit(obj):
    _JSON_OUT.write(json.dumps(obj, ensure_ascii=True, sort_keys=True) + "\n")
    _JSON_OUT.flush()


def fail(message):
    """Reports an error as a JSON line and on stderr, then exits with status 1."""
    emit({"event": "error", "message": message})
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
    sys.exit(1)


def b64(data):
    return base64.b64encode(bytes(data)).decode("ascii")


def unb64(text):
    return base64.b64decode(text.encode("ascii"), validate=True)


def id_fields(msg_id):
    return {
        "message_id": str(msg_id),
        "ledger_id": msg_id.ledger_id(),
        "entry_id": msg_id.entry_id(),
        "batch_index": msg_id.batch_index(),
        "partition": msg_id.partition(),
    }


def text(value):
    """A str as is; bytes as UTF-8 text (the client may hand either)."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return value


def load_messages(arg):
    """The --messages argument: a JSON list of
    {"data_b64", "properties", "partition_key", "ordering_key", "event_timestamp"}."""
    specs = json.loads(arg)
    if not isinstance(specs, list):
        fail("--messages must be a JSON list")
    return specs
