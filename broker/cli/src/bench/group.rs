//! `quiver bench group`: what consumer groups cost.
//!
//! - Rebalance time: three members share a topic; one leaves (commit and leave) and the
//!   clock runs until the group is stable again with every partition owned by the two
//!   that stay. Members learn of a rebalance from their next heartbeat, so the time is
//!   mostly the wait for it (up to `--heartbeat-ms`); the leaves of the `--rounds` rounds
//!   are spread evenly over a heartbeat interval.
//! - Throughput: a pre-filled topic read by one member alone, then by a group of three
//!   (each member with its own connection), from the first record to the last; the
//!   report gives the ratio. On a machine with few cores both share the same CPUs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use quiver_sdk::{Client, ConsumerConfig, OffsetReset, ProducerConfig, ProducerRecord};
use tokio::sync::watch;

use super::produce::payloads;
use super::report::progress;
use super::target::{Target, TargetArgs};
use crate::connect::ConnectArgs;
use crate::output::say;

#[derive(Debug, clap::Args)]
pub struct GroupBenchArgs {
    /// Partitions of the topic the group reads.
    #[arg(long, default_value_t = 12)]
    pub partitions: u32,
    /// Times a member leaves (and a new one joins again) in the rebalance measurement.
    #[arg(long, default_value_t = 5)]
    pub rounds: u32,
    /// Members' heartbeat interval, milliseconds (the SDK's default is 3000).
    #[arg(long, default_value_t = 3000)]
    pub heartbeat_ms: u64,
    /// Records written, then read by one member and by a group of three.
    #[arg(long, default_value_t = 300_000)]
    pub records: u64,
    /// Bytes of each record's value.
    #[arg(long, default_value_t = 256)]
    pub record_size: usize,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Print the figures as one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One member polling until told to stop, counting what it reads.
struct Member {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Member {
    fn spawn(
        client: Client,
        config: ConsumerConfig,
        topic: &str,
        read: Arc<AtomicU64>,
        first: Arc<std::sync::OnceLock<Instant>>,
    ) -> Member {
        let (stop, mut stopped) = watch::channel(false);
        let topic = topic.to_string();
        let task = tokio::spawn(async move {
            let mut consumer = client.consumer(config)?;
            consumer.subscribe([topic])?;
            while !*stopped.borrow_and_update() {
                let records = tokio::select! {
                    r = consumer.poll(Duration::from_millis(200)) => r?,
                    _ = stopped.changed() => break,
                };
                if !records.is_empty() {
                    let _ = first.set(Instant::now());
                    read.fetch_add(records.len() as u64, Ordering::Relaxed);
                }
            }
            consumer.close().await;
            Ok(())
        });
        Member { stop, task }
    }

    async fn close(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.task.await.context("member task")?
    }
}

pub async fn run(conn: &ConnectArgs, args: GroupBenchArgs) -> anyhow::Result<()> {
    let target = Target::start(conn, &args.target).await?;
    let client = target.client().await?;
    let config = |group: &str| ConsumerConfig {
        group_id: Some(group.to_string()),
        auto_offset_reset: OffsetReset::Earliest,
        heartbeat_interval: Duration::from_millis(args.heartbeat_ms),
        session_timeout: Duration::from_millis((args.heartbeat_ms * 3).max(10_000)),
        max_poll_records: 10_000,
        ..ConsumerConfig::default()
    };
    let pid = std::process::id();

    // Rebalance time, on an empty topic: only membership moves.
    let topic = format!("bench-group-rebalance-{pid}");
    client
        .admin()
        .create_topic(&topic, args.partitions, 1, Default::default())
        .await?;
    let group = format!("bench-rebalance-{pid}");
    let idle = || {
        (
            Arc::new(AtomicU64::new(0)),
            Arc::new(std::sync::OnceLock::new()),
        )
    };
    let mut members = Vec::new();
    for _ in 0..2 {
        let (read, first) = idle();
        members.push(Member::spawn(
            target.client().await?,
            config(&group),
            &topic,
            read,
            first,
        ));
    }
    let mut times = Vec::new();
    for round in 0..args.rounds {
        let (read, first) = idle();
        let third = Member::spawn(target.client().await?, config(&group), &topic, read, first);
        wait_stable(&client, &group, 3, args.partitions).await?;
        // The group turns stable just after a heartbeat; leaving right then would always
        // wait one full interval for the next. Spread the leave over the interval.
        let offset = (f64::from(round) + 0.5) / f64::from(args.rounds.max(1));
        tokio::time::sleep(Duration::from_millis(args.heartbeat_ms).mul_f64(offset)).await;
        let start = Instant::now();
        third.close().await?;
        wait_stable(&client, &group, 2, args.partitions).await?;
        times.push(start.elapsed());
    }
    for m in members {
        m.close().await?;
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let rebalance = serde_json::json!({
        "members": "3 -> 2", "partitions": args.partitions, "rounds": args.rounds,
        "heartbeat_ms": args.heartbeat_ms,
        "min_ms": times.first().map(|d| ms(*d)),
        "median_ms": times.get(times.len() / 2).map(|d| ms(*d)),
        "max_ms": times.last().map(|d| ms(*d)),
    });

    // Throughput: one member, then three, over the same records.
    let topic = format!("bench-group-read-{pid}");
    client
        .admin()
        .create_topic(&topic, args.partitions, 1, Default::default())
        .await?;
    fill_topic(
        &client,
        &topic,
        args.partitions,
        args.records,
        args.record_size,
    )
    .await?;
    let single = read_with(
        &target,
        &config(&format!("bench-one-{pid}")),
        &topic,
        1,
        args.records,
    )
    .await?;
    let group3 = read_with(
        &target,
        &config(&format!("bench-three-{pid}")),
        &topic,
        3,
        args.records,
    )
    .await?;
    let rate = |d: Duration| args.records as f64 / d.as_secs_f64().max(1e-9);
    let throughput = serde_json::json!({
        "records": args.records, "record_size": args.record_size, "partitions": args.partitions,
        "single_records_per_sec": rate(single),
        "group_of_3_records_per_sec": rate(group3),
        "ratio": rate(group3) / rate(single),
    });

    if args.json {
        say!(
            "{}",
            serde_json::json!({"bench": "group", "rebalance": rebalance, "throughput": throughput})
        );
    } else {
        say!(
            "rebalance (3 -> 2 members, {} partitions, heartbeat {} ms, {} rounds): min {:.0} ms, median {:.0} ms, max {:.0} ms",
            args.partitions,
            args.heartbeat_ms,
            args.rounds,
            rebalance["min_ms"].as_f64().unwrap_or(f64::NAN),
            rebalance["median_ms"].as_f64().unwrap_or(f64::NAN),
            rebalance["max_ms"].as_f64().unwrap_or(f64::NAN),
        );
        say!(
            "throughput ({} records of {} B): single consumer {:.0} records/s, group of 3 {:.0} records/s, ratio {:.2}",
            args.records,
            args.record_size,
            rate(single),
            rate(group3),
            rate(group3) / rate(single)
        );
    }
    Ok(())
}

/// Waits until the group is stable with `members` members owning all `partitions`.
async fn wait_stable(
    client: &Client,
    group: &str,
    members: usize,
    partitions: u32,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(d) = client.admin().describe_group(group).await {
            let owned: usize = d.members.iter().map(|m| m.assignment.len()).sum();
            if d.state == "Stable" && d.members.len() == members && owned == partitions as usize {
                return Ok(());
            }
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "group {group} did not settle with {members} members in 120 s"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn fill_topic(
    client: &Client,
    topic: &str,
    partitions: u32,
    records: u64,
    size: usize,
) -> anyhow::Result<()> {
    let pool = payloads(size);
    let bar = progress(records, "fill");
    let producer = client.producer(ProducerConfig::default()).await?;
    let mut deliveries = Vec::new();
    for i in 0..records {
        let value = pool[i as usize % pool.len()].clone();
        let record =
            ProducerRecord::new(topic, value).partition((i % u64::from(partitions)) as u32);
        deliveries.push(producer.send(record).await?);
        if deliveries.len() >= 65_536 {
            for d in deliveries.drain(..) {
                d.await?;
                bar.inc(1);
            }
        }
    }
    producer.flush().await;
    for d in deliveries {
        d.await?;
        bar.inc(1);
    }
    producer.close().await;
    bar.finish_and_clear();
    Ok(())
}

/// Time from the first record any of `n` members reads to the last of `total`.
async fn read_with(
    target: &Target,
    config: &ConsumerConfig,
    topic: &str,
    n: usize,
    total: u64,
) -> anyhow::Result<Duration> {
    let read = Arc::new(AtomicU64::new(0));
    let first = Arc::new(std::sync::OnceLock::new());
    let mut members = Vec::new();
    for _ in 0..n {
        let client = target.client().await?;
        members.push(Member::spawn(
            client,
            config.clone(),
            topic,
            Arc::clone(&read),
            Arc::clone(&first),
        ));
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    while read.load(Ordering::Relaxed) < total {
        anyhow::ensure!(
            Instant::now() < deadline,
            "read {} of {total} records in 600 s",
            read.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let end = Instant::now();
    let start = first.get().copied().unwrap_or(end);
    for m in members {
        m.close().await?;
    }
    Ok(end - start)
}
