//! Typed messages: a producer and a consumer of Avro records, as the Java client's
//! `Schema.AVRO(User.class)`, and what the registry holds.
//!
//! The record's Avro definition is the one the Java client derives for a class `demo.User`
//! with a nullable `String name` and an `int age`, so Java producers and consumers share the
//! topic with this program.
//!
//! ```text
//! scripts/apache-pulsar.sh start DIR     # prints PULSAR_URL=... (pulsar-lite has no registry)
//! PULSAR_URL=pulsar://127.0.0.1:PORT cargo run --features avro --example schema
//! ```
//!
//! Environment: `PULSAR_URL` (default `pulsar://localhost:6650`), `PULSAR_TOPIC` (default
//! `users` in public/default).

use std::process::ExitCode;

use pulsar_wire::schema::AvroSchema;
use pulsar_wire::{InitialPosition, PulsarClient};

/// The record, as the Java client's `demo.User { String name; int age; }`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct User {
    name: Option<String>,
    age: i32,
}

/// The Avro definition the Java client registers for `demo.User`.
const USER: &str = r#"{"type":"record","name":"User","namespace":"demo","fields":[{"name":"age","type":"int"},{"name":"name","type":["null","string"],"default":null}]}"#;

fn env(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let client = PulsarClient::new(env("PULSAR_URL", "pulsar://localhost:6650"))?;
    let topic = env("PULSAR_TOPIC", "persistent://public/default/users");
    let mut consumer = client
        .consumer(&topic)
        .subscription("schema-example")
        .initial_position(InitialPosition::Earliest)
        .schema(AvroSchema::<User>::with_definition(USER)?)
        .subscribe()
        .await?;
    let producer = client
        .producer(&topic)
        .schema(AvroSchema::<User>::with_definition(USER)?)
        .create()
        .await?;
    let alice = User {
        name: Some("alice".into()),
        age: 42,
    };
    let id = producer.send(&alice).await?;
    println!("sent {alice:?} as {id}");
    // With properties and a key: the encoded message, decorated, then sent.
    let bob = User { name: None, age: 7 };
    let msg = producer
        .message(&bob)?
        .property("source", "example")
        .partition_key("bob");
    producer.send_message(msg).await?;

    for _ in 0..2 {
        let msg = consumer.receive().await?;
        println!(
            "received {:?} (schema version {})",
            msg.value(),
            msg.schema_version()
                .map(|v| v.to_string())
                .unwrap_or_default()
        );
        consumer.ack(&msg).await?;
    }
    if let Some(registered) = client.get_schema(&topic, None).await? {
        println!(
            "the registry holds version {}: {}",
            registered.version,
            registered.info.definition_str().unwrap_or("")
        );
    }
    client.close().await?;
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("schema example failed: {e}");
            ExitCode::FAILURE
        }
    }
}
