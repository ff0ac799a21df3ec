//! The Avro definition the Java client registers for a class, from the one `apache_avro`
//! derives for the same Rust record (feature `avro`).
//!
//! Java's `Schema.AVRO(Pojo)` and `Schema.JSON(Pojo)` declare
//! `ReflectData.AllowNull.getSchema(Pojo)`: the record's fields in name order (as the JVM
//! lists a class's fields here), every field nullable (`["null", T]` with `"default": null`)
//! except those of Java's primitive types (`int`, `long`, `float`, `double`, `boolean`), and
//! the JSON written by Avro's `Schema.toString()` (compact, its own key order). A Rust field
//! `Option<T>` is Java's boxed or object `T`; a plain `i32` is Java's `int`; a plain `String`
//! is Java's `String`, so nullable too.

use serde_json::{Map, Value};

/// The Java client's definition for the derived `schema`, as text.
pub(crate) fn java_definition(schema: &apache_avro::Schema) -> String {
    let derived: Value =
        serde_json::from_str(&super::avro::schema_json(schema)).unwrap_or_default();
    let mut out = String::new();
    write(&java_type(&derived, false), &mut out);
    out
}

/// The primitive types a Java field can have without being nullable.
fn is_java_primitive(t: &Value) -> bool {
    matches!(
        t.as_str(),
        Some("int" | "long" | "float" | "double" | "boolean")
    )
}

/// `t` as Java declares it; `field` says whether it is a field's type (which AllowNull makes
/// nullable).
fn java_type(t: &Value, field: bool) -> Value {
    let inner = match t {
        Value::Object(o) => Value::Object(java_object(o)),
        Value::Array(branches) => {
            // A union: Option<T> is ["null", T]; keep null first, as Java's AllowNull.
            let mut out: Vec<Value> = Vec::with_capacity(branches.len());
            if branches.iter().any(|b| b == "null") {
                out.push(Value::from("null"));
            }
            out.extend(
                branches
                    .iter()
                    .filter(|b| *b != "null")
                    .map(|b| java_type(b, false)),
            );
            return Value::Array(out);
        }
        other => other.clone(),
    };
    if field && !is_java_primitive(&inner) {
        Value::Array(vec![Value::from("null"), inner])
    } else {
        inner
    }
}

fn java_object(o: &Map<String, Value>) -> Map<String, Value> {
    let mut out = o.clone();
    // Rust doc comments become `doc`; Java's reflection writes none (no @AvroDoc).
    out.remove("doc");
    if o.get("type").and_then(Value::as_str) == Some("record") {
        let mut fields: Vec<Value> = o
            .get("fields")
            .and_then(Value::as_array)
            .map(|fs| fs.iter().map(java_field).collect())
            .unwrap_or_default();
        fields.sort_by(|a, b| {
            let name = |f: &Value| {
                f.get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned()
            };
            name(a).cmp(&name(b))
        });
        out.insert("fields".into(), Value::Array(fields));
    }
    for key in ["items", "values"] {
        if let Some(t) = o.get(key) {
            out.insert(key.into(), java_type(t, false));
        }
    }
    out
}

fn java_field(f: &Value) -> Value {
    let Some(o) = f.as_object() else {
        return f.clone();
    };
    let mut out = Map::new();
    for (k, v) in o {
        if k != "type" && k != "default" && k != "doc" {
            out.insert(k.clone(), v.clone());
        }
    }
    let t = java_type(o.get("type").unwrap_or(&Value::Null), true);
    let nullable = t
        .as_array()
        .is_some_and(|b| b.first() == Some(&Value::from("null")));
    out.insert("type".into(), t);
    if nullable {
        out.insert("default".into(), Value::Null);
    } else if let Some(d) = o.get("default") {
        out.insert("default".into(), d.clone());
    }
    Value::Object(out)
}

/// The keys of a type in the order Avro's `Schema.toString()` writes them; others after, by
/// name.
const TYPE_KEYS: [&str; 9] = [
    "type",
    "name",
    "namespace",
    "fields",
    "items",
    "values",
    "symbols",
    "size",
    "aliases",
];
/// The keys of a record field in Avro's order.
const FIELD_KEYS: [&str; 4] = ["name", "type", "default", "aliases"];

fn write(v: &Value, out: &mut String) {
    write_as(v, &TYPE_KEYS, out);
}

fn write_as(v: &Value, order: &[&str], out: &mut String) {
    match v {
        Value::Object(o) => {
            out.push('{');
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort_by_key(|k| {
                let rank = order.iter().position(|o| o == k).unwrap_or(order.len());
                (rank, (*k).clone())
            });
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::from(k.as_str()).to_string());
                out.push(':');
                match (k.as_str(), o.get(*k)) {
                    // A record's fields, each in the field order.
                    ("fields", Some(Value::Array(fields))) => {
                        out.push('[');
                        for (j, f) in fields.iter().enumerate() {
                            if j > 0 {
                                out.push(',');
                            }
                            write_as(f, &FIELD_KEYS, out);
                        }
                        out.push(']');
                    }
                    (_, Some(value)) => write(value, out),
                    (_, None) => {}
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::AvroSchema as _;

    /// `pulsarwire.Pojo { String name; int count; }` and its evolution with `String note`.
    #[derive(apache_avro::AvroSchema)]
    #[avro(namespace = "pulsarwire")]
    #[allow(dead_code)]
    struct Pojo {
        name: Option<String>,
        count: i32,
    }

    #[derive(apache_avro::AvroSchema)]
    #[avro(namespace = "pulsarwire.v2")]
    #[allow(dead_code)]
    struct V2 {
        name: String,
        count: i32,
        note: Option<String>,
    }

    #[test]
    fn the_definitions_are_the_java_clients_to_the_byte() {
        // What the Java client 4.0.7 registered for these classes (its JavaPeer, printed by
        // `produce` with schema avro and avro_v2), on Apache Pulsar 4.0.7.
        assert_eq!(
            java_definition(&Pojo::get_schema()),
            r#"{"type":"record","name":"Pojo","namespace":"pulsarwire","fields":[{"name":"count","type":"int"},{"name":"name","type":["null","string"],"default":null}]}"#
        );
        let v2 = java_definition(&V2::get_schema()).replace("\"V2\"", "\"Pojo\"");
        assert_eq!(
            v2,
            r#"{"type":"record","name":"Pojo","namespace":"pulsarwire.v2","fields":[{"name":"count","type":"int"},{"name":"name","type":["null","string"],"default":null},{"name":"note","type":["null","string"],"default":null}]}"#
        );
    }

    #[derive(apache_avro::AvroSchema)]
    #[allow(dead_code)]
    struct Nested {
        tags: Vec<String>,
        inner: Inner,
        big: i64,
        ok: bool,
    }

    #[derive(apache_avro::AvroSchema)]
    #[allow(dead_code)]
    struct Inner {
        x: f64,
        label: Option<String>,
    }

    #[test]
    fn nested_records_arrays_and_primitives_follow_allow_null() {
        let def = java_definition(&Nested::get_schema());
        let v: Value = serde_json::from_str(&def).expect("JSON");
        let fields = v["fields"].as_array().expect("fields");
        let names: Vec<&str> = fields.iter().filter_map(|f| f["name"].as_str()).collect();
        assert_eq!(names, ["big", "inner", "ok", "tags"], "{def}");
        assert_eq!(fields[0]["type"], "long");
        assert_eq!(fields[2]["type"], "boolean");
        assert_eq!(
            fields[3]["type"],
            serde_json::json!(["null", {"type": "array", "items": "string"}])
        );
        assert_eq!(fields[3]["default"], Value::Null);
        let inner = &fields[1]["type"][1];
        assert_eq!(inner["type"], "record");
        let inner_names: Vec<&str> = inner["fields"]
            .as_array()
            .expect("inner fields")
            .iter()
            .filter_map(|f| f["name"].as_str())
            .collect();
        assert_eq!(inner_names, ["label", "x"]);
        assert_eq!(inner["fields"][1]["type"], "double");
        // And it parses as Avro.
        apache_avro::Schema::parse_str(&def).expect("a valid Avro schema");
    }
}
