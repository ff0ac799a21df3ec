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
        let mut all = vec![
            "perf",
            "produce",
            "--url",
            "pulsar://127.0.0.1:1",
            "--topic",
            "t",
        ];
        all.extend_from_slice(args);
        let out = run(&all, LIMIT);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
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
