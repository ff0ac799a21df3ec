//! The schemas of plain values: bytes, strings, numbers, times.

use bytes::Bytes;

use super::{Decoding, Encoded, Schema, SchemaError, SchemaInfo, SchemaType};

/// Raw bytes, as they are (the Java client's `Schema.BYTES`; nothing is declared).
#[derive(Debug, Clone, Copy, Default)]
pub struct BytesSchema;

impl Schema for BytesSchema {
    type Value = Bytes;

    fn info(&self) -> SchemaInfo {
        SchemaInfo::bytes()
    }

    fn encode(&self, value: &Bytes) -> Result<Encoded, SchemaError> {
        Ok(Encoded::payload(value.clone()))
    }

    fn decode(&self, input: &Decoding<'_>) -> Result<Bytes, SchemaError> {
        Ok(Bytes::copy_from_slice(input.payload))
    }
}

/// UTF-8 text (the Java client's `Schema.STRING`).
#[derive(Debug, Clone, Copy, Default)]
pub struct StringSchema;

impl Schema for StringSchema {
    type Value = String;

    fn info(&self) -> SchemaInfo {
        SchemaInfo::string()
    }

    fn encode(&self, value: &String) -> Result<Encoded, SchemaError> {
        Ok(Encoded::payload(Bytes::copy_from_slice(value.as_bytes())))
    }

    fn decode(&self, input: &Decoding<'_>) -> Result<String, SchemaError> {
        String::from_utf8(input.payload.to_vec()).map_err(|e| SchemaError::Decode {
            kind: SchemaType::String,
            reason: e.to_string(),
        })
    }
}
