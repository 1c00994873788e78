//! `quiver bench cluster`: the figures of a three-broker cluster on this machine.
//!
//! The brokers are `quiver serve` children, one process each, with the settings
//! `quiver dev --nodes 3` uses (heartbeat 200 ms, fenced after 1 s, three replicas,
//! `min.insync.replicas = 2`), so one can be SIGKILLed and each one's CPU and memory read
//! from `/proc`.
//!
//! - `produce`: 1 KiB records with acks=all (or `--acks`) to the cluster against acks=1
//!   to a single `quiver dev` child, in alternating rounds after a warm-up of each; then
//!   the cluster's latency at half the rate it reached, with the single node stopped.
//! - `failover`: SIGKILL the leader of a partition under a steady acks=all producer and
//!   time the acknowledgement of the first record sent after it (only a new leader can
//!   take that one); the broker is started again and back in
//!   the ISR before the next trial.
//! - `idle`: a topic of many partitions at three replicas and no traffic: the CPU of the
//!   three brokers together and the memory of each.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use quiver_sdk::{Acks, Client, ClientOptions, ProducerConfig, ProducerRecord};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

use super::produce::{Shared, payloads, produce_one};
use super::report::{cpu_seconds, histogram, progress};
use super::steady::{Steady, quantile};
use super::target::{Target, TargetArgs, listening_url};
use crate::connect::ConnectArgs;
use crate::output::say;

#[derive(Debug, clap::Subcommand)]
pub enum ClusterBench {
    /// acks=all throughput on three brokers against acks=1 on one, and p99 at half rate.
    Produce(ProduceArgs),
    /// Time from the SIGKILL of a partition's leader to the next acknowledgement.
    Failover(FailoverArgs),
    /// CPU and memory of three idle brokers holding many replicated partitions.
    Idle(IdleArgs),
}

#[derive(Debug, clap::Args)]
pub struct ProduceArgs {
    /// Records per round and target.
    #[arg(long, default_value_t = 300_000)]
    pub records: u64,
    /// Records each target takes before the timed rounds. The first gigabyte or so a
    /// broker writes goes into memory the system has at hand; a broker that has run for
    /// a while writes into memory it must first obtain (on a VM, from the host) while the
    /// kernel writes back what it already holds, and that is the rate it sustains. As the
    /// OpenMessaging Benchmark does, the figures are taken after a warm-up.
    #[arg(long, default_value_t = 1_000_000)]
    pub warmup_records: u64,
    /// Bytes of each record's value.
    #[arg(long, default_value_t = 1024)]
    pub record_size: usize,
    /// Partitions of the benchmark topic, on both targets.
    #[arg(long, default_value_t = 3)]
    pub partitions: u32,
    /// Rounds; each runs the single node and the cluster, in alternating order.
    #[arg(long, default_value_t = 5)]
    pub rounds: u32,
    /// The cluster producer's acks (0, 1 or all): `1` shows what replication costs
    /// without waiting for it.
    #[arg(long, default_value = "all")]
    pub acks: Acks,
    /// Print the figures as one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct FailoverArgs {
    /// Leaders to kill.
    #[arg(long, default_value_t = 20)]
    pub trials: u32,
    /// Records per second the producer offers throughout.
    #[arg(long, default_value_t = 500)]
    pub rate: u64,
    /// Seconds to wait for an acknowledgement after a kill before giving up.
    #[arg(long, default_value_t = 30)]
    pub give_up: u64,
    /// Print the figures as one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct IdleArgs {
    /// Partitions of the one topic, each with three replicas.
    #[arg(long, default_value_t = 1000)]
    pub partitions: u32,
    /// Seconds to let the cluster settle once every partition is fully in sync.
    #[arg(long, default_value_t = 5)]
    pub settle: u64,
    /// Seconds over which CPU is measured.
    #[arg(long, default_value_t = 20)]
    pub window: u64,
    /// Print the figures as one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(cmd: ClusterBench) -> anyhow::Result<()> {
    match cmd {
        ClusterBench::Produce(args) => produce(args).await,
        ClusterBench::Failover(args) => failover(args).await,
        ClusterBench::Idle(args) => idle(args).await,
    }
}

/// One broker of the [`ProcessCluster`], running.
#[derive(Debug)]
struct Member {
    child: Child,
    /// The broker stops when this closes (`--owned-by-parent`), however this process
    /// ends; a killed broker cannot clean up.
    _lifeline: Option<ChildStdin>,
}

/// Three `quiver serve` children on loopback, configured as `quiver dev --nodes 3`
/// configures its brokers, on a temporary directory.
#[derive(Debug)]
struct ProcessCluster {
    dir: tempfile::TempDir,
    configs: Vec<PathBuf>,
    members: Vec<Option<Member>>,
    urls: Vec<String>,
    ca: PathBuf,
}

impl ProcessCluster {
    async fn start() -> anyhow::Result<ProcessCluster> {
        let dir = tempfile::tempdir().context("creating a temporary directory")?;
        let data = dir.path().join("data");
        let (configs, ca) = crate::dev_cluster::process_configs(&data, 3)?;
        let mut paths = Vec::new();
        for config in &configs {
            let path = data
                .join("cluster")
                .join(format!("broker-{}.toml", config.node_id));
            std::fs::write(&path, config.to_toml()?)
                .with_context(|| format!("writing {}", path.display()))?;
            paths.push(path);
        }
        let mut cluster = ProcessCluster {
            dir,
            configs: paths,
            members: Vec::new(),
            urls: Vec::new(),
            ca,
        };
        // Together: a broker serves once the quorum, a majority, has registered it.
        let mut waiting = Vec::new();
        for i in 0..cluster.configs.len() {
            waiting.push(cluster.spawn(i)?);
        }
        for (child, lifeline, mut lines) in waiting {
            let url = listening_url(&mut lines).await?;
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            cluster.members.push(Some(Member {
                child,
                _lifeline: lifeline,
            }));
            cluster.urls.push(url);
        }
        Ok(cluster)
    }

    #[allow(clippy::type_complexity)]
    fn spawn(
        &self,
        index: usize,
    ) -> anyhow::Result<(
        Child,
        Option<ChildStdin>,
        tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    )> {
        let exe = std::env::current_exe().context("finding the quiver binary")?;
        let mut child = Command::new(exe)
            .arg("serve")
            .arg("--config")
            .arg(&self.configs[index])
            .arg("--owned-by-parent")
            .env("QUIVER_HOME", self.dir.path().join("home"))
            .env(
                "QUIVER_LOG",
                std::env::var("QUIVER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .env_remove("TOKIO_WORKER_THREADS")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting a broker")?;
        let lifeline = child.stdin.take();
        let stdout = child.stdout.take().context("the broker has no stdout")?;
        Ok((child, lifeline, BufReader::new(stdout).lines()))
    }

    /// SIGKILL broker `id` and wait until it is gone.
    async fn kill(&mut self, id: u32) -> anyhow::Result<()> {
        let slot = self
            .members
            .get_mut(id as usize - 1)
            .context("no such broker")?;
        if let Some(mut m) = slot.take() {
            m.child.start_kill().context("killing a broker")?;
            m.child.wait().await.context("reaping a broker")?;
        }
        Ok(())
    }

    /// Starts broker `id` again on its data directory and ports.
    async fn restart(&mut self, id: u32) -> anyhow::Result<()> {
        let index = id as usize - 1;
        let (child, lifeline, mut lines) = self.spawn(index)?;
        listening_url(&mut lines).await?;
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.members[index] = Some(Member {
            child,
            _lifeline: lifeline,
        });
        Ok(())
    }

    fn pids(&self) -> Vec<u32> {
        self.members
            .iter()
            .filter_map(|m| m.as_ref()?.child.id())
            .collect()
    }

    async fn client(&self) -> anyhow::Result<Client> {
        let url = self.urls.join(",");
        Client::connect(&url, ClientOptions::new().ca_pem_file(&self.ca))
            .await
            .with_context(|| format!("connecting to {url}"))
    }
}

/// Resident memory of process `pid` in MiB.
fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Waits until every partition of `topic` has all its replicas in sync.
async fn fully_in_sync(client: &Client, topic: &str, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let described = client.admin().describe_topic(topic).await;
        if let Ok(d) = &described
            && d.partitions
                .iter()
                .all(|p| p.in_sync_replicas.len() == p.replicas.len())
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!("{topic} was not fully in sync within {within:?}: {described:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends `records` records and returns the elapsed time and the latency histogram.
async fn timed_produce(
    client: Client,
    topic: &str,
    acks: Acks,
    records: u64,
    rate: f64,
    record_size: usize,
) -> anyhow::Result<(Duration, hdrhistogram::Histogram<u64>)> {
    let hist = Shared::new(histogram());
    let bar = progress(records, "produce");
    let config = ProducerConfig {
        acks,
        ..ProducerConfig::default()
    };
    let start = Instant::now();
    produce_one(
        client,
        config,
        topic.to_string(),
        records,
        rate,
        payloads(record_size),
        hist.clone(),
        bar.clone(),
        0,
    )
    .await?;
    bar.finish_and_clear();
    Ok((start.elapsed(), hist.take()))
}

fn acks_name(acks: Acks) -> &'static str {
    match acks {
        Acks::None => "0",
        Acks::Leader => "1",
        Acks::All => "all",
    }
}

/// The middle value, or the mean of the two middle ones; 0 for none.
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

async fn produce(args: ProduceArgs) -> anyhow::Result<()> {
    let single = Target::start(
        &ConnectArgs::default(),
        &TargetArgs {
            external: false,
            broker_configs: Vec::new(),
        },
    )
    .await?;
    let cluster = ProcessCluster::start().await?;
    let one = single.client().await?;
    let three = cluster.client().await?;
    let topic = format!("bench-cluster-{}", std::process::id());
    one.admin()
        .create_topic(&topic, args.partitions, 1, Default::default())
        .await?;
    three
        .admin()
        .create_topic(&topic, args.partitions, 3, Default::default())
        .await?;
    fully_in_sync(&three, &topic, Duration::from_secs(30)).await?;
    let mb = |elapsed: Duration| {
        (args.records * args.record_size as u64) as f64 / elapsed.as_secs_f64() / 1e6
    };
    if args.warmup_records > 0 {
        say!("warming up: {} records to each target", args.warmup_records);
        for (client, acks) in [(&one, Acks::Leader), (&three, args.acks)] {
            timed_produce(
                client.clone(),
                &topic,
                acks,
                args.warmup_records,
                0.0,
                args.record_size,
            )
            .await?;
        }
    }
    let (mut singles, mut clusters, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..args.rounds.max(1) {
        // Alternating order, so a drift of the machine's speed hits both alike.
        let mut figures = [0.0f64; 2];
        for which in [round % 2, 1 - round % 2] {
            let (client, acks) = match which {
                0 => (one.clone(), Acks::Leader),
                _ => (three.clone(), args.acks),
            };
            let (elapsed, _) =
                timed_produce(client, &topic, acks, args.records, 0.0, args.record_size).await?;
            figures[which as usize] = mb(elapsed);
        }
        say!(
            "round {}: single node acks=1 {:.1} MB/s, three brokers acks={} {:.1} MB/s, ratio {:.2}",
            round + 1,
            figures[0],
            acks_name(args.acks),
            figures[1],
            figures[1] / figures[0]
        );
        singles.push(figures[0]);
        clusters.push(figures[1]);
        ratios.push(figures[1] / figures[0]);
    }
    let cluster_mb = median(&mut clusters);
    // The single node is done: stopped and its data deleted, so that the kernel writing
    // back what it left in the page cache does not compete with the latency phase.
    drop(one);
    single.stop().await;
    // Latency at half the cluster's rate.
    let half_rate = cluster_mb * 1e6 / args.record_size as f64 / 2.0;
    let (_, hist) = timed_produce(
        three.clone(),
        &topic,
        args.acks,
        args.records,
        half_rate,
        args.record_size,
    )
    .await?;
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    let figures = serde_json::json!({
        "bench": "cluster-produce",
        "record_size": args.record_size,
        "partitions": args.partitions,
        "records_per_round": args.records,
        "warmup_records": args.warmup_records,
        "cluster_acks": acks_name(args.acks),
        "single_acks1_mb_per_sec_median": median(&mut singles),
        "cluster_acks_all_mb_per_sec_median": cluster_mb,
        "ratio_median": median(&mut ratios),
        "ratios": ratios,
        "half_rate_records_per_sec": half_rate.round(),
        "half_rate_latency_ms": {"p50": ms(0.5), "p99": ms(0.99), "p999": ms(0.999)},
    });
    if args.json {
        say!("{figures}");
    } else {
        say!(
            "three brokers acks={} / one broker acks=1: median ratio {:.2} ({:.1} / {:.1} MB/s)",
            acks_name(args.acks),
            figures["ratio_median"].as_f64().unwrap_or(0.0),
            cluster_mb,
            figures["single_acks1_mb_per_sec_median"]
                .as_f64()
                .unwrap_or(0.0)
        );
        say!(
            "at half that rate ({half_rate:.0} records/s): p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms",
            ms(0.5),
            ms(0.99),
            ms(0.999)
        );
    }
    Ok(())
}

async fn failover(args: FailoverArgs) -> anyhow::Result<()> {
    let mut cluster = ProcessCluster::start().await?;
    let client = cluster.client().await?;
    let topic = "bench-failover";
    // One partition led by each broker, so that every trial can pick its victim.
    client
        .admin()
        .create_topic(topic, 3, 3, Default::default())
        .await?;
    fully_in_sync(&client, topic, Duration::from_secs(30)).await?;
    let producer = Arc::new(client.producer(ProducerConfig::default()).await?);
    let target = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let steady = {
        let target = Arc::clone(&target);
        Steady::start(Arc::clone(&producer), args.rate, move || {
            let partition = target.load(std::sync::atomic::Ordering::Relaxed);
            ProducerRecord::new(topic, vec![b'f'; 100]).partition(partition)
        })
    };
    let mut last_ack = steady.acks();
    // (took in ms, whether the victim was also the controller)
    let mut trials: Vec<(f64, bool)> = Vec::new();
    for trial in 1..=args.trials {
        // Every third trial the victim is the controller too, as a lost broker of three
        // is one time in three: its partitions wait for a new controller as well.
        let controller = client
            .admin()
            .cluster_status()
            .await?
            .quorum
            .and_then(|q| q.leader);
        let described = client.admin().describe_topic(topic).await?;
        let want_controller = trial % 3 == 0;
        let chosen = described
            .partitions
            .iter()
            .find(|p| (Some(p.leader) == controller) == want_controller)
            .or_else(|| described.partitions.first())
            .context("the topic has no partition")?;
        let (partition, leader) = (chosen.partition, chosen.leader);
        target.store(partition, std::sync::atomic::Ordering::Relaxed);
        // Producing to that partition before the kill.
        let switched = Instant::now();
        tokio::time::timeout(Duration::from_secs(args.give_up), async {
            loop {
                if last_ack.changed().await.is_err() {
                    return;
                }
                if last_ack
                    .borrow_and_update()
                    .is_some_and(|(sent, _)| sent > switched)
                {
                    return;
                }
            }
        })
        .await
        .context("no acknowledgement before the kill")?;
        let killed = Instant::now();
        cluster.kill(leader).await?;
        let first = tokio::time::timeout(Duration::from_secs(args.give_up), async {
            loop {
                if last_ack.changed().await.is_err() {
                    return None;
                }
                // A record sent after the kill: only a new leader can have taken it.
                if let Some((sent, at)) = *last_ack.borrow_and_update()
                    && sent > killed
                {
                    return Some(at);
                }
            }
        })
        .await
        .ok()
        .flatten()
        .with_context(|| format!("no acknowledgement within {} s of the kill", args.give_up))?;
        let took = first - killed;
        let was_controller = Some(leader) == controller;
        say!(
            "trial {trial}: leader {leader} of partition {partition}{} killed; acknowledged again after {:.0} ms",
            if was_controller {
                " (and controller)"
            } else {
                ""
            },
            took.as_secs_f64() * 1000.0
        );
        trials.push((took.as_secs_f64() * 1000.0, was_controller));
        cluster.restart(leader).await?;
        fully_in_sync(&client, topic, Duration::from_secs(60)).await?;
    }
    let failed = steady.stop().await;
    producer.close().await;
    let sorted = |filter: &dyn Fn(bool) -> bool| {
        let mut t: Vec<f64> = trials
            .iter()
            .filter(|(_, c)| filter(*c))
            .map(|(t, _)| *t)
            .collect();
        t.sort_by(f64::total_cmp);
        t
    };
    let all = sorted(&|_| true);
    let with_controller = sorted(&|c| c);
    let without = sorted(&|c| !c);
    let at = |t: &[f64], q: f64| quantile(t, q);
    let figures = serde_json::json!({
        "bench": "cluster-failover",
        "trials": all.len(),
        "rate": args.rate,
        "median_ms": at(&all, 0.5),
        "p99_ms": at(&all, 0.99),
        "min_ms": all.first(),
        "max_ms": all.last(),
        "controller_killed_median_ms": at(&with_controller, 0.5),
        "controller_kept_median_ms": at(&without, 0.5),
        "failed_deliveries": failed,
        "times_ms": trials.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
    });
    if args.json {
        say!("{figures}");
    } else {
        say!(
            "failover over {} trials: median {:.0} ms, p99 {:.0} ms (min {:.0}, max {:.0}); {failed} deliveries failed",
            all.len(),
            at(&all, 0.5),
            at(&all, 0.99),
            all.first().copied().unwrap_or(0.0),
            all.last().copied().unwrap_or(0.0)
        );
        say!(
            "  median {:.0} ms over {} trials where the leader was also the controller, {:.0} ms over {} where it was not",
            at(&with_controller, 0.5),
            with_controller.len(),
            at(&without, 0.5),
            without.len()
        );
    }
    Ok(())
}

async fn idle(args: IdleArgs) -> anyhow::Result<()> {
    let cluster = ProcessCluster::start().await?;
    let client = cluster.client().await?;
    client
        .admin()
        .create_topic("bench-idle", args.partitions, 3, Default::default())
        .await?;
    fully_in_sync(&client, "bench-idle", Duration::from_secs(300)).await?;
    tokio::time::sleep(Duration::from_secs(args.settle)).await;
    let pids = cluster.pids();
    let before: Vec<Option<f64>> = pids.iter().map(|p| cpu_seconds(&p.to_string())).collect();
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.window)).await;
    let wall = start.elapsed().as_secs_f64();
    let mut per_broker = Vec::new();
    for (pid, then) in pids.iter().zip(before) {
        let now = cpu_seconds(&pid.to_string());
        let cpu = match (now, then) {
            (Some(n), Some(t)) => (n - t) / wall * 100.0,
            _ => f64::NAN,
        };
        per_broker.push(serde_json::json!({
            "pid": pid, "cpu_percent": cpu, "rss_mib": rss_mib(*pid),
        }));
    }
    let total: f64 = per_broker
        .iter()
        .filter_map(|b| b["cpu_percent"].as_f64())
        .sum();
    let figures = serde_json::json!({
        "bench": "cluster-idle",
        "partitions": args.partitions,
        "replication_factor": 3,
        "window_s": args.window,
        "cpu_percent_of_one_core_total": total,
        "brokers": per_broker,
    });
    if args.json {
        say!("{figures}");
    } else {
        say!(
            "three idle brokers, {} partitions at three replicas: CPU {total:.1}% of one core in all",
            args.partitions
        );
        for (i, b) in per_broker.iter().enumerate() {
            say!(
                "  broker {}: CPU {:.1}%, RSS {:.1} MiB",
                i + 1,
                b["cpu_percent"].as_f64().unwrap_or(f64::NAN),
                b["rss_mib"].as_f64().unwrap_or(f64::NAN)
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_takes_the_middle_or_the_mean_of_the_two_middle_values() {
        assert_eq!(median(&mut []), 0.0);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [0.4, 0.1, 0.3, 0.2]), 0.25);
    }
}
