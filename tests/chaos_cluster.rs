//! Chaos on a two-broker Apache Pulsar cluster (`support::cluster`, `scripts/apache-pulsar.sh
//! start --brokers 2`), on loopback. While a producer streams (deduplication on: a producer
//! name, the broker's `brokerDeduplicationEnabled`) and a consumer drains and acknowledges
//! (Exclusive, Shared, Failover, Key_Shared; a non-partitioned topic and one of 3 partitions),
//! one of these faults hits, several times:
//! - `unload`: the topic unloaded through the admin API (CLOSE_PRODUCER, CLOSE_CONSUMER);
//! - `bundle`: its namespace bundle unloaded to the other broker (the topic moves: lookups
//!   redirect to the new owner);
//! - `kill9`: the broker owning it killed with SIGKILL, then started again.
//!
//! Then the checks of `support::chaos`: every send that got a receipt is on the topic exactly
//! once, every failed send has a typed error that says why, the consumer received every
//! receipted message, and it received again only messages whose acknowledgment the broker had
//! not confirmed (acks with receipts) or that a fault hit after their first delivery. The recovery times
//! (from the end of each fault to the next receipt and to the next message received) are
//! printed, never asserted.
//!
//! One cluster serves the whole binary and the tests run one at a time. Built only with the
//! `chaos` feature: `cargo test --features chaos --test chaos_cluster` (scripts/test.sh runs it
//! in its own section); it needs `scripts/apache-pulsar.sh install`.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use pulsar_wire::{PulsarClient, SubscriptionType};
use support::chaos::{check, stream, sub_name, Schedule, StreamSpec};
use support::cluster::Cluster;

/// The cluster of this binary.
fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(Cluster::start)
}

/// One test at a time: they share the cluster and kill its brokers.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The bound on every wait of a stream (a liveness bound: the test fails saying what is
/// missing, it times nothing).
const LIVENESS: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Unload,
    Bundle,
    Kill9,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Unload => "unload",
            Fault::Bundle => "bundle",
            Fault::Kill9 => "kill9",
        }
    }
}

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// The faults' schedule, run on a blocking thread: when each fault began and ended (the
/// unload answered; the topic seen on the other broker; the killed broker serving again).
fn inject(cluster: &Cluster, fault: Fault, topics: &[String]) -> Vec<(Instant, Instant)> {
    let mut windows = Vec::new();
    std::thread::sleep(Duration::from_secs(2));
    match fault {
        Fault::Unload => {
            let name = topics[0].split("-partition-").next().unwrap_or_default();
            for _ in 0..5 {
                let start = Instant::now();
                cluster.unload_topic(name);
                windows.push((start, Instant::now()));
                std::thread::sleep(Duration::from_secs(2));
            }
        }
        Fault::Bundle => {
            // The destination is a hint the load manager may not take (a lookup racing the
            // unload can land the bundle back on its owner): unload again until it moves.
            for round in 0..4 {
                let topic = &topics[round % topics.len()];
                let mut attempts = 0;
                loop {
                    attempts += 1;
                    let before = cluster.owner(topic);
                    let start = Instant::now();
                    let dest = cluster.unload_bundle(topic);
                    let deadline = Instant::now() + Duration::from_secs(10);
                    let mut now = cluster.owner(topic);
                    while (now.is_none() || now == before) && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(100));
                        now = cluster.owner(topic);
                    }
                    windows.push((start, Instant::now()));
                    std::thread::sleep(Duration::from_millis(2500));
                    if now.is_some() && now != before {
                        assert_eq!(now, Some(dest), "{topic} moved to the only other broker");
                        break;
                    }
                    assert!(
                        attempts < 5,
                        "{topic} stayed on broker {before:?} through {attempts} bundle unloads"
                    );
                }
            }
        }
        Fault::Kill9 => {
            for round in 0..2 {
                let topic = &topics[round % topics.len()];
                let victim = cluster.owner(topic).unwrap_or(round % cluster.brokers());
                let start = Instant::now();
                cluster.kill9(victim);
                std::thread::sleep(Duration::from_secs(2));
                cluster.restart(victim);
                windows.push((start, Instant::now()));
                std::thread::sleep(Duration::from_secs(3));
            }
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    windows
}

async fn chaos(sub: SubscriptionType, partitions: u32, fault: Fault) {
    init_logs();
    let _serial = SERIAL.lock().await;
    let cluster = cluster();
    cluster.ensure_running();
    let label = support::chaos::label(sub, partitions, fault.name());
    let topic = support::unique_topic(&format!("chaos-{}-{}", sub_name(sub), fault.name()));
    let topics: Vec<String> = if partitions > 0 {
        cluster.create_partitioned(&topic, partitions);
        (0..partitions)
            .map(|p| format!("{topic}-partition-{p}"))
            .collect()
    } else {
        vec![topic.clone()]
    };
    let client = PulsarClient::builder(cluster.service_url())
        .operation_timeout(Duration::from_secs(15))
        .keepalive_interval(Duration::from_secs(2))
        .max_backoff_interval(Duration::from_secs(2))
        .build()
        .expect("client");
    let stopped = Arc::new(AtomicBool::new(false));
    let spec = StreamSpec {
        label: label.clone(),
        topic,
        sub,
        send_every: Duration::from_millis(10),
        liveness: LIVENESS,
        ready: None,
    };
    let streaming = tokio::spawn(stream(client, spec, stopped.clone()));
    let faults = {
        let stopped = stopped.clone();
        tokio::task::spawn_blocking(move || {
            let windows = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                inject(cluster, fault, &topics)
            }));
            // The stream stops also when a fault fails, so that the test ends.
            stopped.store(true, Ordering::SeqCst);
            windows.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    };
    let windows = faults.await.expect("the faults");
    let report = streaming.await.expect("the stream");
    let planned = match fault {
        Fault::Unload => 5,
        Fault::Bundle => 4,
        Fault::Kill9 => 2,
    };
    // Every planned fault happened (a bundle unload that left the topic where it was is
    // repeated, and counted).
    assert!(
        windows.len() >= planned,
        "{label}: {} faults of {planned}",
        windows.len()
    );
    let wrong = check(&report, &Schedule { windows }, true);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

macro_rules! chaos_tests {
    ($($name:ident: $sub:expr, $partitions:expr, $fault:expr;)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                chaos($sub, $partitions, $fault).await;
            }
        )*
    };
}

chaos_tests! {
    exclusive_unload: SubscriptionType::Exclusive, 0, Fault::Unload;
    exclusive_partitioned_unload: SubscriptionType::Exclusive, 3, Fault::Unload;
    shared_unload: SubscriptionType::Shared, 0, Fault::Unload;
    shared_partitioned_unload: SubscriptionType::Shared, 3, Fault::Unload;
    failover_unload: SubscriptionType::Failover, 0, Fault::Unload;
    failover_partitioned_unload: SubscriptionType::Failover, 3, Fault::Unload;
    key_shared_unload: SubscriptionType::KeyShared, 0, Fault::Unload;
    key_shared_partitioned_unload: SubscriptionType::KeyShared, 3, Fault::Unload;
    exclusive_bundle: SubscriptionType::Exclusive, 0, Fault::Bundle;
    exclusive_partitioned_bundle: SubscriptionType::Exclusive, 3, Fault::Bundle;
    shared_bundle: SubscriptionType::Shared, 0, Fault::Bundle;
    shared_partitioned_bundle: SubscriptionType::Shared, 3, Fault::Bundle;
    failover_bundle: SubscriptionType::Failover, 0, Fault::Bundle;
    failover_partitioned_bundle: SubscriptionType::Failover, 3, Fault::Bundle;
    key_shared_bundle: SubscriptionType::KeyShared, 0, Fault::Bundle;
    key_shared_partitioned_bundle: SubscriptionType::KeyShared, 3, Fault::Bundle;
    exclusive_kill9: SubscriptionType::Exclusive, 0, Fault::Kill9;
    exclusive_partitioned_kill9: SubscriptionType::Exclusive, 3, Fault::Kill9;
    shared_kill9: SubscriptionType::Shared, 0, Fault::Kill9;
    shared_partitioned_kill9: SubscriptionType::Shared, 3, Fault::Kill9;
    failover_kill9: SubscriptionType::Failover, 0, Fault::Kill9;
    failover_partitioned_kill9: SubscriptionType::Failover, 3, Fault::Kill9;
    key_shared_kill9: SubscriptionType::KeyShared, 0, Fault::Kill9;
    key_shared_partitioned_kill9: SubscriptionType::KeyShared, 3, Fault::Kill9;
}
