//! Producer and consumer stats.
//!
//! ```text
//! PULSAR_URL=pulsar://localhost:6650 cargo run --example stats
//! ```
//!
//! It sends a thousand messages and receives them on a client whose stats interval is one
//! second, waits for that interval to end, then prints the producer's and the consumer's stats
//! (the last complete interval's counts, rates and latencies, and the totals).
//!
//! Environment: `PULSAR_URL` (default `pulsar://localhost:6650`), `PULSAR_TOKEN` (optional: token
//! authentication), `PULSAR_TOPIC` (default `persistent://public/default/stats-example`).

use std::process::ExitCode;
use std::time::Duration;

use pulsar_wire::{InitialPosition, PulsarClient};

const MESSAGES: usize = 1000;
const INTERVAL: Duration = Duration::from_secs(1);

/// An environment variable, when set and not empty.
fn env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let url = env("PULSAR_URL").unwrap_or_else(|| "pulsar://localhost:6650".to_string());
    let topic =
        env("PULSAR_TOPIC").unwrap_or_else(|| "persistent://public/default/stats-example".into());
    let mut builder = PulsarClient::builder(url).stats_interval(INTERVAL);
    if let Some(token) = env("PULSAR_TOKEN") {
        builder = builder.token(token);
    }
    let client = builder.build()?;
    let mut consumer = client
        .consumer(&topic)
        .subscription("stats-example")
        .initial_position(InitialPosition::Latest)
        .subscribe()
        .await?;
    let producer = client.producer(&topic).create().await?;

    let mut receipts = Vec::with_capacity(MESSAGES);
    for i in 0..MESSAGES {
        receipts.push(producer.send_async(format!("message {i}")).await?);
    }
    for r in receipts {
        r.await?;
    }
    for _ in 0..MESSAGES {
        let msg = consumer.receive().await?;
        consumer.ack(&msg).await?;
    }
    // Interval values show the last complete interval: wait for this one to end.
    tokio::time::sleep(INTERVAL).await;

    let p = producer.stats();
    println!(
        "producer: {} sent ({:.0} msg/s, {:.0} B/s), {} acks, {} failed, {} pending",
        p.num_msgs_sent,
        p.send_msgs_rate,
        p.send_bytes_rate,
        p.num_acks_received,
        p.num_send_failed,
        p.pending_queue_size
    );
    println!(
        "  latency ms: p50 {:.2}, p75 {:.2}, p95 {:.2}, p99 {:.2}, p99.9 {:.2}, max {:.2}",
        p.send_latency_ms_50,
        p.send_latency_ms_75,
        p.send_latency_ms_95,
        p.send_latency_ms_99,
        p.send_latency_ms_999,
        p.send_latency_ms_max
    );
    println!(
        "  totals: {} sent, {} bytes, {} acks; last sequence id {:?}; connected {}",
        p.total_msgs_sent,
        p.total_bytes_sent,
        p.total_acks_received,
        producer.last_sequence_id(),
        producer.is_connected()
    );
    for (partition, s) in producer.partition_stats() {
        println!("  {partition}: {} sent in all", s.total_msgs_sent);
    }
    let c = consumer.stats();
    println!(
        "consumer: {} received ({:.0} msg/s, {:.0} B/s), {} acks, {} nacks, {} queued; {} in all",
        c.num_msgs_received,
        c.receive_msgs_rate,
        c.receive_bytes_rate,
        c.num_acks_sent,
        c.num_nacks,
        c.msgs_in_receiver_queue,
        c.total_msgs_received
    );

    producer.close().await?;
    consumer.close().await?;
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
