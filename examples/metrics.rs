//! The client's metrics in Prometheus text.
//!
//! ```text
//! PULSAR_URL=pulsar://localhost:6650 DURATION=30 METRICS_PORT=9464 cargo run --example metrics
//! curl -s 127.0.0.1:9464/metrics | grep pulsar_client_
//! ```
//!
//! It produces and consumes on `PULSAR_TOPIC` for `DURATION` seconds (acknowledging every
//! message) while serving the `pulsar.client.*` metrics on `127.0.0.1:$METRICS_PORT/metrics`
//! (the `metrics` facade's Prometheus exporter writes `pulsar.client.producer.message.send.size`
//! as `pulsar_client_producer_message_send_size`, its attributes as labels), then prints what it
//! sent and received.
//!
//! Environment: `PULSAR_URL` (default `pulsar://localhost:6650`), `PULSAR_TOKEN` (optional:
//! token authentication), `PULSAR_TOPIC` (default `persistent://public/default/metrics-example`),
//! `DURATION` (seconds, default 10), `METRICS_PORT` (default 9464).

use std::process::ExitCode;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use pulsar_wire::{InitialPosition, ProducerMessage, PulsarClient};

/// Histogram buckets of the durations, in seconds (as the Java client's).
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// An environment variable, when set and not empty.
fn env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn env_number(name: &str, default: u64) -> Result<u64, String> {
    match env(name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|e| format!("{name}={v}: not a whole number ({e})")),
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let url = env("PULSAR_URL").unwrap_or_else(|| "pulsar://localhost:6650".to_string());
    let topic =
        env("PULSAR_TOPIC").unwrap_or_else(|| "persistent://public/default/metrics-example".into());
    let duration = Duration::from_secs(env_number("DURATION", 10)?);
    let port = u16::try_from(env_number("METRICS_PORT", 9464)?)
        .map_err(|_| "METRICS_PORT: not a port number")?;

    PrometheusBuilder::new()
        .with_http_listener(([127, 0, 0, 1], port))
        .set_buckets_for_metric(Matcher::Suffix("duration".into()), BUCKETS)?
        .install()?;
    println!("serving metrics on http://127.0.0.1:{port}/metrics for {duration:?}");

    let mut builder = PulsarClient::builder(url).metrics(true);
    if let Some(token) = env("PULSAR_TOKEN") {
        builder = builder.token(token);
    }
    let client = builder.build()?;
    let mut consumer = client
        .consumer(&topic)
        .subscription("metrics-example")
        .initial_position(InitialPosition::Latest)
        .subscribe()
        .await?;
    let producer = client.producer(&topic).create().await?;

    let deadline = tokio::time::Instant::now() + duration;
    let produce = async {
        let mut sent = 0u64;
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        while tokio::time::Instant::now() < deadline {
            tick.tick().await;
            let msg = ProducerMessage::new(format!("message {sent}"))
                .partition_key(format!("key-{}", sent % 16))
                .property("example", "metrics");
            producer.send(msg).await?;
            sent += 1;
        }
        Ok::<_, pulsar_wire::Error>(sent)
    };
    let consume = async {
        let mut received = 0u64;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            // After the deadline, a second more for what is still on its way.
            match consumer
                .receive_timeout(left + Duration::from_secs(1))
                .await?
            {
                Some(msg) => {
                    consumer.ack(&msg).await?;
                    received += 1;
                }
                None => return Ok::<_, pulsar_wire::Error>(received),
            }
        }
    };
    let (sent, received) = tokio::try_join!(produce, consume)?;
    println!("sent {sent}, received {received}");

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
