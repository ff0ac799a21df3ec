//! Protobuf schemas: prost messages as their protobuf bytes, declared as the Java client's
//! `ProtobufSchema` (PROTOBUF: an Avro-style definition and the `__PARSING_INFO__` property)
//! or `ProtobufNativeSchema` (PROTOBUF_NATIVE: the file descriptor set) declares them.

use std::collections::BTreeMap;
use std::marker::PhantomData;

use base64::Engine as _;
use bytes::Bytes;
use prost::Message as _;

use super::{struct_properties, Decoding, Encoded, Schema, SchemaError, SchemaInfo, SchemaType};

/// The property of a PROTOBUF schema listing its top-level fields (Java's
/// `ProtobufSchema.PARSING_INFO_PROPERTY`).
pub const PARSING_INFO_PROPERTY: &str = "__PARSING_INFO__";

fn encode_message<T: prost::Message>(value: &T) -> Encoded {
    Encoded::payload(value.encode_to_vec())
}

fn decode_message<T: prost::Message + Default>(
    kind: SchemaType,
    payload: &[u8],
) -> Result<T, SchemaError> {
    T::decode(payload).map_err(|e| SchemaError::Decode {
        kind,
        reason: e.to_string(),
    })
}

/// prost messages `T` as protobuf bytes, declared as PROTOBUF (the Java client's
/// `Schema.PROTOBUF(Message.class)`).
///
/// Java declares the Avro schema Avro's `ProtobufData` derives from the message's descriptor,
/// named `""`, with the properties `__alwaysAllowNull` = `true`, `__jsr310ConversionEnabled` =
/// `false` and `__PARSING_INFO__` (the top-level fields: number, name, type, label). With
/// feature `protobuf`, `ProtobufSchema::from_descriptor` derives both from a
/// `prost_reflect::MessageDescriptor`; [`ProtobufSchema::with_definition`] takes them as text.
pub struct ProtobufSchema<T> {
    info: SchemaInfo,
    _value: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for ProtobufSchema<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProtobufSchema")
            .field("info", &self.info)
            .finish()
    }
}

impl<T: prost::Message + Default + 'static> ProtobufSchema<T> {
    /// A schema declared with this Avro-style definition and, if given, this `__PARSING_INFO__`
    /// (JSON text each). With feature `serde` both must be JSON.
    pub fn with_definition(
        definition: impl Into<String>,
        parsing_info: Option<String>,
    ) -> Result<Self, SchemaError> {
        let definition = definition.into();
        #[cfg(feature = "serde")]
        for text in std::iter::once(&definition).chain(parsing_info.as_ref()) {
            serde_json::from_str::<serde_json::Value>(text).map_err(|e| {
                SchemaError::Definition {
                    kind: SchemaType::Protobuf,
                    reason: e.to_string(),
                }
            })?;
        }
        let mut properties = struct_properties();
        if let Some(p) = parsing_info {
            properties.insert(PARSING_INFO_PROPERTY.to_string(), p);
        }
        Ok(ProtobufSchema {
            info: SchemaInfo {
                kind: SchemaType::Protobuf,
                name: String::new(),
                definition: Bytes::from(definition),
                properties,
            },
            _value: PhantomData,
        })
    }

    /// A schema declared as Java declares the message of `descriptor` (feature `protobuf`): the
    /// Avro schema of Avro's `ProtobufData.getSchema` and the `__PARSING_INFO__` of
    /// `ProtobufSchema.getParsingInfo`.
    #[cfg(feature = "protobuf")]
    pub fn from_descriptor(descriptor: &prost_reflect::MessageDescriptor) -> Self {
        let mut properties = struct_properties();
        properties.insert(
            PARSING_INFO_PROPERTY.to_string(),
            derive::parsing_info(descriptor),
        );
        ProtobufSchema {
            info: SchemaInfo {
                kind: SchemaType::Protobuf,
                name: String::new(),
                definition: Bytes::from(derive::avro_definition(descriptor)),
                properties,
            },
            _value: PhantomData,
        }
    }

    /// Adds a property to the declared schema.
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.info.properties.insert(key.into(), value.into());
        self
    }
}

impl<T: prost::Message + Default + 'static> Schema for ProtobufSchema<T> {
    type Value = T;

    fn info(&self) -> SchemaInfo {
        self.info.clone()
    }

    fn encode(&self, value: &T) -> Result<Encoded, SchemaError> {
        Ok(encode_message(value))
    }

    fn decode(&self, input: &Decoding<'_>) -> Result<T, SchemaError> {
        decode_message(SchemaType::Protobuf, input.payload)
    }
}

/// prost messages `T` as protobuf bytes, declared as PROTOBUF_NATIVE (the Java client's
/// `Schema.PROTOBUF_NATIVE(Message.class)`): the definition is the JSON Java's
/// `ProtobufNativeSchemaUtils.serialize` writes, `{"fileDescriptorSet":"<base64 of the
/// FileDescriptorSet>","rootMessageTypeName":"<full name>","rootFileDescriptorName":"<file>"}`,
/// named `""`, with the properties `__alwaysAllowNull` = `true`, `__jsr310ConversionEnabled` =
/// `false` and the root message's `__PARSING_INFO__` (as Java's `ProtobufNativeSchema.of`
/// declares them).
pub struct ProtobufNativeSchema<T> {
    info: SchemaInfo,
    _value: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for ProtobufNativeSchema<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProtobufNativeSchema")
            .field("info", &self.info)
            .finish()
    }
}

impl<T: prost::Message + Default + 'static> ProtobufNativeSchema<T> {
    /// A schema of the message `root_message` (its full name, `package.Outer.Inner`) in the
    /// FileDescriptorSet `file_descriptor_set` (its protobuf bytes, as `protoc
    /// --include_imports --descriptor_set_out` writes). The set must decode, hold the message,
    /// and hold every file its file imports (with feature `protobuf`, it must also build as a
    /// descriptor pool).
    pub fn from_descriptor_set(
        file_descriptor_set: &[u8],
        root_message: &str,
    ) -> Result<Self, SchemaError> {
        let (root_file, parsing_info) = native::root_file(file_descriptor_set, root_message)?;
        #[cfg(feature = "protobuf")]
        native::pool(file_descriptor_set, root_message)?;
        Ok(Self::from_parts(
            file_descriptor_set,
            root_message,
            &root_file,
            parsing_info,
        ))
    }

    /// The schema of the message of `descriptor` (feature `protobuf`): its file and every file
    /// that file imports, as Java's `ProtobufNativeSchemaUtils.serialize` collects them.
    #[cfg(feature = "protobuf")]
    pub fn from_message_descriptor(descriptor: &prost_reflect::MessageDescriptor) -> Self {
        let set = native::descriptor_set(descriptor);
        Self::from_parts(
            &set,
            descriptor.full_name(),
            descriptor.parent_file().name(),
            derive::parsing_info(descriptor),
        )
    }

    fn from_parts(set: &[u8], root_message: &str, root_file: &str, parsing_info: String) -> Self {
        let mut properties = struct_properties();
        properties.insert(PARSING_INFO_PROPERTY.to_string(), parsing_info);
        ProtobufNativeSchema {
            info: SchemaInfo {
                kind: SchemaType::ProtobufNative,
                name: String::new(),
                definition: Bytes::from(native::definition_json(set, root_message, root_file)),
                properties,
            },
            _value: PhantomData,
        }
    }
}

impl<T: prost::Message + Default + 'static> Schema for ProtobufNativeSchema<T> {
    type Value = T;

    fn info(&self) -> SchemaInfo {
        self.info.clone()
    }

    fn encode(&self, value: &T) -> Result<Encoded, SchemaError> {
        Ok(encode_message(value))
    }

    fn decode(&self, input: &Decoding<'_>) -> Result<T, SchemaError> {
        decode_message(SchemaType::ProtobufNative, input.payload)
    }
}

/// The PROTOBUF_NATIVE definition: what Java writes, and reading it back.
pub(crate) mod native {
    use super::*;

    /// The parts of a PROTOBUF_NATIVE definition (Java's `ProtobufNativeSchemaData`).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(crate) struct NativeDefinition {
        /// The FileDescriptorSet bytes.
        pub(crate) file_descriptor_set: Vec<u8>,
        /// The root message's full name.
        pub(crate) root_message_type_name: String,
        /// The name of the file declaring it.
        pub(crate) root_file_descriptor_name: String,
    }

    fn bad(reason: impl Into<String>) -> SchemaError {
        SchemaError::Definition {
            kind: SchemaType::ProtobufNative,
            reason: reason.into(),
        }
    }

    /// The definition JSON, in the field order of Java's `ProtobufNativeSchemaData` (Jackson
    /// writes `byte[]` as standard base64 with padding).
    pub(crate) fn definition_json(set: &[u8], root_message: &str, root_file: &str) -> String {
        format!(
            "{{\"fileDescriptorSet\":{},\"rootMessageTypeName\":{},\"rootFileDescriptorName\":{}}}",
            json_string(&base64::engine::general_purpose::STANDARD.encode(set)),
            json_string(root_message),
            json_string(root_file)
        )
    }

    /// Reads a definition (Java's `ProtobufNativeSchemaUtils.deserialize`, its first step).
    pub(crate) fn parse_definition(definition: &[u8]) -> Result<NativeDefinition, SchemaError> {
        let text = std::str::from_utf8(definition).map_err(|e| bad(e.to_string()))?;
        let map = super::super::key_value::parse_flat_json_object(text)
            .ok_or_else(|| bad("the definition is not a JSON object of strings"))?;
        let field = |k: &str| {
            map.get(k)
                .cloned()
                .ok_or_else(|| bad(format!("the definition has no {k}")))
        };
        let set = base64::engine::general_purpose::STANDARD
            .decode(field("fileDescriptorSet")?)
            .map_err(|e| bad(format!("fileDescriptorSet: {e}")))?;
        Ok(NativeDefinition {
            file_descriptor_set: set,
            root_message_type_name: field("rootMessageTypeName")?,
            root_file_descriptor_name: field("rootFileDescriptorName")?,
        })
    }

    // The parts of descriptor.proto these checks read (unknown fields are skipped).
    #[derive(Clone, PartialEq, prost::Message)]
    struct FileDescriptorSet {
        #[prost(message, repeated, tag = "1")]
        file: Vec<FileDescriptorProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    struct FileDescriptorProto {
        #[prost(string, optional, tag = "1")]
        name: Option<String>,
        #[prost(string, optional, tag = "2")]
        package: Option<String>,
        #[prost(string, repeated, tag = "3")]
        dependency: Vec<String>,
        #[prost(message, repeated, tag = "4")]
        message_type: Vec<DescriptorProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    struct DescriptorProto {
        #[prost(string, optional, tag = "1")]
        name: Option<String>,
        #[prost(message, repeated, tag = "2")]
        field: Vec<FieldDescriptorProto>,
        #[prost(message, repeated, tag = "3")]
        nested_type: Vec<DescriptorProto>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    struct FieldDescriptorProto {
        #[prost(string, optional, tag = "1")]
        name: Option<String>,
        #[prost(int32, optional, tag = "3")]
        number: Option<i32>,
        #[prost(int32, optional, tag = "4")]
        label: Option<i32>,
        #[prost(int32, optional, tag = "5")]
        r#type: Option<i32>,
    }

    /// `FieldDescriptorProto.Type` names (descriptor.proto numbers 1 to 18).
    const TYPE_NAMES: [&str; 18] = [
        "DOUBLE", "FLOAT", "INT64", "UINT64", "INT32", "FIXED64", "FIXED32", "BOOL", "STRING",
        "GROUP", "MESSAGE", "BYTES", "UINT32", "ENUM", "SFIXED32", "SFIXED64", "SINT32", "SINT64",
    ];

    /// The root message's `__PARSING_INFO__`, as Java's `getParsingInfo` writes it.
    fn parsing_info(m: &DescriptorProto) -> String {
        let items: Vec<String> = m
            .field
            .iter()
            .map(|f| {
                let t = f.r#type.unwrap_or(0);
                let kind = usize::try_from(t - 1)
                    .ok()
                    .and_then(|i| TYPE_NAMES.get(i))
                    .copied()
                    .unwrap_or("UNKNOWN");
                let label = match f.label.unwrap_or(1) {
                    2 => "LABEL_REQUIRED",
                    3 => "LABEL_REPEATED",
                    _ => "LABEL_OPTIONAL",
                };
                super::parsing_info_item(
                    f.number.unwrap_or(0),
                    f.name.as_deref().unwrap_or(""),
                    kind,
                    label,
                )
            })
            .collect();
        format!("[{}]", items.join(","))
    }

    /// The name of the file of `set` declaring `root_message` and the message's
    /// `__PARSING_INFO__`, checking that the file's imports are all in the set (as Java's
    /// `deserialize` requires).
    pub(crate) fn root_file(
        set: &[u8],
        root_message: &str,
    ) -> Result<(String, String), SchemaError> {
        let set = FileDescriptorSet::decode(set)
            .map_err(|e| bad(format!("the FileDescriptorSet does not decode: {e}")))?;
        let by_name: BTreeMap<&str, &FileDescriptorProto> = set
            .file
            .iter()
            .map(|f| (f.name.as_deref().unwrap_or(""), f))
            .collect();
        let (file, message) = set
            .file
            .iter()
            .find_map(|f| declares(f, root_message).map(|m| (f, m)))
            .ok_or_else(|| bad(format!("no message {root_message} in the descriptor set")))?;
        // Every file reachable by imports must be present (and the walk ends on cycles).
        let mut seen = std::collections::BTreeSet::new();
        let mut todo = vec![file];
        while let Some(f) = todo.pop() {
            for d in &f.dependency {
                let dep = by_name.get(d.as_str()).ok_or_else(|| {
                    bad(format!(
                        "the descriptor set lacks {d}, which {} imports",
                        f.name.as_deref().unwrap_or("")
                    ))
                })?;
                if seen.insert(d.as_str()) {
                    todo.push(dep);
                }
            }
        }
        Ok((file.name.clone().unwrap_or_default(), parsing_info(message)))
    }

    /// The message `full_name` if `file` declares it.
    fn declares<'a>(file: &'a FileDescriptorProto, full_name: &str) -> Option<&'a DescriptorProto> {
        let package = file.package.as_deref().unwrap_or("");
        let rest = if package.is_empty() {
            full_name
        } else {
            full_name
                .strip_prefix(package)
                .and_then(|r| r.strip_prefix('.'))?
        };
        let mut path = rest.split('.');
        let first = path.next()?;
        let mut current = file
            .message_type
            .iter()
            .find(|m| m.name.as_deref() == Some(first));
        for part in path {
            current = current.and_then(|m| {
                m.nested_type
                    .iter()
                    .find(|n| n.name.as_deref() == Some(part))
            });
        }
        current
    }

    /// The descriptor pool of a set, and the root message in it (feature `protobuf`).
    #[cfg(feature = "protobuf")]
    pub(crate) fn pool(
        set: &[u8],
        root_message: &str,
    ) -> Result<prost_reflect::MessageDescriptor, SchemaError> {
        let pool = prost_reflect::DescriptorPool::decode(set)
            .map_err(|e| bad(format!("the descriptor set does not build: {e}")))?;
        pool.get_message_by_name(root_message)
            .ok_or_else(|| bad(format!("no message {root_message} in the descriptor set")))
    }

    /// The FileDescriptorSet bytes of a message's file and its imports, imports first.
    #[cfg(feature = "protobuf")]
    pub(crate) fn descriptor_set(descriptor: &prost_reflect::MessageDescriptor) -> Vec<u8> {
        fn visit(
            f: prost_reflect::FileDescriptor,
            seen: &mut std::collections::BTreeSet<String>,
            out: &mut Vec<prost_reflect::prost_types::FileDescriptorProto>,
        ) {
            if !seen.insert(f.name().to_string()) {
                return;
            }
            for d in f.dependencies() {
                visit(d, seen, out);
            }
            out.push(f.file_descriptor_proto().clone());
        }
        let mut files = Vec::new();
        visit(
            descriptor.parent_file(),
            &mut std::collections::BTreeSet::new(),
            &mut files,
        );
        prost_reflect::prost_types::FileDescriptorSet { file: files }.encode_to_vec()
    }
}

/// One field of a `__PARSING_INFO__` list (Java's `ProtoBufParsingInfo` as Jackson writes it:
/// its fields in declaration order, the null `definition` included).
fn parsing_info_item(number: i32, name: &str, kind: &str, label: &str) -> String {
    format!(
        "{{\"number\":{number},\"name\":{},\"type\":\"{kind}\",\"label\":\"{label}\",\"definition\":null}}",
        json_string(name)
    )
}

/// A JSON string literal (compact, as Jackson writes: `"` and `\` and control characters
/// escaped).
pub(crate) fn json_string(s: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\0'..='\u{1f}' => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Java's PROTOBUF declarations derived from a descriptor (feature `protobuf`).
#[cfg(feature = "protobuf")]
pub(crate) mod derive {
    use prost_reflect::{Cardinality, FieldDescriptor, Kind, MessageDescriptor};

    use super::json_string;

    /// The protobuf type's Java name (`FieldDescriptor.Type.name()`).
    fn type_name(f: &FieldDescriptor) -> &'static str {
        match f.kind() {
            Kind::Double => "DOUBLE",
            Kind::Float => "FLOAT",
            Kind::Int32 => "INT32",
            Kind::Int64 => "INT64",
            Kind::Uint32 => "UINT32",
            Kind::Uint64 => "UINT64",
            Kind::Sint32 => "SINT32",
            Kind::Sint64 => "SINT64",
            Kind::Fixed32 => "FIXED32",
            Kind::Fixed64 => "FIXED64",
            Kind::Sfixed32 => "SFIXED32",
            Kind::Sfixed64 => "SFIXED64",
            Kind::Bool => "BOOL",
            Kind::String => "STRING",
            Kind::Bytes => "BYTES",
            Kind::Message(_) if f.is_group() => "GROUP",
            Kind::Message(_) => "MESSAGE",
            Kind::Enum(_) => "ENUM",
        }
    }

    fn label(f: &FieldDescriptor) -> &'static str {
        match f.cardinality() {
            Cardinality::Optional => "LABEL_OPTIONAL",
            Cardinality::Required => "LABEL_REQUIRED",
            Cardinality::Repeated => "LABEL_REPEATED",
        }
    }

    /// `ProtobufSchema.getParsingInfo`: Jackson's list of the top-level fields' number, name,
    /// type, label and (always null) definition.
    pub(crate) fn parsing_info(d: &MessageDescriptor) -> String {
        let items: Vec<String> = d
            .fields()
            .map(|f| {
                super::parsing_info_item(f.number() as i32, f.name(), type_name(&f), label(&f))
            })
            .collect();
        format!("[{}]", items.join(","))
    }

    /// Avro's `ProtobufData.getNamespace`: the Java package (or the proto package), the outer
    /// class (unless `java_multiple_files`), and the containing messages joined by `$`.
    fn namespace(
        file: &prost_reflect::FileDescriptor,
        containing: Option<MessageDescriptor>,
    ) -> String {
        let o = file
            .file_descriptor_proto()
            .options
            .clone()
            .unwrap_or_default();
        let package = o
            .java_package
            .clone()
            .unwrap_or_else(|| file.package_name().to_string());
        let outer = if o.java_multiple_files() {
            String::new()
        } else if let Some(outer) = o.java_outer_classname.clone() {
            outer
        } else {
            let base = file.name().rsplit('/').next().unwrap_or("");
            let stem = base.rsplit_once('.').map_or(base, |(s, _)| s);
            stem.split('_')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let mut cs = p.chars();
                    cs.next()
                        .map(|c| {
                            c.to_uppercase()
                                .chain(cs.as_str().to_lowercase().chars())
                                .collect::<String>()
                        })
                        .unwrap_or_default()
                })
                .collect::<String>()
        };
        let mut inner: Vec<String> = Vec::new();
        let mut c = containing;
        while let Some(m) = c {
            inner.insert(0, m.name().to_string());
            c = m.parent_message();
        }
        let inner = inner.join("$");
        let d1 = if !outer.is_empty() || !inner.is_empty() {
            "."
        } else {
            ""
        };
        let d2 = if !outer.is_empty() && !inner.is_empty() {
            "$"
        } else {
            ""
        };
        format!("{package}{d1}{outer}{d2}{inner}")
    }

    struct Writer {
        /// Full names of the named types already written (later uses are references).
        seen: std::collections::BTreeSet<String>,
    }

    impl Writer {
        fn name_ref(&self, full: &str, name: &str, ns: &str, enclosing: &str) -> String {
            let _ = full;
            if ns == enclosing {
                json_string(name)
            } else {
                json_string(&format!("{ns}.{name}"))
            }
        }

        fn record(&mut self, d: &MessageDescriptor, enclosing: &str) -> String {
            let ns = namespace(&d.parent_file(), d.parent_message());
            let full = format!("{ns}.{}", d.name());
            if !self.seen.insert(full.clone()) {
                return self.name_ref(&full, d.name(), &ns, enclosing);
            }
            let fields: Vec<String> = d.fields().map(|f| self.field(&f, &ns)).collect();
            let mut out = format!("{{\"type\":\"record\",\"name\":{}", json_string(d.name()));
            if ns != enclosing && !ns.is_empty() {
                out.push_str(&format!(",\"namespace\":{}", json_string(&ns)));
            }
            out.push_str(&format!(",\"fields\":[{}]}}", fields.join(",")));
            out
        }

        fn field(&mut self, f: &FieldDescriptor, ns: &str) -> String {
            let mut t = self.non_repeated(f, ns);
            if f.is_list() || f.is_map() {
                t = format!("{{\"type\":\"array\",\"items\":{t}}}");
            }
            let mut out = format!("{{\"name\":{},\"type\":{t}", json_string(f.name()));
            if let Some(d) = default(f) {
                out.push_str(&format!(",\"default\":{d}"));
            }
            out.push('}');
            out
        }

        fn non_repeated(&mut self, f: &FieldDescriptor, ns: &str) -> String {
            match f.kind() {
                Kind::Int32 | Kind::Uint32 | Kind::Sint32 | Kind::Fixed32 | Kind::Sfixed32 => {
                    "\"int\"".into()
                }
                Kind::Int64 | Kind::Uint64 | Kind::Sint64 | Kind::Fixed64 | Kind::Sfixed64 => {
                    "\"long\"".into()
                }
                Kind::Float => "\"float\"".into(),
                Kind::Double => "\"double\"".into(),
                Kind::Bool => "\"boolean\"".into(),
                Kind::String => "{\"type\":\"string\",\"avro.java.string\":\"String\"}".into(),
                Kind::Bytes => "\"bytes\"".into(),
                Kind::Enum(e) => {
                    let ens = namespace(&e.parent_file(), e.parent_message());
                    let full = format!("{ens}.{}", e.name());
                    if !self.seen.insert(full.clone()) {
                        return self.name_ref(&full, e.name(), &ens, ns);
                    }
                    let symbols: Vec<String> = e.values().map(|v| json_string(v.name())).collect();
                    let mut out = format!("{{\"type\":\"enum\",\"name\":{}", json_string(e.name()));
                    if ens != ns && !ens.is_empty() {
                        out.push_str(&format!(",\"namespace\":{}", json_string(&ens)));
                    }
                    out.push_str(&format!(",\"symbols\":[{}]}}", symbols.join(",")));
                    out
                }
                Kind::Message(m) => {
                    let r = self.record(&m, ns);
                    // Optional record fields in a union with null (not repeated, not required).
                    if f.cardinality() == Cardinality::Optional && !f.is_list() && !f.is_map() {
                        format!("[\"null\",{r}]")
                    } else {
                        r
                    }
                }
            }
        }
    }

    /// Avro's `ProtobufData.getDefault` for a field, as the Java client of Pulsar 4.0.7
    /// registers it: none for a required one; an empty array for a repeated one (maps are
    /// repeated entries); the declared default (proto2 `[default = ...]`) if any; else zero,
    /// false, empty, the first enum symbol, or null for a message.
    fn default(f: &FieldDescriptor) -> Option<String> {
        if f.is_list() || f.is_map() {
            return Some("[]".into());
        }
        if f.cardinality() != Cardinality::Optional {
            return None;
        }
        if let Some(d) = f.field_descriptor_proto().default_value.as_deref() {
            let declared = match f.kind() {
                Kind::String | Kind::Bytes | Kind::Enum(_) => Some(json_string(d)),
                Kind::Bool if d == "true" || d == "false" => Some(d.to_string()),
                Kind::Message(_) | Kind::Bool => None,
                // Numbers as written, when JSON can hold them (not inf, nan).
                _ => d
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .map(|_| d.to_string()),
            };
            if declared.is_some() {
                return declared;
            }
        }
        Some(match f.kind() {
            Kind::Bool => "false".into(),
            Kind::Message(_) => "null".into(),
            Kind::String | Kind::Bytes => "\"\"".into(),
            Kind::Enum(e) => json_string(
                e.values()
                    .next()
                    .map(|v| v.name().to_string())
                    .unwrap_or_default()
                    .as_str(),
            ),
            // `NODES.numberNode(0)`, for floats too.
            _ => "0".into(),
        })
    }

    /// The Avro schema Avro's `ProtobufData.getSchema` derives for a message, as Avro's
    /// `Schema.toString()` writes it.
    pub(crate) fn avro_definition(d: &MessageDescriptor) -> String {
        Writer {
            seen: Default::default(),
        }
        .record(d, "")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[derive(Clone, PartialEq, prost::Message)]
    struct Point {
        #[prost(int32, tag = "1")]
        x: i32,
        #[prost(string, tag = "2")]
        label: String,
    }

    /// A FileDescriptorSet of `package demo; message Point { int32 x = 1; string label = 2;
    /// message Inner {} }` in `demo.proto`, written by hand with prost.
    pub(crate) fn point_descriptor_set() -> Vec<u8> {
        use prost::Message;
        #[derive(Clone, PartialEq, prost::Message)]
        struct Set {
            #[prost(message, repeated, tag = "1")]
            file: Vec<File>,
        }
        #[derive(Clone, PartialEq, prost::Message)]
        struct File {
            #[prost(string, tag = "1")]
            name: String,
            #[prost(string, tag = "2")]
            package: String,
            #[prost(message, repeated, tag = "4")]
            message_type: Vec<Msg>,
            #[prost(string, tag = "12")]
            syntax: String,
        }
        #[derive(Clone, PartialEq, prost::Message)]
        struct Msg {
            #[prost(string, tag = "1")]
            name: String,
            #[prost(message, repeated, tag = "2")]
            field: Vec<Field>,
            #[prost(message, repeated, tag = "3")]
            nested_type: Vec<Msg>,
        }
        #[derive(Clone, PartialEq, prost::Message)]
        struct Field {
            #[prost(string, tag = "1")]
            name: String,
            #[prost(int32, tag = "3")]
            number: i32,
            #[prost(int32, tag = "4")]
            label: i32,
            #[prost(int32, tag = "5")]
            r#type: i32,
            #[prost(string, tag = "10")]
            json_name: String,
        }
        let field = |name: &str, number, t| Field {
            name: name.into(),
            number,
            label: 1,
            r#type: t,
            json_name: name.into(),
        };
        Set {
            file: vec![File {
                name: "demo.proto".into(),
                package: "demo".into(),
                message_type: vec![Msg {
                    name: "Point".into(),
                    field: vec![field("x", 1, 5), field("label", 2, 9)],
                    nested_type: vec![Msg {
                        name: "Inner".into(),
                        field: vec![],
                        nested_type: vec![],
                    }],
                }],
                syntax: "proto3".into(),
            }],
        }
        .encode_to_vec()
    }

    #[test]
    fn native_definition_is_java_protobuf_native_schema_utils_serialize() {
        let set = point_descriptor_set();
        let s = ProtobufNativeSchema::<Point>::from_descriptor_set(&set, "demo.Point").unwrap();
        let info = s.info();
        assert_eq!(info.kind, SchemaType::ProtobufNative);
        assert_eq!(info.name, "");
        assert_eq!(info.properties["__alwaysAllowNull"], "true");
        assert_eq!(info.properties["__jsr310ConversionEnabled"], "false");
        // ProtobufNativeSchema.getParsingInfo of the root message's fields.
        assert_eq!(
            info.properties[PARSING_INFO_PROPERTY],
            r#"[{"number":1,"name":"x","type":"INT32","label":"LABEL_OPTIONAL","definition":null},{"number":2,"name":"label","type":"STRING","label":"LABEL_OPTIONAL","definition":null}]"#
        );
        // Java's `ProtobufNativeSchemaData` fields in declaration order, as Jackson writes them.
        let expected = format!(
            r#"{{"fileDescriptorSet":"{}","rootMessageTypeName":"demo.Point","rootFileDescriptorName":"demo.proto"}}"#,
            base64::engine::general_purpose::STANDARD.encode(&set)
        );
        assert_eq!(info.definition_str(), Some(expected.as_str()));
        let back = native::parse_definition(&info.definition).unwrap();
        assert_eq!(back.file_descriptor_set, set);
        assert_eq!(back.root_message_type_name, "demo.Point");
        assert_eq!(back.root_file_descriptor_name, "demo.proto");
        // Nested messages are found too.
        assert!(
            ProtobufNativeSchema::<Point>::from_descriptor_set(&set, "demo.Point.Inner").is_ok()
        );

        let p = Point {
            x: 150,
            label: "a".into(),
        };
        let e = s.encode(&p).unwrap();
        // Protobuf bytes: field 1 varint 150 = 08 96 01, field 2 "a" = 12 01 61.
        assert_eq!(&e.payload[..], &[0x08, 0x96, 0x01, 0x12, 0x01, b'a']);
        assert_eq!(s.decode(&Decoding::payload(&e.payload)).unwrap(), p);
        assert!(matches!(
            s.decode(&Decoding::payload(&[0x12, 0x05, b'a'])),
            Err(SchemaError::Decode {
                kind: SchemaType::ProtobufNative,
                ..
            })
        ));
    }

    #[test]
    fn native_constructor_validates() {
        let set = point_descriptor_set();
        for (set, root) in [
            (&set[..], "demo.Nope"),
            (&set[..], "Point"),
            (&set[..], "other.Point"),
            (&set[..], ""),
            (&[0xff, 0xff][..], "demo.Point"),
        ] {
            assert!(
                matches!(
                    ProtobufNativeSchema::<Point>::from_descriptor_set(set, root),
                    Err(SchemaError::Definition { .. })
                ),
                "{root}"
            );
        }
        for bad in [
            &b"{}"[..],
            b"nope",
            br#"{"fileDescriptorSet":"***","rootMessageTypeName":"a","rootFileDescriptorName":"b"}"#,
        ] {
            assert!(native::parse_definition(bad).is_err());
        }
    }

    #[test]
    fn protobuf_schema_declares_the_given_definition() {
        let s = ProtobufSchema::<Point>::with_definition(
            r#"{"type":"record","name":"Point","fields":[]}"#,
            Some(r#"[{"number":1,"name":"x","type":"INT32","label":"LABEL_OPTIONAL","definition":null}]"#.into()),
        )
        .unwrap();
        let info = s.info();
        assert_eq!((info.kind, info.name.as_str()), (SchemaType::Protobuf, ""));
        assert_eq!(info.properties["__alwaysAllowNull"], "true");
        assert_eq!(info.properties["__jsr310ConversionEnabled"], "false");
        assert!(info.properties[PARSING_INFO_PROPERTY].starts_with("[{\"number\":1"));
        let p = Point {
            x: -1,
            label: String::new(),
        };
        let e = s.encode(&p).unwrap();
        assert_eq!(s.decode(&Decoding::payload(&e.payload)).unwrap(), p);
        #[cfg(feature = "serde")]
        assert!(ProtobufSchema::<Point>::with_definition("{", None).is_err());
    }

    #[cfg(feature = "protobuf")]
    #[test]
    fn derived_avro_definition_follows_avro_protobuf_data() {
        use prost_reflect::prost_types::{
            field_descriptor_proto::{Label, Type},
            DescriptorProto, EnumDescriptorProto, EnumValueDescriptorProto, FieldDescriptorProto,
            FileDescriptorProto, FileDescriptorSet,
        };
        let field = |name: &str, number, label: Label, t: Type, type_name: Option<&str>| {
            FieldDescriptorProto {
                name: Some(name.into()),
                number: Some(number),
                label: Some(label as i32),
                r#type: Some(t as i32),
                type_name: type_name.map(Into::into),
                ..Default::default()
            }
        };
        // package demo; message Outer { repeated int64 ids = 1; Inner inner = 2; Color color = 3;
        // double d = 4; message Inner { string s = 1; } enum Color { RED = 0; BLUE = 1; } }
        let file = FileDescriptorProto {
            name: Some("demo_file.proto".into()),
            package: Some("demo".into()),
            syntax: Some("proto3".into()),
            message_type: vec![DescriptorProto {
                name: Some("Outer".into()),
                field: vec![
                    field("ids", 1, Label::Repeated, Type::Int64, None),
                    field(
                        "inner",
                        2,
                        Label::Optional,
                        Type::Message,
                        Some(".demo.Outer.Inner"),
                    ),
                    field(
                        "color",
                        3,
                        Label::Optional,
                        Type::Enum,
                        Some(".demo.Outer.Color"),
                    ),
                    field("d", 4, Label::Optional, Type::Double, None),
                ],
                nested_type: vec![DescriptorProto {
                    name: Some("Inner".into()),
                    field: vec![field("s", 1, Label::Optional, Type::String, None)],
                    ..Default::default()
                }],
                enum_type: vec![EnumDescriptorProto {
                    name: Some("Color".into()),
                    value: ["RED", "BLUE"]
                        .iter()
                        .enumerate()
                        .map(|(i, n)| EnumValueDescriptorProto {
                            name: Some(n.to_string()),
                            number: Some(i as i32),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let set = FileDescriptorSet { file: vec![file] }.encode_to_vec();
        let desc = native::pool(&set, "demo.Outer").unwrap();
        let info = ProtobufSchema::<Point>::from_descriptor(&desc).info();
        // ProtobufData: namespace = package + "." + toCamelCase("demo_file") (+ "$" + the
        // containing messages); repeated fields default to []; optional messages as a union
        // with null, default null; enums default to their first symbol; numbers to 0.
        assert_eq!(
            info.definition_str().unwrap(),
            concat!(
                r#"{"type":"record","name":"Outer","namespace":"demo.DemoFile","fields":["#,
                r#"{"name":"ids","type":{"type":"array","items":"long"},"default":[]},"#,
                r#"{"name":"inner","type":["null",{"type":"record","name":"Inner","namespace":"demo.DemoFile$Outer","#,
                r#""fields":[{"name":"s","type":{"type":"string","avro.java.string":"String"},"default":""}]}],"default":null},"#,
                r#"{"name":"color","type":{"type":"enum","name":"Color","namespace":"demo.DemoFile$Outer","symbols":["RED","BLUE"]},"default":"RED"},"#,
                r#"{"name":"d","type":"double","default":0}]}"#
            )
        );
        let v: serde_json::Value = serde_json::from_slice(&info.definition).unwrap();
        assert_eq!(v["fields"].as_array().map(Vec::len), Some(4));
        assert!(info.properties[PARSING_INFO_PROPERTY].contains(
            r#"{"number":1,"name":"ids","type":"INT64","label":"LABEL_REPEATED","definition":null}"#
        ));
        // (Java's Avro takes the `$` of nested namespaces; `apache_avro`'s parser does not, so
        // PROTOBUF definitions are never parsed as Avro here.)
    }

    #[cfg(feature = "protobuf")]
    #[test]
    fn derived_from_descriptors() {
        let set = point_descriptor_set();
        let desc = native::pool(&set, "demo.Point").unwrap();
        let s = ProtobufSchema::<Point>::from_descriptor(&desc);
        let info = s.info();
        // Avro's ProtobufData: namespace = package + outer class ("Demo" from demo.proto).
        assert_eq!(
            info.definition_str().unwrap(),
            r#"{"type":"record","name":"Point","namespace":"demo.Demo","fields":[{"name":"x","type":"int","default":0},{"name":"label","type":{"type":"string","avro.java.string":"String"},"default":""}]}"#
        );
        assert_eq!(
            info.properties[PARSING_INFO_PROPERTY],
            r#"[{"number":1,"name":"x","type":"INT32","label":"LABEL_OPTIONAL","definition":null},{"number":2,"name":"label","type":"STRING","label":"LABEL_OPTIONAL","definition":null}]"#
        );
        let n = ProtobufNativeSchema::<Point>::from_message_descriptor(&desc);
        let from_set =
            ProtobufNativeSchema::<Point>::from_descriptor_set(&set, "demo.Point").unwrap();
        assert_eq!(
            n.info().properties[PARSING_INFO_PROPERTY],
            from_set.info().properties[PARSING_INFO_PROPERTY]
        );
        let back = native::parse_definition(&n.info().definition).unwrap();
        assert_eq!(back.root_file_descriptor_name, "demo.proto");
        assert!(native::pool(&back.file_descriptor_set, "demo.Point").is_ok());
    }
}
