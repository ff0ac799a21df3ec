//! Interoperability with the official Java client (`pulsar-client-original`, the version
//! `scripts/apache-pulsar.sh install` resolved) in both directions, on Apache Pulsar.
//!
//! The Java side is `pulsarwire.JavaPeer` (tests/apache-pulsar/src/main/java), run by
//! tests/support/java.rs, which compiles it with `scripts/java-peer.sh build` (which
//! `apache-pulsar.sh install` runs, and which this binary runs once: a no-op when nothing
//! changed). Each run is `java pulsarwire.JavaPeer produce` or
//! `consume` with one JSON spec on stdin; it prints JSON lines on stdout: `subscribed`, `sent`,
//! `message`, `dead_letter`, `done`, or `error` (then exit status 1). Payloads travel as hex.
//!
//! pulsar-wire's side of the codec and chunking tests talks to the broker through a
//! [`Tap`](support::tap::Tap), so that they also assert what was on the wire (the Java producer
//! really compressed, really sent chunks).
//!
//! Every test runs on one Apache Pulsar standalone of this binary, with batch-index acks on
//! (`acknowledgmentAtBatchIndexLevelEnabled=true`).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pulsar_wire::compression::Compression;
use pulsar_wire::wire::proto::base_command::Type;
use pulsar_wire::wire::proto::MessageMetadata;
use pulsar_wire::{
    java_message_id, ORIGIN_MESSAGE_ID, ORIGIN_MESSAGE_ID_LEGACY, REAL_SUBSCRIPTION, REAL_TOPIC,
};
use pulsar_wire::{partition_for_key, HashingScheme};
use pulsar_wire::{
    Consumer, DeadLetterPolicy, InitialPosition, Message, MessageId, ProducerMessage, PulsarClient,
    SchemaInfo, ServerErrorCode, SubscriptionType,
};
use serde_json::{json, Value};
use support::tap::{metadata, Seen, Tap};

/// Liveness guard around each receive of a message that must come.
const RECEIVE_GUARD: Duration = Duration::from_secs(30);
/// How long to listen for messages that must not come.
const QUIET: Duration = Duration::from_secs(2);

fn broker() -> &'static support::Broker {
    support::apache_with(
        &support::ApacheOptions::plain().config("acknowledgmentAtBatchIndexLevelEnabled", "true"),
    )
}

fn client(url: &str) -> PulsarClient {
    PulsarClient::builder(url)
        .operation_timeout(Duration::from_secs(15))
        .build()
        .expect("client")
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

// --- the Java peer (tests/support/java.rs) ------------------------------------------------------

use support::java::{done, events, hex, int, short, text, Peer};

/// Runs `JavaPeer <command>` on this binary's broker to its end.
async fn java(command: &'static str, spec: Value) -> Vec<Value> {
    support::java::run(broker().url(), command, spec).await
}
/// (ledger, entry, batch index, partition) of a peer line.
fn java_id(v: &Value) -> (i64, i64, i64, i64) {
    (
        int(v, "ledger_id"),
        int(v, "entry_id"),
        int(v, "batch_index"),
        int(v, "partition"),
    )
}

fn wire_id(id: MessageId) -> (i64, i64, i64, i64) {
    (
        id.ledger_id,
        id.entry_id,
        i64::from(id.batch_index),
        i64::from(id.partition),
    )
}

fn properties_of(v: &Value) -> BTreeMap<String, String> {
    v["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("no properties in {}", short(v)))
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str().expect("a string property").to_string(),
            )
        })
        .collect()
}

async fn receive_one(consumer: &mut Consumer, what: &str) -> Message {
    tokio::time::timeout(RECEIVE_GUARD, consumer.receive())
        .await
        .unwrap_or_else(|_| panic!("{what}: no message within {RECEIVE_GUARD:?}"))
        .unwrap_or_else(|e| panic!("{what}: receive failed: {e}"))
}

async fn subscribe(client: &PulsarClient, topic: &str, sub: &str) -> Consumer {
    client
        .consumer(topic)
        .subscription(sub)
        .subscription_type(SubscriptionType::Shared)
        .initial_position(InitialPosition::Earliest)
        .subscribe()
        .await
        .expect("subscribe")
}

async fn assert_quiet(consumer: &mut Consumer, what: &str) {
    let more = consumer.receive_timeout(QUIET).await.expect("receive");
    assert!(
        more.is_none(),
        "{what}: an unexpected message came: {:?}",
        more.map(|m| (m.id(), m.redelivery_count()))
    );
}

// --- the messages both sides send --------------------------------------------------------------

/// One message: payload, properties, partition key, ordering key, event time.
#[derive(Debug, Clone, PartialEq)]
struct Spec {
    payload: Vec<u8>,
    properties: BTreeMap<String, String>,
    key: Option<String>,
    ordering_key: Option<Vec<u8>>,
    event_time: Option<u64>,
}

impl Spec {
    fn plain(payload: Vec<u8>) -> Spec {
        Spec {
            payload,
            properties: BTreeMap::new(),
            key: None,
            ordering_key: None,
            event_time: None,
        }
    }

    fn to_message(&self) -> ProducerMessage {
        let mut msg = ProducerMessage::new(self.payload.clone());
        for (k, v) in &self.properties {
            msg = msg.property(k, v);
        }
        if let Some(key) = &self.key {
            msg = msg.partition_key(key);
        }
        if let Some(key) = &self.ordering_key {
            msg = msg.ordering_key(key.clone());
        }
        if let Some(t) = self.event_time {
            msg = msg.event_time(t);
        }
        msg
    }

    /// The message as the peer's `produce` spec has it.
    fn to_json(&self) -> Value {
        json!({
            "payload_hex": hex::encode(&self.payload),
            "properties": self.properties,
            "key": self.key,
            "ordering_key_hex": self.ordering_key.as_deref().map(hex::encode),
            "event_time": self.event_time,
        })
    }

    /// Checks a `message` line of the Java consumer.
    fn assert_java(&self, line: &Value, what: &str) {
        let payload = hex::decode(text(line, "payload_hex"));
        assert_eq!(payload.len(), self.payload.len(), "{what}: payload size");
        assert!(payload == self.payload, "{what}: payload bytes differ");
        assert_eq!(properties_of(line), self.properties, "{what}: properties");
        assert_eq!(line["key"].as_str(), self.key.as_deref(), "{what}: key");
        assert_eq!(
            line["ordering_key_hex"].as_str().map(hex::decode),
            self.ordering_key,
            "{what}: ordering key"
        );
        // The Java client says 0 for no event time.
        assert_eq!(
            int(line, "event_time") as u64,
            self.event_time.unwrap_or(0),
            "{what}: event time"
        );
    }

    /// Checks a message pulsar-wire received.
    fn assert_wire(&self, msg: &Message, what: &str) {
        assert_eq!(
            msg.payload().len(),
            self.payload.len(),
            "{what}: payload size"
        );
        assert!(
            msg.payload().as_ref() == &self.payload[..],
            "{what}: payload bytes differ"
        );
        assert_eq!(msg.properties(), &self.properties, "{what}: properties");
        assert_eq!(msg.partition_key(), self.key.as_deref(), "{what}: key");
        assert_eq!(
            msg.ordering_key(),
            self.ordering_key.as_deref(),
            "{what}: ordering key"
        );
        assert_eq!(msg.event_time(), self.event_time, "{what}: event time");
    }
}

/// Bytes no codec can shrink (xorshift), deterministic from `seed`.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// `n` messages that exercise a codec (very compressible text, noise, an empty payload, short
/// non-ASCII text, a large compressible one) and the metadata: properties (non-ASCII, empty
/// values), partition keys (non-ASCII, outside the BMP), binary ordering keys, event times.
fn specs(tag: &str, n: usize) -> Vec<Spec> {
    (0..n)
        .map(|i| {
            let payload = match i % 5 {
                0 => format!("{tag} compressible line {i}\n")
                    .repeat(60)
                    .into_bytes(),
                1 => noise(700 + i * 13, i as u64),
                2 if i == 2 => Vec::new(),
                2 => vec![i as u8],
                3 => format!("{tag} ünïcødé ✓ 日本 {i}").into_bytes(),
                _ => {
                    let mut p = format!("{tag}-{i} ").repeat(4000).into_bytes();
                    p.extend_from_slice(&noise(300, 1000 + i as u64));
                    p
                }
            };
            let mut properties = BTreeMap::new();
            properties.insert("index".to_string(), i.to_string());
            properties.insert("tag".to_string(), tag.to_string());
            if i % 2 == 0 {
                properties.insert("lang".to_string(), "français 中文 é".to_string());
                properties.insert("empty".to_string(), String::new());
            }
            Spec {
                payload,
                properties,
                key: (i % 3 != 1).then(|| format!("key-{i}-ü-𝄞")),
                ordering_key: (i % 2 == 1).then(|| vec![0, 0xff, i as u8, 0x80]),
                event_time: (i % 4 != 3).then(|| 1_700_000_000_000 + i as u64),
            }
        })
        .collect()
}

// --- compression, batched and not --------------------------------------------------------------

/// The codec's name as the Java client spells it (`CompressionType`).
fn codec_name(codec: Compression) -> &'static str {
    match codec {
        Compression::None => "NONE",
        Compression::Lz4 => "LZ4",
        Compression::Zlib => "ZLIB",
        Compression::Zstd => "ZSTD",
        Compression::Snappy => "SNAPPY",
    }
}

/// The codec of an entry's metadata (absent means none).
fn codec_of(md: &MessageMetadata) -> i32 {
    md.compression.unwrap_or(0)
}

fn batch_size_of(send: &Seen) -> Option<i32> {
    metadata(send).num_messages_in_batch
}

/// pulsar-wire sends 5 messages unbatched, then 5 batched (batches of 3 and 2) with `codec`;
/// on the wire each SEND is compressed with it; the Java consumer gets every payload and every
/// piece of metadata exactly, with the ids pulsar-wire's receipts said.
async fn wire_to_java(codec: Compression) {
    let broker = broker();
    let tap = Tap::start(broker.addr()).await;
    let client = client(tap.url());
    let name = codec_name(codec).to_lowercase();
    let topic = support::unique_topic(&format!("java-w2j-{name}"));
    let specs = specs(&format!("w2j-{name}"), 10);

    let plain = client
        .producer(&topic)
        .batching(false)
        .compression(codec)
        .create()
        .await
        .expect("unbatched producer");
    let mut ids = Vec::new();
    for spec in &specs[..5] {
        ids.push(plain.send(spec.to_message()).await.expect("send"));
    }
    let batched = client
        .producer(&topic)
        .batching(true)
        .batching_max_messages(3)
        .batching_max_publish_delay(Duration::from_secs(60))
        .compression(codec)
        .create()
        .await
        .expect("batched producer");
    let mut receipts = Vec::new();
    for spec in &specs[5..] {
        receipts.push(
            batched
                .send_async(spec.to_message())
                .await
                .expect("send_async"),
        );
    }
    batched.flush().await.expect("flush");
    for r in receipts {
        ids.push(r.await.expect("receipt"));
    }
    plain.close().await.expect("close");
    batched.close().await.expect("close");

    let sends = tap.seen(true, Type::Send);
    assert_eq!(sends.len(), 7, "SENDs: 5 unbatched, 2 batches");
    for (i, send) in sends.iter().enumerate() {
        assert_eq!(
            codec_of(metadata(send)),
            codec.to_wire(),
            "SEND {i} is compressed with {codec:?}"
        );
        let expected = match i {
            0..=4 => None,
            5 => Some(3),
            _ => Some(2),
        };
        assert_eq!(batch_size_of(send), expected, "SEND {i}: batch size");
    }

    let lines = java(
        "consume",
        json!({"topic": topic, "subscription": "java-sub", "count": 10, "quiet_ms": 1500}),
    )
    .await;
    let messages = events(&lines, "message");
    assert_eq!(messages.len(), 10, "each message once");
    for (i, (spec, line)) in specs.iter().zip(&messages).enumerate() {
        let what = format!("{codec:?} message {i}");
        spec.assert_java(line, &what);
        assert_eq!(
            java_id(line),
            wire_id(ids[i]),
            "{what}: the id pulsar-wire got"
        );
        assert_eq!(int(line, "redelivery_count"), 0, "{what}: redelivery count");
    }
    client.close().await.expect("close client");
}

/// The Java producer sends 5 messages unbatched, then 5 batched (batches of 3 and 2) with
/// `codec`; on the wire every entry was compressed with it; pulsar-wire gets every payload and
/// every piece of metadata exactly, with the ids the Java producer got.
async fn java_to_wire(codec: Compression) {
    let broker = broker();
    let tap = Tap::start(broker.addr()).await;
    let client = client(tap.url());
    let name = codec_name(codec).to_lowercase();
    let topic = support::unique_topic(&format!("java-j2w-{name}"));
    let specs = specs(&format!("j2w-{name}"), 10);
    let mut consumer = subscribe(&client, &topic, "wire-sub").await;

    let json_of = |s: &[Spec]| s.iter().map(Spec::to_json).collect::<Vec<_>>();
    let plain = java(
        "produce",
        json!({"topic": topic, "compression": codec_name(codec), "messages": json_of(&specs[..5])}),
    )
    .await;
    let batched = java(
        "produce",
        json!({"topic": topic, "compression": codec_name(codec), "batching": true,
               "batch_max_messages": 3, "messages": json_of(&specs[5..])}),
    )
    .await;
    let sent: Vec<&Value> = events(&plain, "sent")
        .into_iter()
        .chain(events(&batched, "sent"))
        .collect();
    assert_eq!(sent.len(), 10, "one sent line per message");
    let batch_indexes: Vec<i64> = sent.iter().map(|l| int(l, "batch_index")).collect();
    assert_eq!(
        batch_indexes,
        vec![-1, -1, -1, -1, -1, 0, 1, 2, 0, 1],
        "the Java producer's batches"
    );

    for (i, (spec, sent)) in specs.iter().zip(&sent).enumerate() {
        let what = format!("{codec:?} message {i}");
        let msg = receive_one(&mut consumer, &what).await;
        spec.assert_wire(&msg, &what);
        assert_eq!(wire_id(msg.id()), java_id(sent), "{what}: the Java id");
        let producer = if i < 5 { &plain } else { &batched };
        assert_eq!(
            msg.producer_name(),
            text(done(producer), "producer_name"),
            "{what}: producer"
        );
        assert_eq!(msg.redelivery_count(), 0, "{what}: redelivery count");
        consumer.ack(&msg).await.expect("ack");
    }
    assert_quiet(&mut consumer, "after the 10 messages").await;

    let entries = tap.seen(false, Type::Message);
    assert_eq!(entries.len(), 7, "MESSAGEs: 5 single messages, 2 batches");
    for (i, m) in entries.iter().enumerate() {
        let md = metadata(m);
        assert_eq!(
            codec_of(md),
            codec.to_wire(),
            "entry {i} was compressed with {codec:?} by the Java producer"
        );
        if codec != Compression::None {
            assert!(
                md.uncompressed_size.is_some(),
                "entry {i}: uncompressed size"
            );
        }
        let expected = match i {
            0..=4 => None,
            5 => Some(3),
            _ => Some(2),
        };
        assert_eq!(batch_size_of(m), expected, "entry {i}: batch size");
    }
    consumer.close().await.expect("close consumer");
    client.close().await.expect("close client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn none_wire_to_java() {
    wire_to_java(Compression::None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lz4_wire_to_java() {
    wire_to_java(Compression::Lz4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zlib_wire_to_java() {
    wire_to_java(Compression::Zlib).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zstd_wire_to_java() {
    wire_to_java(Compression::Zstd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snappy_wire_to_java() {
    wire_to_java(Compression::Snappy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn none_java_to_wire() {
    java_to_wire(Compression::None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lz4_java_to_wire() {
    java_to_wire(Compression::Lz4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zlib_java_to_wire() {
    java_to_wire(Compression::Zlib).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zstd_java_to_wire() {
    java_to_wire(Compression::Zstd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snappy_java_to_wire() {
    java_to_wire(Compression::Snappy).await;
}

// --- chunking ----------------------------------------------------------------------------------

/// Checks that `metadata` are chunks 0..n-1 of one uuid, each with the message's total size;
/// returns n.
fn assert_chunk_run(metadata: &[&MessageMetadata], total: usize, what: &str) -> usize {
    let n = metadata.len();
    assert!(n > 0, "{what}: no chunks");
    let uuid = metadata[0].uuid.clone().expect("uuid");
    for (i, md) in metadata.iter().enumerate() {
        assert_eq!(
            md.uuid.as_deref(),
            Some(uuid.as_str()),
            "{what}: chunk {i} uuid"
        );
        assert_eq!(md.chunk_id, Some(i as i32), "{what}: chunk {i} id");
        assert_eq!(
            md.num_chunks_from_msg,
            Some(n as i32),
            "{what}: chunk count"
        );
        assert_eq!(
            md.total_chunk_msg_size,
            Some(total as i32),
            "{what}: chunk {i} total size"
        );
    }
    n
}

/// A 6 MiB message (above the broker's 5 MiB max message size) and a small one after it.
fn big_and_small(tag: &str) -> Vec<Spec> {
    let mut big = Spec::plain(noise(6 * 1024 * 1024, 11));
    big.properties
        .insert("kind".to_string(), format!("big ✓ {tag}"));
    big.key = Some("big-key".to_string());
    let mut small = Spec::plain(b"small after big".to_vec());
    small
        .properties
        .insert("kind".to_string(), "small".to_string());
    vec![big, small]
}

/// The Java producer (chunking on, batching off) sends a 6 MiB message, then a small one;
/// pulsar-wire gets both whole, with the Java ids (the last chunk's entry, and its first
/// chunk), acks them, and after subscribing again gets nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_java_to_wire() {
    let broker = broker();
    let tap = Tap::start(broker.addr()).await;
    let client = client(tap.url());
    let topic = support::unique_topic("java-j2w-chunks");
    let specs = big_and_small("j2w");
    let mut consumer = subscribe(&client, &topic, "wire-sub").await;
    let lines = java(
        "produce",
        json!({"topic": topic, "chunking": true,
               "messages": specs.iter().map(Spec::to_json).collect::<Vec<_>>()}),
    )
    .await;
    let sent = events(&lines, "sent");
    assert_eq!(sent.len(), 2);
    assert!(
        sent[0].get("first_chunk_entry_id").is_some(),
        "the Java id of the big message names its first chunk: {}",
        short(sent[0])
    );

    for (i, (spec, sent)) in specs.iter().zip(&sent).enumerate() {
        let what = format!("message {i}");
        let msg = receive_one(&mut consumer, &what).await;
        spec.assert_wire(&msg, &what);
        assert_eq!(wire_id(msg.id()), java_id(sent), "{what}: the Java id");
        let first = msg.id().first_chunk;
        if i == 0 {
            let first = first.expect("the big message's id names its first chunk");
            assert_eq!(
                (first.ledger_id, first.entry_id),
                (
                    int(sent, "first_chunk_ledger_id"),
                    int(sent, "first_chunk_entry_id")
                ),
                "{what}: the first chunk the Java producer got"
            );
        } else {
            assert_eq!(first, None, "{what}: no chunks");
        }
        consumer.ack(&msg).await.expect("ack");
    }
    assert_quiet(&mut consumer, "after the two messages").await;

    let messages = tap.seen(false, Type::Message);
    let chunk_md: Vec<&MessageMetadata> = messages
        .iter()
        .map(metadata)
        .filter(|md| md.num_chunks_from_msg.is_some())
        .collect();
    let n = assert_chunk_run(&chunk_md, specs[0].payload.len(), "the Java big message");
    assert!(n >= 2, "6 MiB above a 5 MiB max message size: {n} chunks");
    assert_eq!(
        messages.len(),
        n + 1,
        "the chunks and the small message, once each"
    );

    consumer.close().await.expect("close consumer");
    let mut again = subscribe(&client, &topic, "wire-sub").await;
    assert_quiet(&mut again, "after acking everything and resubscribing").await;
    again.close().await.expect("close");
    client.close().await.expect("close client");
}

/// pulsar-wire chunks a 6 MiB message (chunks of the broker's max message size), then sends a
/// small one; on the wire the big one went as chunks; the Java consumer gets both whole, with
/// pulsar-wire's ids (last chunk, first chunk).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_wire_to_java() {
    let broker = broker();
    let tap = Tap::start(broker.addr()).await;
    let client = client(tap.url());
    let topic = support::unique_topic("java-w2j-chunks");
    let specs = big_and_small("w2j");
    let producer = client
        .producer(&topic)
        .batching(false)
        .chunking(true)
        .create()
        .await
        .expect("chunking producer");
    let mut ids = Vec::new();
    for spec in &specs {
        ids.push(producer.send(spec.to_message()).await.expect("send"));
    }
    producer.close().await.expect("close");

    let sends = tap.seen(true, Type::Send);
    let chunks: Vec<&MessageMetadata> = sends
        .iter()
        .filter(|s| s.command.send.as_ref().and_then(|s| s.is_chunk) == Some(true))
        .map(metadata)
        .collect();
    let n = assert_chunk_run(&chunks, specs[0].payload.len(), "pulsar-wire's big message");
    assert!(n >= 2, "6 MiB above a 5 MiB max message size: {n} chunks");
    assert_eq!(sends.len(), n + 1, "the chunks and the small message");
    let first = ids[0]
        .first_chunk
        .expect("the big message's id names its first chunk");

    let lines = java(
        "consume",
        json!({"topic": topic, "subscription": "java-sub", "count": 2, "quiet_ms": 1500}),
    )
    .await;
    let messages = events(&lines, "message");
    assert_eq!(messages.len(), 2, "each message once, whole");
    for (i, (spec, line)) in specs.iter().zip(&messages).enumerate() {
        let what = format!("message {i}");
        spec.assert_java(line, &what);
        assert_eq!(java_id(line), wire_id(ids[i]), "{what}: pulsar-wire's id");
    }
    assert_eq!(
        (
            int(messages[0], "first_chunk_ledger_id"),
            int(messages[0], "first_chunk_entry_id")
        ),
        (first.ledger_id, first.entry_id),
        "the Java consumer's id of the big message names pulsar-wire's first chunk"
    );
    client.close().await.expect("close client");
}

// --- key routing on a partitioned topic ----------------------------------------------------------

const PARTITIONS: u32 = 7;

/// Keys of every kind: ASCII, non-ASCII, outside the BMP (two UTF-16 units), long, similar.
fn routing_keys() -> Vec<String> {
    let mut keys: Vec<String> = (0..24).map(|i| format!("key-{i}")).collect();
    keys.extend(
        [
            "ü",
            "日本語",
            "𝄞 clef",
            "emoji 😀😀",
            "a",
            "ab",
            "abc",
            "abcd",
            "abcde",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    keys.push("x".repeat(1000));
    keys.push("order-4711/customer-42".to_string());
    keys
}

/// The Java producer (hashing `java_scheme`, or its default) routes each key to a partition;
/// `partition_for_key` with `scheme` says the same partition, and a pulsar-wire producer with
/// `scheme` sends each key to the same partition too.
async fn key_routing(java_scheme: Option<&str>, scheme: HashingScheme) {
    let broker = broker();
    let client = client(broker.url());
    let topic = broker.partitioned_topic("java-routing", PARTITIONS);
    let keys = routing_keys();
    let messages: Vec<Value> = keys
        .iter()
        .map(|k| json!({"payload_hex": hex::encode(k.as_bytes()), "key": k}))
        .collect();
    let mut spec = json!({"topic": topic, "messages": messages});
    if let Some(s) = java_scheme {
        spec["hashing"] = json!(s);
    }
    let lines = java("produce", spec).await;
    let sent = events(&lines, "sent");
    assert_eq!(sent.len(), keys.len());

    let producer = client
        .producer(&topic)
        .batching(false)
        .hashing_scheme(scheme)
        .create()
        .await
        .expect("producer");
    assert_eq!(producer.partitions(), PARTITIONS as usize);
    let mut used = BTreeSet::new();
    for (key, sent) in keys.iter().zip(&sent) {
        let java_partition = int(sent, "partition");
        assert_eq!(
            java_partition,
            i64::from(partition_for_key(key, PARTITIONS, scheme)),
            "key {key:?}: the Java partition vs partition_for_key({scheme:?})"
        );
        let id = producer
            .send(ProducerMessage::new(key.clone()).partition_key(key))
            .await
            .expect("send");
        assert_eq!(
            i64::from(id.partition),
            java_partition,
            "key {key:?}: pulsar-wire's partition vs the Java one"
        );
        used.insert(java_partition);
    }
    assert!(
        used.len() >= 5,
        "the keys spread over the partitions: {used:?}"
    );
    producer.close().await.expect("close");
    client.close().await.expect("close client");
}

/// The Java client's default hashing is `JavaStringHash`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_routing_matches_the_java_default_hash() {
    key_routing(None, HashingScheme::JavaString).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_routing_matches_java_string_hash() {
    key_routing(Some("JavaStringHash"), HashingScheme::JavaString).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_routing_matches_murmur3_32_hash() {
    key_routing(Some("Murmur3_32Hash"), HashingScheme::Murmur3).await;
}

// --- batch-index acks --------------------------------------------------------------------------

/// `n` small unkeyed messages `<tag>-<i>`, with an index property.
fn numbered(tag: &str, n: usize) -> Vec<Spec> {
    (0..n)
        .map(|i| {
            let mut s = Spec::plain(format!("{tag}-{i}").into_bytes());
            s.properties.insert("index".to_string(), i.to_string());
            s
        })
        .collect()
}

fn json_of(specs: &[Spec]) -> Vec<Value> {
    specs.iter().map(Spec::to_json).collect()
}

/// The Java producer sends one batch of 10; pulsar-wire, with batch-index acks, acks the even
/// indexes and closes; a Java consumer on the subscription then gets exactly the odd ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_index_acks_of_wire_leave_java_the_other_half() {
    let client = client(broker().url());
    let topic = support::unique_topic("java-batch-acks-w");
    let sub = "shared-sub";
    let specs = numbered("bia", 10);
    let mut consumer = client
        .consumer(&topic)
        .subscription(sub)
        .subscription_type(SubscriptionType::Shared)
        .initial_position(InitialPosition::Earliest)
        .batch_index_ack(true)
        .subscribe()
        .await
        .expect("subscribe");
    let lines = java(
        "produce",
        json!({"topic": topic, "batching": true, "batch_max_messages": 10, "messages": json_of(&specs)}),
    )
    .await;
    let sent = events(&lines, "sent");
    let entries: BTreeSet<(i64, i64)> = sent
        .iter()
        .map(|l| (int(l, "ledger_id"), int(l, "entry_id")))
        .collect();
    assert_eq!(entries.len(), 1, "one batch: {entries:?}");
    for (i, spec) in specs.iter().enumerate() {
        let what = format!("message {i}");
        let msg = receive_one(&mut consumer, &what).await;
        spec.assert_wire(&msg, &what);
        assert_eq!(msg.id().batch_index, i as i32, "{what}: batch index");
        if i % 2 == 0 {
            consumer.ack(&msg).await.expect("ack");
        }
    }
    consumer.close().await.expect("close");

    let lines = java(
        "consume",
        json!({"topic": topic, "subscription": sub, "count": 5, "quiet_ms": 2000, "batch_index_ack": true}),
    )
    .await;
    let got: Vec<i64> = events(&lines, "message")
        .iter()
        .map(|l| int(l, "batch_index"))
        .collect();
    assert_eq!(
        got,
        vec![1, 3, 5, 7, 9],
        "exactly the indexes pulsar-wire did not ack"
    );
    for line in events(&lines, "message") {
        let i = int(line, "batch_index") as usize;
        specs[i].assert_java(line, &format!("message {i}"));
    }
    client.close().await.expect("close client");
}

/// The Java producer sends one batch of 10; a Java consumer with batch-index acks acks the
/// even indexes only and closes; pulsar-wire, with batch-index acks, then gets exactly the odd
/// ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_index_acks_of_java_leave_wire_the_other_half() {
    let client = client(broker().url());
    let topic = support::unique_topic("java-batch-acks-j");
    let sub = "shared-sub";
    let specs = numbered("bij", 10);
    let mut first = Peer::start(
        broker().url(),
        "consume",
        json!({"topic": topic, "subscription": sub, "count": 10, "batch_index_ack": true,
               "keep_batch_indexes": [1, 3, 5, 7, 9]}),
    )
    .await;
    first.wait_for("subscribed").await;
    java(
        "produce",
        json!({"topic": topic, "batching": true, "batch_max_messages": 10, "messages": json_of(&specs)}),
    )
    .await;
    let lines = first.finish().await;
    let actions: Vec<&str> = events(&lines, "message")
        .iter()
        .map(|l| text(l, "action"))
        .collect();
    assert_eq!(
        actions,
        [["ack", "keep"]; 5].concat(),
        "the Java consumer's acks"
    );

    let mut consumer = client
        .consumer(&topic)
        .subscription(sub)
        .subscription_type(SubscriptionType::Shared)
        .initial_position(InitialPosition::Earliest)
        .batch_index_ack(true)
        .subscribe()
        .await
        .expect("subscribe");
    for i in [1, 3, 5, 7, 9] {
        let what = format!("message {i}");
        let msg = receive_one(&mut consumer, &what).await;
        assert_eq!(
            msg.id().batch_index,
            i,
            "{what}: the next index the Java consumer kept"
        );
        specs[i as usize].assert_wire(&msg, &what);
        consumer.ack(&msg).await.expect("ack");
    }
    assert_quiet(&mut consumer, "after the kept half").await;
    consumer.close().await.expect("close");
    client.close().await.expect("close client");
}

// --- negative acks and redelivery counts --------------------------------------------------------

async fn send_one(client: &PulsarClient, topic: &str, payload: &str) -> MessageId {
    let producer = client
        .producer(topic)
        .batching(false)
        .create()
        .await
        .expect("producer");
    let id = producer
        .send(ProducerMessage::new(payload.to_string()).property("p", "v"))
        .await
        .expect("send");
    producer.close().await.expect("close");
    id
}

/// A Java consumer nacks a pulsar-wire message twice: it comes back with redelivery counts 1
/// and 2, and once acked it never comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_nacks_raise_the_redelivery_count_of_a_wire_message() {
    let client = client(broker().url());
    let topic = support::unique_topic("java-nack-j");
    let id = send_one(&client, &topic, "nack me").await;
    let lines = java(
        "consume",
        json!({"topic": topic, "subscription": "sub", "count": 1, "nack_below": 2, "quiet_ms": 1500}),
    )
    .await;
    let deliveries: Vec<(i64, &str)> = events(&lines, "message")
        .iter()
        .map(|l| (int(l, "redelivery_count"), text(l, "action")))
        .collect();
    assert_eq!(
        deliveries,
        [(0, "nack"), (1, "nack"), (2, "ack")],
        "the deliveries"
    );
    for line in events(&lines, "message") {
        assert_eq!(java_id(line), wire_id(id), "the same message each time");
    }
    client.close().await.expect("close client");
}

/// A Shared consumer of priority 1: it gets messages only when the consumers of priority 0 have
/// no permits, so it keeps the subscription (and the broker's redelivery counts, which it
/// forgets when the last consumer leaves) while another consumer does the work.
async fn standby_consumer(client: &PulsarClient, topic: &str) -> Consumer {
    client
        .consumer(topic)
        .subscription("sub")
        .subscription_type(SubscriptionType::Shared)
        .priority_level(1)
        .negative_ack_redelivery_delay(Duration::from_millis(100))
        .subscribe()
        .await
        .expect("subscribe")
}

/// A Java consumer nacks a message twice and leaves its third delivery unacked; pulsar-wire,
/// on the same subscription (a standby of lower priority meanwhile), then gets it with the
/// count the Java nacks made, and its own nack raises it once more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wire_sees_the_redelivery_count_of_java_nacks() {
    let client = client(broker().url());
    let topic = support::unique_topic("java-nack-w");
    let mut consumer = standby_consumer(&client, &topic).await;
    let mut peer = Peer::start(
        broker().url(),
        "consume",
        json!({"topic": topic, "subscription": "sub", "count": 1, "nack_below": 2, "ack": false}),
    )
    .await;
    peer.wait_for("subscribed").await;
    let id = send_one(&client, &topic, "nacked by java").await;
    let lines = peer.finish().await;
    let counts: Vec<i64> = events(&lines, "message")
        .iter()
        .map(|l| int(l, "redelivery_count"))
        .collect();
    assert_eq!(counts, [0, 1, 2], "the Java deliveries");

    let msg = receive_one(&mut consumer, "after the Java nacks").await;
    assert_eq!(msg.id(), id);
    assert_eq!(msg.redelivery_count(), 2, "the count of the two Java nacks");
    consumer.nack(&msg).await.expect("nack");
    let msg = receive_one(&mut consumer, "after pulsar-wire's nack").await;
    assert_eq!(msg.redelivery_count(), 3, "pulsar-wire's nack counts too");
    consumer.ack(&msg).await.expect("ack");
    assert_quiet(&mut consumer, "after the ack").await;
    client.close().await.expect("close client");
}

/// pulsar-wire nacks a message twice and leaves its third delivery unacked; a Java consumer on
/// the same subscription (a standby of lower priority meanwhile) then gets it with redelivery
/// count 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_sees_the_redelivery_count_of_wire_nacks() {
    let client = client(broker().url());
    let topic = support::unique_topic("java-nack-wj");
    let mut peer = Peer::start(
        broker().url(),
        "consume",
        json!({"topic": topic, "subscription": "sub", "count": 1, "priority_level": 1, "quiet_ms": 1500}),
    )
    .await;
    peer.wait_for("subscribed").await;
    let mut consumer = client
        .consumer(&topic)
        .subscription("sub")
        .subscription_type(SubscriptionType::Shared)
        .negative_ack_redelivery_delay(Duration::from_millis(100))
        .subscribe()
        .await
        .expect("subscribe");
    let id = send_one(&client, &topic, "nacked by pulsar-wire").await;
    for expected in 0..2 {
        let msg = receive_one(&mut consumer, "a delivery").await;
        assert_eq!(msg.redelivery_count(), expected);
        consumer.nack(&msg).await.expect("nack");
    }
    let msg = receive_one(&mut consumer, "the third delivery").await;
    assert_eq!(msg.redelivery_count(), 2);
    consumer.close().await.expect("close");

    let lines = peer.finish().await;
    let messages = events(&lines, "message");
    assert_eq!(messages.len(), 1, "the Java standby got the message once");
    assert_eq!(java_id(messages[0]), wire_id(id));
    assert_eq!(
        int(messages[0], "redelivery_count"),
        2,
        "the count of pulsar-wire's nacks"
    );
    client.close().await.expect("close client");
}

// --- dead letters --------------------------------------------------------------------------------

/// An unbatched message and a batch of two, with keys and properties.
async fn send_dead_letter_candidates(client: &PulsarClient, topic: &str) -> Vec<(Spec, MessageId)> {
    let mut specs = numbered("dlq", 3);
    specs[0].key = Some("dlq-key-0".to_string());
    specs[2].key = Some("dlq-key-2".to_string());
    let plain = client
        .producer(topic)
        .batching(false)
        .create()
        .await
        .expect("producer");
    let mut ids = vec![plain.send(specs[0].to_message()).await.expect("send")];
    plain.close().await.expect("close");
    let batched = client
        .producer(topic)
        .batching(true)
        .batching_max_messages(2)
        .batching_max_publish_delay(Duration::from_secs(60))
        .create()
        .await
        .expect("batched producer");
    let mut receipts = Vec::new();
    for spec in &specs[1..] {
        receipts.push(
            batched
                .send_async(spec.to_message())
                .await
                .expect("send_async"),
        );
    }
    batched.flush().await.expect("flush");
    for r in receipts {
        ids.push(r.await.expect("receipt"));
    }
    batched.close().await.expect("close");
    assert!(
        !ids[0].is_batch() && ids[1].is_batch() && ids[2].is_batch(),
        "{ids:?}"
    );
    specs.into_iter().zip(ids).collect()
}

/// The properties a dead letter of `spec` has, as the Java client writes them
/// (`ConsumerImpl.getPropertiesMap`): the message's own, REAL_TOPIC, ORIGIN_MESSAGE_ID (also
/// under its old name ORIGIN_MESSAGE_IDY_TIME) and REAL_SUBSCRIPTION.
fn dead_letter_properties(
    spec: &Spec,
    topic: &str,
    sub: &str,
    origin: &str,
) -> BTreeMap<String, String> {
    let mut p = spec.properties.clone();
    p.insert(REAL_TOPIC.to_string(), topic.to_string());
    p.insert(ORIGIN_MESSAGE_ID.to_string(), origin.to_string());
    p.insert(ORIGIN_MESSAGE_ID_LEGACY.to_string(), origin.to_string());
    p.insert(REAL_SUBSCRIPTION.to_string(), sub.to_string());
    p
}

/// A Java consumer with a DeadLetterPolicy (max 2 redeliveries, the default topic) nacks three
/// messages (one unbatched, two of a batch) until they go to the dead-letter topic; pulsar-wire
/// reads them there with the Java format: REAL_TOPIC, ORIGIN_MESSAGE_ID as
/// `ledger:entry:partition[:batch]` (what `java_message_id` and the Java client's own id string
/// say), the payload, properties and key kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_dead_letters_have_the_format_wire_expects() {
    let client = client(broker().url());
    let topic = support::unique_topic("java-dlq-j");
    let sub = "java-sub";
    let dlq_topic = format!("{topic}-{sub}-DLQ");
    let mut dlq = subscribe(&client, &dlq_topic, "wire-dlq").await;
    let sent = send_dead_letter_candidates(&client, &topic).await;
    let lines = java(
        "consume",
        json!({"topic": topic, "subscription": sub, "nack_below": 99,
               "dead_letter": {"max_redeliver_count": 2, "watch_topic": dlq_topic},
               "watch_dead_letters": 3}),
    )
    .await;
    assert_eq!(events(&lines, "dead_letter").len(), 3, "three dead letters");
    let deliveries = events(&lines, "message");
    let mut counts: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut java_ids: BTreeMap<String, String> = BTreeMap::new();
    for line in &deliveries {
        let payload = String::from_utf8(hex::decode(text(line, "payload_hex"))).expect("text");
        counts
            .entry(payload.clone())
            .or_default()
            .push(int(line, "redelivery_count"));
        java_ids.insert(payload, text(line, "message_id").to_string());
    }
    // The unbatched message is delivered with counts 0, 1, 2 and goes away on the third nack.
    // How often the Java client hands out the two messages of the batch varies from run to
    // run (it tracks dead-letter candidates and nacks by entry, and sends the whole batch to
    // the dead-letter topic at once): each comes at least once, first with count 0.
    for (i, (spec, _)) in sent.iter().enumerate() {
        let payload = String::from_utf8(spec.payload.clone()).expect("text");
        let seen = &counts[&payload];
        if i == 0 {
            assert_eq!(seen, &[0, 1, 2], "{payload}: delivered 3 times");
        } else {
            assert_eq!(seen.first(), Some(&0), "{payload}: {counts:?}");
        }
    }

    let mut dead: BTreeMap<Vec<u8>, Message> = BTreeMap::new();
    for i in 0..3 {
        let msg = receive_one(&mut dlq, &format!("dead letter {i}")).await;
        dead.insert(msg.payload().to_vec(), msg);
    }
    for (spec, id) in &sent {
        let payload = String::from_utf8(spec.payload.clone()).expect("text");
        let msg = &dead[&spec.payload];
        let origin = java_message_id(id);
        assert_eq!(
            java_ids[&payload], origin,
            "{payload}: java_message_id vs the Java client's id string"
        );
        assert_eq!(
            msg.properties(),
            &dead_letter_properties(spec, &topic, sub, &origin),
            "{payload}: the dead letter's properties"
        );
        assert_eq!(msg.partition_key(), spec.key.as_deref(), "{payload}: key");
    }
    // The Java client's dead-lettering is at least once: it may write a message of the batch
    // again (seen about one run in ten). Anything more on the topic must be such a copy, in
    // the same format.
    while let Some(extra) = dlq.receive_timeout(QUIET).await.expect("receive") {
        let (spec, id) = sent
            .iter()
            .find(|(spec, _)| spec.payload == extra.payload().to_vec())
            .unwrap_or_else(|| panic!("a dead letter that was never sent: {:?}", extra.id()));
        assert_eq!(
            extra.properties(),
            &dead_letter_properties(spec, &topic, sub, &java_message_id(id)),
            "a repeated dead letter's properties"
        );
    }
    let mut original = subscribe(&client, &topic, sub).await;
    assert_quiet(&mut original, "the dead letters were acked on the topic").await;
    client.close().await.expect("close client");
}

/// pulsar-wire's DeadLetterPolicy (max 2 redeliveries, the default topic, an initial
/// subscription) sends three nacked messages to the dead-letter topic; a Java consumer reads
/// them there with the fields the Java client writes, ORIGIN_MESSAGE_ID in the form of the
/// Java client's own id string of the original message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wire_dead_letters_have_the_java_format() {
    let client = client(broker().url());
    let topic = support::unique_topic("java-dlq-w");
    let sub = "wire-sub";
    let dlq_topic = format!("{topic}-{sub}-DLQ");
    let mut policy = DeadLetterPolicy::new(2);
    policy.initial_subscription_name = Some("java-dlq".to_string());
    let mut consumer = client
        .consumer(&topic)
        .subscription(sub)
        .subscription_type(SubscriptionType::Shared)
        .initial_position(InitialPosition::Earliest)
        .negative_ack_redelivery_delay(Duration::from_millis(100))
        .dead_letter_policy(policy)
        .subscribe()
        .await
        .expect("subscribe");
    let sent = send_dead_letter_candidates(&client, &topic).await;
    // The Java client's id strings of the three messages.
    let view = java(
        "consume",
        json!({"topic": topic, "subscription": "java-view", "count": 3, "ack": false}),
    )
    .await;
    let java_ids: BTreeMap<Vec<u8>, String> = events(&view, "message")
        .iter()
        .map(|l| {
            (
                hex::decode(text(l, "payload_hex")),
                text(l, "message_id").to_string(),
            )
        })
        .collect();

    for _ in 0..9 {
        let msg = receive_one(&mut consumer, "a delivery before the dead letter").await;
        assert!(
            msg.redelivery_count() <= 2,
            "delivered past the policy: {}",
            msg.redelivery_count()
        );
        consumer.nack(&msg).await.expect("nack");
    }
    let lines = java(
        "consume",
        json!({"topic": dlq_topic, "subscription": "java-dlq", "count": 3, "quiet_ms": 1500}),
    )
    .await;
    let dead = events(&lines, "message");
    assert_eq!(dead.len(), 3, "three dead letters, once each");
    for (spec, id) in &sent {
        let line = dead
            .iter()
            .find(|l| hex::decode(text(l, "payload_hex")) == spec.payload)
            .unwrap_or_else(|| panic!("no dead letter of {:?}", spec.payload));
        let origin = &java_ids[&spec.payload];
        assert_eq!(
            &java_message_id(id),
            origin,
            "java_message_id vs the Java client's id string"
        );
        assert_eq!(
            properties_of(line),
            dead_letter_properties(spec, &topic, sub, origin),
            "the dead letter's properties, as the Java consumer reads them"
        );
        assert_eq!(line["key"].as_str(), spec.key.as_deref(), "key");
    }
    assert_quiet(&mut consumer, "the dead letters were acked on the topic").await;
    client.close().await.expect("close client");
}

// --- delayed delivery ----------------------------------------------------------------------------

const DELAY: Duration = Duration::from_secs(3);

/// pulsar-wire sends a message with deliver_after(3 s), then one without; the Java consumer
/// (Shared, subscribed before) gets the second first, and the first no earlier than 3 s after
/// it was published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wire_deliver_after_is_honoured_for_java() {
    let client = client(broker().url());
    let topic = support::unique_topic("java-delay-w");
    let mut peer = Peer::start(
        broker().url(),
        "consume",
        json!({"topic": topic, "subscription": "sub", "count": 2}),
    )
    .await;
    peer.wait_for("subscribed").await;
    let producer = client
        .producer(&topic)
        .batching(false)
        .create()
        .await
        .expect("producer");
    producer
        .send(ProducerMessage::new("delayed").deliver_after(DELAY))
        .await
        .expect("send delayed");
    producer
        .send(ProducerMessage::new("at once"))
        .await
        .expect("send");
    producer.close().await.expect("close");
    let lines = peer.finish().await;
    let messages = events(&lines, "message");
    let payloads: Vec<Vec<u8>> = messages
        .iter()
        .map(|l| hex::decode(text(l, "payload_hex")))
        .collect();
    assert_eq!(
        payloads,
        [b"at once".to_vec(), b"delayed".to_vec()],
        "the order of delivery"
    );
    let gap = int(messages[1], "received_at_ms") - int(messages[1], "publish_time");
    assert!(
        gap >= DELAY.as_millis() as i64,
        "the delayed message came {gap} ms after it was published, before its {DELAY:?}"
    );
    client.close().await.expect("close client");
}

/// The Java producer sends a message with deliverAfter(3 s), then one without; pulsar-wire
/// (Shared) gets the second first, and the first no earlier than 3 s after it was published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_deliver_after_is_honoured_by_wire() {
    let client = client(broker().url());
    let topic = support::unique_topic("java-delay-j");
    let mut consumer = subscribe(&client, &topic, "sub").await;
    java(
        "produce",
        json!({"topic": topic, "messages": [
            {"payload_hex": hex::encode(b"delayed"), "deliver_after_ms": DELAY.as_millis() as u64},
            {"payload_hex": hex::encode(b"at once")}]}),
    )
    .await;
    let first = receive_one(&mut consumer, "the undelayed message").await;
    assert_eq!(
        first.payload().as_ref(),
        b"at once",
        "the undelayed message comes first"
    );
    let delayed = receive_one(&mut consumer, "the delayed message").await;
    let received = now_ms();
    assert_eq!(delayed.payload().as_ref(), b"delayed");
    let gap = received.saturating_sub(delayed.publish_time());
    assert!(
        gap >= DELAY.as_millis() as u64,
        "the delayed message came {gap} ms after it was published, before its {DELAY:?}"
    );
    client.close().await.expect("close client");
}

// --- schemas -------------------------------------------------------------------------------------

/// The Avro schema the Java client derives for `pulsarwire.Pojo` (JSON and AVRO alike).
/// Its fields in name order, as the Java client lists them.
const POJO_SCHEMA: &str = r#"{"type":"record","name":"Pojo","namespace":"pulsarwire","fields":[{"name":"count","type":"int"},{"name":"name","type":["null","string"],"default":null}]}"#;

/// `count` as a string: neither side can read the other.
const POJO_SCHEMA_INCOMPATIBLE: &str = r#"{"type":"record","name":"Pojo","namespace":"pulsarwire","fields":[{"name":"count","type":"string"},{"name":"name","type":["null","string"],"default":null}]}"#;

fn pojos() -> Vec<(Option<&'static str>, i32)> {
    vec![(Some("first ✓"), 1), (None, -2), (Some(""), 300_000)]
}

fn pojo_messages() -> Vec<Value> {
    pojos()
        .iter()
        .map(|(name, count)| json!({"value": {"name": name, "count": count}}))
        .collect()
}

async fn schema_consumer(
    client: &PulsarClient,
    topic: &str,
    sub: &str,
    schema: SchemaInfo,
) -> pulsar_wire::Result<Consumer> {
    client
        .consumer(topic)
        .subscription(sub)
        .subscription_type(SubscriptionType::Shared)
        .initial_position(InitialPosition::Earliest)
        .schema_info(schema)
        .subscribe()
        .await
}

/// Subscribing with `schema` is refused with IncompatibleSchema.
async fn assert_incompatible(client: &PulsarClient, topic: &str, schema: SchemaInfo, what: &str) {
    match schema_consumer(client, topic, "incompatible", schema).await {
        Ok(_) => panic!("{what}: subscribed with an incompatible schema"),
        Err(e) => assert_eq!(
            e.server_error().map(|s| s.code),
            Some(ServerErrorCode::IncompatibleSchema),
            "{what}: {e}"
        ),
    }
}

/// A Java producer with Schema.STRING; pulsar-wire subscribed with the string schema reads its
/// texts; a JSON-schema subscribe on the topic is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_string_schema_to_wire() {
    let client = client(broker().url());
    let topic = support::unique_topic("java-schema-string");
    let mut consumer = schema_consumer(&client, &topic, "sub", SchemaInfo::string())
        .await
        .expect("subscribe");
    let texts = ["héllo ✓ 日本", "", "plain"];
    let messages: Vec<Value> = texts.iter().map(|t| json!({"value": t})).collect();
    java(
        "produce",
        json!({"topic": topic, "schema": "string", "messages": messages}),
    )
    .await;
    for t in texts {
        let msg = receive_one(&mut consumer, t).await;
        assert_eq!(msg.payload_str(), Some(t));
        consumer.ack(&msg).await.expect("ack");
    }
    assert_incompatible(
        &client,
        &topic,
        SchemaInfo::json(POJO_SCHEMA),
        "JSON on a STRING topic",
    )
    .await;
    client.close().await.expect("close client");
}

/// A Java producer with Schema.JSON(Pojo); pulsar-wire subscribed with the same definition
/// reads the JSON documents; the Java client's definition is the one pulsar-wire declared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_json_schema_to_wire() {
    let client = client(broker().url());
    let topic = support::unique_topic("java-schema-json");
    let mut consumer = schema_consumer(&client, &topic, "sub", SchemaInfo::json(POJO_SCHEMA))
        .await
        .expect("subscribe");
    let lines = java(
        "produce",
        json!({"topic": topic, "schema": "json", "messages": pojo_messages()}),
    )
    .await;
    let declared: Value =
        serde_json::from_str(text(done(&lines), "schema_definition")).expect("a JSON definition");
    assert_eq!(
        declared,
        serde_json::from_str::<Value>(POJO_SCHEMA).expect("json"),
        "the Java definition"
    );
    for (name, count) in pojos() {
        let msg = receive_one(&mut consumer, "a JSON message").await;
        let doc: Value = serde_json::from_slice(msg.payload()).expect("a JSON payload");
        // The Java client's JSON writer leaves null fields out.
        let expected = match name {
            Some(name) => json!({"name": name, "count": count}),
            None => json!({"count": count}),
        };
        assert_eq!(doc, expected);
        consumer.ack(&msg).await.expect("ack");
    }
    assert_incompatible(
        &client,
        &topic,
        SchemaInfo::json(POJO_SCHEMA_INCOMPATIBLE),
        "count as a string",
    )
    .await;
    client.close().await.expect("close client");
}

/// Avro binary of a Pojo: `count`, then the union branch of `name` (0 null, 1 string) and its
/// bytes, as zigzag varints.
fn avro_pojo(name: Option<&str>, count: i32) -> Vec<u8> {
    fn long(out: &mut Vec<u8>, n: i64) {
        let mut z = ((n << 1) ^ (n >> 63)) as u64;
        while z >= 0x80 {
            out.push((z as u8) | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
    }
    let mut out = Vec::new();
    long(&mut out, i64::from(count));
    match name {
        None => long(&mut out, 0),
        Some(s) => {
            long(&mut out, 1);
            long(&mut out, s.len() as i64);
            out.extend_from_slice(s.as_bytes());
        }
    }
    out
}

/// A Java producer with Schema.AVRO(Pojo); pulsar-wire subscribed with the same definition gets
/// the Avro binary records; a subscribe with an incompatible definition is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_avro_schema_to_wire() {
    let client = client(broker().url());
    let topic = support::unique_topic("java-schema-avro");
    let mut consumer = schema_consumer(&client, &topic, "sub", SchemaInfo::avro(POJO_SCHEMA))
        .await
        .expect("subscribe");
    let lines = java(
        "produce",
        json!({"topic": topic, "schema": "avro", "messages": pojo_messages()}),
    )
    .await;
    let declared: Value =
        serde_json::from_str(text(done(&lines), "schema_definition")).expect("a JSON definition");
    assert_eq!(
        declared,
        serde_json::from_str::<Value>(POJO_SCHEMA).expect("json"),
        "the Java definition"
    );
    for (name, count) in pojos() {
        let msg = receive_one(&mut consumer, "an Avro message").await;
        assert_eq!(
            msg.payload().as_ref(),
            &avro_pojo(name, count)[..],
            "{name:?} {count}"
        );
        consumer.ack(&msg).await.expect("ack");
    }
    assert_incompatible(
        &client,
        &topic,
        SchemaInfo::avro(POJO_SCHEMA_INCOMPATIBLE),
        "count as a string",
    )
    .await;
    assert_incompatible(
        &client,
        &topic,
        SchemaInfo::string(),
        "STRING on an AVRO topic",
    )
    .await;
    client.close().await.expect("close client");
}
