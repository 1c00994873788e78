//! `quiver bench restart`: how soon a producer is acknowledged again after its broker is
//! killed and started again on the same port.
//!
//! A child `quiver dev` serves one producer offering a steady rate. N times, the child is
//! killed with SIGKILL (no goodbye to the client) and started again on the same data dir
//! and port; each round measures from the moment the new child prints its listening line
//! (it serves from then on) to the first acknowledgement that arrives after it. Before
//! the broker kept its stateless-reset key this was the client's idle timeout (~30 s).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use quiver_sdk::{Client, ClientOptions, ProducerRecord};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin};

use super::steady::{Steady, quantile};
use super::target::{child_dev_command_on, listening_url};
use crate::output::say;

#[derive(Debug, clap::Args)]
pub struct RestartBenchArgs {
    /// Restarts to time.
    #[arg(long, default_value_t = 10)]
    pub restarts: u32,
    /// Milliseconds of producing between a recovery and the next kill.
    #[arg(long, default_value_t = 1000)]
    pub interval_ms: u64,
    /// Records per second the producer offers, before, during and after each restart.
    #[arg(long, default_value_t = 2000)]
    pub rate: u64,
    /// Bytes of each record's value.
    #[arg(long, default_value_t = 100)]
    pub record_size: usize,
    /// Seconds to wait for the first acknowledgement after a restart before giving up.
    #[arg(long, default_value_t = 60)]
    pub give_up: u64,
    /// Print the figures as one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One run of the child broker.
struct Incarnation {
    child: Child,
    /// The child stops and deletes its data dir when this closes; a killed child cannot.
    lifeline: Option<ChildStdin>,
    url: String,
    /// When its listening line was read: from then on it serves.
    serving: Instant,
}

impl Incarnation {
    async fn start(data: &std::path::Path, listen: &str) -> anyhow::Result<Incarnation> {
        let mut child = child_dev_command_on(data, listen)?
            .spawn()
            .context("starting a child broker")?;
        let lifeline = child.stdin.take();
        let stdout = child.stdout.take().context("child broker has no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let url = listening_url(&mut lines).await?;
        let serving = Instant::now();
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Incarnation {
            child,
            lifeline,
            url,
            serving,
        })
    }

    /// SIGKILL, and wait until it is gone.
    async fn kill(mut self) -> anyhow::Result<()> {
        self.child
            .start_kill()
            .context("killing the child broker")?;
        self.child
            .wait()
            .await
            .context("reaping the child broker")?;
        Ok(())
    }

    /// An orderly stop: the child flushes, exits and deletes its data dir.
    async fn stop(mut self) {
        drop(self.lifeline.take());
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.start_kill();
        }
    }
}

/// What one restart measured.
#[derive(Debug, Clone, Copy)]
struct Round {
    /// From the kill to the new child serving.
    down: Duration,
    /// From serving again to the first acknowledgement after it.
    to_first_ack: Duration,
}

pub async fn run(args: RestartBenchArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir().context("creating a temporary data dir")?;
    let data = dir.path().join("data");
    let mut broker = Incarnation::start(&data, "127.0.0.1:0").await?;
    let listen = broker
        .url
        .strip_prefix("quic://")
        .context("the child broker's URL is not quic://")?
        .to_string();
    let ca = data.join("tls").join("cert.pem");
    let client = Client::connect(&broker.url, ClientOptions::new().ca_pem_file(&ca))
        .await
        .with_context(|| format!("connecting to {}", broker.url))?;
    let topic = format!("bench-restart-{}", std::process::id());
    client
        .admin()
        .create_topic(&topic, 1, 1, Default::default())
        .await?;
    let producer = Arc::new(client.producer(Default::default()).await?);

    let value = bytes::Bytes::from(vec![b'r'; args.record_size]);
    let steady = Steady::start(Arc::clone(&producer), args.rate, move || {
        ProducerRecord::new(topic.as_str(), value.clone())
    });
    let mut last_ack = steady.acks();

    let mut rounds = Vec::new();
    for round in 0..args.restarts {
        tokio::time::sleep(Duration::from_millis(args.interval_ms)).await;
        let killed = Instant::now();
        broker.kill().await?;
        broker = Incarnation::start(&data, &listen).await?;
        let serving = broker.serving;
        let first = tokio::time::timeout(
            Duration::from_secs(args.give_up),
            last_ack.wait_for(|at| at.is_some_and(|(_, at)| at > serving)),
        )
        .await
        .with_context(|| {
            format!(
                "no acknowledgement within {} s of restart {}",
                args.give_up,
                round + 1
            )
        })?
        .context("the producer task ended")?
        .map_or(serving, |(_, at)| at);
        let measured = Round {
            down: serving - killed,
            to_first_ack: first.saturating_duration_since(serving),
        };
        if !args.json {
            say!(
                "restart {:>2}: down {:>6.1} ms, first acknowledgement {:>7.1} ms after serving again",
                round + 1,
                ms(measured.down),
                ms(measured.to_first_ack)
            );
        }
        rounds.push(measured);
    }
    let failed = steady.stop().await;
    let _ = tokio::time::timeout(Duration::from_secs(30), producer.flush()).await;
    producer.close().await;
    client.close();
    broker.stop().await;
    report(&args, &rounds, failed);
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn report(args: &RestartBenchArgs, rounds: &[Round], failed: u64) {
    let mut first: Vec<f64> = rounds.iter().map(|r| ms(r.to_first_ack)).collect();
    first.sort_by(f64::total_cmp);
    let mut down: Vec<f64> = rounds.iter().map(|r| ms(r.down)).collect();
    down.sort_by(f64::total_cmp);
    let (p50, p99, max) = (
        quantile(&first, 0.5),
        quantile(&first, 0.99),
        quantile(&first, 1.0),
    );
    if args.json {
        say!(
            "{}",
            serde_json::json!({
                "bench": "restart", "restarts": rounds.len(), "rate": args.rate,
                "first_ack_ms": {"p50": p50, "p99": p99, "max": max},
                "down_ms": {"p50": quantile(&down, 0.5), "max": quantile(&down, 1.0)},
                "failed_deliveries": failed,
            })
        );
    } else {
        say!(
            "{} restarts at {} records/s: first acknowledgement after serving again p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms (broker down p50 {:.1} ms); {failed} deliveries failed",
            rounds.len(),
            args.rate,
            quantile(&down, 0.5)
        );
    }
}
