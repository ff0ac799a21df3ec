//! What the encryption tests share: the committed test keys and a Shared consumer from the
//! earliest message with a key reader (or none) and a crypto failure action.

use pulsar_wire::{
    Consumer, ConsumerCryptoFailureAction, DefaultCryptoKeyReader, InitialPosition, PulsarClient,
    SubscriptionType,
};

/// The path of a test key in `tests/data/crypto/`.
pub fn key(name: &str) -> String {
    format!("{}/tests/data/crypto/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A Shared consumer of `topic` on `sub`, from the earliest message.
pub async fn consumer(
    client: &PulsarClient,
    topic: &str,
    sub: &str,
    keys: Option<DefaultCryptoKeyReader>,
    action: ConsumerCryptoFailureAction,
) -> Consumer {
    let mut b = client
        .consumer(topic)
        .subscription(sub)
        .subscription_type(SubscriptionType::Shared)
        .initial_position(InitialPosition::Earliest)
        .crypto_failure_action(action);
    if let Some(k) = keys {
        b = b.crypto_key_reader(k);
    }
    b.subscribe().await.expect("subscribe")
}
