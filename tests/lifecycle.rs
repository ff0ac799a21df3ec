//! Closing and dropping: `close()` flushes and releases broker resources; dropping handles
//! never blocks and leaves no task or connection behind.

mod support;

use std::time::Duration;

use pulsar_wire::{InitialPosition, PulsarClient, SubscriptionType};

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Waits (bounded) until the runtime's task count falls back to `baseline`; returns the count.
async fn settle(baseline: usize) -> usize {
    for _ in 0..100 {
        if alive_tasks() <= baseline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    alive_tasks()
}

#[tokio::test]
async fn dropping_every_handle_ends_every_task() {
    let baseline = alive_tasks();
    {
        let client = PulsarClient::new(support::broker().url()).expect("client");
        let topic = support::unique_topic("drop");
        let mut consumer = client
            .consumer(&topic)
            .subscription("s")
            .subscription_type(SubscriptionType::Shared)
            .initial_position(InitialPosition::Earliest)
            .subscribe()
            .await
            .expect("subscribe");
        let producer = client.producer(&topic).create().await.expect("producer");
        producer.send("x").await.expect("send");
        let msg = consumer.receive().await.expect("receive");
        consumer.ack(&msg).await.expect("ack");
        assert!(alive_tasks() > baseline, "the client runs tasks");
        // Dropped here without close(): the drop itself must not block.
    }
    assert_eq!(settle(baseline).await, baseline, "tasks left behind");
}

#[tokio::test]
async fn close_flushes_pending_sends_and_releases_connections() {
    let baseline = alive_tasks();
    let client = PulsarClient::new(support::broker().url()).expect("client");
    let topic = support::unique_topic("close");
    let producer = client
        .producer(&topic)
        .batching_max_publish_delay(Duration::from_secs(3600))
        .create()
        .await
        .expect("producer");
    let receipt = producer
        .send_async("pending at close")
        .await
        .expect("enqueue");
    producer.close().await.expect("close");
    let id = receipt
        .await
        .expect("the pending message was flushed by close");
    assert_eq!(id.batch_index, 0);
    let err = producer.send("after close").await.expect_err("closed");
    assert!(matches!(err, pulsar_wire::Error::Closed(_)), "{err:?}");
    assert_eq!(client.open_connections(), 1);
    client.close().await.expect("close client");
    assert_eq!(client.open_connections(), 0);
    drop(producer);
    drop(client);
    assert_eq!(settle(baseline).await, baseline, "tasks left behind");
}
