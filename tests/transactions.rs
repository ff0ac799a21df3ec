//! Transactions on Apache Pulsar with the transaction coordinator on
//! (`scripts/apache-pulsar.sh start --transactions`): what is committed is delivered, what is
//! aborted never is, acknowledgements in an aborted transaction are undone, two transactions
//! cannot hold one message, a transaction that is no longer open refuses work, a transaction
//! left open is aborted by the broker at its timeout.
//!
//! pulsar-lite has no transactions: these tests always run on Apache Pulsar (one standalone
//! for this binary, with batch-index acks on so that batched messages can be acknowledged one
//! by one outside transactions too).
//!
//! "Never delivered" is shown without waiting for nothing: a plain message sent after the
//! aborted ones is received, and nothing came before it. The broker holds back everything after
//! an open transaction's first message until that transaction ends, so the sentinel also
//! proves the transaction has ended.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use pulsar_wire::{
    Error, ProducerMessage, PulsarClient, ServerErrorCode, SubscriptionType, TxnState,
};
use support::txn::{receive, subscribe, text, until_sentinel};

fn broker() -> &'static support::Broker {
    let mut options =
        support::ApacheOptions::plain().config("acknowledgmentAtBatchIndexLevelEnabled", "true");
    options.transactions = true;
    support::apache_with(&options)
}

fn client() -> PulsarClient {
    PulsarClient::builder(broker().url())
        .operation_timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

#[tokio::test]
async fn committed_messages_are_delivered_and_aborted_ones_never() {
    let client = client();
    let topic = support::unique_topic("txn-visibility");
    let mut consumer = subscribe(&client, &topic, "s", SubscriptionType::Exclusive).await;
    // Batching on: messages of one transaction share batches, never with another's.
    let producer = client
        .producer(&topic)
        .batching_max_publish_delay(Duration::from_millis(5))
        .create()
        .await
        .expect("producer");
    let mut expected = BTreeSet::new();
    for (round, commit) in [("a", true), ("b", false), ("c", true)] {
        let txn = client
            .new_transaction()
            .timeout(Duration::from_secs(60))
            .build()
            .await
            .expect("new transaction");
        assert_eq!(txn.state(), TxnState::Open);
        let mut receipts = Vec::new();
        for i in 0..20 {
            let payload = format!("{round}-{i}");
            if commit {
                expected.insert(payload.clone());
            }
            receipts.push(
                producer
                    .send_async(ProducerMessage::new(payload).transaction(&txn))
                    .await
                    .expect("send in a transaction"),
            );
        }
        // A plain message between transactions.
        let plain = format!("plain-{round}");
        expected.insert(plain.clone());
        producer.send(plain.as_str()).await.expect("plain send");
        for r in receipts {
            r.await.expect("receipt of a send in a transaction");
        }
        if commit {
            txn.commit().await.expect("commit");
            assert_eq!(txn.state(), TxnState::Committed);
        } else {
            txn.abort().await.expect("abort");
            assert_eq!(txn.state(), TxnState::Aborted);
        }
    }
    producer.send("sentinel").await.expect("sentinel");
    let seen = until_sentinel(&mut consumer, "sentinel").await;
    let distinct: BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!(distinct.len(), seen.len(), "duplicates: {seen:?}");
    assert!(
        !seen.iter().any(|s| s.starts_with("b-")),
        "an aborted message was delivered: {seen:?}"
    );
    assert_eq!(distinct, expected);
}

#[tokio::test]
async fn messages_of_an_open_transaction_and_all_after_them_wait_for_its_commit() {
    let client = client();
    let topic = support::unique_topic("txn-hold");
    let mut consumer = subscribe(&client, &topic, "s", SubscriptionType::Exclusive).await;
    let producer = client.producer(&topic).create().await.expect("producer");
    let txn = client.new_transaction().build().await.expect("txn");
    for i in 0..5 {
        producer
            .send(ProducerMessage::new(format!("t-{i}")).transaction(&txn))
            .await
            .expect("send in txn");
    }
    producer.send("after").await.expect("plain send");
    txn.commit().await.expect("commit");
    // The plain message was held back behind the open transaction: it comes after its
    // messages, not before.
    let mut order = Vec::new();
    for _ in 0..6 {
        let m = receive(&mut consumer).await;
        order.push(text(&m));
        consumer.ack(&m).await.expect("ack");
    }
    assert_eq!(order, ["t-0", "t-1", "t-2", "t-3", "t-4", "after"]);
}

#[tokio::test]
async fn acknowledgements_in_an_aborted_transaction_are_undone() {
    let client = client();
    let topic = support::unique_topic("txn-ack-abort");
    let mut consumer = subscribe(&client, &topic, "s", SubscriptionType::Shared).await;
    let producer = client
        .producer(&topic)
        .batching_max_publish_delay(Duration::from_millis(20))
        .create()
        .await
        .expect("producer");
    let mut receipts = Vec::new();
    for i in 0..6 {
        receipts.push(
            producer
                .send_async(format!("m-{i}").as_str())
                .await
                .expect("send"),
        );
    }
    for r in receipts {
        r.await.expect("receipt");
    }
    let txn = client.new_transaction().build().await.expect("txn");
    let mut first = BTreeSet::new();
    for _ in 0..6 {
        let m = receive(&mut consumer).await;
        first.insert(text(&m));
        consumer
            .ack_with_transaction(&m, &txn)
            .await
            .expect("ack in txn");
    }
    txn.abort().await.expect("abort");
    // The broker gives the messages back to the subscription.
    let txn = client.new_transaction().build().await.expect("txn 2");
    let mut again = BTreeSet::new();
    while again.len() < 6 {
        let m = receive(&mut consumer).await;
        again.insert(text(&m));
        consumer
            .ack_with_transaction(&m, &txn)
            .await
            .expect("ack in txn 2");
    }
    assert_eq!(first, again);
    txn.commit().await.expect("commit");
    consumer.close().await.expect("close");
    // Committed: a new consumer of the subscription gets nothing of them.
    let mut consumer = subscribe(&client, &topic, "s", SubscriptionType::Shared).await;
    producer.send("sentinel").await.expect("sentinel");
    let seen = until_sentinel(&mut consumer, "sentinel").await;
    assert!(
        seen.is_empty(),
        "acknowledged in a committed transaction, yet delivered again: {seen:?}"
    );
}

#[tokio::test]
async fn two_transactions_acknowledging_one_message_conflict() {
    let client = client();
    let topic = support::unique_topic("txn-conflict");
    let mut consumer = subscribe(&client, &topic, "s", SubscriptionType::Shared).await;
    let producer = client.producer(&topic).create().await.expect("producer");
    producer.send("one").await.expect("send");
    let m = receive(&mut consumer).await;
    let t1 = client.new_transaction().build().await.expect("txn 1");
    let t2 = client.new_transaction().build().await.expect("txn 2");
    consumer
        .ack_with_transaction(&m, &t1)
        .await
        .expect("first ack");
    let e = consumer
        .ack_with_transaction(&m, &t2)
        .await
        .expect_err("a second transaction acknowledging the same message");
    assert_eq!(
        e.server_error().map(|s| s.code),
        Some(ServerErrorCode::TransactionConflict),
        "{e}"
    );
    assert!(e.to_string().contains("abort this transaction"), "{e}");
    t1.commit().await.expect("commit of the first");
    // The second has a failed operation: its commit aborts it instead.
    let e = t2.commit().await.expect_err("commit after a failed ack");
    assert!(
        matches!(e, Error::TransactionAborted { failed: 1, .. }),
        "{e:?}"
    );
    assert_eq!(t2.state(), TxnState::Aborted);
}

#[tokio::test]
async fn a_transaction_that_has_ended_refuses_sends_acks_and_a_second_end() {
    let client = client();
    let topic = support::unique_topic("txn-ended");
    let mut consumer = subscribe(&client, &topic, "s", SubscriptionType::Shared).await;
    let producer = client.producer(&topic).create().await.expect("producer");
    producer.send("x").await.expect("send");
    let m = receive(&mut consumer).await;
    let txn = client.new_transaction().build().await.expect("txn");
    txn.commit().await.expect("commit of an empty transaction");
    let not_open = |e: Error| match e {
        Error::TransactionNotOpen { txn: id, state } => {
            assert_eq!(id, txn.id());
            state
        }
        other => panic!("expected TransactionNotOpen, got {other:?}"),
    };
    let e = producer
        .send(ProducerMessage::new("late").transaction(&txn))
        .await
        .expect_err("send in a committed transaction");
    assert_eq!(not_open(e), TxnState::Committed);
    let e = consumer
        .ack_with_transaction(&m, &txn)
        .await
        .expect_err("ack in a committed transaction");
    assert_eq!(not_open(e), TxnState::Committed);
    assert_eq!(
        not_open(txn.commit().await.expect_err("second commit")),
        TxnState::Committed
    );
    assert_eq!(
        not_open(txn.abort().await.expect_err("abort after commit")),
        TxnState::Committed
    );
}

#[tokio::test]
async fn a_transaction_left_open_is_aborted_by_the_broker_at_its_timeout() {
    let client = client();
    let topic = support::unique_topic("txn-timeout");
    let mut consumer = subscribe(&client, &topic, "s", SubscriptionType::Exclusive).await;
    let producer = client.producer(&topic).create().await.expect("producer");
    let txn = client
        .new_transaction()
        .timeout(Duration::from_secs(3))
        .build()
        .await
        .expect("txn");
    producer
        .send(ProducerMessage::new("in-txn").transaction(&txn))
        .await
        .expect("send in txn");
    // The sentinel is held back until the broker ends the transaction at its timeout.
    producer.send("sentinel").await.expect("sentinel");
    let seen = until_sentinel(&mut consumer, "sentinel").await;
    assert!(
        seen.is_empty(),
        "a timed-out transaction's message was delivered: {seen:?}"
    );
    assert_eq!(txn.state(), TxnState::TimedOut);
    let e = txn.commit().await.expect_err("commit after the timeout");
    assert!(
        matches!(
            e,
            Error::TransactionNotOpen {
                state: TxnState::TimedOut,
                ..
            }
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn batched_messages_acknowledged_one_by_one_in_a_transaction_stay_acknowledged() {
    let client = client();
    let topic = support::unique_topic("txn-batch-ack");
    let producer = client
        .producer(&topic)
        .batching_max_publish_delay(Duration::from_millis(50))
        .batching_max_messages(10)
        .create()
        .await
        .expect("producer");
    let mut consumer = subscribe(&client, &topic, "s", SubscriptionType::Failover).await;
    let mut receipts = Vec::new();
    for i in 0..10 {
        receipts.push(
            producer
                .send_async(format!("b-{i}").as_str())
                .await
                .expect("send"),
        );
    }
    let mut batched = 0;
    for r in receipts {
        if r.await.expect("receipt").batch_index >= 0 {
            batched += 1;
        }
    }
    assert!(batched > 1, "the messages were not batched");
    let txn = client.new_transaction().build().await.expect("txn");
    // The first five one by one, the rest cumulatively at the last.
    let mut last = None;
    for i in 0..10 {
        let m = receive(&mut consumer).await;
        assert_eq!(text(&m), format!("b-{i}"));
        if i < 5 {
            consumer
                .ack_with_transaction(&m, &txn)
                .await
                .expect("individual ack in txn");
        }
        last = Some(m);
    }
    let last = last.expect("ten messages");
    consumer
        .ack_cumulative_with_transaction(&last, &txn)
        .await
        .expect("cumulative ack in txn");
    txn.commit().await.expect("commit");
    consumer.close().await.expect("close");
    let mut consumer = subscribe(&client, &topic, "s", SubscriptionType::Failover).await;
    producer.send("sentinel").await.expect("sentinel");
    let seen = until_sentinel(&mut consumer, "sentinel").await;
    assert!(
        seen.is_empty(),
        "delivered again after a committed ack: {seen:?}"
    );
}

#[tokio::test]
async fn consume_transform_produce_is_all_or_nothing() {
    let client = client();
    let input = support::unique_topic("txn-in");
    let output = support::unique_topic("txn-out");
    let source = client.producer(&input).create().await.expect("source");
    for i in 0..10 {
        source.send(format!("{i}").as_str()).await.expect("send");
    }
    let mut consumer = subscribe(&client, &input, "transfer", SubscriptionType::Shared).await;
    let sink = client.producer(&output).create().await.expect("sink");
    let mut reader = subscribe(&client, &output, "check", SubscriptionType::Exclusive).await;
    // The first attempt aborts: nothing reaches the output, the input comes back.
    for commit in [false, true] {
        let txn = client.new_transaction().build().await.expect("txn");
        for _ in 0..10 {
            let m = receive(&mut consumer).await;
            let n: u32 = text(&m).parse().expect("a number");
            let receipt = sink
                .send_async(ProducerMessage::new(format!("{}", n * 2)).transaction(&txn))
                .await
                .expect("send in txn");
            consumer
                .ack_with_transaction(&m, &txn)
                .await
                .expect("ack in txn");
            receipt.await.expect("receipt");
        }
        if commit {
            txn.commit().await.expect("commit");
        } else {
            txn.abort().await.expect("abort");
        }
    }
    sink.send("sentinel").await.expect("sentinel");
    let seen = until_sentinel(&mut reader, "sentinel").await;
    let got: BTreeSet<u32> = seen.iter().map(|s| s.parse().expect("number")).collect();
    assert_eq!(seen.len(), 10, "{seen:?}");
    assert_eq!(got, (0..10).map(|n| n * 2).collect());
}

#[tokio::test]
async fn a_cluster_without_a_transaction_coordinator_says_so() {
    // pulsar-lite by default (it has no coordinator), or the broker PULSAR_URL names.
    let broker = support::broker();
    let client = PulsarClient::builder(broker.url())
        .operation_timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    match client.new_transaction().build().await {
        Err(Error::TransactionsUnavailable(why)) => {
            assert!(why.contains("transaction_coordinator_assign"), "{why}")
        }
        other => panic!("expected TransactionsUnavailable, got {other:?}"),
    }
}
