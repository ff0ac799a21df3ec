//! `pulsar-wire perf produce`: sends for `--duration` with up to `--max-pending` messages
//! awaiting a receipt; latency runs from just before the send call (including any wait for a
//! free slot) to the receipt.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args};
use hdrhistogram::Histogram;
use pulsar_wire::{Error, Producer, ProducerMessage, SendReceipt};
use tokio::sync::mpsc;

use super::{micros, new_histogram, Extra, OutputArgs, Progress, Summary};
use crate::common::{context, parse_positive_secs, CliError, CliResult, ConnectArgs};

/// Batch limits of the C++ and Java clients (the library's defaults too): 1000 messages,
/// 128 KiB, 10 ms. Set explicitly so that every benchmark peer batches alike.
const BATCH_MAX_MESSAGES: usize = 1000;
const BATCH_MAX_BYTES: usize = 128 * 1024;
const BATCH_MAX_DELAY: Duration = Duration::from_millis(10);

/// `pulsar-wire perf produce`.
#[derive(Args, Debug)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,

    /// The topic, e.g. persistent://public/default/perf (or just perf).
    #[arg(long, value_name = "TOPIC")]
    pub topic: String,

    /// Payload size in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 1024)]
    pub size: usize,

    /// How long to send, in seconds; then the remaining receipts are awaited.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_positive_secs)]
    pub duration: Duration,

    /// Messages per second (0: as fast as the in-flight bound allows).
    #[arg(long, value_name = "MSGS_PER_SEC", default_value_t = 0.0, value_parser = parse_rate)]
    pub rate: f64,

    /// Batch messages (1000 messages, 128 KiB, 10 ms at most per batch).
    #[arg(long, value_name = "true|false", default_value_t = true, action = ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub batching: bool,

    /// How many messages may await a receipt at once (per partition).
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = parse_max_pending)]
    pub max_pending: usize,

    /// Stop after this many sends, even before --duration (0: no limit).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub count: u64,

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

/// Parses the in-flight bound: a count of at least 1.
fn parse_max_pending(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{s:?} is not a count of at least 1")),
    }
}

/// When message `sent` is due at `rate` messages per second after `start`.
fn due(start: Instant, sent: u64, rate: f64) -> Option<Instant> {
    Duration::try_from_secs_f64(sent as f64 / rate)
        .ok()
        .and_then(|d| start.checked_add(d))
}

/// What the receipts said.
#[derive(Debug)]
struct Tally {
    ok: u64,
    failed: u64,
    first_error: Option<Error>,
    latency: Histogram<u64>,
    last_done: Option<Instant>,
}

/// One send awaiting its receipt: when the send call started, and the receipt.
type Pending = (Instant, SendReceipt);

/// Awaits the receipts in the order of the sends (the order they complete in, for one
/// producer on one partition), recording each latency and printing the progress line.
async fn collect(
    mut rx: mpsc::UnboundedReceiver<Pending>,
    size: u64,
    latency: Histogram<u64>,
    mut progress: Progress,
) -> Tally {
    let mut tally = Tally {
        ok: 0,
        failed: 0,
        first_error: None,
        latency,
        last_done: None,
    };
    // One timer for the progress line, reset only when it fires: waiting on a receipt costs no
    // timer registration.
    let timer = tokio::time::sleep_until(progress.next_at().into());
    tokio::pin!(timer);
    let printing = progress.enabled();
    loop {
        // Wait for the next send, printing progress while none comes.
        let (t0, mut receipt) = loop {
            tokio::select! {
                biased;
                next = rx.recv() => match next {
                    Some(p) => break p,
                    None => return tally,
                },
                () = &mut timer, if printing => {
                    progress.tick(Instant::now());
                    timer.as_mut().reset(progress.next_at().into());
                }
            }
        };
        let result = loop {
            tokio::select! {
                biased;
                r = &mut receipt => break r,
                () = &mut timer, if printing => {
                    progress.tick(Instant::now());
                    timer.as_mut().reset(progress.next_at().into());
                }
            }
        };
        let done = Instant::now();
        match result {
            Ok(_) => {
                let us = micros(done.duration_since(t0));
                tally.ok += 1;
                tally.latency.saturating_record(us);
                tally.last_done = Some(done);
                progress.record(size, Some(us));
            }
            Err(e) => {
                tally.failed += 1;
                tally.first_error.get_or_insert(e);
            }
        }
        progress.tick(done);
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

/// What to send: copies of `payload`, from `start` until `end` or `count` sends (0: no limit).
struct Plan {
    start: Instant,
    end: Instant,
    count: u64,
    payload: Bytes,
}

impl Plan {
    fn done(&self, now: Instant, sent: u64) -> bool {
        now >= self.end || (self.count > 0 && sent >= self.count)
    }

    /// Sends as fast as the producer takes them. Returns how many were sent, and the error
    /// that stopped the sending, if one did.
    async fn send_flat_out(
        &self,
        producer: &Producer,
        tx: mpsc::UnboundedSender<Pending>,
    ) -> (u64, Option<Error>) {
        let mut sent = 0u64;
        loop {
            // Latency starts here, before any wait for a free in-flight slot in send_async.
            let t0 = Instant::now();
            if self.done(t0, sent) {
                return (sent, None);
            }
            let queued = producer
                .send_async(ProducerMessage::new(self.payload.clone()))
                .await;
            if let ControlFlow::Break(stopped) = hand_over(&tx, t0, queued) {
                return (sent, stopped);
            }
            sent += 1;
        }
    }

    /// Sends message i at `i / rate` s after the start, on the calling (non-runtime) thread.
    fn send_paced(
        &self,
        runtime: &tokio::runtime::Handle,
        producer: &Producer,
        tx: mpsc::UnboundedSender<Pending>,
        rate: f64,
    ) -> (u64, Option<Error>) {
        let mut sent = 0u64;
        loop {
            let mut t0 = Instant::now();
            if self.done(t0, sent) {
                return (sent, None);
            }
            if let Some(due) = due(self.start, sent, rate) {
                if due >= self.end {
                    return (sent, None);
                }
                if due > t0 {
                    std::thread::sleep(due - t0);
                    t0 = Instant::now();
                }
            }
            let queued =
                runtime.block_on(producer.send_async(ProducerMessage::new(self.payload.clone())));
            if let ControlFlow::Break(stopped) = hand_over(&tx, t0, queued) {
                return (sent, stopped);
            }
            sent += 1;
        }
    }
}

/// Runs `perf produce`.
pub async fn run(args: ProduceArgs) -> CliResult<()> {
    let latency = new_histogram()?;
    let client = args.connect.client()?;
    let producer = client
        .producer(args.topic.as_str())
        .batching(args.batching)
        .batching_max_messages(BATCH_MAX_MESSAGES)
        .batching_max_bytes(BATCH_MAX_BYTES)
        .batching_max_publish_delay(BATCH_MAX_DELAY)
        .max_pending_messages(args.max_pending)
        .block_if_queue_full(true)
        .create()
        .await
        .map_err(context(format_args!(
            "cannot create a producer on {}",
            args.topic
        )))?;

    let rate = (args.rate > 0.0).then_some(args.rate);
    let (tx, rx) = mpsc::unbounded_channel::<Pending>();
    let start = Instant::now();
    let end = start + args.duration;
    let progress = Progress::new("produce", start, !args.output.no_progress)?;
    let collector = tokio::spawn(collect(rx, args.size as u64, latency, progress));

    let plan = Plan {
        start,
        end,
        count: args.count,
        payload: Bytes::from(vec![b'x'; args.size]),
    };
    let (sent, stopped) = match rate {
        None => plan.send_flat_out(&producer, tx).await,
        Some(rate) => {
            // A thread of its own, sleeping with the OS's nanosecond timer: tokio's timers are
            // millisecond-grained, and would send each millisecond's messages in one burst
            // (the official C++ client's peer paces with clock_nanosleep too).
            let producer = producer.clone();
            let runtime = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || plan.send_paced(&runtime, &producer, tx, rate))
                .await
                .map_err(|e| CliError(format!("the sending thread failed: {e}")))?
        }
    };
    // Sends the open batch at once instead of after its delay; the receipts tell the rest.
    if let Err(e) = producer.flush().await {
        tracing::debug!("flush failed: {e}");
    }
    let tally = collector
        .await
        .map_err(|e| CliError(format!("the receipt task failed: {e}")))?;
    let secs = tally
        .last_done
        .unwrap_or_else(Instant::now)
        .duration_since(start)
        .as_secs_f64();
    let errors = tally.failed + u64::from(stopped.is_some());
    let summary = Summary {
        op: "produce",
        msgs: tally.ok,
        bytes: tally.ok * args.size as u64,
        secs,
        latency: &tally.latency,
        extra: vec![
            ("errors", Extra::Number(errors)),
            ("size", Extra::Number(args.size as u64)),
            ("batching", Extra::Bool(args.batching)),
        ],
    };
    let printed = summary.print(args.output.json);
    if let Err(e) = producer.close().await {
        tracing::warn!("closing the producer failed: {e}");
    }
    let _ = client.close().await;
    printed?;
    match (stopped, tally.first_error) {
        (None, None) => Ok(()),
        (Some(e), None) => Err(CliError(format!(
            "sending stopped after {sent} messages: {e}"
        ))),
        (stopped, Some(e)) => {
            let mut text = format!("{} of {sent} sends failed (first: {e})", tally.failed);
            if let Some(s) = stopped {
                text.push_str(&format!("; sending stopped: {s}"));
            }
            Err(CliError(text))
        }
    }
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
    fn the_schedule_spaces_sends_by_the_rate() {
        let start = Instant::now();
        assert_eq!(due(start, 0, 10.0), Some(start));
        assert_eq!(
            due(start, 5, 10.0),
            Some(start + Duration::from_millis(500))
        );
    }
}
