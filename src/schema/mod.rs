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
