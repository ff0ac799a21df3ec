//! Interoperability with the official client (Python `pulsar-client` 3.13.0, which wraps the C++
//! client), in both directions, through the helper scripts in `tests/interop/`:
//!
//! - `produce.py` sends messages described as JSON on its command line and prints their ids;
//! - `consume.py` subscribes (Shared, Earliest) and prints every message it receives.
//!
//! Both print one JSON object per line on stdout. They run with the project virtualenv's
//! `.venv/bin/python`, which `scripts/setup-broker.sh` installs; when it is missing the tests
//! fail saying so.
//!
//! The partitioned tests start a private pulsar-lite whose config gives every new topic four
//! partitions (pulsar-lite makes partitioned topics no other way); on Apache Pulsar
//! (`PULSAR_WIRE_BROKER=apache`) they create a 4-partition topic through the admin API.
//!
//! The Python API has no hashing-scheme option: its producers route keys with the C++ client's
//! default, `BoostHash`, which no other client shares. `produce.py --hashing murmur3` therefore
//! drives the same bundled libpulsar through its C API with `Murmur3_32Hash`, the Java client's
//! default and pulsar-wire's.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pulsar_wire::{partition_for_key, HashingScheme};
use pulsar_wire::{
    Consumer, InitialPosition, Message, MessageId, ProducerMessage, PulsarClient, SubscriptionType,
};

use json::Value;

/// How long a helper script may run before the test gives up on it.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);
/// Liveness guard around each receive of a message that must come.
const RECEIVE_GUARD: Duration = Duration::from_secs(20);
/// How long to listen for messages that must not come.
const QUIET: Duration = Duration::from_secs(2);
/// Partitions of the private broker's topics.
const PARTITIONS: u32 = 4;

fn client(url: &str) -> PulsarClient {
    PulsarClient::builder(url)
        .operation_timeout(Duration::from_secs(15))
        .build()
        .expect("client")
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

// --- the messages both sides send -------------------------------------------------------------

/// One message as both clients send it.
#[derive(Debug, Clone, PartialEq)]
struct Spec {
    payload: Vec<u8>,
    properties: BTreeMap<String, String>,
    partition_key: Option<String>,
    ordering_key: Option<String>,
    event_time: Option<u64>,
}

impl Spec {
    fn to_message(&self) -> ProducerMessage {
        let mut msg = ProducerMessage::new(self.payload.clone());
        for (k, v) in &self.properties {
            msg = msg.property(k, v);
        }
        if let Some(key) = &self.partition_key {
            msg = msg.partition_key(key);
        }
        if let Some(key) = &self.ordering_key {
            msg = msg.ordering_key(key.clone().into_bytes());
        }
        if let Some(t) = self.event_time {
            msg = msg.event_time(t);
        }
        msg
    }

    /// The `--messages` element `produce.py` reads.
    fn to_json(&self) -> String {
        let props: Vec<String> = self
            .properties
            .iter()
            .map(|(k, v)| format!("{}:{}", json::quote(k), json::quote(v)))
            .collect();
        let opt = |s: &Option<String>| s.as_deref().map_or("null".to_string(), json::quote);
        format!(
            "{{\"data_b64\":{},\"properties\":{{{}}},\"partition_key\":{},\"ordering_key\":{},\"event_timestamp\":{}}}",
            json::quote(&base64::encode(&self.payload)),
            props.join(","),
            opt(&self.partition_key),
            opt(&self.ordering_key),
            self.event_time.map_or("null".to_string(), |t| t.to_string()),
        )
    }

    /// Checks what the official consumer printed for this message.
    fn assert_reported(&self, line: &Value, what: &str) {
        let data = base64::decode(line.str_at("data_b64").expect("data_b64"))
            .unwrap_or_else(|e| panic!("{what}: bad base64: {e}"));
        assert_eq!(data, self.payload, "{what}: payload");
        let props: BTreeMap<String, String> = match line.get("properties") {
            Some(Value::Object(members)) => members
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().expect("string property").to_owned()))
                .collect(),
            other => panic!("{what}: properties are {other:?}"),
        };
        assert_eq!(props, self.properties, "{what}: properties");
        // The Python API says "" for a message without a key.
        assert_eq!(
            line.str_at("partition_key"),
            Some(self.partition_key.as_deref().unwrap_or("")),
            "{what}: partition key"
        );
        assert_eq!(
            line.str_at("ordering_key"),
            Some(self.ordering_key.as_deref().unwrap_or("")),
            "{what}: ordering key"
        );
        // And 0 for a message without an event time.
        assert_eq!(
            line.int_at("event_timestamp"),
            Some(self.event_time.unwrap_or(0) as i64),
            "{what}: event time"
        );
        assert_eq!(
            line.int_at("redelivery_count"),
            Some(0),
            "{what}: redelivery count"
        );
    }

    /// Checks a message pulsar-wire received.
    fn assert_received(&self, msg: &Message, what: &str) {
        assert_eq!(msg.payload().as_ref(), &self.payload[..], "{what}: payload");
        assert_eq!(msg.properties(), &self.properties, "{what}: properties");
        assert_eq!(
            msg.partition_key(),
            self.partition_key.as_deref(),
            "{what}: partition key"
        );
        assert_eq!(
            msg.ordering_key(),
            self.ordering_key.as_deref().map(str::as_bytes),
            "{what}: ordering key"
        );
        assert_eq!(msg.event_time(), self.event_time, "{what}: event time");
        assert_eq!(msg.redelivery_count(), 0, "{what}: redelivery count");
    }
}

/// `n` messages with every field in use, and the unusual cases: binary and empty payloads,
/// non-ASCII text, an empty property value, no key, no event time.
fn field_specs(tag: &str, n: usize) -> Vec<Spec> {
    (0..n)
        .map(|i| {
            let payload = match i % 4 {
                0 => format!("{tag} message {i}").into_bytes(),
                1 => vec![0, 1, 0x7f, 0x80, 0xfe, 0xff, i as u8],
                2 => format!("{tag} ünïcødé ✓ 日本 {i}").into_bytes(),
                _ if i == 3 => Vec::new(),
                _ => format!("{tag}-{i}").repeat(40).into_bytes(),
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
                partition_key: match i % 5 {
                    4 => None,
                    3 => Some(format!("clé-{i}")),
                    _ => Some(format!("key-{i}")),
                },
                ordering_key: (i % 3 != 2).then(|| format!("order-{}", i % 3)),
                event_time: (i % 4 != 1).then_some(1_700_000_000_000 + i as u64 * 1000 + 7),
            }
        })
        .collect()
}

fn specs_arg(specs: &[Spec]) -> String {
    let items: Vec<String> = specs.iter().map(Spec::to_json).collect();
    format!("[{}]", items.join(","))
}

// --- running the helper scripts ----------------------------------------------------------------

fn python() -> PathBuf {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(".venv")
        .join("bin")
        .join("python");
    assert!(
        python.is_file(),
        "the official Python client is missing ({} does not exist): run scripts/setup-broker.sh",
        python.display()
    );
    python
}

/// Runs `tests/interop/<script>` and returns its JSON lines. Panics, with its output, if it
/// fails or does not finish within [`SCRIPT_TIMEOUT`].
async fn run_script(script: &str, args: &[String]) -> Vec<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("interop")
        .join(script);
    let mut cmd = tokio::process::Command::new(python());
    cmd.arg(&path)
        .args(args)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONIOENCODING", "utf-8")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(SCRIPT_TIMEOUT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{script} did not finish within {SCRIPT_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed ({})\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        output.status
    );
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| json::parse(l).unwrap_or_else(|e| panic!("{script} printed bad JSON ({e}): {l}")))
        .collect()
}

fn events<'a>(lines: &'a [Value], event: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|l| l.str_at("event") == Some(event))
        .collect()
}

/// Runs `produce.py` and returns its `sent` lines in message order and its `done` line.
async fn official_produce(
    url: &str,
    topic: &str,
    specs: &[Spec],
    extra: &[&str],
) -> (Vec<Value>, Value) {
    let mut args = vec![
        "--url".to_string(),
        url.to_string(),
        "--topic".to_string(),
        topic.to_string(),
        "--messages".to_string(),
        specs_arg(specs),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let lines = run_script("produce.py", &args).await;
    let done = events(&lines, "done");
    assert_eq!(done.len(), 1, "produce.py said done once: {lines:?}");
    let sent: Vec<Value> = events(&lines, "sent").into_iter().cloned().collect();
    assert_eq!(
        sent.len(),
        specs.len(),
        "one sent line per message: {lines:?}"
    );
    for (i, line) in sent.iter().enumerate() {
        assert_eq!(line.int_at("index"), Some(i as i64), "sent lines in order");
    }
    (sent, done[0].clone())
}

/// Runs `consume.py` for `count` messages and returns the `message` lines (all of them, extras
/// included).
async fn official_consume(url: &str, topic: &str, count: usize) -> Vec<Value> {
    let args: Vec<String> = [
        "--url",
        url,
        "--topic",
        topic,
        "--subscription",
        "official-sub",
        "--count",
        &count.to_string(),
        "--timeout-s",
        "40",
        "--extra-wait-ms",
        "1500",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let lines = run_script("consume.py", &args).await;
    let messages: Vec<Value> = events(&lines, "message").into_iter().cloned().collect();
    assert_eq!(
        events(&lines, "done").len(),
        1,
        "consume.py got {} of {count} messages in time: {lines:?}",
        messages.len()
    );
    messages
}

/// The id fields of a `sent` or `message` line.
fn reported_id(line: &Value) -> (i64, i64, i64, i64) {
    (
        line.int_at("ledger_id").expect("ledger_id"),
        line.int_at("entry_id").expect("entry_id"),
        line.int_at("batch_index").expect("batch_index"),
        line.int_at("partition").expect("partition"),
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

/// The official client's `str(MessageId)`: `(ledger,entry,partition,batch_index)`.
fn official_id_str(id: MessageId) -> String {
    format!(
        "({},{},{},{})",
        id.ledger_id, id.entry_id, id.partition, id.batch_index
    )
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

/// The partition index at the end of a partition topic name (`...-partition-N`).
fn partition_of_topic(name: &str) -> u32 {
    let (_, n) = name
        .rsplit_once("-partition-")
        .unwrap_or_else(|| panic!("{name} is not a partition topic"));
    n.parse()
        .unwrap_or_else(|_| panic!("{name} is not a partition topic"))
}

/// A broker on which [`support::Broker::partitioned_topic`] makes [`PARTITIONS`]-partition
/// topics: a private pulsar-lite whose every new topic gets them, or the shared Apache Pulsar
/// (topics created through its admin API) with `PULSAR_WIRE_BROKER=apache`.
fn partitioned_broker() -> support::BrokerRef {
    support::Broker::partitioned(PARTITIONS)
}

// --- pulsar-wire → official client ---------------------------------------------------------------

/// pulsar-wire sends with every message field in use, unbatched and then batched; the official
/// consumer reports each field, the id and the producer exactly as sent, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wire_to_official_fields() {
    let broker = support::broker();
    let client = client(broker.url());
    let topic = support::unique_topic("interop-w2o");
    let specs = field_specs("w2o", 14);
    let before = now_ms();

    let plain = client
        .producer(&topic)
        .batching(false)
        .create()
        .await
        .expect("unbatched producer");
    let mut ids = Vec::new();
    for spec in &specs[..7] {
        ids.push(plain.send(spec.to_message()).await.expect("send"));
    }
    let batched = client
        .producer(&topic)
        .batching(true)
        .batching_max_messages(3)
        .batching_max_publish_delay(Duration::from_secs(60))
        .create()
        .await
        .expect("batched producer");
    let mut receipts = Vec::new();
    for spec in &specs[7..] {
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
    let names = [plain.name(), batched.name()];
    plain.close().await.expect("close");
    batched.close().await.expect("close");

    // The batched producer's 7 messages: batches of 3, 3 and 1 (the last one sent by flush).
    let batch_ids = &ids[7..];
    for (i, id) in batch_ids.iter().enumerate() {
        assert_eq!(
            id.batch_index,
            (i % 3) as i32,
            "receipt {i} of the batched producer: {id:?}"
        );
        assert_eq!(
            (id.ledger_id, id.entry_id),
            (
                batch_ids[i - i % 3].ledger_id,
                batch_ids[i - i % 3].entry_id
            ),
            "receipt {i} shares its batch's entry"
        );
    }
    for id in &ids[..7] {
        assert_eq!(id.batch_index, -1, "unbatched receipt {id:?}");
    }

    let lines = official_consume(broker.url(), &topic, specs.len()).await;
    let after = now_ms();
    assert_eq!(
        lines.len(),
        specs.len(),
        "the official consumer got each message once: {lines:#?}"
    );
    for (i, ((line, spec), id)) in lines.iter().zip(&specs).zip(&ids).enumerate() {
        let what = format!("message {i}");
        spec.assert_reported(line, &what);
        assert_eq!(reported_id(line), wire_id(*id), "{what}: id");
        assert_eq!(
            line.str_at("message_id"),
            Some(official_id_str(*id).as_str()),
            "{what}: str(id)"
        );
        assert_eq!(line.str_at("topic"), Some(topic.as_str()), "{what}: topic");
        assert_eq!(
            line.str_at("producer_name"),
            Some(names[usize::from(i >= 7)].as_str()),
            "{what}: producer name"
        );
        let published = line.int_at("publish_timestamp").expect("publish_timestamp");
        assert!(
            published >= before as i64 - 60_000 && published <= after as i64 + 60_000,
            "{what}: publish time {published} is not around now ({before}..{after})"
        );
        assert_eq!(
            line.str_at("data_text"),
            std::str::from_utf8(&spec.payload).ok(),
            "{what}: payload as text"
        );
    }
    client.close().await.expect("close client");
}

// --- official client → pulsar-wire -----------------------------------------------------------

/// The official producer sends (batched or not); pulsar-wire receives every message with its
/// fields and the id the producer got, acks each, and after subscribing again nothing comes back.
async fn official_to_wire(batched: bool) {
    let broker = support::broker();
    let client = client(broker.url());
    let tag = if batched { "o2w-batched" } else { "o2w-plain" };
    let topic = support::unique_topic(&format!("interop-{tag}"));
    let sub = "wire-sub";
    let specs = field_specs(tag, 10);
    let mut consumer = subscribe(&client, &topic, sub).await;

    let extra: &[&str] = if batched {
        // Batches close at 4 messages (or on flush): 4 + 4 + 2.
        &[
            "--batching",
            "--batch-max-messages",
            "4",
            "--batch-delay-ms",
            "60000",
        ]
    } else {
        &[]
    };
    let (sent, done) = official_produce(broker.url(), &topic, &specs, extra).await;
    let producer_name = done
        .str_at("producer_name")
        .expect("producer_name")
        .to_owned();

    let mut received = Vec::new();
    for (i, (spec, sent)) in specs.iter().zip(&sent).enumerate() {
        let what = format!("message {i}");
        let msg = receive_one(&mut consumer, &what).await;
        spec.assert_received(&msg, &what);
        assert_eq!(
            wire_id(msg.id()),
            reported_id(sent),
            "{what}: the id the official producer got"
        );
        assert_eq!(msg.topic(), topic, "{what}: topic");
        assert_eq!(msg.producer_name(), producer_name, "{what}: producer name");
        assert!(msg.publish_time() > 0, "{what}: publish time");
        consumer.ack(&msg).await.expect("ack");
        received.push(msg.id());
    }
    assert!(
        consumer
            .receive_timeout(QUIET)
            .await
            .expect("receive")
            .is_none(),
        "nothing beyond the {} messages sent",
        specs.len()
    );

    if batched {
        let mut entries: BTreeMap<(i64, i64), Vec<MessageId>> = BTreeMap::new();
        for id in &received {
            entries
                .entry((id.ledger_id, id.entry_id))
                .or_default()
                .push(*id);
        }
        let sizes: Vec<usize> = entries.values().map(Vec::len).collect();
        assert_eq!(
            sizes,
            vec![4, 4, 2],
            "batches of the official producer: {entries:?}"
        );
        for (entry, ids) in &entries {
            let indexes: Vec<i32> = ids.iter().map(|id| id.batch_index).collect();
            let expected: Vec<i32> = (0..ids.len() as i32).collect();
            assert_eq!(indexes, expected, "batch indexes of entry {entry:?}");
            for id in ids {
                assert_eq!(id.batch_size, ids.len() as i32, "batch size in {id:?}");
            }
        }
    } else {
        let entries: BTreeSet<(i64, i64)> = received
            .iter()
            .map(|id| (id.ledger_id, id.entry_id))
            .collect();
        assert_eq!(
            entries.len(),
            specs.len(),
            "one entry per unbatched message"
        );
        assert!(
            received.iter().all(|id| id.batch_index == -1),
            "{received:?}"
        );
    }

    // Everything was acked: the same subscription, subscribed again, gets nothing.
    consumer.close().await.expect("close consumer");
    let mut again = subscribe(&client, &topic, sub).await;
    let redelivered = again.receive_timeout(QUIET).await.expect("receive");
    assert!(
        redelivered.is_none(),
        "a message came back after acking everything and resubscribing: {redelivered:?}"
    );
    again.close().await.expect("close");
    client.close().await.expect("close client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_to_wire_unbatched() {
    official_to_wire(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_to_wire_batched() {
    official_to_wire(true).await;
}

// --- partitioned topics --------------------------------------------------------------------------

/// pulsar-wire and the official producer (with `Murmur3_32Hash`, through the C API) send the same
/// keys to a 4-partition topic; the official consumer reports where each message landed: for
/// every key both producers chose `murmur3_32(key) & 0x7fffffff % 4`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_land_on_the_java_murmur3_partition() {
    let broker = partitioned_broker();
    let client = client(broker.url());
    let topic = broker.partitioned_topic("interop-keys", PARTITIONS);
    let keys: Vec<String> = (0..20).map(|i| format!("key-{i}")).collect();
    let spec = |origin: &str, key: &str| Spec {
        payload: format!("{origin}|{key}").into_bytes(),
        properties: BTreeMap::from([("origin".to_string(), origin.to_string())]),
        partition_key: Some(key.to_string()),
        ordering_key: None,
        event_time: None,
    };

    let producer = client
        .producer(&topic)
        .hashing_scheme(HashingScheme::Murmur3)
        .create()
        .await
        .expect("producer");
    assert_eq!(
        producer.partitions(),
        PARTITIONS as usize,
        "a partitioned topic"
    );
    let mut receipts = Vec::new();
    for key in &keys {
        receipts.push(
            producer
                .send_async(spec("wire", key).to_message())
                .await
                .expect("send_async"),
        );
    }
    producer.flush().await.expect("flush");
    let mut wire_partitions = BTreeMap::new();
    for (key, r) in keys.iter().zip(receipts) {
        let id = r.await.expect("receipt");
        wire_partitions.insert(key.clone(), id.partition);
    }
    producer.close().await.expect("close");

    let official: Vec<Spec> = keys.iter().map(|k| spec("official", k)).collect();
    official_produce(broker.url(), &topic, &official, &["--hashing", "murmur3"]).await;

    let lines = official_consume(broker.url(), &topic, 2 * keys.len()).await;
    assert_eq!(lines.len(), 2 * keys.len(), "each message once: {lines:#?}");
    let mut landed: BTreeMap<(String, String), u32> = BTreeMap::new();
    for line in &lines {
        let payload = base64::decode(line.str_at("data_b64").expect("data")).expect("base64");
        let payload = String::from_utf8(payload).expect("text payload");
        let (origin, key) = payload.split_once('|').expect("origin|key");
        assert_eq!(line.str_at("partition_key"), Some(key), "key of {payload}");
        let partition = partition_of_topic(line.str_at("topic").expect("topic"));
        assert_eq!(
            line.int_at("partition"),
            Some(i64::from(partition)),
            "the id's partition of {payload}"
        );
        let before = landed.insert((origin.to_string(), key.to_string()), partition);
        assert!(before.is_none(), "{payload} came twice");
    }

    let mut used = BTreeSet::new();
    for key in &keys {
        let expected = partition_for_key(key, PARTITIONS, HashingScheme::Murmur3);
        used.insert(expected);
        assert_eq!(
            wire_partitions[key], expected as i32,
            "pulsar-wire's receipt for {key}"
        );
        assert_eq!(
            landed.get(&("wire".to_string(), key.clone())),
            Some(&expected),
            "where pulsar-wire's {key} landed"
        );
        assert_eq!(
            landed.get(&("official".to_string(), key.clone())),
            Some(&expected),
            "where the official producer's {key} landed (Murmur3_32Hash)"
        );
    }
    assert!(used.len() > 1, "the keys spread over partitions: {used:?}");
    client.close().await.expect("close client");
}

/// The official producer (batched, its own routing) sends to a 4-partition topic; pulsar-wire
/// consumes every partition on a Shared subscription and gets every message once, with the id
/// the producer got, in order within each partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_to_wire_partitioned() {
    let broker = partitioned_broker();
    let client = client(broker.url());
    let topic = broker.partitioned_topic("interop-o2w-part", PARTITIONS);
    let specs: Vec<Spec> = field_specs("o2w-part", 40)
        .into_iter()
        .enumerate()
        .map(|(i, mut s)| {
            // Half keyed (spread by the key's hash), half not (round robin).
            s.partition_key = (i % 2 == 0).then(|| format!("key-{}", i % 10));
            s
        })
        .collect();
    let (sent, _) = official_produce(
        broker.url(),
        &topic,
        &specs,
        &["--batching", "--batch-delay-ms", "5"],
    )
    .await;
    assert_eq!(
        client.partitions(&topic).await.expect("partitions"),
        PARTITIONS
    );

    let mut consumer = subscribe(&client, &topic, "wire-sub").await;
    let mut got: BTreeMap<(i64, i64, i64, i64), Message> = BTreeMap::new();
    let mut order: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for n in 0..specs.len() {
        let msg = receive_one(&mut consumer, &format!("message {n} of {}", specs.len())).await;
        let index: usize = msg
            .properties()
            .get("index")
            .and_then(|i| i.parse().ok())
            .expect("index property");
        let partition = partition_of_topic(msg.topic());
        assert_eq!(msg.topic(), format!("{topic}-partition-{partition}"));
        assert_eq!(
            msg.id().partition,
            partition as i32,
            "partition in {:?}",
            msg.id()
        );
        order.entry(partition).or_default().push(index);
        consumer.ack(&msg).await.expect("ack");
        let before = got.insert(wire_id(msg.id()), msg);
        assert!(before.is_none(), "message {index} came twice");
    }
    assert!(
        consumer
            .receive_timeout(QUIET)
            .await
            .expect("receive")
            .is_none(),
        "nothing beyond the {} messages sent",
        specs.len()
    );

    for (i, (spec, sent)) in specs.iter().zip(&sent).enumerate() {
        let msg = got
            .get(&reported_id(sent))
            .unwrap_or_else(|| panic!("message {i} ({sent:?}) not received"));
        spec.assert_received(msg, &format!("message {i}"));
    }
    for (partition, indexes) in &order {
        let mut sorted = indexes.clone();
        sorted.sort_unstable();
        assert_eq!(indexes, &sorted, "send order within partition {partition}");
    }
    assert!(order.len() > 1, "messages on several partitions: {order:?}");
    consumer.close().await.expect("close consumer");
    client.close().await.expect("close client");
}

// --- small codecs, to need no extra dependency ------------------------------------------------

mod base64 {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    /// Standard base64 with padding.
    pub fn encode(data: &[u8]) -> String {
        let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
        for chunk in data.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    pub fn decode(text: &str) -> Result<Vec<u8>, String> {
        let bytes = text.as_bytes();
        if bytes.len() % 4 != 0 {
            return Err(format!("length {} is not a multiple of 4", bytes.len()));
        }
        let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
        for (q, quad) in bytes.chunks(4).enumerate() {
            let last = q == bytes.len() / 4 - 1;
            let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
            if pad > 2 || (pad > 0 && !last) {
                return Err("misplaced padding".into());
            }
            let mut n = 0u32;
            for &c in &quad[..4 - pad] {
                let v = ALPHABET
                    .iter()
                    .position(|&a| a == c)
                    .ok_or_else(|| format!("bad character {:?}", c as char))?;
                n = (n << 6) | v as u32;
            }
            n <<= 6 * pad as u32;
            let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
            out.extend_from_slice(&decoded[..3 - pad]);
        }
        Ok(out)
    }

    #[test]
    fn round_trips() {
        assert_eq!(encode(b""), "");
        assert_eq!(encode(b"f"), "Zg==");
        assert_eq!(encode(b"fo"), "Zm8=");
        assert_eq!(encode(b"foo"), "Zm9v");
        assert_eq!(encode(&[0, 1, 0xff]), "AAH/");
        for n in 0..40u8 {
            let data: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37).wrapping_add(n)).collect();
            assert_eq!(decode(&encode(&data)).unwrap(), data);
        }
        assert!(decode("Zg=").is_err());
        assert!(decode("Z===").is_err());
        assert!(decode("Zg==Zg==").is_err());
    }
}

/// Just enough JSON for the helper scripts' lines (strict RFC 8259), and quoting for their
/// arguments.
mod json {
    /// A JSON value; objects keep their members in order.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Value {
        Null,
        Bool(bool),
        Int(i64),
        Float(f64),
        String(String),
        Array(Vec<Value>),
        Object(Vec<(String, Value)>),
    }

    impl Value {
        pub fn get(&self, key: &str) -> Option<&Value> {
            match self {
                Value::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
                _ => None,
            }
        }

        pub fn as_str(&self) -> Option<&str> {
            match self {
                Value::String(s) => Some(s),
                _ => None,
            }
        }

        pub fn str_at(&self, key: &str) -> Option<&str> {
            self.get(key).and_then(Value::as_str)
        }

        pub fn int_at(&self, key: &str) -> Option<i64> {
            match self.get(key) {
                Some(Value::Int(n)) => Some(*n),
                _ => None,
            }
        }
    }

    /// `s` as a JSON string, ASCII only (non-ASCII as `\u` escapes, so that a command line
    /// carries it whatever the locale).
    pub fn quote(s: &str) -> String {
        let mut out = String::with_capacity(s.len() + 2);
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                ' '..='~' => out.push(c),
                _ => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        out.push_str(&format!("\\u{unit:04x}"));
                    }
                }
            }
        }
        out.push('"');
        out
    }

    pub fn parse(s: &str) -> Result<Value, String> {
        let mut p = Parser {
            s: s.as_bytes(),
            i: 0,
        };
        let v = p.value()?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("trailing data at {}", p.i));
        }
        Ok(v)
    }

    struct Parser<'a> {
        s: &'a [u8],
        i: usize,
    }

    impl Parser<'_> {
        fn ws(&mut self) {
            while self.i < self.s.len() && b" \t\r\n".contains(&self.s[self.i]) {
                self.i += 1;
            }
        }

        fn peek(&self) -> Option<u8> {
            self.s.get(self.i).copied()
        }

        fn lit(&mut self, word: &str, v: Value) -> Result<Value, String> {
            if self.s[self.i..].starts_with(word.as_bytes()) {
                self.i += word.len();
                Ok(v)
            } else {
                Err(format!("bad literal at {}", self.i))
            }
        }

        /// Items of an array or members of an object, after the opening bracket.
        fn items<T>(
            &mut self,
            close: u8,
            mut item: impl FnMut(&mut Self) -> Result<T, String>,
        ) -> Result<Vec<T>, String> {
            let mut out = Vec::new();
            self.ws();
            if self.peek() == Some(close) {
                self.i += 1;
                return Ok(out);
            }
            loop {
                self.ws();
                out.push(item(self)?);
                self.ws();
                match self.peek() {
                    Some(b',') => self.i += 1,
                    Some(c) if c == close => {
                        self.i += 1;
                        return Ok(out);
                    }
                    _ => return Err(format!("expected ',' or '{}' at {}", close as char, self.i)),
                }
            }
        }

        fn value(&mut self) -> Result<Value, String> {
            self.ws();
            match self.peek() {
                Some(b'n') => self.lit("null", Value::Null),
                Some(b't') => self.lit("true", Value::Bool(true)),
                Some(b'f') => self.lit("false", Value::Bool(false)),
                Some(b'"') => self.string().map(Value::String),
                Some(b'[') => {
                    self.i += 1;
                    self.items(b']', Self::value).map(Value::Array)
                }
                Some(b'{') => {
                    self.i += 1;
                    let members = self.items(b'}', |p| {
                        let k = p.string()?;
                        p.ws();
                        if p.peek() != Some(b':') {
                            return Err(format!("expected ':' at {}", p.i));
                        }
                        p.i += 1;
                        Ok((k, p.value()?))
                    })?;
                    for (n, (k, _)) in members.iter().enumerate() {
                        if members[..n].iter().any(|(m, _)| m == k) {
                            return Err(format!("duplicate key {k:?}"));
                        }
                    }
                    Ok(Value::Object(members))
                }
                Some(c) if c == b'-' || c.is_ascii_digit() => {
                    let start = self.i;
                    while self.i < self.s.len() && b"+-.eE0123456789".contains(&self.s[self.i]) {
                        self.i += 1;
                    }
                    let text =
                        std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?;
                    if let Ok(n) = text.parse::<i64>() {
                        return Ok(Value::Int(n));
                    }
                    text.parse()
                        .map(Value::Float)
                        .map_err(|_| format!("bad number {text:?}"))
                }
                _ => Err(format!("unexpected input at {}", self.i)),
            }
        }

        fn hex4(&mut self) -> Result<u32, String> {
            let h = self.s.get(self.i..self.i + 4).ok_or("short \\u escape")?;
            let h = std::str::from_utf8(h).map_err(|e| e.to_string())?;
            self.i += 4;
            u32::from_str_radix(h, 16).map_err(|e| e.to_string())
        }

        fn string(&mut self) -> Result<String, String> {
            if self.peek() != Some(b'"') {
                return Err(format!("expected a string at {}", self.i));
            }
            self.i += 1;
            let mut out = String::new();
            loop {
                let start = self.i;
                while self.i < self.s.len() && self.s[self.i] != b'"' && self.s[self.i] != b'\\' {
                    if self.s[self.i] < 0x20 {
                        return Err(format!("raw control character at {}", self.i));
                    }
                    self.i += 1;
                }
                out.push_str(
                    std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?,
                );
                match self.peek() {
                    Some(b'"') => {
                        self.i += 1;
                        return Ok(out);
                    }
                    Some(b'\\') => {
                        self.i += 1;
                        let c = self.peek().ok_or("unterminated escape")?;
                        self.i += 1;
                        match c {
                            b'"' => out.push('"'),
                            b'\\' => out.push('\\'),
                            b'/' => out.push('/'),
                            b'b' => out.push('\u{8}'),
                            b'f' => out.push('\u{c}'),
                            b'n' => out.push('\n'),
                            b'r' => out.push('\r'),
                            b't' => out.push('\t'),
                            b'u' => {
                                let mut cp = self.hex4()?;
                                if (0xd800..0xdc00).contains(&cp) {
                                    if !self.s[self.i..].starts_with(b"\\u") {
                                        return Err("lone surrogate".into());
                                    }
                                    self.i += 2;
                                    let lo = self.hex4()?;
                                    if !(0xdc00..0xe000).contains(&lo) {
                                        return Err("bad low surrogate".into());
                                    }
                                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                                }
                                out.push(char::from_u32(cp).ok_or("bad code point")?);
                            }
                            _ => return Err(format!("bad escape at {}", self.i)),
                        }
                    }
                    _ => return Err("unterminated string".into()),
                }
            }
        }
    }

    #[test]
    fn quote_then_parse_round_trips() {
        for s in ["", "plain", "q\"uote\\", "ünï 日本 😀", "tab\there"] {
            assert_eq!(parse(&quote(s)), Ok(Value::String(s.to_string())));
            assert!(quote(s).is_ascii());
        }
        let v = parse(r#"{"a": [1, -2, 1.5, null, true], "b": {"c": "d"}}"#).unwrap();
        assert_eq!(
            v.get("a"),
            Some(&Value::Array(vec![
                Value::Int(1),
                Value::Int(-2),
                Value::Float(1.5),
                Value::Null,
                Value::Bool(true)
            ]))
        );
        assert_eq!(v.get("b").and_then(|b| b.str_at("c")), Some("d"));
        assert!(parse(r#"{"a": 1, "a": 2}"#).is_err());
        assert!(parse("[1,]").is_err());
        assert!(parse("{} x").is_err());
    }
}
