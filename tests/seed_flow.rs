//! The official SDK guide's flow against the local broker: produce with properties and a key,
//! send asynchronously with a callback, subscribe, receive, ack, nack and redelivery.

mod support;

use std::time::Duration;

use pulsar_wire::{InitialPosition, ProducerMessage, PulsarClient, SubscriptionType};

fn client() -> PulsarClient {
    PulsarClient::builder(support::broker().url())
        .token("test-token")
        .operation_timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

#[tokio::test]
async fn produce_then_consume_with_properties_and_key() {
    let client = client();
    let topic = support::unique_topic("seed");
    let mut consumer = client
        .consumer(&topic)
        .subscription("sub")
        .subscription_type(SubscriptionType::Shared)
        .initial_position(InitialPosition::Earliest)
        .subscribe()
        .await
        .expect("subscribe");
    let producer = client.producer(&topic).create().await.expect("producer");
    let id = producer
        .send(
            ProducerMessage::new("Hello python client, this is a msg.")
                .property("k", "v")
                .partition_key("yourKey"),
        )
        .await
        .expect("send");
    let (tx, rx) = tokio::sync::oneshot::channel();
    producer
        .send_with_callback("second", move |r| {
            let _ = tx.send(r);
        })
        .await
        .expect("send_async");
    let second = rx.await.expect("callback ran").expect("second receipt");
    assert!(second > id, "{second} after {id}");

    let msg = tokio::time::timeout(Duration::from_secs(10), consumer.receive())
        .await
        .expect("a message within 10 s")
        .expect("receive");
    assert_eq!(
        msg.payload_str(),
        Some("Hello python client, this is a msg.")
    );
    assert_eq!(msg.properties().get("k").map(String::as_str), Some("v"));
    assert_eq!(msg.partition_key(), Some("yourKey"));
    assert_eq!(msg.id(), id);
    consumer.ack(&msg).await.expect("ack");

    let msg2 = tokio::time::timeout(Duration::from_secs(10), consumer.receive())
        .await
        .expect("second message")
        .expect("receive");
    assert_eq!(msg2.payload_str(), Some("second"));
    assert_eq!(msg2.redelivery_count(), 0);
    consumer.nack(&msg2).await.expect("nack");
    producer.close().await.expect("close producer");
    consumer.close().await.expect("close consumer");
}

#[tokio::test]
async fn nacked_messages_come_back_with_a_higher_redelivery_count() {
    let client = client();
    let topic = support::unique_topic("nack");
    let mut consumer = client
        .consumer(&topic)
        .subscription("sub")
        .subscription_type(SubscriptionType::Shared)
        .negative_ack_redelivery_delay(Duration::from_millis(200))
        .subscribe()
        .await
        .expect("subscribe");
    let producer = client.producer(&topic).create().await.expect("producer");
    producer.send("retry me").await.expect("send");
    let first = consumer.receive().await.expect("receive");
    assert_eq!(first.redelivery_count(), 0);
    consumer.nack(&first).await.expect("nack");
    let again = tokio::time::timeout(Duration::from_secs(15), consumer.receive())
        .await
        .expect("redelivered within 15 s")
        .expect("receive");
    assert_eq!(again.payload_str(), Some("retry me"));
    assert_eq!(again.id(), first.id());
    assert_eq!(again.redelivery_count(), 1);
    consumer.ack(&again).await.expect("ack");
}
