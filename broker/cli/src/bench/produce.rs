//! `quiver bench produce`: records through a broker from one or more producers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use quiver_sdk::{Client, ProducerRecord};

use super::payload::TextGen;
use super::report::{Report, histogram, progress};
use super::target::{Target, TargetArgs};
use crate::connect::ConnectArgs;
use crate::produce::ProducerArgs;

#[derive(Debug, clap::Args)]
pub struct ProduceBenchArgs {
    /// Records to send in all.
    #[arg(long, default_value_t = 1_000_000)]
    pub records: u64,
    /// Bytes of each record's value.
    #[arg(long, default_value_t = 1024)]
    pub record_size: usize,
    /// Partitions of the benchmark topic.
    #[arg(long, default_value_t = 1)]
    pub partitions: u32,
    /// Producers, each on its own connection.
    #[arg(long, default_value_t = 1)]
    pub producers: u32,
    /// Records per second across all producers; 0 sends as fast as possible.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Before measuring, open a hostile connection with this many streams that each
    /// declare a 16 MiB produce frame, send 16 bytes and stall (each replaced whenever
    /// the broker ends it), kept up for the whole run: the throughput then says what one
    /// stalling client costs everyone else. 0 (the default) runs without it.
    #[arg(long, default_value_t = 0)]
    pub with_stalling_client: usize,
    #[command(flatten)]
    pub producer: ProducerArgs,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Print the figures as one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One record in this many has its send-to-acknowledgement latency timed (Kafka's perf
/// tool samples too). Timing every record costs the client a delivery future through a
/// channel into a `FuturesUnordered` per record, about a fifth of its CPU at full speed,
/// which would then be measured as the SDK's. With acks, every record is still checked:
/// the stored record count must equal what was sent.
pub const LATENCY_SAMPLE_EVERY: u64 = 8;

/// A pool of distinct payloads reused round-robin, so generating text is not measured.
///
/// The payloads are slices of one buffer, so cloning any of them touches one shared
/// reference count. With a buffer each, every clone touched a count last used 1024
/// records earlier, long evicted by the batches in between: a cache miss per record that
/// cost the client about 2% of its CPU, overhead of the benchmark rather than of the SDK.
pub fn payloads(size: usize) -> Arc<Vec<Bytes>> {
    const PAYLOADS: usize = 1024;
    let mut text = TextGen::new(0x5eed);
    let mut all = Vec::with_capacity(PAYLOADS * size);
    for _ in 0..PAYLOADS {
        all.extend_from_slice(&text.record(size));
    }
    let all = Bytes::from(all);
    Arc::new(
        (0..PAYLOADS)
            .map(|i| all.slice(i * size..(i + 1) * size))
            .collect(),
    )
}

pub async fn run(conn: &ConnectArgs, args: ProduceBenchArgs) -> anyhow::Result<()> {
    let target = Target::start(conn, &args.target).await?;
    let admin_client = target.client().await?;
    let topic = format!("bench-produce-{}", std::process::id());
    admin_client
        .admin()
        .create_topic(&topic, args.partitions, 1, Default::default())
        .await?;
    let stalling = match args.with_stalling_client {
        0 => None,
        n => Some(super::stalling::StallingClient::start(&target, n).await?),
    };
    let pool = payloads(args.record_size);
    let bar = progress(args.records, "produce");
    let hist = Shared::new(histogram());
    let per_producer = args.records / u64::from(args.producers.max(1));
    let rate_each = args.rate as f64 / f64::from(args.producers.max(1));
    let cpu = super::report::CpuMeter::start(target.pid());
    let start = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..args.producers.max(1) {
        let client = target.client().await?;
        let config = args.producer.config();
        let topic = topic.clone();
        let pool = Arc::clone(&pool);
        let hist = hist.clone();
        let bar = bar.clone();
        tasks.push(tokio::spawn(async move {
            produce_one(
                client,
                config,
                topic,
                per_producer,
                rate_each,
                pool,
                hist,
                bar,
                p,
            )
            .await
        }));
    }
    for t in tasks {
        t.await.context("producer task")??;
    }
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    let stalls_ended = match stalling {
        Some(s) => s.stop().await,
        None => 0,
    };
    let sent = per_producer * u64::from(args.producers.max(1));
    let mut report = Report::new("produce", sent, sent * args.record_size as u64, elapsed)
        .with_latency(&hist.take());
    report.settings = serde_json::json!({
        "record_size": args.record_size, "partitions": args.partitions,
        "producers": args.producers, "rate": args.rate,
        "acks": format!("{:?}", args.producer.acks), "compression": args.producer.compression.to_string(),
        "linger_ms": args.producer.linger, "batch_size": args.producer.batch_size,
        "idempotence": args.producer.idempotence,
        "stalling_streams": args.with_stalling_client,
        "stalls_ended_by_broker": stalls_ended,
    });
    target.annotate(&mut report);
    cpu.finish(&mut report);
    // What the broker stored against what was sent: the compression ratio on disk.
    let described = admin_client.admin().describe_topic(&topic).await?;
    let stored: u64 = described.partitions.iter().map(|p| p.size_bytes).sum();
    // Records whose delivery was not timed were not awaited one by one: count them.
    let records_stored: i64 = described
        .partitions
        .iter()
        .map(|p| p.high_watermark - p.log_start_offset)
        .sum();
    if args.producer.acks != quiver_sdk::Acks::None && records_stored != sent as i64 {
        anyhow::bail!("the broker stored {records_stored} records of the {sent} sent");
    }
    if let serde_json::Value::Object(map) = &mut report.settings {
        map.insert("stored_bytes".into(), stored.into());
        let ratio = report.bytes as f64 / stored.max(1) as f64;
        map.insert(
            "compression_ratio".into(),
            serde_json::json!((ratio * 100.0).round() / 100.0),
        );
    }
    report.print(args.json);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn produce_one(
    client: Client,
    config: quiver_sdk::ProducerConfig,
    topic: String,
    records: u64,
    rate: f64,
    pool: Arc<Vec<Bytes>>,
    hist: Shared,
    bar: indicatif::ProgressBar,
    seed: u32,
) -> anyhow::Result<()> {
    let producer = client.producer(config).await?;
    let topic: Arc<str> = topic.into();
    // Deliveries are awaited by a collector task, so each latency is taken the moment its
    // acknowledgement arrives, not when the sending loop next looks.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Instant, quiver_sdk::DeliveryFuture)>(65_536);
    let collector = tokio::spawn(async move {
        let mut local = histogram();
        let mut pending = FuturesUnordered::new();
        let mut open = true;
        loop {
            tokio::select! {
                biased;
                done = pending.next(), if !pending.is_empty() => {
                    if let Some((t, result)) = done {
                        let t: Instant = t;
                        let _: quiver_sdk::RecordMetadata = result?;
                        let _ = local.record(t.elapsed().as_micros() as u64);
                        bar.inc(LATENCY_SAMPLE_EVERY);
                    }
                }
                next = rx.recv(), if open => match next {
                    Some((t, delivery)) => pending.push(async move { (t, delivery.await) }),
                    None => open = false,
                },
                else => break,
            }
        }
        Ok::<_, quiver_sdk::Error>(local)
    });
    let start = Instant::now();
    for i in 0..records {
        if rate > 0.0 {
            let due = start + Duration::from_secs_f64(i as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
        let value = pool[(i as usize + seed as usize * 7) % pool.len()].clone();
        let timed = i % LATENCY_SAMPLE_EVERY == 0;
        let sent_at = timed.then(Instant::now);
        let delivery = producer
            .send(ProducerRecord::new(topic.clone(), value))
            .await?;
        if let Some(sent_at) = sent_at
            && tx.send((sent_at, delivery)).await.is_err()
        {
            break; // the collector stopped on an error; it reports it below
        }
    }
    drop(tx);
    producer.flush().await;
    let local = collector.await.context("collector task")??;
    producer.close().await;
    hist.merge(&local);
    Ok(())
}

/// A histogram shared by producer tasks, merged into at the end of each.
#[derive(Debug, Clone)]
pub struct Shared(Arc<std::sync::Mutex<hdrhistogram::Histogram<u64>>>);

impl Shared {
    pub fn new(h: hdrhistogram::Histogram<u64>) -> Self {
        Shared(Arc::new(std::sync::Mutex::new(h)))
    }

    pub fn merge(&self, other: &hdrhistogram::Histogram<u64>) {
        if let Ok(mut h) = self.0.lock() {
            let _ = h.add(other);
        }
    }

    pub fn take(&self) -> hdrhistogram::Histogram<u64> {
        self.0
            .lock()
            .map(|h| h.clone())
            .unwrap_or_else(|_| histogram())
    }
}
