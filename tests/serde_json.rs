//! JSON payloads from and to Rust types (feature `serde`; scripts/test.sh runs it).
#![cfg(feature = "serde")]

mod support;

use std::time::Duration;

use pulsar_wire::{InitialPosition, ProducerMessage, PulsarClient, SchemaInfo, SubscriptionType};

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Order {
    id: u32,
    item: String,
}

#[tokio::test]
async fn json_messages_round_trip_as_rust_types() {
    let client = PulsarClient::new(support::broker().url()).expect("client");
    let topic = support::unique_topic("json");
    let mut consumer = client
        .consumer(&topic)
        .subscription("s")
        .subscription_type(SubscriptionType::Shared)
        .initial_position(InitialPosition::Earliest)
        .subscribe()
        .await
        .expect("subscribe");
    let producer = client
        .producer(&topic)
        .schema_info(SchemaInfo::json(
            r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"int"},{"name":"item","type":"string"}]}"#,
        ))
        .create()
        .await
        .expect("producer");
    let order = Order {
        id: 7,
        item: "tea".into(),
    };
    producer
        .send(ProducerMessage::json(&order).expect("serializes"))
        .await
        .expect("send");
    let m = tokio::time::timeout(Duration::from_secs(10), consumer.receive())
        .await
        .expect("a message")
        .expect("receive");
    assert_eq!(m.payload_str(), Some(r#"{"id":7,"item":"tea"}"#));
    assert_eq!(m.json::<Order>().expect("deserializes"), order);
    assert!(m.json::<Vec<u8>>().is_err(), "a type mismatch is an error");
}
