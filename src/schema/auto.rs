//! Schemas that take the topic's: AUTO_CONSUME (read any message as a [`GenericValue`] with
//! its writer's schema) and AUTO_PRODUCE_BYTES (send bytes already encoded, checked against the
//! topic's schema), as the Java client's `AutoConsumeSchema` and `AutoProduceBytesSchema`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::generic::{decode_protobuf_wire, parse_parsing_info, GenericValue, ParsingInfo};
use super::key_value::{split_key_value_info, split_parts, KeyValueEncoding};
use super::primitive::{
    BoolSchema, DateSchema, DoubleSchema, FloatSchema, InstantSchema, Int16Schema, Int32Schema,
    Int64Schema, Int8Schema, LocalDateSchema, LocalDateTimeSchema, LocalTimeSchema, TimeSchema,
    TimestampSchema,
};
use super::protobuf::PARSING_INFO_PROPERTY;
use super::{Decoding, Encoded, Schema, SchemaError, SchemaInfo, SchemaType};

/// How many parsed writer schemas an [`AutoConsumeSchema`] keeps (past this, it starts over).
const READER_CACHE: usize = 64;
/// How deep KeyValue schemas may nest in a definition.
const MAX_KV_DEPTH: usize = 4;

/// How a payload of one schema is read into a [`GenericValue`].
#[derive(Debug)]
enum Reader {
    Bytes,
    String,
    Primitive(SchemaType),
    #[cfg(feature = "serde")]
    Json,
    #[cfg(feature = "avro")]
    Avro(Box<apache_avro::Schema>),
    #[cfg(feature = "protobuf")]
    Native(prost_reflect::MessageDescriptor),
    Protobuf(Vec<ParsingInfo>),
    KeyValue(Box<Reader>, Box<Reader>, KeyValueEncoding),
    /// A type this build cannot read (its feature is off): the feature it needs.
    #[cfg_attr(
        all(feature = "serde", feature = "avro", feature = "protobuf"),
        allow(dead_code)
    )]
    Unsupported(SchemaType, &'static str),
}

fn definition_error(kind: SchemaType, reason: impl std::fmt::Display) -> SchemaError {
    SchemaError::Definition {
        kind,
        reason: reason.to_string(),
    }
}

fn decode_error(kind: SchemaType, reason: impl std::fmt::Display) -> SchemaError {
    SchemaError::Decode {
        kind,
        reason: reason.to_string(),
    }
}

impl Reader {
    fn build(info: &SchemaInfo, depth: usize) -> Result<Reader, SchemaError> {
        let kind = info.kind;
        Ok(match kind {
            SchemaType::Bytes => Reader::Bytes,
            SchemaType::String => Reader::String,
            SchemaType::Bool
            | SchemaType::Int8
            | SchemaType::Int16
            | SchemaType::Int32
            | SchemaType::Int64
            | SchemaType::Float
            | SchemaType::Double
            | SchemaType::Date
            | SchemaType::Time
            | SchemaType::Timestamp
            | SchemaType::Instant
            | SchemaType::LocalDate
            | SchemaType::LocalTime
            | SchemaType::LocalDateTime => Reader::Primitive(kind),
            #[cfg(feature = "serde")]
            SchemaType::Json => Reader::Json,
            #[cfg(not(feature = "serde"))]
            SchemaType::Json => Reader::Unsupported(kind, "serde"),
            #[cfg(feature = "avro")]
            SchemaType::Avro => Reader::Avro(Box::new(super::avro::parse_definition(
                kind,
                &info.definition,
            )?)),
            #[cfg(not(feature = "avro"))]
            SchemaType::Avro => Reader::Unsupported(kind, "avro"),
            SchemaType::ProtobufNative => {
                let def = super::protobuf::native::parse_definition(&info.definition)?;
                #[cfg(feature = "protobuf")]
                {
                    Reader::Native(super::protobuf::native::pool(
                        &def.file_descriptor_set,
                        &def.root_message_type_name,
                    )?)
                }
                #[cfg(not(feature = "protobuf"))]
                {
                    super::protobuf::native::root_file(
                        &def.file_descriptor_set,
                        &def.root_message_type_name,
                    )?;
                    Reader::Unsupported(kind, "protobuf")
                }
            }
            SchemaType::Protobuf => {
                Reader::Protobuf(match info.properties.get(PARSING_INFO_PROPERTY) {
                    Some(text) => parse_parsing_info(text).map_err(|e| {
                        definition_error(kind, format!("{PARSING_INFO_PROPERTY}: {e}"))
                    })?,
                    None => Vec::new(),
                })
            }
            SchemaType::KeyValue => {
                if depth >= MAX_KV_DEPTH {
                    return Err(definition_error(kind, "KeyValue schemas nested too deep"));
                }
                let (k, v, encoding) = split_key_value_info(info)?;
                Reader::KeyValue(
                    Box::new(Reader::build(&k, depth + 1)?),
                    Box::new(Reader::build(&v, depth + 1)?),
                    encoding,
                )
            }
            SchemaType::AutoConsume | SchemaType::External => {
                return Err(SchemaError::Mismatch {
                    reader: SchemaType::AutoConsume,
                    writer: kind,
                })
            }
        })
    }

    /// Reads `payload` (and, for a SEPARATED KeyValue, the message key).
    fn read(&self, payload: &[u8], key: Option<&[u8]>) -> Result<GenericValue, SchemaError> {
        let d = Decoding::payload(payload);
        let int = GenericValue::Int;
        Ok(match self {
            Reader::Bytes => GenericValue::Bytes(Bytes::copy_from_slice(payload)),
            Reader::String => GenericValue::String(String::from_utf8_lossy(payload).into_owned()),
            Reader::Primitive(kind) => match kind {
                SchemaType::Bool => GenericValue::Bool(BoolSchema.decode(&d)?),
                SchemaType::Int8 => int(i64::from(Int8Schema.decode(&d)?)),
                SchemaType::Int16 => int(i64::from(Int16Schema.decode(&d)?)),
                SchemaType::Int32 => int(i64::from(Int32Schema.decode(&d)?)),
                SchemaType::Int64 => int(Int64Schema.decode(&d)?),
                SchemaType::Float => GenericValue::Float(f64::from(FloatSchema.decode(&d)?)),
                SchemaType::Double => GenericValue::Float(DoubleSchema.decode(&d)?),
                SchemaType::Date => int(DateSchema.decode(&d)?.millis),
                SchemaType::Time => int(TimeSchema.decode(&d)?.millis),
                SchemaType::Timestamp => int(TimestampSchema.decode(&d)?.millis),
                SchemaType::Instant => {
                    let i = InstantSchema.decode(&d)?;
                    GenericValue::Record(vec![
                        ("epochSecond".into(), int(i.epoch_second())),
                        ("nano".into(), int(i64::from(i.nano()))),
                    ])
                }
                SchemaType::LocalDate => int(LocalDateSchema.decode(&d)?.epoch_day()),
                SchemaType::LocalTime => int(LocalTimeSchema.decode(&d)?.nano_of_day() as i64),
                SchemaType::LocalDateTime => {
                    let v = LocalDateTimeSchema.decode(&d)?;
                    GenericValue::Record(vec![
                        ("epochDay".into(), int(v.date.epoch_day())),
                        ("nanoOfDay".into(), int(v.time.nano_of_day() as i64)),
                    ])
                }
                other => {
                    return Err(SchemaError::Mismatch {
                        reader: SchemaType::AutoConsume,
                        writer: *other,
                    })
                }
            },
            #[cfg(feature = "serde")]
            Reader::Json => GenericValue::from_json(
                serde_json::from_slice(payload).map_err(|e| decode_error(SchemaType::Json, e))?,
            ),
            #[cfg(feature = "avro")]
            Reader::Avro(schema) => super::generic::from_avro(
                super::avro_binary::decode_datum(schema, payload)
                    .map_err(|e| decode_error(SchemaType::Avro, e))?,
            ),
            #[cfg(feature = "protobuf")]
            Reader::Native(desc) => super::generic::from_dynamic_message(
                &prost_reflect::DynamicMessage::decode(desc.clone(), payload)
                    .map_err(|e| decode_error(SchemaType::ProtobufNative, e))?,
            ),
            Reader::Protobuf(fields) => decode_protobuf_wire(payload, fields)
                .map_err(|e| decode_error(SchemaType::Protobuf, e))?,
            Reader::KeyValue(k, v, encoding) => {
                let (key_bytes, value_bytes) = match encoding {
                    KeyValueEncoding::Inline => split_parts(payload)?,
                    KeyValueEncoding::Separated => (key, Some(payload)),
                };
                let part = |r: &Reader, b: Option<&[u8]>| match b {
                    Some(b) => r.read(b, None),
                    None => Ok(GenericValue::Null),
                };
                GenericValue::KeyValue(
                    Box::new(part(k, key_bytes)?),
                    Box::new(part(v, value_bytes)?),
                )
            }
            Reader::Unsupported(kind, feature) => {
                return Err(decode_error(
                    *kind,
                    format!("reading {kind:?} values needs the `{feature}` feature of pulsar-wire"),
                ))
            }
        })
    }

    /// Checks `payload` as AUTO_PRODUCE_BYTES does: what this build cannot read passes.
    fn check(&self, payload: &[u8], key: Option<&[u8]>) -> Result<(), SchemaError> {
        match self {
            Reader::Unsupported(..) => Ok(()),
            Reader::KeyValue(k, v, KeyValueEncoding::Inline) => {
                let (kb, vb) = split_parts(payload)?;
                if let Some(kb) = kb {
                    k.check(kb, None)?;
                }
                if let Some(vb) = vb {
                    v.check(vb, None)?;
                }
                Ok(())
            }
            // SEPARATED: the key is not in the bytes; Java checks the value only.
            Reader::KeyValue(_, v, KeyValueEncoding::Separated) => v.check(payload, None),
            r => r.read(payload, key).map(drop),
        }
    }
}

/// Parsed readers by a hash of the writer's type, definition and properties; each bucket
/// holds the infos themselves, compared in full (a lookup allocates nothing).
type ReaderCache = HashMap<u64, Vec<(SchemaInfo, Arc<Reader>)>>;

fn cache_hash(info: &SchemaInfo) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    info.kind.hash(&mut h);
    info.definition.hash(&mut h);
    info.properties.hash(&mut h);
    h.finish()
}

fn same_schema(a: &SchemaInfo, b: &SchemaInfo) -> bool {
    a.kind == b.kind && a.definition == b.definition && a.properties == b.properties
}

/// Reads every message with its writer's schema into a [`GenericValue`] (the Java client's
/// `Schema.AUTO_CONSUME()`): declared as AUTO_CONSUME, so the broker accepts any topic schema.
///
/// A message without a writer's schema (a topic without schema, or a message without version)
/// reads as [`GenericValue::Bytes`]. Writers' schemas are parsed once per definition and kept.
///
/// PROTOBUF messages carry no descriptor in their schema: they are read from the wire format
/// with the top-level fields' names and types of the schema's `__PARSING_INFO__` property (with
/// feature `serde`; without it, every field is named by its number), nested messages as bytes.
/// Types whose feature is off (JSON without `serde`, AVRO without `avro`, PROTOBUF_NATIVE
/// without `protobuf`) are decode errors that name the feature.
#[derive(Debug, Default)]
pub struct AutoConsumeSchema {
    readers: Mutex<ReaderCache>,
}

impl AutoConsumeSchema {
    /// An AUTO_CONSUME schema.
    pub fn new() -> Self {
        Self::default()
    }

    fn reader(&self, info: &SchemaInfo) -> Result<Arc<Reader>, SchemaError> {
        let hash = cache_hash(info);
        let lock = || self.readers.lock().unwrap_or_else(|e| e.into_inner());
        let cached = lock().get(&hash).and_then(|bucket| {
            bucket
                .iter()
                .find(|(i, _)| same_schema(i, info))
                .map(|(_, r)| r.clone())
        });
        if let Some(r) = cached {
            return Ok(r);
        }
        let r = Arc::new(Reader::build(info, 0)?);
        let mut map = lock();
        if map.len() >= READER_CACHE {
            map.clear();
        }
        map.entry(hash).or_default().push((info.clone(), r.clone()));
        Ok(r)
    }
}

impl Schema for AutoConsumeSchema {
    type Value = GenericValue;

    fn info(&self) -> SchemaInfo {
        SchemaInfo::auto_consume()
    }

    fn encode(&self, _value: &GenericValue) -> Result<Encoded, SchemaError> {
        Err(SchemaError::Encode {
            kind: SchemaType::AutoConsume,
            reason: "an AUTO_CONSUME schema only reads".into(),
        })
    }

    fn decode(&self, input: &Decoding<'_>) -> Result<GenericValue, SchemaError> {
        match input.writer {
            None => Ok(GenericValue::Bytes(Bytes::copy_from_slice(input.payload))),
            Some(w) => self.reader(w)?.read(input.payload, input.key),
        }
    }

    fn wants_writer_schema(&self) -> bool {
        true
    }
}

/// Sends bytes already encoded with the topic's schema, declaring that schema (the Java
/// client's `Schema.AUTO_PRODUCE_BYTES()`): each payload is checked before it is sent, as Java
/// checks it, and passed through unchanged.
///
/// The checks: AVRO datums are decoded whole with the definition (feature `avro`); JSON must
/// parse (feature `serde`); primitives must have their length (and a value in range);
/// PROTOBUF_NATIVE messages must decode with the definition's descriptor (feature `protobuf`;
/// without it, and for PROTOBUF, the protobuf wire format must be well-formed); KeyValue INLINE
/// checks both parts, SEPARATED the value (the key is not in the payload). STRING and BYTES
/// take any bytes. A check this build cannot make (its feature off) passes.
#[derive(Debug)]
pub struct AutoProduceBytesSchema {
    info: Option<SchemaInfo>,
    reader: Option<Reader>,
}

impl AutoProduceBytesSchema {
    /// A schema for a topic whose schema is `topic_schema` (`None`: a topic without schema,
    /// plain bytes). The topic's definition must be usable: an AVRO definition that does not
    /// parse, say, is a [`SchemaError::Definition`].
    pub fn new(topic_schema: Option<SchemaInfo>) -> Result<Self, SchemaError> {
        let reader = match &topic_schema {
            None => None,
            Some(i) if matches!(i.kind, SchemaType::Bytes | SchemaType::External) => None,
            Some(i) if i.kind == SchemaType::AutoConsume => {
                return Err(definition_error(
                    i.kind,
                    "a topic schema cannot be AUTO_CONSUME",
                ))
            }
            Some(i) => Some(Reader::build(i, 0)?),
        };
        Ok(AutoProduceBytesSchema {
            info: topic_schema,
            reader,
        })
    }
}

impl Schema for AutoProduceBytesSchema {
    type Value = Bytes;

    fn info(&self) -> SchemaInfo {
        self.info.clone().unwrap_or_else(SchemaInfo::bytes)
    }

    fn encode(&self, value: &Bytes) -> Result<Encoded, SchemaError> {
        if let (Some(r), Some(info)) = (&self.reader, &self.info) {
            r.check(value, None).map_err(|e| SchemaError::Encode {
                kind: info.kind,
                reason: format!("the bytes are not a {:?} value: {e}", info.kind),
            })?;
        }
        Ok(Encoded::payload(value.clone()))
    }

    fn decode(&self, input: &Decoding<'_>) -> Result<Bytes, SchemaError> {
        if let Some(r) = &self.reader {
            r.check(input.payload, input.key)?;
        }
        Ok(Bytes::copy_from_slice(input.payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{encode_key_value_info, KeyValue, KeyValueSchema, StringSchema};

    fn with_writer<'a>(payload: &'a [u8], w: &'a SchemaInfo) -> Decoding<'a> {
        Decoding {
            payload,
            key: None,
            version: None,
            writer: Some(w),
        }
    }

    #[test]
    fn auto_consume_primitives_and_no_schema() {
        let s = AutoConsumeSchema::new();
        assert_eq!(s.info().kind, SchemaType::AutoConsume);
        assert!(s.wants_writer_schema());
        assert_eq!(
            s.decode(&Decoding::payload(b"raw")).unwrap(),
            GenericValue::Bytes(Bytes::from_static(b"raw"))
        );
        let cases: Vec<(SchemaInfo, Vec<u8>, GenericValue)> = vec![
            (
                StringSchema.info(),
                b"h\xffi".to_vec(),
                GenericValue::String("h\u{fffd}i".into()),
            ),
            (
                Int32Schema.info(),
                vec![0xff, 0xff, 0xff, 0xfe],
                GenericValue::Int(-2),
            ),
            (Int8Schema.info(), vec![0x80], GenericValue::Int(-128)),
            (Int16Schema.info(), vec![0x01, 0x00], GenericValue::Int(256)),
            (
                Int64Schema.info(),
                vec![0, 0, 0, 0, 0, 0, 0, 9],
                GenericValue::Int(9),
            ),
            (BoolSchema.info(), vec![1], GenericValue::Bool(true)),
            (
                FloatSchema.info(),
                1.5f32.to_be_bytes().to_vec(),
                GenericValue::Float(1.5),
            ),
            (
                DoubleSchema.info(),
                2.5f64.to_be_bytes().to_vec(),
                GenericValue::Float(2.5),
            ),
            (
                DateSchema.info(),
                1000i64.to_be_bytes().to_vec(),
                GenericValue::Int(1000),
            ),
            (
                TimeSchema.info(),
                5i64.to_be_bytes().to_vec(),
                GenericValue::Int(5),
            ),
            (
                TimestampSchema.info(),
                6i64.to_be_bytes().to_vec(),
                GenericValue::Int(6),
            ),
            (
                LocalDateSchema.info(),
                7i64.to_be_bytes().to_vec(),
                GenericValue::Int(7),
            ),
            (
                LocalTimeSchema.info(),
                8i64.to_be_bytes().to_vec(),
                GenericValue::Int(8),
            ),
            (
                InstantSchema.info(),
                [&3i64.to_be_bytes()[..], &4i32.to_be_bytes()].concat(),
                GenericValue::Record(vec![
                    ("epochSecond".into(), GenericValue::Int(3)),
                    ("nano".into(), GenericValue::Int(4)),
                ]),
            ),
            (
                LocalDateTimeSchema.info(),
                [&1i64.to_be_bytes()[..], &2i64.to_be_bytes()].concat(),
                GenericValue::Record(vec![
                    ("epochDay".into(), GenericValue::Int(1)),
                    ("nanoOfDay".into(), GenericValue::Int(2)),
                ]),
            ),
            (
                SchemaInfo::bytes(),
                vec![1, 2],
                GenericValue::Bytes(Bytes::from_static(&[1, 2])),
            ),
        ];
        for (info, payload, expected) in cases {
            assert_eq!(
                s.decode(&with_writer(&payload, &info)).unwrap(),
                expected,
                "{info:?}"
            );
            // And the length is checked.
            if info.kind != SchemaType::String && info.kind != SchemaType::Bytes {
                assert!(s.decode(&with_writer(&payload[1..], &info)).is_err());
            }
        }
        let ext = SchemaInfo::new(SchemaType::External, Bytes::new());
        assert!(matches!(
            s.decode(&with_writer(b"", &ext)),
            Err(SchemaError::Mismatch { .. })
        ));
        assert!(s.encode(&GenericValue::Null).is_err());
    }

    #[test]
    fn auto_consume_key_value_both_encodings() {
        let s = AutoConsumeSchema::new();
        let kv = KeyValueSchema::new(StringSchema, Int32Schema, KeyValueEncoding::Inline);
        let info = kv.info();
        let p = kv
            .encode(&KeyValue::new("k".to_string(), 5))
            .unwrap()
            .payload;
        assert_eq!(
            s.decode(&with_writer(&p, &info)).unwrap(),
            GenericValue::KeyValue(
                Box::new(GenericValue::String("k".into())),
                Box::new(GenericValue::Int(5))
            )
        );
        let sep = encode_key_value_info(
            "KeyValue",
            &StringSchema.info(),
            &Int32Schema.info(),
            KeyValueEncoding::Separated,
        );
        let input = Decoding {
            payload: &[0, 0, 0, 5],
            key: Some(b"k"),
            version: None,
            writer: Some(&sep),
        };
        assert_eq!(
            s.decode(&input).unwrap(),
            GenericValue::KeyValue(
                Box::new(GenericValue::String("k".into())),
                Box::new(GenericValue::Int(5))
            )
        );
        let input = Decoding { key: None, ..input };
        assert_eq!(
            s.decode(&input).unwrap(),
            GenericValue::KeyValue(Box::new(GenericValue::Null), Box::new(GenericValue::Int(5)))
        );
        assert!(s.decode(&with_writer(&[0, 0, 0, 9], &info)).is_err());
        // Two writers' schemas, each parsed once.
        let cached = |s: &AutoConsumeSchema| -> usize {
            s.readers.lock().unwrap().values().map(Vec::len).sum()
        };
        assert_eq!(cached(&s), 2);
        s.decode(&input).unwrap();
        assert_eq!(cached(&s), 2);
    }

    #[test]
    fn auto_consume_protobuf_without_descriptor() {
        let s = AutoConsumeSchema::new();
        let info = SchemaInfo::protobuf("{}").property(
            PARSING_INFO_PROPERTY,
            r#"[{"number":1,"name":"x","type":"INT32","label":"LABEL_OPTIONAL","definition":null}]"#,
        );
        let v = s.decode(&with_writer(&[0x08, 0x96, 0x01], &info)).unwrap();
        #[cfg(feature = "serde")]
        assert_eq!(v.field("x"), Some(&GenericValue::Int(150)));
        #[cfg(not(feature = "serde"))]
        assert_eq!(v.field("1"), Some(&GenericValue::UInt(150)));
        assert!(s.decode(&with_writer(&[0x08], &info)).is_err());
    }

    #[test]
    fn auto_produce_checks_and_passes_through() {
        let none = AutoProduceBytesSchema::new(None).unwrap();
        assert_eq!(none.info(), SchemaInfo::bytes());
        let any = Bytes::from_static(b"\x00anything");
        assert_eq!(none.encode(&any).unwrap().payload, any);

        let int = AutoProduceBytesSchema::new(Some(Int32Schema.info())).unwrap();
        assert_eq!(int.info(), Int32Schema.info());
        let ok = Bytes::from_static(&[0, 0, 0, 1]);
        assert_eq!(int.encode(&ok).unwrap().payload, ok);
        let err = int.encode(&Bytes::from_static(&[0, 1])).unwrap_err();
        assert!(
            matches!(err, SchemaError::Encode { kind: SchemaType::Int32, ref reason } if reason.contains("expected 4 bytes")),
            "{err}"
        );

        let kv = KeyValueSchema::new(StringSchema, Int32Schema, KeyValueEncoding::Inline);
        let kvp = AutoProduceBytesSchema::new(Some(kv.info())).unwrap();
        assert!(kvp
            .encode(&Bytes::from_static(&[
                0, 0, 0, 1, b'k', 0, 0, 0, 4, 0, 0, 0, 1
            ]))
            .is_ok());
        assert!(kvp
            .encode(&Bytes::from_static(&[0, 0, 0, 1, b'k', 0, 0, 0, 2, 0, 1]))
            .is_err());
        let sep = KeyValueSchema::new(StringSchema, Int32Schema, KeyValueEncoding::Separated);
        let sepp = AutoProduceBytesSchema::new(Some(sep.info())).unwrap();
        assert!(sepp.encode(&ok).is_ok());
        assert!(sepp.encode(&Bytes::from_static(b"xy")).is_err());

        let pb = AutoProduceBytesSchema::new(Some(SchemaInfo::protobuf("{}"))).unwrap();
        assert!(pb.encode(&Bytes::from_static(&[0x08, 0x01])).is_ok());
        assert!(pb.encode(&Bytes::from_static(&[0x08])).is_err());

        assert!(AutoProduceBytesSchema::new(Some(SchemaInfo::auto_consume())).is_err());
        let bad_native = SchemaInfo::new(SchemaType::ProtobufNative, Bytes::from_static(b"{}"));
        assert!(matches!(
            AutoProduceBytesSchema::new(Some(bad_native)),
            Err(SchemaError::Definition { .. })
        ));
    }

    #[cfg(feature = "serde")]
    #[test]
    fn json_generic_and_checked() {
        let info = SchemaInfo::json(r#"{"type":"record","name":"R","fields":[]}"#);
        let s = AutoConsumeSchema::new();
        let v = s
            .decode(&with_writer(br#"{"b":1,"a":[true]}"#, &info))
            .unwrap();
        assert_eq!(
            v,
            GenericValue::Record(vec![
                (
                    "a".into(),
                    GenericValue::Array(vec![GenericValue::Bool(true)])
                ),
                ("b".into(), GenericValue::Int(1)),
            ])
        );
        assert!(s.decode(&with_writer(b"{", &info)).is_err());
        let p = AutoProduceBytesSchema::new(Some(info)).unwrap();
        assert!(p.encode(&Bytes::from_static(b"[1]")).is_ok());
        let e = p.encode(&Bytes::from_static(b"{x")).unwrap_err();
        assert!(matches!(
            e,
            SchemaError::Encode {
                kind: SchemaType::Json,
                ..
            }
        ));
    }

    #[cfg(feature = "avro")]
    #[test]
    fn avro_generic_and_checked() {
        let def = r#"{"type":"record","name":"R","fields":[{"name":"id","type":"long"},{"name":"tags","type":{"type":"map","values":"string"}},{"name":"u","type":["null","string"]}]}"#;
        let info = SchemaInfo::avro(def);
        // id = 3, tags = {"b": "y", "a": "x"}, u = branch 1 "z".
        let payload = [
            0x06, 0x04, 0x02, b'b', 0x02, b'y', 0x02, b'a', 0x02, b'x', 0x00, 0x02, 0x02, b'z',
        ];
        let s = AutoConsumeSchema::new();
        let v = s.decode(&with_writer(&payload, &info)).unwrap();
        assert_eq!(
            v,
            GenericValue::Record(vec![
                ("id".into(), GenericValue::Int(3)),
                (
                    "tags".into(),
                    GenericValue::Record(vec![
                        ("a".into(), GenericValue::String("x".into())),
                        ("b".into(), GenericValue::String("y".into())),
                    ])
                ),
                ("u".into(), GenericValue::String("z".into())),
            ])
        );
        assert!(s.decode(&with_writer(&payload[..5], &info)).is_err());
        let p = AutoProduceBytesSchema::new(Some(info.clone())).unwrap();
        assert!(p.encode(&Bytes::copy_from_slice(&payload)).is_ok());
        let e = p
            .encode(&Bytes::copy_from_slice(&payload[..payload.len() - 1]))
            .unwrap_err();
        assert!(matches!(
            e,
            SchemaError::Encode {
                kind: SchemaType::Avro,
                ..
            }
        ));
        let mut longer = payload.to_vec();
        longer.push(0);
        assert!(p.encode(&Bytes::from(longer)).is_err());
        assert!(AutoProduceBytesSchema::new(Some(SchemaInfo::avro("nope"))).is_err());
        assert!(s
            .decode(&with_writer(&payload, &SchemaInfo::avro("nope")))
            .is_err());
    }

    #[cfg(feature = "protobuf")]
    #[test]
    fn protobuf_native_generic_and_checked() {
        use crate::schema::ProtobufNativeSchema;
        #[derive(Clone, PartialEq, prost::Message)]
        struct Point {
            #[prost(int32, tag = "1")]
            x: i32,
            #[prost(string, tag = "2")]
            label: String,
        }
        let set = crate::schema::protobuf::tests::point_descriptor_set();
        let info = ProtobufNativeSchema::<Point>::from_descriptor_set(&set, "demo.Point")
            .unwrap()
            .info();
        let s = AutoConsumeSchema::new();
        let v = s.decode(&with_writer(&[0x08, 0x07], &info)).unwrap();
        assert_eq!(
            v,
            GenericValue::Record(vec![
                ("x".into(), GenericValue::Int(7)),
                ("label".into(), GenericValue::String(String::new())),
            ])
        );
        assert!(s.decode(&with_writer(&[0x12, 0x09], &info)).is_err());
        let p = AutoProduceBytesSchema::new(Some(info)).unwrap();
        assert!(p.encode(&Bytes::from_static(&[0x08, 0x07])).is_ok());
        assert!(p.encode(&Bytes::from_static(&[0x12, 0x09])).is_err());
    }
}
