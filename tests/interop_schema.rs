//! Typed-schema interoperability with the official clients on Apache Pulsar: the Java client
//! (`pulsarwire.JavaPeer`, tests/support/java.rs; its schemas and their JSON values are listed
//! in Schemas.java) and the C++ client's Python schemas (tests/interop/schema_produce.py,
//! schema_consume.py).
//!
//! Each test decodes through the typed API (`TypedProducer`, `TypedConsumer`, the codecs of
//! `pulsar_wire::schema`) and compares the values with the JSON form of what the peer sent or
//! read (Schemas.java), in both directions; the registry is read through the admin API
//! ([`support::apache::Apache::schema`]).
//!
//! Needs `scripts/apache-pulsar.sh install` (and `scripts/setup-broker.sh` for the Python
//! peer); starts its own standalone through tests/support.

#![cfg(all(feature = "avro", feature = "protobuf"))]

mod support;

use std::fmt::Debug;
use std::time::Duration;

use pulsar_wire::schema::{
    AutoConsumeSchema, AvroSchema, BoolSchema, Date, DateSchema, DoubleSchema, FloatSchema,
    Instant, InstantSchema, Int16Schema, Int32Schema, Int64Schema, Int8Schema, JsonSchema,
    KeyValue, KeyValueEncoding, KeyValueSchema, LocalDate, LocalDateSchema, LocalDateTime,
    LocalDateTimeSchema, LocalTime, LocalTimeSchema, ProtobufNativeSchema, ProtobufSchema, Schema,
    SchemaError, StringSchema, Time, TimeSchema, Timestamp, TimestampSchema, PARSING_INFO_PROPERTY,
};
use pulsar_wire::{InitialPosition, PulsarClient, SubscriptionType, TypedConsumer, TypedMessage};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use support::java::{done, events, hex, text};

/// Liveness guard around each receive of a message that must come.
const RECEIVE_GUARD: Duration = Duration::from_secs(30);

/// The Avro schema the Java client derives for `pulsarwire.Pojo`.
const POJO_SCHEMA: &str = r#"{"type":"record","name":"Pojo","namespace":"pulsarwire","fields":[{"name":"count","type":"int"},{"name":"name","type":["null","string"],"default":null}]}"#;

/// `pulsarwire.Pojo` of the Java peer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, apache_avro::AvroSchema)]
#[avro(namespace = "pulsarwire")]
struct Pojo {
    name: Option<String>,
    count: i32,
}

/// `pulsarwire.v2.Pojo` of the Java peer: Pojo plus a nullable `note`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PojoV2 {
    name: Option<String>,
    count: i32,
    #[serde(default)]
    note: Option<String>,
}

fn pojo(name: Option<&str>, count: i32) -> Pojo {
    Pojo {
        name: name.map(str::to_string),
        count,
    }
}

/// A Pojo in the JSON form of the Java peer.
fn pojo_json(p: &Pojo) -> Value {
    json!({"name": p.name, "count": p.count})
}

fn broker() -> &'static support::Broker {
    support::apache()
}

fn client() -> PulsarClient {
    PulsarClient::builder(broker().url())
        .operation_timeout(Duration::from_secs(15))
        .build()
        .expect("client")
}

async fn java(command: &'static str, spec: Value) -> Vec<Value> {
    support::java::run(broker().url(), command, spec).await
}

/// A Java producer of `schema` (plus the `extra` spec keys) sending `messages`; its lines.
async fn java_produce(topic: &str, schema: &str, messages: Value, extra: &Value) -> Vec<Value> {
    let mut spec = json!({"topic": topic, "schema": schema, "messages": messages});
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        spec[k] = v;
    }
    java("produce", spec).await
}

async fn subscribe<S: Schema>(
    client: &PulsarClient,
    topic: &str,
    subscription: &str,
    schema: S,
) -> TypedConsumer<S> {
    client
        .consumer(topic)
        .subscription(subscription)
        .subscription_type(SubscriptionType::Shared)
        .initial_position(InitialPosition::Earliest)
        .schema(schema)
        .subscribe()
        .await
        .expect("subscribe")
}

async fn receive_one<S: Schema>(
    consumer: &mut TypedConsumer<S>,
    what: &str,
) -> TypedMessage<S::Value> {
    tokio::time::timeout(RECEIVE_GUARD, consumer.receive())
        .await
        .unwrap_or_else(|_| panic!("{what}: no message within {RECEIVE_GUARD:?}"))
        .unwrap_or_else(|e| panic!("{what}: receive failed: {e}"))
}

/// Receives `want.len()` messages: each decodes to the value wanted, with the schema version
/// wanted; acknowledges each. Returns the messages.
async fn assert_values<S: Schema>(
    consumer: &mut TypedConsumer<S>,
    want: &[(S::Value, u64)],
    what: &str,
) -> Vec<TypedMessage<S::Value>>
where
    S::Value: PartialEq + Debug,
{
    let mut got = Vec::new();
    for (i, (value, version)) in want.iter().enumerate() {
        let msg = receive_one(consumer, what).await;
        assert_eq!(msg.value(), value, "{what} #{i}");
        assert_eq!(
            msg.schema_version().and_then(|v| v.as_u64()),
            Some(*version),
            "{what} #{i}: the schema version"
        );
        consumer.ack(&msg).await.expect("ack");
        got.push(msg);
    }
    got
}

/// A pulsar-wire producer of `schema` sends `values` (unbatched, one after the other).
async fn wire_send<S: Schema>(client: &PulsarClient, topic: &str, schema: S, values: &[S::Value]) {
    let producer = client
        .producer(topic)
        .schema(schema)
        .create()
        .await
        .expect("producer");
    for v in values {
        producer.send(v).await.expect("send");
    }
    producer.close().await.expect("close");
}

/// Java's view of the messages (its own consumer's `payload_hex`, `value`, `schema_version`).
async fn java_view(topic: &str, schema: &str, count: usize, extra: Value) -> Vec<Value> {
    let mut spec =
        json!({"topic": topic, "schema": schema, "subscription": "java-view", "count": count});
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        spec[k] = v;
    }
    let lines = java("consume", spec).await;
    events(&lines, "message").into_iter().cloned().collect()
}

fn values_of(seen: &[Value]) -> Vec<Value> {
    seen.iter()
        .map(|m| {
            assert!(m.get("value_error").is_none(), "Java could not decode: {m}");
            m["value"].clone()
        })
        .collect()
}

/// A Java AVRO(Pojo) producer, then an evolved one (v2: an added nullable field): the registry
/// holds Java's definitions as versions 0 and 1; a pulsar-wire v1 reader decodes all three
/// messages to the v1 Pojo (v2's note skipped), a v2 reader decodes all three (v1's messages
/// with `note` at its default, by writer-schema resolution), each with its writer's version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_avro_evolution_to_wire() {
    let client = client();
    let topic = support::unique_topic("schema-java-avro");
    let v1 =
        json!([{"value": {"name": "a ✓", "count": 1}}, {"value": {"name": null, "count": -2}}]);
    let lines = java_produce(&topic, "avro", v1, &json!({})).await;
    let declared_v1 = text(done(&lines), "schema_definition").to_string();
    let declared: Value = serde_json::from_str(&declared_v1).expect("json");
    let v2 = json!([{"value": {"name": "b", "count": 3, "note": "new"}}]);
    let lines = java_produce(&topic, "avro_v2", v2, &json!({})).await;
    let declared_v2 = text(done(&lines), "schema_definition").to_string();
    let seen = java_view(&topic, "auto_consume", 3, json!({})).await;
    let versions: Vec<i64> = seen
        .iter()
        .map(|m| m["schema_version"].as_i64().expect("a version"))
        .collect();
    assert_eq!(versions, [0, 0, 1], "the versions Java's consumer saw");
    assert_eq!(
        seen[2]["value"],
        json!({"count": 3, "name": "b", "note": "new"})
    );
    let apache = broker().apache();
    let registered = apache.schema(&topic).expect("a schema in the registry");
    assert_eq!(registered["type"], "AVRO");
    assert_eq!(registered["version"], 1);
    let first = apache.schema_at(&topic, Some(0)).expect("version 0");
    let data: Value = serde_json::from_str(first["data"].as_str().expect("data")).expect("json");
    assert_eq!(data, declared, "the registry holds the Java definition");

    let schema = AvroSchema::<Pojo>::with_definition(declared_v1).expect("v1 definition");
    let mut v1_reader = subscribe(&client, &topic, "v1", schema).await;
    let want = [
        (pojo(Some("a ✓"), 1), 0),
        (pojo(None, -2), 0),
        (pojo(Some("b"), 3), 1),
    ];
    let got = assert_values(&mut v1_reader, &want, "the v1 reader").await;
    for (msg, java) in got.iter().zip(&seen) {
        assert_eq!(hex::encode(msg.payload()), text(java, "payload_hex"));
    }
    let schema = AvroSchema::<PojoV2>::with_definition(declared_v2).expect("v2 definition");
    let mut v2_reader = subscribe(&client, &topic, "v2", schema).await;
    let v2 = |name: Option<&str>, count, note: Option<&str>| PojoV2 {
        name: name.map(str::to_string),
        count,
        note: note.map(str::to_string),
    };
    let want = [
        (v2(Some("a ✓"), 1, None), 0),
        (v2(None, -2, None), 0),
        (v2(Some("b"), 3, Some("new")), 1),
    ];
    assert_values(&mut v2_reader, &want, "the v2 reader").await;
    client.close().await.expect("close");
}

/// A Java JSON(Pojo) producer: pulsar-wire's JsonSchema<Pojo>, declared with Java's
/// definition, decodes what Java sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_json_to_wire() {
    let client = client();
    let topic = support::unique_topic("schema-java-json");
    let sent = [pojo(Some("x ✓"), 5), pojo(None, i32::MIN)];
    let messages: Vec<Value> = sent
        .iter()
        .map(|p| json!({"value": pojo_json(p)}))
        .collect();
    let lines = java_produce(&topic, "json", json!(messages), &json!({})).await;
    assert_eq!(text(done(&lines), "schema_type"), "JSON");
    let definition = text(done(&lines), "schema_definition");
    let schema = JsonSchema::<Pojo>::with_definition(definition).expect("definition");
    let mut consumer = subscribe(&client, &topic, "sub", schema).await;
    let want: Vec<(Pojo, u64)> = sent.iter().cloned().map(|p| (p, 0)).collect();
    assert_values(&mut consumer, &want, "JSON").await;
    client.close().await.expect("close");
}

/// pulsar-wire's AvroSchema<Pojo> and JsonSchema<Pojo> producers: Java's consumer with
/// Schema.AVRO(Pojo) / Schema.JSON(Pojo) reads the same values, at version 0 of a registry
/// of the right type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wire_avro_and_json_to_java() {
    let client = client();
    let sent = [pojo(Some("w ✓"), 7), pojo(None, -1), pojo(Some(""), 0)];
    let want: Vec<Value> = sent.iter().map(pojo_json).collect();
    for (schema, kind) in [("avro", "AVRO"), ("json", "JSON")] {
        let topic = support::unique_topic(&format!("schema-wire-{schema}"));
        if schema == "avro" {
            let s = AvroSchema::<Pojo>::with_definition(POJO_SCHEMA).expect("definition");
            wire_send(&client, &topic, s, &sent).await;
        } else {
            let s = JsonSchema::<Pojo>::with_definition(POJO_SCHEMA).expect("definition");
            wire_send(&client, &topic, s, &sent).await;
        }
        let registered = broker().apache().schema(&topic).expect("a schema");
        assert_eq!(registered["type"], kind);
        let seen = java_view(&topic, schema, sent.len(), json!({})).await;
        assert_eq!(values_of(&seen), want, "{schema}: what Java read");
        for m in &seen {
            assert_eq!(m["schema_version"], 0, "{schema}");
        }
    }
    client.close().await.expect("close");
}

/// The definitions pulsar-wire derives for `pulsarwire.Pojo` (`AvroSchema::derived`,
/// `JsonSchema::derived`) are the Java client's, to the byte: pulsar-wire registers first,
/// then a Java producer of `Schema.AVRO(Pojo.class)` / `Schema.JSON(Pojo.class)` lands on the
/// same schema version, and the registry holds one version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn derived_definitions_are_the_java_clients() {
    let client = client();
    for (schema, derived) in [
        ("avro", AvroSchema::<Pojo>::derived().info()),
        ("json", JsonSchema::<Pojo>::derived().info()),
    ] {
        assert_eq!(
            derived.definition_str(),
            Some(POJO_SCHEMA),
            "{schema}: the derived definition"
        );
        let topic = support::unique_topic(&format!("schema-derived-{schema}"));
        if schema == "avro" {
            wire_send(
                &client,
                &topic,
                AvroSchema::<Pojo>::derived(),
                &[pojo(Some("w"), 1)],
            )
            .await;
        } else {
            wire_send(
                &client,
                &topic,
                JsonSchema::<Pojo>::derived(),
                &[pojo(Some("w"), 1)],
            )
            .await;
        }
        let lines = java_produce(
            &topic,
            schema,
            json!([{"value": {"name": "j", "count": 2}}]),
            &json!({}),
        )
        .await;
        assert_eq!(
            text(done(&lines), "schema_definition"),
            POJO_SCHEMA,
            "{schema}: what Java declares"
        );
        let seen = java_view(&topic, schema, 2, json!({})).await;
        let versions: Vec<&Value> = seen.iter().map(|m| &m["schema_version"]).collect();
        assert_eq!(
            versions,
            [&json!(0), &json!(0)],
            "{schema}: one version for both"
        );
        let registered = broker().apache().schema(&topic).expect("a schema");
        assert_eq!(registered["version"], 0, "{schema}: {registered}");
    }
    client.close().await.expect("close");
}

const KV_CASES: [(KeyValueEncoding, &str); 2] = [
    (KeyValueEncoding::Inline, "keyvalue_inline"),
    (KeyValueEncoding::Separated, "keyvalue_separated"),
];

/// Java KeyValue(STRING, AVRO|JSON(Pojo)) producers, INLINE and SEPARATED: pulsar-wire's
/// KeyValueSchema<StringSchema, Avro|JsonSchema<Pojo>> decodes the key and value; SEPARATED
/// keys arrive as the message key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_key_value_to_wire() {
    let client = client();
    let sent = [("k1 ✓", pojo(Some("v"), 1)), ("", pojo(None, -9))];
    let messages: Vec<Value> = sent
        .iter()
        .map(|(k, p)| json!({"value": {"key": k, "value": pojo_json(p)}}))
        .collect();
    let want: Vec<(KeyValue<String, Pojo>, u64)> = sent
        .iter()
        .map(|(k, p)| (KeyValue::new(k.to_string(), p.clone()), 0))
        .collect();
    for (encoding, name) in KV_CASES {
        for value_schema in ["avro", "json"] {
            let what = format!("{name} {value_schema}");
            let topic = support::unique_topic(&format!("schema-java-kv-{value_schema}"));
            let extra = json!({"value_schema": value_schema});
            java_produce(&topic, name, json!(messages), &extra).await;
            let got = if value_schema == "avro" {
                let v = AvroSchema::<Pojo>::with_definition(POJO_SCHEMA).expect("definition");
                let s = KeyValueSchema::new(StringSchema, v, encoding);
                let mut consumer = subscribe(&client, &topic, "sub", s).await;
                assert_values(&mut consumer, &want, &what).await
            } else {
                let v = JsonSchema::<Pojo>::with_definition(POJO_SCHEMA).expect("definition");
                let s = KeyValueSchema::new(StringSchema, v, encoding);
                let mut consumer = subscribe(&client, &topic, "sub", s).await;
                assert_values(&mut consumer, &want, &what).await
            };
            for (msg, (k, _)) in got.iter().zip(&sent) {
                let key = msg.key_bytes().map(|k| k.into_owned());
                if encoding == KeyValueEncoding::Separated {
                    assert_eq!(
                        key.as_deref(),
                        Some(k.as_bytes()),
                        "{what}: the message key"
                    );
                } else {
                    assert_eq!(key, None, "{what}: no message key");
                }
            }
        }
    }
    client.close().await.expect("close");
}

/// pulsar-wire KeyValue producers, INLINE and SEPARATED, AVRO and JSON values: Java's
/// KeyValue consumer reads the same keys and values; a SEPARATED key is Java's message key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wire_key_value_to_java() {
    let client = client();
    let sent = [
        KeyValue::new("k1 ✓".to_string(), pojo(Some("v"), 1)),
        KeyValue::new("k2".to_string(), pojo(None, -9)),
    ];
    let want: Vec<Value> = sent
        .iter()
        .map(|kv| json!({"key": kv.key, "value": pojo_json(&kv.value)}))
        .collect();
    for (encoding, name) in KV_CASES {
        for value_schema in ["avro", "json"] {
            let what = format!("{name} {value_schema}");
            let topic = support::unique_topic(&format!("schema-wire-kv-{value_schema}"));
            if value_schema == "avro" {
                let v = AvroSchema::<Pojo>::with_definition(POJO_SCHEMA).expect("definition");
                let s = KeyValueSchema::new(StringSchema, v, encoding);
                wire_send(&client, &topic, s, &sent).await;
            } else {
                let v = JsonSchema::<Pojo>::with_definition(POJO_SCHEMA).expect("definition");
                let s = KeyValueSchema::new(StringSchema, v, encoding);
                wire_send(&client, &topic, s, &sent).await;
            }
            let extra = json!({"value_schema": value_schema});
            let seen = java_view(&topic, name, sent.len(), extra).await;
            assert_eq!(values_of(&seen), want, "{what}: what Java read");
            for (m, kv) in seen.iter().zip(&sent) {
                if encoding == KeyValueEncoding::Separated {
                    assert_eq!(
                        m["key_bytes_hex"],
                        json!(hex::encode(kv.key.as_bytes())),
                        "{what}: the message key"
                    );
                } else {
                    assert_eq!(m["key_bytes_hex"], Value::Null, "{what}: no message key");
                }
            }
        }
    }
    client.close().await.expect("close");
}

/// One primitive both ways: Java sends `java_value` with its schema `name` and pulsar-wire's
/// `schema` decodes `value`; pulsar-wire sends `value` and Java reads `java_value`.
async fn primitive_both_ways<S: Schema + Clone>(
    client: &PulsarClient,
    name: &str,
    schema: S,
    value: S::Value,
    java_value: Value,
) where
    S::Value: PartialEq + Debug + Clone,
{
    let topic = support::unique_topic(&format!("schema-java-{}", name.replace('_', "-")));
    java_produce(&topic, name, json!([{"value": java_value}]), &json!({})).await;
    let mut consumer = subscribe(client, &topic, "sub", schema.clone()).await;
    assert_values(&mut consumer, &[(value.clone(), 0)], name).await;
    let topic = support::unique_topic(&format!("schema-wire-{}", name.replace('_', "-")));
    wire_send(client, &topic, schema, std::slice::from_ref(&value)).await;
    let seen = java_view(&topic, name, 1, json!({})).await;
    assert_eq!(values_of(&seen), [java_value], "{name}: what Java read");
}

/// INT32, INT64, DOUBLE, BOOLEAN, STRING, TIMESTAMP and LOCAL_DATE_TIME both ways with the
/// Java peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primitives_both_ways() {
    let client = client();
    primitive_both_ways(&client, "int32", Int32Schema, -123_456, json!(-123_456)).await;
    let big = -(1i64 << 40) - 3;
    primitive_both_ways(&client, "int64", Int64Schema, big, json!(big)).await;
    primitive_both_ways(&client, "double", DoubleSchema, -2.5e-3, json!(-2.5e-3)).await;
    primitive_both_ways(&client, "boolean", BoolSchema, true, json!(true)).await;
    let s = "héllo ✓".to_string();
    primitive_both_ways(&client, "string", StringSchema, s, json!("héllo ✓")).await;
    let ms = 1_700_000_000_123i64;
    let ts = Timestamp::from_millis(ms);
    primitive_both_ways(&client, "timestamp", TimestampSchema, ts, json!(ms)).await;
    let nano = 3_723_000_000_456u64;
    let ldt = LocalDateTime::new(
        LocalDate::from_epoch_day(19_782).expect("a day"),
        LocalTime::from_nano_of_day(nano).expect("a time"),
    );
    let java_ldt = json!({"epoch_day": 19_782, "nano_of_day": nano});
    primitive_both_ways(
        &client,
        "local_date_time",
        LocalDateTimeSchema,
        ldt,
        java_ldt,
    )
    .await;
    client.close().await.expect("close");
}

/// INT8, INT16, FLOAT, DATE, TIME, INSTANT, LOCAL_DATE and LOCAL_TIME both ways with the Java
/// peer (extremes where the type has them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_primitives_both_ways() {
    let client = client();
    primitive_both_ways(&client, "int8", Int8Schema, i8::MIN, json!(i8::MIN)).await;
    primitive_both_ways(&client, "int16", Int16Schema, -12_345i16, json!(-12_345)).await;
    // A float that JSON carries exactly (a power of two times a small integer).
    primitive_both_ways(&client, "float", FloatSchema, -1.375f32, json!(-1.375)).await;
    let before_epoch = -86_400_123i64;
    primitive_both_ways(
        &client,
        "date",
        DateSchema,
        Date::from_millis(before_epoch),
        json!(before_epoch),
    )
    .await;
    primitive_both_ways(
        &client,
        "time",
        TimeSchema,
        Time::from_millis(45_296_789),
        json!(45_296_789),
    )
    .await;
    let instant = Instant::new(1_700_000_000, 123_456_789).expect("an instant");
    primitive_both_ways(
        &client,
        "instant",
        InstantSchema,
        instant,
        json!({"seconds": 1_700_000_000i64, "nanos": 123_456_789}),
    )
    .await;
    let day = LocalDate::from_epoch_day(-719_162).expect("0001-01-01");
    primitive_both_ways(&client, "local_date", LocalDateSchema, day, json!(-719_162)).await;
    let last = 86_399_999_999_999u64;
    let time = LocalTime::from_nano_of_day(last).expect("23:59:59.999999999");
    primitive_both_ways(&client, "local_time", LocalTimeSchema, time, json!(last)).await;
    client.close().await.expect("close");
}

/// `google.protobuf.Field` (google/protobuf/type.proto) as a prost message: its enums as their
/// numbers, `options` (9) left out (the tests send none).
#[derive(Clone, PartialEq, prost::Message)]
struct Field {
    #[prost(int32, tag = "1")]
    kind: i32,
    #[prost(int32, tag = "2")]
    cardinality: i32,
    #[prost(int32, tag = "3")]
    number: i32,
    #[prost(string, tag = "4")]
    name: String,
    #[prost(string, tag = "6")]
    type_url: String,
    #[prost(int32, tag = "7")]
    oneof_index: i32,
    #[prost(bool, tag = "8")]
    packed: bool,
    #[prost(string, tag = "10")]
    json_name: String,
    #[prost(string, tag = "11")]
    default_value: String,
}

/// Two Fields and their protobuf JSON as the Java peer prints them (defaults left out).
fn fields() -> Vec<(Field, Value)> {
    vec![
        (
            Field {
                kind: 5,        // TYPE_INT32
                cardinality: 3, // CARDINALITY_REPEATED
                number: 7,
                name: "count".into(),
                packed: true,
                json_name: "cnt".into(),
                ..Field::default()
            },
            json!({"name": "count", "number": 7, "kind": "TYPE_INT32",
                "cardinality": "CARDINALITY_REPEATED", "packed": true, "json_name": "cnt"}),
        ),
        (
            Field {
                kind: 11,       // TYPE_MESSAGE
                cardinality: 1, // CARDINALITY_OPTIONAL
                number: 2,
                name: "t ✓".into(),
                type_url: "type.googleapis.com/x.Y".into(),
                oneof_index: 1,
                default_value: "d".into(),
                ..Field::default()
            },
            json!({"name": "t ✓", "number": 2, "kind": "TYPE_MESSAGE",
                "cardinality": "CARDINALITY_OPTIONAL", "type_url": "type.googleapis.com/x.Y",
                "oneof_index": 1, "default_value": "d"}),
        ),
    ]
}

fn field_descriptor() -> prost_reflect::MessageDescriptor {
    prost_reflect::DescriptorPool::global()
        .get_message_by_name("google.protobuf.Field")
        .expect("google.protobuf.Field among the well-known types")
}

/// Java PROTOBUF and PROTOBUF_NATIVE producers of google.protobuf.Field: the registry holds
/// the type Java declared; pulsar-wire's ProtobufSchema / ProtobufNativeSchema of Field, derived
/// from its descriptor, subscribe and decode what Java sent. The PROTOBUF definition and parsing
/// info derived are Java's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_protobuf_to_wire() {
    let client = client();
    let fields = fields();
    let messages: Vec<Value> = fields.iter().map(|(_, j)| json!({"value": j})).collect();
    let want: Vec<(Field, u64)> = fields.iter().map(|(f, _)| (f.clone(), 0)).collect();
    for schema in ["protobuf", "protobuf_native"] {
        let topic = support::unique_topic(&format!("schema-java-{}", schema.replace('_', "-")));
        let lines = java_produce(&topic, schema, json!(messages), &json!({})).await;
        let registered = broker()
            .apache()
            .schema(&topic)
            .expect("a schema in the registry");
        assert_eq!(
            registered["type"].as_str(),
            Some(text(done(&lines), "schema_type")),
            "{schema}"
        );
        if schema == "protobuf" {
            let s = ProtobufSchema::<Field>::from_descriptor(&field_descriptor());
            let info = s.info();
            let ours: Value =
                serde_json::from_str(info.definition_str().expect("text")).expect("json");
            let java: Value =
                serde_json::from_str(text(done(&lines), "schema_definition")).expect("json");
            assert_eq!(ours, java, "the PROTOBUF definition of Field");
            let parsing: Value =
                serde_json::from_str(&info.properties[PARSING_INFO_PROPERTY]).expect("json");
            let java_parsing: Value = serde_json::from_str(
                done(&lines)["schema_properties"][PARSING_INFO_PROPERTY]
                    .as_str()
                    .expect("Java's parsing info"),
            )
            .expect("json");
            assert_eq!(parsing, java_parsing, "the parsing info of Field");
            let mut consumer = subscribe(&client, &topic, "sub", s).await;
            assert_values(&mut consumer, &want, schema).await;
        } else {
            let s = ProtobufNativeSchema::<Field>::from_message_descriptor(&field_descriptor());
            let ours: Value =
                serde_json::from_str(s.info().definition_str().expect("text")).expect("json");
            let java: Value =
                serde_json::from_str(text(done(&lines), "schema_definition")).expect("json");
            for key in ["rootMessageTypeName", "rootFileDescriptorName"] {
                assert_eq!(ours[key], java[key], "{key}");
            }
            let mut consumer = subscribe(&client, &topic, "sub", s).await;
            assert_values(&mut consumer, &want, schema).await;
        }
    }
    client.close().await.expect("close");
}

/// pulsar-wire's ProtobufSchema / ProtobufNativeSchema producers of Field: Java's consumer with
/// Schema.PROTOBUF(Field) / PROTOBUF_NATIVE(Field) reads the same messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wire_protobuf_to_java() {
    let client = client();
    let fields = fields();
    let sent: Vec<Field> = fields.iter().map(|(f, _)| f.clone()).collect();
    let want: Vec<Value> = fields.iter().map(|(_, j)| j.clone()).collect();
    for schema in ["protobuf", "protobuf_native"] {
        let topic = support::unique_topic(&format!("schema-wire-{}", schema.replace('_', "-")));
        if schema == "protobuf" {
            let s = ProtobufSchema::<Field>::from_descriptor(&field_descriptor());
            wire_send(&client, &topic, s, &sent).await;
        } else {
            let s = ProtobufNativeSchema::<Field>::from_message_descriptor(&field_descriptor());
            wire_send(&client, &topic, s, &sent).await;
        }
        let seen = java_view(&topic, schema, sent.len(), json!({})).await;
        assert_eq!(values_of(&seen), want, "{schema}: what Java read");
        for m in &seen {
            assert_eq!(m["schema_version"], 0, "{schema}");
        }
    }
    client.close().await.expect("close");
}

/// AUTO_CONSUME on a Java AVRO(Pojo) topic: each message is a generic record of Java's fields.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_consume_java_avro() {
    let client = client();
    let topic = support::unique_topic("schema-auto-consume");
    let sent = [pojo(Some("g ✓"), 11), pojo(None, -4)];
    let messages: Vec<Value> = sent
        .iter()
        .map(|p| json!({"value": pojo_json(p)}))
        .collect();
    java_produce(&topic, "avro", json!(messages), &json!({})).await;
    let mut consumer = subscribe(&client, &topic, "sub", AutoConsumeSchema::new()).await;
    for (i, p) in sent.iter().enumerate() {
        let msg = receive_one(&mut consumer, "AUTO_CONSUME").await;
        assert_eq!(msg.value().to_json(), pojo_json(p), "#{i}");
        let count = msg.value().field("count").and_then(|c| c.as_i64());
        assert_eq!(count, Some(i64::from(p.count)), "#{i}: the count field");
        let name = msg.value().field("name").and_then(|n| n.as_str());
        assert_eq!(name, p.name.as_deref(), "#{i}: the name field");
        assert_eq!(msg.schema_version().and_then(|v| v.as_u64()), Some(0));
        consumer.ack(&msg).await.expect("ack");
    }
    client.close().await.expect("close");
}

/// AUTO_PRODUCE_BYTES on a Java AVRO(Pojo) topic: valid Avro datums are sent and Java reads
/// them; bytes that are not a Pojo datum are refused with a SchemaError, before sending (Java
/// reads only the valid ones, in order).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_produce_bytes_to_java() {
    let client = client();
    let topic = support::unique_topic("schema-auto-produce");
    let first = pojo(Some("j"), 1);
    java_produce(
        &topic,
        "avro",
        json!([{"value": pojo_json(&first)}]),
        &json!({}),
    )
    .await;
    let producer = client
        .producer(&topic)
        .auto_produce_schema()
        .create()
        .await
        .expect("an AUTO_PRODUCE producer");
    let avro = AvroSchema::<Pojo>::with_definition(POJO_SCHEMA).expect("definition");
    let datum = |p: &Pojo| avro.encode(p).expect("encode").payload;
    let good = [pojo(Some("a ✓"), 2), pojo(None, -3)];
    producer.send(&datum(&good[0])).await.expect("send a datum");
    // count 2, then union branch 2 of ["null","string"]: no such branch; then a string branch
    // without its length; then a datum with a trailing byte.
    let mut trailing = datum(&good[1]).to_vec();
    trailing.push(0);
    for bad in [vec![0x04, 0x04], vec![0x04, 0x02], trailing] {
        let bad = bytes::Bytes::from(bad);
        match producer.message(&bad) {
            Err(pulsar_wire::Error::Schema(SchemaError::Encode { .. })) => {}
            other => panic!("{bad:?}: {other:?}"),
        }
        match producer.send(&bad).await {
            Err(pulsar_wire::Error::Schema(SchemaError::Encode { .. })) => {}
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    producer.send(&datum(&good[1])).await.expect("send a datum");
    producer.close().await.expect("close");
    let seen = java_view(&topic, "avro", 3, json!({})).await;
    let want: Vec<Value> = [&first, &good[0], &good[1]]
        .into_iter()
        .map(pojo_json)
        .collect();
    assert_eq!(values_of(&seen), want, "what Java read");
    client.close().await.expect("close");
}

/// The Python (C++) client's AvroSchema of a Pojo registers a definition the broker takes as
/// Java's (the same version), and the Java client reads its records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_avro_is_the_java_schema() {
    let topic = support::unique_topic("schema-py-avro");
    java("produce", json!({"topic": topic, "schema": "avro", "messages": [{"value": {"name": "j", "count": 1}}]})).await;
    let out = python(
        "schema_produce.py",
        json!({"topic": topic, "schema": "avro",
        "messages": [{"value": {"name": "p", "count": 2}}]}),
    )
    .await;
    assert!(out.iter().any(|l| l["event"] == "done"), "{out:?}");
    let seen = java_view(&topic, "avro", 2, json!({})).await;
    let values: Vec<&Value> = seen.iter().map(|m| &m["value"]).collect();
    assert_eq!(
        values,
        [
            &json!({"name": "j", "count": 1}),
            &json!({"name": "p", "count": 2})
        ]
    );
    assert_eq!(
        broker().apache().schemas(&topic).len(),
        1,
        "one version for both clients"
    );
    let back = python(
        "schema_consume.py",
        json!({"topic": topic, "schema": "avro", "count": 2}),
    )
    .await;
    let got: Vec<Value> = back
        .iter()
        .filter(|l| l["event"] == "message")
        .map(|l| l["value"].clone())
        .collect();
    assert_eq!(
        got,
        [
            json!({"count": 1, "name": "j"}),
            json!({"count": 2, "name": "p"})
        ]
    );
}

/// The Python (C++) client's AvroSchema / JsonSchema of Pojo both ways with pulsar-wire's
/// AvroSchema<Pojo> / JsonSchema<Pojo>: pulsar-wire decodes what Python sent, Python decodes
/// what pulsar-wire sent (on a topic of its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_avro_and_json_with_wire() {
    let client = client();
    let sent = [pojo(Some("p ✓"), 3), pojo(None, -8)];
    let messages: Vec<Value> = sent
        .iter()
        .map(|p| json!({"value": pojo_json(p)}))
        .collect();
    let want: Vec<(Pojo, u64)> = sent.iter().cloned().map(|p| (p, 0)).collect();
    let want_json: Vec<Value> = sent.iter().map(pojo_json).collect();
    for schema in ["avro", "json"] {
        let topic = support::unique_topic(&format!("schema-py-{schema}-to-wire"));
        let out = python(
            "schema_produce.py",
            json!({"topic": topic, "schema": schema, "messages": messages}),
        )
        .await;
        assert!(out.iter().any(|l| l["event"] == "done"), "{out:?}");
        if schema == "avro" {
            let s = AvroSchema::<Pojo>::with_definition(POJO_SCHEMA).expect("definition");
            let mut consumer = subscribe(&client, &topic, "sub", s).await;
            assert_values(&mut consumer, &want, "Python AVRO").await;
        } else {
            let s = JsonSchema::<Pojo>::with_definition(POJO_SCHEMA).expect("definition");
            let mut consumer = subscribe(&client, &topic, "sub", s).await;
            assert_values(&mut consumer, &want, "Python JSON").await;
        }

        let topic = support::unique_topic(&format!("schema-wire-{schema}-to-py"));
        if schema == "avro" {
            let s = AvroSchema::<Pojo>::with_definition(POJO_SCHEMA).expect("definition");
            wire_send(&client, &topic, s, &sent).await;
        } else {
            let s = JsonSchema::<Pojo>::with_definition(POJO_SCHEMA).expect("definition");
            wire_send(&client, &topic, s, &sent).await;
        }
        let back = python(
            "schema_consume.py",
            json!({"topic": topic, "schema": schema, "count": sent.len()}),
        )
        .await;
        let got: Vec<&Value> = back.iter().filter(|l| l["event"] == "message").collect();
        for m in &got {
            assert!(
                m.get("value_error").is_none(),
                "Python could not decode: {m}"
            );
            assert_eq!(m["schema_version"], 0, "{schema}");
        }
        let values: Vec<Value> = got.iter().map(|m| m["value"].clone()).collect();
        assert_eq!(values, want_json, "{schema}: what Python read");
    }
    client.close().await.expect("close");
}

/// Compaction through the admin helper finishes with SUCCESS on a topic with a schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_and_compatibility_helpers() {
    let apache = broker().apache();
    let topic = support::unique_topic("schema-compact");
    java(
        "produce",
        json!({"topic": topic, "schema": "string",
        "messages": [{"value": "a", "key": "k"}, {"value": "b", "key": "k"}]}),
    )
    .await;
    apache.compact(&topic);
    let namespace = format!("public/{}", support::unique_name("schema-ns"));
    apache.create_namespace(&namespace);
    apache.set_schema_compatibility(&namespace, "BACKWARD");
    assert_eq!(apache.schema_compatibility(&namespace), json!("BACKWARD"));
    apache.delete_schema(&topic);
    assert!(apache.schema(&topic).is_none(), "the schema is deleted");
}

/// Runs `tests/interop/<script>` with `spec` (plus `url`) on stdin; its JSON lines.
async fn python(script: &str, mut spec: Value) -> Vec<Value> {
    spec["url"] = json!(broker().url());
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let py = root.join(".venv/bin/python");
    assert!(
        py.is_file(),
        "the official Python client is missing ({}): run scripts/setup-broker.sh",
        py.display()
    );
    let mut child = tokio::process::Command::new(py)
        .arg(root.join("tests/interop").join(script))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    let mut stdin = child.stdin.take().expect("stdin");
    tokio::io::AsyncWriteExt::write_all(&mut stdin, spec.to_string().as_bytes())
        .await
        .expect("stdin");
    drop(stdin);
    let out = tokio::time::timeout(support::java::PEER_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{script} did not finish"))
        .expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{script} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}
