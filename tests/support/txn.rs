//! What the transaction tests share: the broker options (transactions on, batch-index acks
//! on), and receiving up to a sentinel, the way they show "never delivered" without waiting
//! for nothing (the broker holds back everything after an open transaction's first message
//! until it ends, so a sentinel sent afterwards also proves the transaction has ended).

use std::time::Duration;

use pulsar_wire::{Consumer, InitialPosition, Message, PulsarClient, SubscriptionType};

/// Liveness guard around each receive of a message that must come.
pub const RECEIVE_GUARD: Duration = Duration::from_secs(90);

/// Apache Pulsar with the transaction coordinator and batch-index acks on.
pub fn options() -> super::ApacheOptions {
    let mut options =
        super::ApacheOptions::plain().config("acknowledgmentAtBatchIndexLevelEnabled", "true");
    options.transactions = true;
    options
}

/// A message that must come, within [`RECEIVE_GUARD`].
pub async fn receive(consumer: &mut Consumer) -> Message {
    match tokio::time::timeout(RECEIVE_GUARD, consumer.receive()).await {
        Ok(Ok(m)) => m,
        Ok(Err(e)) => panic!("receive failed: {e}"),
        Err(_) => panic!("no message within {RECEIVE_GUARD:?}"),
    }
}

/// The payload as text.
pub fn text(m: &Message) -> String {
    String::from_utf8_lossy(m.payload()).into_owned()
}

/// Receives (and acks) until the sentinel, returning the payloads before it.
pub async fn until_sentinel(consumer: &mut Consumer, sentinel: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let m = receive(consumer).await;
        let t = text(&m);
        consumer.ack(&m).await.expect("ack");
        if t == sentinel {
            return seen;
        }
        seen.push(t);
    }
}

/// A consumer from the earliest message.
pub async fn subscribe(
    client: &PulsarClient,
    topic: &str,
    sub: &str,
    sub_type: SubscriptionType,
) -> Consumer {
    client
        .consumer(topic)
        .subscription(sub)
        .subscription_type(sub_type)
        .initial_position(InitialPosition::Earliest)
        .subscribe()
        .await
        .expect("subscribe")
}
