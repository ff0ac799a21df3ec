//! `pulsar-wire perf consume`: subscribes Shared from the earliest message, acknowledges every
//! delivery and counts distinct message ids until `--expect` of them or `--duration`.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::io::Write as _;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use pulsar_wire::{Error, InitialPosition, MessageId, SubscriptionType};

use super::{grouped, micros, new_histogram, Extra, OutputArgs, Progress, Summary};
use crate::common::{context, parse_positive_secs, secs, CliError, CliResult, ConnectArgs};

/// `pulsar-wire perf consume`.
#[derive(Args, Debug)]
pub struct ConsumeArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,

    /// The topic, e.g. persistent://public/default/perf (or just perf).
    #[arg(long, value_name = "TOPIC")]
    pub topic: String,

    /// The subscription name (Shared; a new one starts at the earliest message).
    #[arg(long, short = 's', value_name = "NAME")]
    pub subscription: String,

    /// Give up after this many seconds.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_positive_secs)]
    pub duration: Duration,

    /// Stop once this many distinct messages were received (0: run for --duration).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub expect: u64,

    /// How many messages the broker may push ahead (per partition; at least 1000).
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1000..))]
    pub receiver_queue: u32,

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

/// Runs `perf consume`.
pub async fn run(args: ConsumeArgs) -> CliResult<()> {
    let mut latency = new_histogram()?;
    let client = args.connect.client()?;
    let mut consumer = client
        .consumer(args.topic.as_str())
        .subscription(args.subscription.as_str())
        .subscription_type(SubscriptionType::Shared)
        .initial_position(InitialPosition::Earliest)
        .receiver_queue_size(args.receiver_queue)
        .subscribe()
        .await
        .map_err(context(format_args!(
            "cannot subscribe to {} as {}",
            args.topic, args.subscription
        )))?;

    let start = Instant::now();
    let end = start + args.duration;
    let mut progress = Progress::new("consume", start, !args.output.no_progress)?;
    // Receive times in µs since the epoch: the wall clock read once, then the monotonic clock
    // (one clock read per message instead of two).
    let start_epoch_us = now_epoch_us();
    let mut seen = Seen::default();
    let (mut msgs, mut bytes, mut deliveries, mut ack_errors) = (0u64, 0u64, 0u64, 0u64);
    let mut first_ack_error: Option<Error> = None;
    let mut receive_error: Option<Error> = None;
    let mut last_new = start;
    let deadline = tokio::time::sleep_until(end.into());
    tokio::pin!(deadline);
    // One timer for the progress line, reset only when it fires.
    let timer = tokio::time::sleep_until(progress.next_at().into());
    tokio::pin!(timer);
    let printing = progress.enabled();
    while args.expect == 0 || msgs < args.expect {
        let msg = tokio::select! {
            biased;
            r = consumer.receive() => match r {
                Ok(msg) => msg,
                Err(e) => {
                    receive_error = Some(e);
                    break;
                }
            },
            () = &mut deadline => break,
            () = &mut timer, if printing => {
                progress.tick(Instant::now());
                timer.as_mut().reset(progress.next_at().into());
                continue;
            }
        };
        deliveries += 1;
        if let Err(e) = consumer.ack(&msg).await {
            ack_errors += 1;
            first_ack_error.get_or_insert(e);
        }
        let now = Instant::now();
        if seen.insert(msg.id()) {
            let len = msg.payload().len() as u64;
            let now_us = start_epoch_us.saturating_add(micros(now.duration_since(start)));
            let us = publish_latency_us(now_us, msg.publish_time());
            if let Some(us) = us {
                latency.saturating_record(us);
            }
            msgs += 1;
            bytes += len;
            last_new = now;
            progress.record(len, us);
        }
        progress.tick(now);
        if now >= end {
            break;
        }
    }
    let elapsed = if msgs > 0 {
        last_new.duration_since(start)
    } else {
        start.elapsed()
    };
    let summary = Summary {
        op: "consume",
        msgs,
        bytes,
        secs: elapsed.as_secs_f64(),
        latency: &latency,
        extra: vec![
            ("deliveries", Extra::Number(deliveries)),
            (
                "errors",
                Extra::Number(ack_errors + u64::from(receive_error.is_some())),
            ),
        ],
    };
    let printed = summary.print(args.output.json);
    // Closing sends the acks still grouped.
    if let Err(e) = consumer.close().await {
        tracing::warn!("closing the consumer failed: {e}");
    }
    let _ = client.close().await;
    printed?;
    if let Some(e) = receive_error {
        return Err(CliError(format!(
            "receiving failed after {msgs} messages: {e}"
        )));
    }
    if let Some(e) = first_ack_error {
        return Err(CliError(format!(
            "{ack_errors} of {deliveries} acknowledgements failed (first: {e})"
        )));
    }
    if args.expect > 0 && msgs < args.expect {
        let _ = writeln!(
            std::io::stderr().lock(),
            "warning: {} of {} expected messages within {}",
            grouped(msgs),
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
    fn latency_is_now_minus_publish_time() {
        assert_eq!(publish_latency_us(5_000_000, 4_000), Some(1_000_000));
        assert_eq!(publish_latency_us(5_000_000, 6_000), Some(1));
        assert_eq!(publish_latency_us(5_000_000, 0), None);
    }
}
