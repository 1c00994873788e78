//! Reads every partition of a topic from the beginning and prints the records.
//!
//! `cargo run --example consumer -- quic://localhost:7420 path/to/cert.pem orders`

use std::time::Duration;

use futures_util::StreamExt;
use quiver_sdk::{Client, ClientOptions, ConsumerConfig, OffsetReset, TopicPartition};

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

    let client = Client::connect(&url, ClientOptions::new().ca_pem_file(ca)).await?;
    let meta = client.topic_metadata(&topic).await?;
    let mut consumer = client.consumer(ConsumerConfig {
        auto_offset_reset: OffsetReset::Earliest,
        ..Default::default()
    })?;
    consumer.assign(
        meta.partitions
            .iter()
            .map(|p| TopicPartition::new(topic.clone(), p.partition))
            .collect(),
    );

    // Stop after a quiet second so the example ends on its own.
    let mut records = consumer.stream();
    while let Ok(Some(record)) = tokio::time::timeout(Duration::from_secs(1), records.next()).await
    {
        let record = record?;
        println!(
            "{}-{}@{} key={:?} value={:?}",
            record.topic,
            record.partition,
            record.offset,
            record.key.as_deref().map(String::from_utf8_lossy),
            record.value.as_deref().map(String::from_utf8_lossy),
        );
    }
    Ok(())
}
