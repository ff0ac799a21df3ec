//! KeyValue schemas: a key and a value, each with its own schema, written together in the
//! payload (INLINE) or the key in the message key and the value in the payload (SEPARATED), as
//! the Java client's `KeyValueSchemaImpl` does; and the KeyValue SchemaInfo, as the Java
//! client's `KeyValueSchemaInfo` writes and reads it.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};

use super::{Decoding, Encoded, Schema, SchemaError, SchemaInfo, SchemaType};

const KEY_SCHEMA_NAME: &str = "key.schema.name";
const KEY_SCHEMA_TYPE: &str = "key.schema.type";
const KEY_SCHEMA_PROPS: &str = "key.schema.properties";
const VALUE_SCHEMA_NAME: &str = "value.schema.name";
const VALUE_SCHEMA_TYPE: &str = "value.schema.type";
const VALUE_SCHEMA_PROPS: &str = "value.schema.properties";
const KV_ENCODING_TYPE: &str = "kv.encoding.type";

/// Where a KeyValue schema puts the key (the Java client's `KeyValueEncodingType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KeyValueEncoding {
    /// Key and value together in the payload: the key's length (4 bytes, big-endian), the key,
    /// the value's length, the value (`KeyValue.encode`).
    #[default]
    Inline,
    /// The key as the message key (sent base64-encoded, [`Encoded::key`]), the value as the
    /// payload: the broker can route and compact on the key.
    Separated,
}

impl KeyValueEncoding {
    /// The Java name (`INLINE`, `SEPARATED`), the value of the `kv.encoding.type` property.
    pub fn java_name(self) -> &'static str {
        match self {
            KeyValueEncoding::Inline => "INLINE",
            KeyValueEncoding::Separated => "SEPARATED",
        }
    }
}

/// A key and a value (the Java client's `org.apache.pulsar.common.schema.KeyValue`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct KeyValue<K, V> {
    /// The key.
    pub key: K,
    /// The value.
    pub value: V,
}

impl<K, V> KeyValue<K, V> {
    /// A key and a value.
    pub fn new(key: K, value: V) -> Self {
        KeyValue { key, value }
    }
}

impl<K, V> From<(K, V)> for KeyValue<K, V> {
    fn from((key, value): (K, V)) -> Self {
        KeyValue { key, value }
    }
}

/// A key with schema `K` and a value with schema `V` (the Java client's
/// `Schema.KeyValue(key, value, encoding)`).
///
/// A part Java wrote as null (length -1 in the INLINE payload; no message key with SEPARATED)
/// is decoded by its schema from an empty payload: an empty string or bytes, an error for the
/// schemas whose values cannot be empty.
#[derive(Debug, Clone, Default)]
pub struct KeyValueSchema<K, V> {
    key: K,
    value: V,
    encoding: KeyValueEncoding,
}

impl<K: Schema, V: Schema> KeyValueSchema<K, V> {
    /// The key's and the value's schemas, and where the key goes.
    pub fn new(key: K, value: V, encoding: KeyValueEncoding) -> Self {
        KeyValueSchema {
            key,
            value,
            encoding,
        }
    }

    /// The key's schema.
    pub fn key_schema(&self) -> &K {
        &self.key
    }

    /// The value's schema.
    pub fn value_schema(&self) -> &V {
        &self.value
    }

    /// Where the key goes.
    pub fn encoding(&self) -> KeyValueEncoding {
        self.encoding
    }
}

impl<K: Schema, V: Schema> Schema for KeyValueSchema<K, V> {
    type Value = KeyValue<K::Value, V::Value>;

    fn info(&self) -> SchemaInfo {
        encode_key_value_info(
            "KeyValue",
            &self.key.info(),
            &self.value.info(),
            self.encoding,
        )
    }

    fn encode(&self, value: &Self::Value) -> Result<Encoded, SchemaError> {
        let key = self.key.encode(&value.key)?.payload;
        let val = self.value.encode(&value.value)?.payload;
        Ok(match self.encoding {
            KeyValueEncoding::Inline => Encoded::payload(join_parts(&key, &val)?),
            KeyValueEncoding::Separated => Encoded {
                payload: val,
                key: Some(key),
            },
        })
    }

    fn decode(&self, input: &Decoding<'_>) -> Result<Self::Value, SchemaError> {
        let writers = match input.writer {
            Some(w) if w.kind == SchemaType::KeyValue => {
                let (k, v, _) = split_key_value_info(w)?;
                Some((k, v))
            }
            _ => None,
        };
        let (key_bytes, value_bytes) = match self.encoding {
            KeyValueEncoding::Inline => {
                let (k, v) = split_parts(input.payload)?;
                (k.unwrap_or_default(), v.unwrap_or_default())
            }
            KeyValueEncoding::Separated => (input.key.unwrap_or_default(), input.payload),
        };
        let part = |payload, writer| Decoding {
            payload,
            key: None,
            version: input.version,
            writer,
        };
        let key = self
            .key
            .decode(&part(key_bytes, writers.as_ref().map(|w| &w.0)))?;
        let value = self
            .value
            .decode(&part(value_bytes, writers.as_ref().map(|w| &w.1)))?;
        Ok(KeyValue { key, value })
    }

    fn wants_writer_schema(&self) -> bool {
        self.key.wants_writer_schema() || self.value.wants_writer_schema()
    }
}

fn kv_error(reason: impl Into<String>) -> SchemaError {
    SchemaError::Decode {
        kind: SchemaType::KeyValue,
        reason: reason.into(),
    }
}

/// Two parts with their lengths (4 bytes, big-endian, each), as Java's `KeyValue.encode`
/// writes a key and a value (and `KeyValueSchemaInfo` the two schemas' definitions).
pub(crate) fn join_parts(key: &[u8], value: &[u8]) -> Result<Bytes, SchemaError> {
    let too_long = |_| SchemaError::Encode {
        kind: SchemaType::KeyValue,
        reason: "a part longer than 2 GiB".into(),
    };
    let kl = i32::try_from(key.len()).map_err(too_long)?;
    let vl = i32::try_from(value.len()).map_err(too_long)?;
    let mut out = BytesMut::with_capacity(8 + key.len() + value.len());
    out.put_i32(kl);
    out.put_slice(key);
    out.put_i32(vl);
    out.put_slice(value);
    Ok(out.freeze())
}

/// The two parts of a payload written by [`join_parts`] (`KeyValue.decode`): `None` for a part
/// Java wrote as null (length -1). Lengths past the input and trailing bytes are errors.
pub(crate) fn split_parts(data: &[u8]) -> Result<Parts<'_>, SchemaError> {
    let (key, rest) = take_part(data, "key")?;
    let (value, rest) = take_part(rest, "value")?;
    if !rest.is_empty() {
        return Err(kv_error(format!("{} bytes after the value", rest.len())));
    }
    Ok((key, value))
}

type Part<'a> = (Option<&'a [u8]>, &'a [u8]);
/// A key's and a value's bytes, `None` for a part written as null.
pub(crate) type Parts<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

fn take_part<'a>(data: &'a [u8], what: &str) -> Result<Part<'a>, SchemaError> {
    let Some((len, rest)) = data.split_first_chunk::<4>() else {
        return Err(kv_error(format!("no length of the {what}")));
    };
    let len = i32::from_be_bytes(*len);
    if len == -1 {
        return Ok((None, rest));
    }
    let len = usize::try_from(len).map_err(|_| kv_error(format!("{what} length {len}")))?;
    if len > rest.len() {
        return Err(kv_error(format!(
            "{what} length {len} past the {} remaining bytes",
            rest.len()
        )));
    }
    let (part, rest) = rest.split_at(len);
    Ok((Some(part), rest))
}

/// The SchemaInfo of a KeyValue schema, as the Java client's
/// `KeyValueSchemaInfo.encodeKeyValueSchemaInfo(name, key, value, encoding)` builds it: the
/// definition is the two definitions with their lengths (4 bytes big-endian each, as in an
/// INLINE payload); the properties are each part's name, type (its Java name) and properties (as compact JSON with sorted keys,
/// `SchemaUtils.serializeSchemaProperties`), and `kv.encoding.type`.
pub fn encode_key_value_info(
    name: &str,
    key: &SchemaInfo,
    value: &SchemaInfo,
    encoding: KeyValueEncoding,
) -> SchemaInfo {
    // Definitions longer than 2 GiB cannot be declared; an empty one is what is left.
    let definition = join_parts(&key.definition, &value.definition).unwrap_or_default();
    let mut properties = BTreeMap::new();
    for (info, n, t, p) in [
        (key, KEY_SCHEMA_NAME, KEY_SCHEMA_TYPE, KEY_SCHEMA_PROPS),
        (
            value,
            VALUE_SCHEMA_NAME,
            VALUE_SCHEMA_TYPE,
            VALUE_SCHEMA_PROPS,
        ),
    ] {
        properties.insert(n.to_string(), info.name.clone());
        properties.insert(t.to_string(), info.kind.java_name().to_string());
        properties.insert(p.to_string(), gson_properties(&info.properties));
    }
    properties.insert(
        KV_ENCODING_TYPE.to_string(),
        encoding.java_name().to_string(),
    );
    SchemaInfo {
        kind: SchemaType::KeyValue,
        name: name.to_string(),
        definition,
        properties,
    }
}

/// The key's and the value's SchemaInfo and the encoding of a KeyValue SchemaInfo, as the Java
/// client's `KeyValueSchemaInfo.decodeKeyValueSchemaInfo` and `decodeKeyValueEncodingType`
/// read them: a missing name is empty, a missing type BYTES, missing properties none, a missing
/// encoding INLINE.
pub fn split_key_value_info(
    info: &SchemaInfo,
) -> Result<(SchemaInfo, SchemaInfo, KeyValueEncoding), SchemaError> {
    let bad = |reason: String| SchemaError::Definition {
        kind: SchemaType::KeyValue,
        reason,
    };
    if info.kind != SchemaType::KeyValue {
        return Err(bad(format!(
            "a {:?} schema is not a KeyValue one",
            info.kind
        )));
    }
    let (k, v) = split_parts(&info.definition).map_err(|e| match e {
        SchemaError::Decode { reason, .. } => bad(reason),
        other => other,
    })?;
    let part =
        |data: Option<&[u8]>, n: &str, t: &str, p: &str| -> Result<SchemaInfo, SchemaError> {
            let kind = match info.properties.get(t) {
                None => SchemaType::Bytes,
                Some(name) => SchemaType::from_java_name(name)
                    .ok_or_else(|| bad(format!("unknown schema type {name:?} in {t}")))?,
            };
            let properties = match info.properties.get(p).map(String::as_str) {
                None | Some("") => BTreeMap::new(),
                Some(text) => parse_flat_json_object(text)
                    .ok_or_else(|| bad(format!("{p} is not a JSON object of strings")))?,
            };
            Ok(SchemaInfo {
                kind,
                name: info.properties.get(n).cloned().unwrap_or_default(),
                definition: data.map(Bytes::copy_from_slice).unwrap_or_default(),
                properties,
            })
        };
    let key = part(k, KEY_SCHEMA_NAME, KEY_SCHEMA_TYPE, KEY_SCHEMA_PROPS)?;
    let value = part(v, VALUE_SCHEMA_NAME, VALUE_SCHEMA_TYPE, VALUE_SCHEMA_PROPS)?;
    let encoding = match info.properties.get(KV_ENCODING_TYPE).map(String::as_str) {
        None | Some("") | Some("INLINE") => KeyValueEncoding::Inline,
        Some("SEPARATED") => KeyValueEncoding::Separated,
        Some(other) => return Err(bad(format!("unknown {KV_ENCODING_TYPE} {other:?}"))),
    };
    Ok((key, value, encoding))
}

/// Properties as Gson writes a map (the Java client's `SchemaUtils.serializeSchemaProperties`):
/// compact, keys sorted, and Gson's HTML-safe escapes (`<`, `>`, `&`, `=`, `'` as `\uXXXX`).
pub(crate) fn gson_properties(properties: &BTreeMap<String, String>) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in properties.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        gson_string(&mut out, k);
        out.push(':');
        gson_string(&mut out, v);
    }
    out.push('}');
    out
}

fn gson_string(out: &mut String, s: &str) {
    use std::fmt::Write;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '=' | '\'' | '\u{2028}' | '\u{2029}' | '\0'..='\u{1f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A JSON object whose values are strings, numbers, booleans or null (read as their text, as
/// Gson's `getAsString` does; null as an empty string); `None` for anything else. A small
/// parser of its own so that KeyValue schemas need no JSON library.
pub(crate) fn parse_flat_json_object(text: &str) -> Option<BTreeMap<String, String>> {
    let mut p = FlatJson {
        s: text.as_bytes(),
        i: 0,
    };
    let mut map = BTreeMap::new();
    p.ws();
    p.eat(b'{')?;
    p.ws();
    if p.peek() == Some(b'}') {
        p.i += 1;
    } else {
        loop {
            p.ws();
            let k = p.string()?;
            p.ws();
            p.eat(b':')?;
            p.ws();
            let v = p.scalar()?;
            map.insert(k, v);
            p.ws();
            match p.peek()? {
                b',' => p.i += 1,
                b'}' => {
                    p.i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    p.ws();
    (p.i == p.s.len()).then_some(map)
}

struct FlatJson<'a> {
    s: &'a [u8],
    i: usize,
}

impl FlatJson<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    fn string(&mut self) -> Option<String> {
        self.eat(b'"')?;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let c = self.peek()?;
            self.i += 1;
            match c {
                b'"' => return String::from_utf8(out).ok(),
                b'\\' => {
                    let e = self.peek()?;
                    self.i += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            if (0xD800..0xDC00).contains(&hi) {
                                self.eat(b'\\')?;
                                self.eat(b'u')?;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return None;
                                }
                                char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))?
                            } else {
                                char::from_u32(hi)?
                            }
                        }
                        _ => return None,
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                0..=0x1f => return None,
                c => out.push(c),
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.s.get(self.i..self.i + 4)?;
        self.i += 4;
        u32::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
    }

    fn scalar(&mut self) -> Option<String> {
        if self.peek()? == b'"' {
            return self.string();
        }
        let start = self.i;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || b"+-.".contains(&c)) {
            self.i += 1;
        }
        let word = std::str::from_utf8(&self.s[start..self.i]).ok()?;
        match word {
            "null" => Some(String::new()),
            "true" | "false" => Some(word.to_string()),
            w if !w.is_empty() && w.parse::<f64>().is_ok() => Some(w.to_string()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{BytesSchema, Int32Schema, StringSchema};

    fn info_props(info: &SchemaInfo) -> Vec<(&str, &str)> {
        info.properties
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn inline_payload_is_java_key_value_encode() {
        // Java `KeyValue.encode(key, keySchema, value, valueSchema)` with Schema.INT32 and
        // Schema.STRING: putInt(4) [0,0,0,7] putInt(2) "hi".
        let s = KeyValueSchema::new(Int32Schema, StringSchema, KeyValueEncoding::Inline);
        let e = s.encode(&KeyValue::new(7, "hi".to_string())).unwrap();
        assert_eq!(
            &e.payload[..],
            &[0, 0, 0, 4, 0, 0, 0, 7, 0, 0, 0, 2, b'h', b'i']
        );
        assert_eq!(e.key, None);
        let back = s.decode(&Decoding::payload(&e.payload)).unwrap();
        assert_eq!(back, KeyValue::new(7, "hi".to_string()));
    }

    #[test]
    fn separated_puts_the_key_in_the_message_key() {
        let s = KeyValueSchema::new(StringSchema, Int32Schema, KeyValueEncoding::Separated);
        let e = s.encode(&("k".to_string(), 1).into()).unwrap();
        assert_eq!(&e.payload[..], &[0, 0, 0, 1]);
        assert_eq!(e.key.as_deref(), Some(&b"k"[..]));
        let input = Decoding {
            payload: &e.payload,
            key: Some(b"k"),
            version: None,
            writer: None,
        };
        assert_eq!(s.decode(&input).unwrap(), KeyValue::new("k".to_string(), 1));
        // No key: the key schema reads an empty payload.
        assert_eq!(
            s.decode(&Decoding::payload(&e.payload)).unwrap().key,
            String::new()
        );
        let s = KeyValueSchema::new(Int32Schema, Int32Schema, KeyValueEncoding::Separated);
        assert!(matches!(
            s.decode(&Decoding::payload(&e.payload)),
            Err(SchemaError::Decode {
                kind: SchemaType::Int32,
                ..
            })
        ));
    }

    #[test]
    fn null_parts_and_bad_lengths() {
        let s = KeyValueSchema::new(BytesSchema, StringSchema, KeyValueEncoding::Inline);
        // Java writes -1 for a null key.
        let v = s
            .decode(&Decoding::payload(&[
                0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, b'x',
            ]))
            .unwrap();
        assert_eq!((v.key.len(), v.value.as_str()), (0, "x"));
        for bad in [
            &[][..],
            &[0, 0, 0],
            &[0, 0, 0, 5, 1],
            &[0x80, 0, 0, 0, 0, 0, 0, 0],
            &[0xff, 0xff, 0xff, 0xfe, 0, 0, 0, 0],
            &[0, 0, 0, 0, 0, 0, 0, 0, 9],
            &[0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff],
        ] {
            assert!(
                matches!(
                    s.decode(&Decoding::payload(bad)),
                    Err(SchemaError::Decode {
                        kind: SchemaType::KeyValue,
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn schema_info_is_java_encode_key_value_schema_info() {
        // Java `KeyValueSchemaInfo.encodeKeyValueSchemaInfo(Schema.INT32, Schema.STRING, INLINE)`:
        // definition = putInt(0) putInt(0) (both definitions empty); the parts' names, types
        // and properties (Gson of an empty map: "{}").
        let s = KeyValueSchema::new(Int32Schema, StringSchema, KeyValueEncoding::Inline);
        let info = s.info();
        assert_eq!(info.kind, SchemaType::KeyValue);
        assert_eq!(info.name, "KeyValue");
        assert_eq!(&info.definition[..], &[0u8; 8]);
        assert_eq!(
            info_props(&info),
            vec![
                ("key.schema.name", "INT32"),
                ("key.schema.properties", "{}"),
                ("key.schema.type", "INT32"),
                ("kv.encoding.type", "INLINE"),
                ("value.schema.name", "String"),
                ("value.schema.properties", "{}"),
                ("value.schema.type", "STRING"),
            ]
        );
        let (k, v, e) = split_key_value_info(&info).unwrap();
        assert_eq!(
            (k, v, e),
            (
                Int32Schema.info(),
                StringSchema.info(),
                KeyValueEncoding::Inline
            )
        );
    }

    #[test]
    fn info_with_definitions_and_properties_round_trips() {
        let key = SchemaInfo::avro(r#"{"type":"string"}"#)
            .property("__alwaysAllowNull", "true")
            .property("a=b", "<x>");
        let value = SchemaInfo::json("{}");
        let info = encode_key_value_info("kv", &key, &value, KeyValueEncoding::Separated);
        assert_eq!(
            info.properties["key.schema.properties"],
            r#"{"__alwaysAllowNull":"true","a\u003db":"\u003cx\u003e"}"#
        );
        assert_eq!(&info.definition[..4], &[0, 0, 0, 17]);
        let (k, v, e) = split_key_value_info(&info).unwrap();
        assert_eq!((k, v, e), (key, value, KeyValueEncoding::Separated));
    }

    #[test]
    fn split_defaults_and_errors() {
        let mut info = SchemaInfo::new(
            SchemaType::KeyValue,
            vec![0u8, 0, 0, 1, b'a', 255, 255, 255, 255],
        );
        let (k, v, e) = split_key_value_info(&info).unwrap();
        assert_eq!(
            (k.kind, &k.definition[..], k.name.as_str()),
            (SchemaType::Bytes, &b"a"[..], "")
        );
        assert_eq!((v.kind, v.definition.len()), (SchemaType::Bytes, 0));
        assert_eq!(e, KeyValueEncoding::Inline);
        info.properties
            .insert("kv.encoding.type".into(), "OTHER".into());
        assert!(split_key_value_info(&info).is_err());
        info.properties.clear();
        info.properties
            .insert("key.schema.type".into(), "NOPE".into());
        assert!(split_key_value_info(&info).is_err());
        info.properties.clear();
        info.properties
            .insert("key.schema.properties".into(), "[1]".into());
        assert!(split_key_value_info(&info).is_err());
        assert!(split_key_value_info(&SchemaInfo::string()).is_err());
        let short = SchemaInfo::new(SchemaType::KeyValue, vec![0u8, 0, 0, 9]);
        assert!(matches!(
            split_key_value_info(&short),
            Err(SchemaError::Definition { .. })
        ));
    }

    #[test]
    fn flat_json_parser() {
        let m =
            parse_flat_json_object(r#" { "a" : "x\u0041\n", "b": 1.5, "c": true, "d": null } "#)
                .unwrap();
        assert_eq!(m["a"], "xA\n");
        assert_eq!(m["b"], "1.5");
        assert_eq!(m["c"], "true");
        assert_eq!(m["d"], "");
        assert_eq!(parse_flat_json_object("{}").unwrap().len(), 0);
        for bad in [
            "",
            "{",
            r#"{"a"}"#,
            r#"{"a":{}}"#,
            r#"{"a":"b",}"#,
            r#"{"a":"b"} x"#,
            r#"{"a":nope}"#,
        ] {
            assert_eq!(parse_flat_json_object(bad), None, "{bad}");
        }
    }
}
