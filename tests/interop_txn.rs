//! Transactions across clients, on Apache Pulsar with the transaction coordinator on: what
//! pulsar-wire commits reaches the official Java and C++ (Python `pulsar-client`) consumers and
//! what it aborts never does; the same for a Java producer's transactions seen by pulsar-wire;
//! a Java consumer's acknowledgements in a transaction take effect on commit only; Java and
//! pulsar-wire transactions open at the same time on one topic and one subscription each get
//! exactly their own outcome, and each client's transaction conflicts on a message the other's
//! holds; and a kill -9 of the broker in the middle of a pulsar-wire transaction is
//! all-or-nothing.
//!
//! The Java side is `pulsarwire.JavaPeer` (tests/apache-pulsar/src/main/java), built by
//! `scripts/java-peer.sh build` (which `scripts/apache-pulsar.sh install` runs): `produce` and
//! `consume` with a `"transaction"` field, and `session`, which takes one command per stdin line
//! and answers each with one JSON line, so that a test can interleave the Java client's
//! transactions with its own. The C++ side is `tests/interop/consume.py` in the project
//! virtualenv (`scripts/setup-broker.sh`); the C++ client has no transactions, it only
//! consumes.
//!
//! "Never delivered" is shown without waiting for nothing: a plain message sent after the
//! transactions end (the sentinel) is received, and nothing forbidden came before it. The broker
//! holds back everything after an open transaction's first message until it ends.
//!
//! Every test but the kill -9 one shares one Apache Pulsar standalone of this binary (with
//! transactions and batch-index acks on); the kill -9 test starts a private one.

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use pulsar_wire::{
    Error, MessageId, ProducerMessage, PulsarClient, SendReceipt, ServerErrorCode,
    SubscriptionType, Transaction, TxnState,
};
use serde_json::{json, Value};
use support::java::{events, Peer, PEER_TIMEOUT};
use support::txn::{receive, subscribe, text, until_sentinel};

fn options() -> support::ApacheOptions {
    support::txn::options()
}

fn broker() -> &'static support::Broker {
    support::apache_with(&options())
}

fn client_of(url: &str, operation_timeout: Duration) -> PulsarClient {
    PulsarClient::builder(url)
        .operation_timeout(operation_timeout)
        .build()
        .expect("client")
}

fn client() -> PulsarClient {
    client_of(broker().url(), Duration::from_secs(30))
}

async fn new_txn(client: &PulsarClient) -> Transaction {
    client
        .new_transaction()
        .timeout(Duration::from_secs(120))
        .build()
        .await
        .expect("new transaction")
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

fn set<'a>(items: impl IntoIterator<Item = &'a String>) -> BTreeSet<String> {
    items.into_iter().cloned().collect()
}

/// Asserts `seen` has no duplicates and is exactly `expected`.
fn assert_exactly(seen: &[String], expected: &BTreeSet<String>, what: &str) {
    let distinct = set(seen);
    assert_eq!(distinct.len(), seen.len(), "{what}: duplicates in {seen:?}");
    assert_eq!(&distinct, expected, "{what}: got {seen:?}");
}

// --- the Java peer -----------------------------------------------------------------------------

/// Starts a `JavaPeer session` on this suite's broker (commands through [`Peer::call`]).
async fn session() -> Peer {
    Peer::start(broker().url(), "session", json!({})).await
}

/// Runs `JavaPeer <command>` to its end.
async fn java(command: &'static str, spec: Value) -> Vec<Value> {
    support::java::run(broker().url(), command, spec).await
}

fn one<'a>(lines: &'a [Value], event: &str) -> &'a Value {
    let found = events(lines, event);
    assert_eq!(found.len(), 1, "one {event:?} line in {lines:?}");
    found[0]
}

/// The payloads (as text) of the peer's `message` lines.
fn java_payloads(lines: &[Value]) -> Vec<String> {
    events(lines, "message")
        .iter()
        .map(|l| {
            let hex = l["payload_hex"].as_str().expect("payload_hex");
            let bytes: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
                .collect();
            String::from_utf8(bytes).expect("a text payload")
        })
        .collect()
}

/// The id of a message as the session's `ack` command takes it.
fn id_json(id: MessageId) -> Value {
    json!({"ledger_id": id.ledger_id, "entry_id": id.entry_id, "partition": id.partition})
}

/// A Java transaction's `txn`/`result`/`txn_end` line says the end went as wanted.
fn assert_java_end(line: &Value, action: &str) {
    assert_eq!(line["action"], action, "{line}");
    assert_eq!(
        line["ok"], true,
        "the Java client's {action} failed: {line}"
    );
    let state = if action == "commit" {
        "COMMITTED"
    } else {
        "ABORTED"
    };
    assert_eq!(line["state"], state, "{line}");
}

// --- the official C++ client -------------------------------------------------------------------

fn python() -> PathBuf {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(".venv")
        .join("bin")
        .join("python");
    assert!(
        python.is_file(),
        "the official Python client is missing ({} does not exist): run scripts/setup-broker.sh",
        python.display()
    );
    python
}

/// `tests/interop/consume.py` for `count` messages on `sub` (Shared, from Earliest, each
/// acknowledged): the payloads of every message it printed, in order, extras included.
async fn cpp_consume(topic: &str, sub: &str, count: usize) -> Vec<String> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/consume.py");
    let count = count.to_string();
    let mut cmd = tokio::process::Command::new(python());
    cmd.arg(&script)
        .args(["--url", broker().url(), "--topic", topic])
        .args(["--subscription", sub, "--count", &count])
        .args(["--timeout-s", "90", "--extra-wait-ms", "1"])
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONIOENCODING", "utf-8")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(PEER_TIMEOUT, cmd.output())
        .await
        .expect("consume.py finishes")
        .expect("run consume.py");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "consume.py failed ({})\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        output.status
    );
    let lines: Vec<Value> = stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("consume.py prints JSON"))
        .collect();
    assert!(
        lines.iter().any(|l| l["event"] == "done"),
        "consume.py did not finish its {count} messages: {stdout}"
    );
    lines
        .iter()
        .filter(|l| l["event"] == "message")
        .map(|l| l["data_text"].as_str().expect("a text payload").to_string())
        .collect()
}

// --- a: pulsar-wire's transactions seen by the official clients --------------------------------

#[tokio::test]
async fn what_pulsar_wire_commits_reaches_the_java_and_cpp_consumers_and_what_it_aborts_never() {
    let client = client();
    let topic = support::unique_topic("txn-wire-to-official");
    // Batched: the official clients unpack the transaction's batches.
    let producer = client
        .producer(&topic)
        .batching_max_publish_delay(Duration::from_millis(5))
        .batching_max_messages(4)
        .create()
        .await
        .expect("producer");
    let committed = new_txn(&client).await;
    let aborted = new_txn(&client).await;
    let keep = names("commit", 10);
    let drop_ = names("abort", 10);
    // The two transactions open at once, their sends interleaved.
    let mut receipts: Vec<SendReceipt> = Vec::new();
    for (k, d) in keep.iter().zip(&drop_) {
        for (payload, txn) in [(k, &committed), (d, &aborted)] {
            receipts.push(
                producer
                    .send_async(ProducerMessage::new(payload.clone()).transaction(txn))
                    .await
                    .expect("send in a transaction"),
            );
        }
    }
    for r in receipts {
        r.await.expect("receipt of a send in a transaction");
    }
    aborted.abort().await.expect("abort");
    committed.commit().await.expect("commit");
    producer.send("sentinel").await.expect("sentinel");

    let mut expected = set(&keep);
    expected.insert("sentinel".to_string());
    let java_spec = json!({"topic": topic, "subscription": "java", "count": expected.len()});
    let (java_lines, cpp) = tokio::join!(
        java("consume", java_spec),
        cpp_consume(&topic, "cpp", expected.len())
    );
    let java_seen = java_payloads(&java_lines);
    // Each stopped at the count: an aborted message among them would have taken a place.
    assert_exactly(&java_seen, &expected, "the Java consumer");
    assert_exactly(&cpp, &expected, "the C++ consumer");
    for seen in [&java_seen, &cpp] {
        assert!(
            !seen.iter().any(|s| s.starts_with("abort")),
            "an aborted message was delivered: {seen:?}"
        );
    }
}

// --- b: the Java client's transactions seen by pulsar-wire -------------------------------------

#[tokio::test]
async fn what_a_java_transaction_commits_reaches_pulsar_wire_and_what_it_aborts_never() {
    let client = client();
    let topic = support::unique_topic("txn-java-to-wire");
    let mut consumer = subscribe(&client, &topic, "wire", SubscriptionType::Exclusive).await;
    let messages = |prefix: &str| -> Vec<Value> {
        names(prefix, 6)
            .iter()
            .map(|p| json!({"payload_hex": p.bytes().map(|b| format!("{b:02x}")).collect::<String>()}))
            .collect()
    };
    // Committed, batched; aborted, one at a time; committed again.
    let runs = [
        ("java-c1", "commit", true),
        ("java-a", "abort", false),
        ("java-c2", "commit", false),
    ];
    let mut expected = BTreeSet::new();
    for (prefix, action, batching) in runs {
        let lines = java(
            "produce",
            json!({
                "topic": topic,
                "transaction": action,
                "transaction_timeout_ms": 120000,
                "batching": batching,
                "batch_max_messages": 3,
                "messages": messages(prefix),
            }),
        )
        .await;
        let txn = one(&lines, "txn");
        let end = one(&lines, "txn_end");
        assert_eq!(txn["txn_id"], end["txn_id"]);
        assert_java_end(end, action);
        assert_eq!(events(&lines, "sent").len(), 6, "{lines:?}");
        if action == "commit" {
            expected.extend(names(prefix, 6));
        }
    }
    let producer = client.producer(&topic).create().await.expect("producer");
    producer.send("sentinel").await.expect("sentinel");
    let seen = until_sentinel(&mut consumer, "sentinel").await;
    assert!(
        !seen.iter().any(|s| s.starts_with("java-a")),
        "an aborted message was delivered: {seen:?}"
    );
    assert_exactly(&seen, &expected, "pulsar-wire");
}

#[tokio::test]
async fn acks_of_a_java_consumer_in_a_transaction_take_effect_on_commit_only() {
    let client = client();
    let topic = support::unique_topic("txn-java-acks");
    let producer = client.producer(&topic).create().await.expect("producer");
    let sent = names("m", 5);
    for p in &sent {
        producer.send(p.as_str()).await.expect("send");
    }
    let mut got = Vec::new();
    for action in ["abort", "commit"] {
        let lines = java(
            "consume",
            json!({
                "topic": topic,
                "subscription": "s",
                "count": sent.len(),
                "transaction": action,
            }),
        )
        .await;
        assert_java_end(one(&lines, "txn_end"), action);
        got.push(java_payloads(&lines));
    }
    // The aborted acks were undone: the second run got the same messages again.
    assert_exactly(&got[0], &set(&sent), "the Java consumer, first run");
    assert_exactly(&got[1], &set(&sent), "the Java consumer after its abort");
    // The committed ones stay.
    let mut consumer = subscribe(&client, &topic, "s", SubscriptionType::Shared).await;
    producer.send("sentinel").await.expect("sentinel");
    let seen = until_sentinel(&mut consumer, "sentinel").await;
    assert!(
        seen.is_empty(),
        "acknowledged in a committed Java transaction, yet delivered again: {seen:?}"
    );
}

// --- c: Java and pulsar-wire transactions at the same time -------------------------------------

/// A Java transaction and a pulsar-wire one open at once on one topic: each sends three
/// messages to it and acknowledges three distinct messages of one subscription ("work"),
/// interleaved; then one commits and the other aborts. A second subscription ("check") sees
/// exactly the committed sends; "work" gives back exactly the messages the aborted one
/// acknowledged, and the committed sends.
async fn interleaved(ours_commit: bool) {
    let client = client();
    let topic = support::unique_topic("txn-interleaved");
    let mut check = subscribe(&client, &topic, "check", SubscriptionType::Exclusive).await;
    let mut work = subscribe(&client, &topic, "work", SubscriptionType::Shared).await;
    let plain = client.producer(&topic).create().await.expect("producer");
    let before = names("plain", 6);
    for p in &before {
        plain.send(p.as_str()).await.expect("send");
    }
    // All six are delivered to pulsar-wire's consumer (it is alone on "work"); the Java one
    // acknowledges its three by id.
    let mut held = Vec::new();
    for _ in 0..before.len() {
        held.push(receive(&mut work).await);
    }
    held.sort_by_key(text);
    assert_eq!(held.iter().map(text).collect::<Vec<_>>(), before);

    let mut peer = session().await;
    peer.call_ok(
        json!({"op": "subscribe", "consumer": "j", "topic": topic, "subscription": "work"}),
    )
    .await;
    let opened = peer
        .call_ok(json!({"op": "new_txn", "name": "tj", "timeout_ms": 120000}))
        .await;
    let ours = new_txn(&client).await;
    println!(
        "Java txn {}, pulsar-wire txn {}",
        opened["txn_id"],
        ours.id()
    );
    let producer = client.producer(&topic).create().await.expect("producer");
    let (java_sends, wire_sends) = (names("java", 3), names("wire", 3));
    for i in 0..3 {
        peer.call_ok(
            json!({"op": "send", "topic": topic, "txn": "tj", "payloads": [java_sends[i]]}),
        )
        .await;
        producer
            .send(ProducerMessage::new(wire_sends[i].clone()).transaction(&ours))
            .await
            .expect("send in our transaction");
        let result = peer
            .call_ok(json!({"op": "ack", "consumer": "j", "txn": "tj", "ids": [id_json(held[3 + i].id())]}))
            .await;
        assert_eq!(result["acks"][0]["ok"], true, "{result}");
        work.ack_with_transaction(&held[i], &ours)
            .await
            .expect("ack in our transaction");
    }
    let java_action = if ours_commit { "abort" } else { "commit" };
    // The one that aborts ends first: the commit after it is not held up by it.
    if ours_commit {
        let end = peer
            .call(json!({"op": "end", "txn": "tj", "action": java_action}))
            .await;
        assert_java_end(&end, java_action);
        ours.commit().await.expect("our commit");
        assert_eq!(ours.state(), TxnState::Committed);
    } else {
        ours.abort().await.expect("our abort");
        assert_eq!(ours.state(), TxnState::Aborted);
        let end = peer
            .call(json!({"op": "end", "txn": "tj", "action": java_action}))
            .await;
        assert_java_end(&end, java_action);
    }
    peer.finish().await;
    plain.send("sentinel").await.expect("sentinel");

    let (committed_sends, aborted_acks) = if ours_commit {
        (&wire_sends, &before[3..])
    } else {
        (&java_sends, &before[..3])
    };
    let seen = until_sentinel(&mut check, "sentinel").await;
    let mut expected = set(&before);
    expected.extend(committed_sends.iter().cloned());
    assert_exactly(&seen, &expected, "the check subscription");

    // "work" again, from a new consumer: what the aborted transaction acknowledged comes
    // back, what the committed one acknowledged never.
    work.close().await.expect("close");
    let mut work = subscribe(&client, &topic, "work", SubscriptionType::Shared).await;
    let seen = until_sentinel(&mut work, "sentinel").await;
    let mut expected = set(aborted_acks);
    expected.extend(committed_sends.iter().cloned());
    assert_exactly(&seen, &expected, "the work subscription");
}

#[tokio::test]
async fn java_and_pulsar_wire_transactions_interleave_ours_commits_the_java_one_aborts() {
    interleaved(true).await;
}

#[tokio::test]
async fn java_and_pulsar_wire_transactions_interleave_the_java_one_commits_ours_aborts() {
    interleaved(false).await;
}

/// A message acknowledged in a pulsar-wire transaction cannot be acknowledged in a Java one
/// (the Java client fails with its TransactionConflictException), and the other way round
/// (pulsar-wire fails with TransactionConflict); the transaction with the failed ack cannot
/// commit, the one that holds the message can, and its ack stays.
#[tokio::test]
async fn each_clients_transaction_conflicts_on_a_message_the_others_transaction_holds() {
    let client = client();
    let topic = support::unique_topic("txn-cross-conflict");
    let mut work = subscribe(&client, &topic, "work", SubscriptionType::Shared).await;
    let plain = client.producer(&topic).create().await.expect("producer");
    for p in ["first", "second"] {
        plain.send(p).await.expect("send");
    }
    let mut held = [receive(&mut work).await, receive(&mut work).await];
    held.sort_by_key(text);
    let (first, second) = (&held[0], &held[1]);
    assert_eq!(
        (text(first), text(second)),
        ("first".into(), "second".into())
    );

    let mut peer = session().await;
    peer.call_ok(
        json!({"op": "subscribe", "consumer": "j", "topic": topic, "subscription": "work"}),
    )
    .await;
    peer.call_ok(json!({"op": "new_txn", "name": "tj1", "timeout_ms": 120000}))
        .await;
    peer.call_ok(json!({"op": "new_txn", "name": "tj2", "timeout_ms": 120000}))
        .await;

    // Ours holds "first": the Java transaction's ack of it conflicts.
    let ours1 = new_txn(&client).await;
    work.ack_with_transaction(first, &ours1)
        .await
        .expect("our ack of first");
    let result = peer
        .call(json!({"op": "ack", "consumer": "j", "txn": "tj1", "ids": [id_json(first.id())]}))
        .await;
    let ack = &result["acks"][0];
    assert_eq!(ack["ok"], false, "the Java ack of a held message: {result}");
    assert_eq!(
        ack["error_class"], "TransactionConflictException",
        "{result}"
    );

    // The Java one holds "second": ours conflicts.
    peer.call_ok(
        json!({"op": "ack", "consumer": "j", "txn": "tj2", "ids": [id_json(second.id())]}),
    )
    .await;
    let ours2 = new_txn(&client).await;
    let e = work
        .ack_with_transaction(second, &ours2)
        .await
        .expect_err("our ack of a message the Java transaction holds");
    println!("our conflicting ack: {e}");
    assert_eq!(
        e.server_error().map(|s| s.code),
        Some(ServerErrorCode::TransactionConflict),
        "{e:?}"
    );

    // The holders commit; the others cannot.
    ours1.commit().await.expect("our commit of first");
    let end = peer
        .call(json!({"op": "end", "txn": "tj2", "action": "commit"}))
        .await;
    assert_java_end(&end, "commit");
    let end = peer
        .call(json!({"op": "end", "txn": "tj1", "action": "commit"}))
        .await;
    println!("the Java commit after a failed ack: {end}");
    assert_eq!(end["ok"], false, "a Java commit after a failed ack: {end}");
    assert_eq!(
        end["error_class"], "TransactionHasOperationFailedException",
        "{end}"
    );
    assert_eq!(end["state"], "ABORTED", "{end}");
    let e = ours2
        .commit()
        .await
        .expect_err("our commit after a failed ack");
    assert!(
        matches!(e, Error::TransactionAborted { failed: 1, .. }),
        "{e:?}"
    );
    assert_eq!(ours2.state(), TxnState::Aborted);
    peer.finish().await;

    // Both acks of the holders took effect: nothing comes back.
    work.close().await.expect("close");
    let mut work = subscribe(&client, &topic, "work", SubscriptionType::Shared).await;
    plain.send("sentinel").await.expect("sentinel");
    let seen = until_sentinel(&mut work, "sentinel").await;
    assert!(
        seen.is_empty(),
        "delivered again after committed acks: {seen:?}"
    );
}

// --- d: kill -9 in the middle of a transaction -------------------------------------------------

/// One transaction of the kill -9 test: its topic, its producer, its messages.
struct Doomed {
    what: &'static str,
    topic: String,
    producer: pulsar_wire::Producer,
    txn: Transaction,
    sent: Vec<String>,
    /// The receipts not awaited before the kill.
    receipts: Vec<SendReceipt>,
}

impl Doomed {
    /// Opens a transaction with `timeout` and sends 10 messages in it to a topic of its own
    /// (5 with `half`), awaiting their receipts when `receipts_first`.
    async fn start(
        client: &PulsarClient,
        what: &'static str,
        timeout: Duration,
        receipts_first: bool,
        half: bool,
    ) -> Doomed {
        let topic = support::unique_topic("txn-kill9");
        let producer = client
            .producer(&topic)
            .batching(false)
            .send_timeout(Duration::from_secs(300))
            .create()
            .await
            .expect("producer");
        let txn = client
            .new_transaction()
            .timeout(timeout)
            .build()
            .await
            .expect("new transaction");
        let mut doomed = Doomed {
            what,
            topic,
            producer,
            txn,
            sent: Vec::new(),
            receipts: Vec::new(),
        };
        doomed.send(if half { 5 } else { 10 }).await;
        if receipts_first {
            for r in doomed.receipts.drain(..) {
                r.await.expect("receipt before the kill");
            }
        }
        doomed
    }

    /// Queues `n` more sends in the transaction (their receipts awaited later).
    async fn send(&mut self, n: usize) {
        for _ in 0..n {
            let payload = format!("{}-{}", self.what, self.sent.len());
            self.receipts.push(
                self.producer
                    .send_async(ProducerMessage::new(payload.clone()).transaction(&self.txn))
                    .await
                    .expect("send in the transaction"),
            );
            self.sent.push(payload);
        }
    }

    /// After the restart: awaits the receipts left, commits, and checks all-or-nothing.
    async fn commit_and_check(self, client: &PulsarClient) {
        let what = self.what;
        let mut failed_sends = 0;
        for r in self.receipts {
            if let Err(e) = r.await {
                println!("{what}: a send failed across the restart: {e}");
                failed_sends += 1;
            }
        }
        let outcome = self.txn.commit().await;
        println!(
            "{what}: commit after the restart ({failed_sends} sends failed, state {:?}): {outcome:?}",
            self.txn.state()
        );
        let committed = match &outcome {
            Ok(()) => {
                assert_eq!(
                    failed_sends, 0,
                    "{what}: a commit succeeded after a failed send"
                );
                assert_eq!(self.txn.state(), TxnState::Committed, "{what}");
                true
            }
            Err(e) => {
                assert!(
                    matches!(
                        e,
                        Error::TransactionNotOpen { .. }
                            | Error::TransactionAborted { .. }
                            | Error::Server { .. }
                            | Error::Timeout { .. }
                    ),
                    "{what}: the failed commit's error is not a typed one: {e:?}"
                );
                // Best effort: the broker also aborts it at its timeout.
                if let Err(e) = self.txn.abort().await {
                    println!("{what}: abort after the failed commit: {e}");
                }
                false
            }
        };
        // Held back until the broker has ended the transaction.
        self.producer.send("sentinel").await.expect("sentinel");
        let mut consumer =
            subscribe(client, &self.topic, "check", SubscriptionType::Exclusive).await;
        let seen = until_sentinel(&mut consumer, "sentinel").await;
        if committed {
            assert_exactly(&seen, &set(&self.sent), what);
        } else {
            assert!(
                seen.is_empty(),
                "{what}: the transaction failed, yet some of it is visible: {seen:?}"
            );
        }
    }
}

/// Three pulsar-wire transactions on a private Apache Pulsar (deduplication on, so that a
/// resent message is stored once), each sending 10 messages to a topic of its own, when the
/// broker is killed with kill -9 and restarted: "short" (10 s timeout, which the restart
/// outlasts) and "stored" (5 min) with every receipt awaited before the kill; "in-flight" (5
/// min) with 5 sends queued just before the kill and 5 more while the broker is down, none
/// awaited. Then each commits: either the commit succeeds and every message of the
/// transaction is visible, exactly once, or it fails with a typed error and none is (the
/// sentinel after it comes once the broker has ended the transaction).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_the_middle_of_transactions_is_all_or_nothing() {
    let options = options().config("brokerDeduplicationEnabled", "true");
    let broker = std::sync::Arc::new(support::Broker::start_apache(options));
    // Long enough for a commit to wait out the restart.
    let client = client_of(broker.url(), Duration::from_secs(180));
    let long = Duration::from_secs(300);
    let short = Doomed::start(&client, "short", Duration::from_secs(10), true, false).await;
    let stored = Doomed::start(&client, "stored", long, true, false).await;
    let mut in_flight = Doomed::start(&client, "in-flight", long, false, true).await;
    let started = std::time::Instant::now();
    let b = broker.clone();
    tokio::task::spawn_blocking(move || b.kill())
        .await
        .expect("kill -9");
    in_flight.send(5).await;
    let b = broker.clone();
    tokio::task::spawn_blocking(move || b.restart())
        .await
        .expect("restart");
    println!("kill -9 and restart took {:?}", started.elapsed());
    for doomed in [stored, in_flight, short] {
        doomed.commit_and_check(&client).await;
    }
    client.close().await.expect("close");
}
