//! `quiver plugin add|list|describe|remove|test|logs|watch`: the plugin developer loop.
//!
//! Plugins are WebAssembly components built against `wit/` (see `plugins/README.md`).
//! `add` uploads one as a new version of a named plugin; the broker checks it against its
//! world and makes it current. `test` runs a plugin over stored records of a real
//! partition without changing anything, and prints what it decided for each record;
//! `watch` re-uploads a file each time it changes, so a rebuild is live in well under a
//! second. Binding is a topic config (`quiver topic alter T --set partitioner=NAME`) or,
//! for filters, a consumer flag (`quiver consume T --filter NAME --param k=v`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use quiver_sdk::proto::api::{
    PluginDecision, PluginDescription, PluginLimitsSpec, PluginLogEntry, PluginOutcome,
    PluginTestRequest, PluginTestResponse, PluginVersionInfo,
};
use quiver_sdk::{Client, ConsumerConfig, OffsetReset, OffsetSpec, TopicPartition};

use crate::connect::ConnectArgs;
use crate::output::say;
use crate::reload::{self, Component};

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Upload FILE (a .wasm component) as a new version of plugin NAME.
    Add {
        /// The plugin's name: what topics bind (`partitioner=NAME`) and consumers name.
        name: String,
        /// The WebAssembly component (.wasm) built against wit/plugin.wit.
        file: PathBuf,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// List plugins with their kind, current version and bound topics.
    List,
    /// Show a plugin's versions, their sizes, and the topics bound to it.
    Describe {
        /// The plugin.
        name: String,
    },
    /// Remove a plugin, or one version of it. Refused while a topic is bound to it,
    /// unless --force.
    // `--version` names a plugin version here, not this program's.
    #[command(disable_version_flag = true)]
    Remove {
        /// The plugin.
        name: String,
        /// Remove only this version.
        #[arg(long)]
        version: Option<u32>,
        /// Remove even while topics are bound to it (their produces and compactions
        /// then fail until they are rebound).
        #[arg(long)]
        force: bool,
    },
    /// Run a plugin over stored records of one partition, changing nothing, and print
    /// what it decided for each.
    #[command(disable_version_flag = true)]
    Test(TestArgs),
    /// Print a plugin's log: what it logged or printed, and the broker's notes on it.
    Logs {
        /// The plugin.
        name: String,
        /// Keep waiting for new entries (Ctrl-C to stop).
        #[arg(long, short)]
        follow: bool,
    },
    /// Upload FILE as plugin NAME, then again each time it changes (Ctrl-C to stop).
    Watch {
        /// The plugin's name: what topics bind (`partitioner=NAME`) and consumers name.
        name: String,
        /// The component file to watch; each change is uploaded as a new version.
        file: PathBuf,
    },
}

/// Per-call limits of a plugin, set when a version is added. A limit not given is the
/// previous version's, or the broker's default (`plugins.call_timeout_ms`,
/// `plugins.memory_bytes`) when no version set it.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct LimitArgs {
    /// Wall-clock time one call of the plugin may take, in milliseconds (10 to 60000;
    /// the broker's default is 1000).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub timeout_ms: Option<u64>,
    /// Memory one instance of the plugin may hold, in MiB (1 to 4096; the broker's
    /// default is 128).
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub memory_mib: Option<u64>,
}

impl LimitArgs {
    pub fn spec(self) -> PluginLimitsSpec {
        PluginLimitsSpec {
            call_timeout_ms: self.timeout_ms,
            memory_bytes: self.memory_mib.map(|m| m << 20),
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// The plugin to run.
    pub name: String,
    /// The topic whose stored records the plugin reads.
    #[arg(long, short)]
    pub topic: String,
    /// The partition whose records the plugin reads.
    #[arg(long, short, default_value_t = 0)]
    pub partition: u32,
    /// The first offset; by default the partition's first stored record.
    #[arg(long)]
    pub from: Option<i64>,
    /// Records to run the plugin over.
    #[arg(long, short = 'n', default_value_t = 10)]
    pub count: u32,
    /// A parameter passed to the plugin's init, key=value; repeat for more.
    #[arg(long = "param", value_parser = crate::topic::parse_kv)]
    pub params: Vec<(String, String)>,
    /// Test this version instead of the current one.
    #[arg(long)]
    pub version: Option<u32>,
}

pub async fn run(conn: &ConnectArgs, cmd: PluginCommand) -> anyhow::Result<()> {
    let client = conn.connect().await?;
    let admin = client.admin();
    match cmd {
        PluginCommand::Add { name, file, limits } => {
            let component = Component::read(&file)?;
            let added = admin
                .add_plugin_with_limits(&name, component.bytes.clone(), limits.spec())
                .await
                .with_context(|| format!("adding plugin '{name}' from {}", file.display()))?;
            say!(
                "added {} v{} ({}, {})",
                added.name,
                added.version,
                added.kind,
                size(component.bytes.len() as u64)
            );
        }
        PluginCommand::List => {
            let plugins = admin.list_plugins().await?;
            say!(
                "{:<32} {:<12} {:>7} {:>8}  BOUND TOPICS",
                "PLUGIN",
                "KIND",
                "CURRENT",
                "VERSIONS"
            );
            for p in plugins {
                say!(
                    "{:<32} {:<12} {:>7} {:>8}  {}",
                    p.name,
                    p.kind,
                    format!("v{}", p.current_version),
                    p.versions.len(),
                    topics(&p.bound_topics)
                );
            }
        }
        PluginCommand::Describe { name } => {
            let desc = admin.describe_plugin(&name).await?;
            print_description(&desc);
        }
        PluginCommand::Remove {
            name,
            version,
            force,
        } => {
            let removed = admin
                .remove_plugin(&name, version, force)
                .await
                .map_err(|e| explain_remove(e, &name))?;
            let list: Vec<String> = removed
                .removed_versions
                .iter()
                .map(|v| format!("v{v}"))
                .collect();
            say!("removed {name} {}", list.join(", "));
        }
        PluginCommand::Test(args) => test(&client, args).await?,
        PluginCommand::Logs { name, follow } => logs(&client, &name, follow).await?,
        PluginCommand::Watch { name, file } => watch(&client, name, file).await?,
    }
    Ok(())
}

/// A refusal to remove a bound plugin, with the commands that get past it.
fn explain_remove(e: quiver_sdk::Error, name: &str) -> anyhow::Error {
    match &e {
        quiver_sdk::Error::Broker { source, .. }
            if source.code == quiver_sdk::ErrorCode::PLUGIN_IN_USE =>
        {
            anyhow::anyhow!(
                "cannot remove plugin '{name}': {} (unbind: quiver topic alter TOPIC --delete partitioner; or pass --force)",
                source.message
            )
        }
        _ => anyhow::Error::new(e).context(format!("removing plugin '{name}'")),
    }
}

fn print_description(d: &PluginDescription) {
    say!(
        "plugin {}  kind {}  current v{}",
        d.name,
        d.kind,
        d.current_version
    );
    say!("bound topics: {}", topics(&d.bound_topics));
    say!(
        "{:>8} {:<12} {:>10}  {:<16} {:<23}  LIMITS",
        "VERSION",
        "KIND",
        "SIZE",
        "SHA-256",
        "ADDED (UTC)"
    );
    for v in &d.versions {
        let mark = if v.version == d.current_version {
            "  (current)"
        } else {
            ""
        };
        say!(
            "{:>8} {:<12} {:>10}  {:<16} {}  {}{mark}",
            format!("v{}", v.version),
            v.kind,
            size(v.size_bytes),
            v.sha256.get(..16).unwrap_or(&v.sha256),
            utc(v.added_ms),
            limits(v)
        );
    }
}

/// A version's call limits: `1000 ms, 128.0 MiB (defaults)` or `300 ms, 32.0 MiB`.
fn limits(v: &PluginVersionInfo) -> String {
    format!(
        "{} ms, {}{}",
        v.call_timeout_ms,
        size(v.memory_bytes),
        if v.own_limits { "" } else { " (defaults)" }
    )
}

fn topics(list: &[String]) -> String {
    if list.is_empty() {
        "-".to_string()
    } else {
        list.join(", ")
    }
}

/// A byte count for people: `812 B`, `97.4 KiB`, `16.8 MiB`.
pub fn size(bytes: u64) -> String {
    match bytes {
        b if b < 1024 => format!("{b} B"),
        b if b < 1024 * 1024 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)),
    }
}

/// Milliseconds since the Unix epoch as `2025-01-31 23:59:59.123`, UTC.
pub fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{millis:03}",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days` algorithm: eras of 400 years starting in March).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

async fn test(client: &Client, args: TestArgs) -> anyhow::Result<()> {
    let admin = client.admin();
    let from = match args.from {
        Some(o) if o < 0 => anyhow::bail!("--from {o} is negative: give an offset of 0 or more"),
        Some(o) => o,
        None => admin
            .list_offsets(&args.topic, args.partition, OffsetSpec::Earliest)
            .await?
            .offset
            .unwrap_or(0),
    };
    let params: BTreeMap<String, String> = args.params.into_iter().collect();
    let result = admin
        .test_plugin(PluginTestRequest {
            name: args.name.clone(),
            version: args.version,
            topic: args.topic.clone(),
            partition: args.partition,
            from_offset: from,
            count: args.count,
            params,
        })
        .await
        .with_context(|| {
            format!(
                "testing plugin '{}' on {}-{}",
                args.name, args.topic, args.partition
            )
        })?;
    let keys = keys_at(client, &args.topic, args.partition, &result.decisions).await?;
    say!(
        "{} v{} ({}) on {}-{} from offset {from}:",
        args.name,
        result.version,
        result.kind,
        args.topic,
        args.partition
    );
    for d in &result.decisions {
        let key = keys
            .get(&d.offset)
            .map_or_else(|| "?".to_string(), |k| show_key(k.as_deref()));
        say!("{:>10}  {:<24} {}", d.offset, key, outcome(&d.outcome));
    }
    say!("{}", summary(&result));
    Ok(())
}

/// Keys of the records at the decisions' offsets, read with a plain consumer (the test
/// response names offsets only, to stay small).
async fn keys_at(
    client: &Client,
    topic: &str,
    partition: u32,
    decisions: &[PluginDecision],
) -> anyhow::Result<BTreeMap<i64, Option<Vec<u8>>>> {
    let mut keys = BTreeMap::new();
    let (Some(first), Some(last)) = (decisions.first(), decisions.last()) else {
        return Ok(keys);
    };
    let tp = TopicPartition::new(topic.to_string(), partition);
    let mut consumer = client.consumer(ConsumerConfig {
        auto_offset_reset: OffsetReset::Earliest,
        max_wait: Duration::from_millis(100),
        ..ConsumerConfig::default()
    })?;
    consumer.assign(vec![tp.clone()]);
    consumer.seek(&tp, first.offset)?;
    // Records the plugin saw are stored, so they arrive; the deadline only guards against
    // a partition truncated by retention in between.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while consumer.position(&tp)?.is_none_or(|p| p <= last.offset)
        && tokio::time::Instant::now() < deadline
    {
        for r in consumer.poll(Duration::from_millis(500)).await? {
            keys.insert(r.offset, r.key.map(|k| k.to_vec()));
        }
    }
    Ok(keys)
}

fn show_key(key: Option<&[u8]>) -> String {
    match key {
        None => "key=null".to_string(),
        Some(k) => format!("key={}", String::from_utf8_lossy(k)),
    }
}

/// One decision in words.
pub fn outcome(o: &PluginOutcome) -> String {
    match o {
        PluginOutcome::Partition(p) => format!("-> partition {p}"),
        PluginOutcome::Keep(true) => "kept".to_string(),
        PluginOutcome::Keep(false) => "dropped".to_string(),
        PluginOutcome::Compaction { key, retain } => format!(
            "compaction {} {}",
            match key {
                Some(k) => format!("key={}", String::from_utf8_lossy(k)),
                None => "(not compacted)".to_string(),
            },
            if *retain { "retained" } else { "expired" }
        ),
    }
}

/// The decisions counted: per partition, kept against dropped, or keys and retained.
pub fn summary(r: &PluginTestResponse) -> String {
    let n = r.decisions.len();
    let mut partitions: BTreeMap<u32, usize> = BTreeMap::new();
    let (mut kept, mut dropped, mut retained) = (0, 0, 0);
    let mut keys = std::collections::BTreeSet::new();
    for d in &r.decisions {
        match &d.outcome {
            PluginOutcome::Partition(p) => *partitions.entry(*p).or_default() += 1,
            PluginOutcome::Keep(true) => kept += 1,
            PluginOutcome::Keep(false) => dropped += 1,
            PluginOutcome::Compaction { key, retain } => {
                keys.insert(key.clone());
                retained += usize::from(*retain);
            }
        }
    }
    let mut text = format!("{n} records");
    if !partitions.is_empty() {
        let spread: Vec<String> = partitions
            .iter()
            .map(|(p, c)| format!("partition {p}: {c}"))
            .collect();
        text += &format!(" ({})", spread.join(", "));
    }
    if kept + dropped > 0 {
        text += &format!(": {kept} kept, {dropped} dropped");
    }
    if !keys.is_empty() {
        text += &format!(": {} compaction keys, {retained} retained", keys.len());
    }
    if n == 0 {
        text += ": nothing stored from that offset";
    }
    text
}

async fn logs(client: &Client, name: &str, follow: bool) -> anyhow::Result<()> {
    let admin = client.admin();
    let mut since = 0u64;
    loop {
        let page = tokio::select! {
            page = admin.plugin_logs(name, since, follow) => page?,
            r = tokio::signal::ctrl_c() => return r.context("waiting for Ctrl-C"),
        };
        if let Some(first) = page.entries.first()
            && first.seq > since
            && since > 0
        {
            say!(
                "... {} entries dropped by the broker's bounded log",
                first.seq - since
            );
        }
        for e in &page.entries {
            say!("{}", log_line(e));
        }
        since = page.next_seq;
        if !follow {
            return Ok(());
        }
    }
}

fn log_line(e: &PluginLogEntry) -> String {
    // Version 0: a refused upload, which never became a version.
    let version = match e.version {
        0 => "-".to_string(),
        v => format!("v{v}"),
    };
    format!(
        "{} {:<5} {version} [{}] {}",
        utc(e.time_ms),
        e.level.to_uppercase(),
        e.source,
        e.message
    )
}

async fn watch(client: &Client, name: String, file: PathBuf) -> anyhow::Result<()> {
    if !file.is_file() {
        anyhow::bail!(
            "{} is not a file: give the .wasm component to watch",
            file.display()
        );
    }
    let files = reload::Watched::file(name, file);
    let cancel = tokio_util::sync::CancellationToken::new();
    let stop = cancel.clone();
    let task = tokio::spawn({
        let client = client.clone();
        async move { reload::run(&client, files, stop).await }
    });
    say!("watching; Ctrl-C to stop");
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    cancel.cancel();
    task.await.context("the watch task")?;
    Ok(())
}

/// The file stem of a `.wasm` path: the plugin name `quiver dev --plugins` gives it.
pub fn name_of(path: &Path) -> Option<String> {
    if path.extension()? != "wasm" {
        return None;
    }
    Some(path.file_stem()?.to_str()?.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        // Clap checks names and flags only when a command is built; catch clashes (such as
        // a `--version` of a plugin against the program's) here rather than at run time.
        <crate::Cli as clap::CommandFactory>::command().debug_assert();
        let line = "quiver plugin test p --topic t --version 3 --param a=b";
        let parsed = <crate::Cli as clap::Parser>::try_parse_from(line.split(' '));
        assert!(parsed.is_ok(), "{parsed:?}");
        let line = "quiver plugin add p p.wasm --timeout-ms 250 --memory-mib 64";
        let parsed = <crate::Cli as clap::Parser>::try_parse_from(line.split(' '));
        assert!(parsed.is_ok(), "{parsed:?}");
        for bad in ["--timeout-ms 5", "--timeout-ms 60001", "--memory-mib 0"] {
            let line = format!("quiver plugin add p p.wasm {bad}");
            let err = <crate::Cli as clap::Parser>::try_parse_from(line.split(' '))
                .expect_err("out of range");
            let flag = bad.split(' ').next().unwrap_or_default();
            assert!(err.to_string().contains(flag), "{bad}: {err}");
        }
    }

    #[test]
    fn dates_are_utc_calendar_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00.000");
        assert_eq!(utc(951_782_400_123), "2000-02-29 00:00:00.123");
        assert_eq!(utc(1_700_000_000_000), "2023-11-14 22:13:20.000");
        assert_eq!(utc(-1), "1969-12-31 23:59:59.999");
    }

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(size(812), "812 B");
        assert_eq!(size(99_737), "97.4 KiB");
        assert_eq!(size(17 * 1024 * 1024), "17.0 MiB");
    }

    #[test]
    fn summaries_count_each_kind_of_decision() {
        let r = |outcomes: Vec<PluginOutcome>| PluginTestResponse {
            version: 1,
            kind: "x".into(),
            decisions: outcomes
                .into_iter()
                .enumerate()
                .map(|(i, outcome)| PluginDecision {
                    offset: i as i64,
                    outcome,
                })
                .collect(),
        };
        assert_eq!(
            summary(&r(vec![
                PluginOutcome::Keep(true),
                PluginOutcome::Keep(false)
            ])),
            "2 records: 1 kept, 1 dropped"
        );
        assert_eq!(
            summary(&r(vec![
                PluginOutcome::Partition(1),
                PluginOutcome::Partition(0),
                PluginOutcome::Partition(1)
            ])),
            "3 records (partition 0: 1, partition 1: 2)"
        );
        assert_eq!(
            summary(&r(vec![])),
            "0 records: nothing stored from that offset"
        );
        assert_eq!(
            outcome(&PluginOutcome::Compaction {
                key: Some(b"k".to_vec()),
                retain: false
            }),
            "compaction key=k expired"
        );
    }

    #[test]
    fn plugin_names_are_wasm_file_stems() {
        assert_eq!(
            name_of(Path::new("/p/key-hash.wasm")).as_deref(),
            Some("key-hash")
        );
        assert_eq!(name_of(Path::new("/p/notes.txt")), None);
        assert_eq!(name_of(Path::new("/p/.wasm")), None);
    }
}
