"""Consumes with the official client's Python schemas (AvroSchema, JsonSchema; see
schema_records.py): Shared, from the earliest message, acknowledging each.

    schema_consume.py < SPEC

SPEC is one JSON object on stdin: {"url", "topic", "schema", "definition"?, "subscription"
(default py-sub), "count", "timeout_ms" (default 60000)}. Prints {"event": "subscribed"}, one
{"event": "message", "value" (the decoded record as a JSON object, or null with "value_error"),
"payload_hex", "schema_version" (the 8-byte version as a number; null without one),
"schema_version_hex", "key", "properties", ids} line per message, then {"event": "done",
"received"}; an {"event": "error"} line and exit status 1 on any failure (also when `count`
messages did not come in time).
"""

import json
import sys
import time

from common import emit, fail, id_fields, make_client, text  # isort: skip
from schema_records import make_schema, to_json  # noqa: E402

import pulsar  # noqa: E402


def version_of(raw):
    if not raw:
        return None, None
    data = raw.encode("latin-1") if isinstance(raw, str) else bytes(raw)
    number = int.from_bytes(data, "big", signed=True) if len(data) == 8 else None
    return number, data.hex()


def main():
    spec = json.load(sys.stdin)
    client = make_client(spec["url"])
    try:
        schema, _ = make_schema(spec)
        consumer = client.subscribe(
            spec["topic"],
            spec.get("subscription", "py-sub"),
            schema=schema,
            consumer_type=pulsar.ConsumerType.Shared,
            initial_position=pulsar.InitialPosition.Earliest,
        )
        emit({"event": "subscribed"})
        deadline = time.monotonic() + spec.get("timeout_ms", 60000) / 1000.0
        received = 0
        while received < spec["count"]:
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0:
                fail("timed out: %d of %d messages" % (received, spec["count"]))
            try:
                msg = consumer.receive(timeout_millis=min(left_ms, 1000))
            except pulsar.Timeout:
                continue
            number, hexed = version_of(msg.schema_version())
            line = {
                "event": "message",
                "payload_hex": msg.data().hex(),
                "schema_version": number,
                "schema_version_hex": hexed,
                "key": msg.partition_key() or None,
                "properties": {text(k): text(v) for k, v in msg.properties().items()},
            }
            try:
                line["value"] = to_json(msg.value())
            except Exception as e:  # the test asserts on it
                line["value"] = None
                line["value_error"] = "%s: %s" % (type(e).__name__, e)
            line.update(id_fields(msg.message_id()))
            emit(line)
            consumer.acknowledge(msg)
            received += 1
        consumer.close()
        emit({"event": "done", "received": received})
    except SystemExit:
        raise
    except Exception as e:
        fail("%s: %s" % (type(e).__name__, e))
    finally:
        client.close()


if __name__ == "__main__":
    main()
