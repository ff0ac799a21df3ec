"""Produces messages read from stdin with the official client, with the producer options the
codec and chunking interop tests need (compression, batching, chunking), and prints their ids.

    codec_produce.py --url URL --topic TOPIC [--compression NONE|LZ4|ZLIB|ZSTD|SNAPPY]
                     [--batching --batch-max-messages N] [--chunking] [--timeout-s S]

Stdin holds one message a line: `PAYLOAD_HEX PROPERTIES`, where PROPERTIES is `-` for none or
`KEY_HEX=VALUE_HEX` pairs joined by commas (hex keeps any byte and any size on one line; the
command line could not carry a payload of megabytes).

With --batching the messages are queued with send_async and then flushed, so batches close at
N messages (or on the flush); otherwise each is sent with send() before the next.

Prints one {"event": "sent", "index", "ledger_id", "entry_id", "batch_index", "partition"} line
per message in the order given, then {"event": "done", "sent", "producer_name_hex"}. Exits with 1
and an {"event": "error"} line when anything fails.
"""

import argparse
import sys
import threading
import time

# common first: it moves descriptor 1 (the C++ log) to stderr before the client loads.
from common import emit, fail, id_fields, make_client  # isort: skip

import pulsar  # noqa: E402

CODECS = {
    "NONE": pulsar.CompressionType.NONE,
    "LZ4": pulsar.CompressionType.LZ4,
    "ZLIB": pulsar.CompressionType.ZLib,
    "ZSTD": pulsar.CompressionType.ZSTD,
    "SNAPPY": pulsar.CompressionType.SNAPPY,
}


def read_messages(stream):
    messages = []
    for n, line in enumerate(stream):
        line = line.rstrip("\r\n")
        if not line:
            continue
        fields = line.split(" ")
        if len(fields) != 2:
            fail("stdin line %d: expected `PAYLOAD_HEX PROPERTIES`" % (n + 1))
        payload = bytes.fromhex(fields[0])
        properties = {}
        if fields[1] != "-":
            for pair in fields[1].split(","):
                key, value = pair.split("=")
                properties[bytes.fromhex(key).decode("utf-8")] = bytes.fromhex(value).decode("utf-8")
        messages.append((payload, properties))
    return messages


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--compression", choices=sorted(CODECS), default="NONE")
    parser.add_argument("--batching", action="store_true")
    parser.add_argument("--batch-max-messages", type=int, default=1000)
    parser.add_argument("--chunking", action="store_true")
    parser.add_argument("--timeout-s", type=float, default=60.0)
    args = parser.parse_args()
    if args.batching and args.chunking:
        fail("--batching and --chunking do not mix")
    messages = read_messages(sys.stdin)

    client = make_client(args.url)
    try:
        producer = client.create_producer(
            args.topic,
            compression_type=CODECS[args.compression],
            batching_enabled=args.batching,
            batching_max_messages=args.batch_max_messages,
            # Batches close on their count or on the flush, never on time.
            batching_max_publish_delay_ms=60000,
            batching_max_allowed_size_in_bytes=64 * 1024 * 1024,
            chunking_enabled=args.chunking,
            block_if_queue_full=True,
            send_timeout_millis=int(args.timeout_s * 1000),
            max_pending_messages=max(1000, len(messages)),
        )
        ids = [None] * len(messages)
        if args.batching:
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

            for i, (payload, properties) in enumerate(messages):
                producer.send_async(payload, callback_for(i), properties=properties or None)
            producer.flush()
            deadline = time.monotonic() + args.timeout_s
            with done:
                while count[0] < len(messages):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        fail("only %d of %d send callbacks came" % (count[0], len(messages)))
                    done.wait(left)
            if errors:
                fail("; ".join(errors))
        else:
            for i, (payload, properties) in enumerate(messages):
                ids[i] = producer.send(payload, properties=properties or None)
        for i, msg_id in enumerate(ids):
            line = {"event": "sent", "index": i}
            line.update(id_fields(msg_id))
            emit(line)
        name = producer.producer_name()
        producer.close()
        emit({"event": "done", "sent": len(messages), "producer_name_hex": name.encode("utf-8").hex()})
    except SystemExit:
        raise
    except Exception as e:  # reported as JSON, not as a traceback only
        fail("%s: %s" % (type(e).__name__, e))
    finally:
        client.close()


if __name__ == "__main__":
    main()
