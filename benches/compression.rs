//! Compression micro-benchmarks: compress and decompress a 128 KiB batch (the producer's
//! default batch size) with every codec, next to a plain copy of the same bytes.
//!
//! `cargo bench --bench compression` (about a minute). Throughput is in uncompressed bytes for
//! both directions. The batch is what a producer sends: ~1000 entries, each a
//! `SingleMessageMetadata` (sequence id, event time, a property) and a JSON record of ~100 B
//! whose ids, names and numbers vary, so it compresses about as well as real traffic does,
//! not as well as a repeated string would.

use std::hint::black_box;
use std::time::Duration;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pulsar_wire::compression::{self, Compression};
use pulsar_wire::wire::{
    self,
    proto::{KeyValue, SingleMessageMetadata},
};

/// The producer's default batch size.
const BATCH_BYTES: usize = 128 * 1024;

/// A deterministic xorshift64 generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A batch of JSON events, entries as the producer writes them, up to `BATCH_BYTES`.
fn batch() -> Vec<u8> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let events = ["click", "view", "purchase", "login", "logout"];
    let mut out = BytesMut::with_capacity(BATCH_BYTES + 256);
    let mut i = 0u64;
    while out.len() < BATCH_BYTES {
        let record = format!(
            r#"{{"id":"{:016x}","user":"user-{:05}","event":"{}","ts":{},"amount":{}.{:02},"ok":{}}}"#,
            rng.next(),
            rng.below(20_000),
            events[rng.below(events.len() as u64) as usize],
            1_700_000_000_000 + i * 7 + rng.below(5),
            rng.below(10_000),
            rng.below(100),
            rng.below(2) == 0,
        );
        let mut md = SingleMessageMetadata {
            sequence_id: Some(i),
            event_time: Some(1_700_000_000_000 + i * 7),
            properties: vec![KeyValue {
                key: "source".into(),
                value: format!("svc-{}", rng.below(8)),
            }],
            ..Default::default()
        };
        wire::encode_entry(&mut md, record.as_bytes(), &mut out);
        i += 1;
    }
    out.to_vec()
}

fn codecs(c: &mut Criterion) {
    let input = batch();
    let mut group = c.benchmark_group("compression");
    group.throughput(Throughput::Bytes(input.len() as u64));

    group.bench_function(BenchmarkId::new("memcpy", "128KiB"), |b| {
        b.iter(|| black_box(black_box(input.as_slice()).to_vec()))
    });
    for codec in [
        Compression::Lz4,
        Compression::Snappy,
        Compression::Zstd,
        Compression::Zlib,
    ] {
        let packed = compression::compress(codec, &input);
        eprintln!(
            "{codec}: {} -> {} bytes (ratio {:.2})",
            input.len(),
            packed.len(),
            input.len() as f64 / packed.len() as f64
        );
        group.bench_function(
            BenchmarkId::new(format!("{codec}/compress"), "128KiB"),
            |b| b.iter(|| black_box(compression::compress(codec, black_box(&input)))),
        );
        group.bench_function(
            BenchmarkId::new(format!("{codec}/decompress"), "128KiB"),
            |b| {
                b.iter(|| {
                    let out =
                        compression::decompress(codec, black_box(&packed), input.len(), 5 << 20);
                    black_box(out.map(|o| o.len()))
                })
            },
        );
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = codecs
}
criterion_main!(benches);
