//! The `pulsar-wire` binary against the test broker: produce with templating, properties and
//! keys, consume as JSON, payload sizes, and the one-line errors of every failure mode (timeout,
//! bad URL, unreachable broker, bad topic, authentication, unsupported options). Also runs the
//! quickstart example, and, on Apache Pulsar with transactions (pulsar-lite has none),
//! `produce` and `consume` with `--transaction commit|abort` and the transfer example.

mod support;

use support::cli::{closed_port, failed, run_command, text};
use support::tls::{Pki, TlsProxy};

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_pulsar-wire");

/// Runs the binary with `args`, killing it (and failing the test) after `limit`.
fn run(args: &[&str], limit: Duration) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    run_command(cmd, limit)
}

/// Asserts success and returns stdout.
fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

#[test]
fn produce_then_consume_as_json() {
    let url = support::broker().url();
    let topic = support::unique_topic("cli-json");
    let out = run(
        &[
            "produce",
            "--url",
            url,
            "--topic",
            &topic,
            "-m",
            "msg-{i} \"quoted\"",
            "-n",
            "5",
            "--property",
            "k=v{i}",
            "--property",
            "fixed=yes",
            "--key",
            "key-{i}",
            "--ordering-key",
            "ok-{i}",
            "--no-batching",
            "--compression",
            "none",
            "--verbose",
        ],
        Duration::from_secs(60),
    );
    let stdout = ok(&out);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 6, "5 ids and the summary:\n{stdout}");
    let produced_ids: Vec<String> = lines[..5].iter().map(|s| s.to_string()).collect();
    for id in &produced_ids {
        assert_message_id_shape(id);
    }
    assert!(
        lines[5].starts_with("produced 5 messages (")
            && lines[5].ends_with(", 0 failed")
            && lines[5].contains(" s, "),
        "summary: {}",
        lines[5]
    );
    let bytes: usize = (0..5).map(|i| format!("msg-{i} \"quoted\"").len()).sum();
    assert!(
        lines[5].contains(&format!("({bytes} bytes)")),
        "{}",
        lines[5]
    );

    let out = run(
        &[
            "consume",
            "--url",
            url,
            "--topic",
            &topic,
            "--subscription",
            "cli-sub",
            "--type",
            "shared",
            "--initial",
            "earliest",
            "-n",
            "5",
            "--timeout",
            "20",
            "--json",
        ],
        Duration::from_secs(60),
    );
    let stdout = ok(&out);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{stdout}");
    for (i, line) in lines.iter().enumerate() {
        let v = json::parse(line).unwrap_or_else(|e| panic!("bad JSON ({e}): {line}"));
        let id = v
            .get("message_id")
            .and_then(json::Value::as_str)
            .expect("message_id");
        assert_message_id_shape(id);
        assert_eq!(id, produced_ids[i], "ids in the order sent");
        assert_eq!(v.str_at("topic"), Some(topic.as_str()));
        assert_eq!(
            v.str_at("payload"),
            Some(format!("msg-{i} \"quoted\"").as_str())
        );
        assert!(v.get("payload_base64").is_none(), "{line}");
        let props = v.get("properties").expect("properties");
        assert_eq!(props.str_at("k"), Some(format!("v{i}").as_str()));
        assert_eq!(props.str_at("fixed"), Some("yes"));
        assert_eq!(props.len(), Some(2), "{line}");
        assert_eq!(v.str_at("key"), Some(format!("key-{i}").as_str()));
        assert_eq!(v.str_at("ordering_key"), Some(format!("ok-{i}").as_str()));
        assert_eq!(v.get("event_time"), Some(&json::Value::Null));
        assert!(v.num_at("publish_time").is_some_and(|t| t > 0.0), "{line}");
        assert!(
            v.str_at("producer_name").is_some_and(|n| !n.is_empty()),
            "{line}"
        );
        assert_eq!(v.num_at("redelivery_count"), Some(0.0));
    }

    // Everything was acknowledged: the subscription has nothing left.
    let out = run(
        &[
            "consume",
            "--url",
            url,
            "--topic",
            &topic,
            "--subscription",
            "cli-sub",
            "--type",
            "shared",
            "--timeout",
            "1",
        ],
        Duration::from_secs(60),
    );
    let line = failed(&out);
    assert!(line.contains("timed out"), "{line}");
    assert_eq!(text(&out.stdout), "");
}

/// `ledger:entry:partition:batch_index`, four integers.
fn assert_message_id_shape(id: &str) {
    let parts: Vec<&str> = id.split(':').collect();
    assert_eq!(parts.len(), 4, "message id {id:?}");
    for p in &parts {
        assert!(p.parse::<i64>().is_ok(), "message id {id:?}");
    }
    assert!(
        parts[0].parse::<u64>().is_ok() && parts[1].parse::<u64>().is_ok(),
        "{id:?}"
    );
}

#[test]
fn produce_sized_payloads_and_consume_them_as_text() {
    let url = support::broker().url();
    let topic = support::unique_topic("cli-size");
    let out = run(
        &[
            "produce", "--url", url, "--topic", &topic, "--size", "1000", "-n", "200",
        ],
        Duration::from_secs(60),
    );
    let stdout = ok(&out);
    assert!(
        stdout.starts_with("produced 200 messages (200000 bytes) in ")
            && stdout.trim_end().ends_with(", 0 failed"),
        "{stdout}"
    );
    assert_eq!(
        stdout.lines().count(),
        1,
        "no ids without --verbose: {stdout}"
    );

    let out = run(
        &[
            "consume",
            "--url",
            url,
            "--topic",
            &topic,
            "-s",
            "sub",
            "-t",
            "shared",
            "--initial",
            "earliest",
            "-n",
            "200",
            "--timeout",
            "20",
        ],
        Duration::from_secs(60),
    );
    let stdout = ok(&out);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 200);
    assert!(lines.iter().all(|l| l.len() == 1000), "1000-byte payloads");
}

#[test]
fn produce_at_a_rate_takes_about_that_long() {
    let url = support::broker().url();
    let topic = support::unique_topic("cli-rate");
    let start = Instant::now();
    let out = run(
        &[
            "produce", "--url", url, "--topic", &topic, "-m", "r{i}", "-n", "11", "--rate", "20",
        ],
        Duration::from_secs(60),
    );
    ok(&out);
    // 11 messages at 20/s: the last one is due 0.5 s after the first.
    assert!(
        start.elapsed() >= Duration::from_millis(450),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn consume_timeout_fails_with_one_error_line() {
    let url = support::broker().url();
    let topic = support::unique_topic("cli-timeout");
    let start = Instant::now();
    let out = run(
        &[
            "consume",
            "--url",
            url,
            "--topic",
            &topic,
            "-s",
            "sub",
            "--timeout",
            "1",
            "-n",
            "3",
        ],
        Duration::from_secs(60),
    );
    let line = failed(&out);
    assert!(
        line.contains("timed out after 1 s") && line.contains("received 0 of 3"),
        "{line}"
    );
    assert!(start.elapsed() < Duration::from_secs(30));
}

#[test]
fn bad_urls_fail_with_one_error_line() {
    for url in [
        "http://localhost:8080",
        "localhost:6650",
        "pulsar://",
        "pulsar://host:notaport",
    ] {
        let out = run(
            &["produce", "--url", url, "--topic", "t", "-m", "x"],
            Duration::from_secs(30),
        );
        let line = failed(&out);
        assert!(line.contains("URL"), "{url}: {line}");
    }
}

#[test]
fn an_unreachable_broker_fails_within_the_operation_timeout() {
    let url = format!("pulsar://127.0.0.1:{}", closed_port());
    let start = Instant::now();
    let out = run(
        &[
            "produce",
            "--url",
            &url,
            "--topic",
            "t",
            "-m",
            "x",
            "--operation-timeout",
            "2",
        ],
        Duration::from_secs(30),
    );
    let line = failed(&out);
    assert!(line.contains("cannot connect"), "{line}");
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "{:?}",
        start.elapsed()
    );

    let out = run(
        &[
            "consume",
            "--url",
            &url,
            "--topic",
            "t",
            "-s",
            "sub",
            "--operation-timeout",
            "1",
        ],
        Duration::from_secs(30),
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
    for topic in [
        "persistent://public/default",
        "bogus://public/default/t",
        "public//t",
    ] {
        let out = run(
            &["produce", "--url", url, "--topic", topic, "-m", "x"],
            Duration::from_secs(30),
        );
        let line = failed(&out);
        assert!(line.contains("topic"), "{topic}: {line}");
        let out = run(
            &["consume", "--url", url, "--topic", topic, "-s", "sub"],
            Duration::from_secs(30),
        );
        let line = failed(&out);
        assert!(line.contains("topic"), "{topic}: {line}");
    }
}

#[test]
fn compressed_and_unbatched_messages_round_trip() {
    let url = support::broker().url();
    for (codec, batching) in [
        ("zstd", true),
        ("lz4", false),
        ("snappy", true),
        ("zlib", false),
    ] {
        let topic = support::unique_topic(&format!("cli-{codec}"));
        let mut args = vec![
            "produce",
            "--url",
            url,
            "--topic",
            &topic,
            "-m",
            "text {i}",
            "-n",
            "30",
            "--compression",
            codec,
        ];
        if !batching {
            args.push("--no-batching");
        }
        let out = run(&args, Duration::from_secs(60));
        assert!(ok(&out).contains(", 0 failed"), "{codec}");
        let out = run(
            &[
                "consume",
                "--url",
                url,
                "--topic",
                &topic,
                "-s",
                "sub",
                "-t",
                "shared",
                "--initial",
                "earliest",
                "-n",
                "30",
                "--timeout",
                "20",
            ],
            Duration::from_secs(60),
        );
        let stdout = ok(&out);
        let lines: Vec<&str> = stdout.lines().collect();
        let expected: Vec<String> = (0..30).map(|i| format!("text {i}")).collect();
        assert_eq!(lines, expected, "{codec} batching {batching}");
    }
}

#[test]
fn an_unknown_codec_is_refused_by_the_parser() {
    let out = run(
        &[
            "produce",
            "--url",
            "pulsar://127.0.0.1:1",
            "--topic",
            "t",
            "-m",
            "x",
            "--compression",
            "brotli",
        ],
        Duration::from_secs(30),
    );
    assert!(!out.status.success());
    assert!(!text(&out.stderr).contains("panicked"));
}

#[test]
fn an_unreadable_token_file_fails_with_one_error_line() {
    let out = run(
        &[
            "produce",
            "--url",
            "pulsar://127.0.0.1:1",
            "--token-file",
            "/nonexistent/pulsar-wire/token",
            "--topic",
            "t",
            "-m",
            "x",
        ],
        Duration::from_secs(30),
    );
    let line = failed(&out);
    assert!(line.contains("token file"), "{line}");
}

/// A peer that answers every CONNECT with ERROR AuthenticationError, as Apache Pulsar does for a
/// bad token (pulsar-lite does not check tokens).
fn refusing_broker() -> u16 {
    use bytes::BytesMut;
    use pulsar_wire::wire::{self, proto, DEFAULT_MAX_FRAME_SIZE};

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let refusal = proto::BaseCommand {
        r#type: proto::base_command::Type::Error as i32,
        error: Some(Box::new(proto::CommandError {
            request_id: 0,
            error: proto::ServerError::AuthenticationError as i32,
            message: "Failed to authenticate: invalid token".into(),
        })),
        ..Default::default()
    };
    let mut frame = BytesMut::new();
    wire::encode_command(&refusal, &mut frame, DEFAULT_MAX_FRAME_SIZE).expect("encode");
    let frame = frame.freeze();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream): Result<TcpStream, _> = stream else {
                continue;
            };
            let frame = frame.clone();
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut buf = [0u8; 4096];
                // The CONNECT frame (one read is enough for it on loopback).
                let _ = stream.read(&mut buf);
                let _ = stream.write_all(&frame);
                let _ = stream.flush();
                std::thread::sleep(Duration::from_millis(50));
            });
        }
    });
    port
}

#[test]
fn an_authentication_failure_fails_with_one_error_line() {
    let url = format!("pulsar://127.0.0.1:{}", refusing_broker());
    let out = run(
        &[
            "produce",
            "--url",
            &url,
            "--token",
            "bad-token",
            "--topic",
            "t",
            "-m",
            "x",
            "--operation-timeout",
            "2",
        ],
        Duration::from_secs(30),
    );
    let line = failed(&out);
    assert!(line.contains("AuthenticationError"), "{line}");
}

/// `perf produce` and `perf consume` share the connection flags: an authentication failure
/// is one line naming the broker's error, and stdout stays empty (no JSON line for a run
/// that never started).
#[test]
fn perf_authentication_failures_fail_with_one_error_line() {
    let url = format!("pulsar://127.0.0.1:{}", refusing_broker());
    let common = ["--url", &url, "--token", "bad-token", "--topic", "t"];
    let cases: [&[&str]; 2] = [
        &["perf", "produce", "--duration", "1"],
        &["perf", "consume", "--subscription", "s", "--duration", "1"],
    ];
    for case in cases {
        let args: Vec<&str> = case.iter().chain(common.iter()).copied().collect();
        let out = run(&args, Duration::from_secs(30));
        let line = failed(&out);
        assert!(line.contains("AuthenticationError"), "{args:?}: {line}");
        assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out.stdout));
    }
}

#[test]
fn the_quickstart_example_runs_against_the_broker() {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["run", "--quiet", "--example", "quickstart"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("PULSAR_URL", support::broker().url())
        .env("PULSAR_TOPIC", support::unique_topic("quickstart"))
        .env_remove("PULSAR_TOKEN");
    let out = run_command(cmd, Duration::from_secs(600));
    let stdout = ok(&out);
    assert!(
        stdout.contains("Received message 'Hello python client, this is a msg.' id='"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Received message 'Hello python client, this is a async msg.' id='"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Message published: result:Ok msg_id:"),
        "{stdout}"
    );
}

/// Apache Pulsar with the transaction coordinator, for the `--transaction` tests (one standalone
/// for this binary, started by the first of them).
fn txn_broker() -> &'static support::Broker {
    let mut options = support::ApacheOptions::plain();
    options.transactions = true;
    support::apache_with(&options)
}

/// The line `"{verb} transaction (most,least)"` of a transaction that ended, checked; its id.
fn ended_transaction<'a>(line: &'a str, verb: &str) -> &'a str {
    let id = line
        .strip_prefix(&format!("{verb} transaction "))
        .unwrap_or_else(|| panic!("want '{verb} transaction (..)', got: {line}"));
    let id = id.split(' ').next().unwrap_or(id);
    let inner = id
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("a transaction id is (most,least): {line}"));
    let parts: Vec<&str> = inner.split(',').collect();
    assert_eq!(parts.len(), 2, "{line}");
    for p in parts {
        p.parse::<u64>()
            .unwrap_or_else(|_| panic!("not a number in the transaction id: {line}"));
    }
    id
}

/// `produce --transaction END` of `-n 5` messages `{prefix}-{i}`: checks its two lines and
/// returns the transaction id.
fn produce_in_a_transaction(url: &str, topic: &str, prefix: &str, end: &str) -> String {
    let template = format!("{prefix}-{{i}}");
    let out = run(
        &[
            "produce",
            "--url",
            url,
            "--topic",
            topic,
            "-m",
            &template,
            "-n",
            "5",
            "--transaction",
            end,
            "--txn-timeout",
            "120",
        ],
        Duration::from_secs(120),
    );
    let stdout = ok(&out);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "the summary and the transaction:\n{stdout}");
    assert!(
        lines[0].starts_with("produced 5 messages (") && lines[0].ends_with(", 0 failed"),
        "{stdout}"
    );
    let verb = if end == "commit" {
        "committed"
    } else {
        "aborted"
    };
    ended_transaction(lines[1], verb).to_string()
}

/// `consume` of `count` messages as text lines (`extra` appended to the arguments).
fn consume_lines(url: &str, topic: &str, sub: &str, count: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "consume",
        "--url",
        url,
        "--topic",
        topic,
        "--subscription",
        sub,
        "--initial",
        "earliest",
        "-n",
        count,
        "--timeout",
        "60",
    ];
    args.extend_from_slice(extra);
    run(&args, Duration::from_secs(120))
}

#[test]
fn produce_in_a_transaction_shows_the_committed_messages_and_never_the_aborted_ones() {
    let url = txn_broker().url();
    let topic = support::unique_topic("cli-txn-produce");
    let aborted = produce_in_a_transaction(url, &topic, "aborted", "abort");
    let committed = produce_in_a_transaction(url, &topic, "committed", "commit");
    assert_ne!(aborted, committed, "two transactions, two ids");
    // The aborted messages come first on the topic: had any been delivered, it would be among
    // the first five.
    let out = consume_lines(url, &topic, "s", "5", &[]);
    let stdout = ok(&out);
    let want: Vec<String> = (0..5).map(|i| format!("committed-{i}")).collect();
    assert_eq!(stdout.lines().collect::<Vec<_>>(), want, "{stdout}");
    // And nothing of them is left behind: the next message is a plain one sent now.
    ok(&run(
        &["produce", "--url", url, "--topic", &topic, "-m", "sentinel"],
        Duration::from_secs(60),
    ));
    let out = consume_lines(url, &topic, "s", "1", &[]);
    assert_eq!(ok(&out), "sentinel\n");
}

#[test]
fn consume_in_an_aborted_transaction_leaves_the_messages_and_a_committed_one_takes_them() {
    let url = txn_broker().url();
    let topic = support::unique_topic("cli-txn-consume");
    let out = run(
        &[
            "produce", "--url", url, "--topic", &topic, "-m", "m-{i}", "-n", "5",
        ],
        Duration::from_secs(60),
    );
    ok(&out);
    let want: Vec<String> = (0..5).map(|i| format!("m-{i}")).collect();
    let sorted = |stdout: &str| {
        let mut lines: Vec<String> = stdout.lines().map(str::to_string).collect();
        lines.sort();
        lines
    };
    // Acknowledged in a transaction that is aborted: still on the subscription.
    let out = consume_lines(url, &topic, "s", "5", &["--transaction", "abort"]);
    assert_eq!(sorted(&ok(&out)), want);
    let stderr = text(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.starts_with("aborted transaction "))
        .unwrap_or_else(|| panic!("no 'aborted transaction' line on stderr:\n{stderr}"));
    ended_transaction(line, "aborted");
    assert!(line.ends_with("(5 messages acknowledged in it)"), "{line}");
    // The same messages again, this time acknowledged in a committed transaction.
    let out = consume_lines(url, &topic, "s", "5", &["--transaction", "commit"]);
    assert_eq!(sorted(&ok(&out)), want);
    let stderr = text(&out.stderr);
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("committed transaction (")),
        "{stderr}"
    );
    // Gone from the subscription: the next message is a plain one sent now.
    ok(&run(
        &["produce", "--url", url, "--topic", &topic, "-m", "sentinel"],
        Duration::from_secs(60),
    ));
    let out = consume_lines(url, &topic, "s", "1", &[]);
    assert_eq!(ok(&out), "sentinel\n");
}

#[test]
fn a_transaction_needs_a_message_count_and_its_timeout_needs_a_transaction() {
    let url = format!("pulsar://127.0.0.1:{}", closed_port());
    let out = run(
        &[
            "consume",
            "--url",
            &url,
            "--topic",
            "t",
            "-s",
            "s",
            "-n",
            "0",
            "--transaction",
            "commit",
        ],
        Duration::from_secs(30),
    );
    let line = failed(&out);
    assert!(
        line.contains("--transaction needs -n COUNT above 0"),
        "{line}"
    );
    // --txn-timeout alone and an unknown end are refused by the parser (exit 2).
    for args in [
        &[
            "produce",
            "--url",
            &url,
            "--topic",
            "t",
            "-m",
            "x",
            "--txn-timeout",
            "5",
        ][..],
        &[
            "produce",
            "--url",
            &url,
            "--topic",
            "t",
            "-m",
            "x",
            "--transaction",
            "maybe",
        ][..],
    ] {
        let out = run(args, Duration::from_secs(30));
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn the_transfer_example_moves_each_message_exactly_once() {
    let url = txn_broker().url();
    let input = support::unique_topic("transfer-in");
    let output = support::unique_topic("transfer-out");
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["run", "--quiet", "--example", "transfer"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("PULSAR_URL", url)
        .env("TRANSFER_INPUT", &input)
        .env("TRANSFER_OUTPUT", &output)
        .env("TRANSFER_SEED", "5")
        .env("TRANSFER_COUNT", "5")
        .env_remove("PULSAR_TOKEN");
    let out = run_command(cmd, Duration::from_secs(600));
    let stdout = ok(&out);
    assert!(
        stdout.contains("Transferred 5 messages exactly once"),
        "{stdout}"
    );
    let out = consume_lines(url, &output, "check", "5", &["--json"]);
    let stdout = ok(&out);
    let mut payloads = Vec::new();
    for line in stdout.lines() {
        let v = json::parse(line).unwrap_or_else(|e| panic!("bad JSON ({e}): {line}"));
        payloads.push(v.str_at("payload").expect("payload").to_string());
        let from = v
            .get("properties")
            .and_then(|p| p.str_at("transferred-from"))
            .unwrap_or_else(|| panic!("no transferred-from property: {line}"));
        assert_message_id_shape(from);
    }
    let want: Vec<String> = (0..5).map(|i| format!("ORDER-{i}")).collect();
    assert_eq!(payloads, want);
    // The input is used up on the example's subscription: the next message there is new.
    ok(&run(
        &["produce", "--url", url, "--topic", &input, "-m", "sentinel"],
        Duration::from_secs(60),
    ));
    let out = consume_lines(url, &input, "transfer", "1", &["--type", "shared"]);
    assert_eq!(ok(&out), "sentinel\n");
}

/// Just enough JSON to check `consume --json` (RFC 8259 values, strict).
mod json {
    /// A JSON value; objects keep their members in order.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Value {
        Null,
        Bool(bool),
        Number(f64),
        String(String),
        Array(Vec<Value>),
        Object(Vec<(String, Value)>),
    }

    impl Value {
        pub fn get(&self, key: &str) -> Option<&Value> {
            match self {
                Value::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
                _ => None,
            }
        }

        pub fn as_str(&self) -> Option<&str> {
            match self {
                Value::String(s) => Some(s),
                _ => None,
            }
        }

        pub fn str_at(&self, key: &str) -> Option<&str> {
            self.get(key).and_then(Value::as_str)
        }

        pub fn num_at(&self, key: &str) -> Option<f64> {
            match self.get(key) {
                Some(Value::Number(n)) => Some(*n),
                _ => None,
            }
        }

        pub fn len(&self) -> Option<usize> {
            match self {
                Value::Object(m) => Some(m.len()),
                Value::Array(a) => Some(a.len()),
                _ => None,
            }
        }
    }

    pub fn parse(s: &str) -> Result<Value, String> {
        let mut p = Parser {
            s: s.as_bytes(),
            i: 0,
        };
        let v = p.value()?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("trailing data at {}", p.i));
        }
        Ok(v)
    }

    struct Parser<'a> {
        s: &'a [u8],
        i: usize,
    }

    impl Parser<'_> {
        fn ws(&mut self) {
            while self.i < self.s.len() && b" \t\r\n".contains(&self.s[self.i]) {
                self.i += 1;
            }
        }

        fn eat(&mut self, c: u8) -> Result<(), String> {
            self.ws();
            if self.s.get(self.i) == Some(&c) {
                self.i += 1;
                Ok(())
            } else {
                Err(format!("expected {:?} at {}", c as char, self.i))
            }
        }

        fn lit(&mut self, word: &str, v: Value) -> Result<Value, String> {
            if self.s[self.i..].starts_with(word.as_bytes()) {
                self.i += word.len();
                Ok(v)
            } else {
                Err(format!("bad literal at {}", self.i))
            }
        }

        fn value(&mut self) -> Result<Value, String> {
            self.ws();
            match self.s.get(self.i) {
                Some(b'n') => self.lit("null", Value::Null),
                Some(b't') => self.lit("true", Value::Bool(true)),
                Some(b'f') => self.lit("false", Value::Bool(false)),
                Some(b'"') => self.string().map(Value::String),
                Some(b'[') => {
                    self.i += 1;
                    let mut items = Vec::new();
                    self.ws();
                    if self.s.get(self.i) == Some(&b']') {
                        self.i += 1;
                        return Ok(Value::Array(items));
                    }
                    loop {
                        items.push(self.value()?);
                        self.ws();
                        match self.s.get(self.i) {
                            Some(b',') => self.i += 1,
                            Some(b']') => {
                                self.i += 1;
                                return Ok(Value::Array(items));
                            }
                            _ => return Err(format!("bad array at {}", self.i)),
                        }
                    }
                }
                Some(b'{') => {
                    self.i += 1;
                    let mut members = Vec::new();
                    self.ws();
                    if self.s.get(self.i) == Some(&b'}') {
                        self.i += 1;
                        return Ok(Value::Object(members));
                    }
                    loop {
                        self.ws();
                        let k = self.string()?;
                        self.eat(b':')?;
                        let v = self.value()?;
                        if members.iter().any(|(m, _)| *m == k) {
                            return Err(format!("duplicate key {k:?}"));
                        }
                        members.push((k, v));
                        self.ws();
                        match self.s.get(self.i) {
                            Some(b',') => self.i += 1,
                            Some(b'}') => {
                                self.i += 1;
                                return Ok(Value::Object(members));
                            }
                            _ => return Err(format!("bad object at {}", self.i)),
                        }
                    }
                }
                Some(c) if *c == b'-' || c.is_ascii_digit() => {
                    let start = self.i;
                    while self.i < self.s.len() && b"+-.eE0123456789".contains(&self.s[self.i]) {
                        self.i += 1;
                    }
                    let text =
                        std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?;
                    text.parse()
                        .map(Value::Number)
                        .map_err(|_| format!("bad number {text:?}"))
                }
                _ => Err(format!("unexpected input at {}", self.i)),
            }
        }

        fn hex4(&mut self) -> Result<u32, String> {
            let h = self.s.get(self.i..self.i + 4).ok_or("short \\u escape")?;
            let h = std::str::from_utf8(h).map_err(|e| e.to_string())?;
            self.i += 4;
            u32::from_str_radix(h, 16).map_err(|e| e.to_string())
        }

        fn string(&mut self) -> Result<String, String> {
            if self.s.get(self.i) != Some(&b'"') {
                return Err(format!("expected a string at {}", self.i));
            }
            self.i += 1;
            let mut out = String::new();
            loop {
                let start = self.i;
                while self.i < self.s.len() && self.s[self.i] != b'"' && self.s[self.i] != b'\\' {
                    if self.s[self.i] < 0x20 {
                        return Err(format!("raw control character at {}", self.i));
                    }
                    self.i += 1;
                }
                out.push_str(
                    std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?,
                );
                match self.s.get(self.i) {
                    Some(b'"') => {
                        self.i += 1;
                        return Ok(out);
                    }
                    Some(b'\\') => {
                        self.i += 1;
                        let c = *self.s.get(self.i).ok_or("unterminated escape")?;
                        self.i += 1;
                        match c {
                            b'"' => out.push('"'),
                            b'\\' => out.push('\\'),
                            b'/' => out.push('/'),
                            b'b' => out.push('\u{8}'),
                            b'f' => out.push('\u{c}'),
                            b'n' => out.push('\n'),
                            b'r' => out.push('\r'),
                            b't' => out.push('\t'),
                            b'u' => {
                                let mut cp = self.hex4()?;
                                if (0xd800..0xdc00).contains(&cp) {
                                    if !self.s[self.i..].starts_with(b"\\u") {
                                        return Err("lone surrogate".into());
                                    }
                                    self.i += 2;
                                    let lo = self.hex4()?;
                                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                                }
                                out.push(char::from_u32(cp).ok_or("bad code point")?);
                            }
                            _ => return Err(format!("bad escape at {}", self.i)),
                        }
                    }
                    _ => return Err("unterminated string".into()),
                }
            }
        }
    }
}

// --- TLS, --auth-plugin and --listener-name (against the TLS terminator in front of the test
// broker, and the scripted peer) ---

/// [`run`] from an async test (the TLS terminator and the peer run on its runtime).
async fn run_async(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&args, Duration::from_secs(60))
    })
    .await
    .expect("the CLI run")
}

/// `args` as owned strings, with the paths as text.
fn owned(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Vec<String> {
    args.iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect()
}

/// Produces 3 messages with `extra` connection flags to `url`, then consumes them with the same
/// flags; asserts they come back.
async fn tls_round_trip(url: &str, extra: &[String]) {
    let topic = support::unique_topic("cli-tls");
    let mut args = owned(&[
        &"produce", &"--url", &url, &"--topic", &topic, &"-m", &"tls-{i}",
    ]);
    args.extend(["-n", "3"].map(String::from));
    args.extend_from_slice(extra);
    let out = run_async(args).await;
    let stdout = ok(&out);
    assert!(stdout.starts_with("produced 3 messages"), "{stdout}");
    let mut args = owned(&[&"consume", &"--url", &url, &"--topic", &topic]);
    args.extend(
        [
            "-s",
            "sub",
            "--initial",
            "earliest",
            "-n",
            "3",
            "--timeout",
            "20",
        ]
        .map(String::from),
    );
    args.extend_from_slice(extra);
    let out = run_async(args).await;
    let stdout = ok(&out);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines, ["tls-0", "tls-1", "tls-2"], "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn produce_and_consume_over_tls_with_the_trust_certs_file() {
    let pki = Pki::new(&["localhost", "127.0.0.1"]);
    let proxy = TlsProxy::start(&pki, false, support::broker().addr()).await;
    let flags = owned(&[&"--tls-trust-certs-file", &pki.ca]);
    tls_round_trip(&proxy.url("localhost"), &flags).await;
    assert!(proxy.handshakes() >= 2, "both commands came through TLS");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_untrusted_ca_fails_with_one_error_line_naming_the_flag() {
    let pki = Pki::new(&["localhost"]);
    let proxy = TlsProxy::start(&pki, false, support::broker().addr()).await;
    let url = proxy.url("localhost");
    let mut args = owned(&[
        &"produce",
        &"--url",
        &url,
        &"--topic",
        &"t",
        &"-m",
        &"x",
        &"--tls-trust-certs-file",
        &pki.other_ca,
    ]);
    args.extend(["--operation-timeout", "3"].map(String::from));
    let line = failed(&run_async(args).await);
    assert!(line.contains("certificate not trusted"), "{line}");
    assert!(line.contains("--tls-trust-certs-file"), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn insecure_and_no_hostname_verification_accept_what_the_checks_refuse() {
    // Signed by the test CA but for another name: refused by default, accepted without the
    // host name check; any certificate is accepted with --tls-allow-insecure-connection.
    let pki = Pki::new(&["broker.example"]);
    let proxy = TlsProxy::start(&pki, false, support::broker().addr()).await;
    let url = proxy.url("localhost");
    let mut args = owned(&[&"produce", &"--url", &url, &"--topic", &"t", &"-m", &"x"]);
    args.extend(["--operation-timeout", "3"].map(String::from));
    args.extend(owned(&[&"--tls-trust-certs-file", &pki.ca]));
    let line = failed(&run_async(args).await);
    assert!(
        line.contains("hostname mismatch") && line.contains("--tls-hostname-verification false"),
        "{line}"
    );
    let flags = owned(&[
        &"--tls-trust-certs-file",
        &pki.ca,
        &"--tls-hostname-verification",
        &"false",
    ]);
    tls_round_trip(&url, &flags).await;
    tls_round_trip(&url, &["--tls-allow-insecure-connection".to_string()]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mutual_tls_with_the_cert_and_key_flags_and_with_the_tls_plugin() {
    let pki = Pki::new(&["localhost"]);
    let proxy = TlsProxy::start(&pki, true, support::broker().addr()).await;
    let url = proxy.url("localhost");
    let flags = owned(&[
        &"--tls-trust-certs-file",
        &pki.ca,
        &"--tls-cert-file",
        &pki.client_cert,
        &"--tls-key-file",
        &pki.client_key,
    ]);
    tls_round_trip(&url, &flags).await;
    // The official CLI's form: the plugin sends the certificate (and the `tls` method, which
    // pulsar-lite does not check; tests/cli_apache_security.rs checks it on Apache Pulsar).
    let params = format!(
        "tlsCertFile:{},tlsKeyFile:{}",
        pki.client_cert.display(),
        pki.client_key.display()
    );
    let flags = owned(&[
        &"--tls-trust-certs-file",
        &pki.ca,
        &"--auth-plugin",
        &"org.apache.pulsar.client.impl.auth.AuthenticationTls",
        &"--auth-params",
        &params,
    ]);
    tls_round_trip(&url, &flags).await;
    // Without a certificate the terminator refuses the handshake.
    let mut args = owned(&[&"produce", &"--url", &url, &"--topic", &"t", &"-m", &"x"]);
    args.extend(["--operation-timeout", "3"].map(String::from));
    args.extend(owned(&[&"--tls-trust-certs-file", &pki.ca]));
    let line = failed(&run_async(args).await);
    assert!(
        line.contains("--tls-cert-file and --tls-key-file"),
        "says which flags give a certificate: {line}"
    );
}

#[test]
fn bad_tls_and_auth_flags_fail_with_one_error_line_that_says_what_to_fix() {
    let pki = Pki::new(&["localhost"]);
    let cert = pki.client_cert.to_string_lossy().into_owned();
    let key = pki.client_key.to_string_lossy().into_owned();
    let tls_params = format!("tlsCertFile:{cert},tlsKeyFile:/nonexistent/pulsar-wire/key.pem");
    let token = "org.apache.pulsar.client.impl.auth.AuthenticationToken";
    let tls = "org.apache.pulsar.client.impl.auth.AuthenticationTls";
    let ssl = "pulsar+ssl://127.0.0.1:1";
    let cases: &[(&[&str], &str, &[&str])] = &[
        (&["--tls-cert-file", &cert], ssl, &["needs --tls-key-file"]),
        (&["--tls-key-file", &key], ssl, &["needs --tls-cert-file"]),
        (
            &["--tls-trust-certs-file", "/nonexistent/pulsar-wire/ca.pem"],
            ssl,
            &["cannot read the --tls-trust-certs-file", "ca.pem"],
        ),
        (
            &[
                "--tls-cert-file",
                &cert,
                "--tls-key-file",
                "/nonexistent/k.pem",
            ],
            ssl,
            &["cannot read the --tls-key-file"],
        ),
        (
            &["--auth-plugin", "org.example.Mine", "--auth-params", "x"],
            ssl,
            &["unknown --auth-plugin", token],
        ),
        (
            &["--auth-plugin", token],
            ssl,
            &["needs --auth-params", "token:"],
        ),
        (
            &[
                "--auth-plugin",
                token,
                "--auth-params",
                "file:///nonexistent/pulsar-wire/t",
            ],
            ssl,
            &["cannot read the token file"],
        ),
        (
            &["--auth-plugin", tls, "--auth-params", "tlsCertFile:/c.pem"],
            ssl,
            &["tlsKeyFile"],
        ),
        (
            &["--auth-plugin", tls, "--auth-params", "{\"tlsCertFile\":"],
            ssl,
            &["not valid JSON"],
        ),
        (
            &["--auth-plugin", tls, "--auth-params", &tls_params],
            ssl,
            &["cannot read the tlsKeyFile"],
        ),
        (
            &[
                "--auth-plugin",
                tls,
                "--auth-params",
                &format!("tlsCertFile:{cert},tlsKeyFile:{key}"),
            ],
            "pulsar://127.0.0.1:1",
            &["pulsar+ssl://"],
        ),
        (&["--auth-params", "token:x"], ssl, &["needs --auth-plugin"]),
        (
            &[
                "--auth-plugin",
                "org.apache.pulsar.client.impl.auth.AuthenticationBasic",
                "--auth-params",
                "{\"userId\":\"u\"}",
            ],
            ssl,
            &["AuthenticationBasic needs --auth-params"],
        ),
        (
            &[
                "--auth-plugin",
                "org.apache.pulsar.client.impl.auth.oauth2.AuthenticationFactoryOAuth2",
                "--auth-params",
                "{\"type\":\"jwt_bearer\",\"issuerUrl\":\"https://issuer\",\
                 \"privateKey\":\"file:///k.json\"}",
            ],
            ssl,
            &["type \"jwt_bearer\" is not supported", "client_credentials"],
        ),
        (
            &[
                "--auth-plugin",
                "org.apache.pulsar.client.impl.auth.oauth2.AuthenticationOAuth2",
                "--auth-params",
                "{\"issuerUrl\":\"https://issuer\",\"privateKey\":\"data:text/plain,x\"}",
            ],
            ssl,
            &["AuthenticationOAuth2", "not application/json"],
        ),
        (
            &["--listener-name", " "],
            ssl,
            &["--listener-name is empty"],
        ),
    ];
    for (flags, url, wants) in cases {
        let mut args = vec!["produce", "--url", url, "--topic", "t", "-m", "x"];
        args.extend_from_slice(flags);
        let out = run(&args, Duration::from_secs(30));
        let line = failed(&out);
        for want in *wants {
            assert!(line.contains(want), "{flags:?}: want {want:?} in {line}");
        }
    }
}

#[test]
fn auth_plugin_and_token_flags_conflict() {
    let out = run(
        &[
            "produce",
            "--url",
            "pulsar://127.0.0.1:1",
            "--topic",
            "t",
            "-m",
            "x",
            "--token",
            "a",
            "--auth-plugin",
            "token",
            "--auth-params",
            "b",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(2), "a bad command line");
    assert!(
        text(&out.stderr).contains("cannot be used with"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_listener_name_flag_reaches_the_lookup_and_an_unknown_one_fails_clearly() {
    use pulsar_wire::wire::proto;
    use support::peer::{Lookup, Peer, Type};

    let mut peer = Peer::start().await;
    let url = peer.url();
    let args = owned(&[
        &"produce",
        &"--url",
        &url,
        &"--topic",
        &"persistent://public/default/cli-listener",
        &"-m",
        &"x",
        &"--listener-name",
        &"external",
    ]);
    ok(&run_async(args).await);
    let lookup = peer.expect(Type::Lookup).await.command.lookup_topic;
    assert_eq!(
        lookup.and_then(|l| l.advertised_listener_name).as_deref(),
        Some("external")
    );

    peer.set_lookup(Lookup::Failed {
        code: proto::ServerError::ServiceNotReady as i32,
        message: "the broker do not have nowhere listener".into(),
    });
    let args = owned(&[
        &"produce",
        &"--url",
        &url,
        &"--topic",
        &"persistent://public/default/cli-listener-2",
        &"-m",
        &"x",
        &"--listener-name",
        &"nowhere",
    ]);
    let line = failed(&run_async(args).await);
    assert!(
        line.contains("no listener named \"nowhere\"") && line.contains("advertisedListeners"),
        "{line}"
    );
}

// --- end-to-end encryption ---------------------------------------------------------------------

fn crypto_key(name: &str) -> String {
    format!("{}/tests/data/crypto/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn consume_args<'a>(
    url: &'a str,
    topic: &'a str,
    sub: &'a str,
    n: &'a str,
    timeout: &'a str,
) -> Vec<&'a str> {
    vec![
        "consume",
        "--url",
        url,
        "--topic",
        topic,
        "-s",
        sub,
        "-t",
        "shared",
        "--initial",
        "earliest",
        "-n",
        n,
        "--timeout",
        timeout,
    ]
}

/// `produce --encryption-key --crypto-public-key` → the library decrypts; the library encrypts
/// → `consume --crypto-private-key` decrypts; a wrong key fails (one error line), discards or
/// consumes (`--json`: `"encrypted": true` and the encryption context) as told.
#[test]
fn encrypted_messages_between_the_cli_and_the_library() {
    use pulsar_wire::{
        ConsumerCryptoFailureAction, DefaultCryptoKeyReader, InitialPosition, PulsarClient,
        SubscriptionType,
    };
    let url = support::broker().url();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let client = rt
        .block_on(async { PulsarClient::builder(url).build() })
        .expect("client");

    // CLI → library, two names each with its public key; the library holds only rsa-b's.
    let topic = support::unique_topic("cli-e2e-to-lib");
    let (a_pub, b_pub) = (crypto_key("rsa-a.pub.pem"), crypto_key("rsa-b.pub.pem"));
    let out = run(
        &[
            "produce",
            "--url",
            url,
            "--topic",
            &topic,
            "-m",
            "secret {i}",
            "-n",
            "3",
            "--encryption-key",
            "rsa-a",
            "--encryption-key",
            "rsa-b",
            "--crypto-public-key",
            &a_pub,
            "--crypto-public-key",
            &b_pub,
        ],
        Duration::from_secs(60),
    );
    assert!(ok(&out).contains(", 0 failed"));
    rt.block_on(async {
        let mut c = client
            .consumer(&topic)
            .subscription("lib")
            .subscription_type(SubscriptionType::Shared)
            .initial_position(InitialPosition::Earliest)
            .crypto_key_reader(
                DefaultCryptoKeyReader::new().private_key("rsa-b", crypto_key("rsa-b.pkcs1.pem")),
            )
            .subscribe()
            .await
            .expect("subscribe");
        for i in 0..3 {
            let m = tokio::time::timeout(Duration::from_secs(20), c.receive())
                .await
                .expect("in time")
                .expect("decrypted");
            assert_eq!(m.payload_str(), Some(format!("secret {i}").as_str()));
            assert!(!m.is_encrypted());
            c.ack(&m).await.expect("ack");
        }
        // What the broker stores is not the text.
        let mut raw = client
            .consumer(&topic)
            .subscription("raw")
            .initial_position(InitialPosition::Earliest)
            .crypto_failure_action(ConsumerCryptoFailureAction::Consume)
            .subscribe()
            .await
            .expect("subscribe");
        let m = tokio::time::timeout(Duration::from_secs(20), raw.receive())
            .await
            .expect("in time")
            .expect("undecrypted");
        assert!(m.is_encrypted());
        assert!(!m.payload().windows(6).any(|w| w == b"secret"));
        let names: Vec<String> = m
            .encryption_context()
            .map(|ctx| ctx.keys.iter().map(|k| k.name.clone()).collect())
            .unwrap_or_default();
        assert_eq!(names, ["rsa-a", "rsa-b"], "one data key per name");
    });
    // Two names and three keys: refused before connecting.
    let line = failed(&run(
        &[
            "produce",
            "--url",
            url,
            "--topic",
            &topic,
            "-m",
            "x",
            "--encryption-key",
            "a",
            "--encryption-key",
            "b",
            "--crypto-public-key",
            &a_pub,
            "--crypto-public-key",
            &b_pub,
            "--crypto-public-key",
            &a_pub,
        ],
        Duration::from_secs(30),
    ));
    assert!(line.contains("one per name"), "{line}");

    // Library → CLI.
    let topic = support::unique_topic("cli-e2e-from-lib");
    rt.block_on(async {
        let p = client
            .producer(&topic)
            .encryption_key("rsa-a")
            .crypto_key_reader(
                DefaultCryptoKeyReader::new().default_public_key(crypto_key("rsa-a.pub.pem")),
            )
            .create()
            .await
            .expect("producer");
        for i in 0..2 {
            p.send(format!("from the library {i}")).await.expect("send");
        }
    });
    let a_priv = crypto_key("rsa-a.pkcs8.pem");
    let mut args = consume_args(url, &topic, "cli", "2", "20");
    args.extend(["--crypto-private-key", &a_priv]);
    let stdout = ok(&run(&args, Duration::from_secs(60)));
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["from the library 0", "from the library 1"]
    );
    let named = format!("rsa-a={a_priv}");
    let mut args = consume_args(url, &topic, "cli-named", "1", "20");
    args.extend(["--crypto-private-key", &named, "--json"]);
    let stdout = ok(&run(&args, Duration::from_secs(60)));
    assert!(
        stdout.contains("\"payload\":\"from the library 0\""),
        "{stdout}"
    );
    assert!(stdout.contains("\"encrypted\":false"), "{stdout}");

    // A wrong key: fail (one error line, the message kept), discard, consume.
    let b_priv = crypto_key("rsa-b.pkcs1.pem");
    let mut args = consume_args(url, &topic, "wrong", "1", "20");
    args.extend(["--crypto-private-key", &b_priv]);
    let line = failed(&run(&args, Duration::from_secs(60)));
    assert!(
        line.contains("rsa-a") && line.contains("another key"),
        "{line}"
    );
    let mut args = consume_args(url, &topic, "wrong", "2", "20");
    args.extend(["--crypto-private-key", &a_priv]);
    let stdout = ok(&run(&args, Duration::from_secs(60)));
    assert_eq!(
        stdout.lines().count(),
        2,
        "what fail left is there: {stdout}"
    );

    let mut args = consume_args(url, &topic, "discard", "1", "3");
    args.extend([
        "--crypto-private-key",
        &b_priv,
        "--crypto-failure-action",
        "discard",
    ]);
    let line = failed(&run(&args, Duration::from_secs(60)));
    assert!(
        line.contains("timed out"),
        "discarded, nothing printed: {line}"
    );
    let mut args = consume_args(url, &topic, "discard", "1", "3");
    args.extend(["--crypto-private-key", &a_priv]);
    let line = failed(&run(&args, Duration::from_secs(60)));
    assert!(
        line.contains("timed out"),
        "discard acknowledged them: {line}"
    );

    let mut args = consume_args(url, &topic, "consume", "2", "20");
    args.extend(["--crypto-failure-action", "consume", "--json"]);
    let stdout = ok(&run(&args, Duration::from_secs(60)));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    for line in lines {
        assert!(line.contains("\"encrypted\":true"), "{line}");
        assert!(line.contains("\"payload_base64\":"), "{line}");
        assert!(!line.contains("from the library"), "{line}");
        assert!(
            line.contains(
                "\"encryption_context\":{\"keys\":[{\"name\":\"rsa-a\",\"value_base64\":"
            ),
            "{line}"
        );
        assert!(
            line.contains("\"param_base64\":") && line.contains("\"algorithm\":null"),
            "{line}"
        );
        assert!(line.contains("\"compression\":\"none\""), "{line}");
    }
    rt.block_on(async { client.close().await }).expect("close");
}
