//! `pulsar-wire perf produce|consume|transaction`: throughput and latency measurements with the perf
//! contract that every client of the shared benchmark follows.
//!
//! Each command prints exactly one JSON line on stdout, whatever the flags (the benchmark reads
//! it), and on stderr a progress line every second (the last second's rate and latency
//! percentiles) and a two-line human summary at the end (`--json` leaves the summary out,
//! `--no-progress` the progress lines):
//!
//! ```text
//! {"client":"pulsar-wire","op":"produce","msgs":N,"bytes":B,"secs":S,"msgs_per_sec":..,
//!  "mb_per_sec":..,"p50_us":..,"p99_us":..,"p999_us":..,"max_us":..,"errors":0,...}
//! ```
//!
//! `consume` adds `deliveries` (every message received, duplicates included; `msgs` counts
//! distinct message ids). Latencies are in microseconds from an HDR histogram with three
//! significant digits; MB are 10^6 bytes.

mod consume;
mod produce;
mod transaction;

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use hdrhistogram::Histogram;

use crate::common::{CliError, CliResult};

pub use consume::ConsumeArgs;
pub use produce::ProduceArgs;
pub use transaction::TransactionArgs;

/// The client name in the JSON line (the name the shared benchmark uses).
pub const CLIENT: &str = "pulsar-wire";

/// The highest latency the histograms hold, in µs (one hour); longer ones count as this.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// How often the progress line is printed.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// `pulsar-wire perf`.
#[derive(Args, Debug)]
pub struct PerfArgs {
    /// What to measure.
    #[command(subcommand)]
    pub command: PerfCommand,
}

/// The perf subcommands.
#[derive(Subcommand, Debug)]
pub enum PerfCommand {
    /// Send fixed-size messages as fast as allowed for --duration seconds, up to --max-pending
    /// awaiting a receipt; report throughput and send-to-receipt latency.
    Produce(ProduceArgs),
    /// Subscribe (Shared, from the earliest message), acknowledge everything received and count
    /// distinct messages until --expect of them or --duration seconds; report throughput and
    /// publish-to-receive latency.
    Consume(ConsumeArgs),
    /// Consume from one topic and produce to another in transactions (pulsar-perf's
    /// `transaction`): N messages acknowledged and M sent per transaction, then commit (or
    /// --abort); report transactions per second and open-to-commit latency, with the time of
    /// the open, the acknowledgements, the sends and the commit apart. Its JSON line has its
    /// own keys (`txns`, `txns_per_sec`, ...).
    Transaction(TransactionArgs),
}

/// Output and runtime options of both perf subcommands.
#[derive(Args, Debug, Clone)]
pub struct OutputArgs {
    /// Machine output only: the JSON line on stdout (always printed) and no human summary on
    /// stderr.
    #[arg(long)]
    pub json: bool,

    /// Do not print the progress line every second on stderr.
    #[arg(long)]
    pub no_progress: bool,

    /// Threads of the async runtime: 1 (the default) runs everything on one thread, which
    /// measured faster on two cores shared with a local broker; N > 1 runs the library's tasks
    /// on N worker threads beside the thread that sends or receives.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
}

/// Runs a perf subcommand on its own runtime.
pub fn run(args: PerfArgs) -> CliResult<()> {
    let output = match &args.command {
        PerfCommand::Produce(a) => a.output.clone(),
        PerfCommand::Consume(a) => a.output.clone(),
        PerfCommand::Transaction(a) => a.output.clone(),
    };
    let runtime = if output.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(usize::from(output.threads))
            .enable_all()
            .build()
    }
    .map_err(|e| CliError(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async move {
        match args.command {
            PerfCommand::Produce(a) => produce::run(a).await,
            PerfCommand::Consume(a) => consume::run(a).await,
            PerfCommand::Transaction(a) => transaction::run(a).await,
        }
    })
}

/// A latency histogram in µs, 1 µs to one hour, three significant digits.
pub fn new_histogram() -> CliResult<Histogram<u64>> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
        .map_err(|e| CliError(format!("cannot create a latency histogram: {e}")))
}

/// Microseconds in `d`, at least 1 (the histogram's lowest value).
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// What one perf run measured, printed as the summary.
#[derive(Debug)]
pub struct Summary<'a> {
    /// `produce` or `consume`.
    pub op: &'static str,
    /// Messages sent (acknowledged by the broker) or distinct messages received.
    pub msgs: u64,
    /// Their payload bytes.
    pub bytes: u64,
    /// The measured time: first send to last receipt, or subscribed to last new message.
    pub secs: f64,
    /// Their latencies in µs.
    pub latency: &'a Histogram<u64>,
    /// More members after the contract's keys (`errors`, `deliveries`, ...).
    pub extra: Vec<(&'static str, Extra)>,
}

/// The value of an extra JSON member.
#[derive(Debug, Clone, PartialEq)]
pub enum Extra {
    /// A count.
    Number(u64),
    /// A flag.
    Bool(bool),
}

impl Summary<'_> {
    fn rate(&self, n: u64) -> f64 {
        if self.secs > 0.0 {
            n as f64 / self.secs
        } else {
            0.0
        }
    }

    /// Messages per second over `secs`.
    pub fn msgs_per_sec(&self) -> f64 {
        self.rate(self.msgs)
    }

    /// MB (10^6 bytes) per second over `secs`.
    pub fn mb_per_sec(&self) -> f64 {
        self.rate(self.bytes) / 1e6
    }

    /// `(p50, p99, p99.9, max)` in µs; zeros when nothing was measured.
    pub fn percentiles(&self) -> (u64, u64, u64, u64) {
        let h = self.latency;
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

    /// The JSON line (no newline), keys in the contract's order, then the extras.
    pub fn json(&self) -> String {
        let (p50, p99, p999, max) = self.percentiles();
        let mut out = String::with_capacity(256);
        let _ = write!(
            out,
            "{{\"client\":\"{CLIENT}\",\"op\":\"{}\",\"msgs\":{},\"bytes\":{},\"secs\":{:.3},\
             \"msgs_per_sec\":{:.1},\"mb_per_sec\":{:.3},\"p50_us\":{p50},\"p99_us\":{p99},\
             \"p999_us\":{p999},\"max_us\":{max}",
            self.op,
            self.msgs,
            self.bytes,
            self.secs,
            self.msgs_per_sec(),
            self.mb_per_sec(),
        );
        for (key, value) in &self.extra {
            match value {
                Extra::Number(n) => {
                    let _ = write!(out, ",\"{key}\":{n}");
                }
                Extra::Bool(b) => {
                    let _ = write!(out, ",\"{key}\":{b}");
                }
            }
        }
        out.push('}');
        out
    }

    /// The human summary: two lines (no final newline).
    pub fn human(&self) -> String {
        let (p50, p99, p999, max) = self.percentiles();
        let mut out = format!(
            "{}: {} msgs, {} bytes in {:.3} s: {} msgs/s, {:.1} MB/s",
            self.op,
            grouped(self.msgs),
            grouped(self.bytes),
            self.secs,
            grouped(self.msgs_per_sec().round() as u64),
            self.mb_per_sec(),
        );
        for (key, value) in &self.extra {
            if let Extra::Number(n) = value {
                let _ = write!(out, ", {key} {}", grouped(*n));
            }
        }
        let _ = write!(
            out,
            "\nlatency: p50 {}, p99 {}, p99.9 {}, max {}",
            ms(p50),
            ms(p99),
            ms(p999),
            ms(max)
        );
        out
    }

    /// Prints the human summary on stderr unless `json`, then the JSON line on stdout.
    pub fn print(&self, json: bool) -> CliResult<()> {
        if !json {
            let _ = writeln!(std::io::stderr().lock(), "{}", self.human());
        }
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", self.json())
            .and_then(|()| out.flush())
            .map_err(|e| CliError(format!("cannot write to stdout: {e}")))
    }
}

/// `n` with thousands separators: `1,234,567`.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Microseconds as milliseconds for people: `0.12 ms`, `12.3 ms`, `1,234 ms`.
pub fn ms(us: u64) -> String {
    let ms = us as f64 / 1000.0;
    if ms >= 1000.0 {
        format!("{} ms", grouped(ms.round() as u64))
    } else if ms >= 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

/// The progress line: counts and latencies of the current interval, printed on stderr every
/// [`PROGRESS_EVERY`] when enabled.
#[derive(Debug)]
pub struct Progress {
    enabled: bool,
    op: &'static str,
    started: Instant,
    interval_start: Instant,
    next_at: Instant,
    msgs: u64,
    bytes: u64,
    total: u64,
    latency: Histogram<u64>,
}

impl Progress {
    /// Progress of `op` measured from `started`; prints nothing unless `enabled`.
    pub fn new(op: &'static str, started: Instant, enabled: bool) -> CliResult<Self> {
        Ok(Progress {
            enabled,
            op,
            started,
            interval_start: started,
            next_at: started + PROGRESS_EVERY,
            msgs: 0,
            bytes: 0,
            total: 0,
            latency: new_histogram()?,
        })
    }

    /// Whether lines are printed at all.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// When the next line is due.
    pub fn next_at(&self) -> Instant {
        self.next_at
    }

    /// Counts one message of `bytes` with latency `us`.
    pub fn record(&mut self, bytes: u64, us: Option<u64>) {
        self.msgs += 1;
        self.bytes += bytes;
        self.total += 1;
        if let (true, Some(us)) = (self.enabled, us) {
            self.latency.saturating_record(us);
        }
    }

    /// Prints the line if it is due at `now`.
    pub fn tick(&mut self, now: Instant) {
        if self.enabled && now >= self.next_at {
            self.report(now);
        }
    }

    fn report(&mut self, now: Instant) {
        let secs = now.duration_since(self.interval_start).as_secs_f64();
        let rate = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
        let (p50, p99) = if self.latency.is_empty() {
            ("-".to_string(), "-".to_string())
        } else {
            (
                ms(self.latency.value_at_quantile(0.50)),
                ms(self.latency.value_at_quantile(0.99)),
            )
        };
        let line = format!(
            "perf {} {:>4} s: {:>9} msgs/s {:>8.1} MB/s  p50 {p50}  p99 {p99}  ({} in all)",
            self.op,
            now.duration_since(self.started).as_secs(),
            grouped(rate(self.msgs).round() as u64),
            rate(self.bytes) / 1e6,
            grouped(self.total),
        );
        let _ = writeln!(std::io::stderr().lock(), "{line}");
        self.msgs = 0;
        self.bytes = 0;
        self.latency.reset();
        self.interval_start = now;
        while self.next_at <= now {
            self.next_at += PROGRESS_EVERY;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(latency: &Histogram<u64>) -> Summary<'_> {
        Summary {
            op: "produce",
            msgs: 1000,
            bytes: 1_024_000,
            secs: 2.0,
            latency,
            extra: vec![
                ("errors", Extra::Number(0)),
                ("batching", Extra::Bool(true)),
            ],
        }
    }

    #[test]
    fn json_has_the_contract_keys_in_order() {
        let mut h = new_histogram().unwrap();
        for us in 1..=1000 {
            h.record(us).unwrap();
        }
        let json = summary(&h).json();
        assert_eq!(
            json,
            "{\"client\":\"pulsar-wire\",\"op\":\"produce\",\"msgs\":1000,\"bytes\":1024000,\
             \"secs\":2.000,\"msgs_per_sec\":500.0,\"mb_per_sec\":0.512,\"p50_us\":500,\
             \"p99_us\":990,\"p999_us\":999,\"max_us\":1000,\"errors\":0,\"batching\":true}"
        );
    }

    #[test]
    fn an_empty_histogram_reports_zeros_and_zero_secs_no_infinity() {
        let h = new_histogram().unwrap();
        let mut s = summary(&h);
        s.secs = 0.0;
        let json = s.json();
        assert!(
            json.contains("\"msgs_per_sec\":0.0,\"mb_per_sec\":0.000"),
            "{json}"
        );
        assert!(json.contains("\"p50_us\":0,\"p99_us\":0,\"p999_us\":0,\"max_us\":0"));
        assert!(!json.contains("inf") && !json.contains("NaN"));
    }

    #[test]
    fn human_summary_is_two_lines() {
        let mut h = new_histogram().unwrap();
        h.record(12_000).unwrap();
        let text = summary(&h).human();
        assert_eq!(
            text,
            "produce: 1,000 msgs, 1,024,000 bytes in 2.000 s: 500 msgs/s, 0.5 MB/s, errors 0\n\
             latency: p50 12.0 ms, p99 12.0 ms, p99.9 12.0 ms, max 12.0 ms"
        );
    }

    #[test]
    fn numbers_for_people() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(ms(120), "0.12 ms");
        assert_eq!(ms(12_345), "12.3 ms");
        assert_eq!(ms(1_234_567), "1,235 ms");
    }

    #[test]
    fn micros_are_at_least_one() {
        assert_eq!(micros(Duration::ZERO), 1);
        assert_eq!(micros(Duration::from_millis(2)), 2000);
    }
}
