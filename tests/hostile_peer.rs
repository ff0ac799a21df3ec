//! Hostile and broken brokers: a scripted peer sends what a bad or malicious server could. For
//! each case a typed error at most closes that connection; nothing panics, nothing grows
//! without bound, nothing hangs, and the producer and consumer on it recover on a new
//! connection.

mod support;

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use pulsar_wire::wire::proto::{self, base_command::Type};
use pulsar_wire::{Consumer, InitialPosition, Producer, PulsarClient, SubscriptionType};
use support::peer::{self, Peer};

const TOPIC: &str = "persistent://public/default/hostile";

async fn guard<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .unwrap_or_else(|_| panic!("{what} hung"))
}

/// A client with a producer and a consumer on the peer; returns the consumer id the peer saw.
async fn setup(peer: &mut Peer) -> (PulsarClient, Producer, Consumer, u64) {
    let client = PulsarClient::builder(peer.url())
        .operation_timeout(Duration::from_secs(5))
        .keepalive_interval(Duration::from_millis(300))
        .build()
        .expect("client");
    let producer = guard("producer", client.producer(TOPIC).batching(false).create())
        .await
        .expect("producer");
    let consumer = guard(
        "subscribe",
        client
            .consumer(TOPIC)
            .subscription("s")
            .subscription_type(SubscriptionType::Shared)
            .initial_position(InitialPosition::Earliest)
            .subscribe(),
    )
    .await
    .expect("subscribe");
    let id = peer
        .expect(Type::Subscribe)
        .await
        .command
        .subscribe
        .map(|s| s.consumer_id)
        .expect("subscribe body");
    (client, producer, consumer, id)
}

/// After the hostile bytes: the connection was dropped and everything works again on a new one.
async fn recovers_on_a_new_connection(
    peer: &mut Peer,
    producer: &Producer,
    consumer: &mut Consumer,
) {
    guard(
        "the client closing the bad connection",
        peer.expect_closed(),
    )
    .await;
    let id = guard("a send after the bad frame", producer.send("after")).await;
    assert!(id.is_ok(), "the producer recovered: {id:?}");
    assert!(peer.connections() >= 2, "a new connection was made");
    // The consumer subscribed again: a message pushed now reaches it.
    let sub = peer
        .expect(Type::Subscribe)
        .await
        .command
        .subscribe
        .expect("body");
    peer.push(peer::with_payload(
        &peer::message(sub.consumer_id, 9, 9),
        &peer::metadata("p", 0),
        b"still here",
    ));
    let msg = guard("a message after recovery", consumer.receive())
        .await
        .expect("receive");
    assert_eq!(msg.payload_str(), Some("still here"));
}

fn raw(parts: &[&[u8]]) -> Bytes {
    let mut b = BytesMut::new();
    for p in parts {
        b.put_slice(p);
    }
    b.freeze()
}

#[tokio::test]
async fn a_length_of_4_gib_is_refused_before_allocating() {
    let mut peer = Peer::start().await;
    let (_client, producer, mut consumer, _) = setup(&mut peer).await;
    peer.push(raw(&[&[0xff, 0xff, 0xff, 0xff], &[0u8; 64]]));
    recovers_on_a_new_connection(&mut peer, &producer, &mut consumer).await;
}

#[tokio::test]
async fn a_command_size_larger_than_the_frame_is_refused() {
    let mut peer = Peer::start().await;
    let (_client, producer, mut consumer, _) = setup(&mut peer).await;
    peer.push(raw(&[&[0, 0, 0, 8], &[0, 0, 0, 100], &[8, 18, 146, 1]]));
    recovers_on_a_new_connection(&mut peer, &producer, &mut consumer).await;
}

#[tokio::test]
async fn garbage_protobuf_is_refused() {
    let mut peer = Peer::start().await;
    let (_client, producer, mut consumer, _) = setup(&mut peer).await;
    peer.push(raw(&[&[0, 0, 0, 9], &[0, 0, 0, 5], &[0xff; 5]]));
    recovers_on_a_new_connection(&mut peer, &producer, &mut consumer).await;
}

#[tokio::test]
async fn a_bad_checksum_is_refused() {
    let mut peer = Peer::start().await;
    let (_client, producer, mut consumer, id) = setup(&mut peer).await;
    let good = peer::with_payload(
        &peer::message(id, 1, 1),
        &peer::metadata("p", 0),
        b"payload",
    );
    let mut bad = BytesMut::from(&good[..]);
    let last = bad.len() - 1;
    bad[last] ^= 0x55;
    peer.push(bad.freeze());
    recovers_on_a_new_connection(&mut peer, &producer, &mut consumer).await;
}

#[tokio::test]
async fn a_payload_frame_without_metadata_is_refused() {
    let mut peer = Peer::start().await;
    let (_client, producer, mut consumer, id) = setup(&mut peer).await;
    peer.push(peer::encode(&peer::message(id, 1, 1)));
    recovers_on_a_new_connection(&mut peer, &producer, &mut consumer).await;
}

#[tokio::test]
async fn a_batch_whose_count_lies_delivers_what_parses_and_keeps_the_connection() {
    let mut peer = Peer::start().await;
    let (_client, producer, mut consumer, id) = setup(&mut peer).await;
    let mut md = peer::metadata("p", 0);
    md.num_messages_in_batch = Some(1000);
    peer.push(peer::with_payload(
        &peer::message(id, 2, 2),
        &md,
        &peer::batch_payload(&[b"one", b"two"]),
    ));
    for expected in ["one", "two"] {
        let m = guard("a parsed entry", consumer.receive())
            .await
            .expect("receive");
        assert_eq!(m.payload_str(), Some(expected));
    }
    assert!(producer.send("same connection").await.is_ok());
    assert_eq!(
        peer.connections(),
        1,
        "a bad batch does not cost the connection"
    );
}

#[tokio::test]
async fn a_compressed_payload_whose_size_lies_is_discarded_with_a_validation_error() {
    let mut peer = Peer::start().await;
    let (_client, producer, mut consumer, id) = setup(&mut peer).await;
    let body = b"hello hello hello hello hello hello".repeat(10);
    let packed =
        pulsar_wire::compression::compress(pulsar_wire::compression::Compression::Lz4, &body);
    let mut md = peer::metadata("p", 0);
    md.compression = Some(proto::CompressionType::Lz4 as i32);
    md.uncompressed_size = Some(body.len() as u32 + 7);
    peer.push(peer::with_payload(&peer::message(id, 3, 3), &md, &packed));
    // And one claiming more than the max message size.
    md.uncompressed_size = Some(u32::MAX);
    peer.push(peer::with_payload(&peer::message(id, 3, 4), &md, &packed));
    for entry in [3u64, 4] {
        let ack = peer.expect(Type::Ack).await.command.ack.expect("ack body");
        assert_eq!(ack.message_id[0].entry_id, entry);
        assert_eq!(
            ack.validation_error,
            Some(proto::command_ack::ValidationError::DecompressionError as i32)
        );
    }
    let none = consumer
        .receive_timeout(Duration::from_millis(300))
        .await
        .expect("receive");
    assert!(
        none.is_none(),
        "nothing undecodable reached the application"
    );
    assert!(producer.send("same connection").await.is_ok());
    assert_eq!(peer.connections(), 1);
}

#[tokio::test]
async fn a_never_ending_trickle_of_bytes_is_cut_by_keepalive() {
    let mut peer = Peer::start().await;
    let (_client, producer, mut consumer, _) = setup(&mut peer).await;
    // A frame header announcing 1000 bytes, then one byte at a time, forever.
    peer.push(raw(&[&[0, 0, 3, 232]]));
    let trickle = {
        let handle = peer.pusher();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                handle.push(Bytes::from_static(&[0]));
            }
        })
    };
    recovers_on_a_new_connection(&mut peer, &producer, &mut consumer).await;
    trickle.abort();
}
