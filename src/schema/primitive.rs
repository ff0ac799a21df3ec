//! The schemas of plain values: bytes, strings, numbers, times, each written exactly as the Java
//! client's schema of the same type writes it (`org.apache.pulsar.client.impl.schema.*Schema`),
//! and declared with the same SchemaInfo (its name, no definition, no properties).

use bytes::Bytes;

use super::time::{Date, Instant, LocalDate, LocalDateTime, LocalTime, Time, Timestamp};
use super::{Decoding, Encoded, Schema, SchemaError, SchemaInfo, SchemaType};

/// Raw bytes, as they are (the Java client's `Schema.BYTES`; nothing is declared).
#[derive(Debug, Clone, Copy, Default)]
pub struct BytesSchema;

impl Schema for BytesSchema {
    type Value = Bytes;

    fn info(&self) -> SchemaInfo {
        // `BytesSchema.java`: named `Bytes` (the type BYTES is not declared to the broker).
        SchemaInfo::bytes().named("Bytes")
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
        // `StringSchema.java`: named `String`, no properties (the charset is UTF-8).
        SchemaInfo::string().named("String")
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

/// The SchemaInfo the Java client declares for a primitive: a name, no definition, no
/// properties (`SchemaInfoImpl` of each `*Schema.java`).
fn primitive_info(kind: SchemaType, name: &str) -> SchemaInfo {
    SchemaInfo::new(kind, Bytes::new()).named(name)
}

/// The payload as exactly `N` bytes, or the error Java's `validate` raises ("Size of data
/// received by ... is not N").
fn exact<const N: usize>(kind: SchemaType, payload: &[u8]) -> Result<[u8; N], SchemaError> {
    <[u8; N]>::try_from(payload).map_err(|_| SchemaError::Decode {
        kind,
        reason: format!("expected {N} bytes, got {}", payload.len()),
    })
}

macro_rules! fixed_schema {
    (
        $(#[$doc:meta])* $name:ident, $value:ty, $kind:ident, $java_name:literal, $len:literal,
        |$v:ident| $enc:expr, |$b:ident| $dec:expr
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $name;

        impl Schema for $name {
            type Value = $value;

            fn info(&self) -> SchemaInfo {
                primitive_info(SchemaType::$kind, $java_name)
            }

            fn encode(&self, value: &$value) -> Result<Encoded, SchemaError> {
                let $v = *value;
                let bytes: [u8; $len] = $enc;
                Ok(Encoded::payload(Bytes::copy_from_slice(&bytes)))
            }

            fn decode(&self, input: &Decoding<'_>) -> Result<$value, SchemaError> {
                let $b: [u8; $len] = exact::<$len>(SchemaType::$kind, input.payload)?;
                $dec
            }
        }
    };
}

fixed_schema!(
    /// An 8-bit integer (INT8; the Java client's `ByteSchema`, named `INT8`): one byte.
    Int8Schema, i8, Int8, "INT8", 1, |v| v.to_be_bytes(), |b| Ok(i8::from_be_bytes(b))
);
fixed_schema!(
    /// A 16-bit integer (INT16; the Java client's `ShortSchema`, named `INT16`): big-endian.
    Int16Schema, i16, Int16, "INT16", 2, |v| v.to_be_bytes(), |b| Ok(i16::from_be_bytes(b))
);
fixed_schema!(
    /// A 32-bit integer (INT32; the Java client's `IntSchema`, named `INT32`): big-endian.
    Int32Schema, i32, Int32, "INT32", 4, |v| v.to_be_bytes(), |b| Ok(i32::from_be_bytes(b))
);
fixed_schema!(
    /// A 64-bit integer (INT64; the Java client's `LongSchema`, named `INT64`): big-endian.
    Int64Schema, i64, Int64, "INT64", 8, |v| v.to_be_bytes(), |b| Ok(i64::from_be_bytes(b))
);
fixed_schema!(
    /// A 32-bit float (FLOAT; the Java client's `FloatSchema`, named `Float`): the IEEE bits
    /// (`floatToRawIntBits`), big-endian.
    FloatSchema, f32, Float, "Float", 4, |v| v.to_bits().to_be_bytes(),
    |b| Ok(f32::from_bits(u32::from_be_bytes(b)))
);
fixed_schema!(
    /// A 64-bit float (DOUBLE; the Java client's `DoubleSchema`, named `Double`): the IEEE bits
    /// (`doubleToRawLongBits`), big-endian.
    DoubleSchema, f64, Double, "Double", 8, |v| v.to_bits().to_be_bytes(),
    |b| Ok(f64::from_bits(u64::from_be_bytes(b)))
);
fixed_schema!(
    /// A boolean (BOOLEAN; the Java client's `BooleanSchema`, named `Boolean`): one byte, 1 for
    /// true; any non-zero byte reads as true, as in Java.
    BoolSchema, bool, Bool, "Boolean", 1, |v| [u8::from(v)], |b| Ok(b[0] != 0)
);
fixed_schema!(
    /// A date (DATE; the Java client's `DateSchema`, named `Date`): `Date.getTime()` as an INT64.
    DateSchema, Date, Date, "Date", 8, |v| v.millis.to_be_bytes(),
    |b| Ok(Date::from_millis(i64::from_be_bytes(b)))
);
fixed_schema!(
    /// A time (TIME; the Java client's `TimeSchema`, named `Time`): `Time.getTime()` as an INT64.
    TimeSchema, Time, Time, "Time", 8, |v| v.millis.to_be_bytes(),
    |b| Ok(Time::from_millis(i64::from_be_bytes(b)))
);
fixed_schema!(
    /// A timestamp (TIMESTAMP; the Java client's `TimestampSchema`, named `Timestamp`):
    /// `Timestamp.getTime()` as an INT64.
    TimestampSchema, Timestamp, Timestamp, "Timestamp", 8, |v| v.millis.to_be_bytes(),
    |b| Ok(Timestamp::from_millis(i64::from_be_bytes(b)))
);
fixed_schema!(
    /// An instant (INSTANT; the Java client's `InstantSchema`, named `Instant`): the epoch
    /// second (8 bytes) then the nanosecond (4 bytes), big-endian. Nanoseconds out of 0-999999999
    /// are carried into the seconds, as `Instant.ofEpochSecond` does; an instant out of Java's
    /// range is a decode error.
    InstantSchema, Instant, Instant, "Instant", 12,
    |v| {
        let mut out = [0u8; 12];
        out[..8].copy_from_slice(&v.epoch_second().to_be_bytes());
        out[8..].copy_from_slice(&(v.nano() as i32).to_be_bytes());
        out
    },
    |b| {
        let (s, n) = split_8(&b);
        let nanos = i32::from_be_bytes([n[0], n[1], n[2], n[3]]);
        Instant::new(s, i64::from(nanos)).ok_or_else(|| out_of_range(SchemaType::Instant))
    }
);
fixed_schema!(
    /// A date (LOCAL_DATE; the Java client's `LocalDateSchema`, named `LocalDate`):
    /// `toEpochDay()` as an INT64. A day out of Java's range is a decode error.
    LocalDateSchema, LocalDate, LocalDate, "LocalDate", 8, |v| v.epoch_day().to_be_bytes(),
    |b| LocalDate::from_epoch_day(i64::from_be_bytes(b))
        .ok_or_else(|| out_of_range(SchemaType::LocalDate))
);
fixed_schema!(
    /// A time of day (LOCAL_TIME; the Java client's `LocalTimeSchema`, named `LocalTime`):
    /// `toNanoOfDay()` as an INT64. A value out of the day is a decode error.
    LocalTimeSchema, LocalTime, LocalTime, "LocalTime", 8,
    |v| (v.nano_of_day() as i64).to_be_bytes(),
    |b| local_time(i64::from_be_bytes(b))
);
fixed_schema!(
    /// A date and time (LOCAL_DATE_TIME; the Java client's `LocalDateTimeSchema`, named
    /// `LocalDateTime`): `toEpochDay()` then `toNanoOfDay()`, INT64 each.
    LocalDateTimeSchema, LocalDateTime, LocalDateTime, "LocalDateTime", 16,
    |v| {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&v.date.epoch_day().to_be_bytes());
        out[8..].copy_from_slice(&(v.time.nano_of_day() as i64).to_be_bytes());
        out
    },
    |b| {
        let (day, rest) = split_8(&b);
        let date = LocalDate::from_epoch_day(day)
            .ok_or_else(|| out_of_range(SchemaType::LocalDateTime))?;
        let nanos = i64::from_be_bytes([
            rest[0], rest[1], rest[2], rest[3], rest[4], rest[5], rest[6], rest[7],
        ]);
        let time = local_time(nanos).map_err(|_| out_of_range(SchemaType::LocalDateTime))?;
        Ok(LocalDateTime::new(date, time))
    }
);

/// The first 8 bytes as a big-endian `i64`, and the rest.
fn split_8(b: &[u8]) -> (i64, &[u8]) {
    let mut head = [0u8; 8];
    head.copy_from_slice(&b[..8]);
    (i64::from_be_bytes(head), &b[8..])
}

fn local_time(nanos: i64) -> Result<LocalTime, SchemaError> {
    u64::try_from(nanos)
        .ok()
        .and_then(LocalTime::from_nano_of_day)
        .ok_or_else(|| out_of_range(SchemaType::LocalTime))
}

fn out_of_range(kind: SchemaType) -> SchemaError {
    SchemaError::Decode {
        kind,
        reason: "the value is out of the type's range".into(),
    }
}
