//! Quickstart: the official Python SDK guide's flow, step by step, with pulsar-wire.
//!
//! ```text
//! scripts/quickstart.sh                       # against a local broker it starts and stops
//! PULSAR_URL=pulsar://localhost:6650 cargo run --example quickstart
//! ```
//!
//! Environment: `PULSAR_URL` (default `pulsar://localhost:6650`), `PULSAR_TOKEN` (optional: token
//! authentication), `PULSAR_TOPIC` (default `persistent://public/default/quickstart`).

use std::process::ExitCode;
use std::time::Duration;

use pulsar_wire::{
    InitialPosition, Message, MessageId, ProducerMessage, PulsarClient, SubscriptionType,
};

/// How long to wait for each message before giving up.
const RECEIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// An environment variable, when set and not empty.
fn env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// What the guide's `try:` block does with a message: here, read it as text.
fn process(msg: &Message) -> Result<&str, String> {
    msg.payload_str()
        .ok_or_else(|| format!("message {} is not UTF-8 text", msg.id()))
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let url = env("PULSAR_URL").unwrap_or_else(|| "pulsar://localhost:6650".to_string());
    let topic =
        env("PULSAR_TOPIC").unwrap_or_else(|| "persistent://public/default/quickstart".to_string());

    // 1. Create a client: the service URL, and token authentication when a token is given
    //    (Python: `pulsar.Client(url, authentication=pulsar.AuthenticationToken(token))`).
    let mut builder =
        PulsarClient::builder(url.as_str()).operation_timeout(Duration::from_secs(10));
    if let Some(token) = env("PULSAR_TOKEN") {
        builder = builder.token(token);
    }
    let client = builder.build()?;
    println!("Created client for {url}");

    // 2. Subscribe (Shared, from the earliest message). The guide subscribes after sending; here
    //    the subscription comes first, so that it surely sees both messages below, whatever ran
    //    on the topic before (Python: `client.subscribe(topic, 'quickstart-sub', ...)`).
    let mut consumer = client
        .consumer(topic.as_str())
        .subscription("quickstart-sub")
        .subscription_type(SubscriptionType::Shared)
        .initial_position(InitialPosition::Earliest)
        .subscribe()
        .await?;
    println!("Subscribed to {topic} as quickstart-sub");

    // 3. Create a producer on the full topic path (Python: `client.create_producer(topic)`).
    let producer = client.producer(topic.as_str()).create().await?;
    println!("Created producer {}", producer.name());

    // 4. Send a message with properties and a partition key, and wait for its id
    //    (Python: `producer.send(b'...', properties={'k': 'v'}, partition_key='yourKey')`).
    let msg_id = producer
        .send(
            ProducerMessage::new("Hello python client, this is a msg.")
                .property("k", "v")
                .partition_key("yourKey"),
        )
        .await?;
    println!("Message published: msg_id:{msg_id}");

    // 5. Send another one asynchronously: the callback gets the result and the message id
    //    (Python: `producer.send_async(b'...', callback=send_callback, ...)`). The channel only
    //    makes this program wait for the callback, so that the output comes in a fixed order.
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<Option<MessageId>>();
    producer
        .send_with_callback(
            ProducerMessage::new("Hello python client, this is a async msg.")
                .property("k", "v")
                .partition_key("yourKey"),
            move |result| {
                let id = match &result {
                    Ok(id) => {
                        println!("Message published: result:Ok msg_id:{id}");
                        Some(*id)
                    }
                    Err(e) => {
                        println!("Message published: result:{e} msg_id:None");
                        None
                    }
                };
                let _ = done_tx.send(id);
            },
        )
        .await?;
    let async_id = done_rx
        .await
        .ok()
        .flatten()
        .ok_or("the asynchronous send failed")?;

    // 6. Receive, print the data and the id; acknowledge on success, negatively acknowledge on
    //    failure so that the broker redelivers it later (Python: `consumer.receive()`,
    //    `consumer.acknowledge(msg)`, `consumer.negative_acknowledge(msg)`). Messages left by
    //    an earlier run that stopped half-way are acknowledged and skipped.
    let mut waiting = vec![msg_id, async_id];
    while !waiting.is_empty() {
        let msg = consumer
            .receive_timeout(RECEIVE_TIMEOUT)
            .await?
            .ok_or_else(|| format!("no message within {RECEIVE_TIMEOUT:?}"))?;
        if !waiting.contains(&msg.id()) {
            println!("(skipping message {} left by an earlier run)", msg.id());
            consumer.ack(&msg).await?;
            continue;
        }
        waiting.retain(|id| *id != msg.id());
        match process(&msg) {
            Ok(data) => {
                println!("Received message '{data}' id='{}'", msg.id());
                consumer.ack(&msg).await?;
            }
            Err(e) => {
                eprintln!("failed to process the message: {e}");
                consumer.nack(&msg).await?;
            }
        }
    }

    // 7. Close everything: the producer (flushing), the consumer, then the client.
    producer.close().await?;
    consumer.close().await?;
    client.close().await?;
    println!("Closed");
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
