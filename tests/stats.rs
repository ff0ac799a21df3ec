//! Producer and consumer stats against the local broker: the totals count every message, its
//! bytes and its outcome exactly; a partitioned topic's stats are the sum of its partitions';
//! `is_connected` and `last_sequence_id`. (The interval logic, in simulated time, is tested in
//! `src/stats.rs`.)

mod support;

use support::{client, payload, receive};

use std::time::Duration;

use pulsar_wire::{InitialPosition, MessageId, ProducerMessage, PulsarClient, SubscriptionType};
use support::Broker;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producers_totals_count_every_message_its_bytes_and_its_receipt() {
    const N: usize = 20;
    const SIZE: usize = 100;
    let client = client(support::broker().url());
    let topic = support::unique_topic("stats-producer");
    let producer = client
        .producer(&topic)
        .batching(false)
        .create()
        .await
        .expect("producer");
    assert!(producer.is_connected());
    assert_eq!(producer.last_sequence_id(), None, "nothing confirmed yet");
    let before = producer.stats();
    assert_eq!(before.total_msgs_sent, 0);
    for i in 0..N {
        producer.send(payload(i, SIZE)).await.expect("send");
        // The receipt's sequence id is there as soon as the send returns.
        assert_eq!(producer.last_sequence_id(), Some(i as u64));
    }
    let s = producer.stats();
    assert_eq!(s.total_msgs_sent, N as u64, "{s:?}");
    assert_eq!(s.total_bytes_sent, (N * SIZE) as u64, "{s:?}");
    assert_eq!(s.total_acks_received, N as u64, "{s:?}");
    assert_eq!(s.total_send_failed, 0, "{s:?}");
    assert_eq!(s.pending_queue_size, 0, "{s:?}");
    // One partition: its stats are the producer's.
    let parts = producer.partition_stats();
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].0, producer.topic());
    assert_eq!(parts[0].1.total_acks_received, N as u64);

    // The last sequence id is the last message's, as the consumer sees it.
    let mut c = client
        .consumer(&topic)
        .subscription("s")
        .initial_position(InitialPosition::Earliest)
        .subscribe()
        .await
        .expect("consumer");
    let mut last = None;
    for _ in 0..N {
        last = Some(receive(&mut c).await.sequence_id());
    }
    assert_eq!(producer.last_sequence_id(), last);

    producer.close().await.expect("close");
    assert!(!producer.is_connected(), "closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_sends_count_application_payload_bytes_and_a_local_failure_counts_as_failed() {
    const N: usize = 50;
    const SIZE: usize = 64;
    let client = client(support::broker().url());
    let topic = support::unique_topic("stats-batched");
    let producer = client
        .producer(&topic)
        .batching_max_messages(10)
        .create()
        .await
        .expect("producer");
    let mut receipts = Vec::new();
    for i in 0..N {
        receipts.push(producer.send_async(payload(i, SIZE)).await.expect("queue"));
    }
    for r in receipts {
        r.await.expect("receipt");
    }
    let s = producer.stats();
    assert_eq!(s.total_msgs_sent, N as u64, "{s:?}");
    assert_eq!(s.total_bytes_sent, (N * SIZE) as u64, "{s:?}");
    assert_eq!(s.total_acks_received, N as u64, "{s:?}");
    // The batches' highest sequence id.
    assert_eq!(producer.last_sequence_id(), Some(N as u64 - 1));

    // Larger than the broker's max message size (without chunking): fails in the producer.
    let unbatched = client
        .producer(&topic)
        .batching(false)
        .create()
        .await
        .expect("producer");
    let too_large = vec![0u8; 6 * 1024 * 1024];
    assert!(unbatched.send(too_large).await.is_err());
    let s = unbatched.stats();
    assert_eq!(s.total_send_failed, 1, "{s:?}");
    assert_eq!(s.total_acks_received, 0, "{s:?}");
    assert_eq!(unbatched.last_sequence_id(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumers_totals_count_receives_bytes_acks_nacks_and_redeliveries() {
    const N: usize = 10;
    const NACKED: usize = 3;
    const SIZE: usize = 50;
    let client = client(support::broker().url());
    let topic = support::unique_topic("stats-consumer");
    let producer = client
        .producer(&topic)
        .batching(false)
        .create()
        .await
        .expect("producer");
    for i in 0..N {
        producer.send(payload(i, SIZE)).await.expect("send");
    }
    let mut c = client
        .consumer(&topic)
        .subscription("s")
        .subscription_type(SubscriptionType::Shared)
        .initial_position(InitialPosition::Earliest)
        .negative_ack_redelivery_delay(Duration::from_millis(100))
        .subscribe()
        .await
        .expect("consumer");
    assert!(c.is_connected());
    let mut nacked = Vec::new();
    for i in 0..N {
        let m = receive(&mut c).await;
        if i < NACKED {
            nacked.push(m.payload().clone());
            c.nack(&m).await.expect("nack");
        } else {
            c.ack(&m).await.expect("ack");
        }
    }
    // The nacked ones come back once each.
    let mut again = Vec::new();
    for _ in 0..NACKED {
        let m = receive(&mut c).await;
        assert_eq!(m.redelivery_count(), 1);
        again.push(m.payload().clone());
        c.ack(&m).await.expect("ack");
    }
    again.sort();
    nacked.sort();
    assert_eq!(again, nacked);
    let more = c
        .receive_timeout(Duration::from_millis(300))
        .await
        .expect("receive");
    assert!(more.is_none(), "nothing more: {more:?}");
    let s = c.stats();
    let received = (N + NACKED) as u64;
    assert_eq!(s.total_msgs_received, received, "{s:?}");
    assert_eq!(s.total_bytes_received, received * SIZE as u64, "{s:?}");
    assert_eq!(s.total_acks_sent, N as u64, "{s:?}");
    assert_eq!(s.total_acks_failed, 0, "{s:?}");
    assert_eq!(s.total_nacks, NACKED as u64, "{s:?}");
    assert_eq!(s.total_redeliveries, NACKED as u64, "{s:?}");
    assert_eq!(s.total_receive_failed, 0, "{s:?}");
    assert_eq!(s.msgs_in_receiver_queue, 0, "{s:?}");
    let parts = c.partition_stats();
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].1, s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_topics_stats_are_the_sum_of_its_partitions() {
    const PARTITIONS: usize = 3;
    const N: usize = 30;
    const SIZE: usize = 40;
    let broker = Broker::partitioned(PARTITIONS as u32);
    let client = client(broker.url());
    let topic = broker.partitioned_topic("stats-partitioned", PARTITIONS as u32);
    let producer = client
        .producer(&topic)
        .batching(false)
        .create()
        .await
        .expect("producer");
    assert_eq!(producer.partitions(), PARTITIONS);
    assert!(producer.is_connected());
    let mut c = client
        .consumer(&topic)
        .subscription("s")
        .initial_position(InitialPosition::Earliest)
        .subscribe()
        .await
        .expect("consumer");
    assert!(c.is_connected());
    for i in 0..N {
        let msg = ProducerMessage::new(payload(i, SIZE)).partition_key(format!("k{i}"));
        producer.send(msg).await.expect("send");
    }
    for _ in 0..N {
        let m = receive(&mut c).await;
        c.ack(&m).await.expect("ack");
    }

    let total = producer.stats();
    assert_eq!(total.total_msgs_sent, N as u64, "{total:?}");
    assert_eq!(total.total_bytes_sent, (N * SIZE) as u64, "{total:?}");
    assert_eq!(total.total_acks_received, N as u64, "{total:?}");
    let parts = producer.partition_stats();
    assert_eq!(parts.len(), PARTITIONS);
    for (i, (name, _)) in parts.iter().enumerate() {
        assert!(name.ends_with(&format!("-partition-{i}")), "{name}");
    }
    let sum =
        |f: fn(&pulsar_wire::ProducerStats) -> u64| parts.iter().map(|(_, s)| f(s)).sum::<u64>();
    assert_eq!(sum(|s| s.total_msgs_sent), total.total_msgs_sent);
    assert_eq!(sum(|s| s.total_bytes_sent), total.total_bytes_sent);
    assert_eq!(sum(|s| s.total_acks_received), total.total_acks_received);
    // Each partition numbers its own messages from 0: the highest is the busiest partition's.
    let busiest = parts.iter().map(|(_, s)| s.total_msgs_sent).max();
    assert_eq!(producer.last_sequence_id(), busiest.map(|n| n - 1));

    let total = c.stats();
    assert_eq!(total.total_msgs_received, N as u64, "{total:?}");
    assert_eq!(total.total_bytes_received, (N * SIZE) as u64, "{total:?}");
    assert_eq!(total.total_acks_sent, N as u64, "{total:?}");
    let parts = c.partition_stats();
    assert_eq!(parts.len(), PARTITIONS);
    assert_eq!(
        parts
            .iter()
            .map(|(_, s)| s.total_msgs_received)
            .sum::<u64>(),
        total.total_msgs_received
    );
    assert_eq!(
        parts
            .iter()
            .map(|(_, s)| s.total_bytes_received)
            .sum::<u64>(),
        total.total_bytes_received
    );
    assert_eq!(
        parts.iter().map(|(_, s)| s.total_acks_sent).sum::<u64>(),
        total.total_acks_sent
    );
    // The keys spread the messages: more than one partition got some.
    assert!(
        parts
            .iter()
            .filter(|(_, s)| s.total_msgs_received > 0)
            .count()
            > 1
    );

    producer.close().await.expect("close");
    assert!(!producer.is_connected());
}

#[tokio::test]
async fn a_zero_stats_interval_records_nothing() {
    let client = PulsarClient::builder(support::broker().url())
        .stats_interval(Duration::ZERO)
        .build()
        .expect("client");
    let topic = support::unique_topic("stats-off");
    let producer = client.producer(&topic).create().await.expect("producer");
    for i in 0..5 {
        producer.send(payload(i, 10)).await.expect("send");
    }
    let mut reader = client
        .reader(&topic)
        .start_message_id(MessageId::EARLIEST)
        .create()
        .await
        .expect("reader");
    for _ in 0..5 {
        reader.next().await.expect("next");
    }
    assert_eq!(producer.stats(), pulsar_wire::ProducerStats::default());
    assert_eq!(reader.stats(), pulsar_wire::ConsumerStats::default());
    // The rest still works without stats.
    assert_eq!(producer.last_sequence_id(), Some(4));
    assert!(reader.is_connected());
}

#[tokio::test]
async fn a_readers_stats_count_what_it_read() {
    let client = client(support::broker().url());
    let topic = support::unique_topic("stats-reader");
    let producer = client.producer(&topic).create().await.expect("producer");
    for i in 0..7 {
        producer.send(payload(i, 30)).await.expect("send");
    }
    let mut reader = client
        .reader(&topic)
        .start_message_id(MessageId::EARLIEST)
        .create()
        .await
        .expect("reader");
    for _ in 0..7 {
        tokio::time::timeout(Duration::from_secs(10), reader.next())
            .await
            .expect("in time")
            .expect("next");
    }
    let s = reader.stats();
    assert_eq!(s.total_msgs_received, 7, "{s:?}");
    assert_eq!(s.total_bytes_received, 7 * 30, "{s:?}");
}
