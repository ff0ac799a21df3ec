//! End-to-end encryption interoperability with the official clients, both ways: the C++ client
//! (through its Python wrapper `pulsar-client` 3.13.0, scripts `tests/interop/crypto_produce.py`
//! and `crypto_consume.py`) and the Java client (`JavaPeer produce|consume` with the options of
//! `tests/apache-pulsar/src/main/java/pulsarwire/Crypto.java`).
//!
//! For each peer and each direction: unbatched, batched, compressed (LZ4, ZSTD) and chunked
//! messages; several key names (a consumer holding only the second one's private key); a wrong
//! or missing private key giving the configured crypto failure action (Fail, Discard, Consume)
//! on pulsar-wire's side and on the peer's; which PEM forms each official client reads; and
//! every time, what the broker stores (read by a pulsar-wire consumer with the Consume action
//! and no key) is ciphertext, never the plaintext.
//!
//! The keys are the committed test keys of `tests/data/crypto/`. The tests run on the default
//! broker (pulsar-lite, or Apache Pulsar with `PULSAR_WIRE_BROKER=apache`).
//!
//! `the_golden_vectors_are_what_the_official_clients_write_now` checks that
//! `tests/data/crypto/golden-*.json` (which `tests/encryption_golden.rs` decrypts offline) have
//! the shape of the official clients' output today; with `PULSAR_WIRE_CAPTURE_GOLDEN=1` it
//! writes their fresh output there instead.

mod support;

use support::crypto::{consumer as wire_consumer, key};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use pulsar_wire::compression::Compression;
use pulsar_wire::{
    Consumer, ConsumerCryptoFailureAction, DefaultCryptoKeyReader, Error, Message, ProducerMessage,
    PulsarClient,
};
use serde_json::{json, Value};
use support::java::hex;

/// Liveness guard around each receive of a message that must come.
const RECEIVE_GUARD: Duration = Duration::from_secs(30);
/// How long to listen for messages that must not come.
const QUIET: Duration = Duration::from_secs(3);
/// How long a helper script may run before the test gives up on it.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);
/// The AES-GCM tag appended to every encrypted payload.
const TAG: usize = 16;
/// The plaintext marker in every small test message: never in what the broker stores.
const SECRET: &[u8] = b"SECRET";

fn url() -> &'static str {
    support::broker().url()
}

fn client() -> PulsarClient {
    PulsarClient::builder(url())
        .operation_timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn unb64(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap_or_else(|e| panic!("bad base64 ({e}): {text:.80}"))
}

// --- the messages ------------------------------------------------------------------------------

/// How the messages of a case are sent.
#[derive(Debug, Clone, Copy)]
struct Case {
    name: &'static str,
    batching: bool,
    codec: Compression,
    chunked: bool,
}

const CASES: [Case; 5] = [
    Case {
        name: "plain",
        batching: false,
        codec: Compression::None,
        chunked: false,
    },
    Case {
        name: "batched",
        batching: true,
        codec: Compression::None,
        chunked: false,
    },
    Case {
        name: "batched-lz4",
        batching: true,
        codec: Compression::Lz4,
        chunked: false,
    },
    Case {
        name: "zstd",
        batching: false,
        codec: Compression::Zstd,
        chunked: false,
    },
    Case {
        name: "chunked",
        batching: false,
        codec: Compression::None,
        chunked: true,
    },
];

fn codec_name(codec: Compression) -> &'static str {
    match codec {
        Compression::None => "NONE",
        Compression::Lz4 => "LZ4",
        Compression::Zlib => "ZLIB",
        Compression::Zstd => "ZSTD",
        Compression::Snappy => "SNAPPY",
    }
}

/// Bytes no codec shrinks, without the [`SECRET`] marker.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The payloads of a case: `big` bytes then a small one when chunked, else 12 compressible
/// texts with the [`SECRET`] marker.
fn payloads(case: Case, big: usize) -> Vec<Vec<u8>> {
    if case.chunked {
        return vec![noise(big, 7), b"SECRET small after the big one".to_vec()];
    }
    (0..12)
        .map(|i| {
            format!(
                "SECRET {} message {i}: {}",
                case.name,
                "lorem ipsum ".repeat(10 + i)
            )
            .into_bytes()
        })
        .collect()
}

fn props(i: usize) -> BTreeMap<String, String> {
    BTreeMap::from([("i".to_string(), i.to_string())])
}

// --- pulsar-wire's side ------------------------------------------------------------------------

/// A pulsar-wire producer encrypting for `names` (each with its public key file), sending the
/// case's payloads; waits for every receipt.
async fn wire_produce(topic: &str, case: Case, names: &[(&str, &str)], payloads: &[Vec<u8>]) {
    let client = client();
    let mut reader = DefaultCryptoKeyReader::new();
    let mut b = client.producer(topic);
    for (name, file) in names {
        reader = reader.public_key(*name, key(file));
        b = b.encryption_key(*name);
    }
    let mut b = b
        .crypto_key_reader(reader)
        .batching(case.batching)
        .compression(case.codec);
    if case.batching {
        b = b
            .batching_max_messages(5)
            .batching_max_publish_delay(Duration::from_secs(10));
    }
    if case.chunked {
        b = b.chunking(true).chunk_max_size(64 * 1024);
    }
    let p = b.create().await.expect("an encrypting producer");
    let mut pending = Vec::new();
    for (i, m) in payloads.iter().enumerate() {
        let mut msg = ProducerMessage::new(m.clone());
        for (k, v) in props(i) {
            msg = msg.property(k, v);
        }
        pending.push(p.send_async(msg).await.expect("queued"));
    }
    p.flush().await.expect("flush");
    for r in pending {
        r.await.expect("receipt");
    }
    p.close().await.expect("close");
}

async fn next(c: &mut Consumer, what: &str) -> pulsar_wire::Result<Message> {
    tokio::time::timeout(RECEIVE_GUARD, c.receive())
        .await
        .unwrap_or_else(|_| panic!("{what}: no message within {RECEIVE_GUARD:?}"))
}

/// Receives `payloads` (decrypted, in order, with their properties) and acks them; then
/// nothing more comes.
async fn wire_receive_all(c: &mut Consumer, payloads: &[Vec<u8>], what: &str) {
    for (i, p) in payloads.iter().enumerate() {
        let m = next(c, what)
            .await
            .unwrap_or_else(|e| panic!("{what} message {i}: {e}"));
        assert!(!m.is_encrypted(), "{what} message {i}: decrypted");
        assert_eq!(m.payload().len(), p.len(), "{what} message {i}: size");
        assert!(m.payload().as_ref() == p.as_slice(), "{what} message {i}");
        assert_eq!(m.properties(), &props(i), "{what} message {i}: properties");
        c.ack(&m).await.expect("ack");
    }
    assert_quiet(c, what).await;
}

async fn assert_quiet(c: &mut Consumer, what: &str) {
    match c.receive_timeout(QUIET).await {
        Ok(None) => {}
        Ok(Some(m)) => panic!("{what}: an unexpected message {:?}", m.id()),
        Err(e) => panic!("{what}: an unexpected error {e}"),
    }
}

/// What the broker stores for `topic`: every entry, as a consumer with the Consume action and
/// no key gets it. Each is encrypted, for `names`, with a 12-byte IV, no `encryption_algo` and
/// 256-byte (RSA-2048) data keys, and holds none of the plaintext `payloads`. Returns the
/// entries.
async fn assert_stored_ciphertext(
    topic: &str,
    names: &[&str],
    payloads: &[Vec<u8>],
    what: &str,
) -> Vec<Message> {
    let client = client();
    let mut c = wire_consumer(
        &client,
        topic,
        "raw-reader",
        None,
        ConsumerCryptoFailureAction::Consume,
    )
    .await;
    let mut entries = Vec::new();
    loop {
        let got = if entries.is_empty() {
            Some(next(&mut c, what).await.expect("an undecrypted entry"))
        } else {
            c.receive_timeout(QUIET).await.expect("no error")
        };
        let Some(m) = got else { break };
        assert!(m.is_encrypted(), "{what}: stored encrypted");
        let ctx = m.encryption_context().expect("an encryption context");
        let mut got_names: Vec<&str> = ctx.keys.iter().map(|k| k.name.as_str()).collect();
        if what.starts_with("C++→wire chunked") {
            // The C++ client adds the EncryptionKeys again for every chunk to the metadata the
            // chunks share: chunk i carries each name i + 1 times (checked by the caller).
            got_names.dedup();
        }
        assert_eq!(got_names, names, "{what}: one EncryptionKeys per name");
        for k in &ctx.keys {
            assert_eq!(k.value.len(), 256, "{what}: an RSA-2048 data key");
        }
        assert_eq!(ctx.param.len(), 12, "{what}: a 12-byte IV");
        assert_eq!(ctx.algorithm, None, "{what}: encryption_algo unset");
        assert!(
            !m.payload().windows(SECRET.len()).any(|w| w == SECRET),
            "{what}: the broker holds no plaintext"
        );
        for p in payloads.iter().filter(|p| p.len() >= 64) {
            assert!(
                !m.payload().windows(64).any(|w| w == &p[..64]),
                "{what}: the broker holds no plaintext"
            );
        }
        c.ack(&m).await.expect("ack");
        entries.push(m);
        assert!(entries.len() < 500, "{what}: too many entries");
    }
    entries
}

fn ctx_names(m: &Message) -> Vec<String> {
    m.encryption_context()
        .map(|c| c.keys.iter().map(|k| k.name.clone()).collect())
        .unwrap_or_default()
}

// --- the C++ client (Python) -------------------------------------------------------------------

fn python() -> PathBuf {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        python.is_file(),
        "the official Python client is missing ({} does not exist): run scripts/setup-broker.sh",
        python.display()
    );
    python
}

/// Runs `tests/interop/<script>` with `spec` (plus `url`) on stdin; its JSON lines.
async fn run_py(script: &str, mut spec: Value) -> Vec<Value> {
    use tokio::io::AsyncWriteExt as _;
    spec["url"] = json!(url());
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(script);
    let mut child = tokio::process::Command::new(python())
        .arg(&path)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    let mut stdin = child.stdin.take().expect("stdin");
    let input = serde_json::to_vec(&spec).expect("spec");
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&input).await;
        let _ = stdin.shutdown().await;
    });
    let output = tokio::time::timeout(SCRIPT_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{script} did not finish within {SCRIPT_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    let _ = writer.await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail = |s: &str| {
        s.chars()
            .rev()
            .take(4000)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<String>()
    };
    assert!(
        output.status.success(),
        "{script} failed ({})\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        tail(&stdout),
        tail(&stderr)
    );
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{script} printed bad JSON ({e}): {l:.200}"))
        })
        .collect()
}

fn lines<'a>(all: &'a [Value], event: &str) -> Vec<&'a Value> {
    all.iter().filter(|l| l["event"] == event).collect()
}

fn py_messages(payloads: &[Vec<u8>]) -> Value {
    Value::Array(
        payloads
            .iter()
            .enumerate()
            .map(|(i, p)| json!({"data_b64": b64(p), "properties": props(i)}))
            .collect(),
    )
}

/// The C++ producer: `names` all encrypted with the one public key file (its key reader has
/// one public key for every name).
async fn cpp_produce(topic: &str, case: Case, names: &[&str], public: &str, payloads: &[Vec<u8>]) {
    let out = run_py(
        "crypto_produce.py",
        json!({
            "topic": topic,
            "messages": py_messages(payloads),
            "encryption_keys": names,
            "public_key": key(public),
            "compression": codec_name(case.codec),
            "batching": case.batching,
            "batch_max_messages": 5,
            "chunking": case.chunked,
        }),
    )
    .await;
    assert_eq!(lines(&out, "sent").len(), payloads.len(), "{out:?}");
    assert_eq!(lines(&out, "done").len(), 1);
}

/// The C++ consumer: its `message` lines, and whether all `count` came in time.
async fn cpp_consume(
    topic: &str,
    sub: &str,
    count: usize,
    private: Option<&str>,
    action: &str,
) -> (Vec<Value>, bool) {
    let mut spec = json!({
        "topic": topic,
        "subscription": sub,
        "count": count,
        "crypto_failure_action": action,
        "timeout_s": if count == 0 { 1 } else { 60 },
        "quiet_ms": QUIET.as_millis() as u64,
    });
    if let Some(p) = private {
        spec["private_key"] = json!(key(p));
        spec["public_key"] = json!(key("rsa-a.pub.pem"));
    }
    let out = run_py("crypto_consume.py", spec).await;
    let done = !lines(&out, "done").is_empty();
    (lines(&out, "message").into_iter().cloned().collect(), done)
}

fn assert_cpp_decrypted(got: &[Value], payloads: &[Vec<u8>], names: &[&str], what: &str) {
    assert_eq!(got.len(), payloads.len(), "{what}: every message once");
    for (i, (line, p)) in got.iter().zip(payloads).enumerate() {
        assert_eq!(line["encrypted"], false, "{what} message {i}: decrypted");
        let data = unb64(line["data_b64"].as_str().expect("data_b64"));
        assert!(&data == p, "{what} message {i}: payload");
        assert_eq!(
            line["properties"],
            json!(props(i)),
            "{what} message {i}: properties"
        );
        let ctx_names: Vec<&str> = line["context"]["keys"]
            .as_array()
            .map(|k| k.iter().filter_map(|k| k["name"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(ctx_names, names, "{what} message {i}: the key names");
    }
}

#[tokio::test]
async fn wire_encrypts_cpp_decrypts() {
    for case in CASES {
        let what = format!("wire→C++ {}", case.name);
        let topic = support::unique_topic(&format!("e2e-w2c-{}", case.name));
        let payloads = payloads(case, 300_000);
        wire_produce(&topic, case, &[("rsa-a", "rsa-a.pub.pem")], &payloads).await;
        let (got, done) = cpp_consume(
            &topic,
            "cpp",
            payloads.len(),
            Some("rsa-a.pkcs1.pem"),
            "FAIL",
        )
        .await;
        assert!(done, "{what}: the C++ consumer got every message: {got:?}");
        assert_cpp_decrypted(&got, &payloads, &["rsa-a"], &what);
        let stored = assert_stored_ciphertext(&topic, &["rsa-a"], &payloads, &what).await;
        if case.batching {
            assert!(
                stored.len() < payloads.len(),
                "{what}: batches: {} entries",
                stored.len()
            );
        }
        if case.chunked {
            assert!(
                stored.len() >= 6,
                "{what}: 300 KB in 64 KiB chunks and one more"
            );
        }
    }
}

#[tokio::test]
async fn cpp_encrypts_wire_decrypts() {
    let client = client();
    for case in CASES {
        let what = format!("C++→wire {}", case.name);
        let topic = support::unique_topic(&format!("e2e-c2w-{}", case.name));
        // The C++ client chunks at the broker's max message size (5 MiB).
        let payloads = payloads(case, 6 * 1024 * 1024);
        cpp_produce(&topic, case, &["rsa-a"], "rsa-a.pub.pem", &payloads).await;
        let mut c = wire_consumer(
            &client,
            &topic,
            "wire",
            Some(DefaultCryptoKeyReader::new().default_private_key(key("rsa-a.pkcs8.pem"))),
            ConsumerCryptoFailureAction::Fail,
        )
        .await;
        wire_receive_all(&mut c, &payloads, &what).await;
        let stored = assert_stored_ciphertext(&topic, &["rsa-a"], &payloads, &what).await;
        if case.batching {
            assert!(
                stored.len() < payloads.len(),
                "{what}: batches: {} entries",
                stored.len()
            );
            assert!(
                stored
                    .iter()
                    .all(|m| m.encryption_context().and_then(|c| c.batch_size).is_some()),
                "{what}: batches"
            );
        }
        if case.chunked {
            assert_eq!(stored.len(), 3, "{what}: 6 MiB in two chunks and one more");
            let copies: Vec<usize> = stored
                .iter()
                .map(|m| m.encryption_context().map_or(0, |c| c.keys.len()))
                .collect();
            assert_eq!(
                copies,
                [1, 2, 1],
                "{what}: the C++ client's EncryptionKeys per chunk"
            );
        }
        if case.codec != Compression::None {
            assert!(
                stored
                    .iter()
                    .all(|m| m.encryption_context().map(|c| c.compression) == Some(case.codec)),
                "{what}: compressed"
            );
        }
    }
}

/// pulsar-wire encrypts for rsa-a and rsa-b: a C++ consumer with only rsa-b's private key
/// decrypts. The C++ producer encrypts for two names (with its one public key, rsa-a's): a
/// pulsar-wire consumer with a private key for the second name only decrypts.
#[tokio::test]
async fn several_keys_with_cpp() {
    let case = CASES[0];
    let payloads = payloads(case, 0);
    let topic = support::unique_topic("e2e-w2c-two-keys");
    wire_produce(
        &topic,
        case,
        &[("rsa-a", "rsa-a.pub.pem"), ("rsa-b", "rsa-b.pub.pem")],
        &payloads,
    )
    .await;
    let (got, done) = cpp_consume(
        &topic,
        "cpp",
        payloads.len(),
        Some("rsa-b.pkcs1.pem"),
        "FAIL",
    )
    .await;
    assert!(
        done,
        "the C++ consumer with rsa-b's key got every message: {got:?}"
    );
    assert_cpp_decrypted(&got, &payloads, &["rsa-a", "rsa-b"], "wire→C++ two keys");

    let topic = support::unique_topic("e2e-c2w-two-keys");
    cpp_produce(
        &topic,
        case,
        &["first", "second"],
        "rsa-a.pub.pem",
        &payloads,
    )
    .await;
    let client = client();
    let mut c = wire_consumer(
        &client,
        &topic,
        "only-second",
        Some(DefaultCryptoKeyReader::new().private_key("second", key("rsa-a.pkcs1.pem"))),
        ConsumerCryptoFailureAction::Fail,
    )
    .await;
    wire_receive_all(&mut c, &payloads, "C++→wire two keys").await;
    assert_stored_ciphertext(&topic, &["first", "second"], &payloads, "C++→wire two keys").await;
}

/// A C++ consumer with a wrong private key (rsa-b's) or none: FAIL delivers nothing (the
/// messages stay for a consumer with the key), DISCARD delivers nothing and acknowledges, CONSUME
/// delivers the ciphertext with its encryption context.
#[tokio::test]
async fn cpp_consumer_crypto_failure_actions() {
    let case = CASES[0];
    let payloads: Vec<Vec<u8>> = payloads(case, 0).into_iter().take(2).collect();
    let topic = support::unique_topic("e2e-w2c-actions");
    wire_produce(&topic, case, &[("rsa-a", "rsa-a.pub.pem")], &payloads).await;
    let stored = assert_stored_ciphertext(&topic, &["rsa-a"], &payloads, "stored").await;

    for (sub, private) in [("fail-wrong", Some("rsa-b.pkcs1.pem")), ("fail-none", None)] {
        let (got, _) = cpp_consume(&topic, sub, 0, private, "FAIL").await;
        assert!(got.is_empty(), "FAIL ({sub}) delivers nothing: {got:?}");
    }
    let (got, _) = cpp_consume(&topic, "discard", 0, Some("rsa-b.pkcs1.pem"), "DISCARD").await;
    assert!(got.is_empty(), "DISCARD delivers nothing: {got:?}");
    for (sub, private) in [
        ("consume-wrong", Some("rsa-b.pkcs1.pem")),
        ("consume-none", None),
    ] {
        let (got, done) = cpp_consume(&topic, sub, payloads.len(), private, "CONSUME").await;
        assert!(done, "CONSUME ({sub}) delivers: {got:?}");
        assert_eq!(got.len(), payloads.len());
        for (i, (line, p)) in got.iter().zip(&payloads).enumerate() {
            assert_eq!(line["encrypted"], true, "{sub} {i}: undecrypted");
            let data = unb64(line["data_b64"].as_str().expect("data"));
            assert_eq!(data.len(), p.len() + TAG, "{sub} {i}: ciphertext and tag");
            assert_eq!(
                &data[..],
                stored[i].payload().as_ref(),
                "{sub} {i}: the stored bytes"
            );
            let ctx = &line["context"];
            assert_eq!(unb64(ctx["param_b64"].as_str().expect("param")).len(), 12);
            assert_eq!(ctx["keys"][0]["name"], "rsa-a");
            assert_eq!(
                unb64(ctx["keys"][0]["value_b64"].as_str().expect("key")).len(),
                256
            );
        }
    }
    // What FAIL left, a consumer with the key gets; what DISCARD acknowledged is gone.
    let client = client();
    let with_key =
        || Some(DefaultCryptoKeyReader::new().default_private_key(key("rsa-a.pkcs1.pem")));
    let mut c = wire_consumer(
        &client,
        &topic,
        "fail-wrong",
        with_key(),
        ConsumerCryptoFailureAction::Fail,
    )
    .await;
    wire_receive_all(&mut c, &payloads, "after FAIL").await;
    let mut c = wire_consumer(
        &client,
        &topic,
        "discard",
        with_key(),
        ConsumerCryptoFailureAction::Fail,
    )
    .await;
    assert_quiet(&mut c, "after DISCARD").await;
}

/// What pulsar-wire does with C++ messages it cannot decrypt: Fail (an error naming the key,
/// the message kept), Discard (acknowledged), Consume (the ciphertext with its context).
#[tokio::test]
async fn wire_consumer_crypto_failure_actions_on_cpp_messages() {
    let case = CASES[0];
    let payloads: Vec<Vec<u8>> = payloads(case, 0).into_iter().take(2).collect();
    let topic = support::unique_topic("e2e-c2w-actions");
    cpp_produce(&topic, case, &["rsa-a"], "rsa-a.pub.pem", &payloads).await;
    wire_failure_actions(&topic, &payloads, "C++").await;
}

async fn wire_failure_actions(topic: &str, payloads: &[Vec<u8>], peer: &str) {
    let client = client();
    let wrong = || Some(DefaultCryptoKeyReader::new().default_private_key(key("rsa-b.pkcs1.pem")));
    let mut fail = wire_consumer(
        &client,
        topic,
        "fail",
        wrong(),
        ConsumerCryptoFailureAction::Fail,
    )
    .await;
    match next(&mut fail, "Fail").await {
        Err(Error::Encrypted { reason, .. }) => {
            assert!(
                reason.contains("rsa-a") && reason.contains("another key"),
                "{peer}: {reason}"
            )
        }
        other => panic!("{peer}: expected Error::Encrypted, got {other:?}"),
    }
    fail.close().await.expect("close");
    let mut none = wire_consumer(
        &client,
        topic,
        "none",
        None,
        ConsumerCryptoFailureAction::Fail,
    )
    .await;
    match next(&mut none, "Fail without a key").await {
        Err(Error::Encrypted { reason, .. }) => {
            assert!(reason.contains("no crypto key reader"), "{peer}: {reason}")
        }
        other => panic!("{peer}: expected Error::Encrypted, got {other:?}"),
    }
    let mut discard = wire_consumer(
        &client,
        topic,
        "discard",
        wrong(),
        ConsumerCryptoFailureAction::Discard,
    )
    .await;
    assert_quiet(&mut discard, "Discard").await;
    discard.close().await.expect("close");
    let mut consume = wire_consumer(
        &client,
        topic,
        "consume",
        wrong(),
        ConsumerCryptoFailureAction::Consume,
    )
    .await;
    for (i, p) in payloads.iter().enumerate() {
        let m = next(&mut consume, "Consume")
            .await
            .expect("delivered undecrypted");
        assert!(m.is_encrypted(), "{peer} {i}: undecrypted");
        assert_eq!(
            m.payload().len(),
            p.len() + TAG,
            "{peer} {i}: ciphertext and tag"
        );
        assert_eq!(ctx_names(&m), ["rsa-a"]);
        assert_eq!(
            m.properties(),
            &props(i),
            "{peer} {i}: the properties are not encrypted"
        );
        consume.ack(&m).await.expect("ack");
    }
    let right = || Some(DefaultCryptoKeyReader::new().default_private_key(key("rsa-a.pkcs1.pem")));
    let mut after_fail = wire_consumer(
        &client,
        topic,
        "fail",
        right(),
        ConsumerCryptoFailureAction::Fail,
    )
    .await;
    wire_receive_all(&mut after_fail, payloads, &format!("{peer}: after Fail")).await;
    let mut after_discard = wire_consumer(
        &client,
        topic,
        "discard",
        right(),
        ConsumerCryptoFailureAction::Fail,
    )
    .await;
    assert_quiet(&mut after_discard, &format!("{peer}: after Discard")).await;
}

/// The PEM forms the C++ client reads: public keys as SubjectPublicKeyInfo and PKCS#1, private
/// keys as PKCS#1 and PKCS#8 (what the README says).
#[tokio::test]
async fn pem_forms_the_cpp_client_reads() {
    let case = CASES[0];
    let payloads: Vec<Vec<u8>> = payloads(case, 0).into_iter().take(1).collect();
    for public in ["rsa-a.pub.pem", "rsa-a.pkcs1-pub.pem"] {
        let topic = support::unique_topic("e2e-c-forms");
        cpp_produce(&topic, case, &["rsa-a"], public, &payloads).await;
        assert_stored_ciphertext(&topic, &["rsa-a"], &payloads, public).await;
        for private in ["rsa-a.pkcs1.pem", "rsa-a.pkcs8.pem"] {
            let (got, done) = cpp_consume(&topic, private, 1, Some(private), "FAIL").await;
            assert!(done, "C++ with {public} and {private}: {got:?}");
            assert_cpp_decrypted(
                &got,
                &payloads,
                &["rsa-a"],
                &format!("C++ {public} {private}"),
            );
        }
    }
}

// --- the Java client ---------------------------------------------------------------------------

async fn java(command: &'static str, spec: Value) -> Vec<Value> {
    support::java::run(url(), command, spec).await
}

fn java_messages(payloads: &[Vec<u8>]) -> Value {
    Value::Array(
        payloads
            .iter()
            .enumerate()
            .map(|(i, p)| json!({"payload_hex": hex::encode(p), "properties": props(i)}))
            .collect(),
    )
}

/// The Java producer encrypting for `names` (each with its public key file).
async fn java_produce(topic: &str, case: Case, names: &[(&str, &str)], payloads: &[Vec<u8>]) {
    let public: BTreeMap<&str, String> = names.iter().map(|(n, f)| (*n, key(f))).collect();
    let mut spec = json!({
        "topic": topic,
        "messages": java_messages(payloads),
        "encryption_keys": names.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        "public_keys": public,
        "compression": codec_name(case.codec),
        "batching": case.batching,
        "batch_max_messages": 5,
        "chunking": case.chunked,
    });
    if case.chunked {
        spec["chunk_max_size"] = json!(64 * 1024);
    }
    let out = java("produce", spec).await;
    assert_eq!(support::java::events(&out, "sent").len(), payloads.len());
}

/// The Java consumer with `private` keys by name: its `message` lines (waiting for `count`,
/// then [`QUIET`] for more).
async fn java_consume(
    topic: &str,
    sub: &str,
    count: usize,
    private: &[(&str, &str)],
    action: &str,
) -> Vec<Value> {
    let keys: BTreeMap<&str, String> = private.iter().map(|(n, f)| (*n, key(f))).collect();
    let mut spec = json!({
        "topic": topic,
        "subscription": sub,
        "count": count,
        "quiet_ms": QUIET.as_millis() as u64,
        "crypto_failure_action": action,
        "timeout_ms": 90_000,
    });
    if !keys.is_empty() {
        spec["private_keys"] = json!(keys);
    }
    let out = java("consume", spec).await;
    support::java::events(&out, "message")
        .into_iter()
        .cloned()
        .collect()
}

fn assert_java_decrypted(got: &[Value], payloads: &[Vec<u8>], names: &[&str], what: &str) {
    assert_eq!(got.len(), payloads.len(), "{what}: every message once");
    for (i, (line, p)) in got.iter().zip(payloads).enumerate() {
        assert_eq!(line["encrypted"], false, "{what} message {i}: decrypted");
        let data = hex::decode(line["payload_hex"].as_str().expect("payload_hex"));
        assert!(&data == p, "{what} message {i}: payload");
        assert_eq!(
            line["properties"],
            json!(props(i)),
            "{what} message {i}: properties"
        );
        let ctx_names: Vec<&str> = line["encryption_ctx"]["keys"]
            .as_array()
            .map(|k| k.iter().filter_map(|k| k["name"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(ctx_names, names, "{what} message {i}: the key names");
    }
}

#[tokio::test]
async fn wire_encrypts_java_decrypts() {
    for case in CASES {
        let what = format!("wire→Java {}", case.name);
        let topic = support::unique_topic(&format!("e2e-w2j-{}", case.name));
        let payloads = payloads(case, 300_000);
        wire_produce(&topic, case, &[("rsa-a", "rsa-a.pub.pem")], &payloads).await;
        let got = java_consume(
            &topic,
            "java",
            payloads.len(),
            &[("rsa-a", "rsa-a.pkcs1.pem")],
            "FAIL",
        )
        .await;
        assert_java_decrypted(&got, &payloads, &["rsa-a"], &what);
        assert_stored_ciphertext(&topic, &["rsa-a"], &payloads, &what).await;
    }
}

#[tokio::test]
async fn java_encrypts_wire_decrypts() {
    let client = client();
    for case in CASES {
        let what = format!("Java→wire {}", case.name);
        let topic = support::unique_topic(&format!("e2e-j2w-{}", case.name));
        let payloads = payloads(case, 300_000);
        java_produce(&topic, case, &[("rsa-a", "rsa-a.pub.pem")], &payloads).await;
        let mut c = wire_consumer(
            &client,
            &topic,
            "wire",
            Some(DefaultCryptoKeyReader::new().default_private_key(key("rsa-a.pkcs1.pem"))),
            ConsumerCryptoFailureAction::Fail,
        )
        .await;
        wire_receive_all(&mut c, &payloads, &what).await;
        let stored = assert_stored_ciphertext(&topic, &["rsa-a"], &payloads, &what).await;
        if case.batching {
            assert!(
                stored.len() < payloads.len(),
                "{what}: batches: {} entries",
                stored.len()
            );
        }
        if case.chunked {
            assert!(
                stored.len() >= 6,
                "{what}: 300 KB in 64 KiB chunks and one more: {}",
                stored.len()
            );
        }
        if case.codec != Compression::None {
            assert!(
                stored
                    .iter()
                    .all(|m| m.encryption_context().map(|c| c.compression) == Some(case.codec)),
                "{what}: compressed"
            );
        }
    }
}

/// Both ways with two keys, rsa-a and rsa-b, each with its own public key: a consumer holding
/// only rsa-b's private key decrypts.
#[tokio::test]
async fn several_keys_with_java() {
    let case = CASES[1];
    let payloads = payloads(case, 0);
    let names = [("rsa-a", "rsa-a.pub.pem"), ("rsa-b", "rsa-b.pub.pem")];
    let topic = support::unique_topic("e2e-w2j-two-keys");
    wire_produce(&topic, case, &names, &payloads).await;
    let got = java_consume(
        &topic,
        "only-b",
        payloads.len(),
        &[("rsa-b", "rsa-b.pkcs1.pem")],
        "FAIL",
    )
    .await;
    assert_java_decrypted(&got, &payloads, &["rsa-a", "rsa-b"], "wire→Java two keys");

    let topic = support::unique_topic("e2e-j2w-two-keys");
    java_produce(&topic, case, &names, &payloads).await;
    let client = client();
    let mut c = wire_consumer(
        &client,
        &topic,
        "only-b",
        Some(DefaultCryptoKeyReader::new().private_key("rsa-b", key("rsa-b.pkcs8.pem"))),
        ConsumerCryptoFailureAction::Fail,
    )
    .await;
    wire_receive_all(&mut c, &payloads, "Java→wire two keys").await;
    assert_stored_ciphertext(&topic, &["rsa-a", "rsa-b"], &payloads, "Java→wire two keys").await;
}

/// A Java consumer with a wrong private key (rsa-b's) or none: FAIL delivers nothing (the
/// messages stay), DISCARD delivers nothing and acknowledges, CONSUME delivers the ciphertext.
#[tokio::test]
async fn java_consumer_crypto_failure_actions() {
    let case = CASES[0];
    let payloads: Vec<Vec<u8>> = payloads(case, 0).into_iter().take(2).collect();
    let topic = support::unique_topic("e2e-w2j-actions");
    wire_produce(&topic, case, &[("rsa-a", "rsa-a.pub.pem")], &payloads).await;
    let stored = assert_stored_ciphertext(&topic, &["rsa-a"], &payloads, "stored").await;
    let wrong = [("rsa-a", "rsa-b.pkcs1.pem")];
    let got = java_consume(&topic, "fail", 0, &wrong, "FAIL").await;
    assert!(got.is_empty(), "FAIL delivers nothing: {got:?}");
    let got = java_consume(&topic, "discard", 0, &wrong, "DISCARD").await;
    assert!(got.is_empty(), "DISCARD delivers nothing: {got:?}");
    for (sub, keys) in [("consume-wrong", &wrong[..]), ("consume-none", &[][..])] {
        let got = java_consume(&topic, sub, payloads.len(), keys, "CONSUME").await;
        assert_eq!(
            got.len(),
            payloads.len(),
            "CONSUME ({sub}) delivers: {got:?}"
        );
        for (i, line) in got.iter().enumerate() {
            assert_eq!(line["encrypted"], true, "{sub} {i}: undecrypted");
            let data = hex::decode(line["payload_hex"].as_str().expect("payload"));
            assert_eq!(
                &data[..],
                stored[i].payload().as_ref(),
                "{sub} {i}: the stored bytes"
            );
            let ctx = &line["encryption_ctx"];
            assert_eq!(ctx["keys"][0]["name"], "rsa-a");
            assert_eq!(
                ctx["param_hex"].as_str().map(str::len),
                Some(24),
                "a 12-byte IV"
            );
            assert_eq!(ctx["algorithm"], Value::Null);
        }
    }
    let client = client();
    let right = || Some(DefaultCryptoKeyReader::new().default_private_key(key("rsa-a.pkcs1.pem")));
    let mut c = wire_consumer(
        &client,
        &topic,
        "fail",
        right(),
        ConsumerCryptoFailureAction::Fail,
    )
    .await;
    wire_receive_all(&mut c, &payloads, "after Java's FAIL").await;
    let mut c = wire_consumer(
        &client,
        &topic,
        "discard",
        right(),
        ConsumerCryptoFailureAction::Fail,
    )
    .await;
    assert_quiet(&mut c, "after Java's DISCARD").await;
}

/// pulsar-wire's crypto failure actions on Java messages; and the Java producer's refusal of a
/// public key it cannot load, even with the SEND action.
#[tokio::test]
async fn wire_consumer_crypto_failure_actions_on_java_messages() {
    let case = CASES[0];
    let payloads: Vec<Vec<u8>> = payloads(case, 0).into_iter().take(2).collect();
    let topic = support::unique_topic("e2e-j2w-actions");
    java_produce(&topic, case, &[("rsa-a", "rsa-a.pub.pem")], &payloads).await;
    wire_failure_actions(&topic, &payloads, "Java").await;

    // The Java client refuses to create a producer whose public key it cannot load, whatever
    // its crypto failure action (SEND applies to sends only); pulsar-wire's producer with
    // ProducerCryptoFailureAction::Send is created and sends unencrypted (tests/encryption.rs).
    let topic = support::unique_topic("e2e-j2w-send");
    let mut peer = support::java::Peer::start(
        url(),
        "produce",
        json!({
            "topic": topic,
            "messages": java_messages(&payloads),
            "encryption_keys": ["nowhere"],
            "producer_crypto_failure_action": "SEND",
            "default_public_key": key("no-such-key.pem"),
        }),
    )
    .await;
    let mut error = None;
    while let Some(line) = peer.next().await {
        if line["event"] == "error" {
            error = line["message"].as_str().map(str::to_owned);
        }
        assert_ne!(line["event"], "sent", "the Java producer sent: {line}");
    }
    let error = error.expect("the Java producer failed");
    assert!(error.contains("CryptoException"), "{error}");
}

/// The PEM forms the Java client reads: public keys as SubjectPublicKeyInfo and PKCS#1,
/// private keys as PKCS#1 and PKCS#8 (what the README says).
#[tokio::test]
async fn pem_forms_the_java_client_reads() {
    let case = CASES[0];
    let payloads: Vec<Vec<u8>> = payloads(case, 0).into_iter().take(1).collect();
    for public in ["rsa-a.pub.pem", "rsa-a.pkcs1-pub.pem"] {
        let topic = support::unique_topic("e2e-j-forms");
        java_produce(&topic, case, &[("rsa-a", public)], &payloads).await;
        assert_stored_ciphertext(&topic, &["rsa-a"], &payloads, public).await;
        for private in ["rsa-a.pkcs1.pem", "rsa-a.pkcs8.pem"] {
            let got = java_consume(&topic, private, 1, &[("rsa-a", private)], "FAIL").await;
            assert_java_decrypted(
                &got,
                &payloads,
                &["rsa-a"],
                &format!("Java {public} {private}"),
            );
        }
    }
}

// --- golden vectors ----------------------------------------------------------------------------

/// The plaintexts of the golden vectors.
const GOLDEN: [&str; 3] = [
    "golden plaintext: pulsar-wire reads what the official clients write",
    "second message of the batch",
    "third message of the batch",
];

/// Captures what the official clients produce now for [`GOLDEN`] with the committed rsa-a key
/// (the metadata exactly as delivered, protobuf in base64, and the stored payload, taken by a
/// pulsar-wire consumer with Consume and no key through a [`Tap`]) and checks that the
/// committed `tests/data/crypto/golden-*.json` (which `tests/encryption_golden.rs` decrypts
/// with no broker) have the same shape: key names, encrypted data key and IV sizes,
/// compression, batch size, no `encryption_algo`. With `PULSAR_WIRE_CAPTURE_GOLDEN=1` it
/// writes the fresh capture over them instead.
#[tokio::test]
async fn the_golden_vectors_are_what_the_official_clients_write_now() {
    let one: Vec<Vec<u8>> = vec![GOLDEN[0].as_bytes().to_vec()];
    let three: Vec<Vec<u8>> = GOLDEN.iter().map(|s| s.as_bytes().to_vec()).collect();

    let topic = support::unique_topic("golden-java");
    java_produce(&topic, CASES[0], &[("rsa-a", "rsa-a.pub.pem")], &one).await;
    capture(
        &topic,
        "golden-java.json",
        "the Java client 4.0.7, unbatched",
        &one,
    )
    .await;

    let topic = support::unique_topic("golden-java-batch");
    let lz4 = Case {
        name: "batched-lz4",
        batching: true,
        codec: Compression::Lz4,
        chunked: false,
    };
    java_produce(&topic, lz4, &[("rsa-a", "rsa-a.pub.pem")], &three).await;
    capture(
        &topic,
        "golden-java-batch-lz4.json",
        "the Java client 4.0.7, a batch of 3, LZ4",
        &three,
    )
    .await;

    let topic = support::unique_topic("golden-cpp");
    cpp_produce(&topic, CASES[0], &["rsa-a"], "rsa-a.pub.pem", &one).await;
    capture(
        &topic,
        "golden-cpp.json",
        "the C++ client (Python pulsar-client 3.13.0), unbatched",
        &one,
    )
    .await;
}

async fn capture(topic: &str, file: &str, producer: &str, plaintexts: &[Vec<u8>]) {
    use prost::Message as _;
    use pulsar_wire::wire::proto::base_command::Type;
    let tap = support::tap::Tap::start(support::broker().addr()).await;
    let client = PulsarClient::builder(tap.url())
        .operation_timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let mut c = wire_consumer(
        &client,
        topic,
        "golden",
        None,
        ConsumerCryptoFailureAction::Consume,
    )
    .await;
    let m = next(&mut c, file).await.expect("an undecrypted message");
    assert!(m.is_encrypted());
    let seen = tap.seen(false, Type::Message);
    assert_eq!(seen.len(), 1, "one entry");
    let md = support::tap::metadata(&seen[0]).encode_to_vec();
    let text: Vec<String> = plaintexts
        .iter()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    let golden = json!({
        "producer": producer,
        "key_name": "rsa-a",
        "private_key": "rsa-a.pkcs1.pem",
        "plaintexts": text,
        "metadata_b64": b64(&md),
        "payload_b64": b64(m.payload()),
    });
    let path = PathBuf::from(key(file));
    if std::env::var_os("PULSAR_WIRE_CAPTURE_GOLDEN").is_some() {
        let mut body = serde_json::to_string_pretty(&golden).expect("json");
        body.push('\n');
        std::fs::write(&path, body)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        return;
    }
    let committed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display())),
    )
    .expect("golden JSON");
    let decode = |b64: &str| {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("base64");
        pulsar_wire::wire::proto::MessageMetadata::decode(bytes.as_slice()).expect("metadata")
    };
    let shape = |md: &pulsar_wire::wire::proto::MessageMetadata| {
        (
            md.encryption_keys
                .iter()
                .map(|k| (k.key.clone(), k.value.len()))
                .collect::<Vec<_>>(),
            md.encryption_param.as_ref().map(|p| p.len()),
            md.encryption_algo.clone(),
            md.compression,
            md.num_messages_in_batch,
        )
    };
    let fresh = decode(golden["metadata_b64"].as_str().expect("fresh metadata"));
    let old = decode(
        committed["metadata_b64"]
            .as_str()
            .expect("committed metadata"),
    );
    assert_eq!(
        shape(&fresh),
        shape(&old),
        "{producer} writes {file} differently now: recapture with PULSAR_WIRE_CAPTURE_GOLDEN=1"
    );
    assert_eq!(committed["plaintexts"], golden["plaintexts"], "{file}");
}
