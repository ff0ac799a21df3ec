"""Consumes with the official client (Shared subscription, from the earliest message) and prints
every message it receives in a form the codec and chunking interop tests read without a JSON
library: payload and properties as hex.

    codec_consume.py --url URL --topic TOPIC --subscription SUB --count N [--timeout-s S]
                     [--extra-wait-ms MS]

Prints {"event": "subscribed"}, then one {"event": "message", "payload_hex", "properties_hex",
"ledger_id", "entry_id", "batch_index", "partition", ...} line per message (acknowledged after it
is printed), where properties_hex is `-` for none or `KEY_HEX=VALUE_HEX` pairs sorted by key and
joined by commas. After N messages it waits --extra-wait-ms more and prints whatever else comes
(so the caller sees duplicates), then {"event": "done", "received": K}; when S seconds pass before
N messages, {"event": "timeout", "received": K} instead (exit status 0: the caller asserts).
"""

import argparse
import time

# common first: it moves descriptor 1 (the C++ log) to stderr before the client loads.
from common import emit, fail, id_fields, make_client, text  # isort: skip

import pulsar  # noqa: E402


def hex_properties(properties):
    pairs = sorted((text(k).encode("utf-8"), text(v).encode("utf-8")) for k, v in properties.items())
    if not pairs:
        return "-"
    return ",".join("%s=%s" % (k.hex(), v.hex()) for k, v in pairs)


def report(msg):
    line = {
        "event": "message",
        "payload_hex": msg.data().hex(),
        "properties_hex": hex_properties(msg.properties()),
        "redelivery_count": msg.redelivery_count(),
    }
    line.update(id_fields(msg.message_id()))
    del line["message_id"]
    emit(line)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--subscription", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--timeout-s", type=float, default=30.0)
    parser.add_argument("--extra-wait-ms", type=int, default=1000)
    args = parser.parse_args()

    client = make_client(args.url)
    try:
        consumer = client.subscribe(
            args.topic,
            args.subscription,
            consumer_type=pulsar.ConsumerType.Shared,
            initial_position=pulsar.InitialPosition.Earliest,
        )
        emit({"event": "subscribed"})
        received = 0
        deadline = time.monotonic() + args.timeout_s
        timed_out = False
        while received < args.count:
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
                    msg = consumer.receive(timeout_millis=max(1, args.extra_wait_ms))
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
