//! Receiver queue sizing against the broker: an auto-scaled queue starts at one message and
//! grows as the application waits, a bound over all partitions splits between them, and in
//! both every message comes through exactly once. (The permit arithmetic is tested in
//! `src/protocol/flow.rs`.) Shared subscriptions: pulsar-lite's Exclusive dispatch sometimes
//! sends an entry twice under small permit grants (Apache Pulsar does not).

mod support;

use support::{client, receive};

use std::collections::BTreeSet;
use std::time::Duration;

use pulsar_wire::{InitialPosition, ProducerMessage, SubscriptionType};

const N: usize = 100;

/// Lets the broker push what the permits allow.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auto_scaled_queue_starts_at_one_message_and_grows_as_the_application_waits() {
    let client = client(support::broker().url());
    let topic = support::unique_topic("auto-scaled-queue");
    let producer = client
        .producer(&topic)
        .batching(false)
        .create()
        .await
        .expect("producer");
    for i in 0..N {
        producer.send(format!("m{i}")).await.expect("send");
    }
    let mut consumer = client
        .consumer(&topic)
        .subscription("s")
        .subscription_type(SubscriptionType::Shared)
        .initial_position(InitialPosition::Earliest)
        .receiver_queue_size(64)
        .auto_scaled_receiver_queue_size(true)
        .subscribe()
        .await
        .expect("consumer");
    settle().await;
    assert!(
        consumer.queued_messages() <= 1,
        "one permit at first: {} queued",
        consumer.queued_messages()
    );
    let first = receive(&mut consumer).await;
    assert_eq!(first.payload_str(), Some("m0"));
    settle().await;
    // The receive found nothing queued: the queue doubled to 2.
    assert!(
        consumer.queued_messages() <= 2,
        "{} queued",
        consumer.queued_messages()
    );
    consumer.ack(&first).await.expect("ack");
    let mut got = BTreeSet::from(["m0".to_owned()]);
    for _ in 1..N {
        let m = receive(&mut consumer).await;
        assert!(
            got.insert(m.payload_str().unwrap_or_default().to_owned()),
            "twice: {m:?}"
        );
        consumer.ack(&m).await.expect("ack");
    }
    assert_eq!(got, (0..N).map(|i| format!("m{i}")).collect());
    let more = consumer
        .receive_timeout(Duration::from_millis(300))
        .await
        .expect("receive");
    assert!(more.is_none(), "nothing more: {more:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_total_queue_bound_is_split_between_the_partitions() {
    const PARTITIONS: u32 = 4;
    let broker = support::Broker::partitioned(PARTITIONS);
    let client = client(broker.url());
    let topic = broker.partitioned_topic("total-queue", PARTITIONS);
    let producer = client
        .producer(&topic)
        .batching(false)
        .create()
        .await
        .expect("producer");
    for i in 0..N {
        producer
            .send(ProducerMessage::new(format!("m{i}")).partition_key(format!("k{i}")))
            .await
            .expect("send");
    }
    // 8 over 4 partitions: 2 each, whatever the receiver queue size.
    let mut consumer = client
        .consumer(&topic)
        .subscription("s")
        .subscription_type(SubscriptionType::Shared)
        .initial_position(InitialPosition::Earliest)
        .receiver_queue_size(100)
        .max_total_receiver_queue_size_across_partitions(8)
        .subscribe()
        .await
        .expect("consumer");
    settle().await;
    assert!(
        consumer.queued_messages() <= 8,
        "{} queued",
        consumer.queued_messages()
    );
    let mut got = BTreeSet::new();
    for _ in 0..N {
        let m = receive(&mut consumer).await;
        assert!(
            got.insert(m.payload_str().unwrap_or_default().to_owned()),
            "twice: {m:?}"
        );
        consumer.ack(&m).await.expect("ack");
    }
    assert_eq!(got.len(), N);
}
