//! `quiver bench plugin`: what Wasm plugins cost on the data path, and how fast a rebuilt
//! plugin goes live.
//!
//! - produce: keyed records, without a partition, through a topic bound to the Rust
//!   `key-hash` plugin (the broker decodes each batch, calls the plugin and re-encodes
//!   per partition) against the same records routed by the SDK's built-in key hash.
//! - fetch: a whole topic read unfiltered, then through two filters that keep every
//!   record (so the same bytes cross the network): `header-filter` asked to drop records
//!   carrying a header none has (it sees only headers: the cost of the plugin machinery
//!   itself), and `json-filter` testing a field every record has (it parses each value).
//! - `--reload`: a child `quiver dev --plugins DIR`; each round writes a new build of a
//!   partitioner into DIR and times until a call is served by the new version (asked with
//!   `plugin test`, which reports the version that ran).
//!
//! Plugins come from `plugins/build.sh` (`target/plugins/wasm`). Each figure is one run on
//! whatever else the machine is doing; the ratios are the point, not the absolutes.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use quiver_sdk::proto::api::PluginTestRequest;
use quiver_sdk::{
    Client, ClientOptions, ConsumerConfig, FilterSpec, OffsetReset, ProducerConfig, ProducerRecord,
    TopicPartition,
};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::report::{CpuMeter, Report};
use super::target::{Target, TargetArgs};
use crate::connect::ConnectArgs;
use crate::output::say;

#[derive(Debug, clap::Args)]
pub struct PluginBenchArgs {
    /// Records per measured run.
    #[arg(long, default_value_t = 200_000)]
    pub records: u64,
    /// Bytes of each record's value.
    #[arg(long, default_value_t = 256)]
    pub record_size: usize,
    /// Partitions of the produce topics.
    #[arg(long, default_value_t = 4)]
    pub partitions: u32,
    /// Distinct record keys.
    #[arg(long, default_value_t = 10_000)]
    pub keys: u32,
    /// Where the built plugins are; by default target/plugins/wasm.
    #[arg(long)]
    pub plugins_dir: Option<PathBuf>,
    /// Measure hot reload through a child `quiver dev --plugins` instead.
    #[arg(long)]
    pub reload: bool,
    /// Reloads to time with --reload.
    #[arg(long, default_value_t = 5)]
    pub rounds: u32,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Print the figures as one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(conn: &ConnectArgs, args: PluginBenchArgs) -> anyhow::Result<()> {
    let dir = plugins_dir(args.plugins_dir.as_deref())?;
    if args.reload {
        return reload(&args, &dir).await;
    }
    let key_hash = read_plugin(&dir, "key-hash")?;
    let json_filter = read_plugin(&dir, "json-filter")?;
    let header_filter = read_plugin(&dir, "header-filter")?;
    let target = Target::start(conn, &args.target).await?;
    let client = target.client().await?;
    let admin = client.admin();
    let tag = std::process::id();
    let hash_plugin = format!("bench-key-hash-{tag}");
    let filter_plugin = format!("bench-json-filter-{tag}");
    let header_plugin = format!("bench-header-filter-{tag}");
    admin.add_plugin(&hash_plugin, key_hash).await?;
    admin.add_plugin(&filter_plugin, json_filter).await?;
    admin.add_plugin(&header_plugin, header_filter).await?;

    // (a) produce: the built-in key hash, then the plugin, each after a short warm-up.
    let builtin = format!("bench-plugin-builtin-{tag}");
    let routed = format!("bench-plugin-routed-{tag}");
    admin
        .create_topic(&builtin, args.partitions, 1, Default::default())
        .await?;
    let bound = [("partitioner".to_string(), hash_plugin.clone())].into();
    admin
        .create_topic(&routed, args.partitions, 1, bound)
        .await?;
    let keys: Vec<Bytes> = (0..args.keys.max(1))
        .map(|k| Bytes::from(format!("key-{k}")))
        .collect();
    let values = super::produce::payloads(args.record_size);
    let warm = (args.records / 10).max(1);
    produce(&client, &builtin, warm, &keys, &values).await?;
    produce(&client, &routed, warm, &keys, &values).await?;
    let mut reports = Vec::new();
    for (name, topic) in [
        ("produce, built-in key hash", &builtin),
        ("produce, key-hash plugin", &routed),
    ] {
        let cpu = CpuMeter::start(target.pid());
        let took = produce(&client, topic, args.records, &keys, &values).await?;
        let mut report = Report::new(
            name,
            args.records,
            args.records * args.record_size as u64,
            took,
        );
        report.settings = serde_json::json!({
            "record_size": args.record_size, "partitions": args.partitions, "keys": args.keys,
        });
        cpu.finish(&mut report);
        target.annotate(&mut report);
        reports.push(report);
    }
    let produce_ratio = reports[1].records_per_sec / reports[0].records_per_sec.max(1e-9);

    // (b) fetch: the same topic read unfiltered, then through a filter keeping everything.
    let fetched = format!("bench-plugin-fetch-{tag}");
    admin
        .create_topic(&fetched, args.partitions, 1, Default::default())
        .await?;
    fill_json(&client, &fetched, args.records, args.record_size).await?;
    let json_keep_all = FilterSpec {
        name: filter_plugin.clone(),
        version: None,
        params: [
            ("field".to_string(), "n".to_string()),
            ("op".into(), "exists".into()),
        ]
        .into(),
    };
    let header_keep_all = FilterSpec {
        name: header_plugin.clone(),
        version: None,
        params: [
            ("header".to_string(), "no-record-has-this".to_string()),
            ("invert".into(), "true".into()),
        ]
        .into(),
    };
    let runs = [
        ("fetch, unfiltered", None),
        ("fetch, header-filter keeping all", Some(header_keep_all)),
        ("fetch, json-filter keeping all", Some(json_keep_all)),
    ];
    // Warm the page cache and the plugins' instance pools before anything is measured.
    for (_, filter) in &runs {
        read_all(
            &client,
            &fetched,
            args.partitions,
            args.records,
            filter.clone(),
        )
        .await?;
    }
    for (name, filter) in runs {
        let cpu = CpuMeter::start(target.pid());
        let (took, bytes) =
            read_all(&client, &fetched, args.partitions, args.records, filter).await?;
        let mut report = Report::new(name, args.records, bytes, took);
        report.settings =
            serde_json::json!({ "record_size": args.record_size, "partitions": args.partitions });
        cpu.finish(&mut report);
        target.annotate(&mut report);
        reports.push(report);
    }
    let unfiltered = reports[2].records_per_sec.max(1e-9);
    let fetch_ratio = reports[3].records_per_sec / unfiltered;
    let json_fetch_ratio = reports[4].records_per_sec / unfiltered;

    for r in &reports {
        r.print(args.json);
    }
    if args.json {
        say!(
            "{}",
            serde_json::json!({
                "bench": "plugin",
                "produce_ratio": produce_ratio,
                "fetch_ratio": fetch_ratio,
                "json_fetch_ratio": json_fetch_ratio,
            })
        );
    } else {
        say!("plugin/built-in produce throughput: {produce_ratio:.2}");
        say!("filtered (header-filter, keeps all)/unfiltered fetch throughput: {fetch_ratio:.2}");
        say!(
            "filtered (json-filter, keeps all)/unfiltered fetch throughput: {json_fetch_ratio:.2}"
        );
    }
    Ok(())
}

/// The directory of built plugins: the flag, else `target/plugins/wasm` beside this
/// binary's target directory, else under the working directory.
fn plugins_dir(flag: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = flag {
        return Ok(dir.to_path_buf());
    }
    let beside_exe = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("plugins/wasm")));
    let candidates = beside_exe
        .into_iter()
        .chain([PathBuf::from("target/plugins/wasm")]);
    for dir in candidates {
        if dir.join("key-hash.wasm").is_file() {
            return Ok(dir);
        }
    }
    anyhow::bail!(
        "no built plugins found (looked for target/plugins/wasm/key-hash.wasm): run plugins/build.sh first, or pass --plugins-dir"
    )
}

fn read_plugin(dir: &Path, name: &str) -> anyhow::Result<Bytes> {
    let path = dir.join(format!("{name}.wasm"));
    let bytes = std::fs::read(&path)
        .with_context(|| format!("reading {} (run plugins/build.sh first)", path.display()))?;
    Ok(Bytes::from(bytes))
}

/// Sends `n` keyed records without a partition and waits for every acknowledgement.
async fn produce(
    client: &Client,
    topic: &str,
    n: u64,
    keys: &[Bytes],
    values: &[Bytes],
) -> anyhow::Result<Duration> {
    let topic: std::sync::Arc<str> = topic.into();
    let records = (0..n as usize).map(|i| {
        ProducerRecord::new(topic.clone(), values[i % values.len()].clone())
            .key(keys[i % keys.len()].clone())
    });
    send_all(client, records).await
}

/// Sends `records` through a new producer and waits for every acknowledgement; returns
/// the time from the first send to the last acknowledgement.
async fn send_all(
    client: &Client,
    records: impl Iterator<Item = ProducerRecord>,
) -> anyhow::Result<Duration> {
    let producer = client.producer(ProducerConfig::default()).await?;
    let start = Instant::now();
    let mut deliveries = Vec::new();
    for record in records {
        deliveries.push(producer.send(record).await?);
        // Bounded memory on long runs.
        if deliveries.len() >= 65_536 {
            for d in deliveries.drain(..) {
                d.await?;
            }
        }
    }
    producer.flush().await;
    for d in deliveries {
        d.await?;
    }
    let took = start.elapsed();
    producer.close().await;
    Ok(took)
}

/// Writes `n` JSON records, `{"n":I,"pad":"xx.."}`, about `size` bytes each.
async fn fill_json(client: &Client, topic: &str, n: u64, size: usize) -> anyhow::Result<()> {
    let topic: std::sync::Arc<str> = topic.into();
    let records = (0..n).map(|i| {
        let head = format!("{{\"n\":{i},\"pad\":\"");
        let pad = "x".repeat(size.saturating_sub(head.len() + 2));
        ProducerRecord::new(topic.clone(), format!("{head}{pad}\"}}"))
    });
    send_all(client, records).await?;
    Ok(())
}

/// Reads `expected` records from every partition of `topic`; returns the time and the
/// value bytes received.
async fn read_all(
    client: &Client,
    topic: &str,
    partitions: u32,
    expected: u64,
    filter: Option<FilterSpec>,
) -> anyhow::Result<(Duration, u64)> {
    let mut consumer = client.consumer(ConsumerConfig {
        auto_offset_reset: OffsetReset::Earliest,
        max_poll_records: 100_000,
        filter,
        ..ConsumerConfig::default()
    })?;
    let tps: Vec<TopicPartition> = (0..partitions)
        .map(|p| TopicPartition::new(topic.to_string(), p))
        .collect();
    consumer.assign(tps.clone());
    consumer.seek_to_beginning(&tps).await?;
    let start = Instant::now();
    let (mut got, mut bytes) = (0u64, 0u64);
    while got < expected {
        let records = consumer.poll(Duration::from_secs(5)).await?;
        anyhow::ensure!(
            !records.is_empty() || start.elapsed() < Duration::from_secs(300),
            "fetch stalled at {got} of {expected} records"
        );
        got += records.len() as u64;
        bytes += records
            .iter()
            .map(|r| r.value.as_ref().map_or(0, |v| v.len()) as u64)
            .sum::<u64>();
    }
    Ok((start.elapsed(), bytes))
}

/// A copy of a component with a custom section appended: a different build as far as the
/// broker can tell (another hash, another version), with the same behaviour.
pub fn with_custom_section(component: &[u8], name: &str, payload: &[u8]) -> Vec<u8> {
    let mut contents = leb128(name.len() as u64);
    contents.extend_from_slice(name.as_bytes());
    contents.extend_from_slice(payload);
    let mut out = component.to_vec();
    out.push(0); // section id 0: custom
    out.extend(leb128(contents.len() as u64));
    out.extend(contents);
    out
}

/// Unsigned LEB128, as the Wasm binary format writes sizes.
fn leb128(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// (c): time from writing a new build into a `quiver dev --plugins` directory to the
/// first call served by it.
async fn reload(args: &PluginBenchArgs, plugins: &Path) -> anyhow::Result<()> {
    let base = read_plugin(plugins, "key-hash")?;
    let work = tempfile::tempdir().context("creating a temporary directory")?;
    let watched = work.path().join("plugins");
    std::fs::create_dir(&watched).context("creating the watched directory")?;
    let file = watched.join("bench-hash.wasm");
    std::fs::write(&file, &base).context("writing the first build")?;
    let data = work.path().join("data");

    let mut child = super::target::child_dev_command(&data)?
        .arg("--plugins")
        .arg(&watched)
        .spawn()
        .context("starting a child `quiver dev --plugins`")?;
    let _lifeline = child.stdin.take();
    let stdout = child.stdout.take().context("the child has no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let url = super::target::listening_url(&mut lines).await?;
    // The child's own figure for each reload ("reloaded NAME vN (kind) in X ms").
    let (tx, mut reported) = tokio::sync::mpsc::unbounded_channel::<u64>();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(ms) = line
                .strip_prefix("reloaded ")
                .and_then(|rest| rest.rsplit_once(" in "))
                .and_then(|(_, ms)| ms.strip_suffix(" ms")?.parse().ok())
            {
                let _ = tx.send(ms);
            }
        }
    });
    let client = Client::connect(
        &url,
        ClientOptions::new().ca_pem_file(data.join("tls").join("cert.pem")),
    )
    .await
    .with_context(|| format!("connecting to {url}"))?;
    let admin = client.admin();
    let name = "bench-hash";
    let deadline = Instant::now() + Duration::from_secs(120);
    while admin.describe_plugin(name).await.is_err() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the child broker did not load {} within 120 s",
            file.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    admin
        .create_topic("reload", 1, 1, Default::default())
        .await?;
    let producer = client.producer(ProducerConfig::default()).await?;
    producer
        .send_and_wait(ProducerRecord::new("reload", "v").key("k").partition(0))
        .await?;
    producer.close().await;
    let probe = PluginTestRequest {
        name: name.to_string(),
        version: None,
        topic: "reload".into(),
        partition: 0,
        from_offset: 0,
        count: 1,
        params: Default::default(),
    };

    let mut times = Vec::new();
    for round in 1..=args.rounds.max(1) {
        let before = admin.test_plugin(probe.clone()).await?.version;
        let build = with_custom_section(&base, "quiver-bench", &round.to_le_bytes());
        let start = Instant::now();
        std::fs::write(&file, &build).context("writing a new build")?;
        loop {
            let served = admin.test_plugin(probe.clone()).await?.version;
            if served > before {
                break;
            }
            anyhow::ensure!(
                start.elapsed() < Duration::from_secs(60),
                "round {round}: the new build was not served within 60 s"
            );
        }
        times.push(start.elapsed());
        // Let the watcher return to its quiet poll, so rounds do not overlap.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    client.close();
    let _ = child.kill().await;
    let mut child_ms = Vec::new();
    while let Ok(ms) = reported.try_recv() {
        child_ms.push(ms);
    }
    times.sort();
    let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
    let median = ms(&times[times.len() / 2]);
    let (min, max) = (ms(&times[0]), ms(&times[times.len() - 1]));
    if args.json {
        say!(
            "{}",
            serde_json::json!({
                "bench": "plugin-reload", "rounds": times.len(),
                "median_ms": median, "min_ms": min, "max_ms": max,
                "watcher_reported_ms": child_ms,
                "poll_ms": crate::reload::POLL.as_millis() as u64,
                "settle_ms": crate::reload::SETTLE.as_millis() as u64,
            })
        );
    } else {
        say!(
            "plugin reload: write to first call on the new version, {} rounds: median {median:.0} ms, min {min:.0} ms, max {max:.0} ms",
            times.len()
        );
        say!(
            "  as `quiver dev` reported each (change seen to upload acknowledged): {child_ms:?} ms"
        );
        say!(
            "  the watcher polls every {} ms and waits {} ms for a file to settle",
            crate::reload::POLL.as_millis(),
            crate::reload::SETTLE.as_millis()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leb128_matches_the_wasm_encoding() {
        assert_eq!(leb128(0), [0]);
        assert_eq!(leb128(127), [0x7f]);
        assert_eq!(leb128(128), [0x80, 0x01]);
        assert_eq!(leb128(624_485), [0xe5, 0x8e, 0x26]);
    }

    #[test]
    fn a_custom_section_is_appended_whole() {
        let out = with_custom_section(b"\0asm\x0d\0\x01\0", "ab", &[7, 8]);
        assert_eq!(&out[..8], b"\0asm\x0d\0\x01\0");
        // id, size (1 + 2 + 2), name length, name, payload
        assert_eq!(&out[8..], &[0, 5, 2, b'a', b'b', 7, 8]);
    }
}
