//! Sends records to a Quiver broker with the SDK's batching producer.
//!
//! Run a dev broker first (`quiver dev`), then:
//! `cargo run --example producer -- quic://localhost:7420 path/to/cert.pem orders 1000`

use std::sync::Arc;
use std::time::Instant;

use quiver_sdk::{Client, ClientOptions, Compression, ErrorCode, ProducerConfig, ProducerRecord};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The SDK logs through `tracing`: RUST_LOG=quiver_sdk=debug shows its reconnects.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "quic://localhost:7420".into());
    let ca = args
        .next()
        .unwrap_or_else(|| "quiver-data/tls/cert.pem".into());
    let topic = args.next().unwrap_or_else(|| "orders".into());
    let count: u64 = args.next().map_or(Ok(1000), |n| n.parse())?;

    let client = Client::connect(&url, ClientOptions::new().ca_pem_file(ca)).await?;
    match client
        .admin()
        .create_topic(&topic, 3, 1, Default::default())
        .await
    {
        Err(e) if e.code() == Some(ErrorCode::TOPIC_ALREADY_EXISTS) => {}
        other => {
            other?;
        }
    }

    let producer = client
        .producer(ProducerConfig {
            compression: Compression::Lz4,
            ..Default::default()
        })
        .await?;
    let started = Instant::now();
    let mut deliveries = Vec::with_capacity(count as usize);
    // Records share the topic name: cloning an `Arc<str>` copies no bytes.
    let topic: Arc<str> = topic.into();
    for i in 0..count {
        let record = ProducerRecord::new(topic.clone(), format!("order #{i}"))
            .key(format!("customer-{}", i % 16))
            .header("source", "example");
        // Awaiting `send` waits only for buffer space; the delivery resolves later.
        deliveries.push(producer.send(record).await?);
    }
    producer.flush().await;
    let mut last = None;
    for delivery in deliveries {
        last = Some(delivery.await?);
    }
    producer.close().await;
    println!(
        "sent {count} records in {:?}; last one at {:?}",
        started.elapsed(),
        last
    );
    Ok(())
}
