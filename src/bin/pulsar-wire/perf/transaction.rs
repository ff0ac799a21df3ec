//! `pulsar-wire perf transaction`: consume-transform-produce in transactions, as pulsar-perf's
//! `transaction` subcommand. Each of `--concurrency` workers (its own consumer on the Shared
//! input subscription and its own producer on the output topic) repeats: open a transaction,
//! receive `--messages-per-txn-consume` messages and acknowledge them in it, send
//! `--messages-per-txn-produce` messages in it and await their receipts, then commit (or
//! `--abort`). The latency of a transaction runs from the call that opens it to the end of its
//! commit; the time of the open, the acknowledgements, the sends and the commit are reported
//! apart too.

use std::future::Future;
use std::io::Write as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use hdrhistogram::Histogram;
use pulsar_wire::{
    Consumer, Error, InitialPosition, Producer, ProducerMessage, PulsarClient, SubscriptionType,
    Transaction,
};

use super::{grouped, micros, ms, new_histogram, OutputArgs, CLIENT, PROGRESS_EVERY};
use crate::common::{context, parse_positive_secs, secs, CliError, CliResult, ConnectArgs};

/// `pulsar-wire perf transaction`.
#[derive(Args, Debug)]
pub struct TransactionArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,

    /// The input topic: its messages are received and acknowledged in the transactions.
    #[arg(long, visible_alias = "topics-c", value_name = "TOPIC")]
    pub consume_topic: String,

    /// The output topic: the transactions' messages are sent there.
    #[arg(long, visible_alias = "topics-p", value_name = "TOPIC")]
    pub produce_topic: String,

    /// The subscription on the input topic (Shared; a new one starts at the earliest message).
    #[arg(long, short = 's', value_name = "NAME", default_value = "perf-txn")]
    pub subscription: String,

    /// Messages received and acknowledged per transaction.
    #[arg(long, visible_alias = "nmc", value_name = "N", default_value_t = 1)]
    pub messages_per_txn_consume: u32,

    /// Messages sent per transaction.
    #[arg(long, visible_alias = "nmp", value_name = "N", default_value_t = 1)]
    pub messages_per_txn_produce: u32,

    /// The transactions' timeout, in seconds.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_positive_secs)]
    pub txn_timeout: Duration,

    /// Abort every transaction instead of committing it (the acknowledged messages come back).
    #[arg(long)]
    pub abort: bool,

    /// Stop after this many transactions (0: run for --duration).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub transactions: u64,

    /// Stop after this many seconds (with --transactions too: whichever comes first).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_positive_secs)]
    pub duration: Duration,

    /// Transactions in progress at once: workers, each with its own consumer and producer.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub concurrency: u16,

    /// First send this many messages to the input topic (unbatched, outside transactions, not
    /// measured), so that receiving never waits for input.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub prefill: u64,

    /// Payload size in bytes of the messages sent (and of the prefill).
    #[arg(long, value_name = "BYTES", default_value_t = 1024)]
    pub size: usize,

    /// How many messages the broker may push ahead to each consumer.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub receiver_queue: u32,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// Latencies and counts of one worker (then of all, merged).
#[derive(Debug)]
struct Stats {
    txns: u64,
    errors: u64,
    consumed: u64,
    produced: u64,
    /// The input ran dry before the end.
    starved: bool,
    first_error: Option<String>,
    first_start: Option<Instant>,
    last_done: Option<Instant>,
    /// Open to end done.
    total: Histogram<u64>,
    /// new_transaction().build().
    open: Histogram<u64>,
    /// The acknowledgements, all in flight at once.
    ack: Histogram<u64>,
    /// The sends, to their last receipt.
    send: Histogram<u64>,
    /// commit() or abort().
    end: Histogram<u64>,
}

impl Stats {
    fn new() -> CliResult<Self> {
        Ok(Stats {
            txns: 0,
            errors: 0,
            consumed: 0,
            produced: 0,
            starved: false,
            first_error: None,
            first_start: None,
            last_done: None,
            total: new_histogram()?,
            open: new_histogram()?,
            ack: new_histogram()?,
            send: new_histogram()?,
            end: new_histogram()?,
        })
    }

    fn fail(&mut self, what: impl std::fmt::Display) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(what.to_string());
        }
    }

    fn merge(&mut self, other: Stats) {
        self.txns += other.txns;
        self.errors += other.errors;
        self.consumed += other.consumed;
        self.produced += other.produced;
        self.starved |= other.starved;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.first_start = match (self.first_start, other.first_start) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_done = self.last_done.max(other.last_done);
        // Same bounds everywhere: adding cannot fail.
        let _ = self.total.add(&other.total);
        let _ = self.open.add(&other.open);
        let _ = self.ack.add(&other.ack);
        let _ = self.send.add(&other.send);
        let _ = self.end.add(&other.end);
    }

    fn secs(&self) -> f64 {
        match (self.first_start, self.last_done) {
            (Some(a), Some(b)) => b.duration_since(a).as_secs_f64(),
            _ => 0.0,
        }
    }

    fn txns_per_sec(&self) -> f64 {
        let secs = self.secs();
        if secs > 0.0 {
            self.txns as f64 / secs
        } else {
            0.0
        }
    }
}

/// `(p50, p99, p99.9, max)` of `h` in µs; zeros when empty.
fn percentiles(h: &Histogram<u64>) -> (u64, u64, u64, u64) {
    if h.is_empty() {
        return (0, 0, 0, 0);
    }
    (
        h.value_at_quantile(0.50),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max(),
    )
}

/// What the workers share: the stop conditions and the progress line's interval.
#[derive(Debug)]
struct Shared {
    started: AtomicU64,
    limit: u64,
    end: Instant,
    interval: Mutex<(u64, Histogram<u64>)>,
}

impl Shared {
    /// Whether another transaction may start.
    fn may_start(&self) -> bool {
        Instant::now() < self.end
            && (self.limit == 0 || self.started.fetch_add(1, Ordering::Relaxed) < self.limit)
    }

    fn record(&self, us: u64) {
        let mut interval = self.interval.lock().unwrap_or_else(|p| p.into_inner());
        interval.0 += 1;
        interval.1.saturating_record(us);
    }
}

/// Awaits every future, all polled together (the acknowledgements of one transaction).
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in futures.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(v) => *slot = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

/// One worker: its own consumer and producer, one transaction after another.
struct Worker {
    client: PulsarClient,
    consumer: Consumer,
    producer: Producer,
    payload: Bytes,
    nmc: u32,
    nmp: u32,
    txn_timeout: Duration,
    abort: bool,
    shared: Arc<Shared>,
}

/// How one transaction went.
enum Outcome {
    Done,
    /// It failed (and was aborted); the worker goes on.
    Failed(String),
    /// The input ran dry until the end of the run: the worker stops.
    Starved,
}

impl Worker {
    async fn run(mut self) -> CliResult<Stats> {
        let mut stats = Stats::new()?;
        while self.shared.may_start() {
            let t0 = Instant::now();
            stats.first_start.get_or_insert(t0);
            let txn = match self
                .client
                .new_transaction()
                .timeout(self.txn_timeout)
                .build()
                .await
            {
                Ok(txn) => txn,
                Err(e @ (Error::TransactionsUnavailable(_) | Error::Closed(_))) => {
                    return Err(CliError(format!("cannot open a transaction: {e}")))
                }
                Err(e) => {
                    stats.fail(format_args!("opening a transaction failed: {e}"));
                    continue;
                }
            };
            stats.open.saturating_record(micros(t0.elapsed()));
            match self.work(&txn, &mut stats).await {
                Outcome::Done => {}
                Outcome::Failed(what) => {
                    let _ = txn.abort().await;
                    stats.fail(format_args!("transaction {}: {what}", txn.id()));
                    continue;
                }
                Outcome::Starved => {
                    let _ = txn.abort().await;
                    stats.starved = true;
                    break;
                }
            }
            let t_end = Instant::now();
            let ended = if self.abort {
                txn.abort().await
            } else {
                txn.commit().await
            };
            let done = Instant::now();
            if let Err(e) = ended {
                let what = if self.abort { "abort" } else { "commit" };
                stats.fail(format_args!(
                    "{what} of transaction {} failed: {e}",
                    txn.id()
                ));
                continue;
            }
            stats
                .end
                .saturating_record(micros(done.duration_since(t_end)));
            let us = micros(done.duration_since(t0));
            stats.total.saturating_record(us);
            stats.txns += 1;
            stats.last_done = Some(done);
            self.shared.record(us);
        }
        Ok(stats)
    }

    /// Receives and acknowledges, sends and awaits the receipts, in `txn`.
    async fn work(&mut self, txn: &Transaction, stats: &mut Stats) -> Outcome {
        let mut msgs = Vec::with_capacity(self.nmc as usize);
        for _ in 0..self.nmc {
            let received =
                tokio::time::timeout_at(self.shared.end.into(), self.consumer.receive()).await;
            match received {
                Ok(Ok(m)) => msgs.push(m),
                Ok(Err(e)) => return Outcome::Failed(format!("receiving failed: {e}")),
                Err(_) => return Outcome::Starved,
            }
        }
        if !msgs.is_empty() {
            let t = Instant::now();
            let consumer = &self.consumer;
            let acks = join_all(
                msgs.iter()
                    .map(|m| consumer.ack_with_transaction(m, txn))
                    .collect(),
            )
            .await;
            if let Some(Err(e)) = acks.into_iter().find(Result::is_err) {
                return Outcome::Failed(format!("acknowledging failed: {e}"));
            }
            stats.ack.saturating_record(micros(t.elapsed()));
            stats.consumed += msgs.len() as u64;
        }
        if self.nmp > 0 {
            let t = Instant::now();
            let mut receipts = Vec::with_capacity(self.nmp as usize);
            for _ in 0..self.nmp {
                let msg = ProducerMessage::new(self.payload.clone()).transaction(txn);
                match self.producer.send_async(msg).await {
                    Ok(r) => receipts.push(r),
                    Err(e) => return Outcome::Failed(format!("sending failed: {e}")),
                }
            }
            // The last batch goes out now rather than at its publish delay.
            if let Err(e) = self.producer.flush().await {
                return Outcome::Failed(format!("sending failed: {e}"));
            }
            for r in receipts {
                if let Err(e) = r.await {
                    return Outcome::Failed(format!("sending failed: {e}"));
                }
            }
            stats.send.saturating_record(micros(t.elapsed()));
            stats.produced += u64::from(self.nmp);
        }
        Outcome::Done
    }
}

/// Sends `n` messages of `payload` to `topic` and awaits their receipts. Unbatched: with
/// `--abort` and more than one worker, the broker redelivers an aborted acknowledgement's whole
/// entry to any consumer, and the other messages of a batch would then be held by two
/// consumers, whose transactions conflict.
async fn prefill(client: &PulsarClient, topic: &str, n: u64, payload: &Bytes) -> CliResult<()> {
    let producer = client
        .producer(topic)
        .batching(false)
        .block_if_queue_full(true)
        .create()
        .await
        .map_err(context(format_args!("cannot create a producer on {topic}")))?;
    let mut receipts = std::collections::VecDeque::new();
    for _ in 0..n {
        let r = producer
            .send_async(payload.clone())
            .await
            .map_err(context("prefill: sending failed"))?;
        receipts.push_back(r);
        // Keep the receipts awaited as they come (bounded memory).
        while receipts.len() > 10_000 {
            if let Some(r) = receipts.pop_front() {
                r.await.map_err(context("prefill: sending failed"))?;
            }
        }
    }
    for r in receipts {
        r.await.map_err(context("prefill: sending failed"))?;
    }
    let _ = producer.close().await;
    Ok(())
}

/// Runs `perf transaction`.
pub async fn run(args: TransactionArgs) -> CliResult<()> {
    let client = args.connect.client()?;
    let payload = Bytes::from(
        (0..args.size)
            .map(|j| b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"[j % 26])
            .collect::<Vec<u8>>(),
    );
    // Consumers first: a new subscription then exists before the prefill (it starts at the
    // earliest message either way).
    let mut workers = Vec::with_capacity(usize::from(args.concurrency));
    let mut consumers = Vec::new();
    for _ in 0..args.concurrency {
        consumers.push(
            client
                .consumer(args.consume_topic.as_str())
                .subscription(args.subscription.as_str())
                .subscription_type(SubscriptionType::Shared)
                .initial_position(InitialPosition::Earliest)
                .receiver_queue_size(args.receiver_queue)
                .subscribe()
                .await
                .map_err(context(format_args!(
                    "cannot subscribe to {} as {}",
                    args.consume_topic, args.subscription
                )))?,
        );
    }
    if args.prefill > 0 {
        let t = Instant::now();
        prefill(&client, &args.consume_topic, args.prefill, &payload).await?;
        if !args.output.no_progress {
            let _ = writeln!(
                std::io::stderr().lock(),
                "prefilled {} with {} messages in {:.3} s",
                args.consume_topic,
                grouped(args.prefill),
                t.elapsed().as_secs_f64()
            );
        }
    }
    // The first transaction of a client finds the coordinators: done here, not measured.
    client
        .new_transaction()
        .timeout(args.txn_timeout)
        .build()
        .await
        .map_err(context("cannot open a transaction"))?
        .abort()
        .await
        .map_err(context("cannot abort a transaction"))?;
    let start = Instant::now();
    let shared = Arc::new(Shared {
        started: AtomicU64::new(0),
        limit: args.transactions,
        end: start + args.duration,
        interval: Mutex::new((0, new_histogram()?)),
    });
    for consumer in consumers {
        let producer = client
            .producer(args.produce_topic.as_str())
            .block_if_queue_full(true)
            .create()
            .await
            .map_err(context(format_args!(
                "cannot create a producer on {}",
                args.produce_topic
            )))?;
        workers.push(Worker {
            client: client.clone(),
            consumer,
            producer,
            payload: payload.clone(),
            nmc: args.messages_per_txn_consume,
            nmp: args.messages_per_txn_produce,
            txn_timeout: args.txn_timeout,
            abort: args.abort,
            shared: shared.clone(),
        });
    }
    let progress = (!args.output.no_progress).then(|| tokio::spawn(progress(shared.clone())));
    let handles: Vec<_> = workers.into_iter().map(|w| tokio::spawn(w.run())).collect();
    let mut stats = Stats::new()?;
    let mut fatal = None;
    for h in handles {
        match h.await {
            Ok(Ok(s)) => stats.merge(s),
            Ok(Err(e)) => {
                fatal.get_or_insert(e);
            }
            Err(e) => {
                fatal.get_or_insert(CliError(format!("a worker failed: {e}")));
            }
        }
    }
    if let Some(p) = progress {
        p.abort();
    }
    if let Some(e) = fatal {
        let _ = client.close().await;
        return Err(e);
    }
    let printed = print(&args, &stats);
    let _ = client.close().await;
    printed?;
    if stats.starved {
        let _ = writeln!(
            std::io::stderr().lock(),
            "warning: the input topic ran dry after {} transactions (use --prefill)",
            grouped(stats.txns)
        );
    }
    if args.transactions > 0 && stats.txns + stats.errors < args.transactions {
        let _ = writeln!(
            std::io::stderr().lock(),
            "warning: {} of {} transactions within {}",
            grouped(stats.txns),
            grouped(args.transactions),
            secs(args.duration)
        );
    }
    match stats.first_error {
        Some(first) => Err(CliError(format!(
            "{} transactions failed (first: {first})",
            stats.errors
        ))),
        None => Ok(()),
    }
}

/// The progress line every second: that second's transactions per second, p50 and p99.
async fn progress(shared: Arc<Shared>) {
    let started = Instant::now();
    let mut ticker = tokio::time::interval_at((started + PROGRESS_EVERY).into(), PROGRESS_EVERY);
    let mut total = 0u64;
    let mut last = started;
    loop {
        ticker.tick().await;
        let now = Instant::now();
        let (n, p50, p99) = {
            let mut interval = shared.interval.lock().unwrap_or_else(|p| p.into_inner());
            let (n, h) = &mut *interval;
            let out = if h.is_empty() {
                (*n, "-".to_string(), "-".to_string())
            } else {
                (
                    *n,
                    ms(h.value_at_quantile(0.5)),
                    ms(h.value_at_quantile(0.99)),
                )
            };
            *n = 0;
            h.reset();
            out
        };
        total += n;
        let secs = now.duration_since(last).as_secs_f64();
        last = now;
        let rate = if secs > 0.0 { n as f64 / secs } else { 0.0 };
        let _ = writeln!(
            std::io::stderr().lock(),
            "perf transaction {:>4} s: {:>9} txns/s  p50 {p50}  p99 {p99}  ({} in all)",
            now.duration_since(started).as_secs(),
            grouped(rate.round() as u64),
            grouped(total),
        );
    }
}

/// The JSON line (no newline).
fn json(args: &TransactionArgs, s: &Stats) -> String {
    let (p50, p99, p999, max) = percentiles(&s.total);
    let mut out = format!(
        "{{\"client\":\"{CLIENT}\",\"op\":\"transaction\",\"txns\":{},\"secs\":{:.3},\
         \"txns_per_sec\":{:.1},\"p50_us\":{p50},\"p99_us\":{p99},\"p999_us\":{p999},\
         \"max_us\":{max}",
        s.txns,
        s.secs(),
        s.txns_per_sec()
    );
    for (name, h) in [
        ("open", &s.open),
        ("ack", &s.ack),
        ("send", &s.send),
        ("end", &s.end),
    ] {
        let (p50, p99, _, max) = percentiles(h);
        out.push_str(&format!(
            ",\"{name}_p50_us\":{p50},\"{name}_p99_us\":{p99},\"{name}_max_us\":{max}"
        ));
    }
    out.push_str(&format!(
        ",\"consumed\":{},\"produced\":{},\"errors\":{},\"messages_per_txn_consume\":{},\
         \"messages_per_txn_produce\":{},\"concurrency\":{},\"abort\":{}}}",
        s.consumed,
        s.produced,
        s.errors,
        args.messages_per_txn_consume,
        args.messages_per_txn_produce,
        args.concurrency,
        args.abort
    ));
    out
}

/// The human summary (no final newline).
fn human(args: &TransactionArgs, s: &Stats) -> String {
    let (p50, p99, p999, max) = percentiles(&s.total);
    let mut out = format!(
        "transaction: {} txns ({} consumed + {} produced each, {}) in {:.3} s: {} txns/s, \
         errors {}, concurrency {}\n\
         latency (open to {} done): p50 {}, p99 {}, p99.9 {}, max {}\n",
        grouped(s.txns),
        args.messages_per_txn_consume,
        args.messages_per_txn_produce,
        if args.abort { "aborted" } else { "committed" },
        s.secs(),
        grouped(s.txns_per_sec().round() as u64),
        grouped(s.errors),
        args.concurrency,
        if args.abort { "abort" } else { "commit" },
        ms(p50),
        ms(p99),
        ms(p999),
        ms(max),
    );
    let parts: Vec<String> = [
        ("open", &s.open),
        ("acks", &s.ack),
        ("sends", &s.send),
        (if args.abort { "abort" } else { "commit" }, &s.end),
    ]
    .into_iter()
    .filter(|(_, h)| !h.is_empty())
    .map(|(name, h)| {
        let (p50, p99, _, _) = percentiles(h);
        format!("{name} p50 {} p99 {}", ms(p50), ms(p99))
    })
    .collect();
    out.push_str(&format!("  of which: {}", parts.join("; ")));
    out
}

fn print(args: &TransactionArgs, s: &Stats) -> CliResult<()> {
    if !args.output.json {
        let _ = writeln!(std::io::stderr().lock(), "{}", human(args, s));
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", json(args, s))
        .and_then(|()| out.flush())
        .map_err(|e| CliError(format!("cannot write to stdout: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_all_keeps_the_order() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let out = rt.block_on(join_all(
            (0..5u64)
                .map(|i| async move {
                    tokio::time::sleep(Duration::from_millis(5 - i)).await;
                    i
                })
                .collect(),
        ));
        assert_eq!(out, [0, 1, 2, 3, 4]);
    }

    #[test]
    fn stats_merge_and_rate() {
        let mut a = Stats::new().unwrap();
        let mut b = Stats::new().unwrap();
        let t = Instant::now();
        a.first_start = Some(t);
        a.last_done = Some(t + Duration::from_secs(1));
        a.txns = 10;
        b.first_start = Some(t + Duration::from_millis(10));
        b.last_done = Some(t + Duration::from_secs(2));
        b.txns = 30;
        b.fail("boom");
        b.total.record(1000).unwrap();
        a.merge(b);
        assert_eq!(a.txns, 40);
        assert_eq!(a.errors, 1);
        assert_eq!(a.first_error.as_deref(), Some("boom"));
        assert!((a.txns_per_sec() - 20.0).abs() < 1e-9);
        assert_eq!(percentiles(&a.total).0, 1000);
    }
}
