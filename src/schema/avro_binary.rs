//! An Avro binary datum decoder for hostile input (feature `avro`).
//!
//! `apache_avro`'s own decoder trusts the datum more than a client can: it allocates what a
//! length prefix or a block count says before reading it (up to its global limit of 512 MiB),
//! reads a datum cut short inside a string or a union as null, and recurses without bound.
//! This one reads the same format into the same [`Value`]s, but a length past the remaining
//! input is an error before any allocation, array and map items are bounded by the input's
//! length (plus a small allowance for items of zero width, such as nulls), nesting is bounded,
//! and a datum must end where the input ends.

use std::collections::HashMap;

use apache_avro::schema::{Name, Namespace, RecordSchema, ResolvedSchema, Schema};
use apache_avro::types::Value;

/// How deep records, arrays, maps and unions may nest in a datum.
const MAX_DEPTH: usize = 128;
/// Items of zero width (null, empty records) an array or map may hold beyond one per input
/// byte.
const ZERO_WIDTH_ALLOWANCE: usize = 4096;

/// The datum `data` written with `schema` (Pulsar's Avro payloads: a datum without the object
/// container header). Every byte must belong to the datum.
pub(crate) fn decode_datum(schema: &Schema, data: &[u8]) -> Result<Value, String> {
    let resolved = ResolvedSchema::try_from(schema).map_err(|e| e.to_string())?;
    let names: HashMap<Name, &Schema> = resolved
        .get_names()
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    let mut d = Decoder {
        data,
        pos: 0,
        items_left: data.len().saturating_add(ZERO_WIDTH_ALLOWANCE),
        names: &names,
    };
    let value = d.value(schema, &None, 0)?;
    if d.pos != data.len() {
        return Err(format!("{} bytes after the datum", data.len() - d.pos));
    }
    Ok(value)
}

struct Decoder<'a> {
    data: &'a [u8],
    pos: usize,
    items_left: usize,
    names: &'a HashMap<Name, &'a Schema>,
}

impl Decoder<'_> {
    fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if n > self.remaining() {
            return Err(format!("{n} bytes wanted, {} remaining", self.remaining()));
        }
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn long(&mut self) -> Result<i64, String> {
        let mut raw: u64 = 0;
        for i in 0..10 {
            let Some(&b) = self.data.get(self.pos) else {
                return Err("the datum ends inside a number".into());
            };
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err("a number longer than 64 bits".into());
            }
            raw |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64));
            }
        }
        Err("a number longer than 64 bits".into())
    }

    fn int(&mut self) -> Result<i32, String> {
        let v = self.long()?;
        i32::try_from(v).map_err(|_| format!("{v} is not a 32-bit int"))
    }

    fn len(&mut self) -> Result<usize, String> {
        let n = self.long()?;
        let n = usize::try_from(n).map_err(|_| format!("negative length {n}"))?;
        if n > self.remaining() {
            return Err(format!(
                "length {n} past the {} remaining bytes",
                self.remaining()
            ));
        }
        Ok(n)
    }

    fn bytes(&mut self) -> Result<Vec<u8>, String> {
        let n = self.len()?;
        Ok(self.take(n)?.to_vec())
    }

    fn string(&mut self) -> Result<String, String> {
        String::from_utf8(self.bytes()?).map_err(|e| format!("a string that is not UTF-8: {e}"))
    }

    /// The item count of the next array or map block (0 at the end), within the item budget.
    fn block(&mut self) -> Result<usize, String> {
        let n = self.long()?;
        let n = if n < 0 {
            // A negative count is followed by the block's size in bytes.
            let _size = self.long()?;
            n.checked_neg().ok_or("a block count out of range")?
        } else {
            n
        };
        let n = usize::try_from(n).map_err(|_| "a block count out of range".to_string())?;
        if n > self.items_left {
            return Err(format!(
                "a block of {n} items in a datum of {} bytes",
                self.data.len()
            ));
        }
        self.items_left -= n;
        Ok(n)
    }

    fn value(&mut self, schema: &Schema, ns: &Namespace, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err(format!("values nested deeper than {MAX_DEPTH}"));
        }
        let depth = depth + 1;
        Ok(match schema {
            Schema::Null => Value::Null,
            Schema::Boolean => match self.take(1)?[0] {
                0 => Value::Boolean(false),
                1 => Value::Boolean(true),
                b => return Err(format!("boolean byte {b}")),
            },
            Schema::Int => Value::Int(self.int()?),
            Schema::Long => Value::Long(self.long()?),
            Schema::Float => {
                let b = self.take(4)?;
                Value::Float(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
            Schema::Double => {
                let mut a = [0u8; 8];
                a.copy_from_slice(self.take(8)?);
                Value::Double(f64::from_le_bytes(a))
            }
            Schema::Bytes => Value::Bytes(self.bytes()?),
            Schema::String => Value::String(self.string()?),
            Schema::Fixed(f) => Value::Fixed(f.size, self.take(f.size)?.to_vec()),
            Schema::Decimal(d) => {
                let bytes = match d.inner.as_ref() {
                    Schema::Fixed(f) => self.take(f.size)?.to_vec(),
                    _ => self.bytes()?,
                };
                Value::Decimal(apache_avro::Decimal::from(bytes))
            }
            Schema::BigDecimal => return Err("big-decimal values are not supported".into()),
            Schema::Uuid => {
                let bytes = self.bytes()?;
                let uuid = if bytes.len() == 16 {
                    apache_avro::Uuid::from_slice(&bytes).map_err(|e| e.to_string())?
                } else {
                    let s = std::str::from_utf8(&bytes).map_err(|e| e.to_string())?;
                    apache_avro::Uuid::parse_str(s).map_err(|e| e.to_string())?
                };
                Value::Uuid(uuid)
            }
            Schema::Date => Value::Date(self.int()?),
            Schema::TimeMillis => Value::TimeMillis(self.int()?),
            Schema::TimeMicros => Value::TimeMicros(self.long()?),
            Schema::TimestampMillis => Value::TimestampMillis(self.long()?),
            Schema::TimestampMicros => Value::TimestampMicros(self.long()?),
            Schema::TimestampNanos => Value::TimestampNanos(self.long()?),
            Schema::LocalTimestampMillis => Value::LocalTimestampMillis(self.long()?),
            Schema::LocalTimestampMicros => Value::LocalTimestampMicros(self.long()?),
            Schema::LocalTimestampNanos => Value::LocalTimestampNanos(self.long()?),
            Schema::Duration => {
                let mut a = [0u8; 12];
                a.copy_from_slice(self.take(12)?);
                Value::Duration(apache_avro::Duration::from(a))
            }
            Schema::Array(a) => {
                let mut items = Vec::new();
                loop {
                    let n = self.block()?;
                    if n == 0 {
                        break;
                    }
                    items.reserve(n.min(self.remaining()));
                    for _ in 0..n {
                        items.push(self.value(&a.items, ns, depth)?);
                    }
                }
                Value::Array(items)
            }
            Schema::Map(m) => {
                let mut items = HashMap::new();
                loop {
                    let n = self.block()?;
                    if n == 0 {
                        break;
                    }
                    items.reserve(n.min(self.remaining()));
                    for _ in 0..n {
                        let k = self.string()?;
                        let v = self.value(&m.types, ns, depth)?;
                        items.insert(k, v);
                    }
                }
                Value::Map(items)
            }
            Schema::Union(u) => {
                let index = self.long()?;
                let variant = usize::try_from(index)
                    .ok()
                    .and_then(|i| u.variants().get(i))
                    .ok_or_else(|| {
                        format!("union index {index} of {} variants", u.variants().len())
                    })?;
                Value::Union(index as u32, Box::new(self.value(variant, ns, depth)?))
            }
            Schema::Record(RecordSchema { name, fields, .. }) => {
                let full = name.fully_qualified_name(ns);
                let mut items = Vec::with_capacity(fields.len());
                for f in fields {
                    items.push((
                        f.name.clone(),
                        self.value(&f.schema, &full.namespace, depth)?,
                    ));
                }
                Value::Record(items)
            }
            Schema::Enum(e) => {
                let index = self.int()?;
                let symbol = usize::try_from(index)
                    .ok()
                    .and_then(|i| e.symbols.get(i))
                    .ok_or_else(|| format!("enum index {index} of {} symbols", e.symbols.len()))?;
                Value::Enum(index as u32, symbol.clone())
            }
            Schema::Ref { name } => {
                let full = name.fully_qualified_name(ns);
                let target = *self
                    .names
                    .get(&full)
                    .ok_or_else(|| format!("unknown type {}", full.fullname(None)))?;
                self.value(target, &full.namespace, depth)?
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(s: &str) -> Schema {
        Schema::parse_str(s).unwrap()
    }

    #[test]
    fn decodes_what_apache_avro_encodes() {
        let s = schema(
            r#"{"type":"record","name":"R","fields":[
                {"name":"a","type":"int"},{"name":"b","type":["null","string"]},
                {"name":"c","type":{"type":"array","items":"long"}},
                {"name":"d","type":{"type":"map","values":"double"}},
                {"name":"e","type":{"type":"enum","name":"E","symbols":["X","Y"]}},
                {"name":"f","type":{"type":"fixed","name":"F","size":2}},
                {"name":"g","type":"boolean"},{"name":"h","type":"bytes"},{"name":"i","type":"float"},
                {"name":"next","type":["null","R"]}]}"#,
        );
        let v = Value::Record(vec![
            ("a".into(), Value::Int(-3)),
            (
                "b".into(),
                Value::Union(1, Box::new(Value::String("hé".into()))),
            ),
            (
                "c".into(),
                Value::Array(vec![Value::Long(1), Value::Long(i64::MIN)]),
            ),
            (
                "d".into(),
                Value::Map(HashMap::from([("k".to_string(), Value::Double(0.5))])),
            ),
            ("e".into(), Value::Enum(1, "Y".into())),
            ("f".into(), Value::Fixed(2, vec![1, 2])),
            ("g".into(), Value::Boolean(true)),
            ("h".into(), Value::Bytes(vec![0, 255])),
            ("i".into(), Value::Float(1.5)),
            ("next".into(), Value::Union(0, Box::new(Value::Null))),
        ]);
        let bytes = apache_avro::to_avro_datum(&s, v.clone()).unwrap();
        assert_eq!(decode_datum(&s, &bytes).unwrap(), v);
        // Every truncation is an error, and so are trailing bytes.
        for n in 0..bytes.len() {
            assert!(decode_datum(&s, &bytes[..n]).is_err(), "{n}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_datum(&s, &longer)
            .unwrap_err()
            .contains("after the datum"));
    }

    #[test]
    fn hostile_lengths_and_counts_are_errors() {
        // A string of length 2^40 in 6 bytes.
        let s = schema(r#""string""#);
        let mut huge = vec![0x80, 0x80, 0x80, 0x80, 0x80, 0x40];
        assert!(decode_datum(&s, &huge).unwrap_err().contains("past the"));
        huge.truncate(2);
        assert!(decode_datum(&s, &huge).is_err());
        // An array of a billion nulls.
        let s = schema(r#"{"type":"array","items":"null"}"#);
        let count = apache_avro::to_avro_datum(&Schema::Long, Value::Long(1 << 30)).unwrap();
        assert!(decode_datum(&s, &count).unwrap_err().contains("block of"));
        // A few nulls are fine.
        assert_eq!(
            decode_datum(&s, &[0x06, 0]).unwrap(),
            Value::Array(vec![Value::Null; 3])
        );
        // A negative count carries a byte size.
        let s = schema(r#"{"type":"array","items":"int"}"#);
        assert_eq!(
            decode_datum(&s, &[0x01, 0x02, 0x04, 0]).unwrap(),
            Value::Array(vec![Value::Int(2)])
        );
        // Unions and enums out of range, booleans other than 0 and 1, overlong varints.
        assert!(decode_datum(&schema(r#"["null","int"]"#), &[0x04]).is_err());
        assert!(decode_datum(
            &schema(r#"{"type":"enum","name":"E","symbols":["A"]}"#),
            &[0x02]
        )
        .is_err());
        assert!(decode_datum(&schema(r#""boolean""#), &[2]).is_err());
        assert!(decode_datum(&schema(r#""long""#), &[0xff; 11]).is_err());
        assert!(decode_datum(&schema(r#""int""#), &[0x80, 0x80, 0x80, 0x80, 0x10]).is_err());
        // Deep nesting through a recursive union.
        let s =
            schema(r#"{"type":"record","name":"L","fields":[{"name":"n","type":["null","L"]}]}"#);
        let deep = vec![0x02; 1000];
        assert!(decode_datum(&s, &deep).unwrap_err().contains("nested"));
    }
}
