//! `pulsar-wire perf consume`: subscribes `--subscriptions` subscriptions (Shared by default,
//! from the earliest message) on each of `--topics` topics with `--consumers-per-topic`
//! consumers each, acknowledges every delivery and counts distinct message ids per
//! subscription until `--expect` of them over everything or `--duration`.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Args, ValueEnum};
use pulsar_wire::{Consumer, InitialPosition, MessageId, PulsarClient, SubscriptionType};
use tokio::sync::watch;

use super::stats::{self, parse_at_least_one, topic_names, MeasureArgs, Meter};
use super::{grouped, micros, Extra, OutputArgs, Summary};
use crate::common::{context, parse_positive_secs, secs, CliError, CliResult, ConnectArgs};

/// The subscription type (`--subscription-type`).
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionTypeArg {
    /// One consumer per subscription (--consumers-per-topic 1).
    Exclusive,
    /// Messages spread over the consumers, round robin.
    Shared,
    /// One active consumer, the others stand by.
    Failover,
    /// Messages spread by key.
    KeyShared,
}

impl From<SubscriptionTypeArg> for SubscriptionType {
    fn from(t: SubscriptionTypeArg) -> SubscriptionType {
        match t {
            SubscriptionTypeArg::Exclusive => SubscriptionType::Exclusive,
            SubscriptionTypeArg::Shared => SubscriptionType::Shared,
            SubscriptionTypeArg::Failover => SubscriptionType::Failover,
            SubscriptionTypeArg::KeyShared => SubscriptionType::KeyShared,
        }
    }
}

/// `pulsar-wire perf consume`.
#[derive(Args, Debug)]
pub struct ConsumeArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,

    /// The topic, e.g. persistent://public/default/perf (or just perf); with --topics N > 1,
    /// the prefix of the topics TOPIC-0 .. TOPIC-{N-1}.
    #[arg(long, value_name = "TOPIC")]
    pub topic: String,

    /// How many topics: 1 (the default) is --topic itself; N > 1 are --topic-0 ..
    /// --topic-{N-1}, as pulsar-perf names them.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = parse_at_least_one)]
    pub topics: u32,

    /// The subscription name (a new one starts at the earliest message); with
    /// --subscriptions N > 1, the prefix of NAME-0 .. NAME-{N-1}.
    #[arg(long, short = 's', value_name = "NAME")]
    pub subscription: String,

    /// Subscriptions on each topic; each gets every message, and counts it (a message received
    /// on two subscriptions counts twice in the totals).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = parse_at_least_one)]
    pub subscriptions: u32,

    /// Consumers on each topic for each subscription (all on one client, created
    /// concurrently); exclusive takes 1.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = parse_at_least_one)]
    pub consumers_per_topic: u32,

    /// The subscription type.
    #[arg(long, value_name = "TYPE", value_enum, default_value_t = SubscriptionTypeArg::Shared)]
    pub subscription_type: SubscriptionTypeArg,

    /// Give up after this many seconds (the warm-up included).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_positive_secs)]
    pub duration: Duration,

    /// Stop once this many distinct messages were received over all topics and subscriptions,
    /// the warm-up's included (0: run for --duration).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub expect: u64,

    /// How many messages the broker may push ahead, per consumer (per partition; at least
    /// 1000).
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1000..))]
    pub receiver_queue: u32,

    #[command(flatten)]
    pub measure: MeasureArgs,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// A message id as the benchmark counts it: (ledger, entry, partition, batch index).
type Key = (i64, i64, i32, i32);

fn key(id: MessageId) -> Key {
    (id.ledger_id, id.entry_id, id.partition, id.batch_index)
}

/// Batch indexes below this are kept as bits of their entry; others (never seen from a real
/// broker) in a plain set.
const MAX_BIT: i32 = 4096;

/// A multiply-rotate hasher for the integer keys of [`Seen`] (ids come from the broker the
/// user chose to measure; SipHash's flooding resistance is not needed, its cost is).
#[derive(Debug, Default, Clone, Copy)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn write_i64(&mut self, n: i64) {
        self.write_u64(n as u64);
    }

    fn write_i32(&mut self, n: i32) {
        self.write_u64(u64::from(n as u32));
    }
}

type IdHash = BuildHasherDefault<IdHasher>;

/// The batch indexes seen of one entry: bit `i + 1` for index `i` (bit 0: not a batch).
#[derive(Debug, Default)]
struct Bits {
    low: u64,
    high: Vec<u64>,
}

impl Bits {
    /// Sets bit `n`; whether it was clear.
    fn set(&mut self, n: usize) -> bool {
        let (word, mask) = (n / 64, 1u64 << (n % 64));
        let slot = if word == 0 {
            &mut self.low
        } else {
            if self.high.len() < word {
                self.high.resize(word, 0);
            }
            &mut self.high[word - 1]
        };
        let fresh = *slot & mask == 0;
        *slot |= mask;
        fresh
    }
}

/// The distinct message ids received: one small bit set per entry (ledger, entry, partition),
/// so that the messages of a batch touch one hash slot instead of one each.
#[derive(Debug, Default)]
struct Seen {
    entries: HashMap<(i64, i64, i32), Bits, IdHash>,
    others: HashSet<Key, IdHash>,
}

impl Seen {
    /// Adds `id`; whether it is new.
    fn insert(&mut self, id: MessageId) -> bool {
        match usize::try_from(id.batch_index.saturating_add(1)) {
            Ok(bit) if id.batch_index < MAX_BIT => self
                .entries
                .entry((id.ledger_id, id.entry_id, id.partition))
                .or_default()
                .set(bit),
            _ => self.others.insert(key(id)),
        }
    }
}

/// Microseconds since the epoch (0 if the clock is before it).
fn now_epoch_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Receive latency: now minus the publish time (ms since the epoch), in µs, at least 1; `None`
/// when the message has no publish time.
fn publish_latency_us(now_us: u64, publish_ms: u64) -> Option<u64> {
    (publish_ms > 0).then(|| {
        now_us
            .saturating_sub(publish_ms.saturating_mul(1000))
            .max(1)
    })
}

/// The subscription names of `--subscription S --subscriptions n`: `S` alone when `n` is 1,
/// else `S-0` .. `S-{n-1}`.
fn subscription_names(name: &str, n: u32) -> Vec<String> {
    topic_names(name, n)
}

/// What the consumer tasks share besides the meter.
#[derive(Debug)]
struct Shared {
    meter: Arc<Meter>,
    /// Receive times in µs since the epoch: the wall clock read once at `start`, then the
    /// monotonic clock (one clock read per message instead of two).
    start: Instant,
    start_epoch_us: u64,
    deliveries: AtomicU64,
    /// Distinct messages over everything, the warm-up's included (for --expect).
    distinct: AtomicU64,
    expect: u64,
    end: Instant,
    /// Set to true to stop every consumer.
    stop: watch::Sender<bool>,
    /// The first receive error (it stops the run).
    receive_error: Mutex<Option<String>>,
}

/// Receives on one consumer until told to stop, acknowledging everything; `seen` holds the
/// distinct ids of its topic and subscription (shared with the other consumers of the pair).
async fn consume(mut consumer: Consumer, seen: Arc<Mutex<Seen>>, shared: Arc<Shared>) {
    let mut stop = shared.stop.subscribe();
    let deadline = tokio::time::sleep_until(shared.end.into());
    tokio::pin!(deadline);
    loop {
        if *stop.borrow() {
            break;
        }
        let msg = tokio::select! {
            biased;
            _ = stop.changed() => break,
            () = &mut deadline => break,
            r = consumer.receive() => match r {
                Ok(msg) => msg,
                Err(e) => {
                    let mut first = shared.receive_error.lock().unwrap_or_else(|p| p.into_inner());
                    first.get_or_insert_with(|| e.to_string());
                    drop(first);
                    shared.meter.error(|| format!("receive: {e}"), false);
                    let _ = shared.stop.send(true);
                    break;
                }
            },
        };
        shared.deliveries.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = consumer.ack(&msg).await {
            shared
                .meter
                .error(|| format!("acknowledgement: {e}"), false);
        }
        let now = Instant::now();
        let fresh = seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(msg.id());
        if fresh {
            let len = msg.payload().len() as u64;
            let now_us = shared
                .start_epoch_us
                .saturating_add(micros(now.duration_since(shared.start)));
            let us = publish_latency_us(now_us, msg.publish_time());
            shared.meter.record(now, len, us);
            let distinct = shared.distinct.fetch_add(1, Ordering::Relaxed) + 1;
            if shared.expect > 0 && distinct >= shared.expect {
                let _ = shared.stop.send(true);
            }
        }
    }
    // Closing sends the acks still grouped.
    if let Err(e) = consumer.close().await {
        tracing::warn!("closing a consumer failed: {e}");
    }
}

/// Subscribes every consumer of the run at once: for each subscription and topic,
/// `per_topic` consumers sharing one set of seen ids.
async fn subscribe_all(
    client: &PulsarClient,
    args: &ConsumeArgs,
    topics: &[String],
    subscriptions: &[String],
) -> CliResult<Vec<(Consumer, Arc<Mutex<Seen>>)>> {
    let mut tasks = tokio::task::JoinSet::new();
    for sub in subscriptions {
        for topic in topics {
            let seen = Arc::new(Mutex::new(Seen::default()));
            for _ in 0..args.consumers_per_topic {
                let builder = client
                    .consumer(topic.as_str())
                    .subscription(sub.as_str())
                    .subscription_type(args.subscription_type.into())
                    .initial_position(InitialPosition::Earliest)
                    .receiver_queue_size(args.receiver_queue);
                let (topic, sub, seen) = (topic.clone(), sub.clone(), seen.clone());
                tasks.spawn(async move { (topic, sub, seen, builder.subscribe().await) });
            }
        }
    }
    let mut consumers = Vec::with_capacity(tasks.len());
    let mut first_error: Option<CliError> = None;
    while let Some(done) = tasks.join_next().await {
        let (topic, sub, seen, subscribed) =
            done.map_err(|e| CliError(format!("a subscription task failed: {e}")))?;
        match subscribed {
            Ok(c) => consumers.push((c, seen)),
            Err(e) => {
                if first_error.is_none() {
                    first_error = Some(context(format_args!(
                        "cannot subscribe to {topic} as {sub}"
                    ))(e));
                }
            }
        }
    }
    match first_error {
        Some(e) => {
            for (c, _) in consumers {
                let _ = c.close().await;
            }
            Err(e)
        }
        None => Ok(consumers),
    }
}

/// Runs `perf consume`.
pub async fn run(args: ConsumeArgs) -> CliResult<()> {
    if args.subscription_type == SubscriptionTypeArg::Exclusive && args.consumers_per_topic > 1 {
        return Err(CliError(
            "--subscription-type exclusive takes one consumer per topic and subscription: \
             give --consumers-per-topic 1, or another type"
                .into(),
        ));
    }
    let topics = topic_names(&args.topic, args.topics);
    let subscriptions = subscription_names(&args.subscription, args.subscriptions);
    let client = args.connect.client()?;
    let human = !args.output.json;
    let setup = Instant::now();
    let consumers = subscribe_all(&client, &args, &topics, &subscriptions).await?;
    if human {
        let _ = writeln!(
            std::io::stderr().lock(),
            "perf consume: {} on {} ({} each) created in {:.3} s",
            stats::counted(consumers.len() as u64, "consumer"),
            stats::counted(topics.len() as u64, "topic"),
            stats::counted(subscriptions.len() as u64, "subscription"),
            setup.elapsed().as_secs_f64()
        );
    }
    let n_consumers = consumers.len() as u64;

    let start = Instant::now();
    let start_wall = SystemTime::now();
    let meter = Meter::new(start + args.measure.warmup_secs)?;
    let (stop, _) = watch::channel(false);
    let shared = Arc::new(Shared {
        meter: meter.clone(),
        start,
        start_epoch_us: now_epoch_us(),
        deliveries: AtomicU64::new(0),
        distinct: AtomicU64::new(0),
        expect: args.expect,
        end: start + args.duration,
        stop,
        receive_error: Mutex::new(None),
    });
    let printer = (!args.output.no_progress).then(|| {
        tokio::spawn(stats::print_stats(
            meter.clone(),
            "consume",
            start,
            args.measure.stats_interval,
            false,
        ))
    });
    let tasks: Vec<_> = consumers
        .into_iter()
        .map(|(c, seen)| tokio::spawn(consume(c, seen, shared.clone())))
        .collect();
    for t in tasks {
        t.await
            .map_err(|e| CliError(format!("a consumer task failed: {e}")))?;
    }
    if let Some(p) = printer {
        p.abort();
    }
    let totals = meter.finish();
    let msgs = totals.msgs;
    let elapsed = if msgs > 0 {
        totals.secs(meter.measure_from())
    } else {
        start.elapsed().as_secs_f64()
    };
    let deliveries = shared.deliveries.load(Ordering::Relaxed);
    let summary = Summary {
        op: "consume",
        msgs,
        bytes: totals.bytes,
        secs: elapsed,
        latency: &totals.latency,
        extra: vec![
            ("deliveries", Extra::Number(deliveries)),
            ("errors", Extra::Number(totals.errors)),
            ("topics", Extra::Number(topics.len() as u64)),
            ("subscriptions", Extra::Number(subscriptions.len() as u64)),
            ("consumers", Extra::Number(n_consumers)),
            ("warmup_msgs", Extra::Number(totals.warmup_msgs)),
        ],
    };
    let written = match &args.measure.histogram_file {
        Some(path) => stats::write_histogram_file(
            path,
            &totals.latency,
            start_wall + args.measure.warmup_secs,
            elapsed,
        ),
        None => Ok(()),
    };
    if human {
        let _ = writeln!(
            std::io::stderr().lock(),
            "{}",
            stats::aggregated(msgs, totals.bytes, elapsed, &totals.latency)
        );
    }
    let printed = summary.print(args.output.json);
    let _ = client.close().await;
    printed?;
    written?;
    let receive_error = shared
        .receive_error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    if let Some(e) = receive_error {
        return Err(CliError(format!(
            "receiving failed after {msgs} messages: {e}"
        )));
    }
    if let Some(e) = totals.first_error {
        return Err(CliError(format!(
            "{} of {deliveries} acknowledgements failed (first: {e})",
            totals.errors
        )));
    }
    let distinct = shared.distinct.load(Ordering::Relaxed);
    if args.expect > 0 && distinct < args.expect {
        let _ = writeln!(
            std::io::stderr().lock(),
            "warning: {} of {} expected messages within {}",
            grouped(distinct),
            grouped(args.expect),
            secs(args.duration)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_tell_batch_indexes_and_partitions_apart() {
        let id = MessageId::new(3, 7);
        assert_ne!(key(id.with_batch(0, 2)), key(id.with_batch(1, 2)));
        assert_ne!(key(id.with_partition(0)), key(id.with_partition(1)));
        assert_eq!(key(id.with_batch(1, 2)), (3, 7, -1, 1));
    }

    #[test]
    fn seen_counts_each_id_once() {
        let mut seen = Seen::default();
        let entry = MessageId::new(3, 7);
        // Not a batch, then every index of a batch of 200 on the same entry, twice.
        assert!(seen.insert(entry));
        assert!(!seen.insert(entry));
        for round in 0..2 {
            for i in 0..200 {
                assert_eq!(seen.insert(entry.with_batch(i, 200)), round == 0, "{i}");
            }
        }
        // Other partitions and entries are other ids.
        assert!(seen.insert(entry.with_partition(1)));
        assert!(seen.insert(MessageId::new(3, 8).with_batch(0, 2)));
        // Indexes past the bit sets, and negative ones, still count once.
        for i in [MAX_BIT, i32::MAX, -2, i32::MIN] {
            assert!(seen.insert(entry.with_batch(i, 0)), "{i}");
            assert!(!seen.insert(entry.with_batch(i, 0)), "{i}");
        }
        assert_eq!(seen.entries.len(), 3);
        assert_eq!(seen.others.len(), 4);
    }

    #[test]
    fn subscriptions_are_named_like_topics() {
        assert_eq!(subscription_names("s", 1), vec!["s"]);
        assert_eq!(subscription_names("s", 2), vec!["s-0", "s-1"]);
    }

    #[test]
    fn latency_is_now_minus_publish_time() {
        assert_eq!(publish_latency_us(5_000_000, 4_000), Some(1_000_000));
        assert_eq!(publish_latency_us(5_000_000, 6_000), Some(1));
        assert_eq!(publish_latency_us(5_000_000, 0), None);
    }
}
