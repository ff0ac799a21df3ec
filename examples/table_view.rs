//! A table view: the latest value of every key of a topic, kept current.
//!
//! ```text
//! PULSAR_URL=pulsar://localhost:6650 cargo run --example table_view
//! ```
//!
//! It publishes a few prices (one removed by a tombstone), opens a table view of the topic,
//! prints it, then publishes one more price and waits for the view to see it.
//!
//! Environment: `PULSAR_URL` (default `pulsar://localhost:6650`), `PULSAR_TOKEN` (optional: token
//! authentication), `PULSAR_TOPIC` (default `persistent://public/default/table-view-example`).

use std::process::ExitCode;
use std::time::Duration;

use pulsar_wire::schema::StringSchema;
use pulsar_wire::{ProducerMessage, PulsarClient};

/// How long to wait for the view to see the last update.
const UPDATE_TIMEOUT: Duration = Duration::from_secs(10);

/// An environment variable, when set and not empty.
fn env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let url = env("PULSAR_URL").unwrap_or_else(|| "pulsar://localhost:6650".to_string());
    let topic = env("PULSAR_TOPIC")
        .unwrap_or_else(|| "persistent://public/default/table-view-example".to_string());
    let mut builder = PulsarClient::builder(url);
    if let Some(token) = env("PULSAR_TOKEN") {
        builder = builder.token(token);
    }
    let client = builder.build()?;

    // Prices by symbol; an empty payload (a tombstone) removes a key.
    let producer = client.producer(&topic).create().await?;
    for (symbol, price) in [
        ("ACME", "10"),
        ("INITECH", "7"),
        ("ACME", "12"),
        ("HOOLI", ""),
    ] {
        producer
            .send(ProducerMessage::new(price).partition_key(symbol))
            .await?;
    }

    // Loads the topic (its compacted view, if it was compacted) before it returns.
    let view = client
        .table_view(&topic)
        .schema(StringSchema)
        .create()
        .await?;
    let mut prices: Vec<_> = view.iter().collect();
    prices.sort();
    for (symbol, price) in &prices {
        println!("{symbol} = {price}");
    }

    let mut updates = view.updates();
    producer
        .send(ProducerMessage::new("13").partition_key("ACME"))
        .await?;
    loop {
        let update = tokio::time::timeout(UPDATE_TIMEOUT, updates.next())
            .await
            .map_err(|_| format!("the view saw no update within {UPDATE_TIMEOUT:?}"))?
            .ok_or("the view was closed")?;
        let value = update.value.as_deref().map_or("(removed)", String::as_str);
        println!("update: {} = {value}", update.key);
        if update.key == "ACME" && value == "13" {
            break;
        }
    }
    println!("ACME is now {:?}", view.get("ACME").as_deref());

    producer.close().await?;
    view.close().await?;
    client.close().await?;
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
