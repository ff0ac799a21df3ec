#!/usr/bin/env python3
"""Writes a small seed corpus for the fuzz targets into fuzz/corpus/<target>/: valid frames of
every kind (a simple command, SEND with checksum, MESSAGE without checksum, MESSAGE with broker
entry metadata and checksum, a batch payload) and serialized message ids; scripts for the
consumer and producer cores (core_events, in the op encoding of src/protocol/fuzz.rs); PEM keys
of tests/data/crypto for crypto_keys. Run it from anywhere: python3 fuzz/seeds.py"""

import base64
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def ld(field, body):
    return varint(field << 3 | 2) + varint(len(body)) + body


def u32(v):
    return struct.pack(">I", v)


def frame(command, rest=b""):
    return u32(4 + len(command) + len(rest)) + u32(len(command)) + command + rest


def payload(metadata, data, checksum=True, entry=None):
    out = b""
    if entry is not None:
        out += b"\x0e\x02" + u32(len(entry)) + entry
    checked = u32(len(metadata)) + metadata + data
    if checksum:
        out += b"\x0e\x01" + u32(crc32c(checked))
    return out + checked


ping = b"\x08\x12" + ld(18, b"")
connect = b"\x08\x02" + ld(2, ld(1, b"pulsar-wire") + b"\x20\x15")
flow = b"\x08\x0b" + ld(11, b"\x08\x07\x10" + varint(1000))
ack = b"\x08\x0a" + ld(10, b"\x08\x01\x10\x00" + ld(3, b"\x08\x0a\x10\x14" + ld(5, b"\x01\x02")))
send = b"\x08\x06" + ld(6, b"\x08\x01\x10\x02")
message = b"\x08\x09" + ld(9, b"\x08\x03" + ld(2, b"\x08\x0a\x10\x14"))
metadata = ld(1, b"p") + b"\x10\x02\x18" + varint(1000)
entry = b"\x08" + varint(1000) + b"\x10\x05"

single1 = ld(1, ld(1, b"a") + ld(2, b"b")) + b"\x18\x03"
single2 = b"\x18\x03\x40\x07"
batch = u32(len(single1)) + single1 + b"one" + u32(len(single2)) + single2 + b"two"
batch_metadata = metadata + b"\x58\x02"  # num_messages_in_batch (field 11) = 2

frames = {
    "ping": frame(ping),
    "connect": frame(connect),
    "flow": frame(flow),
    "ack": frame(ack),
    "send": frame(send, payload(metadata, b"hello")),
    "message_no_checksum": frame(message, payload(metadata, b"hi", checksum=False)),
    "message_entry_metadata": frame(message, payload(metadata, b"hi", entry=entry)),
    "message_entry_no_checksum": frame(message, payload(metadata, b"hi", False, entry)),
    "send_batch": frame(send, payload(batch_metadata, batch)),
    "two_frames": frame(send, payload(metadata, b"hello")) + frame(ping),
}
# Near the memory budget (the targets run with 64 KiB): many tiny repeated elements, packed
# scalars, a group, deep nesting, and a command and metadata that are each just within it.
many_ids = b"\x08\x0a" + ld(10, b"\x08\x01\x10\x00" + b"\x1a\x00" * 250)
packed = b"\x08\x09" + ld(9, b"\x08\x01" + ld(2, b"\x08\x01\x10\x01") + ld(4, b"\x01" * 2600))
group_first = b"\xa3\x06\x08\x01\xa4\x06" + many_ids
chain = b"\x08\x01\x10\x01"
for _ in range(10):
    chain = b"\x08\x01\x10\x01" + ld(7, chain)
deep = b"\x08\x0a" + ld(10, b"\x08\x01\x10\x00" + ld(3, chain))
properties = metadata + ld(4, ld(1, b"k") + ld(2, b"v")) * 100
text = ld(1, b"g" + b"x" * 20000) + b"\x10\x01\x18\x01"
frames.update(
    {
        "many_ids": frame(many_ids),
        "packed_ack_set": frame(packed, payload(metadata, b"")),
        "packed_and_text": frame(packed, payload(text, b"")),
        "group_first": frame(group_first),
        "deep_chain": frame(deep),
        "many_properties": frame(send, payload(properties, b"x" * 100, entry=None)),
    }
)

ids = {
    "id_plain": b"\x08\x0a\x10\x14\x30\x00",
    "id_batch": b"\x08\x0a\x10\x14\x18\x01\x20\x02\x30\x05",
    "id_earliest": b"\x08" + varint(2**64 - 1) + b"\x10" + varint(2**64 - 1) + b"\x30\x00",
    "id_chunk": b"\x08\x0a\x10\x14\x30\x00" + ld(7, b"\x08\x08\x10\x09"),
}

# core_events: the first byte picks the core (even: consumer, odd: producer), then the settings
# bytes, then ops (see ConsumerHarness::step and ProducerHarness::step in src/protocol/fuzz.rs).
C_ATTACH_OK = bytes([10, 0, 0])  # attach result: Ok, the default max message size
C_TAKE = bytes([15, 15])  # the application takes up to 16 deliveries
C_DELIVER = bytes([18, 7])  # up to 8 application commands reach the core
C_CLOSE = bytes([31])


def c_single(entry, data):
    # MESSAGE, shape 0: a message of its own; entry id, sequence id, payload.
    return bytes([0, 0, entry, 1, len(data)]) + data


def c_batch(entry, payloads):
    # MESSAGE, shape 0x40: a well-formed batch; its entries, then "the count is right".
    out = bytes([0, 0x40, entry, 1, len(payloads) - 1])
    for p in payloads:
        out += bytes([0, len(p)]) + p
    return out + bytes([2])


def c_ack(taken, cumulative):
    return bytes([20, taken, 1 if cumulative else 0])


consumer_shared = bytes([0, 0x01, 0x04, 0x00])  # consumer; Shared, queue of 50, acks at once
consumer_reader = bytes([0, 0x04, 0x03, 0x00])  # a reader (Exclusive, non-durable), queue of 10
P_ATTACH_OK = bytes([14, 0, 0, 0, 0, 0, 0])  # attach result: Ok, default size, no last id
P_FLUSH = bytes([5])
P_RECEIPT = bytes([7, 2])  # the receipt of the oldest SEND written (only when there is one)
P_TIMEOUT = bytes([18])  # to poll_timeout
P_DROP = bytes([13, 2, 0])  # the connection closes


def p_send(flags, data):
    return bytes([0, flags, 0, len(data)]) + data


producer_batching = bytes([1, 0x01, 0x1B, 0x00])  # batches of 4, no delay
producer_chunking = bytes([1, 0x0A, 0x84, 0x00])  # chunks of at most 17 bytes, a 10 ms send timeout
core_events = {
    "consumer_messages_acks": consumer_shared
    + C_ATTACH_OK
    + c_single(1, b"hello")
    + c_batch(2, [b"a", b"bb", b"ccc"])
    + C_TAKE
    + c_ack(0, False)
    + c_ack(1, True)
    + C_DELIVER
    + bytes([13, 5])  # 5 ms later
    + C_CLOSE,
    "consumer_reconnect": consumer_shared
    + C_ATTACH_OK
    + c_single(1, b"x")
    + C_TAKE
    + bytes([9, 0])  # the connection closes
    + bytes([14])  # to poll_timeout: the next attach
    + C_ATTACH_OK
    + C_DELIVER
    + c_single(1, b"x")
    + C_TAKE,
    "consumer_reader": consumer_reader
    + C_ATTACH_OK
    + c_single(3, b"r")
    + c_single(3, b"r")
    + c_batch(4, [b"1", b"2"])
    + C_TAKE,
    "producer_batches": producer_batching
    + P_ATTACH_OK
    + p_send(1, b"abc")
    + p_send(2, b"de")
    + P_FLUSH  # one SEND: a batch of two
    + p_send(1, b"f")
    + P_FLUSH
    + P_RECEIPT
    + P_DROP
    + P_TIMEOUT
    + P_ATTACH_OK  # the second SEND is written again
    + P_RECEIPT,
    "producer_chunks": producer_chunking
    + P_ATTACH_OK
    + p_send(0, bytes(range(40)))
    + P_RECEIPT
    + P_TIMEOUT,
}

# crypto_keys: the first byte picks the mode (0 PEM text, 1 DER in the armour of the label the
# byte picks, 2 data: URL, 3 decryptor, 4 key pair).
KEYS = os.path.join(HERE, "..", "tests", "data", "crypto")


def key(name):
    with open(os.path.join(KEYS, name), "rb") as f:
        return f.read()


def der(name):
    lines = [l for l in key(name).decode().splitlines() if l and not l.startswith("-----")]
    return base64.b64decode("".join(l for l in lines if ":" not in l))


crypto_keys = {}
if os.path.isdir(KEYS):
    crypto_keys = {
        "pem_rsa_public": b"\x00" + key("rsa-a.pub.pem"),
        "pem_rsa_pkcs1": b"\x00" + key("rsa-a.pkcs1.pem"),
        "pem_ec_sec1": b"\x00" + key("ec-a.sec1.pem"),
        "pem_ec_explicit": b"\x00" + key("ec-explicit.pub.pem"),
        "der_rsa_public": b"\x01" + der("rsa-a.pub.pem"),
        "der_ec_pkcs8": bytes([21]) + der("ec-a.pkcs8.pem"),  # PRIVATE KEY
        "data_url_p521": b"\x02" + key("ec-p521.pub.pem") + key("ec-p521.sec1.pem"),
        "pair_rsa": b"\x04" + key("rsa-a.pub.pem") + key("rsa-a.pkcs8.pem"),
        "pair_ec": b"\x04" + key("ec-a.pub.pem") + key("ec-a.sec1.pem"),
    }
# The decryptor with its valid data key, IV and payload (it opens), and with a byte flipped.
crypto_keys["decrypt_valid"] = bytes([3, 0x1A, 0x04])
crypto_keys["decrypt_flipped"] = bytes([3, 0x3A, 0x04, 9])
crypto_keys["decrypt_garbage"] = bytes([3, 0x02, 0x01, 4]) + b"\x01\x02\x03\x04" + bytes([3]) + b"abc"

corpora = {
    "core_events": core_events,
    "crypto_keys": crypto_keys,
    "frame_decode": frames,
    "roundtrip": frames,
    "batch_parse": dict(
        {"batch": b"\x00\x02" + batch, "batch_short": b"\x00\x03" + batch}, **ids
    ),
}
for target, seeds in corpora.items():
    folder = os.path.join(HERE, "corpus", target)
    os.makedirs(folder, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(folder, "seed_" + name), "wb") as f:
            f.write(data)
    print(f"{target}: {len(seeds)} seeds in {os.path.relpath(folder)}")
