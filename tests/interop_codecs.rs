//! Compression and chunking interoperability with the official client (Python `pulsar-client`
//! 3.13.0, which wraps the C++ client), in both directions, through two helper scripts:
//!
//! - `tests/interop/codec_produce.py` sends the messages it reads on stdin (compressed, batched
//!   or chunked as asked) and prints their ids;
//! - `tests/interop/codec_consume.py` subscribes (Shared, Earliest) and prints every message.
//!
//! Payloads and properties travel as hex, on stdin and in the printed lines: a 6 MiB payload
//! does not fit on a command line, and hex needs no JSON parser here.
//!
//! pulsar-wire's side of every test talks to the broker through a [`Tap`]: a TCP relay that
//! decodes every frame passing through, so that each test also asserts what was on the wire
//! (the official producer really compressed with the codec, really sent chunks; pulsar-wire
//! really sent compressed batches), not only that payloads arrived.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use pulsar_wire::compression::Compression;
use pulsar_wire::wire::proto::{base_command::Type, MessageMetadata};
use pulsar_wire::{
    Consumer, InitialPosition, Message, MessageId, ProducerMessage, PulsarClient, SubscriptionType,
};
use tokio::io::AsyncWriteExt as _;

/// How long a helper script may run before the test gives up on it.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);
/// Liveness guard around each receive of a message that must come.
const RECEIVE_GUARD: Duration = Duration::from_secs(30);
/// How long to listen for messages that must not come.
const QUIET: Duration = Duration::from_secs(2);
fn client(url: &str) -> PulsarClient {
    PulsarClient::builder(url)
        .operation_timeout(Duration::from_secs(15))
        .build()
        .expect("client")
}

/// The codec's name as `codec_produce.py --compression` spells it.
fn codec_arg(codec: Compression) -> &'static str {
    match codec {
        Compression::None => "NONE",
        Compression::Lz4 => "LZ4",
        Compression::Zlib => "ZLIB",
        Compression::Zstd => "ZSTD",
        Compression::Snappy => "SNAPPY",
    }
}

// --- the messages both sides send -------------------------------------------------------------

/// One message: payload and properties.
#[derive(Debug, Clone, PartialEq)]
struct Spec {
    payload: Vec<u8>,
    properties: BTreeMap<String, String>,
}

impl Spec {
    fn to_message(&self) -> ProducerMessage {
        let mut msg = ProducerMessage::new(self.payload.clone());
        for (k, v) in &self.properties {
            msg = msg.property(k, v);
        }
        msg
    }

    /// The stdin line `codec_produce.py` reads.
    fn to_line(&self) -> String {
        format!(
            "{} {}\n",
            hex::encode(&self.payload),
            hex::properties(&self.properties)
        )
    }

    /// Checks a `message` line of `codec_consume.py`.
    fn assert_reported(&self, line: &Line, what: &str) {
        let payload = hex::decode(line.str("payload_hex")).expect("payload_hex");
        assert_eq!(payload.len(), self.payload.len(), "{what}: payload size");
        assert!(payload == self.payload, "{what}: payload bytes differ");
        assert_eq!(
            hex::parse_properties(line.str("properties_hex")),
            self.properties,
            "{what}: properties"
        );
        assert_eq!(line.int("redelivery_count"), 0, "{what}: redelivery count");
    }

    /// Checks a message pulsar-wire received.
    fn assert_received(&self, msg: &Message, what: &str) {
        self.assert_redelivered(msg, what, 0);
    }

    /// As [`Spec::assert_received`], for a message delivered at least `count` times before.
    fn assert_redelivered(&self, msg: &Message, what: &str, count: u32) {
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
        if count == 0 {
            assert_eq!(msg.redelivery_count(), 0, "{what}: redelivery count");
        } else {
            // pulsar-lite may count the lost dispatch more than once.
            assert!(msg.redelivery_count() >= count, "{what}: redelivery count");
        }
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

/// `n` messages whose payloads exercise a codec: very compressible text, incompressible noise,
/// an empty payload (unless `with_empty` is false: one byte instead), a short non-ASCII text, a
/// large compressible one; with properties (non-ASCII, empty values) on each.
fn codec_specs(tag: &str, n: usize, with_empty: bool) -> Vec<Spec> {
    (0..n)
        .map(|i| {
            let payload = match i % 5 {
                0 => format!("{tag} compressible line {i}\n")
                    .repeat(60)
                    .into_bytes(),
                1 => noise(700 + i * 13, i as u64),
                2 if i == 2 && with_empty => Vec::new(),
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
            }
        })
        .collect()
}

// --- running the helper scripts ----------------------------------------------------------------

/// One JSON line of a helper script. The scripts print only ints and hex or plain ASCII
/// strings (no escapes), with Python's `json.dumps` separators, so a field is found by its key.
#[derive(Debug, Clone)]
struct Line(String);

impl Line {
    fn raw(&self, key: &str) -> Option<&str> {
        let needle = format!("\"{key}\": ");
        let start = self.0.find(&needle)? + needle.len();
        let rest = &self.0[start..];
        if let Some(s) = rest.strip_prefix('"') {
            return s.find('"').map(|end| &s[..end]);
        }
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        Some(rest[..end].trim())
    }

    fn str(&self, key: &str) -> &str {
        self.raw(key)
            .unwrap_or_else(|| panic!("no {key:?} in {}", self.short()))
    }

    fn int(&self, key: &str) -> i64 {
        self.str(key)
            .parse()
            .unwrap_or_else(|_| panic!("{key:?} is not an integer in {}", self.short()))
    }

    fn event(&self) -> &str {
        self.str("event")
    }

    /// The id fields: (ledger, entry, batch index, partition).
    fn id(&self) -> (i64, i64, i64, i64) {
        (
            self.int("ledger_id"),
            self.int("entry_id"),
            self.int("batch_index"),
            self.int("partition"),
        )
    }

    /// The line, cut for messages (payloads can be megabytes of hex).
    fn short(&self) -> String {
        if self.0.len() > 300 {
            format!("{}... ({} bytes)", &self.0[..300], self.0.len())
        } else {
            self.0.clone()
        }
    }
}

fn wire_id(id: MessageId) -> (i64, i64, i64, i64) {
    (
        id.ledger_id,
        id.entry_id,
        i64::from(id.batch_index),
        i64::from(id.partition),
    )
}

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

/// Runs `tests/interop/<script>` with `stdin` and returns its lines. Panics, with its output,
/// if it fails or does not finish within [`SCRIPT_TIMEOUT`].
async fn run_script(script: &str, args: &[String], stdin: &[u8]) -> (Vec<Line>, String) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("interop")
        .join(script);
    let mut cmd = tokio::process::Command::new(python());
    cmd.arg(&path)
        .args(args)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONIOENCODING", "utf-8")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    // Written while the output is read: a large input must not wait for a full output pipe.
    let writer = tokio::spawn(async move {
        let _ = input.write_all(&data).await;
        let _ = input.shutdown().await;
    });
    let output = tokio::time::timeout(SCRIPT_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{script} did not finish within {SCRIPT_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    let _ = writer.await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let short = |s: &str| -> String {
        if s.len() > 4000 {
            format!("...{}", &s[s.len() - 4000..])
        } else {
            s.to_string()
        }
    };
    assert!(
        output.status.success(),
        "{script} failed ({})\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        short(&stdout),
        short(&stderr)
    );
    let lines = stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| Line(l.to_string()))
        .collect();
    (lines, short(&stderr))
}

/// Runs `codec_produce.py` with `specs` on stdin; returns its `sent` lines, in message order,
/// and the producer's name.
async fn official_produce(
    url: &str,
    topic: &str,
    specs: &[Spec],
    extra: &[&str],
) -> (Vec<Line>, String) {
    let mut args = vec![
        "--url".to_string(),
        url.to_string(),
        "--topic".to_string(),
        topic.to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let input: String = specs.iter().map(Spec::to_line).collect();
    let (lines, _) = run_script("codec_produce.py", &args, input.as_bytes()).await;
    let done: Vec<&Line> = lines.iter().filter(|l| l.event() == "done").collect();
    assert_eq!(done.len(), 1, "codec_produce.py said done once: {lines:?}");
    assert_eq!(done[0].int("sent"), specs.len() as i64);
    let name = String::from_utf8(hex::decode(done[0].str("producer_name_hex")).expect("hex"))
        .expect("a UTF-8 producer name");
    let sent: Vec<Line> = lines
        .iter()
        .filter(|l| l.event() == "sent")
        .cloned()
        .collect();
    assert_eq!(sent.len(), specs.len(), "one sent line per message");
    for (i, line) in sent.iter().enumerate() {
        assert_eq!(line.int("index"), i as i64, "sent lines in order");
    }
    (sent, name)
}

/// Runs `codec_consume.py` for `count` messages and returns every `message` line (extras
/// included).
async fn official_consume(url: &str, topic: &str, count: usize) -> Vec<Line> {
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
        "60",
        "--extra-wait-ms",
        "1500",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (lines, stderr) = run_script("codec_consume.py", &args, b"").await;
    let messages: Vec<Line> = lines
        .iter()
        .filter(|l| l.event() == "message")
        .cloned()
        .collect();
    let done = lines.iter().filter(|l| l.event() == "done").count();
    assert_eq!(
        done,
        1,
        "codec_consume.py got {} of {count} messages in time: {:?}\n--- stderr ---\n{stderr}",
        messages.len(),
        messages.iter().map(Line::short).collect::<Vec<_>>()
    );
    messages
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

// --- the tap ---------------------------------------------------------------------------------

use support::tap::{metadata, Seen, Tap};

/// pulsar-wire sends with `codec`, unbatched then batched; on the wire every SEND is compressed
/// with it; the official consumer gets every payload and property exactly, with the ids
/// pulsar-wire's receipts said.
async fn wire_to_official(codec: Compression) {
    let broker = support::broker();
    let tap = Tap::start(broker.addr()).await;
    let client = client(tap.url());
    let name = codec_arg(codec).to_lowercase();
    let topic = support::unique_topic(&format!("codec-w2o-{name}"));
    // The official consumer (C++ 3.13) cannot read an empty payload compressed with ZLIB, even
    // one its own producer wrote: it inflates into a null buffer of size 0 and fails with
    // Z_STREAM_ERROR ("Failed to decompress zlib buffer: -2 ... uncompressed size: 0"), then
    // discards the message. pulsar-wire, like the Java and C++ producers, compresses empty
    // payloads too; the empty case is left out of this direction for ZLIB only.
    let specs = codec_specs(&format!("w2o-{name}"), 10, codec != Compression::Zlib);

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

    // On the wire: 5 single messages, then batches of 3 and 2, each compressed with the codec.
    let sends = tap.seen(true, Type::Send);
    assert_eq!(sends.len(), 7, "SENDs: 5 unbatched, 2 batches");
    for (i, send) in sends.iter().enumerate() {
        let md = metadata(send);
        assert_eq!(
            md.compression,
            Some(codec.to_wire()),
            "SEND {i} is compressed with {codec:?}"
        );
        let batch = send
            .command
            .send
            .as_ref()
            .and_then(|s| s.num_messages)
            .unwrap_or(1);
        if i < 5 {
            assert_eq!(
                md.num_messages_in_batch, None,
                "SEND {i} is a single message"
            );
            assert_eq!(
                md.uncompressed_size,
                Some(specs[i].payload.len() as u32),
                "SEND {i}: uncompressed size"
            );
        } else {
            let expected = if i == 5 { 3 } else { 2 };
            assert_eq!(md.num_messages_in_batch, Some(expected), "SEND {i}: batch");
            assert_eq!(batch, expected, "SEND {i}: num_messages");
        }
    }
    for (i, id) in ids.iter().enumerate() {
        let expected = if i < 5 { -1 } else { ((i - 5) % 3) as i32 };
        assert_eq!(id.batch_index, expected, "receipt {i}: {id:?}");
    }

    let lines = official_consume(broker.url(), &topic, specs.len()).await;
    assert_eq!(lines.len(), specs.len(), "each message once");
    for (i, ((line, spec), id)) in lines.iter().zip(&specs).zip(&ids).enumerate() {
        let what = format!("{codec:?} message {i}");
        spec.assert_reported(line, &what);
        assert_eq!(line.id(), wire_id(*id), "{what}: id");
    }
    client.close().await.expect("close client");
}

/// The official producer sends with `codec`, unbatched then batched (batches of 3); on the wire
/// every MESSAGE is compressed with it; pulsar-wire gets every payload and property exactly,
/// with the ids the official producer got.
async fn official_to_wire(codec: Compression) {
    let broker = support::broker();
    let tap = Tap::start(broker.addr()).await;
    let client = client(tap.url());
    let name = codec_arg(codec).to_lowercase();
    let topic = support::unique_topic(&format!("codec-o2w-{name}"));
    let specs = codec_specs(&format!("o2w-{name}"), 10, true);
    let mut consumer = subscribe(&client, &topic, "wire-sub").await;

    let codec_flag = ["--compression", codec_arg(codec)];
    let (mut sent, plain_name) =
        official_produce(broker.url(), &topic, &specs[..5], &codec_flag).await;
    let batch_flags = [
        "--compression",
        codec_arg(codec),
        "--batching",
        "--batch-max-messages",
        "3",
    ];
    let (batched_sent, batched_name) =
        official_produce(broker.url(), &topic, &specs[5..], &batch_flags).await;
    sent.extend(batched_sent);

    for (i, (spec, sent)) in specs.iter().zip(&sent).enumerate() {
        let what = format!("{codec:?} message {i}");
        let msg = receive_one(&mut consumer, &what).await;
        spec.assert_received(&msg, &what);
        assert_eq!(wire_id(msg.id()), sent.id(), "{what}: the official id");
        let producer = if i < 5 { &plain_name } else { &batched_name };
        assert_eq!(msg.producer_name(), producer, "{what}: producer");
        consumer.ack(&msg).await.expect("ack");
    }
    let batch_indexes: Vec<i64> = sent.iter().map(|l| l.id().2).collect();
    assert_eq!(
        batch_indexes,
        vec![-1, -1, -1, -1, -1, 0, 1, 2, 0, 1],
        "the official producer's batches"
    );

    // On the wire: 7 entries, each compressed by the official producer with the codec.
    let messages = tap.seen(false, Type::Message);
    assert_eq!(messages.len(), 7, "MESSAGEs: 5 single messages, 2 batches");
    for (i, m) in messages.iter().enumerate() {
        let md = metadata(m);
        assert_eq!(
            md.compression,
            Some(codec.to_wire()),
            "entry {i} was compressed with {codec:?} by the official producer"
        );
        assert!(
            md.uncompressed_size.is_some(),
            "entry {i}: uncompressed size"
        );
        let expected = match i {
            0..=4 => None,
            5 => Some(3),
            _ => Some(2),
        };
        assert_eq!(md.num_messages_in_batch, expected, "entry {i}: batch size");
    }
    consumer.close().await.expect("close consumer");
    client.close().await.expect("close client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lz4_wire_to_official() {
    wire_to_official(Compression::Lz4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zlib_wire_to_official() {
    wire_to_official(Compression::Zlib).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zstd_wire_to_official() {
    wire_to_official(Compression::Zstd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snappy_wire_to_official() {
    wire_to_official(Compression::Snappy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lz4_official_to_wire() {
    official_to_wire(Compression::Lz4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zlib_official_to_wire() {
    official_to_wire(Compression::Zlib).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zstd_official_to_wire() {
    official_to_wire(Compression::Zstd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snappy_official_to_wire() {
    official_to_wire(Compression::Snappy).await;
}

// --- chunking --------------------------------------------------------------------------------

/// The chunks of one message as they were on the wire: checks they are chunks 0..n-1 of one
/// uuid, each with the message's total size, and returns n.
fn assert_chunk_run(metadata: &[&MessageMetadata], total: usize, what: &str) -> usize {
    let n = metadata.len();
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

/// pulsar-wire chunks a 300 KB message into 64 KiB chunks (and sends a small one after it); the
/// official consumer, on a Shared subscription, gets both whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_wire_to_official() {
    let broker = support::broker();
    let tap = Tap::start(broker.addr()).await;
    let client = client(tap.url());
    let topic = support::unique_topic("codec-w2o-chunks");
    let specs = [
        Spec {
            payload: noise(300_000, 7),
            properties: BTreeMap::from([("kind".to_string(), "big ✓".to_string())]),
        },
        Spec {
            payload: b"small after big".to_vec(),
            properties: BTreeMap::from([("kind".to_string(), "small".to_string())]),
        },
    ];
    let producer = client
        .producer(&topic)
        .chunking(true)
        .chunk_max_size(64 * 1024)
        .create()
        .await
        .expect("chunking producer");
    let big_id = producer
        .send(specs[0].to_message())
        .await
        .expect("send big");
    let small_id = producer
        .send(specs[1].to_message())
        .await
        .expect("send small");
    producer.close().await.expect("close");

    let sends = tap.seen(true, Type::Send);
    let (chunks, rest): (Vec<&Seen>, Vec<&Seen>) = sends
        .iter()
        .partition(|s| s.command.send.as_ref().and_then(|s| s.is_chunk) == Some(true));
    let chunk_md: Vec<&MessageMetadata> = chunks.iter().map(|s| metadata(s)).collect();
    let n = assert_chunk_run(
        &chunk_md,
        specs[0].payload.len(),
        "pulsar-wire's big message",
    );
    assert!(n >= 5, "300 KB in chunks of at most 64 KiB: {n} chunks");
    assert_eq!(rest.len(), 1, "the small message is one SEND");
    assert_eq!(
        metadata(rest[0]).uuid,
        None,
        "the small message is no chunk"
    );
    let first = big_id
        .first_chunk
        .expect("the big message's id names its first chunk");
    assert!(
        (first.ledger_id, first.entry_id) < (big_id.ledger_id, big_id.entry_id),
        "first chunk {first:?} before the last {big_id:?}"
    );
    assert_eq!(small_id.first_chunk, None);

    let lines = official_consume(broker.url(), &topic, specs.len()).await;
    assert_eq!(lines.len(), 2, "each message once, whole");
    specs[0].assert_reported(&lines[0], "the big message");
    specs[1].assert_reported(&lines[1], "the small message");
    assert_eq!(
        (lines[0].int("ledger_id"), lines[0].int("entry_id")),
        (big_id.ledger_id, big_id.entry_id),
        "the official id of a chunked message names its last chunk"
    );
    assert_eq!(lines[1].id(), wire_id(small_id), "the small message's id");
    client.close().await.expect("close client");
}

/// The official producer (chunking on, batching off) sends a 6 MiB message, above the broker's
/// 5 MiB max message size, then a small one; pulsar-wire, on a Shared subscription, gets both
/// whole, acks them, and after subscribing again gets nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_official_to_wire() {
    let broker = support::broker();
    let tap = Tap::start(broker.addr()).await;
    let client = client(tap.url());
    let topic = support::unique_topic("codec-o2w-chunks");
    let sub = "wire-sub";
    let specs = vec![
        Spec {
            payload: noise(6 * 1024 * 1024, 11),
            properties: BTreeMap::from([("kind".to_string(), "big ✓".to_string())]),
        },
        Spec {
            payload: b"small after big".to_vec(),
            properties: BTreeMap::from([("kind".to_string(), "small".to_string())]),
        },
    ];
    let mut consumer = subscribe(&client, &topic, sub).await;
    let (sent, producer_name) =
        official_produce(broker.url(), &topic, &specs, &["--chunking"]).await;

    for (i, (spec, sent)) in specs.iter().zip(&sent).enumerate() {
        let what = format!("message {i}");
        // Under load, pulsar-lite sometimes counts a message as dispatched to a Shared
        // consumer right after a chunked message without ever sending it: the relay above saw
        // only the two chunk MESSAGE frames (seen about 1 run in 5 with the whole file running).
        // Resubscribing makes the broker redeliver it, with its redelivery count raised.
        let (msg, redeliveries) =
            match tokio::time::timeout(Duration::from_secs(10), consumer.receive()).await {
                Ok(received) => (
                    received.unwrap_or_else(|e| panic!("{what}: receive failed: {e}")),
                    0,
                ),
                Err(_) => {
                    let pushed = tap.seen(false, Type::Message).len();
                    assert_eq!(pushed, 2, "{what}: only the chunks reached the client");
                    consumer.close().await.expect("close");
                    consumer = subscribe(&client, &topic, sub).await;
                    (receive_one(&mut consumer, &what).await, 1)
                }
            };
        spec.assert_redelivered(&msg, &what, redeliveries);
        assert_eq!(msg.producer_name(), producer_name, "{what}: producer");
        assert_eq!(
            (msg.id().ledger_id, msg.id().entry_id),
            (sent.int("ledger_id"), sent.int("entry_id")),
            "{what}: the id the official producer got"
        );
        consumer.ack(&msg).await.expect("ack");
    }
    assert!(
        consumer
            .receive_timeout(QUIET)
            .await
            .expect("receive")
            .is_none(),
        "nothing beyond the two messages"
    );

    // On the wire: the big message came as chunks 0..n-1 of one uuid, the small one whole.
    let messages = tap.seen(false, Type::Message);
    let chunk_md: Vec<&MessageMetadata> = messages
        .iter()
        .map(metadata)
        .filter(|md| md.num_chunks_from_msg.is_some())
        .collect();
    let n = assert_chunk_run(
        &chunk_md,
        specs[0].payload.len(),
        "the official big message",
    );
    assert!(n >= 2, "6 MiB above a 5 MiB max message size: {n} chunks");
    assert_eq!(
        messages.len(),
        n + 1,
        "the chunks and the small message, each delivered once"
    );
    // Every chunk was acknowledged.
    let acked: usize = tap
        .seen(true, Type::Ack)
        .iter()
        .filter_map(|s| s.command.ack.as_ref())
        .map(|a| a.message_id.len())
        .sum();
    assert_eq!(
        acked,
        n + 1,
        "one ack per chunk and one for the small message"
    );

    consumer.close().await.expect("close consumer");
    let mut again = subscribe(&client, &topic, sub).await;
    let redelivered = again.receive_timeout(QUIET).await.expect("receive");
    assert!(
        redelivered.is_none(),
        "a message came back after acking everything and resubscribing: {:?}",
        redelivered.map(|m| (m.id(), m.payload().len()))
    );
    again.close().await.expect("close");
    client.close().await.expect("close client");
}

// --- hex, both ways ----------------------------------------------------------------------------

mod hex {
    use std::collections::BTreeMap;

    pub fn encode(data: &[u8]) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(data.len() * 2);
        for b in data {
            out.push(DIGITS[usize::from(b >> 4)] as char);
            out.push(DIGITS[usize::from(b & 15)] as char);
        }
        out
    }

    pub fn decode(text: &str) -> Result<Vec<u8>, String> {
        let digit = |c: u8| -> Result<u8, String> {
            match c {
                b'0'..=b'9' => Ok(c - b'0'),
                b'a'..=b'f' => Ok(c - b'a' + 10),
                b'A'..=b'F' => Ok(c - b'A' + 10),
                _ => Err(format!("bad hex digit {:?}", c as char)),
            }
        };
        let bytes = text.as_bytes();
        if bytes.len() % 2 != 0 {
            return Err(format!("odd hex length {}", bytes.len()));
        }
        bytes
            .chunks(2)
            .map(|p| Ok((digit(p[0])? << 4) | digit(p[1])?))
            .collect()
    }

    /// `-`, or `KEY_HEX=VALUE_HEX` pairs joined by commas (in key order).
    pub fn properties(props: &BTreeMap<String, String>) -> String {
        if props.is_empty() {
            return "-".to_string();
        }
        props
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k.as_bytes()), encode(v.as_bytes())))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn parse_properties(text: &str) -> BTreeMap<String, String> {
        if text == "-" {
            return BTreeMap::new();
        }
        let utf8 = |h: &str| String::from_utf8(decode(h).expect("hex")).expect("UTF-8");
        text.split(',')
            .map(|pair| {
                let (k, v) = pair.split_once('=').expect("KEY_HEX=VALUE_HEX");
                (utf8(k), utf8(v))
            })
            .collect()
    }

    #[test]
    fn round_trips() {
        assert_eq!(encode(b""), "");
        assert_eq!(encode(&[0, 0x7f, 0xff]), "007fff");
        let data: Vec<u8> = (0..=255).collect();
        assert_eq!(decode(&encode(&data)).unwrap(), data);
        assert!(decode("abc").is_err());
        assert!(decode("zz").is_err());
        let props = BTreeMap::from([
            ("k".to_string(), "ü ✓".to_string()),
            ("empty".to_string(), String::new()),
        ]);
        assert_eq!(parse_properties(&properties(&props)), props);
        assert_eq!(
            parse_properties(&properties(&BTreeMap::new())),
            BTreeMap::new()
        );
    }
}

#[test]
fn lines_are_read_by_key() {
    let line = Line(
        r#"{"batch_index": -1, "entry_id": 12, "event": "message", "payload_hex": "00ff", "properties_hex": "-"}"#
            .to_string(),
    );
    assert_eq!(line.event(), "message");
    assert_eq!(line.int("batch_index"), -1);
    assert_eq!(line.int("entry_id"), 12);
    assert_eq!(line.str("payload_hex"), "00ff");
    assert_eq!(line.str("properties_hex"), "-");
    assert_eq!(line.raw("ledger_id"), None);
}
