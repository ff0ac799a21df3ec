//! Golden vectors: what the Java client (4.0.7) and the C++ client (Python pulsar-client
//! 3.13.0) wrote for fixed plaintexts with the committed rsa-a key, as a broker delivered it
//! (`tests/data/crypto/golden-*.json`: the message metadata as protobuf and the stored
//! payload, captured by `the_golden_vectors_are_what_the_official_clients_write_now` in
//! tests/interop_encryption.rs). Decrypted
//! here with no broker: the frame is pushed to a pulsar-wire consumer by the scripted peer
//! (tests/support/peer.rs). The metadata's encryption fields are checked to be as the official
//! clients write them.

mod support;

use std::time::Duration;

use base64::Engine as _;
use prost::Message as _;
use pulsar_wire::compression::Compression;
use pulsar_wire::wire::proto::{base_command::Type, MessageMetadata};
use pulsar_wire::{
    Consumer, ConsumerCryptoFailureAction, DefaultCryptoKeyReader, Error, InitialPosition,
    PulsarClient, SubscriptionType,
};
use serde_json::Value;
use support::peer::{self, Peer};

const TOPIC: &str = "persistent://public/default/golden";

struct Golden {
    file: &'static str,
    plaintexts: Vec<String>,
    metadata: MessageMetadata,
    payload: Vec<u8>,
}

fn path(name: &str) -> String {
    format!("{}/tests/data/crypto/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn load(file: &'static str) -> Golden {
    let text = std::fs::read_to_string(path(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
    let b64 = |k: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(v[k].as_str().unwrap_or_else(|| panic!("{file}: no {k}")))
            .unwrap_or_else(|e| panic!("{file}: {k}: {e}"))
    };
    Golden {
        file,
        plaintexts: v["plaintexts"]
            .as_array()
            .expect("plaintexts")
            .iter()
            .map(|p| p.as_str().expect("a text").to_owned())
            .collect(),
        metadata: MessageMetadata::decode(&b64("metadata_b64")[..]).expect("metadata"),
        payload: b64("payload_b64"),
    }
}

fn all() -> Vec<Golden> {
    [
        "golden-java.json",
        "golden-java-batch-lz4.json",
        "golden-cpp.json",
    ]
    .into_iter()
    .map(load)
    .collect()
}

async fn guard<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .unwrap_or_else(|_| panic!("{what} hung"))
}

/// A consumer on the scripted peer; the consumer id the peer saw.
async fn subscribe(
    peer: &mut Peer,
    keys: Option<DefaultCryptoKeyReader>,
    action: ConsumerCryptoFailureAction,
) -> (PulsarClient, Consumer, u64) {
    let client = PulsarClient::builder(peer.url())
        .operation_timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let mut b = client
        .consumer(TOPIC)
        .subscription("s")
        .subscription_type(SubscriptionType::Shared)
        .initial_position(InitialPosition::Earliest)
        .crypto_failure_action(action);
    if let Some(k) = keys {
        b = b.crypto_key_reader(k);
    }
    let consumer = guard("subscribe", b.subscribe()).await.expect("subscribe");
    let id = peer
        .expect(Type::Subscribe)
        .await
        .command
        .subscribe
        .map(|s| s.consumer_id)
        .expect("subscribe body");
    (client, consumer, id)
}

#[test]
fn the_official_clients_write_the_encryption_fields_as_pulsar_wire_does() {
    for g in all() {
        let md = &g.metadata;
        let what = g.file;
        assert_eq!(md.encryption_algo, None, "{what}: encryption_algo absent");
        assert_eq!(
            md.encryption_param.as_ref().map(|p| p.len()),
            Some(12),
            "{what}: a 12-byte IV"
        );
        assert_eq!(
            md.encryption_keys.len(),
            1,
            "{what}: one EncryptionKeys per name"
        );
        assert_eq!(md.encryption_keys[0].key, "rsa-a", "{what}");
        assert_eq!(md.encryption_keys[0].value.len(), 256, "{what}: RSA-2048");
        assert!(
            md.encryption_keys[0].metadata.is_empty(),
            "{what}: no key metadata"
        );
        let plain: usize = g.plaintexts.iter().map(String::len).sum();
        if md.num_messages_in_batch.is_some() {
            assert_eq!(md.num_messages_in_batch, Some(3), "{what}");
            assert_eq!(
                md.compression,
                Some(Compression::Lz4.to_wire()),
                "{what}: LZ4"
            );
        } else {
            assert_eq!(
                g.payload.len(),
                plain + 16,
                "{what}: ciphertext and GCM tag"
            );
            assert!(
                md.compression.is_none_or(|c| c == 0),
                "{what}: no compression"
            );
        }
        let secret = g.plaintexts[0].as_bytes();
        assert!(
            !g.payload.windows(secret.len()).any(|w| w == secret),
            "{what}: ciphertext"
        );
    }
}

#[tokio::test]
async fn golden_vectors_decrypt_with_the_private_key_in_each_pem_form() {
    for private in ["rsa-a.pkcs1.pem", "rsa-a.pkcs8.pem"] {
        for g in all() {
            let what = format!("{} with {private}", g.file);
            let mut peer = Peer::start().await;
            let (_client, mut consumer, id) = subscribe(
                &mut peer,
                Some(DefaultCryptoKeyReader::new().default_private_key(path(private))),
                ConsumerCryptoFailureAction::Fail,
            )
            .await;
            peer.push(peer::with_payload(
                &peer::message(id, 7, 1),
                &g.metadata,
                &g.payload,
            ));
            for (i, text) in g.plaintexts.iter().enumerate() {
                let m = guard(&what, consumer.receive())
                    .await
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                assert!(!m.is_encrypted(), "{what}");
                assert_eq!(m.payload_str(), Some(text.as_str()), "{what}: message {i}");
            }
        }
    }
}

#[tokio::test]
async fn golden_vectors_without_the_key_are_delivered_as_stored_or_refused() {
    for g in all() {
        let what = g.file;
        // Consume: the stored bytes and the context to decrypt them.
        let mut peer = Peer::start().await;
        let (_client, mut consumer, id) =
            subscribe(&mut peer, None, ConsumerCryptoFailureAction::Consume).await;
        peer.push(peer::with_payload(
            &peer::message(id, 7, 1),
            &g.metadata,
            &g.payload,
        ));
        let m = guard(what, consumer.receive()).await.expect("delivered");
        assert!(m.is_encrypted(), "{what}");
        assert_eq!(
            m.payload().as_ref(),
            &g.payload[..],
            "{what}: the stored bytes"
        );
        let ctx = m.encryption_context().expect("context");
        assert_eq!(ctx.keys[0].name, "rsa-a");
        assert_eq!(ctx.param.len(), 12);
        assert_eq!(ctx.algorithm, None);
        assert_eq!(ctx.batch_size, g.metadata.num_messages_in_batch);

        // Fail with the wrong key, and with the payload altered (the GCM tag catches it).
        let mut peer = Peer::start().await;
        let (_client, mut consumer, id) = subscribe(
            &mut peer,
            Some(DefaultCryptoKeyReader::new().default_private_key(path("rsa-b.pkcs1.pem"))),
            ConsumerCryptoFailureAction::Fail,
        )
        .await;
        peer.push(peer::with_payload(
            &peer::message(id, 7, 1),
            &g.metadata,
            &g.payload,
        ));
        match guard(what, consumer.receive()).await {
            Err(Error::Encrypted { reason, .. }) => {
                assert!(reason.contains("another key"), "{reason}")
            }
            other => panic!("{what}: expected Error::Encrypted, got {other:?}"),
        }
        let mut peer = Peer::start().await;
        let (_client, mut consumer, id) = subscribe(
            &mut peer,
            Some(DefaultCryptoKeyReader::new().default_private_key(path("rsa-a.pkcs1.pem"))),
            ConsumerCryptoFailureAction::Fail,
        )
        .await;
        let mut altered = g.payload.clone();
        altered[3] ^= 0x20;
        peer.push(peer::with_payload(
            &peer::message(id, 7, 1),
            &g.metadata,
            &altered,
        ));
        match guard(what, consumer.receive()).await {
            Err(Error::Encrypted { reason, .. }) => assert!(reason.contains("tag"), "{reason}"),
            other => panic!("{what}: expected Error::Encrypted, got {other:?}"),
        }
    }
}
