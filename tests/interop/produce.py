"""Produces messages with the official client and prints the id of each.

    produce.py --url URL --topic TOPIC --messages JSON [--batching --batch-max-messages N
               --batch-delay-ms MS] [--hashing python-default|murmur3] [--timeout-s S]

--messages is a JSON list of {"data_b64", "properties", "partition_key", "ordering_key",
"event_timestamp"} (every field but data_b64 may be null or missing).

Prints one {"event": "sent", "index", "message_id", "ledger_id", "entry_id", "batch_index",
"partition"} line per message, in the order given, then {"event": "done", ...}. Exits with 1 and
an {"event": "error"} line when anything fails.

--hashing murmur3 routes keyed messages with the official client's Murmur3_32Hash. The Python
API (pulsar-client 3.x) has no hashing-scheme option and leaves the C++ default (BoostHash), so
this mode drives the same bundled libpulsar through its C API, where
pulsar_producer_configuration_set_hashing_scheme exists. That mode prints no message ids.
"""

import argparse
import ctypes
import glob
import os
import sys
import threading
import time

# common first: it moves descriptor 1 (the C++ log) to stderr before the client loads.
from common import emit, fail, id_fields, load_messages, make_client, unb64  # isort: skip

import pulsar  # noqa: E402


def produce_python(args, specs):
    client = make_client(args.url)
    try:
        producer = client.create_producer(
            args.topic,
            batching_enabled=args.batching,
            batching_max_messages=args.batch_max_messages,
            batching_max_publish_delay_ms=args.batch_delay_ms,
            block_if_queue_full=True,
            send_timeout_millis=int(args.timeout_s * 1000),
            max_pending_messages=max(1000, len(specs)),
        )
        ids = [None] * len(specs)
        errors = []
        done = threading.Condition()
        count = [0]

        def kwargs(spec):
            kw = {}
            if spec.get("properties"):
                kw["properties"] = dict(spec["properties"])
            if spec.get("partition_key") is not None:
                kw["partition_key"] = spec["partition_key"]
            if spec.get("ordering_key") is not None:
                kw["ordering_key"] = spec["ordering_key"]
            if spec.get("event_timestamp") is not None:
                kw["event_timestamp"] = int(spec["event_timestamp"])
            return kw

        if args.batching:
            # send_async then flush: messages queued together share batches.
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

            for i, spec in enumerate(specs):
                producer.send_async(unb64(spec["data_b64"]), callback_for(i), **kwargs(spec))
            producer.flush()
            deadline = time.monotonic() + args.timeout_s
            with done:
                while count[0] < len(specs):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        fail("only %d of %d send callbacks came" % (count[0], len(specs)))
                    done.wait(left)
        else:
            for i, spec in enumerate(specs):
                ids[i] = producer.send(unb64(spec["data_b64"]), **kwargs(spec))
        if errors:
            fail("; ".join(errors))
        for i, msg_id in enumerate(ids):
            line = {"event": "sent", "index": i}
            line.update(id_fields(msg_id))
            emit(line)
        name = producer.producer_name()
        producer.close()
        emit({"event": "done", "sent": len(specs), "producer_name": name})
    finally:
        client.close()


# --- the C API of the bundled libpulsar (for --hashing murmur3) ---------------------------------

PULSAR_MURMUR3_32_HASH = 0  # pulsar_hashing_scheme: Murmur3_32Hash, BoostHash, JavaStringHash
PULSAR_ROUND_ROBIN_DISTRIBUTION = 1  # pulsar_partitions_routing_mode
PULSAR_RESULT_OK = 0

LOGGER = ctypes.CFUNCTYPE(
    None, ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p
)


def libpulsar():
    pattern = os.path.join(os.path.dirname(pulsar.__file__), "..", "pulsar_client.libs", "libpulsar*.so*")
    found = sorted(glob.glob(pattern))
    if not found:
        fail("the official client's libpulsar is not at " + pattern)
    lib = ctypes.CDLL(found[0])
    v, p, s, i = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int
    for name, restype, argtypes in [
        ("pulsar_client_configuration_create", v, []),
        ("pulsar_client_configuration_free", None, [v]),
        ("pulsar_client_configuration_set_logger", None, [v, LOGGER, v]),
        ("pulsar_client_configuration_set_operation_timeout_seconds", None, [v, i]),
        ("pulsar_client_create", v, [p, v]),
        ("pulsar_client_create_producer", i, [v, p, v, ctypes.POINTER(v)]),
        ("pulsar_client_close", i, [v]),
        ("pulsar_client_free", None, [v]),
        ("pulsar_producer_configuration_create", v, []),
        ("pulsar_producer_configuration_free", None, [v]),
        ("pulsar_producer_configuration_set_hashing_scheme", None, [v, i]),
        ("pulsar_producer_configuration_set_partitions_routing_mode", None, [v, i]),
        ("pulsar_producer_configuration_set_batching_enabled", None, [v, i]),
        ("pulsar_producer_configuration_set_send_timeout", None, [v, i]),
        ("pulsar_producer_send", i, [v, v]),
        ("pulsar_producer_close", i, [v]),
        ("pulsar_producer_free", None, [v]),
        ("pulsar_message_create", v, []),
        ("pulsar_message_free", None, [v]),
        ("pulsar_message_set_content", None, [v, p, s]),
        ("pulsar_message_set_property", None, [v, p, p]),
        ("pulsar_message_set_partition_key", None, [v, p]),
        ("pulsar_message_set_ordering_key", None, [v, p]),
        ("pulsar_message_set_event_timestamp", None, [v, ctypes.c_uint64]),
        ("pulsar_result_str", p, [i]),
    ]:
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    return lib


def produce_c_api_murmur3(args, specs):
    lib = libpulsar()

    def log(level, file, line, message, ctx):
        if level >= 2:  # warn and error
            sys.stderr.write("libpulsar: %s\n" % message.decode("utf-8", "replace"))

    log_callback = LOGGER(log)  # kept alive until the client is freed
    def check(what, result):
        if result != PULSAR_RESULT_OK:
            fail("%s: %s" % (what, lib.pulsar_result_str(result).decode()))

    client_conf = lib.pulsar_client_configuration_create()
    lib.pulsar_client_configuration_set_logger(client_conf, log_callback, None)
    lib.pulsar_client_configuration_set_operation_timeout_seconds(client_conf, 15)
    client = lib.pulsar_client_create(args.url.encode(), client_conf)
    conf = lib.pulsar_producer_configuration_create()
    lib.pulsar_producer_configuration_set_hashing_scheme(conf, PULSAR_MURMUR3_32_HASH)
    lib.pulsar_producer_configuration_set_partitions_routing_mode(conf, PULSAR_ROUND_ROBIN_DISTRIBUTION)
    lib.pulsar_producer_configuration_set_batching_enabled(conf, 0)
    lib.pulsar_producer_configuration_set_send_timeout(conf, int(args.timeout_s * 1000))
    producer = ctypes.c_void_p()
    try:
        check("create producer", lib.pulsar_client_create_producer(client, args.topic.encode(), conf, ctypes.byref(producer)))
        for i, spec in enumerate(specs):
            data = unb64(spec["data_b64"])
            msg = lib.pulsar_message_create()
            try:
                lib.pulsar_message_set_content(msg, data, len(data))
                for k, v in (spec.get("properties") or {}).items():
                    lib.pulsar_message_set_property(msg, k.encode(), v.encode())
                if spec.get("partition_key") is not None:
                    lib.pulsar_message_set_partition_key(msg, spec["partition_key"].encode())
                if spec.get("ordering_key") is not None:
                    lib.pulsar_message_set_ordering_key(msg, spec["ordering_key"].encode())
                if spec.get("event_timestamp") is not None:
                    lib.pulsar_message_set_event_timestamp(msg, int(spec["event_timestamp"]))
                check("send message %d" % i, lib.pulsar_producer_send(producer, msg))
            finally:
                lib.pulsar_message_free(msg)
            emit({"event": "sent", "index": i})
        check("close producer", lib.pulsar_producer_close(producer))
        emit({"event": "done", "sent": len(specs)})
    finally:
        if producer:
            lib.pulsar_producer_free(producer)
        lib.pulsar_producer_configuration_free(conf)
        lib.pulsar_client_close(client)
        lib.pulsar_client_free(client)
        lib.pulsar_client_configuration_free(client_conf)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--messages", required=True)
    parser.add_argument("--batching", action="store_true")
    parser.add_argument("--batch-max-messages", type=int, default=1000)
    parser.add_argument("--batch-delay-ms", type=int, default=10)
    parser.add_argument("--hashing", choices=["python-default", "murmur3"], default="python-default")
    parser.add_argument("--timeout-s", type=float, default=30.0)
    args = parser.parse_args()
    specs = load_messages(args.messages)
    try:
        if args.hashing == "murmur3":
            if args.batching:
                fail("--hashing murmur3 sends unbatched")
            produce_c_api_murmur3(args, specs)
        else:
            produce_python(args, specs)
    except SystemExit:
        raise
    except Exception as e:  # reported as JSON, not as a traceback only
        fail("%s: %s" % (type(e).__name__, e))


if __name__ == "__main__":
    main()
