//! Producer routing on partitioned topics against the scripted peer: a custom router, single
//! partition mode, and partitions added after the producer was created.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use pulsar_wire::wire::proto::base_command::Type;
use pulsar_wire::{MessageRouter, ProducerMessage, PulsarClient, RoutingMode};
use support::peer::Peer;

const TOPIC: &str = "persistent://public/default/routed";

fn client(peer: &Peer) -> PulsarClient {
    PulsarClient::builder(peer.url())
        .operation_timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

/// Producer ids of the PRODUCER commands, by partition topic.
async fn producers(peer: &mut Peer, n: usize) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let p = peer
            .expect(Type::Producer)
            .await
            .command
            .producer
            .expect("body");
        out.push((p.topic, p.producer_id));
    }
    out.sort();
    out
}

#[derive(Debug)]
struct AlwaysLast;

impl MessageRouter for AlwaysLast {
    fn choose_partition(&self, _msg: &ProducerMessage, partitions: u32) -> u32 {
        partitions - 1
    }
}

#[tokio::test]
async fn a_custom_router_decides_every_message() {
    let mut peer = Peer::start().await;
    peer.set_partitions(3);
    let client = client(&peer);
    let producer = client
        .producer(TOPIC)
        .batching(false)
        .routing_mode(RoutingMode::Custom(std::sync::Arc::new(AlwaysLast)))
        .create()
        .await
        .expect("producer");
    let ids = producers(&mut peer, 3).await;
    let last = ids
        .iter()
        .find(|(t, _)| t.ends_with("-partition-2"))
        .expect("partition 2")
        .1;
    for i in 0..6 {
        let msg = ProducerMessage::new(format!("m{i}")).partition_key(format!("k{i}"));
        let id = producer.send(msg).await.expect("send");
        assert_eq!(id.partition, 2);
    }
    let sends: BTreeSet<u64> = peer
        .received(Type::Send)
        .iter()
        .filter_map(|f| f.command.send.as_ref().map(|s| s.producer_id))
        .collect();
    assert_eq!(sends, BTreeSet::from([last]));
}

#[tokio::test]
async fn single_partition_mode_sends_unkeyed_messages_to_one_partition() {
    let mut peer = Peer::start().await;
    peer.set_partitions(4);
    let client = client(&peer);
    let producer = client
        .producer(TOPIC)
        .batching(false)
        .routing_mode(RoutingMode::SinglePartition)
        .create()
        .await
        .expect("producer");
    producers(&mut peer, 4).await;
    let mut partitions = BTreeSet::new();
    for i in 0..12 {
        partitions.insert(
            producer
                .send(format!("m{i}"))
                .await
                .expect("send")
                .partition,
        );
    }
    assert_eq!(partitions.len(), 1, "{partitions:?}");
}

#[tokio::test]
async fn partitions_added_later_get_a_producer() {
    let mut peer = Peer::start().await;
    peer.set_partitions(2);
    let client = client(&peer);
    let producer = client
        .producer(TOPIC)
        .partition_discovery_period(Duration::from_millis(200))
        .create()
        .await
        .expect("producer");
    producers(&mut peer, 2).await;
    assert_eq!(producer.partitions(), 2);
    peer.set_partitions(3);
    let added = peer
        .expect(Type::Producer)
        .await
        .command
        .producer
        .expect("body");
    assert_eq!(added.topic, format!("{TOPIC}-partition-2"));
    for _ in 0..100 {
        if producer.partitions() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(producer.partitions(), 3);
}
