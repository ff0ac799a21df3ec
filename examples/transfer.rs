//! Transfer: consume-transform-produce exactly once, with transactions.
//!
//! Each message of the input topic is received, transformed (its text upper-cased, a property
//! naming where it came from), and the result is sent to the output topic in a transaction
//! that also acknowledges the input message; then the transaction is committed. Either both
//! happen (the output message becomes visible and the input one is gone from the
//! subscription) or neither: on any error the transaction is aborted, the input message is
//! negatively acknowledged, and it comes back to be transferred again. A crash half-way leaves
//! an open transaction that the broker aborts at its timeout, with the same effect.
//!
//! ```text
//! scripts/apache-pulsar.sh start --transactions DIR    # prints PULSAR_URL=...
//! PULSAR_URL=pulsar://127.0.0.1:PORT TRANSFER_SEED=10 cargo run --example transfer
//! pulsar-wire consume --topic transfer-out -s check --initial earliest -n 10
//! ```
//!
//! The broker needs transactions (`transactionCoordinatorEnabled=true`; pulsar-lite has none).
//! Environment: `PULSAR_URL` (default `pulsar://localhost:6650`), `PULSAR_TOKEN` (optional),
//! `TRANSFER_INPUT` and `TRANSFER_OUTPUT` (default `transfer-in` and `transfer-out` in
//! public/default), `TRANSFER_COUNT` (messages to transfer before exiting, default 10),
//! `TRANSFER_SEED` (first send this many messages `order-0`, `order-1`, ... to the input topic,
//! default 0).

use std::process::ExitCode;
use std::time::Duration;

use pulsar_wire::{
    Consumer, InitialPosition, Message, Producer, ProducerMessage, PulsarClient, SubscriptionType,
};

/// How long to wait for each input message before giving up.
const RECEIVE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a transaction may stay open: the broker aborts it after that (a crashed transfer
/// gives its message back then).
const TXN_TIMEOUT: Duration = Duration::from_secs(30);

type BoxError = Box<dyn std::error::Error>;

/// An environment variable, when set and not empty.
fn env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// A count from the environment.
fn env_count(name: &str, default: u64) -> Result<u64, BoxError> {
    match env(name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| format!("{name}={v:?} is not a count").into()),
    }
}

/// The transformation: the text upper-cased, and where it came from as a property.
fn transform(msg: &Message) -> Result<ProducerMessage, String> {
    let text = msg
        .payload_str()
        .ok_or_else(|| format!("message {} is not UTF-8 text", msg.id()))?;
    Ok(
        ProducerMessage::new(text.to_uppercase())
            .property("transferred-from", msg.id().to_string()),
    )
}

/// Transfers one message in one transaction: send the result and acknowledge the input in
/// it, then commit. On any error the transaction is aborted (nothing was sent, the input is
/// not acknowledged) and the error returned.
async fn transfer(
    client: &PulsarClient,
    consumer: &Consumer,
    producer: &Producer,
    msg: &Message,
) -> Result<(), BoxError> {
    let txn = client
        .new_transaction()
        .timeout(TXN_TIMEOUT)
        .build()
        .await?;
    let work = async {
        let out = transform(msg)?.transaction(&txn);
        // The receipt comes once the message is in the transaction's buffer; it is visible to
        // consumers only after the commit.
        producer.send(out).await?;
        consumer.ack_with_transaction(msg, &txn).await?;
        txn.commit().await?;
        Ok::<(), BoxError>(())
    };
    match work.await {
        Ok(()) => Ok(()),
        Err(e) => {
            // Abort after a failed commit is allowed, and a no-op once the broker has aborted it.
            if let Err(abort) = txn.abort().await {
                eprintln!("aborting transaction {} failed: {abort}", txn.id());
            }
            Err(e)
        }
    }
}

async fn run() -> Result<(), BoxError> {
    let url = env("PULSAR_URL").unwrap_or_else(|| "pulsar://localhost:6650".to_string());
    let input = env("TRANSFER_INPUT").unwrap_or_else(|| "transfer-in".to_string());
    let output = env("TRANSFER_OUTPUT").unwrap_or_else(|| "transfer-out".to_string());
    let count = env_count("TRANSFER_COUNT", 10)?;
    let seed = env_count("TRANSFER_SEED", 0)?;

    let mut builder =
        PulsarClient::builder(url.as_str()).operation_timeout(Duration::from_secs(30));
    if let Some(token) = env("PULSAR_TOKEN") {
        builder = builder.token(token);
    }
    let client = builder.build()?;

    // Shared: several transfer processes can share the input; a message another transaction
    // holds fails to be acknowledged (TransactionConflict) and is retried later.
    let mut consumer = client
        .consumer(input.as_str())
        .subscription("transfer")
        .subscription_type(SubscriptionType::Shared)
        .initial_position(InitialPosition::Earliest)
        .subscribe()
        .await?;
    let producer = client.producer(output.as_str()).create().await?;

    if seed > 0 {
        let seeder = client.producer(input.as_str()).create().await?;
        for i in 0..seed {
            seeder.send(format!("order-{i}").as_str()).await?;
        }
        seeder.close().await?;
        println!("Sent {seed} messages to {input}");
    }

    let mut transferred = 0;
    while transferred < count {
        let msg = consumer
            .receive_timeout(RECEIVE_TIMEOUT)
            .await?
            .ok_or_else(|| format!("no message on {input} within {RECEIVE_TIMEOUT:?}"))?;
        match transfer(&client, &consumer, &producer, &msg).await {
            Ok(()) => {
                transferred += 1;
                println!("Transferred {} to {output}", msg.id());
            }
            Err(e) => {
                // Aborted: the message comes back (after the negative-ack delay) and is
                // transferred again.
                eprintln!("transfer of {} aborted: {e}", msg.id());
                consumer.nack(&msg).await?;
            }
        }
    }

    producer.close().await?;
    consumer.close().await?;
    client.close().await?;
    println!("Transferred {transferred} messages exactly once");
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
