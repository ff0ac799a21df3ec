//! Typed-schema interoperability with the official clients on Apache Pulsar: the Java client
//! (`pulsarwire.JavaPeer`, tests/support/java.rs; its schemas and their JSON values are listed
//! in Schemas.java) and the C++ client's Python schemas (tests/interop/schema_produce.py,
//! schema_consume.py).
//!
//! Until the typed API lands these tests declare a [`SchemaInfo`] and compare raw payloads with
//! what the peer reports (`payload_hex`), and read the registry through the admin API
//! ([`support::apache::Apache::schema`]). `TYPED:` comments mark where the typed API will
//! replace raw comparisons: `client.producer(topic).schema(AvroSchema::<Pojo>::with_definition(..))`
//! giving a `TypedProducer`, and `client.consumer(topic).subscription(..).schema(S).subscribe()`
//! giving a `TypedConsumer` whose `receive()` gives a `TypedMessage` with `value()` and
//! `schema_version()`.
//!
//! Needs `scripts/apache-pulsar.sh install` (and `scripts/setup-broker.sh` for the Python
//! peer); starts its own standalone through tests/support.

mod support;

use std::time::Duration;

use pulsar_wire::{Consumer, InitialPosition, Message, PulsarClient, SchemaInfo, SubscriptionType};
use serde_json::{json, Value};
use support::java::{done, events, hex, text};

/// Liveness guard around each receive of a message that must come.
const RECEIVE_GUARD: Duration = Duration::from_secs(30);

/// The Avro schema the Java client derives for `pulsarwire.Pojo`.
const POJO_SCHEMA: &str = r#"{"type":"record","name":"Pojo","namespace":"pulsarwire","fields":[{"name":"count","type":"int"},{"name":"name","type":["null","string"],"default":null}]}"#;

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

async fn subscribe(client: &PulsarClient, topic: &str, schema: SchemaInfo) -> Consumer {
    // TYPED: client.consumer(topic).subscription("sub").schema(S).subscribe() -> TypedConsumer.
    client
        .consumer(topic)
        .subscription("sub")
        .subscription_type(SubscriptionType::Shared)
        .initial_position(InitialPosition::Earliest)
        .schema_info(schema)
        .subscribe()
        .await
        .expect("subscribe")
}

async fn receive_one(consumer: &mut Consumer, what: &str) -> Message {
    tokio::time::timeout(RECEIVE_GUARD, consumer.receive())
        .await
        .unwrap_or_else(|_| panic!("{what}: no message within {RECEIVE_GUARD:?}"))
        .unwrap_or_else(|e| panic!("{what}: receive failed: {e}"))
}

/// Every message Java sent arrives with the payload Java's consumer would see.
async fn assert_payloads(consumer: &mut Consumer, sent: &[Value], what: &str) {
    for (i, want) in sent.iter().enumerate() {
        let msg = receive_one(consumer, what).await;
        // TYPED: assert_eq!(msg.value(), expected) and msg.schema_version().
        assert_eq!(
            hex::encode(msg.payload()),
            text(want, "payload_hex"),
            "{what} #{i}"
        );
        consumer.ack(&msg).await.expect("ack");
    }
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

/// A Java AVRO(Pojo) producer; pulsar-wire reads Java's bytes; the registry holds Java's
/// definition; a v2 (an added nullable field) producer is accepted and gets version 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_avro_evolution_to_wire() {
    let client = client();
    let topic = support::unique_topic("schema-java-avro");
    let mut consumer = subscribe(&client, &topic, SchemaInfo::avro(POJO_SCHEMA)).await;
    let v1 =
        json!([{"value": {"name": "a ✓", "count": 1}}, {"value": {"name": null, "count": -2}}]);
    let lines = java(
        "produce",
        json!({"topic": topic, "schema": "avro", "messages": v1}),
    )
    .await;
    let declared: Value =
        serde_json::from_str(text(done(&lines), "schema_definition")).expect("json");
    let v2 = json!([{"value": {"name": "b", "count": 3, "note": "new"}}]);
    java(
        "produce",
        json!({"topic": topic, "schema": "avro_v2", "messages": v2}),
    )
    .await;
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
    assert_payloads(&mut consumer, &seen, "Avro v1 and v2").await;
    let apache = broker().apache();
    let registered = apache.schema(&topic).expect("a schema in the registry");
    assert_eq!(registered["type"], "AVRO");
    assert_eq!(registered["version"], 1);
    let first = apache.schema_at(&topic, Some(0)).expect("version 0");
    let data: Value = serde_json::from_str(first["data"].as_str().expect("data")).expect("json");
    assert_eq!(data, declared, "the registry holds the Java definition");
    client.close().await.expect("close");
}

/// Java JSON, PROTOBUF, PROTOBUF_NATIVE and KeyValue producers: pulsar-wire, subscribed with the
/// schema the registry holds, reads the payloads Java's own consumer reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_schemas_to_wire_payloads() {
    let client = client();
    let field = json!({"name": "count", "number": 7, "kind": "TYPE_INT32",
        "cardinality": "CARDINALITY_REPEATED", "packed": true, "json_name": "cnt"});
    let pojo = json!({"name": "x", "count": 5});
    let cases = [
        ("json", json!([{"value": pojo}]), json!({})),
        ("protobuf", json!([{"value": field}]), json!({})),
        ("protobuf_native", json!([{"value": field}]), json!({})),
        (
            "keyvalue_inline",
            json!([{"value": {"key": "k", "value": pojo}}]),
            json!({}),
        ),
        (
            "keyvalue_separated",
            json!([{"value": {"key": 42, "value": pojo}}]),
            json!({"key_schema": "int32"}),
        ),
    ];
    for (schema, messages, extra) in cases {
        let topic = support::unique_topic(&format!("schema-java-{}", schema.replace('_', "-")));
        let mut spec = json!({"topic": topic, "schema": schema, "messages": messages});
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            spec[k] = v;
        }
        let lines = java("produce", spec).await;
        let registered = broker()
            .apache()
            .schema(&topic)
            .expect("a schema in the registry");
        assert_eq!(
            registered["type"].as_str(),
            Some(text(done(&lines), "schema_type")),
            "{schema}"
        );
        let seen = java_view(&topic, schema, 1, extra.clone()).await;
        assert_eq!(seen[0]["schema_version"], 0, "{schema}");
        if schema != "keyvalue_inline" && schema != "keyvalue_separated" {
            // TYPED: the KeyValue schema (KeyValueSchema<K, V>) subscribes to KeyValue topics;
            // a SchemaInfo of KEY_VALUE is its binary key/value definition.
            let definition = text(done(&lines), "schema_definition");
            let info = match schema {
                "json" => SchemaInfo::json(definition),
                // TYPED: ProtobufSchema / ProtobufNativeSchema of prost_types::Field.
                _ => SchemaInfo::bytes(),
            };
            if schema == "json" {
                let mut consumer = subscribe(&client, &topic, info).await;
                assert_payloads(&mut consumer, &seen, schema).await;
            }
        }
        assert!(
            seen[0]["value"].is_object(),
            "{schema}: Java decoded {}",
            seen[0]
        );
    }
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
