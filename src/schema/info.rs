//! What a schema is ([`SchemaInfo`], [`SchemaType`]) and which version of it the registry
//! gave ([`SchemaVersion`]).

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::wire::proto;

/// The schema types of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum SchemaType {
    /// Raw bytes: nothing is declared (the Java client's `Schema.BYTES`).
    #[default]
    Bytes,
    /// UTF-8 text.
    String,
    /// JSON, described by an Avro record definition (as the Java client's `Schema.JSON`).
    Json,
    /// Protobuf, described by an Avro-style definition (the Java client's `Schema.PROTOBUF`).
    Protobuf,
    /// Avro binary, with its JSON schema definition.
    Avro,
    /// A boolean: one byte.
    Bool,
    /// An 8-bit integer.
    Int8,
    /// A 16-bit integer, big-endian.
    Int16,
    /// A 32-bit integer, big-endian.
    Int32,
    /// A 64-bit integer, big-endian.
    Int64,
    /// A 32-bit IEEE float, big-endian.
    Float,
    /// A 64-bit IEEE float, big-endian.
    Double,
    /// A date (`java.util.Date`): milliseconds since the epoch, 64-bit big-endian.
    Date,
    /// A time of day (`java.sql.Time`): milliseconds, 64-bit big-endian.
    Time,
    /// A timestamp (`java.sql.Timestamp`): milliseconds since the epoch, 64-bit big-endian.
    Timestamp,
    /// A key and a value, each with its own schema.
    KeyValue,
    /// An instant: seconds since the epoch (64-bit) and nanoseconds (32-bit), big-endian.
    Instant,
    /// A date: days since the epoch, 64-bit big-endian.
    LocalDate,
    /// A time of day: nanoseconds, 64-bit big-endian.
    LocalTime,
    /// A date and time: days since the epoch and nanoseconds of the day, 64-bit big-endian each.
    LocalDateTime,
    /// Native protobuf, described by a file descriptor set.
    ProtobufNative,
    /// Read with whatever schema the topic has (consumers).
    AutoConsume,
    /// A schema managed outside Pulsar.
    External,
}

impl SchemaType {
    /// The Java client's name of the type (`org.apache.pulsar.common.schema.SchemaType`), as
    /// the KeyValue schema writes its parts' types (`key.schema.type`). Raw bytes are `BYTES`
    /// (the Java `BytesSchema`'s type; its wire type is `NONE`).
    pub fn java_name(self) -> &'static str {
        match self {
            SchemaType::Bytes => "BYTES",
            SchemaType::String => "STRING",
            SchemaType::Json => "JSON",
            SchemaType::Protobuf => "PROTOBUF",
            SchemaType::Avro => "AVRO",
            SchemaType::Bool => "BOOLEAN",
            SchemaType::Int8 => "INT8",
            SchemaType::Int16 => "INT16",
            SchemaType::Int32 => "INT32",
            SchemaType::Int64 => "INT64",
            SchemaType::Float => "FLOAT",
            SchemaType::Double => "DOUBLE",
            SchemaType::Date => "DATE",
            SchemaType::Time => "TIME",
            SchemaType::Timestamp => "TIMESTAMP",
            SchemaType::KeyValue => "KEY_VALUE",
            SchemaType::Instant => "INSTANT",
            SchemaType::LocalDate => "LOCAL_DATE",
            SchemaType::LocalTime => "LOCAL_TIME",
            SchemaType::LocalDateTime => "LOCAL_DATE_TIME",
            SchemaType::ProtobufNative => "PROTOBUF_NATIVE",
            SchemaType::AutoConsume => "AUTO_CONSUME",
            SchemaType::External => "EXTERNAL",
        }
    }

    /// The type of a Java type name (`NONE` and `BYTES` are both raw bytes); `None` for a name
    /// this client does not know.
    pub fn from_java_name(name: &str) -> Option<Self> {
        if name == "NONE" {
            return Some(SchemaType::Bytes);
        }
        ALL_TYPES.iter().copied().find(|t| t.java_name() == name)
    }

    /// The type on the wire.
    pub(crate) fn wire(self) -> proto::schema::Type {
        match self {
            SchemaType::Bytes => proto::schema::Type::None,
            SchemaType::String => proto::schema::Type::String,
            SchemaType::Json => proto::schema::Type::Json,
            SchemaType::Protobuf => proto::schema::Type::Protobuf,
            SchemaType::Avro => proto::schema::Type::Avro,
            SchemaType::Bool => proto::schema::Type::Bool,
            SchemaType::Int8 => proto::schema::Type::Int8,
            SchemaType::Int16 => proto::schema::Type::Int16,
            SchemaType::Int32 => proto::schema::Type::Int32,
            SchemaType::Int64 => proto::schema::Type::Int64,
            SchemaType::Float => proto::schema::Type::Float,
            SchemaType::Double => proto::schema::Type::Double,
            SchemaType::Date => proto::schema::Type::Date,
            SchemaType::Time => proto::schema::Type::Time,
            SchemaType::Timestamp => proto::schema::Type::Timestamp,
            SchemaType::KeyValue => proto::schema::Type::KeyValue,
            SchemaType::Instant => proto::schema::Type::Instant,
            SchemaType::LocalDate => proto::schema::Type::LocalDate,
            SchemaType::LocalTime => proto::schema::Type::LocalTime,
            SchemaType::LocalDateTime => proto::schema::Type::LocalDateTime,
            SchemaType::ProtobufNative => proto::schema::Type::ProtobufNative,
            SchemaType::AutoConsume => proto::schema::Type::AutoConsume,
            SchemaType::External => proto::schema::Type::External,
        }
    }

    /// The type of a wire value (`None` for a number this client does not know).
    pub(crate) fn from_wire(value: i32) -> Option<Self> {
        let t = proto::schema::Type::try_from(value).ok()?;
        Some(match t {
            proto::schema::Type::None => SchemaType::Bytes,
            proto::schema::Type::String => SchemaType::String,
            proto::schema::Type::Json => SchemaType::Json,
            proto::schema::Type::Protobuf => SchemaType::Protobuf,
            proto::schema::Type::Avro => SchemaType::Avro,
            proto::schema::Type::Bool => SchemaType::Bool,
            proto::schema::Type::Int8 => SchemaType::Int8,
            proto::schema::Type::Int16 => SchemaType::Int16,
            proto::schema::Type::Int32 => SchemaType::Int32,
            proto::schema::Type::Int64 => SchemaType::Int64,
            proto::schema::Type::Float => SchemaType::Float,
            proto::schema::Type::Double => SchemaType::Double,
            proto::schema::Type::Date => SchemaType::Date,
            proto::schema::Type::Time => SchemaType::Time,
            proto::schema::Type::Timestamp => SchemaType::Timestamp,
            proto::schema::Type::KeyValue => SchemaType::KeyValue,
            proto::schema::Type::Instant => SchemaType::Instant,
            proto::schema::Type::LocalDate => SchemaType::LocalDate,
            proto::schema::Type::LocalTime => SchemaType::LocalTime,
            proto::schema::Type::LocalDateTime => SchemaType::LocalDateTime,
            proto::schema::Type::ProtobufNative => SchemaType::ProtobufNative,
            proto::schema::Type::AutoConsume => SchemaType::AutoConsume,
            proto::schema::Type::External => SchemaType::External,
        })
    }
}

const ALL_TYPES: [SchemaType; 23] = [
    SchemaType::Bytes,
    SchemaType::String,
    SchemaType::Json,
    SchemaType::Protobuf,
    SchemaType::Avro,
    SchemaType::Bool,
    SchemaType::Int8,
    SchemaType::Int16,
    SchemaType::Int32,
    SchemaType::Int64,
    SchemaType::Float,
    SchemaType::Double,
    SchemaType::Date,
    SchemaType::Time,
    SchemaType::Timestamp,
    SchemaType::KeyValue,
    SchemaType::Instant,
    SchemaType::LocalDate,
    SchemaType::LocalTime,
    SchemaType::LocalDateTime,
    SchemaType::ProtobufNative,
    SchemaType::AutoConsume,
    SchemaType::External,
];

/// A schema as the registry holds it, and as a producer or consumer declares it on PRODUCER
/// and SUBSCRIBE: type, name, definition and properties (the Java client's `SchemaInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SchemaInfo {
    /// The type.
    pub kind: SchemaType,
    /// The schema's name (often empty).
    pub name: String,
    /// The definition (for Avro and JSON, the Avro JSON schema text).
    pub definition: Bytes,
    /// Schema properties.
    pub properties: BTreeMap<String, String>,
}

impl SchemaInfo {
    /// A schema of this type with this definition.
    pub fn new(kind: SchemaType, definition: impl Into<Bytes>) -> Self {
        SchemaInfo {
            kind,
            definition: definition.into(),
            ..Default::default()
        }
    }

    /// Sets the name.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Raw bytes: nothing is declared.
    pub fn bytes() -> Self {
        SchemaInfo::default()
    }

    /// UTF-8 strings.
    pub fn string() -> Self {
        SchemaInfo {
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
        SchemaInfo {
            kind: SchemaType::AutoConsume,
            ..Default::default()
        }
    }

    fn with_definition(kind: SchemaType, definition: String) -> Self {
        SchemaInfo {
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

    /// The schema a registry answer or a broker command carries. The name is kept as sent;
    /// an unknown type is an error.
    pub fn from_proto(schema: &proto::Schema) -> Result<Self, super::SchemaError> {
        let kind =
            SchemaType::from_wire(schema.r#type).ok_or_else(|| super::SchemaError::Definition {
                kind: SchemaType::External,
                reason: format!("unknown schema type {}", schema.r#type),
            })?;
        Ok(SchemaInfo {
            kind,
            name: schema.name.clone(),
            definition: schema.schema_data.clone(),
            properties: schema
                .properties
                .iter()
                .map(|p| (p.key.clone(), p.value.clone()))
                .collect(),
        })
    }

    /// The definition as text (Avro, JSON and protobuf definitions are JSON), if it is UTF-8.
    pub fn definition_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.definition).ok()
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

/// A schema's version in the registry, as the broker gives it (PRODUCER_SUCCESS,
/// GET_SCHEMA_RESPONSE) and every message carries it. Apache Pulsar's versions are 8-byte
/// big-endian numbers, counting from 0.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SchemaVersion(Bytes);

impl SchemaVersion {
    /// A version from its bytes.
    pub fn new(bytes: impl Into<Bytes>) -> Self {
        SchemaVersion(bytes.into())
    }

    /// A version number in Apache Pulsar's form.
    pub fn from_u64(version: u64) -> Self {
        SchemaVersion(Bytes::copy_from_slice(&version.to_be_bytes()))
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// The version as a number, when it is in Apache Pulsar's 8-byte form.
    pub fn as_u64(&self) -> Option<u64> {
        <[u8; 8]>::try_from(&self.0[..])
            .ok()
            .map(u64::from_be_bytes)
    }
}

impl std::fmt::Display for SchemaVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.as_u64() {
            Some(n) => write!(f, "{n}"),
            None => {
                for b in self.0.iter() {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_wire_type_maps_back_and_versions_print_as_numbers() {
        for n in 0..=22 {
            let t = SchemaType::from_wire(n).expect("known");
            assert_eq!(t.wire() as i32, n);
        }
        assert_eq!(SchemaType::from_wire(99), None);
        for t in ALL_TYPES {
            assert_eq!(SchemaType::from_java_name(t.java_name()), Some(t));
        }
        assert_eq!(SchemaType::from_java_name("NONE"), Some(SchemaType::Bytes));
        assert_eq!(SchemaType::from_java_name("AUTO"), None);
        assert_eq!(SchemaVersion::from_u64(3).to_string(), "3");
        assert_eq!(SchemaVersion::from_u64(3).as_u64(), Some(3));
        assert_eq!(SchemaVersion::new(vec![1u8, 0xab]).to_string(), "01ab");
        let info = SchemaInfo::json("{}").property("a", "b");
        let back = SchemaInfo::from_proto(&info.to_proto().expect("declared")).expect("known");
        assert_eq!(back, info);
    }

    #[test]
    fn bytes_declare_nothing_and_others_their_type() {
        assert_eq!(SchemaInfo::bytes().to_proto(), None);
        let s = SchemaInfo::avro(r#"{"type":"record","name":"R","fields":[]}"#)
            .property("k", "v")
            .to_proto()
            .expect("declared");
        assert_eq!(s.r#type, proto::schema::Type::Avro as i32);
        assert_eq!(s.properties[0].key, "k");
        assert!(s.schema_data.starts_with(b"{\"type\""));
        assert_eq!(
            SchemaInfo::string().to_proto().map(|s| s.r#type),
            Some(proto::schema::Type::String as i32)
        );
    }
}
