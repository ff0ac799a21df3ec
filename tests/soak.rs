//! The soak: mixed load on a two-broker Apache Pulsar cluster (`support::cluster`) through the
//! fault-injecting proxy (`support::faultproxy`, in front of both brokers), with random faults
//! of every kind the chaos tests have, one after another, for `PULSAR_WIRE_SOAK_SECS` seconds
//! (120 by default; CI runs that; the 30-minute run is `PULSAR_WIRE_SOAK_SECS=1800`):
//!
//! - on the cluster: a topic unloaded, a namespace bundle unloaded (the topic moves), the
//!   broker owning a topic killed with SIGKILL and started again;
//! - on the network: added latency, stalls, resets, half-open connections, byte-at-a-time
//!   delivery, refused connections.
//!
//! Four streams run at once (Exclusive and Failover on plain topics, Shared and Key_Shared on
//! topics of 3 partitions), each a named producer (deduplication is on) and a consumer
//! acknowledging with receipts. At the end: the checks of `support::chaos` for each stream, and
//! a loss report over all of them: sent, acknowledged (receipts), failed, received, lost,
//! duplicated on the topic, redelivered, faults and the recovery after each (median, max).
//! Nothing may be lost or stored twice.
//!
//! The faults come from a seeded RNG (`PULSAR_WIRE_SOAK_SEED`, printed). Built with the `chaos`
//! feature: `cargo test --features chaos --test soak -- --nocapture`.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pulsar_wire::{PulsarClient, SubscriptionType};
use support::chaos::{check, median_max, millis, recoveries, stream, sub_name};
use support::chaos::{LossReport, Schedule, StreamReport, StreamSpec};
use support::cluster::Cluster;
use support::faultproxy::{FaultProxy, NetFault, Rng};

/// How long the faults go on by default (`PULSAR_WIRE_SOAK_SECS`).
const DEFAULT_SECS: u64 = 120;
/// The bound on every wait of a stream.
const LIVENESS: Duration = Duration::from_secs(90);

/// A fault of the soak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum SoakFault {
    Unload,
    Bundle,
    Kill9,
    Net(NetFault),
}

impl SoakFault {
    fn name(self) -> &'static str {
        match self {
            SoakFault::Unload => "unload",
            SoakFault::Bundle => "bundle",
            SoakFault::Kill9 => "kill9",
            SoakFault::Net(n) => n.name(),
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|s| s.parse().ok())
}

/// One fault, on a blocking thread: returns when it is over (the window's end).
fn apply(
    cluster: &Cluster,
    proxy: &FaultProxy,
    rng: &mut Rng,
    fault: SoakFault,
    topics: &[String],
) {
    let topic = &topics[rng.below(topics.len() as u64) as usize];
    match fault {
        SoakFault::Unload => {
            cluster.unload_topic(topic.split("-partition-").next().unwrap_or(topic))
        }
        SoakFault::Bundle => {
            // Moves the topic's bundle to the other broker (a hint the load manager may not
            // take; the chaos tests check the move, the soak only needs the unload).
            cluster.unload_bundle(topic);
        }
        SoakFault::Kill9 => {
            let victim = cluster
                .owner(topic)
                .unwrap_or(rng.below(cluster.brokers() as u64) as usize);
            cluster.kill9(victim);
            std::thread::sleep(Duration::from_millis(500 + rng.below(2500)));
            cluster.restart(victim);
        }
        SoakFault::Net(kind) => {
            proxy.inject(kind);
            if kind != NetFault::Reset {
                std::thread::sleep(Duration::from_millis(1000 + rng.below(3000)));
            }
            proxy.heal();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_mixed_load_with_random_faults_loses_nothing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let secs = env_u64("PULSAR_WIRE_SOAK_SECS").unwrap_or(DEFAULT_SECS);
    let seed = env_u64("PULSAR_WIRE_SOAK_SEED").unwrap_or(0x50a4);
    let cluster: &'static Cluster = Box::leak(Box::new(Cluster::start()));
    let addrs: Vec<String> = (0..cluster.brokers())
        .map(|i| cluster.broker_addr(i))
        .collect();
    let addrs: Vec<&str> = addrs.iter().map(String::as_str).collect();
    let proxy = Arc::new(FaultProxy::start(&addrs, seed).await);
    eprintln!("soak: {secs} s of faults, seed {seed} (PULSAR_WIRE_SOAK_SEED)");

    let client = PulsarClient::builder(proxy.service_url())
        .operation_timeout(Duration::from_secs(15))
        .connect_timeout(Duration::from_secs(3))
        .keepalive_interval(Duration::from_secs(1))
        .max_backoff_interval(Duration::from_secs(2))
        .build()
        .expect("client");
    let stopped = Arc::new(AtomicBool::new(false));
    let mut streams = tokio::task::JoinSet::new();
    let mut topics = Vec::new();
    for (sub, partitions) in [
        (SubscriptionType::Exclusive, 0),
        (SubscriptionType::Shared, 3),
        (SubscriptionType::Failover, 0),
        (SubscriptionType::KeyShared, 3),
    ] {
        let topic = support::unique_topic(&format!("soak-{}", sub_name(sub)));
        if partitions > 0 {
            cluster.create_partitioned(&topic, partitions);
            topics.extend((0..partitions).map(|p| format!("{topic}-partition-{p}")));
        } else {
            topics.push(topic.clone());
        }
        let spec = StreamSpec {
            label: format!("soak/{}", sub_name(sub)),
            topic,
            sub,
            send_every: Duration::from_millis(20),
            liveness: LIVENESS,
            ready: None,
        };
        streams.spawn(stream(client.clone(), spec, stopped.clone()));
    }

    let faults = {
        let (proxy, stopped) = (proxy.clone(), stopped.clone());
        tokio::task::spawn_blocking(move || {
            let mut rng = Rng::new(seed);
            let mut kinds = vec![SoakFault::Unload, SoakFault::Bundle, SoakFault::Kill9];
            kinds.extend(NetFault::ALL.into_iter().map(SoakFault::Net));
            // PULSAR_WIRE_SOAK_FAULTS=kill9,latency,...: only these kinds (to chase one).
            if let Ok(only) = std::env::var("PULSAR_WIRE_SOAK_FAULTS") {
                let only: Vec<&str> = only.split(',').map(str::trim).collect();
                kinds.retain(|k| only.contains(&k.name()));
                assert!(
                    !kinds.is_empty(),
                    "PULSAR_WIRE_SOAK_FAULTS names no fault kind"
                );
            }
            let mut windows = Vec::new();
            let mut counts: BTreeMap<SoakFault, usize> = BTreeMap::new();
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                std::thread::sleep(Duration::from_secs(3));
                let end = Instant::now() + Duration::from_secs(secs);
                while Instant::now() < end {
                    let fault = kinds[rng.below(kinds.len() as u64) as usize];
                    let start = Instant::now();
                    apply(cluster, &proxy, &mut rng, fault, &topics);
                    windows.push((start, Instant::now()));
                    *counts.entry(fault).or_default() += 1;
                    std::thread::sleep(Duration::from_millis(2000 + rng.below(4000)));
                }
                std::thread::sleep(Duration::from_secs(3));
            }));
            stopped.store(true, Ordering::SeqCst);
            if let Err(panic) = run {
                std::panic::resume_unwind(panic);
            }
            (windows, counts)
        })
    };
    let (windows, counts) = faults.await.expect("the faults");
    let mut reports: Vec<StreamReport> = Vec::new();
    while let Some(r) = streams.join_next().await {
        reports.push(r.expect("a stream"));
    }
    reports.sort_by(|a, b| a.label.cmp(&b.label));
    client.close().await.expect("close the client");

    let schedule = Schedule { windows };
    let mut wrong = Vec::new();
    let mut total = LossReport::default();
    let (mut send_times, mut receive_times) = (Vec::new(), Vec::new());
    for r in &reports {
        wrong.extend(check(r, &schedule, true));
        total.add(r);
        send_times.extend(r.sent.iter().filter(|s| s.result.is_ok()).map(|s| s.done));
        receive_times.extend(r.receive_times.iter().copied());
    }
    let fmt = |v: Option<(Duration, Duration)>| match v {
        Some((median, max)) => format!("median {} max {}", millis(median), millis(max)),
        None => "none".to_string(),
    };
    let counts: Vec<String> = counts
        .iter()
        .map(|(f, n)| format!("{} {n}", f.name()))
        .collect();
    println!(
        "soak: loss report after {secs} s: sent {}, acknowledged {}, failed {}, received {}, \
         lost {}, duplicated on the topic {}, redelivered {} ({} of them after a confirmed ack, across a fault)",
        total.sent,
        total.acknowledged,
        total.failed,
        total.received,
        total.lost,
        total.duplicated_on_topic,
        total.redelivered,
        total.acked_then_redelivered,
    );
    println!(
        "soak: {} faults ({}); recovery to the next receipt {}, to the next message received {}; \
         proxy connections {} ({} refused, {} black-holed)",
        schedule.windows.len(),
        counts.join(", "),
        fmt(median_max(recoveries(&schedule, &send_times))),
        fmt(median_max(recoveries(&schedule, &receive_times))),
        proxy.accepted(),
        proxy.refused(),
        proxy.black_holed(),
    );
    assert!(proxy.errors().is_empty(), "the proxy: {:?}", proxy.errors());
    assert!(total.acknowledged > 0, "no send completed");
    assert_eq!(total.lost, 0, "lost messages: {}", wrong.join("\n"));
    assert_eq!(total.duplicated_on_topic, 0, "{}", wrong.join("\n"));
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
