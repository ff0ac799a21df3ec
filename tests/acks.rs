//! Acknowledgements against the local broker: grouping flushed on close, batch-index acks, ack
//! receipts, ack timeout and negative-ack backoff.

mod support;

use std::time::Duration;

use pulsar_wire::{
    Consumer, ConsumerBuilder, InitialPosition, MessageId, PulsarClient, SubscriptionType,
};

fn client() -> PulsarClient {
    PulsarClient::builder(support::broker().url())
        .operation_timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

fn shared(client: &PulsarClient, topic: &str) -> ConsumerBuilder {
    client
        .consumer(topic)
        .subscription("s")
        .subscription_type(SubscriptionType::Shared)
        .initial_position(InitialPosition::Earliest)
}

async fn produce(client: &PulsarClient, topic: &str, n: usize, batch: usize) -> Vec<MessageId> {
    let producer = client
        .producer(topic)
        .batching_max_messages(batch)
        .batching_max_publish_delay(Duration::from_millis(200))
        .create()
        .await
        .expect("producer");
    let mut receipts = Vec::new();
    for i in 0..n {
        receipts.push(producer.send_async(format!("m{i}")).await.expect("enqueue"));
    }
    let mut ids = Vec::new();
    for r in receipts {
        ids.push(r.await.expect("receipt"));
    }
    ids
}

async fn drain(c: &mut Consumer, quiet: Duration) -> Vec<pulsar_wire::Message> {
    let mut out = Vec::new();
    while let Some(m) = c.receive_timeout(quiet).await.expect("receive") {
        out.push(m);
    }
    out
}

#[tokio::test]
async fn grouped_acks_are_sent_on_close() {
    let client = client();
    let topic = support::unique_topic("ack-group");
    produce(&client, &topic, 20, 1).await;
    let mut c = shared(&client, &topic)
        .ack_group_time(Duration::from_secs(3600))
        .subscribe()
        .await
        .expect("subscribe");
    for m in drain(&mut c, Duration::from_millis(500)).await {
        c.ack(&m).await.expect("ack");
    }
    c.close().await.expect("close flushes the acks");
    let mut again = shared(&client, &topic)
        .subscribe()
        .await
        .expect("subscribe");
    let left = drain(&mut again, Duration::from_millis(700)).await;
    assert!(left.is_empty(), "{} redelivered", left.len());
}

#[tokio::test]
async fn ack_receipts_confirm_acks() {
    let client = client();
    let topic = support::unique_topic("ack-receipt");
    produce(&client, &topic, 3, 1).await;
    let mut c = shared(&client, &topic)
        .ack_receipts(true)
        .subscribe()
        .await
        .expect("subscribe");
    for m in drain(&mut c, Duration::from_millis(500)).await {
        c.ack(&m).await.expect("the broker confirms the ack");
    }
}

#[tokio::test]
async fn the_ack_timeout_redelivers_what_was_not_acknowledged() {
    let client = client();
    let topic = support::unique_topic("ack-timeout");
    produce(&client, &topic, 2, 1).await;
    let mut c = shared(&client, &topic)
        .ack_timeout(Duration::from_secs(1))
        .subscribe()
        .await
        .expect("subscribe");
    let first = c.receive().await.expect("receive");
    let second = c.receive().await.expect("receive");
    c.ack(&second).await.expect("ack");
    let again = tokio::time::timeout(Duration::from_secs(10), c.receive())
        .await
        .expect("redelivered within 10 s")
        .expect("receive");
    assert_eq!(again.id(), first.id());
    assert_eq!(again.redelivery_count(), 1);
    c.ack(&again).await.expect("ack");
    let more = c
        .receive_timeout(Duration::from_millis(2500))
        .await
        .expect("receive");
    assert!(more.is_none(), "the acked message stays acked: {more:?}");
}

#[tokio::test]
async fn negative_ack_backoff_redelivers_with_rising_counts() {
    let client = client();
    let topic = support::unique_topic("nack-backoff");
    produce(&client, &topic, 1, 1).await;
    let mut c = shared(&client, &topic)
        .negative_ack_backoff(Duration::from_millis(100), Duration::from_millis(400))
        .subscribe()
        .await
        .expect("subscribe");
    for expected in 0..4 {
        let m = tokio::time::timeout(Duration::from_secs(10), c.receive())
            .await
            .expect("redelivered")
            .expect("receive");
        assert_eq!(m.redelivery_count(), expected);
        c.nack(&m).await.expect("nack");
    }
}
