//! Bounded memory: the producer's max pending messages (fail fast or block), the client-wide
//! memory limit for pending sends, and a consumer queue that flow control keeps at the receiver
//! queue size however slow the application. A SIGSTOPped broker stands for one that does not
//! answer.

mod support;

use std::time::Duration;

use pulsar_wire::{Error, InitialPosition, PulsarClient, SubscriptionType};
use support::Broker;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_pending_messages_fails_fast_or_blocks() {
    // pulsar-lite explicitly: a private broker it can stop (SIGSTOP) without other tests.
    let broker = Broker::start_local();
    let client = PulsarClient::new(broker.url()).expect("client");
    let topic = support::unique_topic("pending");
    let fast = client
        .producer(&topic)
        .max_pending_messages(2)
        .create()
        .await
        .expect("producer");
    let blocking = client
        .producer(&topic)
        .max_pending_messages(2)
        .block_if_queue_full(true)
        .create()
        .await
        .expect("producer");
    broker.signal("STOP");
    let r1 = fast.send_async("1").await.expect("room for 1");
    let r2 = fast.send_async("2").await.expect("room for 2");
    let err = fast.send_async("3").await.expect_err("queue full");
    assert!(matches!(err, Error::ProducerQueueFull(2)), "{err:?}");

    let b1 = blocking.send_async("b1").await.expect("room");
    let b2 = blocking.send_async("b2").await.expect("room");
    let third = {
        let blocking = blocking.clone();
        tokio::spawn(async move { blocking.send_async("b3").await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!third.is_finished(), "the third send waits for room");
    broker.signal("CONT");
    for r in [r1, r2, b1, b2] {
        r.await.expect("receipt after the broker resumes");
    }
    let b3 = third.await.expect("task").expect("room after receipts");
    b3.await.expect("receipt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_memory_limit_bounds_pending_payload_bytes() {
    let broker = Broker::start_local();
    let client = PulsarClient::builder(broker.url())
        .memory_limit(10_000)
        .build()
        .expect("client");
    let topic = support::unique_topic("memory");
    let producer = client.producer(&topic).create().await.expect("producer");
    let other = client
        .producer(support::unique_topic("memory2"))
        .create()
        .await
        .expect("producer");
    broker.signal("STOP");
    let r1 = producer.send_async(vec![1u8; 4096]).await.expect("room");
    let r2 = other.send_async(vec![2u8; 4096]).await.expect("room");
    assert_eq!(client.pending_memory(), 8192);
    let err = producer
        .send_async(vec![3u8; 4096])
        .await
        .expect_err("over the client limit");
    assert!(matches!(err, Error::MemoryLimitExceeded(10_000)), "{err:?}");
    broker.signal("CONT");
    r1.await.expect("receipt");
    r2.await.expect("receipt");
    assert_eq!(client.pending_memory(), 0, "receipts release the memory");
    producer.send(vec![3u8; 4096]).await.expect("room again");
}

#[tokio::test]
async fn a_slow_consumer_holds_at_most_its_receiver_queue() {
    let client = PulsarClient::new(support::broker().url()).expect("client");
    let topic = support::unique_topic("slow");
    let mut consumer = client
        .consumer(&topic)
        .subscription("s")
        .subscription_type(SubscriptionType::Shared)
        .initial_position(InitialPosition::Earliest)
        .receiver_queue_size(10)
        .subscribe()
        .await
        .expect("subscribe");
    // Unbatched: the broker counts permits per message but sends whole entries, so a batch
    // may overshoot the queue by the rest of the batch.
    let producer = client
        .producer(&topic)
        .batching(false)
        .create()
        .await
        .expect("producer");
    let mut receipts = Vec::new();
    for i in 0..100 {
        receipts.push(producer.send_async(format!("m{i}")).await.expect("enqueue"));
    }
    for r in receipts {
        r.await.expect("receipt");
    }
    let mut got = 0;
    while got < 100 {
        // Give the broker every chance to push more than it may.
        tokio::time::sleep(Duration::from_millis(30)).await;
        let queued = consumer.queued_messages();
        assert!(
            queued <= 10,
            "{queued} messages queued with a receiver queue of 10"
        );
        let msg = tokio::time::timeout(Duration::from_secs(10), consumer.receive())
            .await
            .expect("a message")
            .expect("receive");
        consumer.ack(&msg).await.expect("ack");
        got += 1;
    }
}
