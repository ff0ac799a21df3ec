//! A deterministic fuzz-style test of the wire decoder that runs on stable in `cargo test`.
//!
//! A seeded PRNG (splitmix64, written here: no dependency) generates well over 100,000 inputs:
//! random byte strings, valid frames of every kind (simple commands of many types, SEND and
//! MESSAGE with and without the checksum and the broker entry metadata blocks, batch payloads),
//! and mutations of them (bit flips, byte replacements, truncations, insertions, deletions,
//! size-field rewrites, protobuf field injections, splices), some re-framed with correct sizes
//! and checksums so that they reach the protobuf and batch parsers. Each input goes through
//! `wire::decode` in a loop, `wire::decode_frame`, and for payloads `parse_batch`, and, when it
//! decodes, through an encode/decode round trip.
//!
//! A counting global allocator measures, per thread, the peak heap growth during every decode
//! call: it must stay within the max frame size. Crafted amplification inputs (tiny protobuf
//! elements that decode into large structs) must be refused with `FrameError::TooComplex` or
//! decode within that budget.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use prost::Message as _;
use pulsar_wire::wire::{self, proto, Frame, FrameError, MessageId, Section};

/// The max frame size the decoder runs with.
const MAX: usize = 64 * 1024;
/// How many generated cases the main loop runs (`WIRE_FUZZ_CASES` overrides it).
const CASES: usize = 100_000;
/// The PRNG seed (`WIRE_FUZZ_SEED` overrides it, for longer explorations).
const SEED: u64 = 0x5eed_f0f7_0075_a720;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ---- heap accounting ----

/// Wraps the system allocator and counts, per thread, the bytes currently allocated and the peak.
/// A `realloc` is counted as the new block allocated before the old one is freed, as a copy needs.
struct CountingAlloc;

thread_local! {
    static CURRENT: Cell<i64> = const { Cell::new(0) };
    static PEAK: Cell<i64> = const { Cell::new(0) };
}

fn grew(n: usize) {
    let _ = CURRENT.try_with(|c| {
        let now = c.get() + n as i64;
        c.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
}

fn shrank(n: usize) {
    let _ = CURRENT.try_with(|c| c.set(c.get() - n as i64));
}

// SAFETY: every call is forwarded to `System` with the same arguments; the counters are
// const-initialized thread locals without destructors, which never allocate.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            grew(new_size);
            shrank(layout.size());
        }
        p
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Runs `f` and returns its result (still alive, so counted) with the peak heap growth of this
/// thread during the call, in bytes.
fn measured<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let base = CURRENT.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let out = f();
    let peak = PEAK.with(Cell::get);
    (out, (peak - base).max(0) as u64)
}

// ---- a seeded PRNG ----

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }

    /// A small or a large number, with the edge values well represented.
    fn num(&mut self) -> u64 {
        match self.below(6) {
            0 => 0,
            1 => self.below(10) as u64,
            2 => self.below(100_000) as u64,
            3 => u64::MAX - self.below(3) as u64,
            4 => i64::MAX as u64,
            _ => self.next(),
        }
    }

    fn text(&mut self, max: usize) -> String {
        let n = self.below(max + 1);
        (0..n)
            .map(|_| char::from(b"abcxyz-_/:.0123456789"[self.below(21)]))
            .collect()
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

// ---- protobuf bytes by hand ----

fn varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn ld(field: u64, body: &[u8], out: &mut Vec<u8>) {
    varint(field << 3 | 2, out);
    varint(body.len() as u64, out);
    out.extend_from_slice(body);
}

/// A random protobuf field: any field number up to 70, any wire type (groups included).
fn random_field(rng: &mut Rng, out: &mut Vec<u8>) {
    let field = 1 + rng.below(70) as u64;
    let wire_type = *rng.pick(&[0u64, 0, 1, 2, 2, 2, 3, 4, 5, 6, 7]);
    varint(field << 3 | wire_type, out);
    match wire_type {
        0 => varint(rng.num(), out),
        1 => out.extend_from_slice(&rng.bytes(8)),
        2 => {
            let len = rng.below(12);
            let body = if rng.one_in(2) {
                let mut nested = Vec::new();
                for _ in 0..rng.below(4) {
                    random_field(rng, &mut nested);
                }
                nested
            } else {
                rng.bytes(len)
            };
            varint(body.len() as u64, out);
            out.extend_from_slice(&body);
        }
        5 => out.extend_from_slice(&rng.bytes(4)),
        _ => {}
    }
}

/// Mutates encoded protobuf bytes at the field level.
fn mutate_protobuf(rng: &mut Rng, bytes: &mut Vec<u8>) {
    match rng.below(4) {
        0 => {
            let mut field = Vec::new();
            random_field(rng, &mut field);
            let at = rng.below(bytes.len() + 1);
            bytes.splice(at..at, field);
        }
        1 => {
            for _ in 0..1 + rng.below(3) {
                random_field(rng, bytes);
            }
        }
        2 if !bytes.is_empty() => {
            let at = rng.below(bytes.len());
            bytes[at] = rng.byte();
        }
        _ => {
            let keep = rng.below(bytes.len() + 1);
            bytes.truncate(keep);
        }
    }
}

// ---- valid frames ----

fn id(rng: &mut Rng) -> proto::MessageIdData {
    proto::MessageIdData {
        ledger_id: rng.num(),
        entry_id: rng.num(),
        partition: rng.one_in(2).then(|| rng.below(10) as i32 - 1),
        batch_index: rng.one_in(2).then(|| rng.below(10) as i32 - 1),
        ack_set: (0..rng.below(3)).map(|_| rng.next() as i64).collect(),
        batch_size: rng.one_in(2).then(|| rng.below(100) as i32),
        first_chunk_message_id: rng.one_in(4).then(|| {
            Box::new(proto::MessageIdData {
                ledger_id: rng.num(),
                entry_id: rng.num(),
                ..Default::default()
            })
        }),
    }
}

fn key_values(rng: &mut Rng) -> Vec<proto::KeyValue> {
    (0..rng.below(4))
        .map(|_| proto::KeyValue {
            key: rng.text(8),
            value: rng.text(16),
        })
        .collect()
}

/// A simple (payload-less) command of one of many types, with random fields.
fn simple_command(rng: &mut Rng) -> proto::BaseCommand {
    use proto::base_command::Type;
    let mut c = proto::BaseCommand::default();
    let t = match rng.below(24) {
        0 => {
            c.ping = Some(proto::CommandPing {});
            Type::Ping
        }
        1 => {
            c.pong = Some(proto::CommandPong {});
            Type::Pong
        }
        2 => {
            c.connect = Some(Box::new(proto::CommandConnect {
                client_version: rng.text(30),
                protocol_version: Some(rng.below(30) as i32),
                auth_method_name: rng.one_in(2).then(|| rng.text(8)),
                auth_data: rng.one_in(2).then(|| Bytes::from(rng.bytes(20))),
                ..Default::default()
            }));
            Type::Connect
        }
        3 => {
            c.connected = Some(Box::new(proto::CommandConnected {
                server_version: rng.text(20),
                protocol_version: Some(21),
                max_message_size: Some(rng.next() as i32),
                ..Default::default()
            }));
            Type::Connected
        }
        4 => {
            c.flow = Some(proto::CommandFlow {
                consumer_id: rng.num(),
                message_permits: rng.next() as u32,
            });
            Type::Flow
        }
        5 => {
            c.ack = Some(proto::CommandAck {
                consumer_id: rng.num(),
                ack_type: rng.below(3) as i32,
                message_id: (0..rng.below(5)).map(|_| id(rng)).collect(),
                validation_error: rng.one_in(4).then(|| rng.below(6) as i32),
                properties: (0..rng.below(2))
                    .map(|_| proto::KeyLongValue {
                        key: rng.text(5),
                        value: rng.num(),
                    })
                    .collect(),
                request_id: rng.one_in(2).then(|| rng.num()),
                ..Default::default()
            });
            Type::Ack
        }
        6 => {
            c.subscribe = Some(Box::new(proto::CommandSubscribe {
                topic: rng.text(40),
                subscription: rng.text(10),
                sub_type: rng.below(5) as i32,
                consumer_id: rng.num(),
                request_id: rng.num(),
                metadata: key_values(rng),
                start_message_id: rng.one_in(2).then(|| id(rng)),
                ..Default::default()
            }));
            Type::Subscribe
        }
        7 => {
            c.producer = Some(Box::new(proto::CommandProducer {
                topic: rng.text(40),
                producer_id: rng.num(),
                request_id: rng.num(),
                metadata: key_values(rng),
                ..Default::default()
            }));
            Type::Producer
        }
        8 => {
            c.send_receipt = Some(proto::CommandSendReceipt {
                producer_id: rng.num(),
                sequence_id: rng.num(),
                message_id: rng.one_in(2).then(|| id(rng)),
                highest_sequence_id: rng.one_in(2).then(|| rng.num()),
            });
            Type::SendReceipt
        }
        9 => {
            c.send_error = Some(Box::new(proto::CommandSendError {
                producer_id: rng.num(),
                sequence_id: rng.num(),
                error: rng.below(30) as i32,
                message: rng.text(30),
            }));
            Type::SendError
        }
        10 => {
            c.success = Some(Box::new(proto::CommandSuccess {
                request_id: rng.num(),
                schema: None,
            }));
            Type::Success
        }
        11 => {
            c.error = Some(Box::new(proto::CommandError {
                request_id: rng.num(),
                error: rng.below(30) as i32,
                message: rng.text(40),
            }));
            Type::Error
        }
        12 => {
            c.close_consumer = Some(Box::new(proto::CommandCloseConsumer {
                consumer_id: rng.num(),
                request_id: rng.num(),
                ..Default::default()
            }));
            Type::CloseConsumer
        }
        13 => {
            c.producer_success = Some(Box::new(proto::CommandProducerSuccess {
                request_id: rng.num(),
                producer_name: rng.text(20),
                last_sequence_id: Some(rng.next() as i64),
                schema_version: rng.one_in(2).then(|| Bytes::from(rng.bytes(8))),
                ..Default::default()
            }));
            Type::ProducerSuccess
        }
        14 => {
            c.redeliver_unacknowledged_messages =
                Some(Box::new(proto::CommandRedeliverUnacknowledgedMessages {
                    consumer_id: rng.num(),
                    message_ids: (0..rng.below(5)).map(|_| id(rng)).collect(),
                    consumer_epoch: rng.one_in(2).then(|| rng.num()),
                }));
            Type::RedeliverUnacknowledgedMessages
        }
        15 => {
            c.lookup_topic_response = Some(Box::new(proto::CommandLookupTopicResponse {
                broker_service_url: Some(rng.text(30)),
                response: Some(rng.below(3) as i32),
                request_id: rng.num(),
                authoritative: Some(rng.one_in(2)),
                ..Default::default()
            }));
            Type::LookupResponse
        }
        16 => {
            c.partition_metadata_response =
                Some(Box::new(proto::CommandPartitionedTopicMetadataResponse {
                    partitions: Some(rng.below(100) as u32),
                    request_id: rng.num(),
                    ..Default::default()
                }));
            Type::PartitionedMetadataResponse
        }
        17 => {
            c.seek = Some(Box::new(proto::CommandSeek {
                consumer_id: rng.num(),
                request_id: rng.num(),
                message_id: rng.one_in(2).then(|| id(rng)),
                message_publish_time: rng.one_in(2).then(|| rng.num()),
            }));
            Type::Seek
        }
        18 => {
            c.get_last_message_id_response =
                Some(Box::new(proto::CommandGetLastMessageIdResponse {
                    last_message_id: id(rng),
                    request_id: rng.num(),
                    consumer_mark_delete_position: rng.one_in(2).then(|| id(rng)),
                }));
            Type::GetLastMessageIdResponse
        }
        19 => {
            c.get_topics_of_namespace_response =
                Some(Box::new(proto::CommandGetTopicsOfNamespaceResponse {
                    request_id: rng.num(),
                    topics: (0..rng.below(5)).map(|_| rng.text(20)).collect(),
                    ..Default::default()
                }));
            Type::GetTopicsOfNamespaceResponse
        }
        20 => {
            c.consumer_stats_response = Some(Box::new(proto::CommandConsumerStatsResponse {
                request_id: rng.num(),
                msg_rate_out: Some(f64::from_bits(rng.next())),
                consumer_name: rng.one_in(2).then(|| rng.text(10)),
                ..Default::default()
            }));
            Type::ConsumerStatsResponse
        }
        21 => {
            c.auth_challenge = Some(Box::new(proto::CommandAuthChallenge {
                server_version: Some(rng.text(10)),
                challenge: Some(proto::AuthData {
                    auth_method_name: Some(rng.text(6)),
                    auth_data: Some(Bytes::from(rng.bytes(16))),
                }),
                protocol_version: Some(21),
            }));
            Type::AuthChallenge
        }
        22 => {
            c.active_consumer_change = Some(Box::new(proto::CommandActiveConsumerChange {
                consumer_id: rng.num(),
                is_active: Some(rng.one_in(2)),
            }));
            Type::ActiveConsumerChange
        }
        _ => {
            // A type number this build may not know, with nothing else set.
            c.r#type = 69 + rng.below(100) as i32;
            return c;
        }
    };
    c.r#type = t as i32;
    c
}

fn send_command(rng: &mut Rng) -> proto::BaseCommand {
    proto::BaseCommand {
        r#type: proto::base_command::Type::Send as i32,
        send: Some(proto::CommandSend {
            producer_id: rng.num(),
            sequence_id: rng.num(),
            num_messages: rng.one_in(2).then(|| rng.below(100) as i32),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn message_command(rng: &mut Rng) -> proto::BaseCommand {
    proto::BaseCommand {
        r#type: proto::base_command::Type::Message as i32,
        message: Some(proto::CommandMessage {
            consumer_id: rng.num(),
            message_id: id(rng),
            redelivery_count: rng.one_in(2).then(|| rng.below(5) as u32),
            ack_set: (0..rng.below(3)).map(|_| rng.next() as i64).collect(),
            consumer_epoch: None,
        }),
        ..Default::default()
    }
}

fn metadata(rng: &mut Rng) -> proto::MessageMetadata {
    proto::MessageMetadata {
        producer_name: rng.text(12),
        sequence_id: rng.num(),
        publish_time: rng.num(),
        properties: key_values(rng),
        partition_key: rng.one_in(3).then(|| rng.text(10)),
        replicate_to: (0..rng.below(2)).map(|_| rng.text(6)).collect(),
        compression: rng.one_in(4).then(|| rng.below(5) as i32),
        event_time: rng.one_in(3).then(|| rng.num()),
        schema_version: rng.one_in(4).then(|| Bytes::from(rng.bytes(8))),
        ordering_key: rng.one_in(4).then(|| Bytes::from(rng.bytes(4))),
        chunk_id: rng.one_in(5).then(|| rng.below(4) as i32),
        compacted_batch_indexes: (0..rng.below(3)).map(|_| rng.below(10) as i32).collect(),
        ..Default::default()
    }
}

/// A batch payload of a few entries, and its count.
fn batch(rng: &mut Rng) -> (Vec<u8>, usize) {
    let n = rng.below(6);
    let mut dst = BytesMut::new();
    for _ in 0..n {
        let mut single = proto::SingleMessageMetadata {
            properties: key_values(rng),
            partition_key: rng.one_in(2).then(|| rng.text(8)),
            event_time: rng.one_in(3).then(|| rng.num()),
            sequence_id: rng.one_in(2).then(|| rng.num()),
            compacted_out: rng.one_in(5).then_some(true),
            ..Default::default()
        };
        let len = rng.below(20);
        wire::encode_entry(&mut single, &rng.bytes(len), &mut dst);
    }
    (dst.to_vec(), n)
}

/// The parts of a payload frame, as bytes, so that they can be mutated before framing.
struct Parts {
    command: Vec<u8>,
    entry_metadata: Option<Vec<u8>>,
    checksum: bool,
    metadata: Vec<u8>,
    payload: Vec<u8>,
}

impl Parts {
    fn random(rng: &mut Rng) -> Parts {
        let message = rng.one_in(2);
        let command = if message {
            message_command(rng)
        } else {
            send_command(rng)
        };
        let mut meta = metadata(rng);
        let payload = if rng.one_in(2) {
            let (bytes, n) = batch(rng);
            meta.num_messages_in_batch = Some(n as i32);
            bytes
        } else {
            let len = rng.below(40);
            rng.bytes(len)
        };
        let entry_metadata = (message && rng.one_in(2)).then(|| {
            proto::BrokerEntryMetadata {
                broker_timestamp: rng.one_in(2).then(|| rng.num()),
                index: rng.one_in(2).then(|| rng.num()),
            }
            .encode_to_vec()
        });
        Parts {
            command: command.encode_to_vec(),
            entry_metadata,
            checksum: !message || rng.one_in(2),
            metadata: meta.encode_to_vec(),
            payload,
        }
    }

    /// The frame, with every size and the checksum right for the parts as they are.
    fn assemble(&self) -> Vec<u8> {
        let mut rest = Vec::new();
        if let Some(entry) = &self.entry_metadata {
            rest.extend_from_slice(&wire::MAGIC_BROKER_ENTRY_METADATA.to_be_bytes());
            rest.extend_from_slice(&(entry.len() as u32).to_be_bytes());
            rest.extend_from_slice(entry);
        }
        let mut checked = (self.metadata.len() as u32).to_be_bytes().to_vec();
        checked.extend_from_slice(&self.metadata);
        checked.extend_from_slice(&self.payload);
        if self.checksum {
            rest.extend_from_slice(&wire::MAGIC_CRC32C.to_be_bytes());
            rest.extend_from_slice(&crc32c::crc32c(&checked).to_be_bytes());
        }
        rest.extend_from_slice(&checked);
        frame(&self.command, &rest)
    }
}

/// `[total size][command size][command]` then `rest`.
fn frame(command: &[u8], rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + command.len() + rest.len());
    out.extend_from_slice(&((4 + command.len() + rest.len()) as u32).to_be_bytes());
    out.extend_from_slice(&(command.len() as u32).to_be_bytes());
    out.extend_from_slice(command);
    out.extend_from_slice(rest);
    out
}

/// A valid frame of a random kind.
fn valid_frame(rng: &mut Rng) -> Vec<u8> {
    if rng.one_in(2) {
        let mut dst = BytesMut::new();
        let res = wire::encode_command(&simple_command(rng), &mut dst, MAX);
        assert!(res.is_ok(), "{}", outcome(&res));
        dst.to_vec()
    } else {
        Parts::random(rng).assemble()
    }
}

// ---- mutations ----

fn write_u32(bytes: &mut [u8], at: usize, value: u32) {
    if let Some(slot) = bytes.get_mut(at..at + 4) {
        slot.copy_from_slice(&value.to_be_bytes());
    }
}

/// Sets the total size field to the actual length, so that the frame gets past the size check.
fn fix_total(bytes: &mut [u8]) {
    let len = bytes.len().saturating_sub(4) as u32;
    write_u32(bytes, 0, len);
}

fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>, other: &[u8]) {
    let len = bytes.len();
    match rng.below(9) {
        // Bit flip.
        0 if len > 0 => {
            let at = rng.below(len);
            bytes[at] ^= 1 << rng.below(8);
        }
        // Byte replacement, with bytes that matter to the format well represented.
        1 if len > 0 => {
            let at = rng.below(len);
            let random = rng.byte();
            bytes[at] = *rng.pick(&[0, 1, 2, 0x0e, 0x7f, 0x80, 0xff, random]);
        }
        // Truncation.
        2 => {
            let keep = rng.below(len + 1);
            bytes.truncate(keep);
        }
        // Insertion of a few random bytes.
        3 => {
            let at = rng.below(len + 1);
            let n = 1 + rng.below(8);
            let ins = rng.bytes(n);
            bytes.splice(at..at, ins);
        }
        // Deletion of a range.
        4 if len > 0 => {
            let at = rng.below(len);
            let end = (at + 1 + rng.below(8)).min(len);
            bytes.drain(at..end);
        }
        // Size-field rewrite: the total size, the command size, or any 4 bytes.
        5 | 6 => {
            let at = match rng.below(3) {
                0 => 0,
                1 => 4,
                _ => rng.below(len.max(1)),
            };
            let actual = len as u32;
            let random = rng.next() as u32;
            let value = *rng.pick(&[
                0,
                1,
                3,
                4,
                5,
                actual.wrapping_sub(4),
                actual.wrapping_sub(3),
                actual.wrapping_sub(5),
                actual.wrapping_sub(8),
                actual.wrapping_sub(9),
                actual,
                actual.wrapping_add(1),
                MAX as u32,
                MAX as u32 - 4,
                MAX as u32 - 3,
                0x00ff_ffff,
                0x7fff_ffff,
                u32::MAX,
                random,
            ]);
            write_u32(bytes, at, value);
        }
        // Splice: a prefix of this frame and a suffix of another.
        7 => {
            let cut = rng.below(len + 1);
            let from = rng.below(other.len() + 1);
            bytes.truncate(cut);
            bytes.extend_from_slice(&other[from..]);
        }
        // Duplicate a region.
        _ if len > 0 => {
            let at = rng.below(len);
            let end = (at + 1 + rng.below(16)).min(len);
            let region = bytes[at..end].to_vec();
            let to = rng.below(len + 1);
            bytes.splice(to..to, region);
        }
        _ => {}
    }
}

/// One generated input.
fn case(rng: &mut Rng) -> Vec<u8> {
    // Rarely, an input over the max frame size.
    if rng.one_in(2000) {
        let mut bytes = valid_frame(rng);
        bytes.resize(MAX + 1 + rng.below(100), 0);
        if rng.one_in(2) {
            fix_total(&mut bytes);
        }
        return bytes;
    }
    match rng.below(10) {
        // Random bytes, sometimes behind a plausible total size (and command size).
        0 => {
            let n = rng.below(300);
            let mut bytes = rng.bytes(n);
            if rng.one_in(2) {
                fix_total(&mut bytes);
                if rng.one_in(2) {
                    let command_size = rng.below(n.max(8) - 7) as u32;
                    write_u32(&mut bytes, 4, command_size);
                }
            }
            bytes
        }
        // A valid frame.
        1 => valid_frame(rng),
        // A payload frame whose parts were mutated before framing: sizes and checksum right,
        // so that the protobuf sections and the batch are what is under test.
        2 | 3 => {
            let mut parts = Parts::random(rng);
            match rng.below(5) {
                0 => mutate_protobuf(rng, &mut parts.command),
                1 => mutate_protobuf(rng, &mut parts.metadata),
                2 => {
                    let mut entry = parts.entry_metadata.take().unwrap_or_default();
                    mutate_protobuf(rng, &mut entry);
                    parts.entry_metadata = Some(entry);
                }
                3 => {
                    let other = valid_frame(rng);
                    mutate(rng, &mut parts.payload, &other);
                }
                _ => {
                    let other = valid_frame(rng);
                    mutate(rng, &mut parts.metadata, &other);
                }
            }
            parts.assemble()
        }
        // A simple command with mutated protobuf, framed right.
        4 => {
            let mut command = simple_command(rng).encode_to_vec();
            for _ in 0..1 + rng.below(3) {
                mutate_protobuf(rng, &mut command);
            }
            frame(&command, &[])
        }
        // Byte-level mutations of a valid frame, sometimes with the total size fixed up.
        _ => {
            let mut bytes = valid_frame(rng);
            let other = valid_frame(rng);
            for _ in 0..1 + rng.below(4) {
                mutate(rng, &mut bytes, &other);
            }
            if rng.one_in(2) {
                fix_total(&mut bytes);
            }
            // Sometimes followed by another frame, to exercise the stream loop.
            if rng.one_in(8) {
                bytes.extend_from_slice(&other);
            }
            bytes
        }
    }
}

// ---- the checks ----

#[derive(Default)]
struct Stats {
    cases: usize,
    decode_calls: usize,
    outcomes: BTreeMap<String, usize>,
    batch_entries: usize,
    round_trips: usize,
    max_heap: u64,
}

impl Stats {
    fn count(&mut self, what: String) {
        *self.outcomes.entry(what).or_default() += 1;
    }

    fn heap(&mut self, heap: u64, limit: usize, what: &str, input: &[u8]) {
        self.max_heap = self.max_heap.max(heap);
        assert!(
            heap <= limit as u64,
            "{what} grew the heap by {heap} bytes (limit {limit}) on input of {} bytes: {:02x?}",
            input.len(),
            &input[..input.len().min(200)]
        );
    }
}

fn outcome<T>(res: &Result<T, FrameError>) -> String {
    let Err(e) = res else {
        return "ok".into();
    };
    // Every error displays.
    assert!(!e.to_string().is_empty());
    let (name, section) = match e {
        FrameError::TooLarge { .. } => ("TooLarge", None),
        FrameError::Truncated { section, .. } => ("Truncated", Some(section)),
        FrameError::CommandSizeTooLarge { .. } => ("CommandSizeTooLarge", None),
        FrameError::EmptyCommand => ("EmptyCommand", None),
        FrameError::BadMagic { .. } => ("BadMagic", None),
        FrameError::ChecksumMismatch { .. } => ("ChecksumMismatch", None),
        FrameError::Protobuf { section, .. } => ("Protobuf", Some(section)),
        FrameError::TooComplex { section, .. } => ("TooComplex", Some(section)),
        FrameError::MissingPayload { .. } => ("MissingPayload", None),
        FrameError::UnexpectedPayload { .. } => ("UnexpectedPayload", None),
        FrameError::BatchCountMismatch { .. } => ("BatchCountMismatch", None),
        _ => ("other", None),
    };
    match section {
        Some(section) => format!("{name}/{section:?}"),
        None => name.into(),
    }
}

/// Whether a frame may hold a NaN (which makes `==` false on a frame equal to itself): only the
/// consumer stats response has floating-point fields.
fn may_have_nan(frame: &Frame) -> bool {
    frame.command.consumer_stats_response.is_some()
}

/// Frame equality that treats a NaN as equal to itself, by comparing the encodings.
fn same_frame(a: &Frame, b: &Frame) -> bool {
    if a == b {
        return true;
    }
    if !may_have_nan(a) {
        return false;
    }
    let (mut x, mut y) = (BytesMut::new(), BytesMut::new());
    a.encode(&mut x, usize::MAX).is_ok() && b.encode(&mut y, usize::MAX).is_ok() && x == y
}

fn check_input(input: &[u8], rng: &mut Rng, stats: &mut Stats) {
    stats.cases += 1;

    // 1. The stream decoder, in a loop until it needs more bytes or fails.
    let mut buf = BytesMut::from(input);
    let mut first: Option<Result<Frame, FrameError>> = None;
    loop {
        let before = buf.len();
        let announced = wire::check(&buf, MAX);
        let (res, heap) = measured(|| wire::decode(&mut buf, MAX));
        stats.decode_calls += 1;
        stats.heap(heap, MAX, "decode", input);
        stats.count(format!("decode:{}", outcome(&res)));
        match res {
            Ok(None) => {
                assert_eq!(announced, Ok(None));
                assert_eq!(buf.len(), before, "Ok(None) consumed bytes");
                break;
            }
            Ok(Some(frame)) => {
                let Ok(Some(n)) = announced else {
                    panic!("decoded a frame that check() said was {announced:?}");
                };
                assert_eq!(buf.len(), before - n);
                assert_eq!(
                    frame.payload.is_some(),
                    wire::carries_payload(frame.command.r#type)
                );
                check_frame(&frame, rng, stats);
                first.get_or_insert(Ok(frame));
            }
            Err(e) => {
                match &announced {
                    // Refused from the size field (too large, or too small to hold a command
                    // size): nothing is consumed.
                    Err(a) => {
                        assert_eq!(a, &e);
                        assert_eq!(
                            buf.len(),
                            before,
                            "a frame refused on its size was consumed"
                        );
                    }
                    // Refused after the size field was accepted: the frame is consumed.
                    Ok(Some(n)) => assert_eq!(buf.len(), before - n),
                    Ok(None) => panic!("decode failed with {e:?} but check() needs more bytes"),
                }
                first.get_or_insert(Err(e));
                break;
            }
        }
    }

    // 2. decode_frame on the whole input, as if it were one frame.
    let bytes = Bytes::copy_from_slice(input);
    let (res, heap) = measured(|| wire::decode_frame(bytes, MAX));
    stats.heap(heap, MAX, "decode_frame", input);
    stats.count(format!("decode_frame:{}", outcome(&res)));
    if wire::check(input, MAX) == Ok(Some(input.len())) {
        // Exactly one frame: both entry points agree.
        match (&first, &res) {
            (Some(Ok(a)), Ok(b)) => assert!(same_frame(a, b)),
            (Some(Err(a)), Err(b)) => assert_eq!(a, b),
            _ => panic!("decode gave {first:?}, decode_frame {res:?}"),
        }
    }
    if let Ok(frame) = &res {
        check_frame(frame, rng, stats);
    }

    // 3. Any slice read as a serialized message id (its own budget is 64 KiB).
    let from = rng.below(input.len() + 1);
    let to = from + rng.below(input.len() - from + 1);
    let (res, heap) = measured(|| MessageId::deserialize(&input[from..to]));
    stats.heap(heap, 64 * 1024, "MessageId::deserialize", input);
    stats.count(format!("message_id:{}", outcome(&res)));
    if let Ok(id) = res {
        // What it re-serializes to reads back the same (a partition below -1 is not written,
        // as in the Java client, and reads back as -1).
        let expected = MessageId {
            partition: id.partition.max(-1),
            ..id
        };
        assert_eq!(MessageId::deserialize(&id.serialize()), Ok(expected));
    }
}

/// Batch parsing and the encode/decode round trip of a decoded frame.
fn check_frame(frame: &Frame, rng: &mut Rng, stats: &mut Stats) {
    if let Some(payload) = &frame.payload {
        let n = match payload.metadata.num_messages_in_batch {
            Some(n) if n >= 0 && !rng.one_in(8) => n as u32,
            _ => rng.below(8) as u32,
        };
        let mut iter = wire::parse_batch(payload.data.clone(), n, MAX);
        let mut items = 0usize;
        loop {
            let (_, upper) = iter.size_hint();
            let (item, heap) = measured(|| iter.next());
            stats.heap(heap, MAX, "parse_batch", &payload.data);
            let Some(item) = item else { break };
            items += 1;
            assert!(
                upper.is_some_and(|u| u >= 1),
                "size_hint said {upper:?} before an item"
            );
            stats.count(format!("batch:{}", outcome(&item)));
            match item {
                Ok(entry) => {
                    stats.batch_entries += 1;
                    // The payload is a slice of the frame's payload.
                    let start = payload.data.as_ptr() as usize;
                    let p = entry.payload.as_ptr() as usize;
                    assert!(
                        entry.payload.is_empty()
                            || (p >= start
                                && p + entry.payload.len() <= start + payload.data.len())
                    );
                }
                Err(FrameError::BatchCountMismatch { expected, found }) => {
                    assert_eq!(expected, n);
                    assert_ne!(found, n);
                }
                Err(_) => {}
            }
            assert!(items as u64 <= u64::from(n) + 1);
        }
    }

    // Encode what was decoded; decoding that gives the same frame (the checksum is always
    // written, so it becomes Some).
    let mut dst = BytesMut::new();
    match frame.encode(&mut dst, MAX) {
        // The re-encoded frame can be larger: a checksum block is added when it was absent.
        Err(FrameError::TooLarge { .. }) => {}
        Err(e) => panic!("cannot re-encode a decoded frame: {e:?}"),
        Ok(()) => {
            let encoded = dst.clone().freeze();
            // The re-encoded protobufs can be larger than the input's (a packed ack_set is
            // written unpacked), so this decode runs without a budget: its input is ours.
            let again = wire::decode_frame(encoded, usize::MAX);
            let Ok(mut again) = again else {
                panic!("re-encoded frame does not decode: {again:?}\n{frame:?}");
            };
            if let (Some(a), Some(b)) = (again.payload.as_mut(), frame.payload.as_ref()) {
                assert!(a.checksum.is_some());
                a.checksum = b.checksum;
            }
            assert!(same_frame(&again, frame), "{again:?}\n{frame:?}");
            stats.round_trips += 1;
        }
    }
}

#[test]
fn the_allocator_counts() {
    let (v, heap) = measured(|| vec![0u8; 10_000]);
    assert!(heap >= 10_000, "{heap}");
    drop(v);
    let (_, heap) = measured(|| {
        let mut v = Vec::new();
        for i in 0..1000u32 {
            v.push(i);
        }
        v
    });
    // 4 KB of u32 plus the old buffer of the last growth.
    assert!(heap >= 4000, "{heap}");
    let (_, heap) = measured(|| 1 + 1);
    assert_eq!(heap, 0);
}

#[test]
fn generated_inputs_never_panic_and_stay_within_the_heap_budget() {
    let seed = env_or("WIRE_FUZZ_SEED", SEED);
    let cases = (env_or("WIRE_FUZZ_CASES", CASES as u64) as usize).max(CASES);
    let mut rng = Rng(seed);
    let mut stats = Stats::default();
    let mut valid = 0usize;
    for i in 0..cases {
        let input = case(&mut rng);
        // Valid frames (every 10th kind of case) must decode.
        if i % 97 == 0 {
            let frame = valid_frame(&mut rng);
            let res = wire::decode_frame(Bytes::from(frame.clone()), MAX);
            assert!(res.is_ok(), "valid frame refused: {res:?}: {frame:02x?}");
            valid += 1;
            check_input(&frame, &mut rng, &mut stats);
        }
        check_input(&input, &mut rng, &mut stats);
    }

    println!("seed {seed:#x}");
    println!(
        "{} cases ({} valid frames checked, {} decode calls, {} batch entries, {} round trips), peak heap growth {} bytes",
        stats.cases, valid, stats.decode_calls, stats.batch_entries, stats.round_trips, stats.max_heap
    );
    for (what, n) in &stats.outcomes {
        println!("  {what}: {n}");
    }

    assert!(stats.cases >= CASES);
    // The generator reaches deep: every error of the frame decoder, successes, and batches.
    let hit = |what: &str| stats.outcomes.keys().any(|k| k.starts_with(what));
    for what in [
        "decode:ok",
        "decode_frame:ok",
        "decode_frame:TooLarge",
        "decode_frame:Truncated/CommandSize",
        "decode_frame:Truncated/BrokerEntryMetadata",
        "decode_frame:Truncated/Checksum",
        "decode_frame:Truncated/MetadataSize",
        "decode_frame:Truncated/Metadata",
        "decode_frame:CommandSizeTooLarge",
        "decode_frame:EmptyCommand",
        "decode_frame:BadMagic",
        "decode_frame:ChecksumMismatch",
        "decode_frame:Protobuf/Command",
        "decode_frame:Protobuf/Metadata",
        "decode_frame:Protobuf/BrokerEntryMetadata",
        "decode_frame:MissingPayload",
        "decode_frame:UnexpectedPayload",
        "decode:TooLarge",
        "batch:ok",
        "batch:BatchCountMismatch",
        "batch:Truncated/BatchEntry",
        "batch:Protobuf/BatchEntry",
        "message_id:ok",
        "message_id:Protobuf/MessageId",
    ] {
        assert!(hit(what), "no case reached {what}");
    }
    assert!(
        stats.round_trips > CASES / 10,
        "{} round trips",
        stats.round_trips
    );
}

// ---- crafted amplification inputs ----

/// Decodes `bytes` as one frame and checks the outcome: refused as too complex, or decoded
/// within the heap budget.
fn amplification(name: &str, bytes: &[u8]) -> Result<Frame, FrameError> {
    assert!(bytes.len() <= MAX, "{name}: {} bytes", bytes.len());
    let input = Bytes::copy_from_slice(bytes);
    let (res, heap) = measured(|| wire::decode_frame(input, MAX));
    println!(
        "{name}: {} bytes, heap +{heap}, {}",
        bytes.len(),
        outcome(&res)
    );
    assert!(
        heap <= MAX as u64,
        "{name}: decoding {} bytes grew the heap by {heap} bytes: {}",
        bytes.len(),
        outcome(&res)
    );
    let mut buf = BytesMut::from(bytes);
    let (res2, heap) = measured(|| wire::decode(&mut buf, MAX));
    assert!(heap <= MAX as u64, "{name}: decode grew the heap by {heap}");
    assert_eq!(
        res2.map(|f| f.map(|f| format!("{f:?}"))),
        res.clone().map(|f| Some(format!("{f:?}")))
    );
    res
}

fn too_complex(res: &Result<Frame, FrameError>, section: Section) -> bool {
    matches!(res, Err(FrameError::TooComplex { section: s, budget: MAX, .. }) if *s == section)
}

/// `[metadata size][metadata]` after a SEND command, without a checksum.
fn send_frame(metadata: &[u8]) -> Vec<u8> {
    let mut rest = (metadata.len() as u32).to_be_bytes().to_vec();
    rest.extend_from_slice(metadata);
    frame(&[0x08, 0x06, 0x32, 0x04, 0x08, 0x01, 0x10, 0x01], &rest)
}

/// A CommandAck command holding `body` as its content after consumer_id and ack_type.
fn ack_command(body: &[u8]) -> Vec<u8> {
    let mut ack = vec![0x08, 0x01, 0x10, 0x00];
    ack.extend_from_slice(body);
    let mut command = vec![0x08, 0x0a];
    ld(10, &ack, &mut command);
    command
}

#[test]
fn ack_with_30k_empty_message_ids_is_too_complex() {
    let body: Vec<u8> = std::iter::repeat_n([0x1a, 0x00], 30_000)
        .flatten()
        .collect();
    let res = amplification("30k empty ids", &frame(&ack_command(&body), &[]));
    assert!(too_complex(&res, Section::Command), "{}", outcome(&res));
}

#[test]
fn metadata_with_30k_empty_properties_is_too_complex() {
    let mut metadata = vec![0x0a, 0x01, b'p', 0x10, 0x01, 0x18, 0x01];
    for _ in 0..30_000 {
        metadata.extend_from_slice(&[0x22, 0x00]);
    }
    let res = amplification("30k empty properties", &send_frame(&metadata));
    assert!(too_complex(&res, Section::Metadata), "{}", outcome(&res));
}

#[test]
fn packed_ack_set_of_one_byte_varints_is_too_complex() {
    // CommandMessage.ack_set (field 4), packed: 60k one-byte varints, 60k i64 once decoded.
    let mut message = vec![0x08, 0x01, 0x12, 0x04, 0x08, 0x01, 0x10, 0x01];
    ld(4, &[0x01; 60_000], &mut message);
    let mut command = vec![0x08, 0x09];
    ld(9, &message, &mut command);
    let res = amplification("packed ack_set", &send_like_message(&command));
    assert!(too_complex(&res, Section::Command), "{}", outcome(&res));

    // MessageIdData.ack_set (field 5) inside an ack.
    let mut id = vec![0x08, 0x01, 0x10, 0x01];
    ld(5, &[0x01; 60_000], &mut id);
    let mut body = Vec::new();
    ld(3, &id, &mut body);
    let res = amplification("packed id ack_set", &frame(&ack_command(&body), &[]));
    assert!(too_complex(&res, Section::Command), "{}", outcome(&res));
}

/// A MESSAGE frame with `command` and a minimal metadata, no checksum.
fn send_like_message(command: &[u8]) -> Vec<u8> {
    let metadata = [0x0a, 0x01, b'p', 0x10, 0x01, 0x18, 0x01];
    let mut rest = (metadata.len() as u32).to_be_bytes().to_vec();
    rest.extend_from_slice(&metadata);
    frame(command, &rest)
}

#[test]
fn an_unknown_group_does_not_hide_what_follows() {
    // An unknown group (field 100: start 0xa3 0x06, end 0xa4 0x06) first: prost skips it and
    // decodes the 25k message ids after it.
    let body: Vec<u8> = std::iter::repeat_n([0x1a, 0x00], 25_000)
        .flatten()
        .collect();
    let mut command = vec![0xa3, 0x06, 0xa4, 0x06];
    command.extend_from_slice(&ack_command(&body));
    let res = amplification("group first", &frame(&command, &[]));
    assert!(too_complex(&res, Section::Command), "{}", outcome(&res));
}

#[test]
fn a_group_inside_a_message_id_does_not_hide_its_ack_set() {
    // A message id with an unknown group (field 15) then a packed ack_set of 60k values.
    let mut id = vec![0x08, 0x01, 0x10, 0x01, 0x7b, 0x7c];
    ld(5, &[0x01; 60_000], &mut id);
    let mut body = Vec::new();
    ld(3, &id, &mut body);
    let res = amplification("group in id", &frame(&ack_command(&body), &[]));
    assert!(too_complex(&res, Section::Command), "{}", outcome(&res));
}

#[test]
fn a_late_error_in_a_nested_message_does_not_hide_its_start() {
    // prost decodes the 60k ack_set values of the message id before it meets field 0.
    let mut id = vec![0x08, 0x01, 0x10, 0x01];
    ld(5, &[0x01; 60_000], &mut id);
    id.push(0x00);
    let mut body = Vec::new();
    ld(3, &id, &mut body);
    let res = amplification("late error", &frame(&ack_command(&body), &[]));
    assert!(
        too_complex(&res, Section::Command)
            || matches!(
                res,
                Err(FrameError::Protobuf {
                    section: Section::Command,
                    ..
                })
            ),
        "{}",
        outcome(&res)
    );
}

#[test]
fn nesting_deeper_than_the_walk_is_charged_in_full() {
    // first_chunk_message_id (field 7) nested 10 deep below the ack, the innermost holding a
    // packed ack_set of 55k values.
    let mut inner = vec![0x08, 0x01, 0x10, 0x01];
    ld(5, &[0x01; 55_000], &mut inner);
    for _ in 0..10 {
        let mut next = vec![0x08, 0x01, 0x10, 0x01];
        ld(7, &inner, &mut next);
        inner = next;
    }
    let mut body = Vec::new();
    ld(3, &inner, &mut body);
    let res = amplification("deep chain", &frame(&ack_command(&body), &[]));
    assert!(too_complex(&res, Section::Command), "{}", outcome(&res));

    // A chain of 90 empty first chunks: small, decodes.
    let mut inner = vec![0x08, 0x01, 0x10, 0x01];
    for _ in 0..90 {
        let mut next = vec![0x08, 0x01, 0x10, 0x01];
        ld(7, &inner, &mut next);
        inner = next;
    }
    let mut body = Vec::new();
    ld(3, &inner, &mut body);
    let res = amplification("deep empty chain", &frame(&ack_command(&body), &[]));
    assert!(
        res.is_ok() || too_complex(&res, Section::Command),
        "{}",
        outcome(&res)
    );
}

#[test]
fn command_and_metadata_share_one_budget() {
    // A command whose packed ack_set (2.6k values) decodes into ~62 KiB, then a metadata with a
    // 60 kB string: each section alone is within 64 KiB, both together are not.
    let mut message = vec![0x08, 0x01, 0x12, 0x04, 0x08, 0x01, 0x10, 0x01];
    ld(4, &[0x01; 2_600], &mut message);
    let mut command = vec![0x08, 0x09];
    ld(9, &message, &mut command);
    // The string starts with 'g' (wire type 7), so it cannot be read as a message.
    let mut text = vec![b'x'; 60_000];
    text[0] = b'g';
    let mut metadata = Vec::new();
    ld(1, &text, &mut metadata);
    metadata.extend_from_slice(&[0x10, 0x01, 0x18, 0x01]);
    let mut rest = (metadata.len() as u32).to_be_bytes().to_vec();
    rest.extend_from_slice(&metadata);
    let res = amplification("two sections", &frame(&command, &rest));
    assert!(too_complex(&res, Section::Metadata), "{}", outcome(&res));

    // Each of them alone decodes.
    let res = amplification("command alone", &send_like_message(&command));
    assert!(res.is_ok(), "{}", outcome(&res));
    let res = amplification("metadata alone", &send_frame(&metadata));
    assert!(res.is_ok(), "{}", outcome(&res));
}

#[test]
fn batch_entries_with_many_properties_stay_within_budget() {
    // One entry whose metadata holds 30k empty properties: refused.
    let mut metadata = Vec::new();
    for _ in 0..30_000 {
        metadata.extend_from_slice(&[0x0a, 0x00]);
    }
    let mut data = (metadata.len() as u32).to_be_bytes().to_vec();
    data.extend_from_slice(&metadata);
    let data = Bytes::from(data);
    let (items, heap) = measured(|| wire::parse_batch(data, 1, MAX).collect::<Vec<_>>());
    assert!(heap <= MAX as u64, "{heap}");
    assert!(
        matches!(
            items.as_slice(),
            [Err(FrameError::TooComplex {
                section: Section::BatchEntry,
                ..
            })]
        ),
        "{items:?}"
    );
}
