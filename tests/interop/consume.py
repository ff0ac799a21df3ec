"""Consumes with the official client (Shared subscription, from the earliest message) and prints
every message it receives.

    consume.py --url URL --topic TOPIC --subscription SUB --count N [--timeout-s S]
               [--extra-wait-ms MS]

Prints {"event": "subscribed"}, then one {"event": "message", ...} line per message (acknowledged
after it is printed): data_b64, data_text (null unless UTF-8), properties, partition_key,
ordering_key, event_timestamp, publish_timestamp, redelivery_count, topic, producer_name and the
id (message_id as str(), ledger_id, entry_id, batch_index, partition). After N messages it waits
--extra-wait-ms more and prints whatever else comes (so the caller sees duplicates), then
{"event": "done", "received": K}. When S seconds pass before N messages it prints
{"event": "timeout", "received": K} instead and exits with 0: the caller asserts the count.
"""

import argparse
import time

# common first: it moves descriptor 1 (the C++ log) to stderr before the client loads.
from common import b64, emit, fail, id_fields, make_client, text  # isort: skip

import pulsar  # noqa: E402


def report(msg):
    data = msg.data()
    try:
        data_text = data.decode("utf-8")
    except UnicodeDecodeError:
        data_text = None
    line = {
        "event": "message",
        "data_b64": b64(data),
        "data_text": data_text,
        "properties": {text(k): text(v) for k, v in msg.properties().items()},
        "partition_key": text(msg.partition_key()),
        "ordering_key": text(msg.ordering_key()),
        "event_timestamp": msg.event_timestamp(),
        "publish_timestamp": msg.publish_timestamp(),
        "redelivery_count": msg.redelivery_count(),
        "topic": msg.topic_name(),
        "producer_name": msg.producer_name(),
    }
    line.update(id_fields(msg.message_id()))
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
            # Anything beyond the expected count is a duplicate or a stray: report it too.
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
