//! The streams of the chaos tests and the soak (tests/chaos_network.rs, tests/chaos_cluster.rs,
//! tests/soak.rs): one producer streaming numbered payloads to a topic (named, so that a broker
//! with deduplication keeps each once) and one consumer draining and acknowledging it with ack
//! receipts, while faults hit; then the checks every such test makes:
//!
//! - every completed send is on the topic exactly once (read back from a `check` subscription
//!   made before the first send, so that the broker keeps every message for it; without
//!   deduplication, more often only when a fault began while the send was in flight);
//! - every failed send has a typed error that says why;
//! - the consumer received every completed send, and again only messages whose
//!   acknowledgement the broker had not confirmed, or that a fault hit after their first
//!   delivery (a receipt means the broker applied the ack, not that it stored it: Pulsar
//!   documents that a message may be resent after its receipt; a topic closed or moved may
//!   lose the latest acks, and a consumer that reconnected while holding a message gets it
//!   again from the broker however its ack then fares);
//! - the time to recover from each fault (to the next receipt, to the next message received),
//!   printed as median and max, never asserted.
//!
//! Every wait is bounded by the stream's liveness limit and fails saying what it waited for.

// Each test binary uses a part of this module.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pulsar_wire::{Error, InitialPosition, ProducerMessage, PulsarClient, SubscriptionType};

/// The name of a subscription type in labels.
pub fn sub_name(s: SubscriptionType) -> &'static str {
    match s {
        SubscriptionType::Exclusive => "exclusive",
        SubscriptionType::Shared => "shared",
        SubscriptionType::Failover => "failover",
        SubscriptionType::KeyShared => "key-shared",
    }
}

/// A stream's label: `sub/plain|partitioned/fault`.
pub fn label(sub: SubscriptionType, partitions: u32, fault: &str) -> String {
    let kind = if partitions > 0 {
        "partitioned"
    } else {
        "plain"
    };
    format!("{}/{kind}/{fault}", sub_name(sub))
}

/// Locks, taking the data of a poisoned lock too (a panicking stream must not hide the rest).
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// When each fault began and ended.
#[derive(Debug, Default, Clone)]
pub struct Schedule {
    /// (start, end) of every fault, in order.
    pub windows: Vec<(Instant, Instant)>,
}

/// One send: its payload, when it was handed over, and how it ended.
#[derive(Debug)]
pub struct Sent {
    /// `label:i`.
    pub payload: String,
    /// When `send_async` was called.
    pub enqueued: Instant,
    /// When the receipt or the error came.
    pub done: Instant,
    /// The receipt (as `Ok`) or the error.
    pub result: Result<(), Error>,
}

/// What one stream saw.
pub struct StreamReport {
    /// The stream's name in the output.
    pub label: String,
    /// Every send.
    pub sent: Vec<Sent>,
    /// When each message was received.
    pub receive_times: Vec<Instant>,
    /// Payload → how many times the consumer received it.
    pub received: HashMap<String, u32>,
    /// Payload → the distinct message ids it has on the topic.
    pub on_topic: BTreeMap<String, BTreeSet<String>>,
    /// Payloads received again after their ack was confirmed.
    pub acked_then_redelivered: Vec<AckedAgain>,
}

/// A message delivered again after its ack was confirmed.
#[derive(Debug, Clone)]
pub struct AckedAgain {
    /// Its payload.
    pub payload: String,
    /// When it was first delivered.
    pub first: Instant,
    /// When its ack was confirmed.
    pub acked: Instant,
    /// When it came again.
    pub again: Instant,
    /// Its message id the first time and this time, and the broker's redelivery count.
    pub ids: (String, String, u32),
}

/// What a stream does.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    /// Its name in the output; the payloads are `label:i`.
    pub label: String,
    /// The topic (partitioned or not).
    pub topic: String,
    /// The consumer's subscription type.
    pub sub: SubscriptionType,
    /// Between two sends.
    pub send_every: Duration,
    /// The bound on every wait: a receipt, the drain after the end, the read-back.
    pub liveness: Duration,
    /// Counted up once the stream's producer and consumer exist (so that a test can start its
    /// faults after every stream is ready).
    pub ready: Option<Arc<AtomicUsize>>,
}

/// One producer streaming to `topic` and one consumer draining it, until `stopped`.
pub async fn stream(
    client: PulsarClient,
    spec: StreamSpec,
    stopped: Arc<AtomicBool>,
) -> StreamReport {
    let StreamSpec {
        label,
        topic,
        sub,
        send_every,
        liveness,
        ready,
    } = spec;
    // The read-back subscription, made before the first send: the broker keeps what it has
    // not acknowledged (without retention, what every subscription acknowledged may go).
    // A fault may already be on while the streams start (the tests start their faults on a
    // clock): each of these is tried again until the liveness bound.
    let deadline = Instant::now() + liveness;
    let check_subscription = super::unique_name("check");
    let check = until(&label, "the check subscription", deadline, || {
        client
            .consumer(&topic)
            .subscription(&check_subscription)
            .subscription_type(SubscriptionType::Shared)
            .initial_position(InitialPosition::Earliest)
            .subscribe()
    })
    .await;
    // The subscription stays on the broker; its consumer is not needed.
    let _ = check.close().await;
    let producer_name = super::unique_name("chaos-producer");
    let producer = until(&label, "the producer", deadline, || {
        client
            .producer(&topic)
            .name(&producer_name)
            .batching(false)
            .block_if_queue_full(true)
            // Within the liveness bound: a send the client cannot complete fails with its
            // timeout (a typed error) before the test would call it stuck.
            .send_timeout(liveness / 2)
            .create()
    })
    .await;
    let mut consumer = until(&label, "the consumer", deadline, || {
        client
            .consumer(&topic)
            .subscription("chaos")
            .subscription_type(sub)
            .initial_position(InitialPosition::Earliest)
            .ack_receipts(true)
            // Each ack is awaited before the next receive: with the default 100 ms grouping
            // the consumer would drain 10 messages a second, slower than the producer sends.
            .ack_group_time(Duration::ZERO)
            .subscribe()
    })
    .await;
    if let Some(ready) = &ready {
        ready.fetch_add(1, Ordering::SeqCst);
    }
    let sent: Arc<Mutex<Vec<Sent>>> = Arc::default();
    let produce = {
        let (label, stopped, sent) = (label.clone(), stopped.clone(), sent.clone());
        async move {
            let mut receipts = tokio::task::JoinSet::new();
            let mut i = 0u64;
            while !stopped.load(Ordering::SeqCst) {
                let payload = format!("{label}:{i}");
                let msg =
                    ProducerMessage::new(payload.clone()).partition_key(format!("k{}", i % 8));
                let enqueued = Instant::now();
                match producer.send_async(msg).await {
                    Ok(receipt) => {
                        let sent = sent.clone();
                        receipts.spawn(async move {
                            let result = match tokio::time::timeout(liveness, receipt).await {
                                Ok(r) => r.map(|_| ()),
                                Err(_) => {
                                    panic!("{payload}: no receipt and no error within {liveness:?}")
                                }
                            };
                            lock(&sent).push(Sent {
                                payload,
                                enqueued,
                                done: Instant::now(),
                                result,
                            });
                        });
                    }
                    Err(e) => lock(&sent).push(Sent {
                        payload,
                        enqueued,
                        done: Instant::now(),
                        result: Err(e),
                    }),
                }
                i += 1;
                tokio::time::sleep(send_every).await;
            }
            while let Some(r) = receipts.join_next().await {
                r.unwrap_or_else(|e| panic!("{label}: a receipt: {e}"));
            }
            producer
        }
    };
    let (sent_done_tx, mut sent_done_rx) = tokio::sync::watch::channel(false);
    let consume = {
        let (label, sent) = (label.clone(), sent.clone());
        async move {
            let mut received: HashMap<String, u32> = HashMap::new();
            let mut first: HashMap<String, (Instant, String)> = HashMap::new();
            let mut acked: HashMap<String, Instant> = HashMap::new();
            let mut bad = Vec::new();
            let mut times = Vec::new();
            let mut deadline: Option<Instant> = None;
            let mut ended = Instant::now();
            // Once every send is done: the completed sends not received yet, kept up to date
            // as messages come (a scan of every send per message would make the drain
            // quadratic: in a debug build, thousands of sends, it fell to a few a second).
            let mut waiting: HashSet<String> = HashSet::new();
            loop {
                if deadline.is_none() && *sent_done_rx.borrow_and_update() {
                    ended = Instant::now();
                    deadline = Some(ended + liveness);
                    waiting = lock(&sent)
                        .iter()
                        .filter(|s| s.result.is_ok() && !received.contains_key(&s.payload))
                        .map(|s| s.payload.clone())
                        .collect();
                }
                if deadline.is_some() {
                    let missing = waiting.len();
                    if missing == 0 {
                        break;
                    }
                    if deadline.is_some_and(|d| Instant::now() > d) {
                        // What a stalled consumer looks like: since when it misses messages,
                        // and whether anything came at all near the end.
                        let oldest = lock(&sent)
                            .iter()
                            .filter(|s| s.result.is_ok() && !received.contains_key(&s.payload))
                            .min_by_key(|s| s.enqueued)
                            .map(|s| (s.payload.clone(), signed_millis(ended, s.enqueued)));
                        let before = times
                            .iter()
                            .filter(|t| **t <= ended && ended.duration_since(**t).as_secs() < 10)
                            .count();
                        let after = times.iter().filter(|t| **t > ended).count();
                        let last = times.last().map(|t| signed_millis(*t, ended));
                        panic!(
                            "{label}: {missing} completed sends not received within {liveness:?} \
                             after the stream ended; the oldest missing (payload, ms before the \
                             end): {oldest:?}; {} received in all, {before} in the 10 s before \
                             the end, {after} after it; the last one at {last:?} ms from the end",
                            times.len()
                        );
                    }
                }
                let msg = tokio::select! {
                    m = consumer.receive_timeout(Duration::from_millis(500)) => m,
                    _ = sent_done_rx.changed(), if deadline.is_none() => continue,
                };
                let msg = match msg {
                    Ok(Some(m)) => m,
                    Ok(None) => continue,
                    Err(e) => panic!("{label}: receive: {e}"),
                };
                let payload = msg.payload_str().unwrap_or_default().to_owned();
                let now = Instant::now();
                times.push(now);
                let (first_at, first_id) = first
                    .entry(payload.clone())
                    .or_insert_with(|| (now, format!("{:?}", msg.id())))
                    .clone();
                waiting.remove(&payload);
                let n = received.entry(payload.clone()).or_insert(0);
                *n += 1;
                if let (true, Some(at)) = (*n > 1, acked.get(&payload)) {
                    bad.push(AckedAgain {
                        payload: payload.clone(),
                        first: first_at,
                        acked: *at,
                        again: now,
                        ids: (first_id, format!("{:?}", msg.id()), msg.redelivery_count()),
                    });
                }
                if consumer.ack(&msg).await.is_ok() {
                    acked.insert(payload, Instant::now());
                }
            }
            consumer.close().await.ok();
            (received, times, bad)
        }
    };
    let produce = async move {
        let p = produce.await;
        let _ = sent_done_tx.send(true);
        p
    };
    let (producer, (received, receive_times, acked_then_redelivered)) =
        tokio::join!(produce, consume);
    producer.close().await.ok();
    let sent = std::mem::take(&mut *lock(&sent));
    let completed = sent.iter().filter(|s| s.result.is_ok()).count();
    let on_topic = read_back(
        &client,
        &topic,
        &check_subscription,
        completed,
        &label,
        liveness,
    )
    .await;
    StreamReport {
        label,
        sent,
        receive_times,
        received,
        on_topic,
        acked_then_redelivered,
    }
}

/// `make()` until it succeeds; panics with its last error once `deadline` has passed.
async fn until<T, F, Fut>(label: &str, what: &str, deadline: Instant, mut make: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    loop {
        match make().await {
            Ok(made) => return made,
            Err(e) if Instant::now() < deadline => {
                eprintln!("{label}: {what}, again after: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("{label}: {what}: {e}"),
        }
    }
}

/// Every message on the topic, read on the check subscription made before the first send:
/// payload → the distinct message ids it has.
pub async fn read_back(
    client: &PulsarClient,
    topic: &str,
    subscription: &str,
    expect: usize,
    label: &str,
    liveness: Duration,
) -> BTreeMap<String, BTreeSet<String>> {
    let mut c = client
        .consumer(topic)
        .subscription(subscription)
        .subscription_type(SubscriptionType::Shared)
        .initial_position(InitialPosition::Earliest)
        .subscribe()
        .await
        .unwrap_or_else(|e| panic!("{label}: the check subscription: {e}"));
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let deadline = Instant::now() + liveness;
    loop {
        let wait = if out.len() >= expect { 2 } else { 10 };
        match c.receive_timeout(Duration::from_secs(wait)).await {
            Ok(Some(m)) => {
                let _ = c.ack(&m).await;
                out.entry(m.payload_str().unwrap_or_default().to_owned())
                    .or_default()
                    .insert(format!("{:?}", m.id()));
            }
            Ok(None) if out.len() >= expect => break,
            Ok(None) => {}
            Err(e) => panic!("{label}: reading the topic back: {e}"),
        }
        assert!(
            Instant::now() < deadline,
            "{label}: reading the topic back: {} of {expect} within {liveness:?}",
            out.len()
        );
    }
    c.close().await.ok();
    out
}

/// `t - from` in milliseconds, negative when `t` is earlier.
fn signed_millis(t: Instant, from: Instant) -> i128 {
    if t >= from {
        (t - from).as_millis() as i128
    } else {
        -((from - t).as_millis() as i128)
    }
}

pub fn millis(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// (median, max) of `v`.
pub fn median_max(mut v: Vec<Duration>) -> Option<(Duration, Duration)> {
    v.sort();
    Some((*v.get(v.len() / 2)?, *v.last()?))
}

/// For each fault, how long after its end the first event in `times` came.
pub fn recoveries(schedule: &Schedule, times: &[Instant]) -> Vec<Duration> {
    let mut times = times.to_vec();
    times.sort();
    schedule
        .windows
        .iter()
        .filter_map(|(_, end)| times.iter().find(|t| *t >= end).map(|t| *t - *end))
        .collect()
}

/// The checks of one stream: what is wrong (empty when all hold); prints its report.
pub fn check(r: &StreamReport, schedule: &Schedule, deduplicates: bool) -> Vec<String> {
    let mut wrong = Vec::new();
    let label = &r.label;
    let completed: Vec<&Sent> = r.sent.iter().filter(|s| s.result.is_ok()).collect();
    let failed: Vec<&Sent> = r.sent.iter().filter(|s| s.result.is_err()).collect();
    let sent_payloads: BTreeSet<&str> = r.sent.iter().map(|s| s.payload.as_str()).collect();
    // Every completed send is on the topic exactly once (or, without deduplication, more often
    // only when a fault began while it was in flight).
    let mut topic_duplicates = 0;
    for s in &completed {
        match r.on_topic.get(&s.payload).map_or(0, BTreeSet::len) {
            0 => wrong.push(format!(
                "{label}: {} was acknowledged but is not on the topic",
                s.payload
            )),
            1 => {}
            n => {
                topic_duplicates += n - 1;
                let in_flight_at_a_fault = schedule
                    .windows
                    .iter()
                    .any(|(start, _)| s.enqueued <= *start && *start <= s.done);
                if deduplicates || !in_flight_at_a_fault {
                    wrong.push(format!(
                        "{label}: {} is on the topic {n} times ({:?})",
                        s.payload, r.on_topic[&s.payload]
                    ));
                }
            }
        }
    }
    for s in &failed {
        let n = r.on_topic.get(&s.payload).map_or(0, BTreeSet::len);
        if deduplicates && n > 1 {
            wrong.push(format!(
                "{label}: the failed send {} is on the topic {n} times",
                s.payload
            ));
        }
    }
    for p in r.on_topic.keys() {
        if !sent_payloads.contains(p.as_str()) {
            wrong.push(format!("{label}: {p} is on the topic but was never sent"));
        }
    }
    // Every failed send says why.
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for s in &failed {
        let Err(e) = &s.result else { continue };
        if !matches!(
            e,
            Error::SendTimeout(_)
                | Error::Server { .. }
                | Error::Connection(_)
                | Error::Timeout { .. }
        ) {
            wrong.push(format!(
                "{label}: {} failed without a clear reason: {e:?}",
                s.payload
            ));
        }
        *reasons.entry(e.to_string()).or_default() += 1;
    }
    // The consumer received every completed send, and again only what was not acknowledged.
    let missing: Vec<&str> = completed
        .iter()
        .filter(|s| !r.received.contains_key(&s.payload))
        .map(|s| s.payload.as_str())
        .collect();
    if !missing.is_empty() {
        wrong.push(format!(
            "{label}: {} completed sends never received: {:?}",
            missing.len(),
            &missing[..missing.len().min(10)]
        ));
    }
    // A confirmed ack does not mean the message will not come again: the broker answers once
    // it has applied the ack in memory, before it stores it (the Java client's
    // isAckReceiptEnabled: "does not mean that the message will not be resent after get
    // receipt"), and the receipt of a message of a batch is the client's own until the whole
    // batch is acknowledged. A consumer that reconnected while it held a message gets it
    // again from the broker, which had it unacknowledged, whenever the ack then arrives. So a
    // message may come again after its confirmed ack only if a fault was on at some time
    // between its first delivery and its return; with no fault in that time it is an error. A
    // fault that began just before the first delivery counts: a fault's window starts when the
    // test starts it, and a broker killed with -9 still delivers (and confirms acks it will
    // never store) for the tens of milliseconds the kill takes to land.
    let bad: Vec<String> = r
        .acked_then_redelivered
        .iter()
        .filter(|a| {
            !schedule
                .windows
                .iter()
                .any(|(start, end)| *start <= a.again && a.first <= *end)
        })
        .map(|a| {
            // The last fault that began before the message came again, from its first delivery
            // (none of them was on between the first delivery and the return).
            let last_fault = schedule
                .windows
                .iter()
                .rev()
                .find(|(start, _)| *start <= a.again)
                .map_or("none".to_string(), |(start, end)| {
                    format!(
                        "{}..{} ms",
                        signed_millis(*start, a.first),
                        signed_millis(*end, a.first)
                    )
                });
            format!(
                "{} (first delivered as {}; ack confirmed at +{} ms; again at +{} ms as {}, \
                 redelivery count {}; the last fault before: {last_fault})",
                a.payload,
                a.ids.0,
                (a.acked - a.first).as_millis(),
                (a.again - a.first).as_millis(),
                a.ids.1,
                a.ids.2,
            )
        })
        .collect();
    if !bad.is_empty() {
        wrong.push(format!(
            "{label}: {} messages delivered again after their ack was confirmed, with no fault \
             since their first delivery: {:?}",
            bad.len(),
            &bad[..bad.len().min(10)]
        ));
    }
    let redelivered: u32 = r.received.values().map(|n| n - 1).sum();
    let send_times: Vec<Instant> = completed.iter().map(|s| s.done).collect();
    let fmt = |v: Option<(Duration, Duration)>| match v {
        Some((median, max)) => format!("median {} max {}", millis(median), millis(max)),
        None => "none".to_string(),
    };
    eprintln!(
        "chaos: {label}: {} faults, recovery send {}, receive {}; sent {}, completed {}, failed {} {:?}, \
         received {} (again {redelivered}), on topic {} (duplicates {topic_duplicates})",
        schedule.windows.len(),
        fmt(median_max(recoveries(schedule, &send_times))),
        fmt(median_max(recoveries(schedule, &r.receive_times))),
        r.sent.len(),
        completed.len(),
        failed.len(),
        reasons,
        r.received.len(),
        r.on_topic.len(),
    );
    if completed.is_empty() {
        wrong.push(format!("{label}: no send completed"));
    }
    wrong
}

/// The sum of several streams' reports: the soak's loss report.
#[derive(Debug, Default)]
pub struct LossReport {
    /// Sends made.
    pub sent: usize,
    /// Sends with a receipt (the broker stored them).
    pub acknowledged: usize,
    /// Sends that failed with an error.
    pub failed: usize,
    /// Distinct completed sends the consumers received.
    pub received: usize,
    /// Completed sends not on the topic or never received.
    pub lost: usize,
    /// Extra copies on the topic of completed sends.
    pub duplicated_on_topic: usize,
    /// Deliveries beyond the first (redeliveries of unacknowledged messages).
    pub redelivered: usize,
    /// Redeliveries of messages whose ack was confirmed (each across a fault).
    pub acked_then_redelivered: usize,
}

impl LossReport {
    /// Adds one stream.
    pub fn add(&mut self, r: &StreamReport) {
        self.sent += r.sent.len();
        for s in &r.sent {
            if s.result.is_err() {
                self.failed += 1;
                continue;
            }
            self.acknowledged += 1;
            let copies = r.on_topic.get(&s.payload).map_or(0, BTreeSet::len);
            if copies == 0 || !r.received.contains_key(&s.payload) {
                self.lost += 1;
            } else {
                self.received += 1;
            }
            self.duplicated_on_topic += copies.saturating_sub(1);
        }
        self.redelivered += r.received.values().map(|n| (n - 1) as usize).sum::<usize>();
        self.acked_then_redelivered += r.acked_then_redelivered.len();
    }
}
