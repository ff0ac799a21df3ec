//! Schemas: the schema information a producer or consumer declares to the broker (the `schema`
//! field of PRODUCER and SUBSCRIBE), so that a broker with a schema registry checks
//! compatibility, and (with the `serde` feature) JSON payloads from and to Rust types.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::wire::proto;

/// The schema types of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SchemaType {
    /// Raw bytes (no schema is sent, as the Java client does).
    #[default]
    Bytes,
    /// UTF-8 text.
    String,
    /// JSON, described by an Avro-style JSON schema definition.
    Json,
    /// Protobuf, described by an Avro-style definition.
    Protobuf,
    /// Avro, with its JSON schema definition.
    Avro,
    /// Native protobuf (a file descriptor set).
    ProtobufNative,
    /// Key/value of two schemas.
    KeyValue,
    /// Read with whatever schema the topic has (consumers).
    AutoConsume,
}

impl SchemaType {
    fn wire(self) -> proto::schema::Type {
        match self {
            SchemaType::Bytes => proto::schema::Type::None,
            SchemaType::String => proto::schema::Type::String,
            SchemaType::Json => proto::schema::Type::Json,
            SchemaType::Protobuf => proto::schema::Type::Protobuf,
            SchemaType::Avro => proto::schema::Type::Avro,
            SchemaType::ProtobufNative => proto::schema::Type::ProtobufNative,
            SchemaType::KeyValue => proto::schema::Type::KeyValue,
            SchemaType::AutoConsume => proto::schema::Type::AutoConsume,
        }
    }
}

/// A schema declared on PRODUCER or SUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Schema {
    /// The type.
    pub kind: SchemaType,
    /// The schema's name (often empty).
    pub name: String,
    /// The definition (for Avro and JSON, the Avro JSON schema text).
    pub definition: Bytes,
    /// Schema properties.
    pub properties: BTreeMap<String, String>,
}

impl Schema {
    /// Raw bytes: nothing is declared.
    pub fn bytes() -> Self {
        Schema::default()
    }

    /// UTF-8 strings.
    pub fn string() -> Self {
        Schema {
            kind: SchemaType::String,
            ..Default::default()
        }
    }

    /// JSON documents described by this Avro-style JSON schema definition.
    pub fn json(definition: impl Into<String>) -> Self {
        Self::with_definition(SchemaType::Json, definition.into())
    }

    /// Avro records described by this JSON schema definition.
    pub fn avro(definition: impl Into<String>) -> Self {
        Self::with_definition(SchemaType::Avro, definition.into())
    }

    /// Protobuf messages described by this Avro-style definition.
    pub fn protobuf(definition: impl Into<String>) -> Self {
        Self::with_definition(SchemaType::Protobuf, definition.into())
    }

    /// Whatever the topic has (for consumers).
    pub fn auto_consume() -> Self {
        Schema {
            kind: SchemaType::AutoConsume,
            ..Default::default()
        }
    }

    fn with_definition(kind: SchemaType, definition: String) -> Self {
        Schema {
            kind,
            definition: Bytes::from(definition),
            ..Default::default()
        }
    }

    /// Adds a property.
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.insert(key.into(), value.into());
        self
    }

    /// The protobuf form, or `None` for raw bytes (which the Java client does not declare).
    pub fn to_proto(&self) -> Option<proto::Schema> {
        if self.kind == SchemaType::Bytes {
            return None;
        }
        Some(proto::Schema {
            name: self.name.clone(),
            schema_data: self.definition.clone(),
            r#type: self.kind.wire() as i32,
            properties: self
                .properties
                .iter()
                .map(|(k, v)| proto::KeyValue {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect(),
        })
    }
}

#[cfg(feature = "serde")]
mod json {
    use crate::message::{Message, ProducerMessage};

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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_declare_nothing_and_others_their_type() {
        assert_eq!(Schema::bytes().to_proto(), None);
        let s = Schema::avro(r#"{"type":"record","name":"R","fields":[]}"#)
            .property("k", "v")
            .to_proto()
            .expect("declared");
        assert_eq!(s.r#type, proto::schema::Type::Avro as i32);
        assert_eq!(s.properties[0].key, "k");
        assert!(s.schema_data.starts_with(b"{\"type\""));
        assert_eq!(
            Schema::string().to_proto().map(|s| s.r#type),
            Some(proto::schema::Type::String as i32)
        );
    }
}
