"""Consumes (possibly encrypted) messages with the official client (the C++ client through its
Python wrapper) for tests/interop_encryption.rs, and prints every message it receives.

    crypto_consume.py < SPEC

SPEC is one JSON object on stdin: url, topic, subscription, count (the messages to wait for),
private_key and public_key (PEM file paths for the client's CryptoKeyReader, which takes one of
each for every key name; without private_key the consumer has no key reader), crypto_failure_action
(FAIL, DISCARD, CONSUME; default FAIL), timeout_s (for the count; default 40), quiet_ms (then
go on receiving that long, for messages that should not come; default 1000).

Prints {"event": "subscribed"}, then one {"event": "message"} line per message (acknowledged
after it is printed): data_b64, properties, the id, and "encrypted": whether it came undecrypted
(its encryption context says the decryption failed), with, when it has an encryption context,
"context": {keys: [{name, value_b64, metadata}], param_b64, algorithm, compression,
uncompressed_size, batch_size, decryption_failed}. Then {"event": "done", "received": K}, or
{"event": "timeout", "received": K} when the count did not come in time (exit status 0: the
caller asserts).
"""

import json
import sys
import time

# common first: it moves descriptor 1 (the C++ log) to stderr before the client loads.
from common import b64, emit, fail, id_fields, make_client, text  # isort: skip

import pulsar  # noqa: E402


def context_of(msg):
    ctx = msg.encryption_context()
    if ctx is None:
        return None
    return {
        "keys": [
            {"name": k.key, "value_b64": b64(k.value), "metadata": {text(a): text(b) for a, b in k.metadata.items()}}
            for k in ctx.keys()
        ],
        "param_b64": b64(ctx.param()),
        "algorithm": ctx.algorithm(),
        "compression": str(ctx.compression_type()),
        "uncompressed_size": ctx.uncompressed_message_size(),
        "batch_size": ctx._context.batch_size(),
        "decryption_failed": ctx._context.is_decryption_failed(),
    }


def report(msg):
    context = context_of(msg)
    line = {
        "event": "message",
        "data_b64": b64(msg.data()),
        "properties": {text(k): text(v) for k, v in msg.properties().items()},
        "encrypted": bool(context and context["decryption_failed"]),
        "context": context,
    }
    line.update(id_fields(msg.message_id()))
    emit(line)


def main():
    spec = json.load(sys.stdin)
    count = int(spec["count"])
    timeout_s = float(spec.get("timeout_s", 40))
    quiet_ms = int(spec.get("quiet_ms", 1000))
    kw = {}
    if spec.get("private_key"):
        kw["crypto_key_reader"] = pulsar.CryptoKeyReader(spec.get("public_key", spec["private_key"]), spec["private_key"])
    action = spec.get("crypto_failure_action", "FAIL")
    client = make_client(spec["url"])
    try:
        consumer = client.subscribe(
            spec["topic"],
            spec.get("subscription", "official-sub"),
            consumer_type=pulsar.ConsumerType.Shared,
            initial_position=pulsar.InitialPosition.Earliest,
            crypto_failure_action=getattr(pulsar.ConsumerCryptoFailureAction, action),
            **kw
        )
        emit({"event": "subscribed"})
        received = 0
        deadline = time.monotonic() + timeout_s
        timed_out = False
        while received < count:
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0:
                timed_out = True
                break
            try:
                msg = consumer.receive(timeout_millis=min(left_ms, 1000))
            except pulsar.Timeout:
                continue
            report(msg)
            consumer.acknowledge(msg)
            received += 1
        if not timed_out:
            while True:
                try:
                    msg = consumer.receive(timeout_millis=max(1, quiet_ms))
                except pulsar.Timeout:
                    break
                report(msg)
                consumer.acknowledge(msg)
                received += 1
        consumer.close()
        emit({"event": "timeout" if timed_out else "done", "received": received})
    except SystemExit:
        raise
    except Exception as e:
        fail("%s: %s" % (type(e).__name__, e))
    finally:
        client.close()


if __name__ == "__main__":
    main()
