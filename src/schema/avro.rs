//! Avro schemas (feature `avro`): values of serde types written as Avro binary datums, as the
//! Java client's `AvroSchema` writes them (no container header, no schema fingerprint), and
//! read with the writer's schema resolved against the reader's (schema evolution).

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::avro_binary::decode_datum;
use super::{struct_properties, Decoding, Encoded, Schema, SchemaError, SchemaInfo, SchemaType};

/// How many parsed writer schemas an [`AvroSchema`] keeps (a topic has few versions; past
/// this, the cache starts over).
const WRITER_CACHE: usize = 64;

/// The JSON text of a parsed Avro schema (`apache_avro`'s canonical serialization, compact).
pub(crate) fn schema_json(schema: &apache_avro::Schema) -> String {
    // Serializing a parsed schema cannot fail; an empty object is never reached.
    serde_json::to_string(schema).unwrap_or_else(|_| "{}".to_string())
}

/// Parses an Avro definition (JSON text).
///
/// Java's Avro names the records of nested classes with a `$` in their namespace
/// (`"namespace":"com.example.Outer$"`, `ReflectData`), which `apache_avro` refuses; every `$` of
/// a type name, namespace or alias is read as `_` (the declared text is left as it is, and
/// writers' and readers' definitions are read alike, so their names still match).
pub(crate) fn parse_definition(
    kind: SchemaType,
    definition: &[u8],
) -> Result<apache_avro::Schema, SchemaError> {
    let bad = |reason: String| SchemaError::Definition { kind, reason };
    let mut json: serde_json::Value =
        serde_json::from_slice(definition).map_err(|e| bad(e.to_string()))?;
    fix_type_names(&mut json);
    apache_avro::Schema::parse(&json).map_err(|e| bad(e.to_string()))
}

/// Replaces `$` by `_` in the names of a type (see [`parse_definition`]). The JSON parser's
/// nesting limit bounds the recursion.
fn fix_type_names(t: &mut serde_json::Value) {
    use serde_json::Value;
    fn fix(s: &mut String) {
        if s.contains('$') {
            *s = s.replace('$', "_");
        }
    }
    match t {
        Value::String(s) => fix(s),
        Value::Array(union) => union.iter_mut().for_each(fix_type_names),
        Value::Object(m) => {
            for key in ["name", "namespace"] {
                if let Some(Value::String(s)) = m.get_mut(key) {
                    fix(s);
                }
            }
            if let Some(Value::Array(aliases)) = m.get_mut("aliases") {
                for a in aliases {
                    if let Value::String(s) = a {
                        fix(s);
                    }
                }
            }
            for key in ["type", "items", "values"] {
                if let Some(inner) = m.get_mut(key) {
                    fix_type_names(inner);
                }
            }
            if let Some(Value::Array(fields)) = m.get_mut("fields") {
                for f in fields {
                    if let Some(ft) = f.get_mut("type") {
                        fix_type_names(ft);
                    }
                }
            }
        }
        _ => {}
    }
}

/// Parsed writer schemas by their definition bytes, behind a lock.
#[derive(Debug, Default)]
pub(crate) struct WriterCache(Mutex<HashMap<Bytes, Arc<apache_avro::Schema>>>);

impl WriterCache {
    /// The parsed schema of `definition`, parsed once.
    pub(crate) fn get(
        &self,
        kind: SchemaType,
        definition: &Bytes,
    ) -> Result<Arc<apache_avro::Schema>, SchemaError> {
        if let Some(s) = self.lock().get(definition) {
            return Ok(s.clone());
        }
        let parsed = Arc::new(parse_definition(kind, definition)?);
        let mut map = self.lock();
        if map.len() >= WRITER_CACHE {
            map.clear();
        }
        map.insert(definition.clone(), parsed.clone());
        Ok(parsed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Bytes, Arc<apache_avro::Schema>>> {
        // A panic elsewhere while holding the lock leaves a valid map.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Values of `T` as Avro binary datums (the Java client's `AvroSchema`, `Schema.AVRO(Pojo)`).
///
/// The declared schema is the Avro definition, named `""` with the properties
/// `__alwaysAllowNull` = `true` and `__jsr310ConversionEnabled` = `false`, as Java's
/// `SchemaUtil.parseSchemaInfo` declares it. A message is read with its writer's schema (the
/// registry's schema of its version, [`Decoding::writer`]) resolved against this one: fields
/// the writer did not know take their defaults, fields this schema does not know are skipped.
/// Without a writer's schema the payload is read with this one.
pub struct AvroSchema<T> {
    info: SchemaInfo,
    schema: apache_avro::Schema,
    writers: WriterCache,
    _value: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for AvroSchema<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AvroSchema")
            .field("info", &self.info)
            .finish()
    }
}

impl<T: Serialize + DeserializeOwned + Send + 'static> AvroSchema<T> {
    /// A schema of this Avro definition (JSON text), declared as given. A definition that does
    /// not parse is a [`SchemaError::Definition`].
    pub fn with_definition(definition: impl Into<String>) -> Result<Self, SchemaError> {
        let definition = definition.into();
        let schema = parse_definition(SchemaType::Avro, definition.as_bytes())?;
        Ok(Self::from_parts(Bytes::from(definition), schema))
    }

    /// The schema the Java client registers for the record `T` stands for (`T` with
    /// `#[derive(apache_avro::AvroSchema)]`, `#[avro(namespace = "the.java.package")]`):
    /// Java's `ReflectData.AllowNull` definition, to the byte — fields in name order, every
    /// field but those of Java's primitive types (a Rust `i32`, `i64`, `f32`, `f64`, `bool`)
    /// nullable with a null default. A Rust `Option<i32>` is Java's `Integer`.
    pub fn derived() -> Self
    where
        T: apache_avro::AvroSchema,
    {
        let definition = super::reflect::java_definition(&T::get_schema());
        match parse_definition(SchemaType::Avro, definition.as_bytes()) {
            Ok(schema) => Self::from_parts(Bytes::from(definition), schema),
            // The mapping keeps a valid schema valid; fall back to the derived one as it is.
            Err(_) => {
                let schema = T::get_schema();
                Self::from_parts(Bytes::from(schema_json(&schema)), schema)
            }
        }
    }

    fn from_parts(definition: Bytes, schema: apache_avro::Schema) -> Self {
        AvroSchema {
            info: SchemaInfo {
                kind: SchemaType::Avro,
                name: String::new(),
                definition,
                properties: struct_properties(),
            },
            schema,
            writers: WriterCache::default(),
            _value: PhantomData,
        }
    }

    /// Adds a property to the declared schema (Java's `SchemaDefinition.addProperty`).
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.info.properties.insert(key.into(), value.into());
        self
    }

    /// The parsed Avro schema.
    pub fn avro_schema(&self) -> &apache_avro::Schema {
        &self.schema
    }
}

fn decode_error(reason: impl std::fmt::Display) -> SchemaError {
    SchemaError::Decode {
        kind: SchemaType::Avro,
        reason: reason.to_string(),
    }
}

impl<T: Serialize + DeserializeOwned + Send + 'static> Schema for AvroSchema<T> {
    type Value = T;

    fn info(&self) -> SchemaInfo {
        self.info.clone()
    }

    fn encode(&self, value: &T) -> Result<Encoded, SchemaError> {
        let encode_error = |e: apache_avro::Error| SchemaError::Encode {
            kind: SchemaType::Avro,
            reason: e.to_string(),
        };
        let v = apache_avro::to_value(value).map_err(encode_error)?;
        let v = v.resolve(&self.schema).map_err(encode_error)?;
        let datum = apache_avro::to_avro_datum(&self.schema, v).map_err(encode_error)?;
        Ok(Encoded::payload(datum))
    }

    fn decode(&self, input: &Decoding<'_>) -> Result<T, SchemaError> {
        let writer = match input.writer {
            Some(w) if w.kind != SchemaType::Avro => {
                return Err(SchemaError::Mismatch {
                    reader: SchemaType::Avro,
                    writer: w.kind,
                })
            }
            Some(w) if w.definition != self.info.definition => {
                Some(self.writers.get(SchemaType::Avro, &w.definition)?)
            }
            _ => None,
        };
        let value = match &writer {
            Some(w) => decode_datum(w, input.payload)
                .map_err(decode_error)?
                .resolve(&self.schema)
                .map_err(decode_error)?,
            None => decode_datum(&self.schema, input.payload).map_err(decode_error)?,
        };
        apache_avro::from_value::<T>(&value).map_err(decode_error)
    }

    fn wants_writer_schema(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize, apache_avro::AvroSchema)]
    struct V1 {
        id: i64,
        name: String,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct V2 {
        id: i64,
        name: String,
        email: Option<String>,
    }

    const V1_DEF: &str = r#"{"type":"record","name":"User","fields":[{"name":"id","type":"long"},{"name":"name","type":"string"}]}"#;
    const V2_DEF: &str = r#"{"type":"record","name":"User","fields":[{"name":"id","type":"long"},{"name":"name","type":"string"},{"name":"email","type":["null","string"],"default":null}]}"#;

    fn writer(def: &str) -> SchemaInfo {
        SchemaInfo::avro(def)
    }

    #[test]
    fn payload_is_the_bare_datum_java_writes() {
        // Java `AvroSchema.of(User).encode(new User(1, "ab"))` (a BinaryEncoder on the datum,
        // no header): zigzag varint 1 = 0x02, then the string's length 2 = 0x04 and "ab".
        let s = AvroSchema::<V1>::with_definition(V1_DEF).unwrap();
        let e = s
            .encode(&V1 {
                id: 1,
                name: "ab".into(),
            })
            .unwrap();
        assert_eq!(&e.payload[..], &[0x02, 0x04, b'a', b'b']);
        assert_eq!(
            s.decode(&Decoding::payload(&e.payload)).unwrap(),
            V1 {
                id: 1,
                name: "ab".into()
            }
        );
        let info = s.info();
        assert_eq!((info.kind, info.name.as_str()), (SchemaType::Avro, ""));
        assert_eq!(info.definition_str(), Some(V1_DEF));
        assert_eq!(info.properties["__alwaysAllowNull"], "true");
        assert_eq!(info.properties["__jsr310ConversionEnabled"], "false");
        assert!(s.wants_writer_schema());
    }

    #[test]
    fn old_writer_new_reader_takes_the_default() {
        let old = AvroSchema::<V1>::with_definition(V1_DEF).unwrap();
        let new = AvroSchema::<V2>::with_definition(V2_DEF).unwrap();
        let payload = old
            .encode(&V1 {
                id: 7,
                name: "x".into(),
            })
            .unwrap()
            .payload;
        let w = writer(V1_DEF);
        let input = Decoding {
            payload: &payload,
            key: None,
            version: None,
            writer: Some(&w),
        };
        assert_eq!(
            new.decode(&input).unwrap(),
            V2 {
                id: 7,
                name: "x".into(),
                email: None
            }
        );
        // Again, from the cache: parsed once.
        assert!(new.decode(&input).is_ok());
        assert_eq!(new.writers.lock().len(), 1);
        // The reader's own definition is not parsed again.
        let own = writer(V2_DEF);
        let p2 = new
            .encode(&V2 {
                id: 1,
                name: String::new(),
                email: None,
            })
            .unwrap()
            .payload;
        let input = Decoding {
            payload: &p2,
            writer: Some(&own),
            ..input
        };
        assert!(new.decode(&input).is_ok());
        assert_eq!(new.writers.lock().len(), 1);
        // Without the writer's schema the old datum is too short for the new schema.
        assert!(new.decode(&Decoding::payload(&payload)).is_err());
    }

    #[test]
    fn new_writer_old_reader_skips_the_field() {
        let old = AvroSchema::<V1>::with_definition(V1_DEF).unwrap();
        let new = AvroSchema::<V2>::with_definition(V2_DEF).unwrap();
        let payload = new
            .encode(&V2 {
                id: 9,
                name: "y".into(),
                email: Some("e@x".into()),
            })
            .unwrap()
            .payload;
        let w = writer(V2_DEF);
        let input = Decoding {
            payload: &payload,
            key: None,
            version: None,
            writer: Some(&w),
        };
        assert_eq!(
            old.decode(&input).unwrap(),
            V1 {
                id: 9,
                name: "y".into()
            }
        );
        // With its own schema, the extra field is trailing bytes.
        assert!(matches!(
            old.decode(&Decoding::payload(&payload)),
            Err(SchemaError::Decode {
                kind: SchemaType::Avro,
                ..
            })
        ));
    }

    #[test]
    fn errors() {
        assert!(matches!(
            AvroSchema::<V1>::with_definition("{"),
            Err(SchemaError::Definition {
                kind: SchemaType::Avro,
                ..
            })
        ));
        let s = AvroSchema::<V1>::with_definition(V1_DEF).unwrap();
        for bad in [&[][..], &[0x02], &[0x02, 0x08, b'a'], &[0x02, 0x02, 0xff]] {
            assert!(s.decode(&Decoding::payload(bad)).is_err(), "{bad:?}");
        }
        let bad_writer = writer("not a schema");
        let input = Decoding {
            payload: &[0x02, 0x00],
            key: None,
            version: None,
            writer: Some(&bad_writer),
        };
        assert!(matches!(
            s.decode(&input),
            Err(SchemaError::Definition { .. })
        ));
        let json_writer = SchemaInfo::json(V1_DEF);
        let input = Decoding {
            writer: Some(&json_writer),
            ..input
        };
        assert!(matches!(
            s.decode(&input),
            Err(SchemaError::Mismatch { .. })
        ));
        // An incompatible writer (a field without default missing).
        let other =
            writer(r#"{"type":"record","name":"User","fields":[{"name":"id","type":"long"}]}"#);
        let input = Decoding {
            payload: &[0x02],
            writer: Some(&other),
            ..input
        };
        assert!(matches!(s.decode(&input), Err(SchemaError::Decode { .. })));
    }

    #[test]
    fn java_nested_class_namespaces_are_read() {
        // A definition as Java's ReflectData writes it for nested classes (Pulsar's
        // SchemaTestUtils.Foo and .Bar): a `$` in the namespace and in a reference.
        const JAVA: &str = r#"{"type":"record","name":"Foo","namespace":"org.example.SchemaTestUtils$","fields":[{"name":"field1","type":["null","string"],"default":null},{"name":"bar","type":["null",{"type":"record","name":"Bar","fields":[{"name":"x","type":"int"}]}],"default":null},{"name":"bar2","type":["null","org.example.SchemaTestUtils$.Bar"],"default":null}]}"#;
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Bar {
            x: i32,
        }
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Foo {
            field1: Option<String>,
            bar: Option<Bar>,
            bar2: Option<Bar>,
        }
        let s = AvroSchema::<Foo>::with_definition(JAVA).unwrap();
        assert_eq!(s.info().definition_str(), Some(JAVA));
        let v = Foo {
            field1: Some("a".into()),
            bar: None,
            bar2: Some(Bar { x: 3 }),
        };
        let e = s.encode(&v).unwrap();
        assert_eq!(&e.payload[..], &[0x02, 0x02, b'a', 0x00, 0x02, 0x06]);
        let w = writer(JAVA);
        let input = Decoding {
            payload: &e.payload,
            key: None,
            version: None,
            writer: Some(&w),
        };
        assert_eq!(s.decode(&input).unwrap(), v);
        // A `$` elsewhere (a doc, a default) is left alone.
        let doc = r#"{"type":"record","name":"R","doc":"costs $5","fields":[{"name":"s","type":"string","default":"$"}]}"#;
        assert!(AvroSchema::<serde_json::Value>::with_definition(doc).is_ok());
    }

    #[test]
    fn derived_schema_round_trips() {
        let s = AvroSchema::<V1>::derived();
        let v = V1 {
            id: -5,
            name: "z".into(),
        };
        let e = s.encode(&v).unwrap();
        assert_eq!(s.decode(&Decoding::payload(&e.payload)).unwrap(), v);
        let def: serde_json::Value = serde_json::from_slice(&s.info().definition).unwrap();
        assert_eq!(def["name"], "V1");
    }
}
