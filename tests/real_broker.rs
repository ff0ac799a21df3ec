//! The real-broker suite: behaviour that pulsar-lite cannot show (deduplication, delayed
//! delivery, exclusive producers, the schema registry, batch-index acknowledgements), checked
//! against Apache Pulsar. It always runs on an Apache Pulsar standalone of its own, started by
//! `scripts/apache-pulsar.sh` with deduplication and batch-index acknowledgements enabled (run
//! `scripts/apache-pulsar.sh install` once):
//!
//! ```text
//! cargo test --features real-broker --test real_broker
//! ```
//!
//! Each case is also covered on the wire by the scripted peer (tests/protocol_peer.rs) in the
//! default suite.
#![cfg(feature = "real-broker")]

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use pulsar_wire::{
    AccessMode, Error, InitialPosition, MessageId, ProducerMessage, PulsarClient, SchemaCheck,
    SchemaInfo, SchemaType, ServerErrorCode, SubscriptionType,
};

/// The Apache Pulsar of this suite (Apache-specific: pulsar-lite has none of these features).
fn broker() -> &'static support::Broker {
    support::apache_with(
        &support::ApacheOptions::plain()
            .config("brokerDeduplicationEnabled", "true")
            .config("acknowledgmentAtBatchIndexLevelEnabled", "true"),
    )
}

fn client() -> PulsarClient {
    PulsarClient::builder(broker().url())
        .operation_timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// pulsar-lite acknowledges the whole entry on a partial batch-index ack (the official client
/// sees the same), so this needs a real broker with `acknowledgmentAtBatchIndexLevelEnabled`.
#[tokio::test]
async fn batch_index_acks_leave_only_the_unacked_half_of_each_batch() {
    let client = client();
    let topic = support::unique_topic("ack-index");
    let producer = client
        .producer(&topic)
        .batching_max_messages(10)
        .batching_max_publish_delay(Duration::from_millis(200))
        .create()
        .await
        .expect("producer");
    let mut receipts = Vec::new();
    for i in 0..40 {
        receipts.push(producer.send_async(format!("m{i}")).await.expect("enqueue"));
    }
    for r in receipts {
        r.await.expect("receipt");
    }
    let subscribe = || {
        client
            .consumer(&topic)
            .subscription("s")
            .subscription_type(SubscriptionType::Shared)
            .initial_position(InitialPosition::Earliest)
            .batch_index_ack(true)
            .subscribe()
    };
    let mut c = subscribe().await.expect("subscribe");
    let mut expected_back = BTreeSet::new();
    while let Some(m) = c
        .receive_timeout(Duration::from_secs(2))
        .await
        .expect("receive")
    {
        if m.id().batch_index % 2 == 0 {
            c.ack(&m).await.expect("ack");
        } else {
            expected_back.insert(m.id());
        }
    }
    c.close().await.expect("close");
    let mut again = subscribe().await.expect("subscribe");
    let mut back: BTreeSet<MessageId> = BTreeSet::new();
    while let Some(m) = again
        .receive_timeout(Duration::from_secs(3))
        .await
        .expect("receive")
    {
        back.insert(m.id());
    }
    assert_eq!(back, expected_back);
}

/// Broker deduplication drops a resend of a sequence id it has stored: its receipt names no
/// entry (−1, −1), and the topic holds the message once.
#[tokio::test]
async fn deduplication_drops_a_repeated_sequence_id() {
    let client = client();
    let topic = support::unique_topic("dedup");
    let producer = client
        .producer(&topic)
        .name(support::unique_name("dedup-producer"))
        .batching(false)
        .create()
        .await
        .expect("producer");
    let first = producer
        .send(ProducerMessage::new("once").sequence_id(5))
        .await
        .expect("send");
    assert!(first.entry_id >= 0);
    let again = producer
        .send(ProducerMessage::new("once").sequence_id(5))
        .await
        .expect("send");
    assert_eq!(
        (again.ledger_id, again.entry_id),
        (-1, -1),
        "dropped as a duplicate"
    );
}

/// Delayed delivery: a message sent with `deliver_after` is not delivered before its time on a
/// Shared subscription.
#[tokio::test]
async fn delayed_messages_wait_for_their_time() {
    let client = client();
    let topic = support::unique_topic("delayed");
    let mut consumer = client
        .consumer(&topic)
        .subscription("s")
        .subscription_type(SubscriptionType::Shared)
        .subscribe()
        .await
        .expect("subscribe");
    let producer = client.producer(&topic).create().await.expect("producer");
    producer
        .send(ProducerMessage::new("later").deliver_after(Duration::from_secs(3)))
        .await
        .expect("send");
    let early = consumer
        .receive_timeout(Duration::from_millis(1500))
        .await
        .expect("receive");
    assert!(early.is_none(), "delivered before its time");
    let m = consumer
        .receive_timeout(Duration::from_secs(30))
        .await
        .expect("receive")
        .expect("delivered after its time");
    assert_eq!(m.payload_str(), Some("later"));
}

/// An Exclusive producer keeps others out.
#[tokio::test]
async fn an_exclusive_producer_refuses_a_second_one() {
    let client = client();
    let topic = support::unique_topic("exclusive");
    let _first = client
        .producer(&topic)
        .access_mode(AccessMode::Exclusive)
        .create()
        .await
        .expect("producer");
    let err = client
        .producer(&topic)
        .access_mode(AccessMode::Exclusive)
        .create()
        .await
        .expect_err("a second exclusive producer");
    assert!(err.server_error().is_some(), "{err:?}");
}

/// The schema registry refuses an incompatible schema.
#[tokio::test]
async fn an_incompatible_schema_is_refused() {
    let client = client();
    let topic = support::unique_topic("schema");
    let _avro = client
        .producer(&topic)
        .schema_info(SchemaInfo::avro(
            r#"{"type":"record","name":"A","fields":[{"name":"x","type":"int"}]}"#,
        ))
        .create()
        .await
        .expect("producer");
    let err = client
        .producer(&topic)
        .schema_info(SchemaInfo::string())
        .create()
        .await
        .expect_err("incompatible");
    match err {
        Error::IncompatibleSchema {
            error,
            check,
            schema,
            ..
        } => {
            assert_eq!(error.code, ServerErrorCode::IncompatibleSchema);
            assert_eq!(check, SchemaCheck::Type, "{}", error.message);
            assert_eq!(schema, SchemaType::String);
        }
        other => panic!("{other:?}"),
    }
}

/// Runs `tests/interop/produce.py` (the official Python client) with batching on: `n` messages
/// `m0..`, in batches of up to 10.
async fn official_produce_batched(url: &str, topic: &str, n: usize) {
    let python = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        python.is_file(),
        "the official Python client is missing: run scripts/setup-broker.sh"
    );
    let b64 = |s: &str| {
        const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let b = s.as_bytes();
        let mut out = String::new();
        for chunk in b.chunks(3) {
            let n = (u32::from(chunk[0]) << 16)
                | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
                | u32::from(*chunk.get(2).unwrap_or(&0));
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    };
    let messages: Vec<String> = (0..n)
        .map(|i| format!("{{\"data_b64\":\"{}\"}}", b64(&format!("m{i}"))))
        .collect();
    let script =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/produce.py");
    let out = tokio::process::Command::new(python)
        .arg(script)
        .args(["--url", url, "--topic", topic, "--batching"])
        .args(["--batch-max-messages", "10", "--batch-delay-ms", "100"])
        .arg("--messages")
        .arg(format!("[{}]", messages.join(",")))
        .output()
        .await
        .expect("run produce.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Interop: the official client produces batches, pulsar-wire acknowledges half of each batch
/// by index, and after resubscribing only the other half comes back.
#[tokio::test]
async fn official_batches_acked_by_half_return_only_the_other_half() {
    let client = client();
    let url = broker().url().to_string();
    let topic = support::unique_topic("interop-ack-index");
    official_produce_batched(&url, &topic, 40).await;
    let subscribe = || {
        client
            .consumer(&topic)
            .subscription("s")
            .subscription_type(SubscriptionType::Shared)
            .initial_position(InitialPosition::Earliest)
            .batch_index_ack(true)
            .subscribe()
    };
    let mut c = subscribe().await.expect("subscribe");
    let mut expected_back = BTreeSet::new();
    let mut seen = 0;
    while let Some(m) = c
        .receive_timeout(Duration::from_secs(3))
        .await
        .expect("receive")
    {
        seen += 1;
        assert!(
            m.id().is_batch(),
            "the official client batched: {:?}",
            m.id()
        );
        if m.id().batch_index % 2 == 0 {
            c.ack(&m).await.expect("ack");
        } else {
            expected_back.insert(m.payload_str().unwrap_or_default().to_owned());
        }
    }
    assert_eq!(seen, 40);
    c.close().await.expect("close");
    let mut again = subscribe().await.expect("subscribe");
    let mut back = BTreeSet::new();
    while let Some(m) = again
        .receive_timeout(Duration::from_secs(3))
        .await
        .expect("receive")
    {
        back.insert(m.payload_str().unwrap_or_default().to_owned());
    }
    assert_eq!(back, expected_back);
}
