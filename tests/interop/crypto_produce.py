"""Produces encrypted messages with the official client (the C++ client through its Python
wrapper) for tests/interop_encryption.rs, and prints their ids.

    crypto_produce.py < SPEC

SPEC is one JSON object on stdin: url, topic, messages (a list of {"data_b64", "properties"}),
encryption_keys (key names, at least one), public_key and private_key (PEM file paths: the
client's CryptoKeyReader takes one public and one private key for every name), compression
(NONE, LZ4, ZLIB, ZSTD, SNAPPY), batching with batch_max_messages, chunking, timeout_s.

The Python API takes one encryption key name (encryption_key=); the C++ ProducerConfiguration
under it adds one per call (addEncryptionKey), so a second name is added to the configuration
the wrapper built, just before the producer is created.

Prints one {"event": "sent", "index", "ledger_id", "entry_id", "batch_index", "partition",
"message_id"} line per message, in order, then {"event": "done", "sent", "producer_name"}. On
any failure an {"event": "error"} line and exit status 1.
"""

import json
import sys
import threading
import time

# common first: it moves descriptor 1 (the C++ log) to stderr before the client loads.
from common import emit, fail, id_fields, make_client, unb64  # isort: skip

import pulsar  # noqa: E402


class _ExtraKeyNames:
    """Stands for the wrapper's native client: adds the extra key names to the producer
    configuration it is handed, then creates the producer."""

    def __init__(self, inner, names):
        self._inner = inner
        self._names = names

    def create_producer(self, topic, conf):
        for name in self._names:
            conf.encryption_key(name)
        return self._inner.create_producer(topic, conf)

    def __getattr__(self, name):
        return getattr(self._inner, name)


def main():
    spec = json.load(sys.stdin)
    names = spec["encryption_keys"]
    if not names:
        fail("encryption_keys is empty")
    timeout_s = float(spec.get("timeout_s", 60))
    messages = spec.get("messages", [])
    batching = bool(spec.get("batching", False))
    client = make_client(spec["url"])
    try:
        native = client._client
        if len(names) > 1:
            client._client = _ExtraKeyNames(native, names[1:])
        try:
            producer = client.create_producer(
                spec["topic"],
                encryption_key=names[0],
                crypto_key_reader=pulsar.CryptoKeyReader(
                    spec["public_key"], spec.get("private_key", spec["public_key"])
                ),
                compression_type=getattr(pulsar.CompressionType, spec.get("compression", "NONE")),
                batching_enabled=batching,
                batching_max_messages=int(spec.get("batch_max_messages", 1000)),
                batching_max_publish_delay_ms=60000,
                batching_max_allowed_size_in_bytes=64 * 1024 * 1024,
                chunking_enabled=bool(spec.get("chunking", False)),
                block_if_queue_full=True,
                send_timeout_millis=int(timeout_s * 1000),
                max_pending_messages=max(1000, len(messages)),
            )
        finally:
            client._client = native
        ids = [None] * len(messages)
        errors = []
        done = threading.Condition()
        count = [0]

        def callback_for(i):
            def callback(res, msg_id):
                with done:
                    if res == pulsar.Result.Ok:
                        ids[i] = msg_id
                    else:
                        errors.append("message %d: %s" % (i, res))
                    count[0] += 1
                    done.notify_all()

            return callback

        for i, m in enumerate(messages):
            kw = {}
            if m.get("properties"):
                kw["properties"] = dict(m["properties"])
            data = unb64(m["data_b64"])
            if batching:
                producer.send_async(data, callback_for(i), **kw)
            else:
                ids[i] = producer.send(data, **kw)
                count[0] += 1
        producer.flush()
        deadline = time.monotonic() + timeout_s
        with done:
            while count[0] < len(messages):
                left = deadline - time.monotonic()
                if left <= 0:
                    fail("only %d of %d send callbacks came" % (count[0], len(messages)))
                done.wait(left)
        if errors:
            fail("; ".join(errors))
        for i, msg_id in enumerate(ids):
            line = {"event": "sent", "index": i}
            line.update(id_fields(msg_id))
            emit(line)
        name = producer.producer_name()
        producer.close()
        emit({"event": "done", "sent": len(messages), "producer_name": name})
    except SystemExit:
        raise
    except Exception as e:  # reported as JSON, not as a traceback only
        fail("%s: %s" % (type(e).__name__, e))
    finally:
        client.close()


if __name__ == "__main__":
    main()
