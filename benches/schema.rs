//! Schema micro-benchmarks: the cost per message of encoding and decoding a small record with
//! each codec, next to the bytes schema (a copy) and a 64-bit integer.
//!
//! `cargo bench --features avro --bench schema` (about half a minute). The record is the
//! interop tests' `Pojo` with a third field: a nullable name, a count, a list of tags, as
//! Java's `Schema.AVRO(Pojo)` and `Schema.JSON(Pojo)` declare it. Avro is decoded twice: with
//! the writer's schema the reader's own, and with an older writer's schema resolved against
//! the reader's (schema evolution, a field added with a default).

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use pulsar_wire::schema::{
    AvroSchema, BytesSchema, Decoding, Int64Schema, JsonSchema, Schema, SchemaInfo,
};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Pojo {
    name: Option<String>,
    count: i32,
    #[serde(default)]
    tags: Vec<String>,
}

const V1: &str = r#"{"type":"record","name":"Pojo","namespace":"pulsarwire","fields":[{"name":"count","type":"int"},{"name":"name","type":["null","string"],"default":null}]}"#;
const V2: &str = r#"{"type":"record","name":"Pojo","namespace":"pulsarwire","fields":[{"name":"count","type":"int"},{"name":"name","type":["null","string"],"default":null},{"name":"tags","type":{"type":"array","items":"string"},"default":[]}]}"#;

fn pojo() -> Pojo {
    Pojo {
        name: Some("a name of some length".into()),
        count: 123_456,
        tags: vec!["red".into(), "green".into(), "blue".into()],
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("schema");
    g.measurement_time(Duration::from_secs(3));

    let bytes = Bytes::from(vec![7u8; 64]);
    g.bench_function("bytes encode+decode (64 B)", |b| {
        b.iter(|| {
            let e = BytesSchema.encode(black_box(&bytes)).expect("encode");
            BytesSchema
                .decode(&Decoding::payload(&e.payload))
                .expect("decode")
        })
    });
    g.bench_function("int64 encode+decode", |b| {
        b.iter(|| {
            let e = Int64Schema.encode(black_box(&-42i64)).expect("encode");
            Int64Schema
                .decode(&Decoding::payload(&e.payload))
                .expect("decode")
        })
    });

    let json = JsonSchema::<Pojo>::with_definition(V2).expect("json");
    let value = pojo();
    g.bench_function("json encode", |b| {
        b.iter(|| json.encode(black_box(&value)).expect("encode"))
    });
    let payload = json.encode(&value).expect("encode").payload;
    g.bench_function("json decode", |b| {
        b.iter(|| {
            json.decode(&Decoding::payload(black_box(&payload)))
                .expect("decode")
        })
    });

    let avro = AvroSchema::<Pojo>::with_definition(V2).expect("avro");
    g.bench_function("avro encode", |b| {
        b.iter(|| avro.encode(black_box(&value)).expect("encode"))
    });
    let payload = avro.encode(&value).expect("encode").payload;
    let own = avro.info();
    g.bench_function("avro decode (the writer's schema is the reader's)", |b| {
        b.iter(|| {
            avro.decode(&Decoding {
                payload: black_box(&payload),
                key: None,
                version: None,
                writer: Some(&own),
            })
            .expect("decode")
        })
    });
    let old = AvroSchema::<Pojo>::with_definition(V1).expect("avro v1");
    let old_payload = old
        .encode(&Pojo {
            tags: Vec::new(),
            ..pojo()
        })
        .expect("encode")
        .payload;
    let writer = SchemaInfo::avro(V1);
    g.bench_function("avro decode (an older writer's schema, resolved)", |b| {
        b.iter(|| {
            avro.decode(&Decoding {
                payload: black_box(&old_payload),
                key: None,
                version: None,
                writer: Some(&writer),
            })
            .expect("decode")
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
