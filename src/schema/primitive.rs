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

#[cfg(test)]
mod tests {
    use super::*;

    fn enc<S: Schema>(s: &S, v: S::Value) -> Vec<u8> {
        let e = s.encode(&v).unwrap();
        assert_eq!(e.key, None);
        e.payload.to_vec()
    }

    fn dec<S: Schema>(s: &S, b: &[u8]) -> Result<S::Value, SchemaError> {
        s.decode(&Decoding::payload(b))
    }

    #[test]
    fn java_golden_vectors() {
        // ByteSchema.encode((byte) -1)
        assert_eq!(enc(&Int8Schema, -1), [0xff]);
        // ShortSchema.encode((short) 0x1234): (byte) (v >>> 8), v.byteValue()
        assert_eq!(enc(&Int16Schema, 0x1234), [0x12, 0x34]);
        // IntSchema.encode(-2)
        assert_eq!(enc(&Int32Schema, -2), [0xff, 0xff, 0xff, 0xfe]);
        // LongSchema.encode(0x0102030405060708L)
        assert_eq!(
            enc(&Int64Schema, 0x0102_0304_0506_0708),
            [1, 2, 3, 4, 5, 6, 7, 8]
        );
        // FloatSchema.encode(1.5f): floatToRawIntBits = 0x3fc00000
        assert_eq!(enc(&FloatSchema, 1.5), [0x3f, 0xc0, 0, 0]);
        // DoubleSchema.encode(1.5): doubleToRawLongBits = 0x3ff8000000000000
        assert_eq!(enc(&DoubleSchema, 1.5), [0x3f, 0xf8, 0, 0, 0, 0, 0, 0]);
        // BooleanSchema.encode(true / false); decode: bytes[0] != 0
        assert_eq!(enc(&BoolSchema, true), [1]);
        assert_eq!(enc(&BoolSchema, false), [0]);
        assert!(dec(&BoolSchema, &[2]).unwrap());
        // DateSchema.encode(new Date(1000)): LongSchema of getTime()
        assert_eq!(
            enc(&DateSchema, Date::from_millis(1000)),
            [0, 0, 0, 0, 0, 0, 0x03, 0xe8]
        );
        // TimeSchema.encode(new Time(-1)), TimestampSchema.encode(new Timestamp(256))
        assert_eq!(enc(&TimeSchema, Time::from_millis(-1)), [0xff; 8]);
        assert_eq!(
            enc(&TimestampSchema, Timestamp::from_millis(256)),
            [0, 0, 0, 0, 0, 0, 1, 0]
        );
        // InstantSchema.encode(Instant.ofEpochSecond(1, 2)): putLong(1) putInt(2)
        assert_eq!(
            enc(&InstantSchema, Instant::new(1, 2).unwrap()),
            [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2]
        );
        // LocalDateSchema.encode(LocalDate.of(2000, 3, 1)): toEpochDay() = 11017 = 0x2b09
        assert_eq!(
            enc(&LocalDateSchema, LocalDate::from_ymd(2000, 3, 1).unwrap()),
            [0, 0, 0, 0, 0, 0, 0x2b, 0x09]
        );
        // LocalTimeSchema.encode(LocalTime.of(1, 0)): toNanoOfDay() = 3600000000000
        assert_eq!(
            enc(
                &LocalTimeSchema,
                LocalTime::from_hms_nano(1, 0, 0, 0).unwrap()
            ),
            [0, 0, 0x03, 0x46, 0x30, 0xb8, 0xa0, 0]
        );
        // LocalDateTimeSchema.encode(LocalDateTime.of(1970, 1, 2, 0, 0, 0, 1)): putLong(1) putLong(1)
        let ldt = LocalDateTime::new(
            LocalDate::from_epoch_day(1).unwrap(),
            LocalTime::from_nano_of_day(1).unwrap(),
        );
        assert_eq!(
            enc(&LocalDateTimeSchema, ldt),
            [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]
        );
        assert_eq!(
            dec(&LocalDateTimeSchema, &enc(&LocalDateTimeSchema, ldt)).unwrap(),
            ldt
        );
        // InstantSchema.decode carries out-of-range nanos as Instant.ofEpochSecond does.
        let i = dec(
            &InstantSchema,
            &[0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff],
        )
        .unwrap();
        assert_eq!((i.epoch_second(), i.nano()), (0, 999_999_999));
    }

    #[test]
    fn java_schema_infos() {
        // The SCHEMA_INFO of each Java *Schema class: name, type, empty definition, no
        // properties.
        let cases: [(SchemaInfo, SchemaType, &str); 16] = [
            (BytesSchema.info(), SchemaType::Bytes, "Bytes"),
            (StringSchema.info(), SchemaType::String, "String"),
            (Int8Schema.info(), SchemaType::Int8, "INT8"),
            (Int16Schema.info(), SchemaType::Int16, "INT16"),
            (Int32Schema.info(), SchemaType::Int32, "INT32"),
            (Int64Schema.info(), SchemaType::Int64, "INT64"),
            (FloatSchema.info(), SchemaType::Float, "Float"),
            (DoubleSchema.info(), SchemaType::Double, "Double"),
            (BoolSchema.info(), SchemaType::Bool, "Boolean"),
            (DateSchema.info(), SchemaType::Date, "Date"),
            (TimeSchema.info(), SchemaType::Time, "Time"),
            (TimestampSchema.info(), SchemaType::Timestamp, "Timestamp"),
            (InstantSchema.info(), SchemaType::Instant, "Instant"),
            (LocalDateSchema.info(), SchemaType::LocalDate, "LocalDate"),
            (LocalTimeSchema.info(), SchemaType::LocalTime, "LocalTime"),
            (
                LocalDateTimeSchema.info(),
                SchemaType::LocalDateTime,
                "LocalDateTime",
            ),
        ];
        for (info, kind, name) in cases {
            assert_eq!((info.kind, info.name.as_str()), (kind, name));
            assert!(
                info.definition.is_empty() && info.properties.is_empty(),
                "{name}"
            );
        }
    }

    #[test]
    fn round_trips_and_wrong_lengths() {
        for v in [i64::MIN, -1, 0, 1, i64::MAX] {
            assert_eq!(dec(&Int64Schema, &enc(&Int64Schema, v)).unwrap(), v);
            assert_eq!(
                dec(&Int32Schema, &enc(&Int32Schema, v as i32)).unwrap(),
                v as i32
            );
            assert_eq!(
                dec(&Int16Schema, &enc(&Int16Schema, v as i16)).unwrap(),
                v as i16
            );
            assert_eq!(
                dec(&Int8Schema, &enc(&Int8Schema, v as i8)).unwrap(),
                v as i8
            );
            let d = Date::from_millis(v);
            assert_eq!(dec(&DateSchema, &enc(&DateSchema, d)).unwrap(), d);
        }
        let nan = dec(&DoubleSchema, &enc(&DoubleSchema, f64::NAN)).unwrap();
        assert!(nan.is_nan());
        assert_eq!(
            dec(&FloatSchema, &enc(&FloatSchema, -0.0))
                .unwrap()
                .to_bits(),
            (-0.0f32).to_bits()
        );
        let wrong = |r: Result<(), SchemaError>, kind: SchemaType| {
            assert!(
                matches!(r, Err(SchemaError::Decode { kind: k, ref reason }) if k == kind && reason.contains("expected")),
                "{kind:?}: {r:?}"
            );
        };
        for len in [0usize, 3, 7, 9, 11, 13, 17] {
            let b = vec![0u8; len];
            wrong(dec(&Int8Schema, &b).map(drop), SchemaType::Int8);
            wrong(dec(&Int16Schema, &b).map(drop), SchemaType::Int16);
            wrong(dec(&Int32Schema, &b).map(drop), SchemaType::Int32);
            wrong(dec(&Int64Schema, &b).map(drop), SchemaType::Int64);
            wrong(dec(&FloatSchema, &b).map(drop), SchemaType::Float);
            wrong(dec(&DoubleSchema, &b).map(drop), SchemaType::Double);
            wrong(dec(&DateSchema, &b).map(drop), SchemaType::Date);
            wrong(dec(&TimeSchema, &b).map(drop), SchemaType::Time);
            wrong(dec(&TimestampSchema, &b).map(drop), SchemaType::Timestamp);
            wrong(dec(&InstantSchema, &b).map(drop), SchemaType::Instant);
            wrong(dec(&LocalDateSchema, &b).map(drop), SchemaType::LocalDate);
            wrong(dec(&LocalTimeSchema, &b).map(drop), SchemaType::LocalTime);
            wrong(
                dec(&LocalDateTimeSchema, &b).map(drop),
                SchemaType::LocalDateTime,
            );
        }
        assert!(dec(&BoolSchema, &[]).is_err());
        assert!(dec(&BoolSchema, &[0, 0]).is_err());
        assert!(dec(&StringSchema, &[0xff]).is_err());
    }

    #[test]
    fn values_out_of_java_range_are_decode_errors() {
        let out = |r: Result<(), SchemaError>| {
            assert!(
                matches!(r, Err(SchemaError::Decode { ref reason, .. }) if reason.contains("range")),
                "{r:?}"
            );
        };
        out(dec(&LocalDateSchema, &i64::MAX.to_be_bytes()).map(drop));
        out(dec(&LocalTimeSchema, &(-1i64).to_be_bytes()).map(drop));
        out(dec(&LocalTimeSchema, &86_400_000_000_000i64.to_be_bytes()).map(drop));
        out(dec(
            &InstantSchema,
            &[0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0],
        )
        .map(drop));
        let mut ldt = [0u8; 16];
        ldt[8..].copy_from_slice(&(-5i64).to_be_bytes());
        out(dec(&LocalDateTimeSchema, &ldt).map(drop));
        ldt[..8].copy_from_slice(&i64::MIN.to_be_bytes());
        out(dec(&LocalDateTimeSchema, &ldt).map(drop));
    }
}
