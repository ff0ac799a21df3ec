//! `pulsar-wire perf produce`: sends for `--duration` on `--topics` topics with
//! `--producers-per-topic` producers each, every producer with up to `--max-pending` messages
//! awaiting a receipt; latency runs from just before the send call (including any wait for a
//! free slot) to the receipt.

use std::io::Write as _;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args, ValueEnum};
use pulsar_wire::{Error, Producer, ProducerMessage, PulsarClient, SendReceipt};
use tokio::sync::mpsc;

use super::admin;
use super::stats::{self, parse_at_least_one, topic_names, MeasureArgs, Meter};
use super::{micros, Extra, OutputArgs, Summary};
use crate::common::{context, parse_positive_secs, CliError, CliResult, ConnectArgs};
use crate::produce::Compression as CompressionArg;

/// Batch limits of the C++ and Java clients (the library's defaults too): 1000 messages,
/// 128 KiB, 10 ms: the defaults of --batch-max-messages, --batch-max-bytes and
/// --batch-delay-ms, set explicitly so that every benchmark peer batches alike.
const BATCH_MAX_MESSAGES: usize = 1000;
const BATCH_MAX_BYTES: usize = 128 * 1024;
const BATCH_MAX_DELAY_MS: f64 = 10.0;

/// The message key of each send (`--key-distribution`).
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyDistribution {
    /// No key.
    None,
    /// The send's index over the whole run (0, 1, 2, ...) in decimal, as pulsar-perf's
    /// autoIncrement.
    AutoIncrement,
    /// A random 32-bit integer in decimal, as pulsar-perf's random.
    Random,
}

/// `pulsar-wire perf produce`.
#[derive(Args, Debug)]
pub struct ProduceArgs {
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

    /// Producers on each topic (all on one client, created concurrently).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = parse_at_least_one)]
    pub producers_per_topic: u32,

    /// Create each topic first as a partitioned topic of N partitions through the admin REST
    /// API (an existing one must have N); 0 (the default) uses the topics as they are.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub partitions: u32,

    /// The admin REST API for --partitions (default: http://HOST:8080 of the first host of
    /// --url, or --url itself when it is http:// or https://); --token or --token-file
    /// authenticate there too.
    #[arg(long, value_name = "URL")]
    pub admin_url: Option<String>,

    /// Payload size in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 1024)]
    pub size: usize,

    /// How long to send, in seconds (the warm-up included); then the remaining receipts are
    /// awaited.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_positive_secs)]
    pub duration: Duration,

    /// Messages per second over all producers (0: as fast as the in-flight bounds allow);
    /// the sends go round the producers in turn.
    #[arg(long, value_name = "MSGS_PER_SEC", default_value_t = 0.0, value_parser = parse_rate)]
    pub rate: f64,

    /// Batch messages (up to --batch-max-messages, --batch-max-bytes and --batch-delay-ms per
    /// batch).
    #[arg(long, value_name = "true|false", default_value_t = true, action = ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub batching: bool,

    /// The most messages in one batch.
    #[arg(long, value_name = "N", default_value_t = BATCH_MAX_MESSAGES, value_parser = parse_max_pending)]
    pub batch_max_messages: usize,

    /// The most payload bytes in one batch.
    #[arg(long, value_name = "BYTES", default_value_t = BATCH_MAX_BYTES, value_parser = parse_max_pending)]
    pub batch_max_bytes: usize,

    /// How long a batch may wait for more messages, in milliseconds (fractions allowed).
    #[arg(long, value_name = "MS", default_value_t = BATCH_MAX_DELAY_MS, value_parser = parse_delay_ms)]
    pub batch_delay_ms: f64,

    /// The payload compression.
    #[arg(long, value_name = "CODEC", value_enum, default_value_t = CompressionArg::None)]
    pub compression: CompressionArg,

    /// The message key of each send: none, auto-increment (the send's index over the whole run)
    /// or random (a random 32-bit integer), in decimal.
    #[arg(long, value_name = "KIND", value_enum, default_value_t = KeyDistribution::None)]
    pub key_distribution: KeyDistribution,

    /// How many messages may await a receipt at once, per producer (per partition).
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = parse_max_pending)]
    pub max_pending: usize,

    /// Stop after this many sends over all producers, even before --duration (0: no limit).
    /// The sends of the warm-up count here, so that `msgs` + `warmup_msgs` of the JSON line is
    /// this count when every send succeeds.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub count: u64,

    #[command(flatten)]
    pub measure: MeasureArgs,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// Parses a rate: messages per second, zero meaning no limit.
fn parse_rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(r) if r.is_finite() && r >= 0.0 => Ok(r),
        _ => Err(format!("{s:?} is not a number of messages per second")),
    }
}

/// Parses the in-flight bound (and the batch limits): a count of at least 1.
fn parse_max_pending(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{s:?} is not a count of at least 1")),
    }
}

/// Parses the batch delay: milliseconds, zero or more.
fn parse_delay_ms(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(ms) if (0.0..3.6e6).contains(&ms) => Ok(ms),
        _ => Err(format!(
            "{s:?} is not a number of milliseconds below an hour"
        )),
    }
}

/// When message `sent` is due at `rate` messages per second after `start`.
fn due(start: Instant, sent: u64, rate: f64) -> Option<Instant> {
    Duration::try_from_secs_f64(sent as f64 / rate)
        .ok()
        .and_then(|d| start.checked_add(d))
}

/// One send awaiting its receipt: when the send call started, and the receipt.
type Pending = (Instant, SendReceipt);

/// Awaits the receipts of one producer in the order of its sends (the order they complete in,
/// for one producer on one partition), recording each in the meter.
async fn collect(mut rx: mpsc::UnboundedReceiver<Pending>, size: u64, meter: Arc<Meter>) {
    while let Some((t0, receipt)) = rx.recv().await {
        let result = receipt.await;
        let done = Instant::now();
        match result {
            Ok(_) => {
                meter.record(done, size, Some(micros(done.duration_since(t0))));
            }
            Err(e) => meter.error(|| e.to_string(), true),
        }
    }
}

/// Hands a queued send (started at `t0`) to the receipt collector. `Break` ends the sending:
/// with the error when the producer takes no more (closed, message too large), with `None`
/// when the collector is gone.
fn hand_over(
    tx: &mpsc::UnboundedSender<Pending>,
    t0: Instant,
    queued: Result<SendReceipt, Error>,
) -> ControlFlow<Option<Error>> {
    match queued {
        Ok(receipt) => match tx.send((t0, receipt)) {
            Ok(()) => ControlFlow::Continue(()),
            Err(_) => ControlFlow::Break(None),
        },
        Err(e) => ControlFlow::Break(Some(e)),
    }
}

/// A small xorshift generator for random keys (no need for a cryptographic one).
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn seeded(salt: u64) -> Rng {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Rng((nanos ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1)
    }

    fn next_i32(&mut self) -> i32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 32) as i32
    }
}

/// What to send: copies of `payload`, from `start` until `end` or `count` sends over all
/// producers (0: no limit), keyed by `keys`.
struct Plan {
    start: Instant,
    end: Instant,
    count: u64,
    payload: Bytes,
    keys: KeyDistribution,
    /// Sends claimed so far over all producers (the auto-increment key).
    claimed: AtomicU64,
    meter: Arc<Meter>,
}

impl Plan {
    /// Claims the next send at `now`: its index over the run, or `None` when the run is over.
    fn claim(&self, now: Instant) -> Option<u64> {
        if now >= self.end {
            return None;
        }
        let i = self.claimed.fetch_add(1, Ordering::Relaxed);
        (self.count == 0 || i < self.count).then_some(i)
    }

    /// The message of send `i`.
    fn message(&self, i: u64, rng: &mut Rng) -> ProducerMessage {
        let msg = ProducerMessage::new(self.payload.clone());
        match self.keys {
            KeyDistribution::None => msg,
            KeyDistribution::AutoIncrement => msg.partition_key(i.to_string()),
            KeyDistribution::Random => msg.partition_key(rng.next_i32().to_string()),
        }
    }

    /// Sends on one producer as fast as it takes them. Returns how many were sent, and the
    /// error that stopped the sending, if one did.
    async fn send_flat_out(
        &self,
        producer: &Producer,
        tx: mpsc::UnboundedSender<Pending>,
        salt: u64,
    ) -> (u64, Option<Error>) {
        let mut sent = 0u64;
        let mut rng = Rng::seeded(salt);
        loop {
            // Latency starts here, before any wait for a free in-flight slot in send_async.
            let t0 = Instant::now();
            let Some(i) = self.claim(t0) else {
                return (sent, None);
            };
            let queued = producer.send_async(self.message(i, &mut rng)).await;
            if let ControlFlow::Break(stopped) = hand_over(&tx, t0, queued) {
                return (sent, stopped);
            }
            self.meter.started();
            sent += 1;
        }
    }

    /// Sends message i at `i / rate` s after the start, on the calling (non-runtime) thread,
    /// to the producers in turn.
    fn send_paced(
        &self,
        runtime: &tokio::runtime::Handle,
        producers: &[(Producer, mpsc::UnboundedSender<Pending>)],
        rate: f64,
    ) -> (u64, Option<Error>) {
        let mut sent = 0u64;
        let mut rng = Rng::seeded(0);
        loop {
            let mut t0 = Instant::now();
            if let Some(due) = due(self.start, sent, rate) {
                if due >= self.end {
                    return (sent, None);
                }
                if due > t0 {
                    std::thread::sleep(due - t0);
                    t0 = Instant::now();
                }
            }
            let Some(i) = self.claim(t0) else {
                return (sent, None);
            };
            let slot = i
                .checked_rem(producers.len() as u64)
                .and_then(|slot| usize::try_from(slot).ok());
            let Some((producer, tx)) = slot.and_then(|slot| producers.get(slot)) else {
                return (sent, None);
            };
            let queued = runtime.block_on(producer.send_async(self.message(i, &mut rng)));
            if let ControlFlow::Break(stopped) = hand_over(tx, t0, queued) {
                return (sent, stopped);
            }
            self.meter.started();
            sent += 1;
        }
    }
}

/// Creates `per_topic` producers on each of `topics`, all at once on `client`; they come back
/// in topic order.
async fn create_producers(
    client: &PulsarClient,
    args: &ProduceArgs,
    topics: &[String],
) -> CliResult<Vec<Producer>> {
    let mut tasks = tokio::task::JoinSet::new();
    let delay = Duration::try_from_secs_f64(args.batch_delay_ms / 1000.0).unwrap_or_default();
    for (t, topic) in topics.iter().enumerate() {
        for p in 0..args.producers_per_topic {
            let builder = client
                .producer(topic.as_str())
                .batching(args.batching)
                .batching_max_messages(args.batch_max_messages)
                .batching_max_bytes(args.batch_max_bytes)
                .batching_max_publish_delay(delay)
                .compression(args.compression.into())
                .max_pending_messages(args.max_pending)
                .block_if_queue_full(true);
            let topic = topic.clone();
            let index = t * args.producers_per_topic as usize + p as usize;
            tasks.spawn(async move {
                let created = builder.create().await;
                (index, topic, created)
            });
        }
    }
    let mut producers: Vec<Option<Producer>> = Vec::new();
    producers.resize_with(tasks.len(), || None);
    let mut first_error: Option<CliError> = None;
    while let Some(done) = tasks.join_next().await {
        let (index, topic, created) =
            done.map_err(|e| CliError(format!("a producer creation task failed: {e}")))?;
        match created {
            Ok(p) => {
                if let Some(slot) = producers.get_mut(index) {
                    *slot = Some(p);
                }
            }
            Err(e) => {
                if first_error.is_none() {
                    first_error =
                        Some(context(format_args!("cannot create a producer on {topic}"))(e));
                }
            }
        }
    }
    let producers: Vec<Producer> = producers.into_iter().flatten().collect();
    match first_error {
        Some(e) => {
            close_all(&producers).await;
            Err(e)
        }
        None => Ok(producers),
    }
}

/// Closes every producer, concurrently.
async fn close_all(producers: &[Producer]) {
    let mut tasks = tokio::task::JoinSet::new();
    for p in producers {
        let p = p.clone();
        tasks.spawn(async move {
            if let Err(e) = p.close().await {
                tracing::warn!("closing a producer failed: {e}");
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// Flushes every producer, concurrently: the open batches go at once instead of after their
/// delay; the receipts tell the rest.
async fn flush_all(producers: &[Producer]) {
    let mut tasks = tokio::task::JoinSet::new();
    for p in producers {
        let p = p.clone();
        tasks.spawn(async move {
            if let Err(e) = p.flush().await {
                tracing::debug!("flush failed: {e}");
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// Runs `perf produce`.
pub async fn run(args: ProduceArgs) -> CliResult<()> {
    let topics = topic_names(&args.topic, args.topics);
    let client = args.connect.client()?;
    let human = !args.output.json;
    let setup = Instant::now();
    if args.partitions > 0 {
        let admin_url = match &args.admin_url {
            Some(url) => url.clone(),
            None => admin::default_admin_url(&args.connect.url)?,
        };
        admin::create_partitioned(&args.connect, &admin_url, &topics, args.partitions).await?;
    }
    let producers = create_producers(&client, &args, &topics).await?;
    if human {
        let _ = writeln!(
            std::io::stderr().lock(),
            "perf produce: {} on {} created in {:.3} s",
            stats::counted(producers.len() as u64, "producer"),
            stats::counted(topics.len() as u64, "topic"),
            setup.elapsed().as_secs_f64()
        );
    }

    let rate = (args.rate > 0.0).then_some(args.rate);
    let start = Instant::now();
    let start_wall = SystemTime::now();
    let end = start + args.duration;
    let meter = Meter::new(start + args.measure.warmup_secs)?;
    let printer = (!args.output.no_progress).then(|| {
        tokio::spawn(stats::print_stats(
            meter.clone(),
            "produce",
            start,
            args.measure.stats_interval,
            true,
        ))
    });
    let size = args.size as u64;
    let mut collectors = Vec::with_capacity(producers.len());
    let mut lanes = Vec::with_capacity(producers.len());
    for p in &producers {
        let (tx, rx) = mpsc::unbounded_channel::<Pending>();
        collectors.push(tokio::spawn(collect(rx, size, meter.clone())));
        lanes.push((p.clone(), tx));
    }
    let plan = Arc::new(Plan {
        start,
        end,
        count: args.count,
        payload: Bytes::from(vec![b'x'; args.size]),
        keys: args.key_distribution,
        claimed: AtomicU64::new(0),
        meter: meter.clone(),
    });
    let results: Vec<(u64, Option<Error>)> = match rate {
        None => {
            let mut senders = Vec::with_capacity(lanes.len());
            for (salt, (producer, tx)) in lanes.into_iter().enumerate() {
                let plan = plan.clone();
                senders.push(tokio::spawn(async move {
                    plan.send_flat_out(&producer, tx, salt as u64).await
                }));
            }
            let mut results = Vec::with_capacity(senders.len());
            for s in senders {
                results.push(
                    s.await
                        .map_err(|e| CliError(format!("a sending task failed: {e}")))?,
                );
            }
            results
        }
        Some(rate) => {
            // A thread of its own, sleeping with the OS's nanosecond timer: tokio's timers are
            // millisecond-grained, and would send each millisecond's messages in one burst
            // (the official C++ client's peer paces with clock_nanosleep too).
            let runtime = tokio::runtime::Handle::current();
            let plan = plan.clone();
            vec![
                tokio::task::spawn_blocking(move || plan.send_paced(&runtime, &lanes, rate))
                    .await
                    .map_err(|e| CliError(format!("the sending thread failed: {e}")))?,
            ]
        }
    };
    flush_all(&producers).await;
    for c in collectors {
        c.await
            .map_err(|e| CliError(format!("a receipt task failed: {e}")))?;
    }
    if let Some(p) = printer {
        p.abort();
    }
    let sent: u64 = results.iter().map(|(n, _)| n).sum();
    let stopped: Vec<Error> = results.into_iter().filter_map(|(_, e)| e).collect();
    let totals = meter.finish();
    let secs = totals.secs(meter.measure_from());
    let errors = totals.errors + stopped.len() as u64;
    let summary = Summary {
        op: "produce",
        msgs: totals.msgs,
        bytes: totals.bytes,
        secs,
        latency: &totals.latency,
        extra: vec![
            ("errors", Extra::Number(errors)),
            ("size", Extra::Number(size)),
            ("batching", Extra::Bool(args.batching)),
            ("topics", Extra::Number(topics.len() as u64)),
            ("producers", Extra::Number(producers.len() as u64)),
            ("warmup_msgs", Extra::Number(totals.warmup_msgs)),
        ],
    };
    let written = match &args.measure.histogram_file {
        Some(path) => write_file(path, &totals, start_wall, &args, secs),
        None => Ok(()),
    };
    if human {
        let _ = writeln!(
            std::io::stderr().lock(),
            "{}",
            stats::aggregated(totals.msgs, totals.bytes, secs, &totals.latency)
        );
    }
    let printed = summary.print(args.output.json);
    close_all(&producers).await;
    let _ = client.close().await;
    printed?;
    written?;
    let failed = totals.errors;
    match (stopped.into_iter().next(), totals.first_error) {
        (None, None) => Ok(()),
        (Some(e), None) => Err(CliError(format!(
            "sending stopped after {sent} messages: {e}"
        ))),
        (stopped, Some(e)) => {
            let mut text = format!("{failed} of {sent} sends failed (first: {e})");
            if let Some(s) = stopped {
                text.push_str(&format!("; sending stopped: {s}"));
            }
            Err(CliError(text))
        }
    }
}

/// Writes the --histogram-file: the measured part starts after the warm-up.
fn write_file(
    path: &std::path::Path,
    totals: &stats::Totals,
    start_wall: SystemTime,
    args: &ProduceArgs,
    secs: f64,
) -> CliResult<()> {
    stats::write_histogram_file(
        path,
        &totals.latency,
        start_wall + args.measure.warmup_secs,
        secs,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_bounds_parse() {
        assert_eq!(parse_rate("0"), Ok(0.0));
        assert_eq!(parse_rate("2.5"), Ok(2.5));
        assert!(parse_rate("-1").is_err());
        assert!(parse_rate("inf").is_err());
        assert_eq!(parse_max_pending("1"), Ok(1));
        assert!(parse_max_pending("0").is_err());
        assert!(parse_max_pending("x").is_err());
    }

    #[test]
    fn delays_and_keys() {
        assert_eq!(parse_delay_ms("0.5"), Ok(0.5));
        assert!(parse_delay_ms("-1").is_err());
        let mut rng = Rng::seeded(1);
        let keys: std::collections::HashSet<i32> = (0..100).map(|_| rng.next_i32()).collect();
        assert!(keys.len() > 90, "{keys:?}");
    }

    #[test]
    fn the_schedule_spaces_sends_by_the_rate() {
        let start = Instant::now();
        assert_eq!(due(start, 0, 10.0), Some(start));
        assert_eq!(
            due(start, 5, 10.0),
            Some(start + Duration::from_millis(500))
        );
    }
}
