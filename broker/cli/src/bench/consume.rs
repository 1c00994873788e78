//! `quiver bench consume`: fill a topic, then read it all back with one consumer.

use std::time::{Duration, Instant};

use anyhow::Context;
use quiver_sdk::{ConsumerConfig, OffsetReset, ProducerConfig, ProducerRecord, TopicPartition};

use super::produce::payloads;
use super::report::{Report, histogram, progress};
use super::target::{Target, TargetArgs};
use crate::connect::ConnectArgs;

#[derive(Debug, clap::Args)]
pub struct ConsumeBenchArgs {
    /// Records to write and then read.
    #[arg(long, default_value_t = 1_000_000)]
    pub records: u64,
    /// Bytes of each record's value.
    #[arg(long, default_value_t = 1024)]
    pub record_size: usize,
    /// Partitions of the benchmark topic.
    #[arg(long, default_value_t = 1)]
    pub partitions: u32,
    /// Largest fetch response, bytes.
    #[arg(long, default_value_t = 8 * 1024 * 1024)]
    pub max_bytes: u32,
    /// Fetches of one partition in flight at once.
    #[arg(long, default_value_t = ConsumerConfig::default().fetches_in_flight)]
    pub fetches_in_flight: usize,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Print the figures as one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(conn: &ConnectArgs, args: ConsumeBenchArgs) -> anyhow::Result<()> {
    let target = Target::start(conn, &args.target).await?;
    let client = target.client().await?;
    let topic = format!("bench-consume-{}", std::process::id());
    client
        .admin()
        .create_topic(&topic, args.partitions, 1, Default::default())
        .await?;

    let pool = payloads(args.record_size);
    let fill = progress(args.records, "fill");
    let producer = client.producer(ProducerConfig::default()).await?;
    let mut deliveries = Vec::new();
    let name: std::sync::Arc<str> = topic.as_str().into();
    for i in 0..args.records {
        let value = pool[i as usize % pool.len()].clone();
        deliveries.push(
            producer
                .send(ProducerRecord::new(name.clone(), value))
                .await?,
        );
        if deliveries.len() >= 65_536 {
            for d in deliveries.drain(..) {
                d.await?;
                fill.inc(1);
            }
        }
    }
    producer.flush().await;
    for d in deliveries {
        d.await?;
        fill.inc(1);
    }
    producer.close().await;
    fill.finish_and_clear();

    let mut consumer = client.consumer(ConsumerConfig {
        auto_offset_reset: OffsetReset::Earliest,
        max_bytes: args.max_bytes,
        fetches_in_flight: args.fetches_in_flight,
        max_poll_records: 100_000,
        ..ConsumerConfig::default()
    })?;
    let tps: Vec<TopicPartition> = (0..args.partitions)
        .map(|p| TopicPartition::new(topic.clone(), p))
        .collect();
    consumer.assign(tps.clone());
    consumer.seek_to_beginning(&tps).await?;
    let bar = progress(args.records, "consume");
    let mut hist = histogram();
    let mut got = 0u64;
    let mut bytes = 0u64;
    let cpu = super::report::CpuMeter::start(target.pid());
    let start = Instant::now();
    while got < args.records {
        let t = Instant::now();
        let records = consumer
            .poll(Duration::from_secs(5))
            .await
            .context("polling")?;
        let _ = hist.record(t.elapsed().as_micros() as u64);
        anyhow::ensure!(
            !records.is_empty() || start.elapsed() < Duration::from_secs(300),
            "stalled at {got} of {} records",
            args.records
        );
        got += records.len() as u64;
        bytes += records
            .iter()
            .map(|r| r.value.as_ref().map_or(0, |v| v.len()) as u64)
            .sum::<u64>();
        bar.set_position(got);
    }
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    let mut report = Report::new("consume", got, bytes, elapsed).with_latency(&hist);
    report.settings = serde_json::json!({
        "record_size": args.record_size, "partitions": args.partitions, "max_bytes": args.max_bytes,
        "fetches_in_flight": args.fetches_in_flight,
        "latency": "per poll call",
    });
    target.annotate(&mut report);
    cpu.finish(&mut report);
    report.print(args.json);
    Ok(())
}
