//! `pulsar-wire perf produce|consume|transaction`: throughput and latency measurements with the perf
//! contract that every client of the shared benchmark follows.
//!
//! Each command prints exactly one JSON line on stdout, whatever the flags (the benchmark reads
//! it), and on stderr a stats line every `--stats-interval` seconds (1 by default: the
//! interval's rate, throughput and latency percentiles) and a human summary at the end
//! (`--json` leaves the summary out, `--no-progress` the stats lines):
//!
//! ```text
//! {"client":"pulsar-wire","op":"produce","msgs":N,"bytes":B,"secs":S,"msgs_per_sec":..,
//!  "mb_per_sec":..,"p50_us":..,"p99_us":..,"p999_us":..,"max_us":..,"errors":0,...}
//! ```
//!
//! The counts are totals over every topic, producer, consumer and subscription of the run
//! (`--topics`, `--producers-per-topic`, `--consumers-per-topic`, `--subscriptions`), after the
//! warm-up (`--warmup-secs`; what completed during it is `warmup_msgs`). `consume` adds
//! `deliveries` (every message received, duplicates included; `msgs` counts distinct message
//! ids per topic and subscription). Latencies are in microseconds from an HDR histogram with
//! three significant digits; MB are 10^6 bytes.

mod admin;
mod consume;
mod produce;
mod stats;
mod transaction;

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Duration;

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

/// How often `perf transaction`'s progress line is printed.
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
    /// Send fixed-size messages as fast as allowed (or at --rate) for --duration seconds on
    /// --topics topics with --producers-per-topic producers each, up to --max-pending per
    /// producer awaiting a receipt; report throughput and send-to-receipt latency
    /// (pulsar-perf's produce).
    Produce(ProduceArgs),
    /// Subscribe (Shared by default, from the earliest message) on --topics topics with
    /// --subscriptions subscriptions and --consumers-per-topic consumers each, acknowledge
    /// everything received and count distinct messages until --expect of them or --duration
    /// seconds; report throughput and publish-to-receive latency (pulsar-perf's consume).
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

    /// Do not print the stats (progress) line on stderr.
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
