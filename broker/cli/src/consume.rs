//! `quiver consume TOPIC`: print records from the beginning, the end, or an offset.

use crate::output::say;
use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use quiver_sdk::proto::api::FetchRequest;
use quiver_sdk::{ConsumerConfig, FilterSpec, OffsetReset, OffsetSpec, TopicPartition};

use crate::connect::ConnectArgs;
use crate::format::Template;

#[derive(Debug, clap::Args)]
pub struct ConsumeArgs {
    /// The topic to read.
    pub topic: String,
    /// Where to start in every partition read: beginning, end, an offset, a time
    /// (@2026-12-06T08:00:00Z, or @1733472000000 in ms since the epoch), or a time
    /// ago (-1h, -30m, -2d: the first record at or after it).
    #[arg(long, default_value = "beginning", allow_hyphen_values = true)]
    pub from: StartAt,
    /// Read only this partition.
    #[arg(long, short)]
    pub partition: Option<u32>,
    /// Stop after this many records.
    #[arg(long, short = 'n')]
    pub count: Option<u64>,
    /// Keep waiting for new records instead of stopping at the end.
    #[arg(long, short)]
    pub follow: bool,
    /// Output template: {topic} {partition} {offset} {timestamp} {key} {value} {headers}.
    #[arg(long, default_value = "{value}")]
    pub format: Template,
    /// Read as a member of this consumer group: from its committed offsets, committing
    /// what is printed, and leaving the group on exit.
    #[arg(long, short)]
    pub group: Option<String>,
    /// A filter plugin run on the broker: only the records it keeps are sent and printed.
    #[arg(long)]
    pub filter: Option<String>,
    /// A parameter of the filter, key=value; repeat for more.
    #[arg(long = "param", value_parser = crate::topic::parse_kv, requires = "filter")]
    pub params: Vec<(String, String)>,
    /// Use this version of the filter instead of the current one.
    #[arg(long, requires = "filter")]
    pub filter_version: Option<u32>,
    /// Skip offsets the broker reports as damaged (saying which on stderr) instead of
    /// stopping with an error: their records are lost to this read.
    #[arg(long)]
    pub skip_damaged: bool,
}

impl ConsumeArgs {
    /// The filter the consumer asks the broker to run, if any.
    pub fn filter_spec(&self) -> Option<FilterSpec> {
        Some(FilterSpec {
            name: self.filter.clone()?,
            version: self.filter_version,
            params: self.params.iter().cloned().collect(),
        })
    }
}

/// Asks the broker to bind `filter` before anything is read: one fetch at the end of a
/// partition, answered at once. A filter that does not exist, is not a filter, or
/// refuses its parameters fails here, even on an empty topic where no record would ever
/// reach it.
pub async fn check_filter(
    client: &quiver_sdk::Client,
    tp: &TopicPartition,
    end: i64,
    filter: FilterSpec,
) -> anyhow::Result<()> {
    let name = filter.name.clone();
    let req = FetchRequest {
        topic: tp.topic.clone(),
        partition: tp.partition,
        offset: end,
        max_bytes: 1,
        max_wait_ms: 0,
        min_bytes: 1,
        isolation: Default::default(),
        filter: Some(filter),
    };
    client
        .call(&req, bytes::Bytes::new())
        .await
        .map(|_| ())
        .with_context(|| format!("filter '{name}'"))
}

/// Where `consume` starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    Beginning,
    End,
    Offset(i64),
    /// The first record whose timestamp (ms since the epoch) is at or after this one.
    Time(i64),
}

impl std::str::FromStr for StartAt {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        start_at(s, quiver_proto::time::now_ms())
    }
}

/// Parses `--from` against the clock reading `now_ms`.
fn start_at(s: &str, now_ms: i64) -> Result<StartAt, String> {
    let bad = || {
        format!(
            "'{s}' is not beginning, end, an offset, @TIME (@2026-12-06T08:00:00Z or @MILLIS) or a time ago (-1h, -30m, -2d)"
        )
    };
    match s {
        "beginning" | "earliest" => Ok(StartAt::Beginning),
        "end" | "latest" => Ok(StartAt::End),
        _ if s.starts_with('@') => {
            let at = &s[1..];
            if let Ok(ms) = at.parse::<i64>() {
                return Ok(StartAt::Time(ms));
            }
            let time = humantime::parse_rfc3339_weak(at).map_err(|e| format!("{}: {e}", bad()))?;
            let ms = time
                .duration_since(std::time::UNIX_EPOCH)
                .map_err(|_| format!("'{s}' is before 1970"))?
                .as_millis();
            i64::try_from(ms).map(StartAt::Time).map_err(|_| bad())
        }
        _ if s.starts_with('-') => {
            let ago = humantime::parse_duration(&s[1..]).map_err(|e| format!("{}: {e}", bad()))?;
            let ago = i64::try_from(ago.as_millis()).map_err(|_| bad())?;
            Ok(StartAt::Time(now_ms.saturating_sub(ago)))
        }
        n => n
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .map(StartAt::Offset)
            .ok_or_else(bad),
    }
}

pub async fn run(conn: &ConnectArgs, args: ConsumeArgs) -> anyhow::Result<()> {
    if let Some(group) = &args.group {
        return crate::group::consume(conn, &args, group).await;
    }
    let client = conn.connect().await?;
    let meta = client.topic_metadata(&args.topic).await?;
    let partitions: Vec<u32> = match args.partition {
        Some(p) => {
            if !meta.partitions.iter().any(|m| m.partition == p) {
                anyhow::bail!("topic '{}' has no partition {p}", args.topic);
            }
            vec![p]
        }
        None => meta.partitions.iter().map(|m| m.partition).collect(),
    };
    let tps: Vec<TopicPartition> = partitions
        .iter()
        .map(|p| TopicPartition::new(args.topic.clone(), *p))
        .collect();
    let admin = client.admin();
    // Where to stop when not following: the end of each partition as we start.
    let mut ends = BTreeMap::new();
    for tp in &tps {
        let end = admin
            .list_offsets(&tp.topic, tp.partition, OffsetSpec::Latest)
            .await?
            .offset
            .unwrap_or(0);
        ends.insert(tp.partition, end);
    }
    if let (Some(filter), Some(tp)) = (args.filter_spec(), tps.first()) {
        check_filter(&client, tp, ends[&tp.partition], filter).await?;
    }
    let mut consumer = client.consumer(ConsumerConfig {
        auto_offset_reset: OffsetReset::Earliest,
        max_wait: Duration::from_millis(200),
        filter: args.filter_spec(),
        ..ConsumerConfig::default()
    })?;
    consumer.assign(tps.clone());
    match args.from {
        StartAt::Beginning => consumer.seek_to_beginning(&tps).await?,
        StartAt::End => consumer.seek_to_end(&tps).await?,
        StartAt::Offset(o) => {
            for tp in &tps {
                consumer.seek(tp, o)?;
            }
        }
        StartAt::Time(ms) => {
            for tp in &tps {
                // No record that recent: start at the end, where the next one will go.
                let found = admin
                    .list_offsets(&tp.topic, tp.partition, OffsetSpec::Timestamp(ms))
                    .await?
                    .offset;
                match found {
                    Some(o) => consumer.seek(tp, o)?,
                    None => consumer.seek_to_end(std::slice::from_ref(tp)).await?,
                }
            }
        }
    }
    let mut start = BTreeMap::new();
    for tp in &tps {
        start.insert(tp.partition, consumer.position(tp)?.unwrap_or(0));
    }
    if !args.follow {
        // Not an error (Kafka's console consumer would wait), but say why nothing prints.
        for tp in &tps {
            let (at, end) = (start[&tp.partition], ends[&tp.partition]);
            if at > end {
                eprintln!(
                    "note: {tp} ends at offset {end}; reading from {at} finds nothing (--follow waits for it)"
                );
            }
        }
    }
    let mut printed = 0u64;
    loop {
        if !args.follow && partitions.iter().all(|p| start[p] >= ends[p]) {
            return Ok(());
        }
        let records = match consumer.poll(Duration::from_millis(500)).await {
            Ok(records) => records,
            Err(
                e @ (quiver_sdk::Error::DamagedData { .. }
                | quiver_sdk::Error::Batch {
                    skip_to: Some(_), ..
                }),
            ) if args.skip_damaged => {
                let tp = match &e {
                    quiver_sdk::Error::DamagedData { tp, .. }
                    | quiver_sdk::Error::Batch { tp, .. } => tp.clone(),
                    _ => unreachable!("matched above"),
                };
                if let Some(next) = consumer.skip_damaged(&e)? {
                    eprintln!("warning: skipped to offset {next}: {e}");
                    if let Some(p) = start.get_mut(&tp.partition) {
                        *p = (*p).max(next);
                    }
                }
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        for r in records {
            if let Some(pos) = start.get_mut(&r.partition) {
                *pos = (*pos).max(r.offset + 1);
            }
            if !args.follow && r.offset >= ends[&r.partition] {
                continue;
            }
            say!("{}", args.format.render(&r));
            printed += 1;
            if args.count.is_some_and(|c| printed >= c) {
                return Ok(());
            }
        }
        // Filters and compaction can leave gaps: trust the consumer's position too.
        for tp in &tps {
            if let Some(pos) = consumer.position(tp)?
                && let Some(p) = start.get_mut(&tp.partition)
            {
                *p = (*p).max(pos);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_takes_positions_offsets_times_and_times_ago() {
        let now = 1_800_000_000_000;
        assert_eq!(start_at("beginning", now), Ok(StartAt::Beginning));
        assert_eq!(start_at("latest", now), Ok(StartAt::End));
        assert_eq!(start_at("42", now), Ok(StartAt::Offset(42)));
        assert_eq!(
            start_at("@1733472000000", now),
            Ok(StartAt::Time(1_733_472_000_000))
        );
        assert_eq!(
            start_at("@2024-12-06T08:00:00Z", now),
            Ok(StartAt::Time(1_733_472_000_000))
        );
        assert_eq!(start_at("-1h", now), Ok(StartAt::Time(now - 3_600_000)));
        assert_eq!(
            start_at("-2d", now),
            Ok(StartAt::Time(now - 2 * 86_400_000))
        );
        assert_eq!(start_at("-90s", now), Ok(StartAt::Time(now - 90_000)));
        for bad in ["-1", "@yesterday", "-1 fortnight", "soon", "-5x"] {
            let err = start_at(bad, now).expect_err(bad);
            assert!(err.contains(bad), "{err}");
        }
    }
}
