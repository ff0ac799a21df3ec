//! Producer batching against the local broker: batches in the official format, per-message ids
//! with batch indexes, limits, and batching off.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use pulsar_wire::{InitialPosition, MessageId, ProducerMessage, PulsarClient, SubscriptionType};

fn client() -> PulsarClient {
    PulsarClient::builder(support::broker().url())
        .operation_timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

async fn send_all(producer: &pulsar_wire::Producer, n: usize) -> Vec<MessageId> {
    let mut receipts = Vec::new();
    for i in 0..n {
        let msg = ProducerMessage::new(format!("m{i}"))
            .property("i", i.to_string())
            .partition_key(format!("k{}", i % 3));
        receipts.push(producer.send_async(msg).await.expect("enqueue"));
    }
    let mut ids = Vec::new();
    for r in receipts {
        ids.push(r.await.expect("receipt"));
    }
    ids
}

#[tokio::test]
async fn batched_sends_share_entries_and_keep_their_own_ids_and_fields() {
    let client = client();
    let topic = support::unique_topic("batched");
    let producer = client
        .producer(&topic)
        .batching_max_messages(10)
        .batching_max_publish_delay(Duration::from_millis(50))
        .create()
        .await
        .expect("producer");
    let ids = send_all(&producer, 95).await;
    // Group by entry: every entry is a batch of at most 10 with indexes 0..n-1 in send order.
    let mut entries: BTreeMap<(i64, i64), Vec<MessageId>> = BTreeMap::new();
    for id in &ids {
        entries
            .entry((id.ledger_id, id.entry_id))
            .or_default()
            .push(*id);
    }
    assert!(
        entries.len() < 95,
        "messages were batched: {} entries",
        entries.len()
    );
    for (entry, members) in &entries {
        let n = members.len() as i32;
        assert!(n <= 10, "{entry:?} holds {n}");
        for (i, id) in members.iter().enumerate() {
            assert_eq!((id.batch_index, id.batch_size), (i as i32, n), "{entry:?}");
        }
    }
    let mut consumer = client
        .consumer(&topic)
        .subscription("s")
        .subscription_type(SubscriptionType::Shared)
        .initial_position(InitialPosition::Earliest)
        .subscribe()
        .await
        .expect("subscribe");
    for (i, id) in ids.iter().enumerate() {
        let msg = tokio::time::timeout(Duration::from_secs(10), consumer.receive())
            .await
            .expect("message")
            .expect("receive");
        assert_eq!(msg.id(), *id);
        assert_eq!(msg.payload_str(), Some(format!("m{i}").as_str()));
        assert_eq!(msg.properties()["i"], i.to_string());
        assert_eq!(msg.partition_key(), Some(format!("k{}", i % 3).as_str()));
        consumer.ack(&msg).await.expect("ack");
    }
    consumer.close().await.expect("close");
    // Everything was acked, batch by batch: nothing comes back.
    let mut again = client
        .consumer(&topic)
        .subscription("s")
        .subscription_type(SubscriptionType::Shared)
        .subscribe()
        .await
        .expect("subscribe");
    let left = again
        .receive_timeout(Duration::from_millis(800))
        .await
        .expect("receive");
    assert!(left.is_none(), "redelivered: {left:?}");
}

#[tokio::test]
async fn batching_off_sends_one_entry_per_message() {
    let client = client();
    let topic = support::unique_topic("unbatched");
    let producer = client
        .producer(&topic)
        .batching(false)
        .create()
        .await
        .expect("producer");
    let ids = send_all(&producer, 20).await;
    for pair in ids.windows(2) {
        assert!(pair[1].entry_id > pair[0].entry_id || pair[1].ledger_id > pair[0].ledger_id);
    }
    assert!(ids.iter().all(|id| id.batch_index == -1 && !id.is_batch()));
}

#[tokio::test]
async fn a_batch_closes_at_its_byte_limit() {
    let client = client();
    let topic = support::unique_topic("batch-bytes");
    let producer = client
        .producer(&topic)
        .batching_max_bytes(4096)
        .batching_max_publish_delay(Duration::from_millis(200))
        .create()
        .await
        .expect("producer");
    let mut receipts = Vec::new();
    for _ in 0..10 {
        receipts.push(producer.send_async(vec![7u8; 1000]).await.expect("enqueue"));
    }
    let mut per_entry: BTreeMap<(i64, i64), usize> = BTreeMap::new();
    for r in receipts {
        let id = r.await.expect("receipt");
        *per_entry.entry((id.ledger_id, id.entry_id)).or_default() += 1;
    }
    assert!(
        per_entry.len() >= 3,
        "10 KB in 4 KiB batches: {per_entry:?}"
    );
    assert!(per_entry.values().all(|n| *n <= 4), "{per_entry:?}");
}

#[tokio::test]
async fn flush_sends_the_open_batch_at_once() {
    let client = client();
    let topic = support::unique_topic("batch-flush");
    let producer = client
        .producer(&topic)
        .batching_max_publish_delay(Duration::from_secs(3600))
        .create()
        .await
        .expect("producer");
    let r = producer.send_async("waiting").await.expect("enqueue");
    producer.flush().await.expect("flush");
    let id = tokio::time::timeout(Duration::from_secs(10), r)
        .await
        .expect("the flush sent the batch")
        .expect("receipt");
    assert_eq!((id.batch_index, id.batch_size), (0, 1));
}
