//! What `perf produce` and `perf consume` share beyond the JSON line: the topic names of
//! `--topics N`, the warm-up, the stats line every `--stats-interval`, pulsar-perf's aggregated
//! summary and the `--histogram-file` (an HdrHistogram interval log).
//!
//! Every producer's receipt task (or consumer task) records into one [`Meter`] behind a mutex:
//! one histogram for the whole run and one for the current interval, whatever the number of
//! topics (a histogram of this range is about 190 KiB; one per producer would not scale to
//! thousands of topics).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use clap::Args;
use hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder;
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;

use super::{grouped, new_histogram};
use crate::common::{parse_positive_secs, parse_secs, CliError, CliResult};

/// The measurement options of `perf produce` and `perf consume`.
#[derive(Args, Debug, Clone)]
pub struct MeasureArgs {
    /// Warm-up, in seconds: the run starts at once, but what completes in its first SECS
    /// seconds (receipts, or distinct messages received) counts in no total, rate or histogram;
    /// the JSON line reports it as `warmup_msgs`, and the measured time starts after it.
    #[arg(long, value_name = "SECS", default_value = "0", value_parser = parse_secs)]
    pub warmup_secs: Duration,

    /// Print the stats line on stderr every SECS seconds: the interval's msg/s, Mbit/s,
    /// pending sends (produce), errors, and latency p50, p95, p99, p99.9, p99.99 and max in ms.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_positive_secs)]
    pub stats_interval: Duration,

    /// Write the latency histogram of the measured run (after the warm-up; µs) to PATH as an
    /// HdrHistogram interval log (V2 compressed, one interval for the whole run), as
    /// pulsar-perf's --histogram-file; HdrHistogram's HistogramLogProcessor reads it.
    #[arg(long, value_name = "PATH")]
    pub histogram_file: Option<PathBuf>,
}

/// The topics of `--topic T --topics n`: `T` alone when `n` is 1, else `T-0` .. `T-{n-1}`
/// (pulsar-perf's names).
pub fn topic_names(topic: &str, n: u32) -> Vec<String> {
    if n <= 1 {
        vec![topic.to_string()]
    } else {
        (0..n).map(|i| format!("{topic}-{i}")).collect()
    }
}

/// `n` and `word`, with an `s` unless `n` is 1: `1 topic`, `1,000 topics`.
pub fn counted(n: u64, word: &str) -> String {
    format!("{} {word}{}", grouped(n), if n == 1 { "" } else { "s" })
}

/// Parses a count of at least 1 (`--topics`, `--producers-per-topic`, ...).
pub fn parse_at_least_one(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{s:?} is not a count of at least 1")),
    }
}

/// What the meter holds, behind its mutex.
#[derive(Debug)]
struct State {
    /// Completed after the warm-up: count, payload bytes, latencies, the last completion.
    msgs: u64,
    bytes: u64,
    total: Histogram<u64>,
    last: Option<Instant>,
    /// Completed during the warm-up.
    warmup_msgs: u64,
    /// Completed in the current stats interval (warm-up included), and their latencies.
    interval_msgs: u64,
    interval_bytes: u64,
    interval: Histogram<u64>,
    /// Failed operations (sends, acknowledgements, receives), and the first failure's text.
    errors: u64,
    first_error: Option<String>,
    /// Operations completed (succeeded or failed), warm-up included.
    completed: u64,
}

/// The counts and latencies of a whole perf run, shared by its tasks.
#[derive(Debug)]
pub struct Meter {
    state: Mutex<State>,
    /// When the measured part starts (the start plus the warm-up).
    measure_from: Instant,
    /// Operations started (sends handed to a producer); `pending` is this minus completions.
    started: AtomicU64,
}

/// One stats line's worth, taken from the meter (and reset there).
#[derive(Debug)]
pub struct Interval {
    msgs: u64,
    bytes: u64,
    latency: Histogram<u64>,
    errors: u64,
    total: u64,
}

impl Meter {
    /// A meter whose measured part starts at `measure_from`.
    pub fn new(measure_from: Instant) -> CliResult<Arc<Meter>> {
        Ok(Arc::new(Meter {
            state: Mutex::new(State {
                msgs: 0,
                bytes: 0,
                total: new_histogram()?,
                last: None,
                warmup_msgs: 0,
                interval_msgs: 0,
                interval_bytes: 0,
                interval: new_histogram()?,
                errors: 0,
                first_error: None,
                completed: 0,
            }),
            measure_from,
            started: AtomicU64::new(0),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking task cannot leave the counters half-updated in a way that matters here.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When the measured part starts.
    pub fn measure_from(&self) -> Instant {
        self.measure_from
    }

    /// Counts an operation started (a send handed to its producer).
    pub fn started(&self) {
        self.started.fetch_add(1, Ordering::Relaxed);
    }

    /// Records one message of `bytes` completed at `now` with latency `us` (`None`: not
    /// known). Returns whether it is in the measured part (after the warm-up).
    pub fn record(&self, now: Instant, bytes: u64, us: Option<u64>) -> bool {
        let measured = now >= self.measure_from;
        let mut s = self.lock();
        s.completed += 1;
        s.interval_msgs += 1;
        s.interval_bytes += bytes;
        if let Some(us) = us {
            s.interval.saturating_record(us);
        }
        if measured {
            s.msgs += 1;
            s.bytes += bytes;
            s.last = Some(now);
            if let Some(us) = us {
                s.total.saturating_record(us);
            }
        } else {
            s.warmup_msgs += 1;
        }
        measured
    }

    /// Counts a failed operation; `completes` when it ends a started one (a failed send).
    pub fn error(&self, what: impl FnOnce() -> String, completes: bool) {
        let mut s = self.lock();
        if completes {
            s.completed += 1;
        }
        s.errors += 1;
        if s.first_error.is_none() {
            s.first_error = Some(what());
        }
    }

    /// Operations started and not completed yet.
    pub fn pending(&self) -> u64 {
        let completed = self.lock().completed;
        self.started
            .load(Ordering::Relaxed)
            .saturating_sub(completed)
    }

    /// Takes the current interval's counts and latencies, starting a new interval.
    pub fn take_interval(&self) -> CliResult<Interval> {
        let fresh = new_histogram()?;
        let mut s = self.lock();
        let latency = std::mem::replace(&mut s.interval, fresh);
        let interval = Interval {
            msgs: std::mem::take(&mut s.interval_msgs),
            bytes: std::mem::take(&mut s.interval_bytes),
            latency,
            errors: s.errors,
            total: s.msgs + s.warmup_msgs,
        };
        Ok(interval)
    }

    /// The final figures (the first error is taken out).
    pub fn finish(&self) -> Totals {
        let mut s = self.lock();
        Totals {
            msgs: s.msgs,
            bytes: s.bytes,
            warmup_msgs: s.warmup_msgs,
            errors: s.errors,
            first_error: s.first_error.take(),
            last: s.last,
            latency: s.total.clone(),
        }
    }
}

/// What a run measured, from [`Meter::finish`].
#[derive(Debug)]
pub struct Totals {
    /// Messages completed after the warm-up.
    pub msgs: u64,
    /// Their payload bytes.
    pub bytes: u64,
    /// Messages completed during the warm-up.
    pub warmup_msgs: u64,
    /// Failed operations.
    pub errors: u64,
    /// The first failure, as text.
    pub first_error: Option<String>,
    /// When the last measured message completed.
    pub last: Option<Instant>,
    /// The measured latencies (µs).
    pub latency: Histogram<u64>,
}

impl Totals {
    /// Seconds from the start of the measured part to its last completion (0 when nothing was
    /// measured).
    pub fn secs(&self, measure_from: Instant) -> f64 {
        self.last
            .map_or(0.0, |last| last.duration_since(measure_from).as_secs_f64())
    }
}

/// Milliseconds with three decimals, as pulsar-perf prints them.
fn ms3(us: f64) -> String {
    format!("{:.3}", us / 1000.0)
}

/// Mbit/s as pulsar-perf counts it: bytes × 8 / 2^20 per second.
pub fn mbit_per_sec(bytes: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        bytes as f64 * 8.0 / (1024.0 * 1024.0) / secs
    } else {
        0.0
    }
}

/// `p50 p95 p99 p99.9 p99.99 max` of `h` in ms, `-` each when it is empty.
fn percentiles_ms(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return "p50 - p95 - p99 - p99.9 - p99.99 - max -".to_string();
    }
    let q = |q: f64| ms3(h.value_at_quantile(q) as f64);
    format!(
        "p50 {} p95 {} p99 {} p99.9 {} p99.99 {} max {}",
        q(0.50),
        q(0.95),
        q(0.99),
        q(0.999),
        q(0.9999),
        ms3(h.max() as f64)
    )
}

impl Interval {
    /// The stats line of this interval of `secs` seconds, `at` seconds into the run;
    /// `pending` for produce; `warmup` while the warm-up lasts.
    pub fn line(&self, op: &str, at: u64, secs: f64, pending: Option<u64>, warmup: bool) -> String {
        let rate = if secs > 0.0 {
            self.msgs as f64 / secs
        } else {
            0.0
        };
        let mut line = format!(
            "perf {op} {at:>4} s: {:>9} msg/s {:>9.1} Mbit/s",
            grouped(rate.round() as u64),
            mbit_per_sec(self.bytes, secs),
        );
        if let Some(p) = pending {
            let _ = write!(line, "  pending {}", grouped(p));
        }
        let _ = write!(
            line,
            "  errors {}  latency ms {}  ({} in all){}",
            grouped(self.errors),
            percentiles_ms(&self.latency),
            grouped(self.total),
            if warmup { "  warm-up" } else { "" }
        );
        line
    }
}

/// Prints the stats line every `every` until aborted (the caller aborts the task at the end).
pub async fn print_stats(
    meter: Arc<Meter>,
    op: &'static str,
    started: Instant,
    every: Duration,
    pending: bool,
) {
    let mut ticker = tokio::time::interval_at((started + every).into(), every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut from = started;
    loop {
        ticker.tick().await;
        let now = Instant::now();
        let Ok(interval) = meter.take_interval() else {
            return;
        };
        let line = interval.line(
            op,
            now.duration_since(started).as_secs(),
            now.duration_since(from).as_secs_f64(),
            pending.then(|| meter.pending()),
            now < meter.measure_from(),
        );
        let _ = writeln!(std::io::stderr().lock(), "{line}");
        from = now;
    }
}

/// pulsar-perf's two closing lines: the aggregated throughput and latency of the measured run.
pub fn aggregated(msgs: u64, bytes: u64, secs: f64, h: &Histogram<u64>) -> String {
    let rate = if secs > 0.0 { msgs as f64 / secs } else { 0.0 };
    let q = |q: f64| {
        if h.is_empty() {
            ms3(0.0)
        } else {
            ms3(h.value_at_quantile(q) as f64)
        }
    };
    format!(
        "Aggregated throughput stats --- {msgs} records --- {rate:.3} msg/s --- {:.3} Mbit/s\n\
         Aggregated latency stats --- Latency: mean: {} ms - med: {} - 95pct: {} - 99pct: {} \
         - 99.9pct: {} - 99.99pct: {} - Max: {}",
        mbit_per_sec(bytes, secs),
        ms3(if h.is_empty() { 0.0 } else { h.mean() }),
        q(0.50),
        q(0.95),
        q(0.99),
        q(0.999),
        q(0.9999),
        ms3(if h.is_empty() { 0.0 } else { h.max() as f64 }),
    )
}

/// The interval log of `h`: the format line and legend of Java's `HistogramLogWriter`, the
/// start time, then one interval from `started` (wall clock) lasting `secs`.
pub fn histogram_log(h: &Histogram<u64>, started: SystemTime, secs: f64) -> CliResult<Vec<u8>> {
    let mut out = Vec::new();
    let mut serializer = V2DeflateSerializer::new();
    let fail = |e: &dyn std::fmt::Display| CliError(format!("cannot encode the histogram: {e}"));
    {
        let mut builder = IntervalLogWriterBuilder::new();
        builder
            .add_comment("[Histogram log format version 1.3]")
            .with_start_time(started);
        builder
            .begin_log_with(&mut out, &mut serializer)
            .map_err(|e| fail(&e))?;
    }
    out.extend_from_slice(
        b"\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n",
    );
    let start = started
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let length = Duration::try_from_secs_f64(secs.max(0.0)).unwrap_or_default();
    let mut writer = IntervalLogWriterBuilder::new()
        .begin_log_with(&mut out, &mut serializer)
        .map_err(|e| fail(&e))?;
    writer
        .write_histogram(h, start, length, None)
        .map_err(|e| fail(&e))?;
    drop(writer);
    Ok(out)
}

/// Writes [`histogram_log`] to `path`.
pub fn write_histogram_file(
    path: &Path,
    h: &Histogram<u64>,
    started: SystemTime,
    secs: f64,
) -> CliResult<()> {
    let log = histogram_log(h, started, secs)?;
    std::fs::write(path, log).map_err(|e| {
        CliError(format!(
            "cannot write the histogram file {}: {e}",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    use hdrhistogram::serialization::Deserializer;

    #[test]
    fn topics_are_named_as_pulsar_perf_names_them() {
        assert_eq!(topic_names("t", 1), vec!["t"]);
        assert_eq!(
            topic_names("p://a/b/t", 3),
            vec!["p://a/b/t-0", "p://a/b/t-1", "p://a/b/t-2"]
        );
        assert_eq!(parse_at_least_one("2"), Ok(2));
        assert!(parse_at_least_one("0").is_err());
        assert_eq!(counted(1, "topic"), "1 topic");
        assert_eq!(counted(1000, "topic"), "1,000 topics");
    }

    #[test]
    fn the_warm_up_counts_apart() {
        let start = Instant::now();
        let meter = Meter::new(start + Duration::from_secs(10)).unwrap();
        meter.started();
        meter.started();
        assert!(!meter.record(start, 100, Some(5)));
        assert!(meter.record(start + Duration::from_secs(11), 100, Some(7)));
        assert_eq!(meter.pending(), 0);
        let interval = meter.take_interval().unwrap();
        assert_eq!((interval.msgs, interval.total), (2, 2));
        let totals = meter.finish();
        assert_eq!((totals.msgs, totals.warmup_msgs), (1, 1));
        assert_eq!(totals.latency.len(), 1);
        assert_eq!(totals.secs(meter.measure_from()), 1.0);
    }

    #[test]
    fn the_stats_line_and_the_aggregated_summary() {
        let mut h = new_histogram().unwrap();
        h.record(1500).unwrap();
        let i = Interval {
            msgs: 2000,
            bytes: 2 * 1024 * 1024,
            latency: h.clone(),
            errors: 1,
            total: 5000,
        };
        assert_eq!(
            i.line("produce", 3, 2.0, Some(10), false),
            "perf produce    3 s:     1,000 msg/s       8.0 Mbit/s  pending 10  errors 1  \
             latency ms p50 1.500 p95 1.500 p99 1.500 p99.9 1.500 p99.99 1.500 max 1.500  \
             (5,000 in all)"
        );
        let text = aggregated(10, 1024 * 1024, 1.0, &h);
        assert!(
            text.contains("--- 10 records --- 10.000 msg/s --- 8.000 Mbit/s"),
            "{text}"
        );
        assert!(
            text.contains(
                "Latency: mean: 1.500 ms - med: 1.500 - 95pct: 1.500 - 99pct: 1.500 \
                 - 99.9pct: 1.500 - 99.99pct: 1.500 - Max: 1.500"
            ),
            "{text}"
        );
    }

    #[test]
    fn the_histogram_log_reads_back() {
        let mut h = new_histogram().unwrap();
        for us in 1..=100 {
            h.record(us).unwrap();
        }
        let log = histogram_log(&h, SystemTime::now(), 2.5).unwrap();
        let text = String::from_utf8(log.clone()).unwrap();
        assert!(
            text.starts_with("#[Histogram log format version 1.3]\n#[StartTime: "),
            "{text}"
        );
        let mut histograms = Vec::new();
        for entry in IntervalLogIterator::new(&log) {
            if let LogEntry::Interval(i) = entry.unwrap() {
                assert_eq!(i.duration(), Duration::from_millis(2500));
                let bytes = base64_decode(i.encoded_histogram());
                let back: Histogram<u64> = Deserializer::new()
                    .deserialize(&mut bytes.as_slice())
                    .unwrap();
                histograms.push(back);
            }
        }
        assert_eq!(histograms.len(), 1);
        assert_eq!(histograms[0].len(), 100);
        assert_eq!(histograms[0].max(), 100);
    }

    fn base64_decode(s: &str) -> Vec<u8> {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.decode(s).unwrap()
    }
}
