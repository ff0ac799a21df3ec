//! How a consumer lives through what a broker may answer while it (re)subscribes, against a
//! scripted peer: transient errors are retried until the operation timeout, permanent ones
//! end the subscribe at once, and a subscription that is gone when the consumer resubscribes
//! reaches the application as a typed error from `receive`.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pulsar_wire::wire::proto;
use pulsar_wire::{Error, InitialPosition, PulsarClient, ServerErrorCode, SubscriptionType};
use support::peer::{self, Peer, Type};

const TOPIC: &str = "persistent://public/default/consumer-peer";

fn client(peer: &Peer, timeout: Duration) -> PulsarClient {
    PulsarClient::builder(peer.url())
        .operation_timeout(timeout)
        .build()
        .expect("client")
}

/// ERROR for a request, with this code.
fn error(request_id: u64, code: proto::ServerError, message: &str) -> bytes::Bytes {
    let mut e = peer::command(Type::Error);
    e.error = Some(Box::new(proto::CommandError {
        request_id,
        error: code as i32,
        message: message.into(),
    }));
    peer::encode(&e)
}

/// Answers the SUBSCRIBEs in turn with these errors (`None`: the default success).
fn script_subscribes(peer: &Peer, answers: Vec<Option<proto::ServerError>>) -> Arc<AtomicUsize> {
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    peer.set_handler(move |_, frame| {
        let s = frame.command.subscribe.as_ref()?;
        let n = count.fetch_add(1, Ordering::SeqCst);
        answers
            .get(n)
            .copied()
            .flatten()
            .map(|code| vec![error(s.request_id, code, "scripted")])
    });
    seen
}

async fn guard<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(peer::WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {:?}", peer::WAIT))
}

#[tokio::test]
async fn subscribe_retries_transient_errors_until_it_succeeds() {
    // Before: one attempt after the lookup; a broker restarting or a bundle moving failed it.
    let peer = Peer::start().await;
    let seen = script_subscribes(
        &peer,
        vec![
            Some(proto::ServerError::ServiceNotReady),
            Some(proto::ServerError::ConsumerBusy),
            None,
        ],
    );
    let client = client(&peer, Duration::from_secs(10));
    let consumer = guard(
        "subscribe",
        client
            .consumer(TOPIC)
            .subscription("s")
            .subscription_type(SubscriptionType::Shared)
            .subscribe(),
    )
    .await
    .expect("subscribed after two transient errors");
    assert_eq!(seen.load(Ordering::SeqCst), 3);
    drop(consumer);
}

#[tokio::test]
async fn subscribe_fails_at_once_on_a_permanent_error() {
    let peer = Peer::start().await;
    let seen = script_subscribes(&peer, vec![Some(proto::ServerError::AuthorizationError)]);
    let client = client(&peer, Duration::from_secs(30));
    let started = std::time::Instant::now();
    let err = guard(
        "subscribe",
        client.consumer(TOPIC).subscription("s").subscribe(),
    )
    .await
    .expect_err("not authorized");
    assert_eq!(
        err.server_error().map(|e| e.code),
        Some(ServerErrorCode::AuthorizationError)
    );
    assert_eq!(seen.load(Ordering::SeqCst), 1, "not retried");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "not after the operation timeout"
    );
}

#[tokio::test]
async fn subscribe_gives_up_after_the_operation_timeout_with_the_last_error() {
    let peer = Peer::start().await;
    let seen = script_subscribes(&peer, vec![Some(proto::ServerError::ServiceNotReady); 1000]);
    let client = client(&peer, Duration::from_secs(2));
    let err = guard(
        "subscribe",
        client.consumer(TOPIC).subscription("s").subscribe(),
    )
    .await
    .expect_err("never ready");
    assert_eq!(
        err.server_error().map(|e| e.code),
        Some(ServerErrorCode::ServiceNotReady)
    );
    assert!(seen.load(Ordering::SeqCst) > 1, "retried before giving up");
}

#[tokio::test]
async fn a_subscription_gone_at_resubscribe_is_reported_by_receive() {
    // Before: the consumer task ended with a log line and `receive` said only "closed".
    let mut peer = Peer::start().await;
    let _seen = script_subscribes(
        &peer,
        vec![None, Some(proto::ServerError::SubscriptionNotFound)],
    );
    let client = client(&peer, Duration::from_secs(5));
    let mut consumer = guard(
        "subscribe",
        client
            .consumer(TOPIC)
            .subscription("s")
            .subscription_type(SubscriptionType::Exclusive)
            .initial_position(InitialPosition::Earliest)
            .subscribe(),
    )
    .await
    .expect("subscribe");
    let (conn, _) = peer.expect_on(Type::Subscribe).await;
    peer.disconnect(conn);
    let err = guard("receive", consumer.receive())
        .await
        .expect_err("the subscription is gone");
    assert!(
        matches!(&err, Error::Server { error, .. } if error.code == ServerErrorCode::SubscriptionNotFound),
        "{err:?}"
    );
}

/// The `read_compacted` field of the next SUBSCRIBE.
async fn subscribed_read_compacted(peer: &mut Peer) -> Option<bool> {
    let frame = guard("SUBSCRIBE", peer.expect(Type::Subscribe)).await;
    frame.command.subscribe.and_then(|s| s.read_compacted)
}

#[tokio::test]
async fn read_compacted_is_sent_on_subscribe_by_consumers_and_readers() {
    let mut peer = Peer::start().await;
    let client = client(&peer, Duration::from_secs(5));
    for (sub_type, wanted) in [
        (SubscriptionType::Exclusive, true),
        (SubscriptionType::Failover, true),
        (SubscriptionType::Exclusive, false),
    ] {
        let consumer = guard(
            "subscribe",
            client
                .consumer(TOPIC)
                .subscription("s")
                .subscription_type(sub_type)
                .read_compacted(wanted)
                .subscribe(),
        )
        .await
        .expect("subscribe");
        assert_eq!(
            subscribed_read_compacted(&mut peer).await,
            Some(wanted),
            "{sub_type:?} consumer, read_compacted({wanted})"
        );
        drop(consumer);
    }
    for wanted in [true, false] {
        let reader = guard(
            "reader",
            client
                .reader(TOPIC)
                .start_message_id(pulsar_wire::MessageId::EARLIEST)
                .read_compacted(wanted)
                .create(),
        )
        .await
        .expect("reader");
        assert_eq!(
            subscribed_read_compacted(&mut peer).await,
            Some(wanted),
            "reader, read_compacted({wanted})"
        );
        drop(reader);
    }
}

#[tokio::test]
async fn read_compacted_is_refused_on_shared_subscriptions_and_non_persistent_topics() {
    let peer = Peer::start().await;
    let client = client(&peer, Duration::from_secs(5));
    for sub_type in [SubscriptionType::Shared, SubscriptionType::KeyShared] {
        let err = guard(
            "subscribe",
            client
                .consumer(TOPIC)
                .subscription("s")
                .subscription_type(sub_type)
                .read_compacted(true)
                .subscribe(),
        )
        .await
        .expect_err("read_compacted on a shared subscription");
        assert!(
            matches!(&err, Error::InvalidConfig(why) if why.contains("Exclusive or Failover")),
            "{sub_type:?}: {err:?}"
        );
    }
    let non_persistent = "non-persistent://public/default/consumer-peer";
    let err = guard(
        "subscribe",
        client
            .consumer(TOPIC)
            .topic(non_persistent)
            .subscription("s")
            .read_compacted(true)
            .subscribe(),
    )
    .await
    .expect_err("read_compacted with a non-persistent topic");
    assert!(
        matches!(&err, Error::InvalidConfig(why) if why.contains(non_persistent)),
        "{err:?}"
    );
    let err = guard(
        "reader",
        client.reader(non_persistent).read_compacted(true).create(),
    )
    .await
    .expect_err("a compacted reader of a non-persistent topic");
    assert!(
        matches!(&err, Error::InvalidConfig(why) if why.contains("persistent topics")),
        "{err:?}"
    );
    assert!(
        peer.received(Type::Subscribe).is_empty(),
        "refused before any SUBSCRIBE"
    );
}

#[tokio::test]
async fn an_ack_awaiting_its_receipt_when_the_broker_closes_the_consumer_fails_at_once_as_unconfirmed(
) {
    // Before: a broker unloading the topic closed the consumer and never answered the ack in
    // flight; the ack waited out the operation timeout, and the application's receive loop with
    // it (12-15 s without a message in the chaos tests).
    let mut peer = Peer::start().await;
    peer.ignore(Type::Ack);
    let client = client(&peer, Duration::from_secs(600));
    let mut consumer = guard(
        "subscribe",
        client
            .consumer(TOPIC)
            .subscription("s")
            .subscription_type(SubscriptionType::Shared)
            .ack_receipts(true)
            .ack_group_time(Duration::ZERO)
            .subscribe(),
    )
    .await
    .expect("subscribe");
    let subscribe = guard("SUBSCRIBE", peer.expect(Type::Subscribe)).await;
    let consumer_id = subscribe.command.subscribe.expect("subscribe").consumer_id;
    peer.push(peer::with_payload(
        &peer::message(consumer_id, 7, 1),
        &peer::metadata("p", 0),
        b"m",
    ));
    let msg = guard("receive", consumer.receive()).await.expect("message");
    let ack = consumer.ack(&msg);
    let close = async {
        guard("ACK", peer.expect(Type::Ack)).await;
        peer.push(peer::encode(&peer::close_consumer(consumer_id)));
    };
    let (result, ()) = guard("the ack", async { tokio::join!(ack, close) }).await;
    assert!(
        matches!(result, Err(Error::Unconfirmed(_))),
        "the ack's outcome is unknown: {result:?}"
    );
}
