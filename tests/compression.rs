//! Compression end to end through the local broker: every codec, batched and not.

mod support;

use std::time::Duration;

use pulsar_wire::compression::Compression;
use pulsar_wire::{InitialPosition, ProducerMessage, PulsarClient, SubscriptionType};

#[tokio::test]
async fn every_codec_round_trips_batched_and_not() {
    let client = PulsarClient::new(support::broker().url()).expect("client");
    for codec in [
        Compression::Lz4,
        Compression::Zlib,
        Compression::Zstd,
        Compression::Snappy,
    ] {
        for batching in [true, false] {
            let topic = support::unique_topic(&format!("codec-{codec}"));
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
                .compression(codec)
                .batching(batching)
                .create()
                .await
                .expect("producer");
            let mut receipts = Vec::new();
            for i in 0..50 {
                let body = format!("{codec} message {i} ").repeat(20);
                let msg = ProducerMessage::new(body).property("i", i.to_string());
                receipts.push(producer.send_async(msg).await.expect("enqueue"));
            }
            for r in receipts {
                r.await.expect("receipt");
            }
            for i in 0..50 {
                let m = tokio::time::timeout(Duration::from_secs(10), consumer.receive())
                    .await
                    .expect("a message")
                    .expect("receive");
                let expected = format!("{codec} message {i} ").repeat(20);
                assert_eq!(
                    m.payload_str(),
                    Some(expected.as_str()),
                    "{codec} batching {batching}"
                );
                assert_eq!(m.properties()["i"], i.to_string());
                consumer.ack(&m).await.expect("ack");
            }
        }
    }
}
