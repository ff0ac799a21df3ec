//! Conformance of the client's wire behaviour, against a scripted peer (`support::peer`): the
//! exact commands and fields the client sends, and how it reacts to what a broker may send.
//! pulsar-lite never checks tokens and answers errors by closing the connection, so these
//! behaviours cannot be tested against it.

mod support;

use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt as _;
use pulsar_wire::wire::proto::{self, command_ack::AckType, KeyValue};
use pulsar_wire::{
    Consumer, Error, InitialPosition, ProducerMessage, PulsarClient, ServerErrorCode,
    SubscriptionType,
};
use support::peer::{self, Lookup, Peer, Type};

const TOPIC: &str = "persistent://public/default/peer-topic";

fn client(peer: &Peer) -> PulsarClient {
    PulsarClient::builder(peer.url())
        .operation_timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

/// A liveness guard for operations of the client.
async fn guard<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(peer::WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {:?}", peer::WAIT))
}

#[tokio::test]
async fn connect_carries_version_token_and_feature_flags() {
    let mut peer = Peer::start().await;
    let client = PulsarClient::builder(peer.url())
        .token("secret-token")
        .build()
        .expect("client");
    guard("partitions", client.partitions(TOPIC))
        .await
        .expect("partitions");
    let connect = peer.expect(Type::Connect).await.command.connect.unwrap();
    assert!(
        connect
            .client_version
            .starts_with("Pulsar-Rust-pulsar-wire-v"),
        "{}",
        connect.client_version
    );
    assert_eq!(connect.protocol_version, Some(21));
    assert_eq!(connect.auth_method_name.as_deref(), Some("token"));
    assert_eq!(
        connect.auth_data.as_deref(),
        Some(&b"secret-token"[..]),
        "the token is the auth data"
    );
    let flags = connect.feature_flags.expect("feature flags");
    assert_eq!(flags.supports_auth_refresh, Some(true));
    assert_eq!(flags.supports_broker_entry_metadata, Some(true));
}

#[tokio::test]
async fn auth_challenge_is_answered_with_the_current_token_from_the_file() {
    let path = std::env::temp_dir().join(format!(
        "pulsar-wire-peer-token-{}-{}",
        std::process::id(),
        support::unique_name("t")
    ));
    std::fs::write(&path, "first-token\n").expect("write token");
    let mut peer = Peer::start().await;
    let client = PulsarClient::builder(peer.url())
        .token_from_file(&path)
        .build()
        .expect("client");
    guard("partitions", client.partitions(TOPIC))
        .await
        .expect("partitions");
    let connect = peer.expect(Type::Connect).await.command.connect.unwrap();
    assert_eq!(connect.auth_data.as_deref(), Some(&b"first-token"[..]));

    std::fs::write(&path, "second-token").expect("rotate token");
    peer.push(peer::encode(&peer::auth_challenge("token")));
    let response = peer.expect(Type::AuthResponse).await.command.auth_response;
    let data = response.and_then(|r| r.response).expect("auth data");
    assert_eq!(data.auth_method_name.as_deref(), Some("token"));
    assert_eq!(data.auth_data.as_deref(), Some(&b"second-token"[..]));
    let _ = std::fs::remove_file(&path);

    // The connection is still the one it was, and still works.
    guard("partitions", client.partitions(TOPIC))
        .await
        .expect("partitions after the refresh");
    assert_eq!(peer.connections(), 1);
}

#[tokio::test]
async fn auth_challenge_during_the_handshake_is_answered() {
    let mut peer = Peer::start().await;
    peer.challenge_in_handshake(true);
    let client = PulsarClient::builder(peer.url())
        .token("handshake-token")
        .build()
        .expect("client");
    let partitions = guard("partitions", client.partitions(TOPIC)).await;
    assert_eq!(
        partitions.expect("partitions after a challenged handshake"),
        0
    );
    let (_, first) = peer.next_frame().await;
    assert_eq!(first.command.r#type, Type::Connect as i32);
    let (_, second) = peer.next_frame().await;
    let data = second
        .command
        .auth_response
        .and_then(|r| r.response)
        .expect("AUTH_RESPONSE right after CONNECT");
    assert_eq!(data.auth_method_name.as_deref(), Some("token"));
    assert_eq!(data.auth_data.as_deref(), Some(&b"handshake-token"[..]));
}

#[tokio::test]
async fn pings_are_answered_and_an_unanswered_keepalive_ends_the_connection() {
    let mut peer = Peer::start().await;
    peer.ignore(Type::Ping);
    let client = PulsarClient::builder(peer.url())
        .keepalive_interval(Duration::from_millis(200))
        .build()
        .expect("client");
    guard("partitions", client.partitions(TOPIC))
        .await
        .expect("partitions");

    // A broker PING gets a PONG.
    peer.push(peer::ping());
    peer.expect(Type::Pong).await;

    // The client pings on its own; unanswered (and with nothing else coming), the connection is
    // declared dead and closed.
    assert_eq!(peer.expect_closed().await, 0);
    assert!(
        !peer.received(Type::Ping).is_empty(),
        "the client pinged before giving up"
    );

    // The next operation opens a new connection.
    peer.answer(Type::Ping);
    guard("partitions", client.partitions(TOPIC))
        .await
        .expect("partitions on a new connection");
    assert_eq!(peer.connections(), 2);
    assert_eq!(client.open_connections(), 1);
}

#[tokio::test]
async fn a_request_timeout_fails_only_that_request() {
    let mut peer = Peer::start().await;
    // The first LOOKUP and the first PRODUCER are never answered.
    let mut silenced = (false, false);
    peer.set_handler(move |_, frame| match Type::try_from(frame.command.r#type) {
        Ok(Type::Lookup) if !silenced.0 => {
            silenced.0 = true;
            Some(vec![])
        }
        Ok(Type::Producer) if !silenced.1 => {
            silenced.1 = true;
            Some(vec![])
        }
        _ => None,
    });
    let client = PulsarClient::builder(peer.url())
        .operation_timeout(Duration::from_millis(300))
        .build()
        .expect("client");

    let err = guard("create", client.producer(TOPIC).create())
        .await
        .expect_err("the lookup is never answered");
    assert!(
        matches!(
            err,
            Error::Timeout {
                operation: "lookup",
                ..
            }
        ),
        "{err:?}"
    );
    // The error names the whole lookup timeout, not what was left of it when the request went
    // out (after the connection's handshake: a little less; after retries: next to nothing).
    assert!(
        matches!(err, Error::Timeout { after, .. } if after == Duration::from_millis(300)),
        "{err:?}"
    );

    let err = guard("create", client.producer(TOPIC).create())
        .await
        .expect_err("the producer is never answered");
    assert!(
        matches!(
            err,
            Error::Timeout {
                operation: "create producer",
                ..
            }
        ),
        "{err:?}"
    );

    let producer = guard("create", client.producer(TOPIC).create())
        .await
        .expect("a producer the peer answers");
    assert_eq!(peer.received(Type::Producer).len(), 2);
    assert_eq!(
        peer.connections(),
        1,
        "the timeouts did not cost the connection"
    );
    peer.expect(Type::Producer).await;
    drop(producer);
}

#[tokio::test]
async fn a_lookup_redirect_is_followed_authoritatively() {
    let mut a = Peer::start().await;
    let mut b = Peer::start().await;
    a.set_lookup(Lookup::Redirect {
        url: b.url(),
        authoritative: true,
    });
    let client = client(&a);
    let producer = guard("create", client.producer(TOPIC).create())
        .await
        .expect("producer on B");
    let first = a.expect(Type::Lookup).await.command.lookup_topic.unwrap();
    assert_eq!(first.topic, TOPIC);
    assert_eq!(first.authoritative, Some(false));
    let second = b.expect(Type::Lookup).await.command.lookup_topic.unwrap();
    assert_eq!(second.topic, TOPIC);
    assert_eq!(
        second.authoritative,
        Some(true),
        "B saw the redirect's flag"
    );
    let created = b.expect(Type::Producer).await.command.producer.unwrap();
    assert_eq!(created.topic, TOPIC);
    assert!(
        a.received(Type::Producer).is_empty(),
        "nothing created on A"
    );
    let id = guard("send", producer.send("to B")).await.expect("send");
    assert_eq!((id.ledger_id, id.entry_id), (1, 0));
    assert_eq!(b.received(Type::Send).len(), 1);
}

#[tokio::test]
async fn a_failed_lookup_surfaces_the_broker_error() {
    let peer = Peer::start().await;
    peer.set_lookup(Lookup::Failed {
        code: proto::ServerError::AuthorizationError as i32,
        message: "role cannot produce".into(),
    });
    let client = client(&peer);
    let err = guard("create", client.producer(TOPIC).create())
        .await
        .expect_err("the lookup failed");
    match err {
        Error::Server { error, .. } => {
            assert_eq!(error.code, ServerErrorCode::AuthorizationError);
            assert_eq!(error.message, "role cannot produce");
        }
        other => panic!("expected a server error, got {other:?}"),
    }
}

#[tokio::test]
async fn endless_redirects_give_too_many_redirects() {
    let peer = Peer::start().await;
    peer.set_lookup(Lookup::Redirect {
        url: peer.url(),
        authoritative: true,
    });
    let client = client(&peer);
    let err = guard("create", client.producer(TOPIC).create())
        .await
        .expect_err("redirected forever");
    assert!(
        matches!(err, Error::TooManyRedirects { max: 20, .. }),
        "{err:?}"
    );
    // The first lookup and 20 redirects followed; the 21st redirect is refused.
    assert_eq!(peer.received(Type::Lookup).len(), 21);
}

#[tokio::test]
async fn twenty_redirects_are_followed() {
    let peer = Peer::start().await;
    let url = peer.url();
    let mut lookups = 0;
    peer.set_handler(move |_, frame| {
        let l = frame.command.lookup_topic.as_ref()?;
        lookups += 1;
        let r = if lookups <= 20 {
            proto::CommandLookupTopicResponse {
                broker_service_url: Some(url.clone()),
                response: Some(proto::command_lookup_topic_response::LookupType::Redirect as i32),
                request_id: l.request_id,
                authoritative: Some(true),
                ..Default::default()
            }
        } else {
            proto::CommandLookupTopicResponse {
                broker_service_url: Some(url.clone()),
                response: Some(proto::command_lookup_topic_response::LookupType::Connect as i32),
                request_id: l.request_id,
                authoritative: Some(true),
                ..Default::default()
            }
        };
        Some(vec![peer::encode(&proto::BaseCommand {
            lookup_topic_response: Some(Box::new(r)),
            ..peer::command(Type::LookupResponse)
        })])
    });
    let client = client(&peer);
    guard("create", client.producer(TOPIC).create())
        .await
        .expect("20 redirects are within the limit");
    assert_eq!(peer.received(Type::Lookup).len(), 21);
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: value.into(),
    }
}

#[tokio::test]
async fn producer_and_send_frames_carry_every_field() {
    let mut peer = Peer::start().await;
    peer.set_last_sequence_id(41);
    let client = client(&peer);
    let producer = guard(
        "create",
        client
            .producer(TOPIC)
            .name("my-producer")
            .property("team", "wire")
            .batching(false)
            .create(),
    )
    .await
    .expect("producer");
    let p = peer.expect(Type::Producer).await.command.producer.unwrap();
    assert_eq!(p.topic, TOPIC);
    assert_eq!(p.producer_name.as_deref(), Some("my-producer"));
    assert_eq!(p.user_provided_producer_name, Some(true));
    assert_eq!(p.metadata, vec![kv("team", "wire")]);
    assert_eq!(p.epoch, Some(0));

    let msg = ProducerMessage::new("hello")
        .property("k", "v")
        .partition_key("the-key")
        .ordering_key(Bytes::from_static(b"order"))
        .event_time(1_234_567);
    let id = guard("send", producer.send(msg)).await.expect("send");
    assert_eq!((id.ledger_id, id.entry_id), (1, 0));

    let send = peer.expect(Type::Send).await;
    let command = send.command.send.unwrap();
    assert_eq!(command.producer_id, p.producer_id);
    assert_eq!(command.sequence_id, 42, "last_sequence_id 41 + 1");
    let payload = send.payload.expect("payload");
    assert!(payload.checksum.is_some(), "SEND carries a checksum");
    let md = payload.metadata;
    assert_eq!(md.producer_name, "my-producer");
    assert_eq!(md.sequence_id, 42);
    assert_eq!(md.properties, vec![kv("k", "v")]);
    assert_eq!(md.partition_key.as_deref(), Some("the-key"));
    assert_eq!(md.ordering_key.as_deref(), Some(&b"order"[..]));
    assert_eq!(md.event_time, Some(1_234_567));
    assert_eq!(md.uncompressed_size, Some(5));
    assert_eq!(md.num_messages_in_batch, None);
    assert_eq!(&payload.data[..], b"hello");

    guard("send", producer.send("again")).await.expect("send");
    let next = peer.expect(Type::Send).await.command.send.unwrap();
    assert_eq!(next.sequence_id, 43);
}

/// A producer without batching whose first `held` SENDs get no automatic receipt; later ones
/// get a receipt at ledger 7, entry `sequence id + 100`.
async fn held_producer(peer: &Peer, held: usize) -> (PulsarClient, pulsar_wire::Producer) {
    let mut seen = 0;
    peer.set_handler(move |_, frame| {
        let send = frame.command.send.as_ref()?;
        seen += 1;
        if seen <= held {
            return Some(vec![]);
        }
        Some(vec![peer::encode(&peer::send_receipt(
            send.producer_id,
            send.sequence_id,
            7,
            send.sequence_id + 100,
        ))])
    });
    let client = client(peer);
    let producer = guard("create", client.producer(TOPIC).batching(false).create())
        .await
        .expect("producer");
    (client, producer)
}

#[tokio::test]
async fn receipts_complete_their_sends_in_order() {
    let mut peer = Peer::start().await;
    let (_client, producer) = held_producer(&peer, 3).await;
    let mut receipts = Vec::new();
    for i in 0..3 {
        receipts.push(producer.send_async(format!("m{i}")).await.expect("queued"));
    }
    let mut producer_id = 0;
    for i in 0..3 {
        let send = peer.expect(Type::Send).await.command.send.unwrap();
        assert_eq!(send.sequence_id, i);
        producer_id = send.producer_id;
    }
    for seq in 0..3 {
        peer.push(peer::encode(&peer::send_receipt(
            producer_id,
            seq,
            3,
            10 + seq,
        )));
    }
    let last = receipts.pop().unwrap();
    let id = guard("receipt", last).await.expect("third receipt");
    assert_eq!((id.ledger_id, id.entry_id), (3, 12));
    // Completed in order: once the third is done, the first two are already.
    for (seq, r) in receipts.into_iter().enumerate() {
        let id = r
            .now_or_never()
            .expect("completed before the later receipt")
            .expect("receipt");
        assert_eq!((id.ledger_id, id.entry_id), (3, 10 + seq as i64));
    }
}

#[tokio::test]
async fn a_receipt_for_a_sequence_id_never_sent_completes_nothing_wrongly() {
    let mut peer = Peer::start().await;
    let (_client, producer) = held_producer(&peer, 2).await;
    let r0 = producer.send_async("a").await.expect("queued");
    let r1 = producer.send_async("b").await.expect("queued");
    let mut producer_id = 0;
    for i in 0..2 {
        let send = peer.expect(Type::Send).await.command.send.unwrap();
        assert_eq!(send.sequence_id, i);
        producer_id = send.producer_id;
    }
    peer.push(peer::encode(&peer::send_receipt(producer_id, 99, 7, 999)));
    peer.push(peer::encode(&peer::send_receipt(producer_id, 0, 7, 100)));
    peer.push(peer::encode(&peer::send_receipt(producer_id, 1, 7, 101)));
    let id0 = guard("receipt", r0).await.expect("first send");
    let id1 = guard("receipt", r1).await.expect("second send");
    assert_eq!((id0.ledger_id, id0.entry_id), (7, 100));
    assert_eq!((id1.ledger_id, id1.entry_id), (7, 101));
    // Still usable: the next send gets its own receipt.
    let id2 = guard("send", producer.send("c")).await.expect("third send");
    assert_eq!((id2.ledger_id, id2.entry_id), (7, 102));
}

#[tokio::test]
async fn a_send_error_fails_that_send_with_its_code() {
    let mut peer = Peer::start().await;
    let (_client, producer) = held_producer(&peer, 2).await;
    let r0 = producer.send_async("bad").await.expect("queued");
    let r1 = producer.send_async("good").await.expect("queued");
    let mut producer_id = 0;
    for _ in 0..2 {
        producer_id = peer
            .expect(Type::Send)
            .await
            .command
            .send
            .unwrap()
            .producer_id;
    }
    peer.push(peer::encode(&peer::send_error(
        producer_id,
        0,
        proto::ServerError::ChecksumError as i32,
        "checksum mismatch",
    )));
    match guard("receipt", r0).await {
        Err(Error::Server { error, .. }) => {
            assert_eq!(error.code, ServerErrorCode::ChecksumError);
            assert_eq!(error.message, "checksum mismatch");
        }
        other => panic!("expected the send error, got {other:?}"),
    }
    // The other send is not failed with it: it is resent and receipted.
    let id1 = guard("receipt", r1).await.expect("second send");
    assert_eq!((id1.ledger_id, id1.entry_id), (7, 101));
}

#[tokio::test]
async fn a_send_without_receipt_times_out() {
    let mut peer = Peer::start().await;
    peer.ignore(Type::Send);
    let client = client(&peer);
    let producer = guard(
        "create",
        client
            .producer(TOPIC)
            .batching(false)
            .send_timeout(Duration::from_millis(300))
            .create(),
    )
    .await
    .expect("producer");
    let err = guard("send", producer.send("lost"))
        .await
        .expect_err("no receipt");
    assert!(matches!(err, Error::SendTimeout(_)), "{err:?}");
    assert_eq!(
        peer.expect(Type::Send)
            .await
            .command
            .send
            .unwrap()
            .sequence_id,
        0
    );
}

#[tokio::test]
async fn close_producer_from_the_broker_reattaches_and_resends() {
    let mut peer = Peer::start().await;
    let (_client, producer) = held_producer(&peer, 2).await;
    let first = peer.expect(Type::Producer).await.command.producer.unwrap();
    let r0 = producer.send_async("a").await.expect("queued");
    let r1 = producer.send_async("b").await.expect("queued");
    for i in 0..2 {
        assert_eq!(
            peer.expect(Type::Send)
                .await
                .command
                .send
                .unwrap()
                .sequence_id,
            i
        );
    }
    let lookups_before = peer.received(Type::Lookup).len();
    peer.push(peer::encode(&peer::close_producer(first.producer_id)));

    let again = peer.expect(Type::Producer).await.command.producer.unwrap();
    assert_eq!(again.producer_id, first.producer_id);
    assert_eq!(again.epoch, Some(1));
    assert_eq!(
        peer.received(Type::Lookup).len(),
        lookups_before + 1,
        "a new lookup before re-creating the producer"
    );
    for i in 0..2 {
        let resent = peer.expect(Type::Send).await;
        let send = resent.command.send.unwrap();
        assert_eq!(send.producer_id, first.producer_id);
        assert_eq!(send.sequence_id, i, "resent with its original sequence id");
        assert_eq!(resent.payload.unwrap().metadata.sequence_id, i);
    }
    let id0 = guard("receipt", r0).await.expect("first send");
    let id1 = guard("receipt", r1).await.expect("second send");
    assert_eq!((id0.entry_id, id1.entry_id), (100, 101));
}

/// Subscribes; returns the consumer and its id, after checking SUBSCRIBE is answered and
/// followed by FLOW of the whole queue.
async fn subscribe(
    peer: &mut Peer,
    client: &PulsarClient,
    sub_type: SubscriptionType,
    queue: u32,
) -> (Consumer, u64) {
    let consumer = guard(
        "subscribe",
        client
            .consumer(TOPIC)
            .subscription("peer-sub")
            .subscription_type(sub_type)
            .initial_position(InitialPosition::Earliest)
            .receiver_queue_size(queue)
            .negative_ack_redelivery_delay(Duration::from_millis(200))
            .subscribe(),
    )
    .await
    .expect("subscribe");
    let sub = peer
        .expect(Type::Subscribe)
        .await
        .command
        .subscribe
        .unwrap();
    let (_, next) = peer.next_frame().await;
    let flow = next.command.flow.expect("FLOW right after SUBSCRIBE");
    assert_eq!(flow.consumer_id, sub.consumer_id);
    assert_eq!(flow.message_permits, queue);
    (consumer, sub.consumer_id)
}

/// A plain MESSAGE for `ledger:entry` with payload `text`.
fn plain(consumer_id: u64, ledger: u64, entry: u64, text: &str) -> Bytes {
    peer::with_payload(
        &peer::message(consumer_id, ledger, entry),
        &peer::metadata("remote", entry),
        text.as_bytes(),
    )
}

/// A batched MESSAGE of three entries "b0", "b1", "b2" at `ledger:entry`.
fn batch_of_three(consumer_id: u64, ledger: u64, entry: u64, ack_set: Vec<i64>) -> Bytes {
    let mut cmd = peer::message(consumer_id, ledger, entry);
    if let Some(m) = cmd.message.as_mut() {
        m.ack_set = ack_set;
    }
    let mut md = peer::metadata("remote", 0);
    md.num_messages_in_batch = Some(3);
    peer::with_payload(&cmd, &md, &peer::batch_payload(&[b"b0", b"b1", b"b2"]))
}

async fn receive(consumer: &mut Consumer) -> pulsar_wire::Message {
    guard("receive", consumer.receive()).await.expect("receive")
}

#[tokio::test]
async fn subscribe_fields_and_flow_refilled_at_half_the_queue() {
    let mut peer = Peer::start().await;
    let client = client(&peer);
    let (mut consumer, id) = subscribe(&mut peer, &client, SubscriptionType::Shared, 10).await;
    let sub = peer.received(Type::Subscribe)[0]
        .command
        .subscribe
        .clone()
        .unwrap();
    assert_eq!(sub.topic, TOPIC);
    assert_eq!(sub.subscription, "peer-sub");
    assert_eq!(
        sub.sub_type,
        proto::command_subscribe::SubType::Shared as i32
    );
    assert_eq!(
        sub.initial_position,
        Some(proto::command_subscribe::InitialPosition::Earliest as i32)
    );
    assert_eq!(sub.durable, Some(true));

    for entry in 0..10 {
        peer.push(plain(id, 3, entry, &format!("m{entry}")));
    }
    for entry in 0..5 {
        let msg = receive(&mut consumer).await;
        assert_eq!(msg.payload_str(), Some(format!("m{entry}").as_str()));
        assert_eq!((msg.id().ledger_id, msg.id().entry_id), (3, entry as i64));
    }
    let flow = peer.expect(Type::Flow).await.command.flow.unwrap();
    assert_eq!(flow.consumer_id, id);
    assert_eq!(flow.message_permits, 5, "half the queue, once taken");
}

#[tokio::test]
async fn a_message_without_checksum_is_delivered() {
    let mut peer = Peer::start().await;
    let client = client(&peer);
    let (mut consumer, id) = subscribe(&mut peer, &client, SubscriptionType::Shared, 10).await;
    let mut md = peer::metadata("remote", 5);
    md.properties = vec![kv("p", "q")];
    peer.push(peer::with_payload_unchecked(
        &peer::message(id, 4, 2),
        &md,
        b"no checksum",
    ));
    let msg = receive(&mut consumer).await;
    assert_eq!(msg.payload_str(), Some("no checksum"));
    assert_eq!((msg.id().ledger_id, msg.id().entry_id), (4, 2));
    assert_eq!(msg.properties().get("p").map(String::as_str), Some("q"));
    assert_eq!(msg.producer_name(), "remote");
    assert_eq!(msg.sequence_id(), 5);
}

#[tokio::test]
async fn a_batched_message_is_delivered_as_its_entries() {
    let mut peer = Peer::start().await;
    let client = client(&peer);
    let (mut consumer, id) = subscribe(&mut peer, &client, SubscriptionType::Shared, 10).await;
    peer.push(batch_of_three(id, 5, 1, vec![]));
    for i in 0..3 {
        let msg = receive(&mut consumer).await;
        assert_eq!(msg.payload_str(), Some(format!("b{i}").as_str()));
        let mid = msg.id();
        assert_eq!((mid.ledger_id, mid.entry_id), (5, 1));
        assert_eq!(mid.batch_index, i);
        assert_eq!(mid.batch_size, 3);
    }
}

#[tokio::test]
async fn acked_batch_indexes_are_skipped_and_their_permits_returned() {
    let mut peer = Peer::start().await;
    let client = client(&peer);
    // A queue of 2: one returned permit reaches the refill threshold at once.
    let (mut consumer, id) = subscribe(&mut peer, &client, SubscriptionType::Shared, 2).await;
    // Bits 0 and 2 set: those are unacknowledged; index 1 is acknowledged already.
    peer.push(batch_of_three(id, 5, 1, vec![0b101]));
    let flow = peer.expect(Type::Flow).await.command.flow.unwrap();
    assert_eq!(
        flow.message_permits, 1,
        "the skipped index's permit comes back"
    );
    peer.push(plain(id, 5, 2, "after"));
    let indexes: Vec<i32> = [receive(&mut consumer).await, receive(&mut consumer).await]
        .iter()
        .map(|m| {
            assert_eq!(m.id().entry_id, 1);
            m.id().batch_index
        })
        .collect();
    assert_eq!(indexes, vec![0, 2]);
    let next = receive(&mut consumer).await;
    assert_eq!(
        next.payload_str(),
        Some("after"),
        "index 1 is never delivered"
    );
}

#[tokio::test]
async fn acks_individual_per_batch_and_cumulative() {
    let mut peer = Peer::start().await;
    let client = client(&peer);
    let (mut consumer, id) = subscribe(&mut peer, &client, SubscriptionType::Exclusive, 10).await;
    peer.push(batch_of_three(id, 5, 1, vec![]));
    peer.push(plain(id, 5, 2, "single"));
    peer.push(plain(id, 5, 3, "last"));
    let batch = [
        receive(&mut consumer).await,
        receive(&mut consumer).await,
        receive(&mut consumer).await,
    ];
    let single = receive(&mut consumer).await;
    let last = receive(&mut consumer).await;

    consumer.ack(&batch[0]).await.expect("ack");
    consumer.ack(&batch[1]).await.expect("ack");
    consumer.ack(&single).await.expect("ack");
    // The first ACK on the wire is the single message's: none for the partial batch.
    let ack = peer.expect(Type::Ack).await.command.ack.unwrap();
    assert_eq!(ack.consumer_id, id);
    assert_eq!(ack.ack_type, AckType::Individual as i32);
    assert_eq!(ack.message_id.len(), 1);
    assert_eq!(
        (ack.message_id[0].ledger_id, ack.message_id[0].entry_id),
        (5, 2)
    );

    consumer.ack(&batch[2]).await.expect("ack");
    let ack = peer.expect(Type::Ack).await.command.ack.unwrap();
    assert_eq!(ack.ack_type, AckType::Individual as i32);
    assert_eq!(ack.message_id.len(), 1);
    assert_eq!(
        (ack.message_id[0].ledger_id, ack.message_id[0].entry_id),
        (5, 1),
        "one ACK for the whole entry after its last message"
    );

    consumer
        .ack_cumulative(&last)
        .await
        .expect("ack cumulative");
    let ack = peer.expect(Type::Ack).await.command.ack.unwrap();
    assert_eq!(ack.ack_type, AckType::Cumulative as i32);
    assert_eq!(
        (ack.message_id[0].ledger_id, ack.message_id[0].entry_id),
        (5, 3)
    );
    assert_eq!(peer.received(Type::Ack).len(), 3);
}

#[tokio::test]
async fn nack_on_shared_redelivers_that_entry() {
    let mut peer = Peer::start().await;
    let client = client(&peer);
    let (mut consumer, id) = subscribe(&mut peer, &client, SubscriptionType::Shared, 10).await;
    peer.push(plain(id, 6, 4, "nack me"));
    let msg = receive(&mut consumer).await;
    consumer.nack(&msg).await.expect("nack");
    let redeliver = peer
        .expect(Type::RedeliverUnacknowledgedMessages)
        .await
        .command
        .redeliver_unacknowledged_messages
        .unwrap();
    assert_eq!(redeliver.consumer_id, id);
    let ids: Vec<(u64, u64)> = redeliver
        .message_ids
        .iter()
        .map(|m| (m.ledger_id, m.entry_id))
        .collect();
    assert_eq!(ids, vec![(6, 4)]);
}

#[tokio::test]
async fn nack_on_exclusive_redelivers_everything() {
    let mut peer = Peer::start().await;
    let client = client(&peer);
    let (mut consumer, id) = subscribe(&mut peer, &client, SubscriptionType::Exclusive, 10).await;
    peer.push(plain(id, 6, 4, "nack me"));
    let msg = receive(&mut consumer).await;
    consumer.nack(&msg).await.expect("nack");
    let redeliver = peer
        .expect(Type::RedeliverUnacknowledgedMessages)
        .await
        .command
        .redeliver_unacknowledged_messages
        .unwrap();
    assert_eq!(redeliver.consumer_id, id);
    assert!(redeliver.message_ids.is_empty(), "{redeliver:?}");
}

#[tokio::test]
async fn end_of_topic_and_active_consumer_change_are_reported() {
    let mut peer = Peer::start().await;
    let client = client(&peer);
    let (mut consumer, id) = subscribe(&mut peer, &client, SubscriptionType::Failover, 10).await;
    assert!(!consumer.is_active());
    assert!(!consumer.has_reached_end_of_topic());
    peer.push(peer::encode(&peer::active_consumer_change(id, true)));
    peer.push(peer::encode(&peer::reached_end_of_topic(id)));
    // Events of one consumer are handled in order: once the message after them is received,
    // both were.
    peer.push(plain(id, 1, 1, "marker"));
    assert_eq!(receive(&mut consumer).await.payload_str(), Some("marker"));
    assert!(consumer.is_active());
    assert!(consumer.has_reached_end_of_topic());
}

#[tokio::test]
async fn an_unknown_command_type_is_not_fatal() {
    let mut peer = Peer::start().await;
    let client = client(&peer);
    guard("partitions", client.partitions(TOPIC))
        .await
        .expect("partitions");
    peer.push(peer::unknown_command(200));
    // The PING after it is answered: the unknown frame was read and the connection lives.
    peer.push(peer::ping());
    peer.expect(Type::Pong).await;
    let producer = guard("create", client.producer(TOPIC).batching(false).create())
        .await
        .expect("producer on the same connection");
    guard("send", producer.send("x")).await.expect("send");
    assert_eq!(peer.connections(), 1);
}

#[tokio::test]
async fn a_message_for_an_unknown_consumer_is_dropped() {
    let mut peer = Peer::start().await;
    let client = client(&peer);
    let (mut consumer, id) = subscribe(&mut peer, &client, SubscriptionType::Shared, 10).await;
    peer.push(plain(id + 1000, 9, 9, "nobody's"));
    peer.push(peer::ping());
    peer.expect(Type::Pong).await;
    peer.push(plain(id, 9, 10, "mine"));
    let msg = receive(&mut consumer).await;
    assert_eq!(msg.payload_str(), Some("mine"));
    assert_eq!(msg.id().entry_id, 10);
    assert_eq!(peer.connections(), 1);
    guard("partitions", client.partitions(TOPIC))
        .await
        .expect("the connection still serves requests");
}

#[tokio::test]
async fn subscribe_carries_the_consumer_name_and_priority_level() {
    let mut peer = Peer::start().await;
    let client = client(&peer);
    let _consumer = guard(
        "subscribe",
        client
            .consumer(TOPIC)
            .subscription("peer-sub")
            .subscription_type(SubscriptionType::Shared)
            .consumer_name("worker-1")
            .priority_level(3)
            .property("team", "billing")
            .subscribe(),
    )
    .await
    .expect("subscribe");
    let sub = peer
        .expect(Type::Subscribe)
        .await
        .command
        .subscribe
        .unwrap();
    assert_eq!(sub.consumer_name.as_deref(), Some("worker-1"));
    assert_eq!(sub.priority_level, Some(3));
    assert_eq!(sub.metadata[0].key, "team");
    assert_eq!(sub.metadata[0].value, "billing");
}

#[tokio::test]
async fn the_listener_name_goes_on_every_lookup_and_not_on_partitioned_metadata() {
    let mut a = Peer::start().await;
    let mut b = Peer::start().await;
    a.set_lookup(Lookup::Redirect {
        url: b.url(),
        authoritative: true,
    });
    let client = PulsarClient::builder(a.url())
        .listener_name("external")
        .operation_timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let _producer = guard("create", client.producer(TOPIC).create())
        .await
        .expect("producer on B");
    let metadata = a
        .expect(Type::PartitionedMetadata)
        .await
        .command
        .partition_metadata
        .unwrap();
    assert_eq!(metadata.topic, TOPIC);
    let first = a.expect(Type::Lookup).await.command.lookup_topic.unwrap();
    assert_eq!(first.advertised_listener_name.as_deref(), Some("external"));
    let second = b.expect(Type::Lookup).await.command.lookup_topic.unwrap();
    assert_eq!(
        second.advertised_listener_name.as_deref(),
        Some("external"),
        "the redirected lookup asks for the listener too"
    );
}

#[tokio::test]
async fn without_a_listener_name_lookup_carries_none() {
    let mut peer = Peer::start().await;
    let client = client(&peer);
    let _producer = guard("create", client.producer(TOPIC).create())
        .await
        .expect("producer");
    let lookup = peer
        .expect(Type::Lookup)
        .await
        .command
        .lookup_topic
        .unwrap();
    assert_eq!(lookup.advertised_listener_name, None);
}

#[tokio::test]
async fn a_lookup_refused_for_the_listener_is_an_unknown_listener_error_at_once() {
    let peer = Peer::start().await;
    // Apache Pulsar's answer for a listener its advertisedListeners do not name; the code is
    // retriable, the answer is not: the client must not retry until the timeout.
    peer.set_lookup(Lookup::Failed {
        code: proto::ServerError::ServiceNotReady as i32,
        message: "the broker do not have nowhere listener".into(),
    });
    let client = PulsarClient::builder(peer.url())
        .listener_name("nowhere")
        .operation_timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let started = std::time::Instant::now();
    let err = guard("create", client.producer(TOPIC).create())
        .await
        .expect_err("no such listener");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "failed after {:?}",
        started.elapsed()
    );
    match &err {
        Error::UnknownListener {
            topic,
            listener,
            message,
        } => {
            assert_eq!(topic, TOPIC);
            assert_eq!(listener, "nowhere");
            assert_eq!(message, "the broker do not have nowhere listener");
        }
        other => panic!("expected UnknownListener, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("\"nowhere\"") && text.contains("advertisedListeners"),
        "{text}"
    );
    assert_eq!(peer.received(Type::Lookup).len(), 1, "not retried");
}

#[test]
fn an_empty_listener_name_is_refused_by_build() {
    let err = PulsarClient::builder("pulsar://127.0.0.1:6650")
        .listener_name(" ")
        .build()
        .expect_err("empty listener name");
    assert!(matches!(err, Error::InvalidConfig(_)), "{err:?}");
    assert!(err.to_string().contains("advertisedListeners"), "{err}");
}

/// A custom method that records every challenge it receives and answers `answer-to-DATA`,
/// once `gate` lets it (open unless a test closes it).
#[derive(Debug)]
struct Recorder {
    seen: std::sync::Mutex<Vec<(String, Vec<u8>)>>,
    received: tokio::sync::Notify,
    gate: tokio::sync::Semaphore,
    fail: bool,
}

impl Recorder {
    fn new(open: bool, fail: bool) -> std::sync::Arc<Self> {
        std::sync::Arc::new(Recorder {
            seen: std::sync::Mutex::new(Vec::new()),
            received: tokio::sync::Notify::new(),
            gate: tokio::sync::Semaphore::new(if open {
                tokio::sync::Semaphore::MAX_PERMITS
            } else {
                0
            }),
            fail,
        })
    }

    fn seen(&self) -> Vec<(String, Vec<u8>)> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[derive(Debug, Clone)]
struct Custom(std::sync::Arc<Recorder>);

impl pulsar_wire::Authentication for Custom {
    fn method_name(&self) -> &str {
        "custom"
    }

    fn auth_data(&self) -> pulsar_wire::AuthFuture<'_> {
        Box::pin(async { Ok(Bytes::from_static(b"initial")) })
    }

    fn on_challenge<'a>(
        &'a self,
        challenge: pulsar_wire::AuthChallenge<'a>,
    ) -> pulsar_wire::AuthFuture<'a> {
        let recorder = &self.0;
        recorder
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((challenge.method.to_owned(), challenge.data.to_vec()));
        recorder.received.notify_one();
        let mut answer = b"answer-to-".to_vec();
        answer.extend_from_slice(challenge.data);
        Box::pin(async move {
            let _permit = recorder
                .gate
                .acquire()
                .await
                .map_err(|_| pulsar_wire::AuthError::new("gate closed"))?;
            if recorder.fail {
                return Err(pulsar_wire::AuthError::new(
                    "the custom provider refused (check its configuration)",
                ));
            }
            Ok(Bytes::from(answer))
        })
    }
}

fn custom_client(peer: &Peer, recorder: &std::sync::Arc<Recorder>) -> PulsarClient {
    PulsarClient::builder(peer.url())
        .authentication(Custom(recorder.clone()))
        .operation_timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

#[tokio::test]
async fn a_challenge_handler_receives_the_challenge_data_and_answers_with_auth_response() {
    let mut peer = Peer::start().await;
    let recorder = Recorder::new(true, false);
    let client = custom_client(&peer, &recorder);
    guard("partitions", client.partitions(TOPIC))
        .await
        .expect("partitions");
    let connect = peer.expect(Type::Connect).await.command.connect.unwrap();
    assert_eq!(connect.auth_method_name.as_deref(), Some("custom"));
    assert_eq!(connect.auth_data.as_deref(), Some(&b"initial"[..]));

    peer.push(peer::encode(&peer::auth_challenge_with(
        "custom", b"nonce-1",
    )));
    let data = peer
        .expect(Type::AuthResponse)
        .await
        .command
        .auth_response
        .and_then(|r| r.response)
        .expect("auth data");
    assert_eq!(data.auth_method_name.as_deref(), Some("custom"));
    assert_eq!(data.auth_data.as_deref(), Some(&b"answer-to-nonce-1"[..]));
    assert_eq!(
        recorder.seen(),
        [("custom".to_string(), b"nonce-1".to_vec())],
        "the handler got the broker's method and data"
    );
    guard("partitions", client.partitions(TOPIC))
        .await
        .expect("partitions after the challenge");
    assert_eq!(peer.connections(), 1);
}

#[tokio::test]
async fn a_challenge_in_the_handshake_reaches_the_handler() {
    let mut peer = Peer::start().await;
    peer.challenge_in_handshake(true);
    let recorder = Recorder::new(true, false);
    let client = custom_client(&peer, &recorder);
    guard("partitions", client.partitions(TOPIC))
        .await
        .expect("partitions after a challenged handshake");
    let (_, first) = peer.next_frame().await;
    assert_eq!(first.command.r#type, Type::Connect as i32);
    let (_, second) = peer.next_frame().await;
    let data = second
        .command
        .auth_response
        .and_then(|r| r.response)
        .expect("AUTH_RESPONSE right after CONNECT");
    assert_eq!(data.auth_data.as_deref(), Some(&b"answer-to-refresh"[..]));
    assert_eq!(
        recorder.seen(),
        [("token".to_string(), b"refresh".to_vec())]
    );
}

#[tokio::test]
async fn a_slow_challenge_answer_does_not_hold_up_the_connections_other_traffic() {
    let mut peer = Peer::start().await;
    let recorder = Recorder::new(false, false);
    let client = custom_client(&peer, &recorder);
    guard("partitions", client.partitions(TOPIC))
        .await
        .expect("partitions");
    peer.push(peer::encode(&peer::auth_challenge_with("custom", b"slow")));
    guard("the handler is called", recorder.received.notified()).await;
    // The answer waits on the gate; requests on the same connection are still served.
    for _ in 0..3 {
        guard(
            "partitions while the answer is pending",
            client.partitions(TOPIC),
        )
        .await
        .expect("partitions while the answer is pending");
    }
    assert!(
        peer.received(Type::AuthResponse).is_empty(),
        "no answer before the handler finishes"
    );
    recorder.gate.add_permits(1);
    let data = peer
        .expect(Type::AuthResponse)
        .await
        .command
        .auth_response
        .and_then(|r| r.response)
        .expect("auth data");
    assert_eq!(data.auth_data.as_deref(), Some(&b"answer-to-slow"[..]));
    assert_eq!(peer.connections(), 1);
}

#[tokio::test]
async fn a_failing_challenge_handler_closes_the_connection() {
    let mut peer = Peer::start().await;
    let recorder = Recorder::new(true, true);
    let client = custom_client(&peer, &recorder);
    guard("partitions", client.partitions(TOPIC))
        .await
        .expect("partitions");
    peer.push(peer::encode(&peer::auth_challenge_with("custom", b"x")));
    assert_eq!(peer.expect_closed().await, 0, "the challenged connection");
    assert!(peer.received(Type::AuthResponse).is_empty());
    // The next operation connects again (CONNECT's own credentials still work).
    guard("partitions", client.partitions(TOPIC))
        .await
        .expect("partitions on a new connection");
    assert_eq!(peer.connections(), 2);
}

#[tokio::test]
async fn an_async_token_supplier_is_awaited_for_connect_and_for_challenges() {
    let mut peer = Peer::start().await;
    let n = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let auth = {
        let n = n.clone();
        pulsar_wire::TokenAuth::from_async_fn(move || {
            let n = n.clone();
            async move {
                tokio::task::yield_now().await;
                let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(format!("async-token-{i}"))
            }
        })
    };
    let client = PulsarClient::builder(peer.url())
        .authentication(auth)
        .build()
        .expect("client");
    guard("partitions", client.partitions(TOPIC))
        .await
        .expect("partitions");
    let connect = peer.expect(Type::Connect).await.command.connect.unwrap();
    assert_eq!(connect.auth_method_name.as_deref(), Some("token"));
    assert_eq!(connect.auth_data.as_deref(), Some(&b"async-token-0"[..]));
    peer.push(peer::encode(&peer::auth_challenge("token")));
    let data = peer
        .expect(Type::AuthResponse)
        .await
        .command
        .auth_response
        .and_then(|r| r.response)
        .expect("auth data");
    assert_eq!(data.auth_method_name.as_deref(), Some("token"));
    assert_eq!(data.auth_data.as_deref(), Some(&b"async-token-1"[..]));
    assert_eq!(n.load(std::sync::atomic::Ordering::SeqCst), 2);
}

// --- closing while the connection goes ---------------------------------------------------------

/// A connection lost while CLOSE_CONSUMER awaits its answer takes the consumer with it (a broker
/// drops the consumers of a connection that goes): the close is done, not an error. Before,
/// `close` returned the connection's error (seen through the Pulsar proxy, whose stalled
/// connection the keepalive ended in the middle of a close); the Java client too ignores the
/// error of a close whose connection is no longer active.
#[tokio::test]
async fn a_consumer_closes_cleanly_when_its_connection_goes_during_the_close() {
    let mut peer = Peer::start().await;
    peer.ignore(Type::CloseConsumer);
    let client = client(&peer);
    let consumer = guard(
        "subscribe",
        client.consumer(TOPIC).subscription("s").subscribe(),
    )
    .await
    .expect("subscribe");
    let closing = tokio::spawn(consumer.close());
    let (conn, _) = peer.expect_on(Type::CloseConsumer).await;
    peer.disconnect(conn);
    let closed = guard("close", closing).await.expect("the close task");
    assert!(closed.is_ok(), "{closed:?}");
}

/// The same for a producer and CLOSE_PRODUCER.
#[tokio::test]
async fn a_producer_closes_cleanly_when_its_connection_goes_during_the_close() {
    let mut peer = Peer::start().await;
    peer.ignore(Type::CloseProducer);
    let client = client(&peer);
    let producer = guard("create", client.producer(TOPIC).create())
        .await
        .expect("producer");
    let closing = tokio::spawn(async move { producer.close().await });
    let (conn, _) = peer.expect_on(Type::CloseProducer).await;
    peer.disconnect(conn);
    let closed = guard("close", closing).await.expect("the close task");
    assert!(closed.is_ok(), "{closed:?}");
}

/// An UNSUBSCRIBE the connection loss cut off did not happen: that stays an error.
#[tokio::test]
async fn an_unsubscribe_cut_off_by_the_connection_going_fails() {
    let mut peer = Peer::start().await;
    peer.ignore(Type::Unsubscribe);
    let client = client(&peer);
    let consumer = guard(
        "subscribe",
        client.consumer(TOPIC).subscription("s").subscribe(),
    )
    .await
    .expect("subscribe");
    let unsubscribing = tokio::spawn(async move { consumer.unsubscribe().await });
    let (conn, _) = peer.expect_on(Type::Unsubscribe).await;
    peer.disconnect(conn);
    let result = guard("unsubscribe", unsubscribing)
        .await
        .expect("the unsubscribe task");
    assert!(matches!(result, Err(Error::Connection(_))), "{result:?}");
}
