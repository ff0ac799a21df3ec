//! Network chaos: while producers stream and consumers drain (Exclusive, Shared, Failover and
//! Key_Shared; a plain topic and one of 3 partitions: 8 streams at once), every connection goes
//! through a fault-injecting proxy (`support::faultproxy`) that injects one kind of fault
//! three times: added latency, stalls, resets, half-open connections, byte-at-a-time delivery,
//! refused connections. After the faults stop:
//!
//! - every completed send is on the topic exactly once (read back from a subscription made
//!   before the first send; the producers are named and the namespace deduplicates);
//! - every failed send has a typed error that says why (printed);
//! - the consumer received every completed send, and again only messages whose
//!   acknowledgement the broker had not confirmed, or that a fault hit after their first
//!   delivery (the consumers use ack receipts; see `support::chaos`);
//! - the time to recover is printed: from the end of each fault to the first send receipt and
//!   to the first message received after it (median and max). Timings are printed, never
//!   asserted.
//!
//! Half-open connections are found only by the client's keepalive: the tests set it to 1 s.
//! The faults begin once every stream has its producer and consumer; between two faults the
//! traffic passes for a calm, and after a half-open fault for long enough that the client can
//! recover on its own (`calm_after`), so that each recovery time is of one fault.
//!
//! Bounded in time: every wait has a limit and fails with what it waited for.
//!
//! The broker is Apache Pulsar (`PULSAR_WIRE_BROKER=apache`, with the `chaos` feature; the
//! test fails at once on another): pulsar-lite has no deduplication and dispatches Exclusive
//! and Failover entries repeatedly, so what these tests check cannot hold there. The proxy
//! fronts any number of brokers; a cluster is a different [`Upstream`] (tests/soak.rs).

mod support;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use pulsar_wire::{PulsarClient, SubscriptionType};
use support::chaos::{check, lock, stream, sub_name, Schedule, StreamSpec};
use support::faultproxy::{FaultProxy, NetFault};
use support::{Broker, BrokerRef};

/// Faults per test.
const ROUNDS: usize = 3;
fn rounds() -> usize {
    std::env::var("PULSAR_WIRE_CHAOS_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(ROUNDS)
}
/// How long traffic passes before each fault.
const CALM: Duration = Duration::from_millis(1500);
/// How long each lasting fault stays on.
const FAULT_FOR: Duration = Duration::from_millis(2500);
/// Between two sends of a stream.
const SEND_EVERY: Duration = Duration::from_millis(20);
/// The bound on a stream's end: every receipt, every message received.
const LIVENESS: Duration = Duration::from_secs(20);
/// The keepalive interval of the tests' clients.
const KEEPALIVE: Duration = Duration::from_secs(1);
/// The connect timeout of the tests' clients (TCP connection and handshake).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// The longest wait between two reconnection attempts of the tests' clients.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// The bound on the streams' start (every producer and consumer created) before the faults.
const START: Duration = Duration::from_secs(60);

/// The calm after a fault of this kind, before the next one: long enough for the client to
/// recover from it on its own, so that each recovery is measured alone. After a half-open
/// fault the worst case is a dead connection found by the keepalive (a ping unanswered for
/// an interval, up to two intervals), a new connection attempted while the fault was still
/// on and black-holed until the connect timeout, and the longest backoff.
fn calm_after(fault: NetFault) -> Duration {
    match fault {
        NetFault::HalfOpen => (2 * KEEPALIVE + CONNECT_TIMEOUT + MAX_BACKOFF).max(CALM),
        _ => CALM,
    }
}

const SUB_TYPES: [SubscriptionType; 4] = [
    SubscriptionType::Exclusive,
    SubscriptionType::Shared,
    SubscriptionType::Failover,
    SubscriptionType::KeyShared,
];

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Brokers a chaos run goes through.
pub trait Upstream: Send + Sync {
    /// `host:port` of every broker (the proxy opens a listener for each).
    fn addrs(&self) -> Vec<String>;
    /// A new topic with `partitions` partitions (0: not partitioned), deduplicated where the
    /// broker can.
    fn topic(&self, prefix: &str, partitions: u32) -> String;
    /// Whether the broker deduplicates (then every completed send is on the topic exactly
    /// once).
    fn deduplicates(&self) -> bool;
}

/// A single broker of `support`: pulsar-lite (no deduplication; one of them for plain topics,
/// another whose every topic has `partitions` partitions), or Apache Pulsar (both kinds of
/// topic, deduplication on in the namespace).
struct Single {
    broker: BrokerRef,
    partitions: u32,
}

impl Upstream for Single {
    fn addrs(&self) -> Vec<String> {
        vec![self.broker.addr().to_string()]
    }

    fn topic(&self, prefix: &str, partitions: u32) -> String {
        if self.broker.is_apache() {
            enable_deduplication(&self.broker);
            if partitions > 0 {
                return self.broker.partitioned_topic(prefix, partitions);
            }
            return support::unique_topic(prefix);
        }
        assert_eq!(
            partitions, self.partitions,
            "this pulsar-lite makes topics of {} partitions",
            self.partitions
        );
        support::unique_topic(prefix)
    }

    fn deduplicates(&self) -> bool {
        self.broker.is_apache()
    }
}

/// Deduplication on in public/default (once per test binary), checked by reading it back.
fn enable_deduplication(broker: &Broker) {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let apache = broker.apache();
        let path = "/admin/v2/namespaces/public/default/deduplication";
        let (status, body) = apache.admin("POST", path, Some("true"));
        assert!(
            (200..300).contains(&status),
            "enabling deduplication: {status} {body}"
        );
        let (status, body) = apache.admin("GET", path, None);
        assert!(
            status == 200 && body.trim() == "true",
            "deduplication of public/default: {status} {body}"
        );
    });
}

/// The upstreams of this run: (plain topics, partitioned topics). On Apache Pulsar both are the
/// shared standalone.
fn upstreams() -> (Arc<dyn Upstream>, Arc<dyn Upstream>) {
    let plain = BrokerRef::Shared(support::broker());
    assert!(
        plain.is_apache(),
        "the network chaos tests run on Apache Pulsar: PULSAR_WIRE_BROKER=apache cargo test \
         --features chaos --test chaos_network (they check exactly-once storage and that nothing \
         whose ack the broker confirmed comes again, which pulsar-lite, without deduplication \
         and with its repeated Exclusive and Failover dispatch, cannot show)"
    );
    let a: Arc<dyn Upstream> = Arc::new(Single {
        broker: plain,
        partitions: 0,
    });
    (a.clone(), a)
}

fn client(url: &str) -> PulsarClient {
    init_logs();
    PulsarClient::builder(url)
        .operation_timeout(Duration::from_secs(10))
        .connect_timeout(CONNECT_TIMEOUT)
        .keepalive_interval(KEEPALIVE)
        .max_backoff_interval(MAX_BACKOFF)
        .build()
        .expect("client")
}

async fn chaos(fault: NetFault) {
    let (plain, partitioned) = upstreams();
    let seed = std::env::var("PULSAR_WIRE_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_0000 + fault as u64);
    let proxies: Vec<Arc<FaultProxy>> = {
        let mut v = Vec::new();
        for (i, up) in [&plain, &partitioned].into_iter().enumerate() {
            let addrs = up.addrs();
            let addrs: Vec<&str> = addrs.iter().map(String::as_str).collect();
            v.push(Arc::new(FaultProxy::start(&addrs, seed + i as u64).await));
        }
        v
    };
    eprintln!(
        "chaos: {} seed {seed} (PULSAR_WIRE_CHAOS_SEED), deduplication {}",
        fault.name(),
        if plain.deduplicates() {
            "on"
        } else {
            "off (pulsar-lite has none: duplicates on the topic are checked against sends in \
             flight at a fault; PULSAR_WIRE_BROKER=apache checks exactly once)"
        }
    );
    let schedule = Arc::new(Mutex::new(Schedule::default()));
    let stop = Arc::new(tokio::sync::Notify::new());
    let stopped = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ready = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut streams = tokio::task::JoinSet::new();
    for (pi, up) in [&plain, &partitioned].into_iter().enumerate() {
        let partitions = if pi == 0 { 0 } else { 3 };
        for sub in SUB_TYPES {
            let label = support::chaos::label(sub, partitions, fault.name());
            let topic = up.topic(&format!("chaos-{}", sub_name(sub)), partitions);
            let spec = StreamSpec {
                label,
                topic,
                sub,
                send_every: SEND_EVERY,
                liveness: LIVENESS,
                ready: Some(ready.clone()),
            };
            streams.spawn(stream(
                client(&proxies[pi].service_url()),
                spec,
                stopped.clone(),
            ));
        }
    }
    // Every stream has its producer and consumer before the first fault (on a loaded machine
    // creating them may take longer than a calm), then traffic passes for a calm.
    let started = Instant::now();
    while ready.load(std::sync::atomic::Ordering::SeqCst) < streams.len() {
        assert!(
            started.elapsed() < START,
            "{} of {} streams had their producer and consumer after {START:?}",
            ready.load(std::sync::atomic::Ordering::SeqCst),
            streams.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(CALM).await;
    let before: Vec<usize> = proxies.iter().map(|p| p.accepted()).collect();
    let open_at_fault: Vec<usize> = proxies.iter().map(|p| p.open_connections()).collect();
    for round in 0..rounds() {
        if round > 0 {
            tokio::time::sleep(calm_after(fault)).await;
        }
        let start = Instant::now();
        for p in &proxies {
            p.inject(fault);
        }
        if fault != NetFault::Reset {
            tokio::time::sleep(FAULT_FOR).await;
        }
        for p in &proxies {
            p.heal();
        }
        lock(&schedule).windows.push((start, Instant::now()));
    }
    tokio::time::sleep(calm_after(fault)).await;
    stopped.store(true, std::sync::atomic::Ordering::SeqCst);
    stop.notify_waiters();
    let mut reports = Vec::new();
    while let Some(r) = streams.join_next().await {
        reports.push(r.expect("a stream panicked"));
    }
    reports.sort_by(|a, b| a.label.cmp(&b.label));
    for (i, p) in proxies.iter().enumerate() {
        assert!(p.errors().is_empty(), "the proxy: {:?}", p.errors());
        assert!(
            open_at_fault[i] > 0,
            "the streams' connections go through the proxy"
        );
        if matches!(
            fault,
            NetFault::Reset | NetFault::HalfOpen | NetFault::Refuse
        ) {
            assert!(
                p.accepted() > before[i],
                "{}: the clients reconnected after the fault ({} connections before, {} after)",
                fault.name(),
                before[i],
                p.accepted()
            );
        }
    }
    let schedule = lock(&schedule).clone();
    let mut failures = Vec::new();
    for r in &reports {
        failures.extend(check(r, &schedule, plain.deduplicates()));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_loses_nothing() {
    chaos(NetFault::Latency).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalls_lose_nothing() {
    chaos(NetFault::Stall).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resets_lose_nothing() {
    chaos(NetFault::Reset).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_are_detected_and_lose_nothing() {
    chaos(NetFault::HalfOpen).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byte_at_a_time_delivery_loses_nothing() {
    chaos(NetFault::ByteAtATime).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_lose_nothing() {
    chaos(NetFault::Refuse).await;
}
