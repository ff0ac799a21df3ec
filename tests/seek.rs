//! Positioning against the local broker: seek by id and by publish time, the last message id,
//! has_message_available, batch_receive.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pulsar_wire::{Consumer, InitialPosition, MessageId, PulsarClient, SubscriptionType};

fn client() -> PulsarClient {
    PulsarClient::builder(support::broker().url())
        .operation_timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

async fn produce(
    client: &PulsarClient,
    topic: &str,
    range: std::ops::Range<usize>,
) -> Vec<MessageId> {
    let producer = client
        .producer(topic)
        .batching(false)
        .create()
        .await
        .expect("producer");
    let mut ids = Vec::new();
    for i in range {
        ids.push(producer.send(format!("m{i}")).await.expect("send"));
    }
    producer.close().await.expect("close");
    ids
}

async fn subscribe(client: &PulsarClient, topic: &str) -> Consumer {
    client
        .consumer(topic)
        .subscription("s")
        .subscription_type(SubscriptionType::Shared)
        .initial_position(InitialPosition::Earliest)
        .subscribe()
        .await
        .expect("subscribe")
}

async fn take(c: &mut Consumer, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    while out.len() < n {
        let m = tokio::time::timeout(Duration::from_secs(10), c.receive())
            .await
            .expect("a message")
            .expect("receive");
        c.ack(&m).await.expect("ack");
        out.push(m.payload_str().unwrap_or_default().to_owned());
    }
    out
}

fn names(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("m{i}")).collect()
}

#[tokio::test]
async fn seek_to_a_message_id_replays_from_it() {
    let client = client();
    let topic = support::unique_topic("seek-id");
    let ids = produce(&client, &topic, 0..10).await;
    let mut c = subscribe(&client, &topic).await;
    assert_eq!(take(&mut c, 10).await, names(0..10));
    c.seek(ids[3]).await.expect("seek");
    assert_eq!(take(&mut c, 7).await, names(3..10));
}

#[tokio::test]
async fn seek_by_publish_time_replays_what_came_after() {
    let client = client();
    let topic = support::unique_topic("seek-time");
    produce(&client, &topic, 0..5).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let middle = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    tokio::time::sleep(Duration::from_millis(50)).await;
    produce(&client, &topic, 5..10).await;
    let mut c = subscribe(&client, &topic).await;
    assert_eq!(take(&mut c, 10).await, names(0..10));
    c.seek_by_time(middle).await.expect("seek");
    assert_eq!(take(&mut c, 5).await, names(5..10));
}

#[tokio::test]
async fn last_message_id_and_has_message_available_follow_the_topic() {
    let client = client();
    let topic = support::unique_topic("last-id");
    let ids = produce(&client, &topic, 0..3).await;
    let mut reader = client
        .reader(&topic)
        .start_message_id(MessageId::EARLIEST)
        .create()
        .await
        .expect("reader");
    assert_eq!(
        reader.get_last_message_id().await.expect("last id").entry(),
        ids[2].entry()
    );
    assert!(reader.has_message_available().await.expect("available"));
    for _ in 0..3 {
        reader.next().await.expect("next");
    }
    assert!(!reader.has_message_available().await.expect("available"));
    produce(&client, &topic, 3..4).await;
    assert!(reader.has_message_available().await.expect("available"));
    let m = reader.next().await.expect("next");
    assert_eq!(m.payload_str(), Some("m3"));
}

#[tokio::test]
async fn a_reader_seeks_back_to_a_message() {
    let client = client();
    let topic = support::unique_topic("reader-seek");
    let ids = produce(&client, &topic, 0..6).await;
    let mut reader = client
        .reader(&topic)
        .start_message_id(MessageId::EARLIEST)
        .create()
        .await
        .expect("reader");
    for _ in 0..6 {
        reader.next().await.expect("next");
    }
    reader.seek(ids[2]).await.expect("seek");
    let mut got = Vec::new();
    for _ in 0..4 {
        let m = tokio::time::timeout(Duration::from_secs(10), reader.next())
            .await
            .expect("a message")
            .expect("next");
        got.push(m.payload_str().unwrap_or_default().to_owned());
    }
    assert_eq!(got, names(2..6));
}

#[tokio::test]
async fn batch_receive_returns_what_is_there_up_to_the_max() {
    let client = client();
    let topic = support::unique_topic("batch-receive");
    produce(&client, &topic, 0..25).await;
    let mut c = subscribe(&client, &topic).await;
    let mut all = Vec::new();
    while all.len() < 25 {
        let batch = c
            .batch_receive(10, Duration::from_secs(10))
            .await
            .expect("batch receive");
        assert!(!batch.is_empty() && batch.len() <= 10, "{}", batch.len());
        for m in batch {
            c.ack(&m).await.expect("ack");
            all.push(m.payload_str().unwrap_or_default().to_owned());
        }
    }
    assert_eq!(all, names(0..25));
    let none = c
        .batch_receive(10, Duration::from_millis(300))
        .await
        .expect("batch receive");
    assert!(none.is_empty());
}
