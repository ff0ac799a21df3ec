//! Schemas: typed values on the wire, as the Java client's `Schema<T>`.
//!
//! A [`Schema`] turns an application value into a payload and back, and says what it is
//! ([`SchemaInfo`]: type, definition, properties), which a producer and a consumer declare to the
//! broker so that its schema registry checks that writers and readers agree. Every message a
//! producer sends carries the [`SchemaVersion`] the registry gave its schema; a consumer decodes
//! each message with the writer's schema of that version where the format needs it (Avro).
//!
//! The codecs are pure functions over bytes: no I/O, no runtime, and hostile input gives a
//! [`SchemaError`], never a panic.

mod auto;
#[cfg(feature = "avro")]
mod avro;
#[cfg(feature = "avro")]
mod avro_binary;
mod generic;
mod info;
#[cfg(feature = "serde")]
mod json;
mod key_value;
mod primitive;
mod protobuf;
#[cfg(feature = "avro")]
mod reflect;
mod time;

pub use auto::{AutoConsumeSchema, AutoProduceBytesSchema};
#[cfg(feature = "avro")]
pub use avro::AvroSchema;
pub use generic::GenericValue;
pub use info::{SchemaInfo, SchemaType, SchemaVersion};
#[cfg(feature = "serde")]
pub use json::JsonSchema;
pub use key_value::{
    encode_key_value_info, split_key_value_info, KeyValue, KeyValueEncoding, KeyValueSchema,
};
pub use primitive::{
    BoolSchema, BytesSchema, DateSchema, DoubleSchema, FloatSchema, InstantSchema, Int16Schema,
    Int32Schema, Int64Schema, Int8Schema, LocalDateSchema, LocalDateTimeSchema, LocalTimeSchema,
    StringSchema, TimeSchema, TimestampSchema,
};
pub use protobuf::{ProtobufNativeSchema, ProtobufSchema, PARSING_INFO_PROPERTY};
pub use time::{
    Date, Instant, LocalDate, LocalDateTime, LocalTime, Time, TimeRangeError, Timestamp,
};

use std::collections::BTreeMap;

use bytes::Bytes;

/// The property the Java client's `SchemaDefinitionBuilderImpl` sets to say that every field of
/// a definition derived from a class may be null.
pub const ALWAYS_ALLOW_NULL: &str = "__alwaysAllowNull";
/// The property the Java client's `SchemaDefinitionBuilderImpl` sets to say whether time fields
/// use the JSR-310 (`java.time`) logical types.
pub const JSR310_CONVERSION_ENABLED: &str = "__jsr310ConversionEnabled";

/// The properties of a Java struct schema (JSON, AVRO, PROTOBUF) built from a
/// `SchemaDefinition` with its defaults (`SchemaDefinitionBuilderImpl.build`: always allow null,
/// no JSR-310 conversion).
pub(crate) fn struct_properties() -> BTreeMap<String, String> {
    BTreeMap::from([
        (ALWAYS_ALLOW_NULL.to_string(), "true".to_string()),
        (JSR310_CONVERSION_ENABLED.to_string(), "false".to_string()),
    ])
}

/// Why a value could not be encoded or a payload decoded with a schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// The payload is not a value of the schema.
    #[error("cannot decode a {kind:?} value: {reason}")]
    Decode {
        /// The schema's type.
        kind: SchemaType,
        /// What is wrong with the payload.
        reason: String,
    },
    /// The value cannot be written with the schema.
    #[error("cannot encode a {kind:?} value: {reason}")]
    Encode {
        /// The schema's type.
        kind: SchemaType,
        /// What is wrong with the value.
        reason: String,
    },
    /// A schema definition (the application's or the registry's) cannot be used.
    #[error("invalid {kind:?} schema definition: {reason}")]
    Definition {
        /// The schema's type.
        kind: SchemaType,
        /// What is wrong with it.
        reason: String,
    },
    /// The message was written with a schema this one cannot read.
    #[error("a {reader:?} schema cannot read a message written with a {writer:?} schema")]
    Mismatch {
        /// The reader's type.
        reader: SchemaType,
        /// The writer's type.
        writer: SchemaType,
    },
}

/// A value encoded by a [`Schema`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Encoded {
    /// The message payload.
    pub payload: Bytes,
    /// The message key, as bytes: a KeyValue schema with the SEPARATED encoding puts the key
    /// here; the producer sends it base64-encoded as the partition key (with
    /// `partition_key_b64_encoded`), as the Java client does. `None` for every other schema.
    pub key: Option<Bytes>,
}

impl Encoded {
    /// A payload with no key.
    pub fn payload(payload: impl Into<Bytes>) -> Self {
        Encoded {
            payload: payload.into(),
            key: None,
        }
    }
}

/// What a [`Schema`] decodes: a message's payload, its key and the writer's schema.
#[derive(Debug, Clone, Copy)]
pub struct Decoding<'a> {
    /// The message payload.
    pub payload: &'a [u8],
    /// The message key as bytes (base64-decoded when the producer marked it so), if any.
    pub key: Option<&'a [u8]>,
    /// The schema version the message was written with, if it carried one.
    pub version: Option<&'a SchemaVersion>,
    /// The writer's schema (the registry's schema of `version`): given to schemas whose
    /// [`Schema::wants_writer_schema`] is true, when the message carried a version.
    pub writer: Option<&'a SchemaInfo>,
}

impl<'a> Decoding<'a> {
    /// A payload with no key, version or writer schema.
    pub fn payload(payload: &'a [u8]) -> Self {
        Decoding {
            payload,
            key: None,
            version: None,
            writer: None,
        }
    }
}

/// A schema: what its values are ([`Schema::info`], declared to the broker) and how they are
/// written and read.
///
/// The client holds a schema behind an `Arc` and calls it from its tasks, so implementations
/// keep any cache (parsed writer schemas, say) behind their own lock.
pub trait Schema: Send + Sync + 'static {
    /// The application's value.
    type Value: Send + 'static;

    /// The schema declared on PRODUCER and SUBSCRIBE.
    fn info(&self) -> SchemaInfo;

    /// Writes `value`.
    fn encode(&self, value: &Self::Value) -> Result<Encoded, SchemaError>;

    /// Reads a message's payload.
    fn decode(&self, input: &Decoding<'_>) -> Result<Self::Value, SchemaError>;

    /// Whether [`Decoding::writer`] matters to this schema (Avro resolves the writer's schema
    /// against its own; AUTO_CONSUME decodes with the writer's). When true, the consumer fetches
    /// the writer's schema from the registry (once per version) before decoding.
    fn wants_writer_schema(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod fuzz_tests {
    //! Bounded, deterministic fuzzing: random and mutated payloads through every decoder; each
    //! must return Ok or Err, never panic (a panic fails the test), and what decodes must mean
    //! what it says.
    use super::*;

    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        /// A random payload, or a mutation (flipped bytes, cut, extended) of one of `seeds`.
        fn payload(&mut self, seeds: &[Vec<u8>]) -> Vec<u8> {
            if seeds.is_empty() || self.below(3) == 0 {
                let len = self.below(48);
                return (0..len).map(|_| self.next() as u8).collect();
            }
            let mut p = seeds[self.below(seeds.len())].clone();
            match self.below(4) {
                0 if !p.is_empty() => {
                    let i = self.below(p.len());
                    p[i] = self.next() as u8;
                }
                1 => {
                    let cut = self.below(p.len() + 1);
                    p.truncate(cut);
                }
                2 => {
                    let n = self.below(6);
                    p.extend((0..n).map(|_| self.next() as u8));
                }
                _ => {
                    for _ in 0..3 {
                        if !p.is_empty() {
                            let i = self.below(p.len());
                            p[i] ^= 1 << self.below(8);
                        }
                    }
                }
            }
            p
        }
    }

    const ROUNDS: usize = 3000;

    /// Decodes random payloads with `schema`; `check` sees each payload and its result.
    fn fuzz<S: Schema>(
        seed: u64,
        schema: &S,
        writer: Option<&SchemaInfo>,
        seeds: &[Vec<u8>],
        mut check: impl FnMut(&[u8], &Result<S::Value, SchemaError>),
    ) {
        let mut rng = XorShift(seed);
        for _ in 0..ROUNDS {
            let payload = rng.payload(seeds);
            let key = rng.payload(seeds);
            let input = Decoding {
                payload: &payload,
                key: (rng.below(2) == 0).then_some(&key[..]),
                version: None,
                writer,
            };
            let r = schema.decode(&input);
            check(&payload, &r);
        }
    }

    fn fixed_width<S: Schema>(seed: u64, s: S, width: usize, always_valid: bool) {
        fuzz(seed, &s, None, &[vec![0; width]], |p, r| {
            if p.len() != width {
                assert!(r.is_err(), "{p:?}");
            } else if always_valid {
                assert!(r.is_ok(), "{p:?}");
            }
        });
    }

    #[test]
    fn primitives_never_panic_and_check_lengths() {
        fixed_width(1, Int8Schema, 1, true);
        fixed_width(2, Int16Schema, 2, true);
        fixed_width(3, Int32Schema, 4, true);
        fixed_width(4, Int64Schema, 8, true);
        fixed_width(5, FloatSchema, 4, true);
        fixed_width(6, DoubleSchema, 8, true);
        fixed_width(7, BoolSchema, 1, true);
        fixed_width(8, DateSchema, 8, true);
        fixed_width(9, TimeSchema, 8, true);
        fixed_width(10, TimestampSchema, 8, true);
        fixed_width(11, InstantSchema, 12, false);
        fixed_width(12, LocalDateSchema, 8, false);
        fixed_width(13, LocalTimeSchema, 8, false);
        fixed_width(14, LocalDateTimeSchema, 16, false);
        fuzz(15, &StringSchema, None, &[b"text".to_vec()], |p, r| {
            assert_eq!(r.is_ok(), std::str::from_utf8(p).is_ok());
        });
        fuzz(16, &BytesSchema, None, &[], |p, r| {
            assert_eq!(r.as_deref().ok(), Some(p));
        });
    }

    #[test]
    fn key_values_never_panic_and_round_trip() {
        let s = KeyValueSchema::new(Int32Schema, StringSchema, KeyValueEncoding::Inline);
        let seed = s
            .encode(&KeyValue::new(1, "ab".into()))
            .unwrap()
            .payload
            .to_vec();
        fuzz(21, &s, None, &[seed], |p, r| {
            if let Ok(v) = r {
                // What decodes was written by this schema, unless a part was null (-1).
                if !p.windows(4).any(|w| w == [0xff; 4]) {
                    assert_eq!(&s.encode(v).unwrap().payload[..], p);
                }
            }
        });
        let s = KeyValueSchema::new(StringSchema, Int64Schema, KeyValueEncoding::Separated);
        let info = s.info();
        fuzz(22, &s, Some(&info), &[vec![0; 8]], |p, r| {
            if r.is_ok() {
                assert_eq!(p.len(), 8);
            }
        });
        let mut rng = XorShift(23);
        for _ in 0..ROUNDS {
            let def = rng.payload(&[info.definition.to_vec()]);
            let info = SchemaInfo {
                definition: def.into(),
                ..info.clone()
            };
            let _ = split_key_value_info(&info);
        }
    }

    #[test]
    fn protobuf_never_panics() {
        #[derive(Clone, PartialEq, prost::Message)]
        struct M {
            #[prost(int64, tag = "1")]
            a: i64,
            #[prost(string, repeated, tag = "2")]
            b: Vec<String>,
            #[prost(bytes = "vec", tag = "3")]
            c: Vec<u8>,
        }
        let seed = prost::Message::encode_to_vec(&M {
            a: -3,
            b: vec!["x".into(), "yz".into()],
            c: vec![1, 2, 3],
        });
        let s = ProtobufSchema::<M>::with_definition("{}", None).unwrap();
        fuzz(31, &s, None, std::slice::from_ref(&seed), |_, _| {});
        let info = SchemaInfo::protobuf("{}").property(
            PARSING_INFO_PROPERTY,
            r#"[{"number":1,"name":"a","type":"INT64","label":"LABEL_OPTIONAL","definition":null},{"number":2,"name":"b","type":"STRING","label":"LABEL_REPEATED","definition":null}]"#,
        );
        let auto = AutoConsumeSchema::new();
        let mut oks = 0;
        fuzz(
            32,
            &auto,
            Some(&info),
            std::slice::from_ref(&seed),
            |_, r| oks += usize::from(r.is_ok()),
        );
        assert!(oks > 0);
        let produce = AutoProduceBytesSchema::new(Some(info)).unwrap();
        let mut rng = XorShift(33);
        for _ in 0..ROUNDS {
            let p = Bytes::from(rng.payload(std::slice::from_ref(&seed)));
            if let Ok(e) = produce.encode(&p) {
                assert_eq!(e.payload, p);
            }
        }
    }

    #[test]
    fn auto_consume_never_panics_on_any_writer() {
        let kv = KeyValueSchema::new(Int32Schema, StringSchema, KeyValueEncoding::Inline);
        #[allow(unused_mut)] // nothing is added without features
        let mut writers = vec![
            (SchemaInfo::bytes(), vec![]),
            (StringSchema.info(), b"s".to_vec()),
            (InstantSchema.info(), vec![0; 12]),
            (LocalDateTimeSchema.info(), vec![0; 16]),
            (
                kv.info(),
                kv.encode(&KeyValue::new(1, "x".into()))
                    .unwrap()
                    .payload
                    .to_vec(),
            ),
        ];
        #[cfg(feature = "serde")]
        writers.push((SchemaInfo::json("{}"), br#"{"a":[1,{"b":null}]}"#.to_vec()));
        #[cfg(feature = "avro")]
        writers.push((
            SchemaInfo::avro(
                r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"},{"name":"b","type":{"type":"array","items":["null","string"]}},{"name":"m","type":{"type":"map","values":"R"}}]}"#,
            ),
            vec![0x02, 0x02, 0x02, 0x02, b'q', 0x00, 0x00],
        ));
        #[cfg(feature = "protobuf")]
        writers.push((
            ProtobufNativeSchema::<()>::from_descriptor_set(
                &protobuf::tests::point_descriptor_set(),
                "demo.Point",
            )
            .unwrap()
            .info(),
            vec![0x08, 0x96, 0x01, 0x12, 0x01, b'a'],
        ));
        let auto = AutoConsumeSchema::new();
        for (i, (w, seed)) in writers.iter().enumerate() {
            let mut oks = 0;
            fuzz(
                40 + i as u64,
                &auto,
                Some(w),
                std::slice::from_ref(seed),
                |_, r| oks += usize::from(r.is_ok()),
            );
            assert!(oks > 0, "{w:?}");
            let produce = AutoProduceBytesSchema::new(Some(w.clone())).unwrap();
            let mut rng = XorShift(60 + i as u64);
            for _ in 0..ROUNDS {
                let p = Bytes::from(rng.payload(std::slice::from_ref(seed)));
                let checked = produce.encode(&p);
                let read = auto.decode(&Decoding {
                    payload: &p,
                    key: None,
                    version: None,
                    writer: Some(w),
                });
                // What AUTO_PRODUCE_BYTES lets through, AUTO_CONSUME reads.
                if checked.is_ok() {
                    assert!(read.is_ok(), "{w:?} {p:?}");
                }
            }
        }
    }

    #[cfg(feature = "avro")]
    #[test]
    fn avro_never_panics_and_what_decodes_re_encodes() {
        #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        struct R {
            a: i64,
            s: String,
            n: Option<i32>,
        }
        let def = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"},{"name":"s","type":"string"},{"name":"n","type":["null","int"],"default":null}]}"#;
        let s = AvroSchema::<R>::with_definition(def).unwrap();
        let seed = s
            .encode(&R {
                a: 5,
                s: "abc".into(),
                n: Some(-7),
            })
            .unwrap()
            .payload
            .to_vec();
        fuzz(51, &s, None, std::slice::from_ref(&seed), |p, r| {
            if let Ok(v) = r {
                assert_eq!(&s.encode(v).unwrap().payload[..], p);
            }
        });
        let old = SchemaInfo::avro(
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"},{"name":"s","type":"string"}]}"#,
        );
        fuzz(
            52,
            &s,
            Some(&old),
            &[seed[..seed.len() - 2].to_vec()],
            |_, r| {
                if let Ok(v) = r {
                    assert_eq!(v.n, None);
                }
            },
        );
    }

    #[cfg(feature = "serde")]
    #[test]
    fn json_never_panics() {
        let s = JsonSchema::<std::collections::BTreeMap<String, i64>>::with_definition(
            r#"{"type":"map","values":"long"}"#,
        )
        .unwrap();
        fuzz(61, &s, None, &[br#"{"a":1,"b":-2}"#.to_vec()], |_, _| {});
    }
}
