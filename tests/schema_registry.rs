//! The schema registry through the typed API, on Apache Pulsar (pulsar-lite has no registry):
//! schema versions on every message, GET_SCHEMA and GET_OR_CREATE_SCHEMA, a producer writing
//! with a second schema, the typed IncompatibleSchema error, and an undecodable message handed
//! back rather than lost. Run `scripts/apache-pulsar.sh install` once; the suite starts its
//! own standalone.

mod support;

use std::time::Duration;

use pulsar_wire::schema::{BytesSchema, SchemaType, StringSchema};
use pulsar_wire::{Error, InitialPosition, PulsarClient, SchemaCheck, SchemaInfo, ServerErrorCode};

fn client() -> PulsarClient {
    PulsarClient::builder(support::apache().url())
        .operation_timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

const JSON_DEF: &str = r#"{"type":"record","name":"Pojo","namespace":"pulsarwire","fields":[{"name":"count","type":"int"},{"name":"name","type":["null","string"],"default":null}]}"#;

#[tokio::test]
async fn typed_strings_carry_the_registrys_version_and_get_schema_finds_it() {
    let client = client();
    let topic = support::unique_topic("registry-string");
    let mut consumer = client
        .consumer(&topic)
        .subscription("sub")
        .initial_position(InitialPosition::Earliest)
        .schema(StringSchema)
        .subscribe()
        .await
        .expect("subscribe");
    let producer = client
        .producer(&topic)
        .schema(StringSchema)
        .create()
        .await
        .expect("producer");
    for text in ["één", "two"] {
        producer.send(&text.to_owned()).await.expect("send");
    }
    let registered = client
        .get_schema(&topic, None)
        .await
        .expect("get schema")
        .expect("the topic has the string schema");
    assert_eq!(registered.info.kind, SchemaType::String);
    let mut got = Vec::new();
    for _ in 0..2 {
        let msg = consumer.receive().await.expect("receive");
        assert_eq!(
            msg.schema_version(),
            Some(&registered.version),
            "every message carries the version the registry gave the producer's schema"
        );
        consumer.ack(&msg).await.expect("ack");
        got.push(msg.into_value());
    }
    assert_eq!(got, vec!["één".to_owned(), "two".to_owned()]);
    // By version, the same schema.
    let by_version = client
        .get_schema(&topic, Some(&registered.version))
        .await
        .expect("get schema by version")
        .expect("that version exists");
    assert_eq!(by_version, registered);
}

#[tokio::test]
async fn a_topic_without_a_schema_has_none_and_its_messages_no_version() {
    let client = client();
    let topic = support::unique_topic("registry-none");
    let mut consumer = client
        .consumer(&topic)
        .subscription("sub")
        .schema(BytesSchema)
        .subscribe()
        .await
        .expect("subscribe");
    let producer = client.producer(&topic).create().await.expect("producer");
    producer.send("raw").await.expect("send");
    let msg = consumer.receive().await.expect("receive");
    assert_eq!(&msg.value()[..], b"raw");
    assert_eq!(msg.schema_version(), None);
    assert_eq!(client.get_schema(&topic, None).await.expect("get"), None);
}

#[tokio::test]
async fn a_second_schema_gets_its_own_version_and_its_messages_carry_it() {
    let client = client();
    let topic = support::unique_topic("registry-multi");
    let mut consumer = client
        .consumer(&topic)
        .subscription("sub")
        .initial_position(InitialPosition::Earliest)
        .subscribe()
        .await
        .expect("subscribe");
    let producer = client
        .producer(&topic)
        .schema(JsonText(JSON_DEF.into()))
        .create()
        .await
        .expect("producer");
    producer
        .send(&r#"{"count":1,"name":"a"}"#.to_owned())
        .await
        .expect("send");
    let first = client
        .get_schema(&topic, None)
        .await
        .expect("get")
        .expect("the JSON schema");
    assert_eq!(first.info.kind, SchemaType::Json);
    // Registering a schema of another type is refused by the type check.
    match client
        .get_or_create_schema(&topic, &SchemaInfo::string())
        .await
    {
        Err(Error::IncompatibleSchema {
            schema,
            check,
            error,
            ..
        }) => {
            assert_eq!(schema, SchemaType::String);
            assert_eq!(error.code, ServerErrorCode::IncompatibleSchema);
            assert_eq!(check, SchemaCheck::Type, "broker said: {}", error.message);
        }
        other => panic!("a STRING schema on a JSON topic: {other:?}"),
    }
    // The record with a new optional field: a compatible evolution, a new version.
    let msg = producer
        .message_with_schema(
            &JsonText(JSON_DEF_V2.into()),
            &r#"{"count":2,"name":"b","note":"n"}"#.to_owned(),
        )
        .await
        .expect("registered");
    let second_version = msg.schema_version.clone().expect("a version");
    assert_ne!(second_version, first.version);
    producer.send_message(msg).await.expect("send");
    // Registering it again gives the same version.
    let again = client
        .get_or_create_schema(&topic, &SchemaInfo::json(JSON_DEF_V2))
        .await
        .expect("known");
    assert_eq!(again, second_version);
    let a = consumer.receive().await.expect("first");
    let b = consumer.receive().await.expect("second");
    assert_eq!(a.schema_version(), Some(&first.version));
    assert_eq!(b.schema_version(), Some(&second_version));
    assert!(b.payload_str().is_some_and(|t| t.contains("\"note\"")));
    let registered = client
        .get_schema(&topic, Some(&second_version))
        .await
        .expect("get")
        .expect("the second version");
    assert_eq!(registered.info.definition_str(), Some(JSON_DEF_V2));
    // An incompatible change (a field changes type) is refused by the Avro check.
    match producer
        .message_with_schema(&JsonText(JSON_DEF_INCOMPATIBLE.into()), &"{}".to_owned())
        .await
    {
        Err(Error::IncompatibleSchema { check, error, .. }) => {
            assert_eq!(check, SchemaCheck::Avro, "broker said: {}", error.message);
        }
        other => panic!("an incompatible JSON schema: {other:?}"),
    }
}

const JSON_DEF_V2: &str = r#"{"type":"record","name":"Pojo","namespace":"pulsarwire","fields":[{"name":"count","type":"int"},{"name":"name","type":["null","string"],"default":null},{"name":"note","type":["null","string"],"default":null}]}"#;
const JSON_DEF_INCOMPATIBLE: &str = r#"{"type":"record","name":"Pojo","namespace":"pulsarwire","fields":[{"name":"count","type":"string"},{"name":"name","type":["null","string"],"default":null}]}"#;

/// JSON text declared with a record definition (the codecs' JsonSchema does this for serde
/// types; this keeps the registry test independent of them).
struct JsonText(String);

impl pulsar_wire::Schema for JsonText {
    type Value = String;

    fn info(&self) -> SchemaInfo {
        SchemaInfo::json(self.0.as_str())
    }

    fn encode(
        &self,
        value: &String,
    ) -> Result<pulsar_wire::schema::Encoded, pulsar_wire::schema::SchemaError> {
        StringSchema.encode(value)
    }

    fn decode(
        &self,
        input: &pulsar_wire::schema::Decoding<'_>,
    ) -> Result<String, pulsar_wire::schema::SchemaError> {
        StringSchema.decode(input)
    }
}

#[tokio::test]
async fn a_producer_of_another_type_is_refused_with_the_typed_error() {
    let client = client();
    let topic = support::unique_topic("registry-refused");
    let producer = client
        .producer(&topic)
        .schema(StringSchema)
        .create()
        .await
        .expect("producer");
    producer.send(&"x".to_owned()).await.expect("send");
    let refused = client
        .producer(&topic)
        .schema_info(SchemaInfo::json(JSON_DEF))
        .create()
        .await;
    match refused {
        Err(e @ Error::IncompatibleSchema { .. }) => {
            let Error::IncompatibleSchema {
                ref topic,
                ref check,
                ..
            } = e
            else {
                unreachable!()
            };
            assert!(topic.ends_with("registry-refused") || topic.contains("registry-refused"));
            assert_eq!(*check, SchemaCheck::Type, "{e}");
            let text = e.to_string();
            assert!(text.contains("another type"), "{text}");
            assert_eq!(
                e.server_error().map(|s| s.code),
                Some(ServerErrorCode::IncompatibleSchema)
            );
        }
        other => panic!("a JSON producer on a STRING topic: {other:?}"),
    }
}

#[tokio::test]
async fn an_undecodable_message_is_handed_back_and_can_be_acknowledged() {
    let client = client();
    let topic = support::unique_topic("registry-undecodable");
    let mut consumer = client
        .consumer(&topic)
        .subscription("sub")
        .initial_position(InitialPosition::Earliest)
        .schema(StringSchema)
        .subscribe()
        .await
        .expect("subscribe");
    // A producer without a schema may write to the topic (schema validation is not enforced
    // by default): its bytes are not UTF-8.
    let raw = client.producer(&topic).create().await.expect("producer");
    raw.send(vec![0xff, 0xfe]).await.expect("send");
    raw.send("fine").await.expect("send");
    let err = consumer.receive().await.expect_err("not UTF-8");
    let undecoded = err
        .undecoded_message()
        .expect("the message comes back")
        .clone();
    assert_eq!(&undecoded.payload()[..], &[0xff, 0xfe]);
    assert!(err.to_string().contains("not acknowledged"), "{err}");
    consumer
        .ack(&undecoded)
        .await
        .expect("ack the undecodable one");
    let next = consumer.receive().await.expect("the next one");
    assert_eq!(next.value(), "fine");
}

// --- the command line -------------------------------------------------------------------------

const BIN: &str = env!("CARGO_BIN_EXE_pulsar-wire");

fn cli(args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(args).args(["--url", support::apache().url()]);
    support::cli::run_command(cmd, Duration::from_secs(120))
}

/// `produce --schema avro --value-json` writes Avro records of the definition; `consume
/// --json` prints each decoded value and its schema version; a producer of another schema is
/// refused with one error line naming the schema problem.
#[tokio::test]
async fn the_cli_produces_and_consumes_avro_values_and_names_a_refused_schema() {
    let topic = support::unique_topic("cli-avro");
    let produced = cli(&[
        "produce",
        "--topic",
        &topic,
        "--schema",
        "avro",
        "--schema-definition",
        JSON_DEF,
        "--value-json",
        r#"{"count": {i}, "name": "n{i}"}"#,
        "-n",
        "3",
    ]);
    assert!(
        produced.status.success(),
        "{}",
        support::cli::text(&produced.stderr)
    );
    let registered = client()
        .get_schema(&topic, None)
        .await
        .expect("get")
        .expect("the Avro schema");
    assert_eq!(registered.info.kind, SchemaType::Avro);
    let consumed = cli(&[
        "consume",
        "--topic",
        &topic,
        "-s",
        "check",
        "--initial",
        "earliest",
        "-n",
        "3",
        "--json",
    ]);
    assert!(
        consumed.status.success(),
        "{}",
        support::cli::text(&consumed.stderr)
    );
    let lines: Vec<serde_json::Value> = support::cli::text(&consumed.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 3);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(
            line["value"],
            serde_json::json!({"count": i, "name": format!("n{i}")}),
            "{line}"
        );
        assert_eq!(
            line["schema_version"].as_u64(),
            registered.version.as_u64(),
            "{line}"
        );
    }
    let refused = cli(&[
        "produce", "--topic", &topic, "--schema", "string", "-m", "text",
    ]);
    let error = support::cli::failed(&refused);
    assert!(
        error.contains("incompatible") && error.contains("another type"),
        "{error}"
    );
}

/// A namespace that does not let producers register schemas refuses a new one with the
/// AutoUpdateDisabled check; after the schema is registered (here: while it was allowed), a
/// producer of that same schema is accepted.
#[tokio::test]
async fn a_namespace_without_auto_update_refuses_a_new_schema_with_that_check() {
    let apache = support::apache().apache();
    let namespace = format!("public/{}", support::unique_name("no-auto-update"));
    apache.create_namespace(&namespace);
    let topic = format!("persistent://{namespace}/t");
    let client = client();
    let v1 = client
        .producer(&topic)
        .schema(JsonText(JSON_DEF.into()))
        .create()
        .await
        .expect("the first schema, while auto update is allowed");
    v1.close().await.expect("close");
    let (status, body) = apache.admin(
        "POST",
        &format!("/admin/v2/namespaces/{namespace}/isAllowAutoUpdateSchema"),
        Some("false"),
    );
    assert!((200..300).contains(&status), "HTTP {status}: {body}");
    // The broker learns the namespace's new policy through a metadata notification, a moment
    // after the admin call returns: until then a new schema is still registered. Each attempt
    // offers a schema the topic does not have yet (one more optional field), until one is
    // refused; the bound is generous, and reaching it fails with what the broker did.
    let mut answers = Vec::new();
    for attempt in 0..100 {
        let evolved = JSON_DEF.replace(
            r#""default":null}]}"#,
            &format!(
                r#""default":null}},{{"name":"extra{attempt}","type":["null","string"],"default":null}}]}}"#
            ),
        );
        match client
            .producer(&topic)
            .schema(JsonText(evolved))
            .create()
            .await
        {
            Err(Error::IncompatibleSchema { check, error, .. }) => {
                assert_eq!(
                    check,
                    SchemaCheck::AutoUpdateDisabled,
                    "broker said: {}",
                    error.message
                );
                answers.clear();
                break;
            }
            Ok(p) => {
                answers.push(format!("attempt {attempt}: registered"));
                p.close().await.expect("close");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(other) => panic!("a new schema with auto update off: {other:?}"),
        }
    }
    assert!(
        answers.is_empty(),
        "the broker never applied isAllowAutoUpdateSchema=false: {answers:?}"
    );
    client
        .producer(&topic)
        .schema(JsonText(JSON_DEF.into()))
        .create()
        .await
        .expect("the registered schema is still accepted");
}
