//! Producer options as they appear on the wire, against a scripted peer (`support::peer`): the
//! exact PRODUCER, SEND and metadata fields each option sets, and the broker answers that only a
//! real Apache Pulsar gives (WaitForExclusive queuing, ProducerFenced), which pulsar-lite never
//! sends (it ignores access modes, schemas, delayed delivery and replication).

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use prost::Message as _;
use pulsar_wire::compression::{self, Compression};
use pulsar_wire::wire::proto::{self, KeyValue};
use pulsar_wire::wire::{self, BatchEntry, Frame};
use pulsar_wire::{partition_for_key, HashingScheme};
use pulsar_wire::{
    AccessMode, Error, InitialPosition, Producer, ProducerBuilder, ProducerMessage, PulsarClient,
    SchemaInfo, ServerErrorCode, SubscriptionType,
};
use support::peer::{self, Peer, Type};

const TOPIC: &str = "persistent://public/default/options-topic";
/// The max message size the peer announces (its default): bounds what batches decompress to.
const MAX_MESSAGE_SIZE: usize = wire::DEFAULT_MAX_MESSAGE_SIZE;
/// Batches that close only on a flush or a count, never on time, whatever the machine's speed.
const NEVER: Duration = Duration::from_secs(600);

fn client(peer: &Peer) -> PulsarClient {
    client_with_timeout(peer, Duration::from_secs(5))
}

fn client_with_timeout(peer: &Peer, timeout: Duration) -> PulsarClient {
    PulsarClient::builder(peer.url())
        .operation_timeout(timeout)
        .build()
        .expect("client")
}

/// A liveness guard for operations of the client.
async fn guard<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(peer::WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {:?}", peer::WAIT))
}

async fn create(builder: ProducerBuilder) -> Producer {
    guard("create", builder.create()).await.expect("producer")
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: value.into(),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The next SEND: its command and payload section.
async fn next_send(peer: &mut Peer) -> (proto::CommandSend, wire::Payload) {
    let frame = peer.expect(Type::Send).await;
    (
        frame.command.send.expect("SEND body"),
        frame.payload.expect("SEND payload"),
    )
}

/// The entries of a batch SEND (decompressed first when compressed).
fn batch_entries(payload: &wire::Payload) -> Vec<BatchEntry> {
    let md = &payload.metadata;
    let count = md.num_messages_in_batch.expect("a batch") as u32;
    let data = match md.compression.and_then(Compression::from_wire) {
        None | Some(Compression::None) => payload.data.clone(),
        Some(codec) => compression::decompress(
            codec,
            &payload.data,
            md.uncompressed_size.expect("uncompressed size") as usize,
            MAX_MESSAGE_SIZE,
        )
        .expect("the batch decompresses"),
    };
    wire::parse_batch(data, count, wire::max_frame_size_for(MAX_MESSAGE_SIZE))
        .collect::<Result<Vec<_>, _>>()
        .expect("the batch parses")
}

fn producer_success(request_id: u64, name: &str, ready: bool) -> Bytes {
    peer::encode(&proto::BaseCommand {
        producer_success: Some(Box::new(proto::CommandProducerSuccess {
            request_id,
            producer_name: name.to_owned(),
            last_sequence_id: Some(-1),
            producer_ready: Some(ready),
            ..Default::default()
        })),
        ..peer::command(Type::ProducerSuccess)
    })
}

fn error_reply(request_id: u64, code: proto::ServerError, message: &str) -> Bytes {
    peer::encode(&proto::BaseCommand {
        error: Some(Box::new(proto::CommandError {
            request_id,
            error: code as i32,
            message: message.to_owned(),
        })),
        ..peer::command(Type::Error)
    })
}

// --- access modes ------------------------------------------------------------------------------

#[tokio::test]
async fn every_access_mode_is_carried_on_producer() {
    let mut peer = Peer::start().await;
    let client = client(&peer);
    let default = create(client.producer(TOPIC)).await;
    let p = peer.expect(Type::Producer).await.command.producer.unwrap();
    assert_eq!(
        p.producer_access_mode,
        Some(proto::ProducerAccessMode::Shared as i32),
        "the default"
    );
    default.close().await.expect("close");

    for (mode, wire_mode) in [
        (AccessMode::Shared, proto::ProducerAccessMode::Shared),
        (AccessMode::Exclusive, proto::ProducerAccessMode::Exclusive),
        (
            AccessMode::WaitForExclusive,
            proto::ProducerAccessMode::WaitForExclusive,
        ),
        (
            AccessMode::ExclusiveWithFencing,
            proto::ProducerAccessMode::ExclusiveWithFencing,
        ),
    ] {
        let producer = create(client.producer(TOPIC).access_mode(mode)).await;
        let p = peer.expect(Type::Producer).await.command.producer.unwrap();
        assert_eq!(
            p.producer_access_mode,
            Some(wire_mode as i32),
            "{mode:?} on PRODUCER"
        );
        producer.close().await.expect("close");
    }
}

/// WaitForExclusive: the broker answers PRODUCER_SUCCESS with `producer_ready = false` while
/// another producer holds the topic, and a second PRODUCER_SUCCESS (same request id) when this
/// one gets it. `create()` completes only after the second, however long past the operation
/// timeout that comes.
#[tokio::test]
async fn wait_for_exclusive_completes_on_the_second_producer_success() {
    let mut peer = Peer::start().await;
    peer.set_handler(|_, frame| {
        let p = frame.command.producer.as_ref()?;
        Some(vec![producer_success(p.request_id, "queued-name", false)])
    });
    let operation_timeout = Duration::from_millis(300);
    let client = client_with_timeout(&peer, operation_timeout);
    let creating = tokio::spawn(
        client
            .producer(TOPIC)
            .access_mode(AccessMode::WaitForExclusive)
            .create(),
    );
    let p = peer.expect(Type::Producer).await.command.producer.unwrap();
    assert_eq!(
        p.producer_access_mode,
        Some(proto::ProducerAccessMode::WaitForExclusive as i32)
    );

    // Three operation timeouts later it still waits: not ready is not an answer, and the
    // request no longer times out.
    tokio::time::sleep(operation_timeout * 3).await;
    assert!(
        !creating.is_finished(),
        "create() completed on a PRODUCER_SUCCESS that said not ready: {:?}",
        creating.await
    );

    peer.clear_handler();
    peer.push(producer_success(p.request_id, "exclusive-name", true));
    let producer = guard("create", creating)
        .await
        .expect("the create task")
        .expect("create() completes on the ready PRODUCER_SUCCESS");
    assert_eq!(producer.name(), "exclusive-name");
    assert_eq!(
        peer.received(Type::Producer).len(),
        1,
        "no second PRODUCER was needed"
    );

    let id = guard("send", producer.send("exclusive"))
        .await
        .expect("send once ready");
    assert_eq!((id.ledger_id, id.entry_id), (1, 0));
    let (send, payload) = next_send(&mut peer).await;
    assert_eq!(send.producer_id, p.producer_id);
    assert_eq!(payload.metadata.producer_name, "exclusive-name");
}

#[tokio::test]
async fn a_fenced_producer_fails_with_producer_fenced() {
    let mut peer = Peer::start().await;
    peer.set_handler(|_, frame| {
        let p = frame.command.producer.as_ref()?;
        Some(vec![error_reply(
            p.request_id,
            proto::ServerError::ProducerFenced,
            "fenced by a newer exclusive producer",
        )])
    });
    let client = client(&peer);
    let err = guard(
        "create",
        client
            .producer(TOPIC)
            .access_mode(AccessMode::Exclusive)
            .create(),
    )
    .await
    .expect_err("the broker fenced the producer");
    match &err {
        Error::Server { error, .. } => {
            assert_eq!(error.code, ServerErrorCode::ProducerFenced, "{err:?}");
            assert_eq!(error.message, "fenced by a newer exclusive producer");
        }
        other => panic!("expected Error::Server with ProducerFenced, got {other:?}"),
    }
    assert!(!err.is_retriable(), "fencing is final: {err:?}");
    let p = peer.expect(Type::Producer).await.command.producer.unwrap();
    assert_eq!(
        p.producer_access_mode,
        Some(proto::ProducerAccessMode::Exclusive as i32)
    );
}

// --- sequence ids ------------------------------------------------------------------------------

#[tokio::test]
async fn a_user_sequence_id_is_sent_and_the_next_message_follows_it() {
    let mut peer = Peer::start().await;
    let client = client(&peer);
    let producer = create(client.producer(TOPIC).batching(false)).await;

    guard(
        "send",
        producer.send(ProducerMessage::new("chosen").sequence_id(100)),
    )
    .await
    .expect("send");
    let (send, payload) = next_send(&mut peer).await;
    assert_eq!(send.sequence_id, 100, "SEND");
    assert_eq!(payload.metadata.sequence_id, 100, "metadata");

    guard("send", producer.send("next")).await.expect("send");
    let (send, payload) = next_send(&mut peer).await;
    assert_eq!(send.sequence_id, 101, "the next message without one");
    assert_eq!(payload.metadata.sequence_id, 101);
}

#[tokio::test]
async fn initial_sequence_id_is_the_one_before_the_first() {
    let mut peer = Peer::start().await;
    // The broker's last stored id is ignored when the application gives one.
    peer.set_last_sequence_id(500);
    let client = client(&peer);
    let producer = create(
        client
            .producer(TOPIC)
            .batching(false)
            .initial_sequence_id(9),
    )
    .await;
    for expected in [10, 11] {
        guard("send", producer.send("m")).await.expect("send");
        let (send, payload) = next_send(&mut peer).await;
        assert_eq!(send.sequence_id, expected);
        assert_eq!(payload.metadata.sequence_id, expected);
    }
}

// --- delayed delivery and replication ------------------------------------------------------------

/// With batching on, a delayed message is sent on its own, after the batch open before it.
#[tokio::test]
async fn delayed_messages_carry_deliver_at_time_and_are_never_batched() {
    let mut peer = Peer::start().await;
    let client = client(&peer);
    let producer = create(
        client
            .producer(TOPIC)
            .batching(true)
            .batching_max_publish_delay(NEVER),
    )
    .await;
    let at = 1_900_000_000_000u64;
    let mut receipts = Vec::new();
    receipts.push(producer.send_async("batched").await.expect("queued"));
    receipts.push(
        producer
            .send_async(ProducerMessage::new("at").deliver_at(at))
            .await
            .expect("queued"),
    );
    let before = now_ms();
    receipts.push(
        producer
            .send_async(ProducerMessage::new("after").deliver_after(Duration::from_secs(10)))
            .await
            .expect("queued"),
    );
    let after = now_ms();
    receipts.push(producer.send_async("batched again").await.expect("queued"));
    guard("flush", producer.flush()).await.expect("flush");

    // 1: the batch open before the delayed message, closed to keep the order.
    let (send, payload) = next_send(&mut peer).await;
    assert_eq!((send.sequence_id, send.num_messages), (0, Some(1)));
    assert_eq!(payload.metadata.num_messages_in_batch, Some(1));
    assert_eq!(payload.metadata.deliver_at_time, None);
    // 2 and 3: the delayed messages, each alone.
    let (send, payload) = next_send(&mut peer).await;
    assert_eq!((send.sequence_id, send.num_messages), (1, None));
    assert_eq!(payload.metadata.num_messages_in_batch, None, "not batched");
    assert_eq!(payload.metadata.deliver_at_time, Some(at as i64));
    assert_eq!(&payload.data[..], b"at");
    let (send, payload) = next_send(&mut peer).await;
    assert_eq!((send.sequence_id, send.num_messages), (2, None));
    assert_eq!(payload.metadata.num_messages_in_batch, None, "not batched");
    let deliver_at = payload.metadata.deliver_at_time.expect("deliver_at_time") as u64;
    assert!(
        (before + 10_000..=after + 10_000).contains(&deliver_at),
        "deliver_after(10 s) between {before}+10000 and {after}+10000: {deliver_at}"
    );
    assert_eq!(&payload.data[..], b"after");
    // 4: batching resumes.
    let (send, payload) = next_send(&mut peer).await;
    assert_eq!(send.sequence_id, 3);
    assert_eq!(payload.metadata.num_messages_in_batch, Some(1));
    for r in receipts {
        guard("receipt", r).await.expect("receipt");
    }
}

#[tokio::test]
async fn replication_clusters_set_replicate_to_and_are_never_batched() {
    let mut peer = Peer::start().await;
    let client = client(&peer);
    let producer = create(
        client
            .producer(TOPIC)
            .batching(true)
            .batching_max_publish_delay(NEVER),
    )
    .await;
    let mut receipts = Vec::new();
    receipts.push(
        producer
            .send_async(
                ProducerMessage::new("to a and b")
                    .replication_clusters(vec!["a".to_string(), "b".to_string()]),
            )
            .await
            .expect("queued"),
    );
    receipts.push(
        producer
            .send_async(ProducerMessage::new("local only").disable_replication())
            .await
            .expect("queued"),
    );
    receipts.push(producer.send_async("everywhere").await.expect("queued"));
    guard("flush", producer.flush()).await.expect("flush");

    let (send, payload) = next_send(&mut peer).await;
    assert_eq!(send.num_messages, None);
    assert_eq!(payload.metadata.replicate_to, vec!["a", "b"]);
    assert_eq!(payload.metadata.num_messages_in_batch, None, "not batched");
    let (send, payload) = next_send(&mut peer).await;
    assert_eq!(send.num_messages, None);
    assert_eq!(payload.metadata.replicate_to, vec!["__local__"]);
    assert_eq!(payload.metadata.num_messages_in_batch, None, "not batched");
    let (_, payload) = next_send(&mut peer).await;
    assert!(payload.metadata.replicate_to.is_empty(), "no override");
    assert_eq!(payload.metadata.num_messages_in_batch, Some(1), "batched");
    for r in receipts {
        guard("receipt", r).await.expect("receipt");
    }
}

// --- PRODUCER and SUBSCRIBE fields -----------------------------------------------------------------

#[tokio::test]
async fn producer_properties_are_the_producer_metadata() {
    let mut peer = Peer::start().await;
    let client = client(&peer);
    let _producer = create(
        client
            .producer(TOPIC)
            .property("app", "billing")
            .property("région", "eu ✓"),
    )
    .await;
    let p = peer.expect(Type::Producer).await.command.producer.unwrap();
    assert_eq!(p.metadata, vec![kv("app", "billing"), kv("région", "eu ✓")]);
    assert_eq!(p.schema, None, "no schema declared");
    assert_eq!(p.initial_subscription_name, None);
}

const AVRO: &str = r#"{"type":"record","name":"User","fields":[{"name":"id","type":"long"},{"name":"name","type":"string"}]}"#;
const JSON_DEF: &str = r#"{"type":"record","name":"Event","fields":[{"name":"at","type":"long"}]}"#;

#[tokio::test]
async fn schemas_are_declared_on_producer() {
    let mut peer = Peer::start().await;
    let client = client(&peer);
    for (schema, kind, data) in [
        (SchemaInfo::avro(AVRO), proto::schema::Type::Avro, AVRO),
        (
            SchemaInfo::json(JSON_DEF),
            proto::schema::Type::Json,
            JSON_DEF,
        ),
        (SchemaInfo::string(), proto::schema::Type::String, ""),
    ] {
        let producer = create(client.producer(TOPIC).schema_info(schema.clone())).await;
        let p = peer.expect(Type::Producer).await.command.producer.unwrap();
        let declared = p
            .schema
            .unwrap_or_else(|| panic!("{kind:?}: PRODUCER carries a schema"));
        assert_eq!(declared.r#type, kind as i32, "{kind:?}: type");
        assert_eq!(&declared.schema_data[..], data.as_bytes(), "{kind:?}: data");
        producer.close().await.expect("close");
    }
    let producer = create(client.producer(TOPIC).schema_info(SchemaInfo::bytes())).await;
    let p = peer.expect(Type::Producer).await.command.producer.unwrap();
    assert_eq!(p.schema, None, "bytes declare nothing");
    producer.close().await.expect("close");
}

#[tokio::test]
async fn a_consumer_schema_is_declared_on_subscribe() {
    let mut peer = Peer::start().await;
    let client = client(&peer);
    for (schema, expected) in [
        (
            Some(SchemaInfo::avro(AVRO)),
            Some((proto::schema::Type::Avro, AVRO)),
        ),
        (
            Some(SchemaInfo::json(JSON_DEF)),
            Some((proto::schema::Type::Json, JSON_DEF)),
        ),
        (
            Some(SchemaInfo::string()),
            Some((proto::schema::Type::String, "")),
        ),
        (Some(SchemaInfo::bytes()), None),
        (None, None),
    ] {
        let mut builder = client
            .consumer(TOPIC)
            .subscription("schema-sub")
            .subscription_type(SubscriptionType::Shared)
            .initial_position(InitialPosition::Earliest);
        if let Some(s) = schema.clone() {
            builder = builder.schema_info(s);
        }
        let consumer = guard("subscribe", builder.subscribe())
            .await
            .expect("subscribe");
        let sub = peer
            .expect(Type::Subscribe)
            .await
            .command
            .subscribe
            .unwrap();
        match expected {
            None => assert_eq!(sub.schema, None, "{schema:?}: no schema on SUBSCRIBE"),
            Some((kind, data)) => {
                let declared = sub.schema.expect("SUBSCRIBE carries the schema");
                assert_eq!(declared.r#type, kind as i32, "{kind:?}: type");
                assert_eq!(&declared.schema_data[..], data.as_bytes(), "{kind:?}: data");
            }
        }
        guard("close", consumer.close()).await.expect("close");
    }
}

#[tokio::test]
async fn initial_subscription_name_is_carried_on_producer() {
    let mut peer = Peer::start().await;
    let client = client(&peer);
    let _producer = create(client.producer(TOPIC).initial_subscription_name("x")).await;
    let p = peer.expect(Type::Producer).await.command.producer.unwrap();
    assert_eq!(p.initial_subscription_name.as_deref(), Some("x"));
}

// --- batching --------------------------------------------------------------------------------------

#[tokio::test]
async fn three_quick_messages_are_one_batch_send() {
    let mut peer = Peer::start().await;
    let client = client(&peer);
    let producer = create(
        client
            .producer(TOPIC)
            .batching(true)
            .batching_max_publish_delay(NEVER),
    )
    .await;
    let mut receipts = Vec::new();
    for i in 0..3 {
        let msg = ProducerMessage::new(format!("m{i}"))
            .property("i", i.to_string())
            .event_time(1_000 + i);
        receipts.push(producer.send_async(msg).await.expect("queued"));
    }
    guard("flush", producer.flush()).await.expect("flush");

    let (send, payload) = next_send(&mut peer).await;
    assert_eq!(send.sequence_id, 0, "the batch's first sequence id");
    assert_eq!(send.num_messages, Some(3));
    assert_eq!(send.highest_sequence_id, Some(2));
    let md = &payload.metadata;
    assert_eq!(md.sequence_id, 0);
    assert_eq!(md.num_messages_in_batch, Some(3));
    assert_eq!(md.highest_sequence_id, Some(2), "the last id");
    assert_eq!(md.compression, None);
    assert_eq!(md.uncompressed_size, Some(payload.data.len() as u32));
    let entries = batch_entries(&payload);
    assert_eq!(entries.len(), 3);
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e.payload, Bytes::from(format!("m{i}")), "entry {i}");
        assert_eq!(e.metadata.sequence_id, Some(i as u64), "entry {i}: own id");
        assert_eq!(e.metadata.properties, vec![kv("i", &i.to_string())]);
        assert_eq!(e.metadata.event_time, Some(1_000 + i as u64));
    }
    for (i, r) in receipts.into_iter().enumerate() {
        let id = guard("receipt", r).await.expect("receipt");
        assert_eq!((id.ledger_id, id.entry_id), (1, 0), "receipt {i}");
        assert_eq!(
            (id.batch_index, id.batch_size),
            (i as i32, 3),
            "receipt {i}"
        );
    }
    assert_eq!(peer.received(Type::Send).len(), 1, "one SEND for the three");
}

/// Key-based batching: keys a, b, a make two SENDs, each holding one key, in the order of
/// their first sequence ids.
#[tokio::test]
async fn key_based_batching_sends_one_key_per_batch() {
    let mut peer = Peer::start().await;
    let client = client(&peer);
    let producer = create(
        client
            .producer(TOPIC)
            .batching(true)
            .key_based_batching(true)
            .batching_max_publish_delay(NEVER),
    )
    .await;
    let mut receipts = Vec::new();
    for (i, key) in ["a", "b", "a"].into_iter().enumerate() {
        let msg = ProducerMessage::new(format!("{key}{i}")).partition_key(key);
        receipts.push(producer.send_async(msg).await.expect("queued"));
    }
    guard("flush", producer.flush()).await.expect("flush");

    let (send_a, payload_a) = next_send(&mut peer).await;
    let (send_b, payload_b) = next_send(&mut peer).await;
    assert_eq!(
        (send_a.sequence_id, send_a.highest_sequence_id),
        (0, Some(2)),
        "a's batch first: it starts at 0"
    );
    assert_eq!(
        (send_b.sequence_id, send_b.highest_sequence_id),
        (1, Some(1))
    );
    assert_eq!(payload_a.metadata.partition_key.as_deref(), Some("a"));
    assert_eq!(payload_b.metadata.partition_key.as_deref(), Some("b"));
    let a: Vec<(Option<String>, u64, Bytes)> = batch_entries(&payload_a)
        .into_iter()
        .map(|e| {
            (
                e.metadata.partition_key,
                e.metadata.sequence_id.expect("id"),
                e.payload,
            )
        })
        .collect();
    assert_eq!(
        a,
        vec![
            (Some("a".into()), 0, Bytes::from("a0")),
            (Some("a".into()), 2, Bytes::from("a2"))
        ]
    );
    let b = batch_entries(&payload_b);
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].metadata.partition_key.as_deref(), Some("b"));
    assert_eq!(b[0].payload, Bytes::from("b1"));

    let ids: Vec<_> = {
        let mut ids = Vec::new();
        for r in receipts {
            ids.push(guard("receipt", r).await.expect("receipt"));
        }
        ids
    };
    // The peer stores a's batch at entry 0 and b's at entry 1.
    assert_eq!((ids[0].entry_id, ids[0].batch_index), (0, 0), "a0");
    assert_eq!((ids[1].entry_id, ids[1].batch_index), (1, 0), "b1");
    assert_eq!((ids[2].entry_id, ids[2].batch_index), (0, 1), "a2");
}

// --- compression -------------------------------------------------------------------------------

#[tokio::test]
async fn compressed_sends_carry_codec_and_size_and_decompress_to_the_batch() {
    let mut peer = Peer::start().await;
    let client = client(&peer);
    for codec in [
        Compression::Lz4,
        Compression::Zlib,
        Compression::Zstd,
        Compression::Snappy,
    ] {
        let payloads: Vec<String> = (0..3)
            .map(|i| format!("{codec:?} message {i} ").repeat(50))
            .collect();
        let batched = create(
            client
                .producer(TOPIC)
                .compression(codec)
                .batching(true)
                .batching_max_publish_delay(NEVER),
        )
        .await;
        let mut receipts = Vec::new();
        for p in &payloads {
            receipts.push(batched.send_async(p.clone()).await.expect("queued"));
        }
        guard("flush", batched.flush()).await.expect("flush");
        for r in receipts {
            guard("receipt", r).await.expect("receipt");
        }
        let (send, payload) = next_send(&mut peer).await;
        assert_eq!(send.num_messages, Some(3));
        let md = &payload.metadata;
        assert_eq!(md.compression, Some(codec.to_wire()), "{codec:?}");
        let size = md.uncompressed_size.expect("uncompressed size") as usize;
        assert!(
            payload.data.len() < size,
            "{codec:?}: {} compressed bytes for {size}",
            payload.data.len()
        );
        let entries = batch_entries(&payload);
        let got: Vec<Bytes> = entries.into_iter().map(|e| e.payload).collect();
        let expected: Vec<Bytes> = payloads.iter().map(|p| Bytes::from(p.clone())).collect();
        assert_eq!(got, expected, "{codec:?}: the batch");
        // The uncompressed size is the batch's: its entries, framed.
        let mut framed = bytes::BytesMut::new();
        for (i, p) in payloads.iter().enumerate() {
            let mut single = proto::SingleMessageMetadata {
                sequence_id: Some(i as u64),
                ..Default::default()
            };
            wire::encode_entry(&mut single, p.as_bytes(), &mut framed);
        }
        assert_eq!(size, framed.len(), "{codec:?}: uncompressed size");
        batched.close().await.expect("close");

        let single = create(client.producer(TOPIC).compression(codec).batching(false)).await;
        let text = format!("{codec:?} alone ").repeat(40);
        guard("send", single.send(text.clone()))
            .await
            .expect("send");
        let (_, payload) = next_send(&mut peer).await;
        let md = &payload.metadata;
        assert_eq!(md.compression, Some(codec.to_wire()), "{codec:?} alone");
        assert_eq!(md.uncompressed_size, Some(text.len() as u32));
        let data = compression::decompress(codec, &payload.data, text.len(), MAX_MESSAGE_SIZE)
            .expect("decompresses");
        assert_eq!(&data[..], text.as_bytes(), "{codec:?} alone");
        single.close().await.expect("close");
    }
}

// --- chunking ----------------------------------------------------------------------------------

#[tokio::test]
async fn a_large_message_is_sent_as_chunks_of_one_sequence_id() {
    let mut peer = Peer::start().await;
    // Receipts at ledger 9, entries 100, 101, ... (the default answer counts from 0).
    let entry = Arc::new(Mutex::new(100u64));
    let next = entry.clone();
    peer.set_handler(move |_, frame| {
        let send = frame.command.send.as_ref()?;
        let mut e = next.lock().unwrap();
        let reply = peer::send_receipt(send.producer_id, send.sequence_id, 9, *e);
        *e += 1;
        Some(vec![peer::encode(&reply)])
    });
    let client = client(&peer);
    let producer = create(client.producer(TOPIC).chunking(true).chunk_max_size(2048)).await;
    let name = producer.name();
    assert!(!name.is_empty(), "the broker named the producer");
    // A small message first: the big one gets sequence id 1.
    guard("send", producer.send("small")).await.expect("send");
    let payload: Vec<u8> = (0..10 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    let id = guard("send", producer.send(payload.clone()))
        .await
        .expect("send the big message");

    let (small, small_payload) = next_send(&mut peer).await;
    assert_eq!(small.sequence_id, 0);
    assert_eq!(small.is_chunk, None, "a small message is no chunk");
    assert_eq!(small_payload.metadata.uuid, None);

    let sends = peer.received(Type::Send);
    let chunks: Vec<&Frame> = sends[1..].iter().collect();
    let n = chunks.len();
    assert!(
        (5..=10).contains(&n),
        "10 KB in chunks of at most 2 KiB: {n} chunks"
    );
    let mut joined = Vec::new();
    for (i, frame) in chunks.iter().enumerate() {
        let send = frame.command.send.as_ref().expect("SEND");
        let p = frame.payload.as_ref().expect("payload");
        let md = &p.metadata;
        assert_eq!(send.is_chunk, Some(true), "chunk {i}: is_chunk");
        assert_eq!(send.sequence_id, 1, "chunk {i}: the message's sequence id");
        assert_eq!(md.sequence_id, 1, "chunk {i}: metadata sequence id");
        assert_eq!(
            md.uuid.as_deref(),
            Some(format!("{name}-1").as_str()),
            "chunk {i}: uuid"
        );
        assert_eq!(md.chunk_id, Some(i as i32), "chunk {i}: chunk id");
        assert_eq!(md.num_chunks_from_msg, Some(n as i32), "chunk {i}: count");
        assert_eq!(
            md.total_chunk_msg_size,
            Some(payload.len() as i32),
            "chunk {i}: total size"
        );
        assert_eq!(md.num_messages_in_batch, None, "chunk {i}: no batch");
        assert!(
            p.data.len() + md.encoded_len() <= 2048,
            "chunk {i}: {} bytes of payload and {} of metadata exceed 2048",
            p.data.len(),
            md.encoded_len()
        );
        joined.extend_from_slice(&p.data);
    }
    assert!(joined == payload, "the chunks join into the payload");

    // The small message was entry 100; the chunks 101 ..= 100 + n.
    assert_eq!(
        (id.ledger_id, id.entry_id),
        (9, 100 + n as i64),
        "the last chunk"
    );
    let first = id.first_chunk.expect("first_chunk");
    assert_eq!(
        (first.ledger_id, first.entry_id),
        (9, 101),
        "the first chunk"
    );
}

// --- partitions ------------------------------------------------------------------------------------

/// A producer on a 2-partition topic creates one PRODUCER per partition and routes keyed
/// messages by Murmur3, as the Java client. (Partitions added later are picked up by a watcher
/// that checks once a minute: too slow to wait for here.)
#[tokio::test]
async fn a_partitioned_producer_routes_keys_by_murmur3() {
    let mut peer = Peer::start().await;
    peer.set_partitions(2);
    let client = client(&peer);
    let producer = create(
        client
            .producer(TOPIC)
            .batching(false)
            .hashing_scheme(HashingScheme::Murmur3),
    )
    .await;
    assert_eq!(producer.partitions(), 2);
    let mut ids_by_partition = std::collections::BTreeMap::new();
    for _ in 0..2 {
        let p = peer.expect(Type::Producer).await.command.producer.unwrap();
        ids_by_partition.insert(p.topic.clone(), p.producer_id);
    }
    let topics: Vec<&String> = ids_by_partition.keys().collect();
    assert_eq!(
        topics,
        vec![
            &format!("{TOPIC}-partition-0"),
            &format!("{TOPIC}-partition-1")
        ]
    );
    let partition_of_producer = |producer_id: u64| -> u32 {
        let topic = ids_by_partition
            .iter()
            .find(|(_, id)| **id == producer_id)
            .map(|(t, _)| t)
            .expect("a known producer id");
        topic
            .rsplit_once("-partition-")
            .and_then(|(_, n)| n.parse().ok())
            .expect("a partition topic")
    };

    let keys: Vec<String> = (0..20).map(|i| format!("key-{i}")).collect();
    let mut used = std::collections::BTreeSet::new();
    for key in &keys {
        let expected = partition_for_key(key, 2, HashingScheme::Murmur3);
        used.insert(expected);
        let id = guard(
            "send",
            producer.send(ProducerMessage::new(key.clone()).partition_key(key.clone())),
        )
        .await
        .expect("send");
        assert_eq!(id.partition, expected as i32, "{key}: receipt partition");
        let (send, payload) = next_send(&mut peer).await;
        assert_eq!(
            partition_of_producer(send.producer_id),
            expected,
            "{key}: sent on partition {expected}'s producer"
        );
        assert_eq!(
            payload.metadata.partition_key.as_deref(),
            Some(key.as_str())
        );
    }
    assert_eq!(used.len(), 2, "the keys use both partitions");
}

// --- creating the producer, and its timers while it re-attaches -------------------------------

#[tokio::test]
async fn create_retries_transient_errors_until_the_producer_is_created() {
    let mut peer = Peer::start().await;
    let answers = Arc::new(Mutex::new(vec![
        (proto::ServerError::ServiceNotReady, "the topic is loading"),
        (
            proto::ServerError::ProducerBusy,
            "the previous producer is still there",
        ),
    ]));
    let left = answers.clone();
    peer.set_handler(move |_, frame| {
        let p = frame.command.producer.as_ref()?;
        let (code, message) = {
            let mut left = left.lock().unwrap();
            if left.is_empty() {
                return None;
            }
            left.remove(0)
        };
        Some(vec![error_reply(p.request_id, code, message)])
    });
    let client = client(&peer);
    let producer = create(client.producer(TOPIC)).await;
    assert!(answers.lock().unwrap().is_empty());
    let epochs: Vec<u64> = peer
        .received(Type::Producer)
        .iter()
        .map(|f| f.command.producer.as_ref().unwrap().epoch.unwrap_or(0))
        .collect();
    assert_eq!(
        epochs,
        vec![0, 1, 2],
        "three attempts, each with the next epoch"
    );
    let id = guard("send", producer.send("after the retries")).await;
    assert!(id.is_ok(), "{id:?}");
    let _ = peer.expect(Type::Send).await;
}

#[tokio::test]
async fn a_send_times_out_while_the_producer_re_attaches() {
    let mut peer = Peer::start().await;
    // A long operation timeout: the re-attach below stays in flight far beyond the send timeout.
    let client = client_with_timeout(&peer, Duration::from_secs(60));
    let producer = create(
        client
            .producer(TOPIC)
            .batching(false)
            .send_timeout(Duration::from_millis(200)),
    )
    .await;
    let (conn, _) = peer.expect_on(Type::Producer).await;
    peer.ignore(Type::Producer);
    peer.disconnect(conn);
    // The re-attach's PRODUCER, which the peer leaves unanswered.
    loop {
        match peer.next_event().await {
            peer::Event::Frame(_, f) if f.command.r#type == Type::Producer as i32 => break,
            _ => {}
        }
    }
    let receipt = guard("send_async", producer.send_async("while detached"))
        .await
        .expect("queued");
    let err = guard("the receipt", receipt).await.expect_err("timed out");
    assert!(matches!(err, Error::SendTimeout(_)), "{err:?}");
}
