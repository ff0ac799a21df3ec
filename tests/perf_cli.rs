//! `pulsar-wire perf produce|consume` against the test broker: the JSON line of the shared
//! benchmark's contract (every key, the client name, bytes = msgs × size, deliveries ≥ msgs),
//! a consume that gets every produced message, and the one-line errors (bad URL, unreachable
//! broker, bad topic name). `perf transaction` runs on Apache Pulsar with transactions
//! (pulsar-lite has none): its own JSON line, every transaction's messages committed to the
//! output, none with `--abort`.

mod support;

use support::cli::{closed_port, run_command, text};

use std::process::{Command, Output};
use std::time::Duration;

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_pulsar-wire");

/// The keys every perf JSON line has, in the contract's order.
const KEYS: [&str; 11] = [
    "client",
    "op",
    "msgs",
    "bytes",
    "secs",
    "msgs_per_sec",
    "mb_per_sec",
    "p50_us",
    "p99_us",
    "p999_us",
    "max_us",
];

/// A limit far above what any run here needs; only a hung binary reaches it.
const LIMIT: Duration = Duration::from_secs(120);

/// Runs the binary with `args` (without `PULSAR_URL`), failing the test after `limit`.
fn run(args: &[&str], limit: Duration) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_remove("PULSAR_URL");
    run_command(cmd, limit)
}

/// Asserts success and that stdout is exactly one JSON object line; returns it.
fn json_line(out: &Output) -> String {
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "want one line on stdout:\n{stdout}");
    let line = lines[0];
    assert!(
        line.starts_with('{') && line.ends_with('}'),
        "not an object: {line}"
    );
    line.to_string()
}

/// The raw text of member `key` of a flat JSON object line (numbers, `true`/`false`, or a
/// string with its quotes), or `None` when the key is missing.
fn member<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let pattern = format!("\"{key}\":");
    let start = line.find(&pattern)? + pattern.len();
    let rest = &line[start..];
    let end = match rest.strip_prefix('"') {
        Some(string) => 1 + string.find('"')? + 1,
        None => rest.find([',', '}'])?,
    };
    Some(&rest[..end])
}

fn number(line: &str, key: &str) -> f64 {
    let raw = member(line, key).unwrap_or_else(|| panic!("no {key} in {line}"));
    raw.parse()
        .unwrap_or_else(|_| panic!("{key} is not a number in {line}"))
}

fn count(line: &str, key: &str) -> u64 {
    let raw = member(line, key).unwrap_or_else(|| panic!("no {key} in {line}"));
    raw.parse()
        .unwrap_or_else(|_| panic!("{key} is not a count in {line}"))
}

/// Asserts the contract's keys, in order, with sane values for `op`.
fn assert_contract(line: &str, op: &str) {
    let mut at = 0;
    for key in KEYS {
        let pattern = format!("\"{key}\":");
        let found = line[at..]
            .find(&pattern)
            .unwrap_or_else(|| panic!("{key} missing or out of order in {line}"));
        at += found + pattern.len();
    }
    assert_eq!(member(line, "client"), Some("\"pulsar-wire\""), "{line}");
    assert_eq!(
        member(line, "op"),
        Some(format!("\"{op}\"").as_str()),
        "{line}"
    );
    assert!(count(line, "msgs") > 0, "{line}");
    assert!(number(line, "secs") > 0.0, "{line}");
    assert!(number(line, "msgs_per_sec") > 0.0, "{line}");
    assert!(number(line, "mb_per_sec") >= 0.0, "{line}");
    let (p50, p99, p999, max) = (
        count(line, "p50_us"),
        count(line, "p99_us"),
        count(line, "p999_us"),
        count(line, "max_us"),
    );
    assert!(
        p50 >= 1 && p50 <= p99 && p99 <= p999 && p999 <= max,
        "{line}"
    );
    assert_eq!(count(line, "errors"), 0, "{line}");
}

/// Asserts a clean failure: exit code 1, exactly one `error: ` line on stderr, no panic, no
/// backtrace, nothing on stdout. Returns that line.
fn failed(out: &Output) -> String {
    assert!(out.stdout.is_empty(), "stdout: {}", text(&out.stdout));
    support::cli::failed(out)
}

/// Produces for 2 s at a bounded rate (so that a debug build drains it quickly), then consumes
/// the topic on a new subscription expecting exactly what was produced.
#[test]
fn produce_then_consume_everything_as_json() {
    let url = support::broker().url();
    let topic = support::unique_topic("perf-cli");
    let size = 200u64;
    let out = run(
        &[
            "perf",
            "produce",
            "--url",
            url,
            "--topic",
            &topic,
            "--size",
            &size.to_string(),
            "--duration",
            "2",
            "--rate",
            "2000",
            "--json",
        ],
        LIMIT,
    );
    let line = json_line(&out);
    assert_contract(&line, "produce");
    let produced = count(&line, "msgs");
    assert_eq!(count(&line, "bytes"), produced * size, "{line}");
    assert_eq!(member(&line, "batching"), Some("true"), "{line}");
    // Progress goes to stderr, never to stdout; --json leaves the human summary out.
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("perf produce"),
        "no progress line:\n{stderr}"
    );
    assert!(
        !stderr.contains("latency: p50"),
        "a human summary:\n{stderr}"
    );

    let subscription = support::unique_name("perf-sub");
    let out = run(
        &[
            "perf",
            "consume",
            "--url",
            url,
            "--topic",
            &topic,
            "--subscription",
            &subscription,
            "--expect",
            &produced.to_string(),
            "--duration",
            "90",
            "--json",
        ],
        LIMIT,
    );
    let line = json_line(&out);
    assert_contract(&line, "consume");
    assert_eq!(count(&line, "msgs"), produced, "{line}");
    assert_eq!(count(&line, "bytes"), produced * size, "{line}");
    assert!(count(&line, "deliveries") >= produced, "{line}");
}

/// Unbatched, a small in-flight bound, a send count, two runtime threads, no progress; then
/// without --json.
#[test]
fn unbatched_produce_with_a_count_then_without_json() {
    let url = support::broker().url();
    let topic = support::unique_topic("perf-cli-unbatched");
    let out = run(
        &[
            "perf",
            "produce",
            "--url",
            url,
            "--topic",
            &topic,
            "--size",
            "10",
            "--batching",
            "false",
            "--max-pending",
            "8",
            "--count",
            "300",
            "--duration",
            "60",
            "--threads",
            "2",
            "--json",
            "--no-progress",
        ],
        LIMIT,
    );
    let line = json_line(&out);
    assert_contract(&line, "produce");
    assert_eq!(count(&line, "msgs"), 300, "{line}");
    assert_eq!(count(&line, "bytes"), 3000, "{line}");
    assert_eq!(member(&line, "batching"), Some("false"), "{line}");
    assert!(
        !text(&out.stderr).contains("perf produce"),
        "a progress line with --no-progress:\n{}",
        text(&out.stderr)
    );

    // The same topic again, without --json: the same JSON line on stdout (the benchmark
    // passes no --json), and the human summary on stderr.
    let out = run(
        &[
            "perf", "produce", "--url", url, "--topic", &topic, "--size", "10", "--count", "50",
        ],
        LIMIT,
    );
    let line = json_line(&out);
    assert_contract(&line, "produce");
    assert_eq!(count(&line, "msgs"), 50, "{line}");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("produce: 50 msgs, 500 bytes in ") && stderr.contains("latency: p50 "),
        "no human summary:\n{stderr}"
    );
}

/// A consume that sees nothing stops at --duration, still prints its JSON line and succeeds.
#[test]
fn consume_of_an_empty_topic_stops_at_the_duration() {
    let url = support::broker().url();
    let topic = support::unique_topic("perf-cli-empty");
    let out = run(
        &[
            "perf",
            "consume",
            "--url",
            url,
            "--topic",
            &topic,
            "-s",
            "sub",
            "--duration",
            "1",
            "--expect",
            "10",
            "--json",
        ],
        LIMIT,
    );
    let line = json_line(&out);
    assert_eq!(count(&line, "msgs"), 0, "{line}");
    assert_eq!(count(&line, "deliveries"), 0, "{line}");
    assert_eq!(count(&line, "p99_us"), 0, "{line}");
    assert!(
        text(&out.stderr).contains("warning: 0 of 10 expected messages"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn bad_urls_fail_with_one_error_line() {
    for url in ["http://localhost:8080", "localhost:6650", "pulsar://"] {
        let out = run(
            &["perf", "produce", "--url", url, "--topic", "t", "--json"],
            LIMIT,
        );
        let line = failed(&out);
        assert!(line.contains("URL"), "{url}: {line}");
        let out = run(
            &["perf", "consume", "--url", url, "--topic", "t", "-s", "s"],
            LIMIT,
        );
        let line = failed(&out);
        assert!(line.contains("URL"), "{url}: {line}");
    }
}

#[test]
fn an_unreachable_broker_fails_with_one_error_line() {
    let url = format!("pulsar://127.0.0.1:{}", closed_port());
    let out = run(
        &[
            "perf",
            "produce",
            "--url",
            &url,
            "--topic",
            "t",
            "--operation-timeout",
            "1",
            "--json",
        ],
        LIMIT,
    );
    let line = failed(&out);
    assert!(
        line.contains("cannot create a producer") && line.contains("cannot connect"),
        "{line}"
    );
    let out = run(
        &[
            "perf",
            "consume",
            "--url",
            &url,
            "--topic",
            "t",
            "-s",
            "s",
            "--operation-timeout",
            "1",
        ],
        LIMIT,
    );
    let line = failed(&out);
    assert!(
        line.contains("cannot subscribe") && line.contains("cannot connect"),
        "{line}"
    );
}

#[test]
fn bad_topic_names_fail_with_one_error_line() {
    let url = support::broker().url();
    for topic in ["persistent://public/default", "bogus://public/default/t"] {
        let out = run(
            &["perf", "produce", "--url", url, "--topic", topic, "--json"],
            LIMIT,
        );
        let line = failed(&out);
        assert!(line.contains("topic"), "{topic}: {line}");
        let out = run(
            &["perf", "consume", "--url", url, "--topic", topic, "-s", "s"],
            LIMIT,
        );
        let line = failed(&out);
        assert!(line.contains("topic"), "{topic}: {line}");
    }
}

/// Bad flag values are refused by the parser (exit 2), before anything connects.
#[test]
fn bad_flag_values_are_refused() {
    for args in [
        &["--batching", "maybe"][..],
        &["--max-pending", "0"],
        &["--rate", "-1"],
        &["--duration", "0"],
        &["--threads", "0"],
    ] {
        assert_refused(PRODUCE, args);
    }
}

/// The start of a `perf produce` command line against a closed port.
const PRODUCE: &[&str] = &[
    "perf",
    "produce",
    "--url",
    "pulsar://127.0.0.1:1",
    "--topic",
    "t",
];

/// The start of a `perf consume` command line against a closed port.
const CONSUME: &[&str] = &[
    "perf",
    "consume",
    "--url",
    "pulsar://127.0.0.1:1",
    "--topic",
    "t",
    "-s",
    "s",
];

/// `command` with `args` is refused as a usage error (exit code 2), without a panic.
fn assert_refused(command: &[&str], args: &[&str]) {
    let all = [command, args].concat();
    let out = run(&all, LIMIT);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
}

/// Apache Pulsar with the transaction coordinator (one standalone for this binary).
fn txn_broker() -> &'static support::Broker {
    let mut options = support::ApacheOptions::plain();
    options.transactions = true;
    support::apache_with(&options)
}

/// The keys of `perf transaction`'s JSON line, in order.
const TXN_KEYS: [&str; 27] = [
    "client",
    "op",
    "txns",
    "secs",
    "txns_per_sec",
    "p50_us",
    "p99_us",
    "p999_us",
    "max_us",
    "open_p50_us",
    "open_p99_us",
    "open_max_us",
    "ack_p50_us",
    "ack_p99_us",
    "ack_max_us",
    "send_p50_us",
    "send_p99_us",
    "send_max_us",
    "end_p50_us",
    "end_p99_us",
    "end_max_us",
    "consumed",
    "produced",
    "errors",
    "messages_per_txn_consume",
    "messages_per_txn_produce",
    "concurrency",
];

fn assert_txn_line(line: &str, txns: u64, nmc: u64, nmp: u64) {
    let mut at = 0;
    for key in TXN_KEYS {
        let pattern = format!("\"{key}\":");
        let found = line[at..]
            .find(&pattern)
            .unwrap_or_else(|| panic!("{key} missing or out of order in {line}"));
        at += found + pattern.len();
    }
    assert_eq!(member(line, "client"), Some("\"pulsar-wire\""), "{line}");
    assert_eq!(member(line, "op"), Some("\"transaction\""), "{line}");
    assert_eq!(count(line, "txns"), txns, "{line}");
    assert_eq!(count(line, "consumed"), txns * nmc, "{line}");
    assert_eq!(count(line, "produced"), txns * nmp, "{line}");
    assert_eq!(count(line, "errors"), 0, "{line}");
    assert!(number(line, "txns_per_sec") > 0.0, "{line}");
    let (p50, p99, max) = (
        count(line, "p50_us"),
        count(line, "p99_us"),
        count(line, "max_us"),
    );
    assert!(p50 >= 1 && p50 <= p99 && p99 <= max, "{line}");
    // Each part of a transaction takes less than the whole.
    for part in ["open", "ack", "send", "end"] {
        let part_max = count(line, &format!("{part}_max_us"));
        assert!(part_max >= 1 && part_max <= max, "{part}: {line}");
    }
}

/// The first `n` messages of `topic` from the earliest, as text, checking that the next one is
/// a sentinel sent now (so that there are no more than `n`).
fn messages_then_sentinel(url: &str, topic: &str, n: usize) -> Vec<String> {
    let out = run(
        &["produce", "--url", url, "--topic", topic, "-m", "sentinel"],
        LIMIT,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let count = (n + 1).to_string();
    let out = run(
        &[
            "consume",
            "--url",
            url,
            "--topic",
            topic,
            "-s",
            "check",
            "--initial",
            "earliest",
            "-n",
            &count,
            "--timeout",
            "60",
        ],
        LIMIT,
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    let mut seen: Vec<String> = stdout.lines().map(str::to_string).collect();
    assert_eq!(seen.pop().as_deref(), Some("sentinel"), "{stdout}");
    seen
}

#[test]
fn perf_transaction_commits_every_transaction_and_its_messages() {
    let url = txn_broker().url();
    let input = support::unique_topic("perf-txn-in");
    let output = support::unique_topic("perf-txn-out");
    let out = run(
        &[
            "perf",
            "transaction",
            "--url",
            url,
            "--consume-topic",
            &input,
            "--produce-topic",
            &output,
            "--prefill",
            "24",
            "--transactions",
            "10",
            "--messages-per-txn-consume",
            "2",
            "--messages-per-txn-produce",
            "3",
            "--concurrency",
            "2",
            "--size",
            "16",
            "--duration",
            "300",
            "--no-progress",
        ],
        Duration::from_secs(400),
    );
    let line = json_line(&out);
    assert_txn_line(&line, 10, 2, 3);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("transaction: 10 txns (2 consumed + 3 produced each, committed)"),
        "{stderr}"
    );
    // 30 committed messages on the output topic, of --size bytes.
    let seen = messages_then_sentinel(url, &output, 30);
    assert!(seen.iter().all(|m| m.len() == 16), "{seen:?}");
}

#[test]
fn perf_transaction_with_abort_sends_nothing_and_keeps_the_input() {
    let url = txn_broker().url();
    let input = support::unique_topic("perf-txn-abort-in");
    let output = support::unique_topic("perf-txn-abort-out");
    let out = run(
        &[
            "perf",
            "transaction",
            "--url",
            url,
            "--consume-topic",
            &input,
            "--produce-topic",
            &output,
            "--prefill",
            "3",
            "--transactions",
            "6",
            "--abort",
            "--duration",
            "300",
            "--json",
            "--no-progress",
        ],
        Duration::from_secs(400),
    );
    let line = json_line(&out);
    // 6 transactions from 3 messages: aborted acknowledgements give them back.
    assert_txn_line(&line, 6, 1, 1);
    assert_eq!(member(&line, "abort"), Some("true"), "{line}");
    assert!(messages_then_sentinel(url, &output, 0).is_empty());
}

/// `perf produce` with `args` after the URL, expecting success: its JSON line.
fn perf_produce(url: &str, args: &[&str]) -> String {
    let mut all = vec!["perf", "produce", "--url", url];
    all.extend_from_slice(args);
    let line = json_line(&run(&all, LIMIT));
    assert_contract(&line, "produce");
    line
}

/// `perf consume` with `args` after the URL, expecting success: its JSON line.
fn perf_consume(url: &str, args: &[&str]) -> String {
    let mut all = vec!["perf", "consume", "--url", url];
    all.extend_from_slice(args);
    let line = json_line(&run(&all, LIMIT));
    assert_contract(&line, "consume");
    line
}

/// The keys of the first `n` messages of `topic`, read by `pulsar-wire consume --json` on a
/// new Shared subscription from the earliest.
fn keys_of(url: &str, topic: &str, n: usize) -> Vec<String> {
    let count = n.to_string();
    let sub = support::unique_name("keys");
    let out = run(
        &[
            "consume",
            "--url",
            url,
            "--topic",
            topic,
            "-s",
            &sub,
            "--type",
            "shared",
            "--initial",
            "earliest",
            "-n",
            &count,
            "--timeout",
            "60",
            "--json",
        ],
        LIMIT,
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    let keys: Vec<String> = stdout
        .lines()
        .map(|l| {
            let raw = member(l, "key").unwrap_or_else(|| panic!("no key in {l}"));
            raw.trim_matches('"').to_string()
        })
        .collect();
    assert_eq!(keys.len(), n, "{stdout}");
    keys
}

/// The histograms of an HdrHistogram interval log, decoded.
fn histograms_in(path: &std::path::Path) -> Vec<hdrhistogram::Histogram<u64>> {
    use base64::Engine as _;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(!bytes.is_empty(), "{} is empty", path.display());
    let mut out = Vec::new();
    for entry in IntervalLogIterator::new(&bytes) {
        let entry =
            entry.unwrap_or_else(|e| panic!("{}: not an interval log: {e:?}", path.display()));
        if let LogEntry::Interval(i) = entry {
            let encoded = base64::engine::general_purpose::STANDARD
                .decode(i.encoded_histogram())
                .expect("base64");
            let h: hdrhistogram::Histogram<u64> = hdrhistogram::serialization::Deserializer::new()
                .deserialize(&mut encoded.as_slice())
                .expect("a V2 histogram");
            out.push(h);
        }
    }
    out
}

/// Three topics with two producers each, paced so that the sends go round the six producers
/// in turn (send i to producer i % 6, on topic (i % 6) / 2), auto-increment keys and LZ4 with
/// small batches; then every subscription type gets every message of the three topics.
#[test]
fn many_topics_and_producers_then_every_subscription_type_gets_everything() {
    let url = support::broker().url();
    let prefix = support::unique_topic("perf-multi");
    let line = perf_produce(
        url,
        &[
            "--topic",
            &prefix,
            "--topics",
            "3",
            "--producers-per-topic",
            "2",
            "--size",
            "50",
            "--rate",
            "1000",
            "--count",
            "300",
            "--duration",
            "60",
            "--key-distribution",
            "auto-increment",
            "--compression",
            "lz4",
            "--batch-max-messages",
            "10",
            "--batch-max-bytes",
            "4096",
            "--batch-delay-ms",
            "2",
            "--json",
        ],
    );
    assert_eq!(count(&line, "msgs"), 300, "{line}");
    assert_eq!(count(&line, "bytes"), 300 * 50, "{line}");
    assert_eq!(count(&line, "topics"), 3, "{line}");
    assert_eq!(count(&line, "producers"), 6, "{line}");
    assert_eq!(count(&line, "warmup_msgs"), 0, "{line}");
    // The keys: send i's index, on the topic of producer i % 6.
    for t in 0..3u64 {
        let mut keys: Vec<u64> = keys_of(url, &format!("{prefix}-{t}"), 100)
            .iter()
            .map(|k| k.parse().unwrap_or_else(|_| panic!("key {k:?}")))
            .collect();
        keys.sort_unstable();
        let want: Vec<u64> = (0..300).filter(|i| (i % 6) / 2 == t).collect();
        assert_eq!(keys, want, "topic {t}");
    }

    for (kind, consumers) in [
        ("exclusive", "1"),
        ("shared", "2"),
        ("failover", "2"),
        ("key-shared", "2"),
    ] {
        let sub = support::unique_name(&format!("perf-{kind}"));
        let line = perf_consume(
            url,
            &[
                "--topic",
                &prefix,
                "--topics",
                "3",
                "-s",
                &sub,
                "--subscription-type",
                kind,
                "--consumers-per-topic",
                consumers,
                "--expect",
                "300",
                "--duration",
                "90",
                "--json",
            ],
        );
        assert_eq!(count(&line, "msgs"), 300, "{kind}: {line}");
        assert_eq!(count(&line, "bytes"), 300 * 50, "{kind}: {line}");
        assert!(count(&line, "deliveries") >= 300, "{kind}: {line}");
        assert_eq!(count(&line, "topics"), 3, "{kind}: {line}");
        assert_eq!(
            count(&line, "consumers"),
            3 * consumers.parse::<u64>().unwrap_or(0),
            "{kind}: {line}"
        );
    }

    // Two subscriptions: each gets (and counts) every message.
    let sub = support::unique_name("perf-two-subs");
    let line = perf_consume(
        url,
        &[
            "--topic",
            &prefix,
            "--topics",
            "3",
            "-s",
            &sub,
            "--subscriptions",
            "2",
            "--expect",
            "600",
            "--duration",
            "90",
            "--json",
        ],
    );
    assert_eq!(count(&line, "msgs"), 600, "{line}");
    assert_eq!(count(&line, "subscriptions"), 2, "{line}");
    assert_eq!(count(&line, "consumers"), 6, "{line}");
}

/// A warm-up of 2 s in a 4 s paced run: what completed in it is `warmup_msgs`, not `msgs`
/// (`--count` counts both); the histogram file holds exactly the measured latencies; then the
/// human output has the stats lines and pulsar-perf's aggregated summary.
#[test]
fn the_warm_up_is_left_out_and_the_histogram_file_holds_the_rest() {
    let url = support::broker().url();
    let topic = support::unique_topic("perf-warmup");
    let dir = std::env::temp_dir().join(support::unique_name("perf-hist"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let produced_hist = dir.join("produce.hlog");
    let line = perf_produce(
        url,
        &[
            "--topic",
            &topic,
            "--size",
            "20",
            "--rate",
            "100",
            "--count",
            "400",
            "--duration",
            "60",
            "--warmup-secs",
            "2",
            "--histogram-file",
            produced_hist.to_str().expect("a UTF-8 path"),
            "--json",
        ],
    );
    let (msgs, warmup) = (count(&line, "msgs"), count(&line, "warmup_msgs"));
    assert_eq!(msgs + warmup, 400, "{line}");
    assert!(msgs < 400 && warmup > 0, "{line}");
    assert_eq!(count(&line, "bytes"), msgs * 20, "{line}");
    let histograms = histograms_in(&produced_hist);
    assert_eq!(histograms.len(), 1);
    assert_eq!(histograms[0].len(), msgs);
    assert_eq!(histograms[0].max(), count(&line, "max_us"));

    // The consume side: its histogram counts the distinct messages measured.
    let consumed_hist = dir.join("consume.hlog");
    let sub = support::unique_name("perf-hist-sub");
    let line = perf_consume(
        url,
        &[
            "--topic",
            &topic,
            "-s",
            &sub,
            "--expect",
            "400",
            "--duration",
            "90",
            "--histogram-file",
            consumed_hist.to_str().expect("a UTF-8 path"),
            "--json",
        ],
    );
    assert_eq!(count(&line, "msgs"), 400, "{line}");
    let histograms = histograms_in(&consumed_hist);
    assert_eq!(histograms.len(), 1);
    assert_eq!(histograms[0].len(), 400);

    // Human output: the stats lines every 0.5 s, the creation line and the aggregated summary.
    let out = run(
        &[
            "perf",
            "produce",
            "--url",
            url,
            "--topic",
            &topic,
            "--size",
            "20",
            "--rate",
            "200",
            "--count",
            "400",
            "--stats-interval",
            "0.5",
        ],
        LIMIT,
    );
    let line = json_line(&out);
    assert_eq!(count(&line, "msgs"), 400, "{line}");
    let stderr = text(&out.stderr);
    for want in [
        "perf produce: 1 producer on 1 topic created in ",
        " msg/s ",
        " Mbit/s  pending ",
        "latency ms p50 ",
        " p99.99 ",
        "Aggregated throughput stats --- 400 records --- ",
        "Aggregated latency stats --- Latency: mean: ",
        " - 99.99pct: ",
        "produce: 400 msgs, 8,000 bytes in ",
    ] {
        assert!(stderr.contains(want), "no {want:?} in:\n{stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Flag values pulsar-perf's options refuse, and an Exclusive subscription with two consumers
/// per topic (refused before connecting: the broker would refuse the second).
#[test]
fn bad_multi_topic_flags_are_refused() {
    for args in [
        &["--topics", "0"][..],
        &["--producers-per-topic", "0"],
        &["--compression", "brotli"],
        &["--key-distribution", "sometimes"],
        &["--batch-max-messages", "0"],
        &["--batch-delay-ms", "-1"],
        &["--warmup-secs", "x"],
        &["--stats-interval", "0"],
    ] {
        assert_refused(PRODUCE, args);
    }
    for args in [
        &["--subscription-type", "round-robin"][..],
        &["--consumers-per-topic", "0"],
        &["--subscriptions", "0"],
    ] {
        assert_refused(CONSUME, args);
    }
    let exclusive = [
        "--subscription-type",
        "exclusive",
        "--consumers-per-topic",
        "2",
    ];
    let out = run(&[CONSUME, &exclusive[..]].concat(), LIMIT);
    let line = failed(&out);
    assert!(line.contains("--consumers-per-topic 1"), "{line}");
}

/// `--partitions` through Apache Pulsar's admin API (pulsar-lite has none): two topics of 3
/// partitions created, random keys spread over them, everything consumed; created again with
/// the same count is fine, with another count is an error. The Apache Pulsar of this binary's
/// transaction tests serves it (one standalone for the binary).
#[test]
fn apache_only_partitioned_topics_are_created_through_the_admin_api() {
    let broker = txn_broker();
    let url = broker.url();
    let admin = broker
        .apache()
        .env("PULSAR_HTTP_URL")
        .expect("the admin URL of the test standalone")
        .to_string();
    let prefix = support::unique_topic("perf-partitioned");
    let produce = |partitions: &str| {
        run(
            &[
                "perf",
                "produce",
                "--url",
                url,
                "--admin-url",
                &admin,
                "--topic",
                &prefix,
                "--topics",
                "2",
                "--partitions",
                partitions,
                "--size",
                "30",
                "--count",
                "200",
                "--duration",
                "120",
                "--key-distribution",
                "random",
                "--json",
            ],
            LIMIT,
        )
    };
    let line = json_line(&produce("3"));
    assert_contract(&line, "produce");
    assert_eq!(count(&line, "msgs"), 200, "{line}");
    for t in 0..2 {
        let path = format!(
            "/admin/v2/{}/partitions",
            support::apache::topic_path(&format!("{prefix}-{t}"))
        );
        let (status, body) = broker.apache().admin("GET", &path, None);
        assert_eq!(status, 200, "{path}: {body}");
        assert!(body.contains("\"partitions\":3"), "{path}: {body}");
    }
    let sub = support::unique_name("perf-partitioned-sub");
    let line = perf_consume(
        url,
        &[
            "--topic",
            &prefix,
            "--topics",
            "2",
            "-s",
            &sub,
            "--subscription-type",
            "key-shared",
            "--consumers-per-topic",
            "2",
            "--expect",
            "200",
            "--duration",
            "120",
            "--json",
        ],
    );
    assert_eq!(count(&line, "msgs"), 200, "{line}");

    // Again with 3 partitions: the topics exist as asked (409 is fine).
    let line = json_line(&produce("3"));
    assert_eq!(count(&line, "msgs"), 200, "{line}");
    // With 4: they exist with 3, an error.
    let line = failed(&produce("4"));
    assert!(line.contains("exists with 3 partitions"), "{line}");
}
