//! Generic values: what a message holds when the reader has no type for it (AUTO_CONSUME), a
//! JSON-like tree; and the conversions from each format's own generic values.

use bytes::Bytes;

/// A value read without an application type (the Java client's `GenericRecord`/`GenericObject`
/// as a tree): what [`AutoConsumeSchema`](super::AutoConsumeSchema) decodes.
///
/// How each schema's values map here:
/// - BYTES (and a topic without schema): [`GenericValue::Bytes`]; STRING: a string (invalid
///   UTF-8 replaced, as Java's `new String(bytes, UTF_8)` does).
/// - INT8 to INT64: [`GenericValue::Int`]; FLOAT, DOUBLE: [`GenericValue::Float`]; BOOLEAN.
/// - DATE, TIME, TIMESTAMP: milliseconds since the epoch; LOCAL_DATE: days since the epoch;
///   LOCAL_TIME: nanoseconds since midnight (all [`GenericValue::Int`]); INSTANT: a record
///   `{epochSecond, nano}`; LOCAL_DATE_TIME: a record `{epochDay, nanoOfDay}`.
/// - JSON: the document (objects as records, keys in document order).
/// - AVRO: records as records; maps as records with sorted keys; unions as the chosen branch;
///   enums as their symbol; fixed and decimal as bytes (a decimal's unscaled two's-complement
///   value); uuid as a string; dates, times and timestamps as their numbers; durations as a
///   record `{months, days, millis}`.
/// - PROTOBUF_NATIVE: every field of the message (unset fields with their defaults, unset
///   message fields null); enums as their value's name (the number if unknown); maps as
///   records with their keys as text, sorted.
/// - PROTOBUF: see [`AutoConsumeSchema`](super::AutoConsumeSchema).
/// - KEY_VALUE: [`GenericValue::KeyValue`].
#[derive(Debug, Clone, PartialEq, Default)]
pub enum GenericValue {
    /// No value.
    #[default]
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    Int(i64),
    /// An unsigned integer that may not fit an `i64` (protobuf's `uint64`, `fixed64`).
    UInt(u64),
    /// A floating-point number.
    Float(f64),
    /// Text.
    String(String),
    /// Bytes.
    Bytes(Bytes),
    /// A list.
    Array(Vec<GenericValue>),
    /// Named fields in order: a record, a JSON object, a map.
    Record(Vec<(String, GenericValue)>),
    /// The key and value of a KeyValue schema.
    KeyValue(Box<GenericValue>, Box<GenericValue>),
}

impl GenericValue {
    /// A record's (or object's) field of this name, the first if several.
    pub fn field(&self, name: &str) -> Option<&GenericValue> {
        match self {
            GenericValue::Record(fields) => fields.iter().find(|(n, _)| n == name).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The text, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            GenericValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The number, if this is an integer that fits an `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            GenericValue::Int(i) => Some(i),
            GenericValue::UInt(u) => i64::try_from(u).ok(),
            _ => None,
        }
    }

    /// The value as JSON (feature `serde`). Bytes are written as standard base64 text with
    /// padding (as Jackson writes a Java `byte[]`); floats that JSON cannot hold (NaN,
    /// infinities) as null; a key-value as `{"key": ..., "value": ...}`; a record whose names
    /// repeat keeps the last.
    #[cfg(feature = "serde")]
    pub fn to_json(&self) -> serde_json::Value {
        use base64::Engine as _;
        use serde_json::Value as J;
        match self {
            GenericValue::Null => J::Null,
            GenericValue::Bool(b) => J::Bool(*b),
            GenericValue::Int(i) => J::from(*i),
            GenericValue::UInt(u) => J::from(*u),
            GenericValue::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            GenericValue::String(s) => J::String(s.clone()),
            GenericValue::Bytes(b) => {
                J::String(base64::engine::general_purpose::STANDARD.encode(b))
            }
            GenericValue::Array(items) => J::Array(items.iter().map(Self::to_json).collect()),
            GenericValue::Record(fields) => J::Object(
                fields
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
            GenericValue::KeyValue(k, v) => {
                let mut m = serde_json::Map::new();
                m.insert("key".into(), k.to_json());
                m.insert("value".into(), v.to_json());
                J::Object(m)
            }
        }
    }

    /// A JSON document as a generic value (feature `serde`): integers that fit an `i64` as
    /// [`GenericValue::Int`], larger ones as [`GenericValue::UInt`], others as floats.
    #[cfg(feature = "serde")]
    pub fn from_json(value: serde_json::Value) -> Self {
        use serde_json::Value as J;
        match value {
            J::Null => GenericValue::Null,
            J::Bool(b) => GenericValue::Bool(b),
            J::Number(n) => {
                if let Some(i) = n.as_i64() {
                    GenericValue::Int(i)
                } else if let Some(u) = n.as_u64() {
                    GenericValue::UInt(u)
                } else {
                    GenericValue::Float(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            J::String(s) => GenericValue::String(s),
            J::Array(a) => GenericValue::Array(a.into_iter().map(Self::from_json).collect()),
            J::Object(o) => GenericValue::Record(
                o.into_iter()
                    .map(|(k, v)| (k, Self::from_json(v)))
                    .collect(),
            ),
        }
    }
}

/// An Avro value as a generic value (feature `avro`).
#[cfg(feature = "avro")]
pub(crate) fn from_avro(value: apache_avro::types::Value) -> GenericValue {
    use apache_avro::types::Value as A;
    match value {
        A::Null => GenericValue::Null,
        A::Boolean(b) => GenericValue::Bool(b),
        A::Int(i) | A::Date(i) | A::TimeMillis(i) => GenericValue::Int(i64::from(i)),
        A::Long(i)
        | A::TimeMicros(i)
        | A::TimestampMillis(i)
        | A::TimestampMicros(i)
        | A::TimestampNanos(i)
        | A::LocalTimestampMillis(i)
        | A::LocalTimestampMicros(i)
        | A::LocalTimestampNanos(i) => GenericValue::Int(i),
        A::Float(f) => GenericValue::Float(f64::from(f)),
        A::Double(f) => GenericValue::Float(f),
        A::Bytes(b) | A::Fixed(_, b) => GenericValue::Bytes(Bytes::from(b)),
        A::String(s) | A::Enum(_, s) => GenericValue::String(s),
        A::Union(_, v) => from_avro(*v),
        A::Array(items) => GenericValue::Array(items.into_iter().map(from_avro).collect()),
        A::Map(m) => {
            let mut fields: Vec<(String, GenericValue)> =
                m.into_iter().map(|(k, v)| (k, from_avro(v))).collect();
            fields.sort_by(|a, b| a.0.cmp(&b.0));
            GenericValue::Record(fields)
        }
        A::Record(fields) => {
            GenericValue::Record(fields.into_iter().map(|(k, v)| (k, from_avro(v))).collect())
        }
        A::Decimal(d) => {
            GenericValue::Bytes(Bytes::from(<Vec<u8>>::try_from(d).unwrap_or_default()))
        }
        A::BigDecimal(d) => GenericValue::String(d.to_string()),
        A::Uuid(u) => GenericValue::String(u.to_string()),
        A::Duration(d) => GenericValue::Record(vec![
            (
                "months".into(),
                GenericValue::Int(i64::from(u32::from(d.months()))),
            ),
            (
                "days".into(),
                GenericValue::Int(i64::from(u32::from(d.days()))),
            ),
            (
                "millis".into(),
                GenericValue::Int(i64::from(u32::from(d.millis()))),
            ),
        ]),
    }
}

/// A protobuf message as a generic value (feature `protobuf`): every field of its descriptor.
#[cfg(feature = "protobuf")]
pub(crate) fn from_dynamic_message(msg: &prost_reflect::DynamicMessage) -> GenericValue {
    use prost_reflect::ReflectMessage as _;
    let desc = msg.descriptor();
    GenericValue::Record(
        desc.fields()
            .map(|f| {
                let is_message = matches!(f.kind(), prost_reflect::Kind::Message(_));
                let v = if is_message && !f.is_list() && !f.is_map() && !msg.has_field(&f) {
                    GenericValue::Null
                } else {
                    from_reflect_value(&msg.get_field(&f), &f.kind())
                };
                (f.name().to_string(), v)
            })
            .collect(),
    )
}

#[cfg(feature = "protobuf")]
fn from_reflect_value(v: &prost_reflect::Value, kind: &prost_reflect::Kind) -> GenericValue {
    use prost_reflect::{Kind, MapKey, Value as P};
    match v {
        P::Bool(b) => GenericValue::Bool(*b),
        P::I32(i) => GenericValue::Int(i64::from(*i)),
        P::I64(i) => GenericValue::Int(*i),
        P::U32(u) => GenericValue::Int(i64::from(*u)),
        P::U64(u) => GenericValue::UInt(*u),
        P::F32(f) => GenericValue::Float(f64::from(*f)),
        P::F64(f) => GenericValue::Float(*f),
        P::String(s) => GenericValue::String(s.clone()),
        P::Bytes(b) => GenericValue::Bytes(b.clone()),
        P::EnumNumber(n) => match kind {
            Kind::Enum(e) => e
                .get_value(*n)
                .map(|v| GenericValue::String(v.name().to_string()))
                .unwrap_or(GenericValue::Int(i64::from(*n))),
            _ => GenericValue::Int(i64::from(*n)),
        },
        P::Message(m) => from_dynamic_message(m),
        P::List(items) => {
            GenericValue::Array(items.iter().map(|i| from_reflect_value(i, kind)).collect())
        }
        P::Map(m) => {
            let value_kind = match kind {
                Kind::Message(entry) => entry.map_entry_value_field().kind(),
                other => other.clone(),
            };
            let mut fields: Vec<(String, GenericValue)> = m
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        MapKey::Bool(b) => b.to_string(),
                        MapKey::I32(i) => i.to_string(),
                        MapKey::I64(i) => i.to_string(),
                        MapKey::U32(u) => u.to_string(),
                        MapKey::U64(u) => u.to_string(),
                        MapKey::String(s) => s.clone(),
                    };
                    (key, from_reflect_value(v, &value_kind))
                })
                .collect();
            fields.sort_by(|a, b| a.0.cmp(&b.0));
            GenericValue::Record(fields)
        }
    }
}

/// A field of a PROTOBUF schema's `__PARSING_INFO__` (Java's `ProtoBufParsingInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParsingInfo {
    pub(crate) number: u32,
    pub(crate) name: String,
    /// The protobuf type's Java name (`INT32`, `STRING`, `MESSAGE`, ...).
    pub(crate) kind: String,
    pub(crate) repeated: bool,
}

/// The fields of a `__PARSING_INFO__` property (feature `serde`; without it, none are known).
pub(crate) fn parse_parsing_info(text: &str) -> Result<Vec<ParsingInfo>, String> {
    #[cfg(feature = "serde")]
    {
        let items: Vec<serde_json::Value> =
            serde_json::from_str(text).map_err(|e| e.to_string())?;
        items
            .iter()
            .map(|item| {
                let text = |k: &str| item.get(k).and_then(serde_json::Value::as_str);
                let number = item
                    .get("number")
                    .and_then(serde_json::Value::as_u64)
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or("a field without number")?;
                Ok(ParsingInfo {
                    number,
                    name: text("name").ok_or("a field without name")?.to_string(),
                    kind: text("type").ok_or("a field without type")?.to_string(),
                    repeated: text("label") == Some("LABEL_REPEATED"),
                })
            })
            .collect()
    }
    #[cfg(not(feature = "serde"))]
    {
        let _ = text;
        Ok(Vec::new())
    }
}

/// How deep protobuf groups may nest in a payload read without descriptor.
const MAX_GROUP_DEPTH: usize = 64;

/// A protobuf payload read without its descriptor (PROTOBUF): the wire format, with the names
/// and types of the top-level fields `fields` lists. Known fields come first, in their order
/// (absent ones with their default: zero, empty, false, an empty list, null for a message);
/// unknown fields follow, named by their number. Nested messages stay bytes: the wire format
/// does not say what they hold.
pub(crate) fn decode_protobuf_wire(
    payload: &[u8],
    fields: &[ParsingInfo],
) -> Result<GenericValue, String> {
    let mut known: Vec<Option<GenericValue>> = vec![None; fields.len()];
    let mut unknown: Vec<(String, GenericValue)> = Vec::new();
    let mut r = Wire {
        data: payload,
        pos: 0,
    };
    while !r.done() {
        let (number, wire_type) = r.tag()?;
        let info = fields.iter().position(|f| f.number == number);
        let kind = info.map_or("", |i| fields[i].kind.as_str());
        let repeated = info.is_some_and(|i| fields[i].repeated);
        let values: Vec<GenericValue> = match wire_type {
            0 => vec![varint_value(r.varint()?, kind)],
            1 => vec![fixed64_value(r.fixed::<8>()?, kind)],
            5 => vec![fixed32_value(r.fixed::<4>()?, kind)],
            2 => {
                let bytes = r.length_delimited()?;
                match kind {
                    "STRING" => vec![GenericValue::String(
                        String::from_utf8_lossy(bytes).into_owned(),
                    )],
                    "BYTES" | "MESSAGE" | "" => {
                        vec![GenericValue::Bytes(Bytes::copy_from_slice(bytes))]
                    }
                    // A packed repeated scalar.
                    _ => unpack(bytes, kind)?,
                }
            }
            3 => {
                r.skip_group(number, 0)?;
                vec![GenericValue::Null]
            }
            t => return Err(format!("wire type {t} of field {number}")),
        };
        match info {
            Some(i) if repeated => {
                let slot = known[i].get_or_insert_with(|| GenericValue::Array(Vec::new()));
                if let GenericValue::Array(items) = slot {
                    items.extend(values);
                }
            }
            Some(i) => known[i] = values.into_iter().last(),
            None => {
                for v in values {
                    unknown.push((number.to_string(), v));
                }
            }
        }
    }
    let mut out: Vec<(String, GenericValue)> = fields
        .iter()
        .zip(known)
        .map(|(f, v)| (f.name.clone(), v.unwrap_or_else(|| default_of(f))))
        .collect();
    out.extend(unknown);
    Ok(GenericValue::Record(out))
}

fn default_of(f: &ParsingInfo) -> GenericValue {
    if f.repeated {
        return GenericValue::Array(Vec::new());
    }
    match f.kind.as_str() {
        "BOOL" => GenericValue::Bool(false),
        "FLOAT" | "DOUBLE" => GenericValue::Float(0.0),
        "STRING" => GenericValue::String(String::new()),
        "BYTES" => GenericValue::Bytes(Bytes::new()),
        "MESSAGE" | "GROUP" => GenericValue::Null,
        "UINT64" | "FIXED64" => GenericValue::UInt(0),
        _ => GenericValue::Int(0),
    }
}

fn varint_value(v: u64, kind: &str) -> GenericValue {
    match kind {
        "INT32" | "ENUM" => GenericValue::Int(i64::from(v as i32)),
        "INT64" => GenericValue::Int(v as i64),
        "UINT32" => GenericValue::Int(i64::from(v as u32)),
        "SINT32" => GenericValue::Int(i64::from(((v as u32) >> 1) as i32 ^ -((v & 1) as i32))),
        "SINT64" => GenericValue::Int((v >> 1) as i64 ^ -((v & 1) as i64)),
        "BOOL" => GenericValue::Bool(v != 0),
        _ => GenericValue::UInt(v),
    }
}

fn fixed64_value(b: [u8; 8], kind: &str) -> GenericValue {
    match kind {
        "DOUBLE" => GenericValue::Float(f64::from_le_bytes(b)),
        "SFIXED64" => GenericValue::Int(i64::from_le_bytes(b)),
        _ => GenericValue::UInt(u64::from_le_bytes(b)),
    }
}

fn fixed32_value(b: [u8; 4], kind: &str) -> GenericValue {
    match kind {
        "FLOAT" => GenericValue::Float(f64::from(f32::from_le_bytes(b))),
        "SFIXED32" => GenericValue::Int(i64::from(i32::from_le_bytes(b))),
        _ => GenericValue::Int(i64::from(u32::from_le_bytes(b))),
    }
}

fn unpack(bytes: &[u8], kind: &str) -> Result<Vec<GenericValue>, String> {
    let mut r = Wire {
        data: bytes,
        pos: 0,
    };
    let mut out = Vec::new();
    while !r.done() {
        out.push(match kind {
            "DOUBLE" | "FIXED64" | "SFIXED64" => fixed64_value(r.fixed::<8>()?, kind),
            "FLOAT" | "FIXED32" | "SFIXED32" => fixed32_value(r.fixed::<4>()?, kind),
            _ => varint_value(r.varint()?, kind),
        });
    }
    Ok(out)
}

/// A reader of the protobuf wire format; every length is checked against the input.
pub(crate) struct Wire<'a> {
    pub(crate) data: &'a [u8],
    pub(crate) pos: usize,
}

impl<'a> Wire<'a> {
    pub(crate) fn done(&self) -> bool {
        self.pos >= self.data.len()
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = *self
                .data
                .get(self.pos)
                .ok_or("the payload ends inside a varint")?;
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err("a varint longer than 64 bits".into());
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("a varint longer than 64 bits".into())
    }

    pub(crate) fn tag(&mut self) -> Result<(u32, u8), String> {
        let t = self.varint()?;
        let number = u32::try_from(t >> 3).map_err(|_| format!("field number {}", t >> 3))?;
        if number == 0 || number > (1 << 29) - 1 {
            return Err(format!("field number {number}"));
        }
        Ok((number, (t & 7) as u8))
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let b = self
            .data
            .get(self.pos..self.pos + N)
            .ok_or("the payload ends inside a fixed-width value")?;
        self.pos += N;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    fn length_delimited(&mut self) -> Result<&'a [u8], String> {
        let len = self.varint()?;
        let remaining = self.data.len() - self.pos;
        let len = usize::try_from(len)
            .ok()
            .filter(|l| *l <= remaining)
            .ok_or_else(|| format!("length {len} past the {remaining} remaining bytes"))?;
        let out = &self.data[self.pos..self.pos + len];
        self.pos += len;
        Ok(out)
    }

    fn skip_group(&mut self, number: u32, depth: usize) -> Result<(), String> {
        if depth > MAX_GROUP_DEPTH {
            return Err("groups nested too deep".into());
        }
        loop {
            if self.done() {
                return Err(format!("group {number} does not end"));
            }
            let (n, t) = self.tag()?;
            match t {
                0 => {
                    self.varint()?;
                }
                1 => {
                    self.fixed::<8>()?;
                }
                5 => {
                    self.fixed::<4>()?;
                }
                2 => {
                    self.length_delimited()?;
                }
                3 => self.skip_group(n, depth + 1)?,
                4 if n == number => return Ok(()),
                t => return Err(format!("wire type {t} of field {n}")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(number: u32, name: &str, kind: &str, repeated: bool) -> ParsingInfo {
        ParsingInfo {
            number,
            name: name.into(),
            kind: kind.into(),
            repeated,
        }
    }

    #[test]
    fn protobuf_wire_with_parsing_info() {
        let fields = [
            info(1, "x", "INT32", false),
            info(2, "label", "STRING", false),
            info(3, "ns", "SINT64", true),
            info(4, "f", "DOUBLE", false),
            info(5, "missing", "BOOL", false),
            info(6, "sub", "MESSAGE", false),
        ];
        // x = -1 (10-byte varint), label = "hi", ns packed [-1, 2], f = 0.5, field 9 = 7.
        let mut p = vec![0x08];
        p.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        p.extend_from_slice(&[0x12, 0x02, b'h', b'i', 0x1a, 0x02, 0x01, 0x04, 0x21]);
        p.extend_from_slice(&0.5f64.to_le_bytes());
        p.extend_from_slice(&[0x48, 0x07]);
        let v = decode_protobuf_wire(&p, &fields).unwrap();
        assert_eq!(v.field("x"), Some(&GenericValue::Int(-1)));
        assert_eq!(v.field("label").and_then(GenericValue::as_str), Some("hi"));
        assert_eq!(
            v.field("ns"),
            Some(&GenericValue::Array(vec![
                GenericValue::Int(-1),
                GenericValue::Int(2)
            ]))
        );
        assert_eq!(v.field("f"), Some(&GenericValue::Float(0.5)));
        assert_eq!(v.field("missing"), Some(&GenericValue::Bool(false)));
        assert_eq!(v.field("sub"), Some(&GenericValue::Null));
        assert_eq!(v.field("9"), Some(&GenericValue::UInt(7)));
        for bad in [
            &[0x08][..],
            &[0x12, 0x05, 0],
            &[0x00],
            &[0x0f],
            &[0x0b, 0x08, 0x01],
            &[0x0c],
        ] {
            assert!(decode_protobuf_wire(bad, &fields).is_err(), "{bad:?}");
        }
        // A group is skipped whole.
        assert!(decode_protobuf_wire(&[0x0b, 0x08, 0x01, 0x0c], &[]).is_ok());
    }

    #[cfg(feature = "serde")]
    #[test]
    fn json_conversions() {
        let j = serde_json::json!({"a": [1, -2, 1.5, u64::MAX], "b": null, "c": "s", "d": true});
        let g = GenericValue::from_json(j.clone());
        assert_eq!(g.field("c").and_then(GenericValue::as_str), Some("s"));
        assert_eq!(
            g.field("a"),
            Some(&GenericValue::Array(vec![
                GenericValue::Int(1),
                GenericValue::Int(-2),
                GenericValue::Float(1.5),
                GenericValue::UInt(u64::MAX)
            ]))
        );
        assert_eq!(g.to_json(), j);
        let kv = GenericValue::KeyValue(
            Box::new(GenericValue::Bytes(Bytes::from_static(b"\x00\xff"))),
            Box::new(GenericValue::Float(f64::NAN)),
        );
        assert_eq!(
            kv.to_json(),
            serde_json::json!({"key": "AP8=", "value": null})
        );
        let info = parse_parsing_info(
            r#"[{"number":1,"name":"x","type":"INT32","label":"LABEL_REPEATED","definition":null}]"#,
        )
        .unwrap();
        assert_eq!(
            info,
            vec![ParsingInfo {
                number: 1,
                name: "x".into(),
                kind: "INT32".into(),
                repeated: true
            }]
        );
        assert!(parse_parsing_info("{").is_err());
        assert!(parse_parsing_info(r#"[{"name":"x","type":"INT32"}]"#).is_err());
    }
}
