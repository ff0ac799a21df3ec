//! Client cost per message: the whole client (`PulsarClient`, its producer and consumer, the
//! connection driver) against an in-process sink peer that answers at once, so that the
//! numbers are the client's own work and not a broker's.
//!
//! `cargo bench --bench client`. The sink runs on its own thread (its own current-thread
//! runtime); the client runs on the bench thread, on a current-thread runtime, so every task
//! of the client runs on that one thread. Benches:
//!
//! - `produce_1k_batched` / `produce_1k_unbatched`: `send_async` 10,000 messages of 1 KiB,
//!   then `flush` and await every receipt;
//! - `consume_1k` / `consume_batch_100x100B`: `receive` + `ack` 10,000 messages (1 KiB
//!   messages, or batches of 100 × 100 B) that the sink pushes as fast as the permits allow;
//! - `produce_1k_batched_stats_off` / `produce_1k_unbatched_stats_off`: the produce paths on a
//!   client with stats off (`stats_interval(Duration::ZERO)`), for the cost of recording stats
//!   (on by default, as in every other path);
//! - `produce_1k_batched_metrics` / `produce_1k_unbatched_metrics` / `consume_1k_metrics`:
//!   the same paths on a client with metrics on (`metrics_recorder`, into the Prometheus
//!   exporter's recorder of the `metrics` facade), for the cost of metrics beside the paths
//!   without (off by default);
//! - the same four `_encrypted`: end-to-end encryption on (the producer encrypts every message,
//!   or every batch, for the test key rsa-a; the consumer decrypts with its private key, the
//!   data key decrypted once and cached), for the cost beside the unencrypted path.
//!
//! Before them, `cost_per_message` runs each path once over [`COST_MESSAGES`] messages and
//! prints (stderr) the client thread's CPU time per message (`/proc/thread-self/schedstat`,
//! on-CPU nanoseconds of the bench thread only, so the sink's work is not counted), the wall
//! time per message, and the heap allocations per message counted by the counting global
//! allocator below on the client thread only. `CLIENT_BENCH_COST_ONLY=<bench name>` limits it
//! to one path (for a profiler: `cargo bench --bench client -- nomatch` then skips the
//! criterion benches).

use std::cell::Cell;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use metrics_exporter_prometheus::PrometheusBuilder;
use prost::Message as _;
use pulsar_wire::wire::proto::{
    self, base_command::Type, command_lookup_topic_response::LookupType,
    command_partitioned_topic_metadata_response, BaseCommand, MessageIdData, MessageMetadata,
    SingleMessageMetadata,
};
use pulsar_wire::wire::{self, DEFAULT_MAX_FRAME_SIZE};
use pulsar_wire::DefaultCryptoKeyReader;
use pulsar_wire::{Consumer, Producer, ProducerMessage, PulsarClient};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

/// Messages per criterion iteration.
const MESSAGES: usize = 10_000;
/// Messages of the one-off cost measurement (after one warm-up run of [`MESSAGES`]).
const COST_MESSAGES: usize = 100_000;
/// Payload size of the 1 KiB paths.
const SIZE: usize = 1024;
/// Entries per batch of the batched consume path, and their size.
const BATCH_ENTRIES: u32 = 100;
const ENTRY_SIZE: usize = 100;
/// How many bytes of MESSAGE frames the sink writes at once.
const PUSH_CHUNK: usize = 256 * 1024;

// ---------------------------------------------------------------------------------------------
// Allocation counting: only on threads that turned it on (the client thread, during a run).

struct Counting;

thread_local! {
    static COUNT_HERE: Cell<bool> = const { Cell::new(false) };
}
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static REALLOCS: AtomicU64 = AtomicU64::new(0);

fn counting_here() -> bool {
    COUNT_HERE.try_with(Cell::get).unwrap_or(false)
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counters are atomics
// and the thread-local flag is a const-initialized `Cell` (no allocation, no destructor).
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        if counting_here() {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { std::alloc::System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        if counting_here() {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: as above.
        unsafe { std::alloc::System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        if counting_here() {
            REALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: as above.
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: as above.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The CPU time of the calling thread: on-CPU nanoseconds from `/proc/thread-self/schedstat`,
/// or (without schedstats) utime + stime ticks of `/proc/thread-self/stat` at USER_HZ = 100.
fn thread_cpu() -> Duration {
    if let Ok(s) = std::fs::read_to_string("/proc/thread-self/schedstat") {
        if let Some(ns) = s.split_whitespace().next().and_then(|v| v.parse().ok()) {
            return Duration::from_nanos(ns);
        }
    }
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<u64> = rest
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks = fields.get(10).copied().unwrap_or(0) + fields.get(11).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

// ---------------------------------------------------------------------------------------------
// The sink peer.

fn command(kind: Type) -> BaseCommand {
    BaseCommand {
        r#type: kind as i32,
        ..Default::default()
    }
}

fn put(dst: &mut BytesMut, command: &BaseCommand) {
    wire::encode_command(command, dst, DEFAULT_MAX_FRAME_SIZE).expect("encodes");
}

fn message_command(consumer_id: u64, entry_id: u64) -> BaseCommand {
    BaseCommand {
        message: Some(proto::CommandMessage {
            consumer_id,
            message_id: MessageIdData {
                ledger_id: 1,
                entry_id,
                ..Default::default()
            },
            ..Default::default()
        }),
        ..command(Type::Message)
    }
}

/// The payload section of a MESSAGE frame (checksum block, metadata, payload), encoded once;
/// a frame is then its size fields, a fresh MESSAGE command and these bytes.
fn payload_section(metadata: &MessageMetadata, payload: &[u8]) -> Bytes {
    let template = message_command(0, 0);
    let mut frame = BytesMut::new();
    wire::encode_payload_command(
        &template,
        None,
        metadata,
        payload,
        &mut frame,
        DEFAULT_MAX_FRAME_SIZE,
    )
    .expect("encodes");
    frame.freeze().slice(8 + template.encoded_len()..)
}

/// The two MESSAGE payload sections the sink pushes: one 1 KiB message, and a batch of
/// 100 × 100 B.
struct Templates {
    single: Bytes,
    batch: Bytes,
    /// The same, encrypted for the test key rsa-a (tests/data/crypto/) as the official clients
    /// encrypt: AES-256-GCM under a 12-byte IV, the data key with RSA-OAEP (SHA-1).
    single_encrypted: Bytes,
    batch_encrypted: Bytes,
}

/// Which template a consumer gets, by its topic's name.
#[derive(Clone, Copy)]
enum Kind {
    Single,
    Batch,
    SingleEncrypted,
    BatchEncrypted,
}

impl Kind {
    fn of(topic: &str) -> Kind {
        match (topic.contains("batch"), topic.contains("encrypted")) {
            (false, false) => Kind::Single,
            (true, false) => Kind::Batch,
            (false, true) => Kind::SingleEncrypted,
            (true, true) => Kind::BatchEncrypted,
        }
    }
}

/// `metadata` and `payload` encrypted for rsa-a: one data key for every template, a fresh IV.
fn encrypt(mut metadata: MessageMetadata, payload: &[u8], data_key: &[u8]) -> Bytes {
    use aes_gcm::aead::{Aead, KeyInit};
    use rsa::pkcs8::DecodePublicKey;
    let pem = include_str!("../tests/data/crypto/rsa-a.pub.pem");
    let public = rsa::RsaPublicKey::from_public_key_pem(pem).expect("rsa-a.pub.pem");
    let value = public
        .encrypt(&mut rand_core(), rsa::Oaep::new::<sha1::Sha1>(), data_key)
        .expect("RSA-OAEP");
    let iv = [7u8; 12];
    let sealed = aes_gcm::Aes256Gcm::new_from_slice(data_key)
        .expect("a 32-byte key")
        .encrypt(aes_gcm::Nonce::from_slice(&iv), payload)
        .expect("AES-GCM");
    metadata.encryption_keys = vec![proto::EncryptionKeys {
        key: "rsa-a".into(),
        value: value.into(),
        metadata: Vec::new(),
    }];
    metadata.encryption_param = Some(Bytes::copy_from_slice(&iv));
    payload_section(&metadata, &sealed)
}

fn rand_core() -> aes_gcm::aead::OsRng {
    aes_gcm::aead::OsRng
}

impl Templates {
    fn new() -> Self {
        let meta = |len: usize, batch: Option<i32>| MessageMetadata {
            producer_name: "sink-0".into(),
            sequence_id: 0,
            publish_time: 1_767_225_600_000,
            uncompressed_size: Some(len as u32),
            num_messages_in_batch: batch,
            ..Default::default()
        };
        let single = payload_section(&meta(SIZE, None), &vec![b'x'; SIZE]);
        let mut entries = BytesMut::new();
        for i in 0..BATCH_ENTRIES {
            let mut md = SingleMessageMetadata {
                sequence_id: Some(u64::from(i)),
                ..Default::default()
            };
            wire::encode_entry(&mut md, &[b'y'; ENTRY_SIZE], &mut entries);
        }
        let batch = payload_section(&meta(entries.len(), Some(BATCH_ENTRIES as i32)), &entries);
        let data_key = [42u8; 32];
        let single_encrypted = encrypt(meta(SIZE, None), &vec![b'x'; SIZE], &data_key);
        let batch_encrypted = encrypt(
            meta(entries.len(), Some(BATCH_ENTRIES as i32)),
            &entries,
            &data_key,
        );
        Templates {
            single,
            batch,
            single_encrypted,
            batch_encrypted,
        }
    }
}

/// What a connection's reader hands its writer, in order.
enum Ctl {
    /// Answers to write as they are.
    Bytes(Bytes),
    /// A new consumer, with the template of its topic.
    Subscribe { consumer_id: u64, kind: Kind },
    /// FLOW: more permits (in messages) for a consumer.
    Flow { consumer_id: u64, permits: u64 },
    /// CLOSE_CONSUMER or UNSUBSCRIBE: stop pushing to it.
    Close { consumer_id: u64 },
}

/// Starts the sink on its own thread; returns its `pulsar://` URL.
fn start_sink() -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("sink".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("sink runtime");
            rt.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
                let url = format!("pulsar://{}", listener.local_addr().expect("addr"));
                tx.send(url.clone()).expect("report the url");
                let templates = std::sync::Arc::new(Templates::new());
                while let Ok((stream, _)) = listener.accept().await {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(serve(stream, url.clone(), templates.clone()));
                }
            });
        })
        .expect("sink thread");
    rx.recv().expect("the sink's url")
}

/// One connection: a reader that answers commands (receipts of one read coalesced into one
/// write) and a writer that also pushes MESSAGE frames while consumers have permits, so that
/// reading never waits for the client to take what is written.
async fn serve(stream: TcpStream, url: String, templates: std::sync::Arc<Templates>) {
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Ctl>();
    let writer = tokio::spawn(async move {
        struct Pushing {
            id: u64,
            kind: Kind,
            permits: u64,
            next_entry: u64,
        }
        let mut consumers: Vec<Pushing> = Vec::new();
        let mut out = BytesMut::with_capacity(PUSH_CHUNK + 64 * 1024);
        let apply = |c: Ctl, consumers: &mut Vec<Pushing>, out: &mut BytesMut| match c {
            Ctl::Bytes(b) => out.extend_from_slice(&b),
            Ctl::Subscribe { consumer_id, kind } => consumers.push(Pushing {
                id: consumer_id,
                kind,
                permits: 0,
                next_entry: 0,
            }),
            Ctl::Flow {
                consumer_id,
                permits,
            } => {
                if let Some(c) = consumers.iter_mut().find(|c| c.id == consumer_id) {
                    c.permits += permits;
                }
            }
            Ctl::Close { consumer_id } => consumers.retain(|c| c.id != consumer_id),
        };
        loop {
            while let Ok(c) = rx.try_recv() {
                apply(c, &mut consumers, &mut out);
            }
            for c in consumers.iter_mut() {
                let (tail, per_frame) = match c.kind {
                    Kind::Single => (&templates.single, 1),
                    Kind::Batch => (&templates.batch, u64::from(BATCH_ENTRIES)),
                    Kind::SingleEncrypted => (&templates.single_encrypted, 1),
                    Kind::BatchEncrypted => (&templates.batch_encrypted, u64::from(BATCH_ENTRIES)),
                };
                while c.permits >= per_frame && out.len() < PUSH_CHUNK {
                    let cmd = message_command(c.id, c.next_entry);
                    let cmd_len = cmd.encoded_len();
                    out.reserve(8 + cmd_len + tail.len());
                    out.put_u32((4 + cmd_len + tail.len()) as u32);
                    out.put_u32(cmd_len as u32);
                    cmd.encode_raw(&mut out);
                    out.extend_from_slice(tail);
                    c.permits -= per_frame;
                    c.next_entry += 1;
                }
            }
            if out.is_empty() {
                match rx.recv().await {
                    Some(c) => apply(c, &mut consumers, &mut out),
                    None => return,
                }
                continue;
            }
            if wr.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
    });

    let mut rbuf = BytesMut::with_capacity(256 * 1024);
    let mut next_entry = 0u64;
    'read: loop {
        match rd.read_buf(&mut rbuf).await {
            Ok(n) if n > 0 => {}
            _ => break,
        }
        let mut replies = BytesMut::new();
        loop {
            let frame = match wire::decode(&mut rbuf, DEFAULT_MAX_FRAME_SIZE) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(_) => break 'read,
            };
            let c = frame.command;
            let Ok(kind) = Type::try_from(c.r#type) else {
                continue;
            };
            match kind {
                Type::Send => {
                    let s = c.send.unwrap_or_default();
                    put(
                        &mut replies,
                        &BaseCommand {
                            send_receipt: Some(proto::CommandSendReceipt {
                                producer_id: s.producer_id,
                                sequence_id: s.sequence_id,
                                message_id: Some(MessageIdData {
                                    ledger_id: 1,
                                    entry_id: next_entry,
                                    ..Default::default()
                                }),
                                highest_sequence_id: s.highest_sequence_id,
                            }),
                            ..command(Type::SendReceipt)
                        },
                    );
                    next_entry += 1;
                }
                Type::Flow => {
                    let f = c.flow.unwrap_or_default();
                    let _ = tx.send(Ctl::Flow {
                        consumer_id: f.consumer_id,
                        permits: u64::from(f.message_permits),
                    });
                }
                Type::Ack => {}
                Type::Connect => put(
                    &mut replies,
                    &BaseCommand {
                        connected: Some(Box::new(proto::CommandConnected {
                            server_version: "bench-sink".into(),
                            protocol_version: Some(21),
                            max_message_size: Some(wire::DEFAULT_MAX_MESSAGE_SIZE as i32),
                            ..Default::default()
                        })),
                        ..command(Type::Connected)
                    },
                ),
                Type::Ping => put(
                    &mut replies,
                    &BaseCommand {
                        pong: Some(proto::CommandPong {}),
                        ..command(Type::Pong)
                    },
                ),
                Type::Lookup => {
                    let l = c.lookup_topic.unwrap_or_default();
                    put(
                        &mut replies,
                        &BaseCommand {
                            lookup_topic_response: Some(Box::new(
                                proto::CommandLookupTopicResponse {
                                    broker_service_url: Some(url.clone()),
                                    response: Some(LookupType::Connect as i32),
                                    request_id: l.request_id,
                                    authoritative: Some(true),
                                    ..Default::default()
                                },
                            )),
                            ..command(Type::LookupResponse)
                        },
                    );
                }
                Type::PartitionedMetadata => {
                    let m = c.partition_metadata.unwrap_or_default();
                    put(
                        &mut replies,
                        &BaseCommand {
                            partition_metadata_response: Some(Box::new(
                                proto::CommandPartitionedTopicMetadataResponse {
                                    partitions: Some(0),
                                    request_id: m.request_id,
                                    response: Some(
                                        command_partitioned_topic_metadata_response::LookupType::Success
                                            as i32,
                                    ),
                                    ..Default::default()
                                },
                            )),
                            ..command(Type::PartitionedMetadataResponse)
                        },
                    );
                }
                Type::Producer => {
                    let p = c.producer.unwrap_or_default();
                    put(
                        &mut replies,
                        &BaseCommand {
                            producer_success: Some(Box::new(proto::CommandProducerSuccess {
                                request_id: p.request_id,
                                producer_name: p
                                    .producer_name
                                    .unwrap_or_else(|| format!("sink-producer-{}", p.producer_id)),
                                last_sequence_id: Some(-1),
                                producer_ready: Some(true),
                                ..Default::default()
                            })),
                            ..command(Type::ProducerSuccess)
                        },
                    );
                }
                Type::Subscribe => {
                    let s = c.subscribe.unwrap_or_default();
                    // Hand over what is answered so far first: the writer keeps the order.
                    let _ = tx.send(Ctl::Bytes(replies.split().freeze()));
                    let _ = tx.send(Ctl::Subscribe {
                        consumer_id: s.consumer_id,
                        kind: Kind::of(&s.topic),
                    });
                    put(&mut replies, &success(s.request_id));
                }
                Type::CloseConsumer => {
                    let cc = c.close_consumer.unwrap_or_default();
                    let _ = tx.send(Ctl::Close {
                        consumer_id: cc.consumer_id,
                    });
                    put(&mut replies, &success(cc.request_id));
                }
                Type::Unsubscribe => {
                    let u = c.unsubscribe.unwrap_or_default();
                    let _ = tx.send(Ctl::Close {
                        consumer_id: u.consumer_id,
                    });
                    put(&mut replies, &success(u.request_id));
                }
                Type::CloseProducer => {
                    let cp = c.close_producer.unwrap_or_default();
                    put(&mut replies, &success(cp.request_id));
                }
                _ => {}
            }
        }
        if !replies.is_empty() {
            let _ = tx.send(Ctl::Bytes(replies.freeze()));
        }
    }
    drop(tx);
    let _ = writer.await;
}

fn success(request_id: u64) -> BaseCommand {
    BaseCommand {
        success: Some(Box::new(proto::CommandSuccess {
            request_id,
            schema: None,
        })),
        ..command(Type::Success)
    }
}

// ---------------------------------------------------------------------------------------------
// The client side.

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime")
}

async fn producer(client: &PulsarClient, topic: &str, batching: bool, encrypted: bool) -> Producer {
    let mut b = client.producer(topic);
    if encrypted {
        b = b.encryption_key("rsa-a").crypto_key_reader(
            DefaultCryptoKeyReader::new()
                .default_public_key(include_str!("../tests/data/crypto/rsa-a.pub.pem")),
        );
    }
    b.batching(batching)
        .max_pending_messages(MESSAGES)
        .block_if_queue_full(true)
        .create()
        .await
        .expect("producer")
}

async fn consumer(client: &PulsarClient, topic: &str) -> Consumer {
    let mut b = client.consumer(topic);
    if topic.contains("encrypted") {
        b = b.crypto_key_reader(
            DefaultCryptoKeyReader::new()
                .default_private_key(include_str!("../tests/data/crypto/rsa-a.pkcs1.pem")),
        );
    }
    b.subscription("bench").subscribe().await.expect("consumer")
}

/// `send_async` `n` messages (at most [`MESSAGES`] awaiting a receipt), flush, await every
/// receipt.
async fn produce(producer: &Producer, payload: &Bytes, n: usize) {
    let mut receipts = Vec::with_capacity(MESSAGES);
    let mut sent = 0;
    while sent < n {
        let round = MESSAGES.min(n - sent);
        for _ in 0..round {
            let receipt = producer
                .send_async(ProducerMessage::new(payload.clone()))
                .await
                .expect("queued");
            receipts.push(receipt);
        }
        producer.flush().await.expect("flushed");
        for receipt in receipts.drain(..) {
            black_box(receipt.await.expect("receipt"));
        }
        sent += round;
    }
}

/// Receives and acks `n` messages.
async fn consume(consumer: &mut Consumer, n: usize) {
    for _ in 0..n {
        let msg = consumer.receive().await.expect("message");
        black_box(msg.payload().len());
        consumer.ack(&msg).await.expect("ack");
    }
}

/// One bench path, set up on the client runtime.
enum Path {
    Produce(Producer, Bytes),
    Consume(Box<Consumer>),
}

impl Path {
    async fn run(&mut self, n: usize) {
        match self {
            Path::Produce(p, payload) => produce(p, payload, n).await,
            Path::Consume(c) => consume(c, n).await,
        }
    }
}

/// The paths, by bench name; each on its own client (and so its own connection).
async fn paths(url: &str) -> Vec<(&'static str, PulsarClient, Path)> {
    let payload = Bytes::from(vec![b'p'; SIZE]);
    let mut out = Vec::new();
    for (name, batching, encrypted, stats, metrics) in [
        ("produce_1k_batched", true, false, true, false),
        ("produce_1k_batched_stats_off", true, false, false, false),
        ("produce_1k_batched_metrics", true, false, true, true),
        ("produce_1k_batched_encrypted", true, true, true, false),
        ("produce_1k_unbatched", false, false, true, false),
        ("produce_1k_unbatched_stats_off", false, false, false, false),
        ("produce_1k_unbatched_metrics", false, false, true, true),
        ("produce_1k_unbatched_encrypted", false, true, true, false),
    ] {
        let mut builder = PulsarClient::builder(url);
        if !stats {
            builder = builder.stats_interval(Duration::ZERO);
        }
        if metrics {
            builder = builder.metrics_recorder(PrometheusBuilder::new().build_recorder());
        }
        let client = builder.build().expect("client");
        let topic = format!("persistent://public/default/{name}");
        let p = producer(&client, &topic, batching, encrypted).await;
        out.push((name, client, Path::Produce(p, payload.clone())));
    }
    for (name, topic) in [
        ("consume_1k", "consume-1k"),
        ("consume_1k_metrics", "consume-1k-metrics"),
        ("consume_1k_encrypted", "consume-1k-encrypted"),
        ("consume_batch_100x100B", "consume-batch"),
        (
            "consume_batch_100x100B_encrypted",
            "consume-batch-encrypted",
        ),
    ] {
        let mut builder = PulsarClient::builder(url);
        if topic.contains("metrics") {
            builder = builder.metrics_recorder(PrometheusBuilder::new().build_recorder());
        }
        let client = builder.build().expect("client");
        let c = consumer(&client, &format!("persistent://public/default/{topic}")).await;
        out.push((name, client, Path::Consume(Box::new(c))));
    }
    out
}

fn url() -> &'static str {
    static URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    URL.get_or_init(start_sink)
}

/// The performance issue's goals: CPU per message within this many times the floor.
const GOALS: [(&str, u32); 4] = [
    ("produce_1k_batched", 3),
    ("produce_1k_unbatched", 12),
    ("consume_1k", 6),
    ("consume_batch_100x100B", 3),
];

/// The least a client can do per 1 KiB message, in seconds: copy it once and checksum it once
/// (CRC32C), on this core, measured here so that every run prints its paths against it.
fn floor_per_message() -> f64 {
    const N: usize = 200_000;
    let payload = vec![0x5au8; 1024];
    let mut frame = Vec::with_capacity(64 * 1024);
    let mut sum = 0u32;
    let run = |frame: &mut Vec<u8>, sum: &mut u32| {
        for i in 0..N {
            if frame.len() + payload.len() > frame.capacity() {
                frame.clear();
            }
            frame.extend_from_slice(&payload);
            let at = frame.len() - payload.len();
            *sum ^= crc32c::crc32c(&frame[at..]).wrapping_add(i as u32);
        }
    };
    run(&mut frame, &mut sum); // warm-up
    let cpu = thread_cpu();
    run(&mut frame, &mut sum);
    let cpu = thread_cpu().saturating_sub(cpu);
    std::hint::black_box(sum);
    cpu.as_secs_f64() / N as f64
}

/// Runs each path once over [`COST_MESSAGES`] messages and prints its costs per message.
fn cost_per_message(_: &mut Criterion) {
    let rt = runtime();
    let mut paths = rt.block_on(paths(url()));
    eprintln!(
        "client cost per message ({COST_MESSAGES} messages; CPU: the client thread's on-CPU time; \
         allocations: alloc/alloc_zeroed calls on the client thread, reallocs apart)"
    );
    let floor = floor_per_message();
    eprintln!(
        "  floor: one copy and one CRC32C of a 1 KiB message on one core: {:.3} µs/msg",
        floor * 1e6
    );
    let only = std::env::var("CLIENT_BENCH_COST_ONLY").ok();
    for (name, _client, path) in &mut paths {
        if only.as_deref().is_some_and(|o| o != *name) {
            continue;
        }
        rt.block_on(path.run(MESSAGES)); // warm-up
        let allocs = ALLOCS.load(Ordering::Relaxed);
        let reallocs = REALLOCS.load(Ordering::Relaxed);
        let cpu = thread_cpu();
        let start = Instant::now();
        COUNT_HERE.with(|c| c.set(true));
        rt.block_on(path.run(COST_MESSAGES));
        COUNT_HERE.with(|c| c.set(false));
        let wall = start.elapsed();
        let cpu = thread_cpu().saturating_sub(cpu);
        let allocs = ALLOCS.load(Ordering::Relaxed) - allocs;
        let reallocs = REALLOCS.load(Ordering::Relaxed) - reallocs;
        let n = COST_MESSAGES as f64;
        let per = cpu.as_secs_f64() / n;
        let goal = GOALS
            .iter()
            .find(|(path, _)| path == name)
            .map(|(_, times)| format!("  (goal: within {times}x)"))
            .unwrap_or_default();
        eprintln!(
            "  {name:<24} {:>10.0} msgs/s  CPU {:>6.3} µs/msg  wall {:>6.3} µs/msg  \
             allocs {:>6.2}/msg  reallocs {:>5.2}/msg  {:>5.1}x the floor{goal}",
            n / wall.as_secs_f64(),
            per * 1e6,
            wall.as_secs_f64() * 1e6 / n,
            allocs as f64 / n,
            reallocs as f64 / n,
            per / floor,
        );
    }
    rt.block_on(async {
        for (_, client, _) in &paths {
            let _ = client.close().await;
        }
    });
}

fn throughput(c: &mut Criterion) {
    let rt = runtime();
    let mut paths = rt.block_on(paths(url()));
    let mut group = c.benchmark_group("client");
    group.throughput(Throughput::Elements(MESSAGES as u64));
    for (name, _client, path) in &mut paths {
        group.bench_function(*name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        path.run(MESSAGES).await;
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();
    rt.block_on(async {
        for (_, client, _) in &paths {
            let _ = client.close().await;
        }
    });
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10)
}

criterion_group! {
    name = benches;
    config = config();
    targets = cost_per_message, throughput
}
criterion_main!(benches);
