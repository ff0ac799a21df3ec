//! The real-broker suite: behaviour that pulsar-lite cannot show, checked against a real Apache
//! Pulsar. Run it with a broker at `PULSAR_URL`:
//!
//! ```text
//! docker run -it --rm -p 6650:6650 -p 8080:8080 apachepulsar/pulsar:4.0.4 bin/pulsar standalone
//! PULSAR_URL=pulsar://localhost:6650 cargo test --features real-broker --test real_broker
//! ```
//!
//! Each case is also covered on the wire by the scripted peer (tests/protocol_peer.rs) in the
//! default suite.
#![cfg(feature = "real-broker")]

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use pulsar_wire::{InitialPosition, MessageId, PulsarClient, SubscriptionType};

fn client() -> PulsarClient {
    let url = support::external_url().unwrap_or_else(|| {
        panic!(
            "the real-broker suite needs PULSAR_URL pointing at an Apache Pulsar (see the README)"
        )
    });
    PulsarClient::builder(url)
        .operation_timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// pulsar-lite acknowledges the whole entry on a partial batch-index ack (the official client
/// sees the same), so this needs a real broker with `acknowledgmentAtBatchIndexLevelEnabled`.
#[tokio::test]
async fn batch_index_acks_leave_only_the_unacked_half_of_each_batch() {
    let client = client();
    let topic = support::unique_topic("ack-index");
    let producer = client
        .producer(&topic)
        .batching_max_messages(10)
        .batching_max_publish_delay(Duration::from_millis(200))
        .create()
        .await
        .expect("producer");
    let mut receipts = Vec::new();
    for i in 0..40 {
        receipts.push(producer.send_async(format!("m{i}")).await.expect("enqueue"));
    }
    for r in receipts {
        r.await.expect("receipt");
    }
    let subscribe = || {
        client
            .consumer(&topic)
            .subscription("s")
            .subscription_type(SubscriptionType::Shared)
            .initial_position(InitialPosition::Earliest)
            .batch_index_ack(true)
            .subscribe()
    };
    let mut c = subscribe().await.expect("subscribe");
    let mut expected_back = BTreeSet::new();
    while let Some(m) = c
        .receive_timeout(Duration::from_secs(2))
        .await
        .expect("receive")
    {
        if m.id().batch_index % 2 == 0 {
            c.ack(&m).await.expect("ack");
        } else {
            expected_back.insert(m.id());
        }
    }
    c.close().await.expect("close");
    let mut again = subscribe().await.expect("subscribe");
    let mut back: BTreeSet<MessageId> = BTreeSet::new();
    while let Some(m) = again
        .receive_timeout(Duration::from_secs(3))
        .await
        .expect("receive")
    {
        back.insert(m.id());
    }
    assert_eq!(back, expected_back);
}
