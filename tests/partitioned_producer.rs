//! A producer on a partitioned topic against the broker: lazily started partitions (only the
//! partitions messages go to have a producer, and nothing is lost), and the bound of pending
//! messages across partitions.

mod support;

use support::client;

use std::collections::BTreeSet;
use std::time::Duration;

use pulsar_wire::{
    partition_for_key, Error, HashingScheme, InitialPosition, ProducerMessage, SubscriptionType,
};

const PARTITIONS: u32 = 4;

/// A key that goes to partition `p`.
fn key_for(p: u32) -> String {
    (0..)
        .map(|i| format!("key-{i}"))
        .find(|k| partition_for_key(k, PARTITIONS, HashingScheme::JavaString) == p)
        .expect("some key hashes to every partition")
}

/// The partition index of a partition's full topic name.
fn index_of(partition_topic: &str) -> u32 {
    partition_topic
        .rsplit("-partition-")
        .next()
        .and_then(|i| i.parse().ok())
        .expect("a partition's name")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lazily_started_partitions_start_on_their_first_message_and_lose_nothing() {
    let broker = support::Broker::partitioned(PARTITIONS);
    let client = client(broker.url());
    let topic = broker.partitioned_topic("lazy-producer", PARTITIONS);
    let mut consumer = client
        .consumer(&topic)
        .subscription("s")
        .subscription_type(SubscriptionType::Shared)
        .initial_position(InitialPosition::Earliest)
        .subscribe()
        .await
        .expect("consumer");
    let producer = client
        .producer(&topic)
        .lazy_start_partitioned_producers(true)
        .batching(false)
        .create()
        .await
        .expect("producer");
    assert_eq!(producer.partitions(), PARTITIONS as usize);
    let started = |p: &pulsar_wire::Producer| -> BTreeSet<u32> {
        p.partition_stats()
            .iter()
            .map(|(t, _)| index_of(t))
            .collect()
    };
    let first = started(&producer);
    assert_eq!(first.len(), 1, "create starts one partition: {first:?}");
    assert!(producer.is_connected());
    // Keyed messages to one other partition start that one only.
    let target = (0..PARTITIONS)
        .find(|p| !first.contains(p))
        .expect("another partition");
    let key = key_for(target);
    for i in 0..5 {
        producer
            .send(ProducerMessage::new(format!("m{i}")).partition_key(key.clone()))
            .await
            .expect("send");
    }
    let now: BTreeSet<u32> = started(&producer);
    let expected: BTreeSet<u32> = first.iter().copied().chain([target]).collect();
    assert_eq!(now, expected);
    // Then every partition, and every message comes through exactly once.
    for p in 0..PARTITIONS {
        producer
            .send(ProducerMessage::new(format!("p{p}")).partition_key(key_for(p)))
            .await
            .expect("send");
    }
    assert_eq!(started(&producer), (0..PARTITIONS).collect());
    let mut got = BTreeSet::new();
    for _ in 0..5 + PARTITIONS {
        let m = tokio::time::timeout(Duration::from_secs(10), consumer.receive())
            .await
            .expect("a message within 10 s")
            .expect("receive");
        assert!(
            got.insert(m.payload_str().unwrap_or_default().to_owned()),
            "twice: {m:?}"
        );
        consumer.ack(&m).await.expect("ack");
    }
    let want: BTreeSet<String> = (0..5)
        .map(|i| format!("m{i}"))
        .chain((0..PARTITIONS).map(|p| format!("p{p}")))
        .collect();
    assert_eq!(got, want);
    producer.close().await.expect("close");
    assert!(matches!(
        producer
            .send(ProducerMessage::new("late").partition_key(key_for(0)))
            .await,
        Err(Error::Closed(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pending_bound_across_partitions_is_split_between_them() {
    let broker = support::Broker::partitioned(PARTITIONS);
    let client = client(broker.url());
    let topic = broker.partitioned_topic("pending-across", PARTITIONS);
    // 4 across 4 partitions: one pending message per partition. A long batch delay keeps the
    // first message pending, so the second to the same partition finds the queue full.
    let producer = client
        .producer(&topic)
        .max_pending_messages(100)
        .max_pending_messages_across_partitions(4)
        .batching_max_publish_delay(Duration::from_secs(30))
        .create()
        .await
        .expect("producer");
    let key = key_for(1);
    let first = producer
        .send_async(ProducerMessage::new("first").partition_key(key.clone()))
        .await
        .expect("queued");
    let second = producer
        .send_async(ProducerMessage::new("second").partition_key(key))
        .await;
    assert!(
        matches!(second, Err(Error::ProducerQueueFull(1))),
        "{second:?}"
    );
    // Another partition has its own share.
    let other = producer
        .send_async(ProducerMessage::new("other").partition_key(key_for(2)))
        .await
        .expect("queued on another partition");
    producer.flush().await.expect("flush");
    first.await.expect("the first message is stored");
    other.await.expect("stored");
}
