//! JSON schemas (feature `serde`): values of serde types written as JSON, declared with an Avro
//! record definition as the Java client's `Schema.JSON(Pojo.class)` does; and JSON payloads
//! from and to Rust types without a schema ([`ProducerMessage::json`], [`Message::json`]).

use std::marker::PhantomData;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{struct_properties, Decoding, Encoded, Schema, SchemaError, SchemaInfo, SchemaType};
use crate::message::{Message, ProducerMessage};

/// Values of `T` as JSON documents (the Java client's `JSONSchema`): the payload is
/// `serde_json`'s bytes of the value; the declared schema is an Avro record definition of `T`,
/// named `""` with the properties `__alwaysAllowNull` = `true` and `__jsr310ConversionEnabled` =
/// `false`, as Java's `Schema.JSON(Pojo.class)` declares (`SchemaUtil.parseSchemaInfo`).
///
/// Decoding ignores the writer's schema: JSON carries its field names, and serde reads what it
/// knows.
pub struct JsonSchema<T> {
    info: SchemaInfo,
    _value: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for JsonSchema<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonSchema")
            .field("info", &self.info)
            .finish()
    }
}

impl<T> Clone for JsonSchema<T> {
    fn clone(&self) -> Self {
        JsonSchema {
            info: self.info.clone(),
            _value: PhantomData,
        }
    }
}

impl<T: Serialize + DeserializeOwned + Send + 'static> JsonSchema<T> {
    /// A schema declared with this Avro record definition (JSON text). The definition must be
    /// JSON, and (with feature `avro`) an Avro schema, as Java's `SchemaUtil.parseAvroSchema`
    /// requires of a `SchemaDefinition.withJsonDef`; it is declared as given.
    pub fn with_definition(definition: impl Into<String>) -> Result<Self, SchemaError> {
        let definition = definition.into();
        check_definition(SchemaType::Json, &definition)?;
        Ok(JsonSchema {
            info: SchemaInfo {
                kind: SchemaType::Json,
                name: String::new(),
                definition: Bytes::from(definition),
                properties: struct_properties(),
            },
            _value: PhantomData,
        })
    }

    /// The schema the Java client's `Schema.JSON(Pojo)` registers for the record `T` stands for
    /// (feature `avro`; `T` with `#[derive(apache_avro::AvroSchema)]` and
    /// `#[avro(namespace = "the.java.package")]`): see [`super::AvroSchema::derived`].
    #[cfg(feature = "avro")]
    pub fn derived() -> Self
    where
        T: apache_avro::AvroSchema,
    {
        let definition = super::reflect::java_definition(&T::get_schema());
        JsonSchema {
            info: SchemaInfo {
                kind: SchemaType::Json,
                name: String::new(),
                definition: Bytes::from(definition),
                properties: struct_properties(),
            },
            _value: PhantomData,
        }
    }

    /// Adds a property to the declared schema (Java's `SchemaDefinition.addProperty`).
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.info.properties.insert(key.into(), value.into());
        self
    }
}

/// Checks that a struct schema's definition is JSON and (feature `avro`) an Avro schema.
pub(crate) fn check_definition(kind: SchemaType, definition: &str) -> Result<(), SchemaError> {
    let bad = |reason: String| SchemaError::Definition { kind, reason };
    serde_json::from_str::<serde_json::Value>(definition).map_err(|e| bad(e.to_string()))?;
    #[cfg(feature = "avro")]
    super::avro::parse_definition(kind, definition.as_bytes())?;
    Ok(())
}

impl<T: Serialize + DeserializeOwned + Send + 'static> Schema for JsonSchema<T> {
    type Value = T;

    fn info(&self) -> SchemaInfo {
        self.info.clone()
    }

    fn encode(&self, value: &T) -> Result<Encoded, SchemaError> {
        serde_json::to_vec(value)
            .map(Encoded::payload)
            .map_err(|e| SchemaError::Encode {
                kind: SchemaType::Json,
                reason: e.to_string(),
            })
    }

    fn decode(&self, input: &Decoding<'_>) -> Result<T, SchemaError> {
        serde_json::from_slice(input.payload).map_err(|e| SchemaError::Decode {
            kind: SchemaType::Json,
            reason: e.to_string(),
        })
    }
}

impl ProducerMessage {
    /// A message whose payload is `value` as JSON (feature `serde`).
    pub fn json<T: serde::Serialize>(value: &T) -> Result<Self, serde_json::Error> {
        Ok(ProducerMessage::new(serde_json::to_vec(value)?))
    }
}

impl Message {
    /// The payload read as JSON into `T` (feature `serde`).
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(self.payload())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Point {
        x: i32,
        label: Option<String>,
    }

    const DEF: &str = r#"{"type":"record","name":"Point","fields":[{"name":"x","type":"int"},{"name":"label","type":["null","string"],"default":null}]}"#;

    #[test]
    fn json_payload_and_java_schema_info() {
        let s = JsonSchema::<Point>::with_definition(DEF).unwrap();
        let info = s.info();
        assert_eq!(info.kind, SchemaType::Json);
        assert_eq!(info.name, "");
        assert_eq!(info.definition_str(), Some(DEF));
        assert_eq!(
            info.properties,
            BTreeMap::from([
                ("__alwaysAllowNull".to_string(), "true".to_string()),
                ("__jsr310ConversionEnabled".to_string(), "false".to_string()),
            ])
        );
        let p = Point {
            x: 3,
            label: Some("a".into()),
        };
        let e = s.encode(&p).unwrap();
        // Jackson's bytes of the same POJO: fields in order, compact.
        assert_eq!(&e.payload[..], br#"{"x":3,"label":"a"}"#);
        assert_eq!(s.decode(&Decoding::payload(&e.payload)).unwrap(), p);
        // Unknown fields (a newer writer) are ignored; a missing optional one is None.
        let newer = br#"{"x":1,"extra":[1,2]}"#;
        assert_eq!(
            s.decode(&Decoding::payload(newer)).unwrap(),
            Point { x: 1, label: None }
        );
        assert!(matches!(
            s.decode(&Decoding::payload(b"{\"x\":")),
            Err(SchemaError::Decode {
                kind: SchemaType::Json,
                ..
            })
        ));
        assert!(s.decode(&Decoding::payload(br#"{"x":"no"}"#)).is_err());
        let s = s.property("k", "v");
        assert_eq!(s.info().properties["k"], "v");
    }

    #[test]
    fn bad_definitions_are_definition_errors() {
        for bad in ["", "{", "not json"] {
            assert!(matches!(
                JsonSchema::<Point>::with_definition(bad),
                Err(SchemaError::Definition {
                    kind: SchemaType::Json,
                    ..
                })
            ));
        }
        #[cfg(feature = "avro")]
        assert!(JsonSchema::<Point>::with_definition(r#"{"type":"nope"}"#).is_err());
    }

    #[cfg(feature = "avro")]
    #[test]
    fn derived_definition_is_the_avro_record() {
        #[derive(serde::Serialize, serde::Deserialize, apache_avro::AvroSchema)]
        struct Rec {
            a: i64,
            b: String,
        }
        let info = JsonSchema::<Rec>::derived().info();
        let v: serde_json::Value = serde_json::from_slice(&info.definition).unwrap();
        assert_eq!(v["type"], "record");
        assert_eq!(v["name"], "Rec");
        assert_eq!(v["fields"][0]["name"], "a");
        assert_eq!(v["fields"][0]["type"], "long", "a Java long");
        // A Java String field is nullable (ReflectData.AllowNull).
        assert_eq!(
            v["fields"][1]["type"],
            serde_json::json!(["null", "string"])
        );
        assert_eq!(v["fields"][1]["default"], serde_json::Value::Null);
    }
}
