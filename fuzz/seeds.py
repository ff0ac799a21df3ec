#!/usr/bin/env python3
"""Writes a small seed corpus for the fuzz targets into fuzz/corpus/<target>/ (left out of git):
valid frames of every kind (a simple command, SEND with checksum, MESSAGE without checksum,
MESSAGE with broker entry metadata and checksum, a batch payload) and serialized message ids.
Run it from anywhere: python3 fuzz/seeds.py"""

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

corpora = {
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
