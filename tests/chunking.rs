//! Chunking through the local broker (Shared subscriptions: pulsar-lite's Exclusive dispatch
//! duplicates entries): large messages split by the producer and reassembled by the consumer,
//! interleaved with small ones, acknowledged chunk by chunk.

mod support;

use std::time::Duration;

use pulsar_wire::compression::Compression;
use pulsar_wire::{InitialPosition, ProducerMessage, PulsarClient, SubscriptionType};

fn payload(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[tokio::test]
async fn large_messages_are_chunked_and_reassembled() {
    let client = PulsarClient::new(support::broker().url()).expect("client");
    for codec in [Compression::None, Compression::Zstd] {
        let topic = support::unique_topic("chunks");
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
            .chunking(true)
            .chunk_max_size(64 * 1024)
            .compression(codec)
            .create()
            .await
            .expect("producer");
        let big = payload(300_000, 1);
        let small = b"small".to_vec();
        let id_big = producer
            .send(ProducerMessage::new(big.clone()).property("kind", "big"))
            .await
            .expect("send big");
        let id_small = producer.send(small.clone()).await.expect("send small");
        // Zstd squeezes the big payload below one chunk; uncompressed it spans five.
        if codec == Compression::None {
            let first = id_big.first_chunk.expect("a chunked id");
            assert!(id_big.entry_id - first.entry_id >= 4, "{id_big:?}");
        }
        assert!(id_small.first_chunk.is_none());
        let m = tokio::time::timeout(Duration::from_secs(10), consumer.receive())
            .await
            .expect("the big message")
            .expect("receive");
        assert_eq!(m.payload().as_ref(), big.as_slice(), "{codec}");
        assert_eq!(m.properties()["kind"], "big");
        assert_eq!(m.id(), id_big);
        consumer.ack(&m).await.expect("ack every chunk");
        let m = consumer.receive().await.expect("receive");
        assert_eq!(m.payload().as_ref(), small.as_slice());
        consumer.ack(&m).await.expect("ack");
        consumer.close().await.expect("close");
        let mut again = client
            .consumer(&topic)
            .subscription("s")
            .subscription_type(SubscriptionType::Shared)
            .subscribe()
            .await
            .expect("subscribe");
        let left = again
            .receive_timeout(Duration::from_millis(700))
            .await
            .expect("receive");
        assert!(left.is_none(), "every chunk was acknowledged: {left:?}");
    }
}

#[tokio::test]
async fn without_chunking_a_large_message_is_refused() {
    let client = PulsarClient::new(support::broker().url()).expect("client");
    let producer = client
        .producer(support::unique_topic("no-chunks"))
        .create()
        .await
        .expect("producer");
    let err = producer
        .send(payload(6 * 1024 * 1024, 2))
        .await
        .expect_err("too large");
    assert!(
        matches!(err, pulsar_wire::Error::MessageTooLarge { .. }),
        "{err:?}"
    );
}
