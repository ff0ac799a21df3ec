//! Through the Apache Pulsar proxy (`org.apache.pulsar:pulsar-proxy`): the seed flow, partitioned
//! topics, a reader, TLS to the proxy, token authentication (the proxy authenticates the client
//! and forwards its role to the broker, which authorizes it), and faults: kill -9 of the proxy or
//! of the broker behind it, and a tap between the client and the proxy that resets or stalls
//! the connections. Nothing sent may be lost.
//!
//! One standalone and one proxy for the binary, started by `scripts/apache-pulsar.sh start
//! --proxy --tls --auth token` (run `scripts/apache-pulsar.sh install` once): the proxy listens
//! on plain and TLS ports of its own and reaches the broker over TLS; its lookups answer the
//! broker's TLS URL with `proxy_through_service_url`, so the client opens every connection to
//! the proxy, naming the broker in CONNECT (`proxy_to_broker_url`).
//!
//! That the traffic really goes through the proxy is checked on the broker's side: the
//! connection the broker serves a test's producer or consumer on is a socket of the proxy's
//! process (the broker's topic stats give its address; `/proc` says whose socket that is).
//!
//! The tests that kill the proxy or the broker take [`GATE`] for writing, the others for
//! reading: they share the standalone and the proxy, one pair for the binary.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pulsar_wire::wire::proto::base_command::Type;
use pulsar_wire::{
    ConnectionError, Error, InitialPosition, MessageId, ProducerMessage, PulsarClient, SendReceipt,
    ServerErrorCode, SubscriptionType,
};
use support::tap::Tap;
use support::{ApacheOptions, Broker};

/// Shared by the tests (read) and taken alone by those that kill the proxy or the broker.
static GATE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// The broker's keepalive (seconds): a connection the tap stalled is found dead in about two.
const BROKER_KEEPALIVE_SECS: u64 = 5;

fn broker() -> &'static Broker {
    support::apache_with(
        &ApacheOptions::plain()
            .token()
            .tls()
            .proxy()
            // Every acknowledgement persisted at once, as for the other kill -9 tests (see
            // Broker::start_private): a kill -9 then forgets none.
            .config("managedLedgerDefaultMarkDeleteRateLimit", "0")
            .config(
                "keepAliveIntervalSeconds",
                &BROKER_KEEPALIVE_SECS.to_string(),
            ),
    )
}

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A client of `url` (the proxy's, or a tap's in front of it) with the admin token.
fn client(b: &Broker, url: &str) -> PulsarClient {
    init_logs();
    PulsarClient::builder(url)
        .token(b.env("PULSAR_TOKEN"))
        .operation_timeout(Duration::from_secs(30))
        .keepalive_interval(Duration::from_secs(2))
        .build()
        .expect("client")
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

// --- through the proxy: what the broker sees --------------------------------------------------

/// The addresses (`/127.0.0.1:PORT`) the broker serves `topic`'s producers and consumers from.
fn broker_side_addresses(b: &Broker, topic: &str) -> Vec<String> {
    let path = format!("/admin/v2/{}/stats", support::apache::topic_path(topic));
    let (status, body) = b.apache().admin("GET", &path, None);
    assert_eq!(status, 200, "stats of {topic}: {body}");
    let stats: serde_json::Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("stats of {topic}: not JSON ({e}): {body}"));
    let mut out = Vec::new();
    for p in stats["publishers"].as_array().into_iter().flatten() {
        out.extend(p["address"].as_str().map(str::to_owned));
    }
    for sub in stats["subscriptions"].as_object().into_iter().flatten() {
        for c in sub.1["consumers"].as_array().into_iter().flatten() {
            out.extend(c["address"].as_str().map(str::to_owned));
        }
    }
    out
}

/// The pids of the processes holding an open TCP socket whose local port is `port` (on this
/// machine's loopback), from /proc/net/tcp and tcp6 and the processes' open files. Sockets
/// in TIME_WAIT (inode 0: no process holds them) are passed over: on a busy machine an old
/// connection may have had the same local port, and so may a connection to another peer.
fn socket_owners(port: u16) -> std::collections::BTreeSet<u32> {
    let mut owners = std::collections::BTreeSet::new();
    let mut wanted = std::collections::BTreeSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(table) = std::fs::read_to_string(table) else {
            continue;
        };
        wanted.extend(table.lines().skip(1).filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local_port = f.get(1)?.rsplit_once(':')?.1;
            let remote_port = f.get(2)?.rsplit_once(':')?.1;
            let inode = *f.get(9)?;
            (u16::from_str_radix(local_port, 16).ok()? == port
                && remote_port != "0000"
                && inode != "0")
                .then(|| format!("socket:[{inode}]"))
        }));
    }
    if wanted.is_empty() {
        return owners;
    }
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return owners;
    };
    for proc in procs.flatten() {
        let Some(pid) = proc
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(proc.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path())
                .is_ok_and(|l| wanted.contains(l.to_string_lossy().as_ref()))
            {
                owners.insert(pid);
            }
        }
    }
    owners
}

/// Asserts that the broker serves every producer and consumer of `topic` (at least one) on a
/// connection the proxy's process opened: the client reached the broker through the proxy.
fn assert_through_proxy(b: &Broker, topic: &str) {
    let proxy_pid = b.apache().proxy_pid().expect("the proxy runs");
    let addresses = broker_side_addresses(b, topic);
    assert!(!addresses.is_empty(), "no producer or consumer on {topic}");
    for address in &addresses {
        let port: u16 = address
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or_else(|| panic!("not an address: {address}"));
        let owners = socket_owners(port);
        assert!(
            owners.contains(&proxy_pid),
            "the broker serves {topic} to {address}, a socket of pids {owners:?}, not of the \
             proxy (pid {proxy_pid}): the client bypassed the proxy"
        );
    }
}

// --- the seed flow ------------------------------------------------------------------------------

/// The seed flow (tests/seed_flow.rs) on `client`: a producer with properties and a key, a send
/// and an asynchronous send with a callback, a Shared subscription that receives, acks, nacks
/// and gets the nacked message again with a higher redelivery count. Checks that the broker
/// served both through the proxy while they were open.
async fn seed_flow(b: &Broker, client: &PulsarClient, topic: &str) {
    let mut consumer = client
        .consumer(topic)
        .subscription("sub")
        .subscription_type(SubscriptionType::Shared)
        .initial_position(InitialPosition::Earliest)
        .negative_ack_redelivery_delay(Duration::from_millis(200))
        .subscribe()
        .await
        .expect("subscribe");
    let producer = client.producer(topic).create().await.expect("producer");
    let id = producer
        .send(
            ProducerMessage::new("Hello python client, this is a msg.")
                .property("k", "v")
                .partition_key("yourKey"),
        )
        .await
        .expect("send");
    let (tx, rx) = tokio::sync::oneshot::channel();
    producer
        .send_with_callback("second", move |r| {
            let _ = tx.send(r);
        })
        .await
        .expect("send_async");
    let second = rx.await.expect("callback ran").expect("second receipt");
    assert!(second > id, "{second} after {id}");

    let msg = consumer
        .receive_timeout(Duration::from_secs(30))
        .await
        .expect("receive")
        .expect("a message within 30 s");
    assert_eq!(
        msg.payload_str(),
        Some("Hello python client, this is a msg.")
    );
    assert_eq!(msg.properties().get("k").map(String::as_str), Some("v"));
    assert_eq!(msg.partition_key(), Some("yourKey"));
    assert_eq!(msg.id(), id);
    consumer.ack(&msg).await.expect("ack");

    let msg2 = consumer
        .receive_timeout(Duration::from_secs(30))
        .await
        .expect("receive")
        .expect("the second message within 30 s");
    assert_eq!(msg2.payload_str(), Some("second"));
    assert_eq!(msg2.redelivery_count(), 0);
    consumer.nack(&msg2).await.expect("nack");
    let again = consumer
        .receive_timeout(Duration::from_secs(30))
        .await
        .expect("receive")
        .expect("redelivered within 30 s");
    assert_eq!(again.payload_str(), Some("second"));
    assert_eq!(again.id(), second);
    assert_eq!(again.redelivery_count(), 1);
    consumer.ack(&again).await.expect("ack");

    assert_through_proxy(b, topic);
    producer.close().await.expect("close producer");
    consumer.close().await.expect("close consumer");
}

/// The check of [`assert_through_proxy`] tells a client that bypasses the proxy apart: the
/// broker serves a client on its own TLS port from a socket of this test process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_the_broker_itself_is_seen_as_not_through_the_proxy() {
    let _shared = GATE.read().await;
    let b = broker();
    let client = PulsarClient::builder(b.env("PULSAR_TLS_URL"))
        .tls_trust_certs_file(b.env("PULSAR_CA"))
        .token(b.env("PULSAR_TOKEN"))
        .operation_timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let topic = support::unique_topic("proxy-bypassed");
    let producer = client.producer(&topic).create().await.expect("producer");
    let addresses = broker_side_addresses(b, &topic);
    assert_eq!(addresses.len(), 1, "{addresses:?}");
    let port = addresses[0]
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .expect("an address");
    let owners = socket_owners(port);
    assert!(owners.contains(&std::process::id()), "{owners:?}");
    if let Some(proxy) = b.apache().proxy_pid() {
        assert!(
            !owners.contains(&proxy),
            "{owners:?} has the proxy's pid {proxy}"
        );
    }
    producer.close().await.expect("close");
    client.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_flow_runs_through_the_proxy() {
    let _shared = GATE.read().await;
    let b = broker();
    let client = client(b, b.apache().proxy_url());
    seed_flow(b, &client, &support::unique_topic("proxy-seed")).await;
    client.close().await.expect("close");
}

/// What the client and the proxy say to each other, seen by a tap that passes everything as it
/// is: the proxy answers every LOOKUP with the broker's TLS URL and `proxy_through_service_url`,
/// and the client opens each connection for the broker to the proxy (the only address it
/// knows is the tap's) naming the broker in CONNECT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_asks_the_proxy_for_the_broker_the_proxy_named() {
    let _shared = GATE.read().await;
    let b = broker();
    let tap = Tap::forward(&b.apache().proxy_addr()).await;
    let client = client(b, tap.url());
    let topic = support::unique_topic("proxy-wire");
    seed_flow(b, &client, &topic).await;

    let broker_tls = b.env("PULSAR_TLS_URL");
    let answers: Vec<_> = tap
        .seen(false, Type::LookupResponse)
        .into_iter()
        .filter_map(|s| s.command.lookup_topic_response)
        .collect();
    assert!(!answers.is_empty(), "no LOOKUP answer went through the tap");
    for a in &answers {
        assert_eq!(a.proxy_through_service_url, Some(true), "{a:?}");
        assert_eq!(a.broker_service_url.as_deref(), Some(broker_tls), "{a:?}");
    }
    let broker_addr = broker_tls.trim_start_matches("pulsar+ssl://");
    let connects: Vec<Option<String>> = tap
        .seen(true, Type::Connect)
        .into_iter()
        .filter_map(|s| s.command.connect)
        .map(|c| c.proxy_to_broker_url)
        .collect();
    // The lookup connection names no broker; the producer's and the consumer's name the one
    // the proxy answered.
    assert!(connects.contains(&None), "{connects:?}");
    assert!(
        connects.contains(&Some(broker_addr.to_string())),
        "no CONNECT asked the proxy for {broker_addr}: {connects:?}"
    );
    assert!(
        connects
            .iter()
            .flatten()
            .all(|target| target == broker_addr),
        "{connects:?}"
    );
    for kind in [Type::Producer, Type::Subscribe, Type::Send, Type::Ack] {
        assert!(
            !tap.seen(true, kind).is_empty(),
            "no {kind:?} through the proxy"
        );
    }
    assert!(
        client.open_connections() <= tap.accepted(),
        "{} connections open, {} through the tap",
        client.open_connections(),
        tap.accepted()
    );
    client.close().await.expect("close");
}

// --- partitioned topics, a reader ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_topic_through_the_proxy() {
    const PARTITIONS: u32 = 3;
    let _shared = GATE.read().await;
    let b = broker();
    let client = client(b, b.apache().proxy_url());
    let topic = b.partitioned_topic("proxy-partitioned", PARTITIONS);
    assert_eq!(
        client.partitions(&topic).await.expect("partitions"),
        PARTITIONS
    );
    let mut consumer = client
        .consumer(&topic)
        .subscription("sub")
        .subscription_type(SubscriptionType::Shared)
        .initial_position(InitialPosition::Earliest)
        .subscribe()
        .await
        .expect("subscribe");
    let producer = client.producer(&topic).create().await.expect("producer");
    assert_eq!(producer.partitions(), PARTITIONS as usize);
    let mut landed = BTreeSet::new();
    for i in 0..30 {
        let id = producer
            .send(ProducerMessage::new(format!("m{i}")).partition_key(format!("k{i}")))
            .await
            .expect("send");
        landed.insert(id.partition);
    }
    assert_eq!(landed.len(), PARTITIONS as usize, "keys on every partition");
    let mut got = BTreeSet::new();
    while got.len() < 30 {
        let msg = consumer
            .receive_timeout(Duration::from_secs(30))
            .await
            .expect("receive")
            .unwrap_or_else(|| panic!("only {} of 30 within 30 s", got.len()));
        consumer.ack(&msg).await.expect("ack");
        got.insert(msg.payload_str().unwrap_or_default().to_owned());
    }
    let want: BTreeSet<String> = (0..30).map(|i| format!("m{i}")).collect();
    assert_eq!(got, want);
    for p in 0..PARTITIONS {
        assert_through_proxy(b, &format!("{topic}-partition-{p}"));
    }
    client.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_through_the_proxy_reads_from_the_earliest_message() {
    let _shared = GATE.read().await;
    let b = broker();
    let client = client(b, b.apache().proxy_url());
    let topic = support::unique_topic("proxy-reader");
    let producer = client
        .producer(&topic)
        .batching_max_messages(7)
        .create()
        .await
        .expect("producer");
    let mut receipts = Vec::new();
    for i in 0..20 {
        receipts.push(producer.send_async(format!("m{i}")).await.expect("enqueue"));
    }
    for r in receipts {
        r.await.expect("receipt");
    }
    producer.close().await.expect("close producer");
    let mut reader = client
        .reader(&topic)
        .start_message_id(MessageId::EARLIEST)
        .create()
        .await
        .expect("reader");
    let mut got = Vec::new();
    while got.len() < 20 {
        let msg = reader
            .next_timeout(Duration::from_secs(30))
            .await
            .expect("next")
            .unwrap_or_else(|| panic!("only {} of 20 within 30 s", got.len()));
        got.push(msg.payload_str().unwrap_or_default().to_owned());
    }
    let want: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
    assert_eq!(got, want);
    assert!(
        !reader
            .has_message_available()
            .await
            .expect("has_message_available"),
        "nothing past the last message"
    );
    assert_through_proxy(b, &topic);
    reader.close().await.expect("close reader");
    client.close().await.expect("close");
}

// --- TLS to the proxy ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_flow_runs_over_tls_to_the_proxy() {
    let _shared = GATE.read().await;
    let b = broker();
    let client = PulsarClient::builder(b.apache().proxy_tls_url())
        .tls_trust_certs_file(b.env("PULSAR_CA"))
        .token(b.env("PULSAR_TOKEN"))
        .operation_timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    seed_flow(b, &client, &support::unique_topic("proxy-tls")).await;
    client.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxys_tls_port_is_refused_with_an_untrusted_ca() {
    let _shared = GATE.read().await;
    let b = broker();
    let other = support::tls::Pki::new(&["localhost"]);
    let client = PulsarClient::builder(b.apache().proxy_tls_url())
        .tls_trust_certs_file(&other.other_ca)
        .token(b.env("PULSAR_TOKEN"))
        .operation_timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    match client.partitions(&support::unique_topic("proxy-ca")).await {
        Err(Error::Connection(ConnectionError::Tls(message))) => {
            assert!(message.contains("certificate not trusted"), "{message}");
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }
}

// --- token authentication through the proxy -----------------------------------------------------

/// The error of creating a producer through the proxy with `token`.
async fn refused(b: &Broker, token: String, what: &str) -> Error {
    let client = PulsarClient::builder(b.apache().proxy_url())
        .token(token)
        .operation_timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    client
        .producer(support::unique_topic(what))
        .create()
        .await
        .expect_err(what)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_refused_by_the_proxy_with_an_authentication_error() {
    let _shared = GATE.read().await;
    let b = broker();
    // The admin token with its signature changed: well formed, but not signed by the key.
    let good = b.env("PULSAR_TOKEN");
    let (unsigned, signature) = good.rsplit_once('.').expect("a JWT");
    let flipped: String = signature
        .chars()
        .rev()
        .map(|c| if c == 'A' { 'B' } else { 'A' })
        .collect();
    let err = refused(b, format!("{unsigned}.{flipped}"), "proxy-wrong-token").await;
    match &err {
        Error::Connection(ConnectionError::Handshake(e)) => {
            assert_eq!(e.code, ServerErrorCode::AuthenticationError, "{err:?}")
        }
        other => panic!("expected a refused handshake, got {other:?}"),
    }
    assert!(!err.is_retriable(), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("check the token"), "{text}");

    let expired = b.apache().mint_token("admin", Some(now_secs() - 60));
    let err = refused(b, expired, "proxy-expired-token").await;
    assert_eq!(
        err.server_error().map(|e| e.code),
        Some(ServerErrorCode::AuthenticationError),
        "{err:?}"
    );
}

/// The proxy itself is a super user; the role it forwards is the client's, which the broker
/// authorizes: a role without permission is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_forwards_the_clients_role_and_the_broker_refuses_one_without_permission() {
    let _shared = GATE.read().await;
    let b = broker();
    let nobody = b.apache().mint_token("nobody", None);
    let err = refused(b, nobody, "proxy-unauthorized").await;
    assert_eq!(
        err.server_error().map(|e| e.code),
        Some(ServerErrorCode::AuthorizationError),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("grant the role permission"),
        "{err}"
    );
}

// --- faults -------------------------------------------------------------------------------------

/// Every payload on the topic, read from the start on a fresh Shared subscription.
async fn read_all(client: &PulsarClient, topic: &str, expect: usize) -> BTreeSet<String> {
    let mut c = client
        .consumer(topic)
        .subscription(support::unique_name("check"))
        .subscription_type(SubscriptionType::Shared)
        .initial_position(InitialPosition::Earliest)
        .subscribe()
        .await
        .expect("subscribe");
    let mut distinct = BTreeSet::new();
    while let Some(msg) = c
        .receive_timeout(Duration::from_secs(if distinct.len() >= expect {
            1
        } else {
            30
        }))
        .await
        .expect("receive")
    {
        c.ack(&msg).await.expect("ack");
        distinct.insert(msg.payload_str().unwrap_or_default().to_owned());
    }
    c.close().await.expect("close");
    distinct
}

/// Sends `n` messages (`m0`..) with `send_async` while `fault` runs beside the stream, started
/// once a third of them are enqueued. Every receipt must resolve; every receipted message must
/// be on the topic; every failure must say why; most must succeed.
async fn produce_through<F, Fut>(b: &Broker, url: &str, what: &str, n: usize, fault: F)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let client = client(b, url);
    let topic = support::unique_topic(what);
    let producer = client
        .producer(&topic)
        .block_if_queue_full(true)
        .max_pending_messages(500)
        .send_timeout(Duration::from_secs(90))
        .create()
        .await
        .expect("producer");
    let sent = Arc::new(AtomicUsize::new(0));
    let chaos = {
        let sent = sent.clone();
        async move {
            while sent.load(Ordering::Acquire) < n / 3 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            fault().await;
        }
    };
    let stream = async {
        let mut receipts: Vec<(String, SendReceipt)> = Vec::with_capacity(n);
        for i in 0..n {
            let payload = format!("m{i}");
            let r = producer.send_async(payload.clone()).await.expect("enqueue");
            receipts.push((payload, r));
            sent.store(i + 1, Ordering::Release);
        }
        receipts
    };
    let started = std::time::Instant::now();
    let (receipts, ()) = tokio::join!(stream, chaos);
    let mut stored = BTreeSet::new();
    let mut failed: HashMap<String, Error> = HashMap::new();
    for (payload, r) in receipts {
        match tokio::time::timeout(Duration::from_secs(150), r).await {
            Ok(Ok(_)) => {
                stored.insert(payload);
            }
            Ok(Err(e)) => {
                failed.insert(payload, e);
            }
            Err(_) => panic!("{what}: a receipt hung past the send timeout"),
        }
    }
    let took = started.elapsed();
    // Read back directly on the proxy, past whatever the fault left.
    let check = self::client(b, b.apache().proxy_url());
    let on_topic = read_all(&check, &topic, stored.len()).await;
    let lost: Vec<&String> = stored.iter().filter(|p| !on_topic.contains(*p)).collect();
    let mut reasons: Vec<String> = failed.values().map(|e| format!("{e:?}")).collect();
    reasons.sort();
    reasons.dedup();
    eprintln!(
        "{what}: sent {n}, receipts {}, failed {} {reasons:?}, lost {}, on topic {}, took {took:?}",
        stored.len(),
        failed.len(),
        lost.len(),
        on_topic.len()
    );
    assert!(
        lost.is_empty(),
        "{what}: receipted but not on the topic: {lost:?}"
    );
    for (payload, e) in &failed {
        assert!(
            matches!(
                e,
                Error::SendTimeout(_) | Error::Server { .. } | Error::Connection(_)
            ),
            "{what}: {payload} failed without a clear reason: {e:?}"
        );
    }
    assert_eq!(
        stored.len() + failed.len(),
        n,
        "every send got a receipt or an error"
    );
    assert!(
        stored.len() > n / 2,
        "{what}: most sends succeed after the fault"
    );
    producer.close().await.expect("close");
    client.close().await.expect("close");
    check.close().await.expect("close");
}

/// Publishes `n` unbatched messages, then consumes them on a Shared subscription through `url`,
/// running `fault` once a quarter have arrived (after the acknowledgements sent so far had
/// time to land). Every message must arrive; one acknowledged before the fault must not come
/// again when `acks_survive` (the broker kept them).
async fn consume_through<F, Fut>(
    b: &Broker,
    url: &str,
    what: &str,
    n: usize,
    acks_survive: bool,
    fault: F,
) where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let client = client(b, url);
    let topic = support::unique_topic(what);
    {
        let producer = client
            .producer(&topic)
            .block_if_queue_full(true)
            .batching(false)
            .create()
            .await
            .expect("producer");
        let mut receipts = Vec::new();
        for i in 0..n {
            receipts.push(producer.send_async(format!("m{i}")).await.expect("enqueue"));
        }
        for r in receipts {
            r.await.expect("receipt");
        }
        producer.close().await.expect("close");
    }
    // A small queue: the fault finds most messages still on the broker, not prefetched.
    let mut consumer = client
        .consumer(&topic)
        .subscription("s")
        .subscription_type(SubscriptionType::Shared)
        .initial_position(InitialPosition::Earliest)
        .receiver_queue_size(50)
        .subscribe()
        .await
        .expect("subscribe");
    let mut received: HashMap<String, u32> = HashMap::new();
    let mut acked_before = BTreeSet::new();
    let mut fault = Some(fault);
    let started = std::time::Instant::now();
    while received.len() < n {
        if received.len() >= n / 4 {
            if let Some(fault) = fault.take() {
                tokio::time::sleep(Duration::from_millis(500)).await;
                acked_before = received.keys().cloned().collect();
                fault().await;
            }
        }
        let msg = consumer
            .receive_timeout(Duration::from_secs(120))
            .await
            .expect("receive")
            .unwrap_or_else(|| {
                panic!(
                    "{what}: the consumer recovers and receives within 120 s ({} of {n} so far)",
                    received.len()
                )
            });
        let payload = msg.payload_str().unwrap_or_default().to_owned();
        let seen = received.entry(payload.clone()).or_insert(0);
        *seen += 1;
        if *seen > 1 && acks_survive {
            assert!(
                !acked_before.contains(&payload),
                "{what}: {payload} was acknowledged before the fault but delivered again"
            );
        }
        consumer.ack(&msg).await.expect("ack");
    }
    let duplicates: u32 = received.values().map(|n| n - 1).sum();
    eprintln!(
        "{what}: {n} messages, all received, {duplicates} duplicates, took {:?}",
        started.elapsed()
    );
    assert_eq!(received.len(), n);
    consumer.close().await.expect("close");
    client.close().await.expect("close");
}

/// Runs a blocking harness call (kill, start) off the runtime's threads.
async fn blocking(f: impl FnOnce() + Send + 'static) {
    tokio::task::spawn_blocking(f).await.expect("harness call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_proxy_during_a_produce_stream_loses_nothing() {
    let _alone = GATE.write().await;
    let b = broker();
    let url = b.apache().proxy_url().to_owned();
    produce_through(b, &url, "proxy-kill-produce", 2000, || async {
        blocking(|| broker().apache().kill_proxy()).await;
        assert!(!broker().apache().proxy_is_running());
        tokio::time::sleep(Duration::from_secs(2)).await;
        blocking(|| broker().apache().start_again()).await;
        assert!(broker().apache().proxy_is_running());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_broker_behind_the_proxy_during_a_consume_stream_loses_nothing() {
    let _alone = GATE.write().await;
    let b = broker();
    let url = b.apache().proxy_url().to_owned();
    consume_through(b, &url, "proxy-kill-consume", 2000, true, || async {
        blocking(|| broker().apache().kill_broker()).await;
        assert!(broker().apache().proxy_is_running(), "the proxy stays up");
        tokio::time::sleep(Duration::from_secs(2)).await;
        blocking(|| broker().apache().start_again()).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_broker_behind_the_proxy_during_a_produce_stream_loses_nothing() {
    let _alone = GATE.write().await;
    let b = broker();
    let url = b.apache().proxy_url().to_owned();
    produce_through(b, &url, "proxy-kill-broker-produce", 2000, || async {
        blocking(|| broker().apache().kill_broker()).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        blocking(|| broker().apache().start_again()).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resets_between_the_client_and_the_proxy_lose_nothing() {
    let _shared = GATE.read().await;
    let b = broker();
    let tap = Arc::new(Tap::forward(&b.apache().proxy_addr()).await);
    let reset = |tap: Arc<Tap>| async move {
        let n = tap.reset_connections();
        assert!(n >= 1, "no connection to reset");
        // Once more while the client reconnects.
        tokio::time::sleep(Duration::from_millis(300)).await;
        tap.reset_connections();
    };
    let url = tap.url().to_owned();
    produce_through(b, &url, "proxy-reset-produce", 2000, || reset(tap.clone())).await;
    // Resets lose no acknowledgement the broker had: it keeps them in memory.
    consume_through(b, &url, "proxy-reset-consume", 1000, true, || {
        reset(tap.clone())
    })
    .await;
}

/// The tap stops passing the connections open at the time (they stay open): the client's
/// keepalive finds them dead, and it reconnects through the tap (new connections pass) to
/// the proxy. The broker, whose old connections through the proxy still look open, finds
/// them dead by its own keepalive (or its liveness check of the old producer) and lets the
/// new ones take over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_connections_between_the_client_and_the_proxy_are_left_and_nothing_is_lost() {
    let _shared = GATE.read().await;
    let b = broker();
    let tap = Arc::new(Tap::forward(&b.apache().proxy_addr()).await);
    let stall = |tap: Arc<Tap>| async move {
        let n = tap.stall_connections();
        assert!(n >= 1, "no connection to stall");
    };
    let url = tap.url().to_owned();
    let before = tap.accepted();
    produce_through(b, &url, "proxy-stall-produce", 1000, || stall(tap.clone())).await;
    assert!(
        tap.accepted() > before + 2,
        "the client reconnected through the tap ({} connections)",
        tap.accepted() - before
    );
    // Acknowledgements sent on a stalled connection never arrive: those may come again.
    consume_through(b, &url, "proxy-stall-consume", 1000, false, || {
        stall(tap.clone())
    })
    .await;
}
