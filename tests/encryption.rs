//! End-to-end encryption through the default broker (pulsar-lite, or Apache Pulsar with
//! `PULSAR_WIRE_BROKER=apache`): what a producer encrypts, a consumer with the private key
//! reads (plain, batched, compressed, chunked, several keys, every PEM form), and one without
//! it gets what its crypto failure action says; what the broker stores is not the plaintext.
//! Interop with the Java and C++ clients is in tests/interop_encryption.rs.

mod support;

use support::crypto::{consumer, key};

use std::time::Duration;

use pulsar_wire::compression::Compression;
use pulsar_wire::{
    Consumer, ConsumerCryptoFailureAction, DefaultCryptoKeyReader, Error,
    ProducerCryptoFailureAction, ProducerMessage, PulsarClient,
};

fn client() -> PulsarClient {
    PulsarClient::builder(support::broker().url())
        .operation_timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

async fn next(consumer: &mut Consumer) -> pulsar_wire::Result<pulsar_wire::Message> {
    tokio::time::timeout(Duration::from_secs(20), consumer.receive())
        .await
        .expect("a message within 20 s")
}

fn payload(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[tokio::test]
async fn encrypted_messages_round_trip_plain_batched_compressed_and_chunked() {
    let client = client();
    let cases: [(&str, bool, Compression, bool); 4] = [
        ("plain", false, Compression::None, false),
        ("batched", true, Compression::None, false),
        ("batched-lz4", true, Compression::Lz4, false),
        ("chunked-zstd", false, Compression::Zstd, true),
    ];
    for (what, batching, codec, chunking) in cases {
        let topic = support::unique_topic(&format!("e2e-{what}"));
        let mut c = consumer(
            &client,
            &topic,
            "s",
            Some(DefaultCryptoKeyReader::new().default_private_key(key("rsa-a.pkcs1.pem"))),
            ConsumerCryptoFailureAction::Fail,
        )
        .await;
        let mut b = client
            .producer(&topic)
            .encryption_key("rsa-a")
            .crypto_key_reader(
                DefaultCryptoKeyReader::new().default_public_key(key("rsa-a.pub.pem")),
            )
            .batching(batching)
            .compression(codec);
        if chunking {
            b = b.chunking(true).chunk_max_size(64 * 1024);
        }
        let p = b.create().await.expect("an encrypting producer");
        let messages: Vec<Vec<u8>> = if chunking {
            // Random-looking bytes zstd cannot shrink below several chunks.
            vec![
                (0..300_000u32)
                    .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                    .collect(),
                b"small after".to_vec(),
            ]
        } else {
            (0..20).map(|i| payload(100 + i, i as u8)).collect()
        };
        let mut pending = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            pending.push(
                p.send_async(
                    ProducerMessage::new(m.clone())
                        .property("i", i.to_string())
                        .partition_key(format!("k{i}")),
                )
                .await
                .expect("queued"),
            );
        }
        p.flush().await.expect("flush");
        for r in pending {
            r.await.expect("receipt");
        }
        for (i, m) in messages.iter().enumerate() {
            let got = next(&mut c).await.unwrap_or_else(|e| panic!("{what}: {e}"));
            assert!(!got.is_encrypted(), "{what}: decrypted");
            assert_eq!(got.payload().as_ref(), m.as_slice(), "{what} message {i}");
            assert_eq!(got.properties()["i"], i.to_string());
            assert_eq!(got.partition_key(), Some(format!("k{i}").as_str()));
            c.ack(&got).await.expect("ack");
        }
    }
}

#[tokio::test]
async fn with_several_keys_each_private_key_opens_the_messages() {
    let client = client();
    let topic = support::unique_topic("e2e-two-keys");
    let mut with_b = consumer(
        &client,
        &topic,
        "only-b",
        Some(DefaultCryptoKeyReader::new().private_key("rsa-b", key("rsa-b.pkcs8.pem"))),
        ConsumerCryptoFailureAction::Fail,
    )
    .await;
    let mut with_a = consumer(
        &client,
        &topic,
        "only-a",
        Some(DefaultCryptoKeyReader::new().private_key("rsa-a", key("rsa-a.pkcs8.pem"))),
        ConsumerCryptoFailureAction::Fail,
    )
    .await;
    let p = client
        .producer(&topic)
        .encryption_key("rsa-a")
        .encryption_key("rsa-b")
        .crypto_key_reader(
            DefaultCryptoKeyReader::new()
                .public_key("rsa-a", key("rsa-a.pub.pem"))
                .public_key("rsa-b", key("rsa-b.pub.pem")),
        )
        .create()
        .await
        .expect("producer");
    p.send("for a and b").await.expect("send");
    for c in [&mut with_a, &mut with_b] {
        let m = next(c).await.expect("decrypted");
        assert_eq!(m.payload_str(), Some("for a and b"));
        c.ack(&m).await.expect("ack");
    }
}

#[tokio::test]
async fn a_consumer_that_cannot_decrypt_fails_discards_or_consumes_as_told() {
    let client = client();
    let topic = support::unique_topic("e2e-actions");
    let secret = "the plaintext the broker never sees";
    let mut fail = consumer(
        &client,
        &topic,
        "fail",
        None,
        ConsumerCryptoFailureAction::Fail,
    )
    .await;
    let mut wrong = consumer(
        &client,
        &topic,
        "wrong-key",
        Some(DefaultCryptoKeyReader::new().default_private_key(key("rsa-b.pkcs1.pem"))),
        ConsumerCryptoFailureAction::Fail,
    )
    .await;
    let mut consume = consumer(
        &client,
        &topic,
        "consume",
        None,
        ConsumerCryptoFailureAction::Consume,
    )
    .await;
    let mut discard = consumer(
        &client,
        &topic,
        "discard",
        None,
        ConsumerCryptoFailureAction::Discard,
    )
    .await;
    let p = client
        .producer(&topic)
        .encryption_key("rsa-a")
        .crypto_key_reader(DefaultCryptoKeyReader::new().default_public_key(key("rsa-a.pub.pem")))
        .batching(false)
        .create()
        .await
        .expect("producer");
    let id = p.send(secret).await.expect("send");
    p.send("second").await.expect("send");

    match next(&mut fail).await {
        Err(Error::Encrypted {
            id: got, reason, ..
        }) => {
            assert_eq!(got, id);
            assert!(reason.contains("no crypto key reader"), "{reason}");
        }
        other => panic!("expected Error::Encrypted, got {other:?}"),
    }
    match next(&mut wrong).await {
        Err(Error::Encrypted { reason, .. }) => {
            assert!(
                reason.contains("another key"),
                "says the key is wrong: {reason}"
            );
        }
        other => panic!("expected Error::Encrypted, got {other:?}"),
    }
    // Consume: the stored bytes, with what it takes to decrypt them.
    let raw = next(&mut consume).await.expect("delivered encrypted");
    assert!(raw.is_encrypted());
    assert_eq!(raw.id(), id);
    assert!(
        !raw.payload()
            .windows(secret.len())
            .any(|w| w == secret.as_bytes()),
        "the broker holds ciphertext"
    );
    assert_eq!(
        raw.payload().len(),
        secret.len() + 16,
        "ciphertext and GCM tag"
    );
    let ctx = raw.encryption_context().expect("an encryption context");
    assert_eq!(ctx.keys.len(), 1);
    assert_eq!(ctx.keys[0].name, "rsa-a");
    assert_eq!(ctx.param.len(), 12);
    assert_eq!(ctx.algorithm, None);
    consume.ack(&raw).await.expect("ack");
    // Discard: acknowledged on the broker, never delivered; nothing comes.
    assert!(
        discard
            .receive_timeout(Duration::from_secs(2))
            .await
            .expect("no error")
            .is_none(),
        "discarded messages are not delivered"
    );
}

#[tokio::test]
async fn unreadable_encryption_keys_fail_the_producer_whatever_its_crypto_failure_action() {
    let client = client();
    let topic = support::unique_topic("e2e-bad-key");
    let err = client
        .producer(&topic)
        .encryption_key("nowhere")
        .crypto_key_reader(DefaultCryptoKeyReader::new().default_public_key("/no/such/key.pem"))
        .create()
        .await
        .expect_err("no public key");
    match &err {
        Error::Crypto(e) => assert!(e.to_string().contains("/no/such/key.pem"), "{e}"),
        other => panic!("expected Error::Crypto, got {other:?}"),
    }
    let err = client
        .producer(&topic)
        .encryption_key("private-as-public")
        .crypto_key_reader(DefaultCryptoKeyReader::new().default_public_key(key("rsa-a.pkcs1.pem")))
        .create()
        .await
        .expect_err("a private key is not a public key");
    assert!(err.to_string().contains("private key"), "{err}");

    // Not even with the Send action, as in the Java client: Send is for a message that
    // cannot be encrypted, not for a producer that never could encrypt.
    let err = client
        .producer(&topic)
        .encryption_key("nowhere")
        .crypto_key_reader(DefaultCryptoKeyReader::new().default_public_key("/no/such/key.pem"))
        .crypto_failure_action(ProducerCryptoFailureAction::Send)
        .create()
        .await
        .expect_err("no public key, whatever the action");
    assert!(matches!(err, Error::Crypto(_)), "{err:?}");
}

#[tokio::test]
async fn a_reader_with_the_private_key_reads_encrypted_messages() {
    let client = client();
    let topic = support::unique_topic("e2e-reader");
    let p = client
        .producer(&topic)
        .encryption_key("rsa-a")
        .crypto_key_reader(DefaultCryptoKeyReader::new().default_public_key(key("rsa-a.pub.pem")))
        .create()
        .await
        .expect("producer");
    for i in 0..3 {
        p.send(format!("r{i}")).await.expect("send");
    }
    let mut reader = client
        .reader(&topic)
        .start_message_id(pulsar_wire::MessageId::EARLIEST)
        .crypto_key_reader(
            DefaultCryptoKeyReader::new().default_private_key(key("rsa-a.pkcs8.pem")),
        )
        .create()
        .await
        .expect("reader");
    for i in 0..3 {
        let m = tokio::time::timeout(Duration::from_secs(20), reader.next())
            .await
            .expect("in time")
            .expect("decrypted");
        assert_eq!(m.payload_str(), Some(format!("r{i}").as_str()));
    }
}
