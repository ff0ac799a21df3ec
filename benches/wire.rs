//! Wire-layer micro-benchmarks: SEND frame encode and decode (1 KiB payload and a 128 KiB
//! batch-sized one) next to a plain copy of the same bytes, and batch build and parse
//! (1000 entries of 100 B).
//!
//! `cargo bench --bench wire` (about a minute). Throughput is in payload bytes, so the frame
//! figures read against the `memcpy` line: the frame codec adds the command and metadata
//! protobufs and a CRC32C over the payload; decode's payload stays a slice of the frame.

use std::hint::black_box;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pulsar_wire::wire::proto::{
    base_command::Type, BaseCommand, CommandSend, MessageMetadata, SingleMessageMetadata,
};
use pulsar_wire::wire::{self, DEFAULT_MAX_FRAME_SIZE};

/// Payload sizes of the frame benchmarks: one 1 KiB message, and a full default batch.
const SIZES: [(usize, &str); 2] = [(1024, "1KiB"), (128 * 1024, "128KiB")];
/// Entries of the batch benchmarks, and their payload size.
const BATCH_ENTRIES: usize = 1000;
const ENTRY_SIZE: usize = 100;

fn send_command(sequence_id: u64, num_messages: Option<i32>) -> BaseCommand {
    BaseCommand {
        r#type: Type::Send as i32,
        send: Some(CommandSend {
            producer_id: 1,
            sequence_id,
            num_messages,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Metadata as the producer writes it for one message or a batch.
fn metadata(sequence_id: u64, len: usize, num_messages: Option<i32>) -> MessageMetadata {
    MessageMetadata {
        producer_name: "standalone-0-42".into(),
        sequence_id,
        publish_time: 1_767_225_600_000,
        uncompressed_size: Some(len as u32),
        num_messages_in_batch: num_messages,
        ..Default::default()
    }
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn frames(c: &mut Criterion) {
    let mut group = c.benchmark_group("send_frame");
    for (len, name) in SIZES {
        let data = payload(len);
        let batch = (len > 1024).then_some(1000);
        let command = send_command(7, batch);
        let meta = metadata(7, len, batch);
        group.throughput(Throughput::Bytes(len as u64));

        let mut buf = BytesMut::with_capacity(len + 256);
        group.bench_function(BenchmarkId::new("encode", name), |b| {
            b.iter(|| {
                buf.clear();
                wire::encode_payload_command(
                    &command,
                    None,
                    &meta,
                    black_box(&data),
                    &mut buf,
                    DEFAULT_MAX_FRAME_SIZE,
                )
                .expect("encodes");
                black_box(buf.len())
            })
        });

        let mut encoded = BytesMut::new();
        wire::encode_payload_command(
            &command,
            None,
            &meta,
            &data,
            &mut encoded,
            DEFAULT_MAX_FRAME_SIZE,
        )
        .expect("encodes");
        let encoded: Bytes = encoded.freeze();
        group.bench_function(BenchmarkId::new("decode", name), |b| {
            b.iter(|| {
                let frame = wire::decode_frame(black_box(encoded.clone()), DEFAULT_MAX_FRAME_SIZE)
                    .expect("decodes");
                black_box(frame.payload.map(|p| p.data.len()))
            })
        });

        let mut copy = vec![0u8; len];
        group.bench_function(BenchmarkId::new("memcpy", name), |b| {
            b.iter(|| {
                copy.copy_from_slice(black_box(&data));
                black_box(copy.as_ptr());
            })
        });
    }
    group.finish();
}

fn batches(c: &mut Criterion) {
    let mut group = c.benchmark_group("batch");
    let entry = payload(ENTRY_SIZE);
    let build = |dst: &mut BytesMut| {
        for i in 0..BATCH_ENTRIES {
            let mut md = SingleMessageMetadata {
                sequence_id: Some(i as u64),
                ..Default::default()
            };
            wire::encode_entry(&mut md, &entry, dst);
        }
    };
    let mut built = BytesMut::new();
    build(&mut built);
    let built: Bytes = built.freeze();
    group.throughput(Throughput::Bytes(built.len() as u64));

    let mut buf = BytesMut::with_capacity(built.len());
    group.bench_function(BenchmarkId::new("build", "1000x100B"), |b| {
        b.iter(|| {
            buf.clear();
            build(&mut buf);
            black_box(buf.len())
        })
    });

    group.bench_function(BenchmarkId::new("parse", "1000x100B"), |b| {
        b.iter(|| {
            let mut bytes = 0;
            for e in wire::parse_batch(
                black_box(built.clone()),
                BATCH_ENTRIES as u32,
                DEFAULT_MAX_FRAME_SIZE,
            ) {
                bytes += e.expect("parses").payload.len();
            }
            assert_eq!(bytes, BATCH_ENTRIES * ENTRY_SIZE);
            black_box(bytes)
        })
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = frames, batches
}
criterion_main!(benches);
