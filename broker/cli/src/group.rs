//! `quiver group list|describe|reset-offsets|delete`, and `quiver consume --group`.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use quiver_sdk::proto::api::GroupDescription;
use quiver_sdk::{ConsumerConfig, OffsetReset, OffsetSpec, ResetTarget, TopicPartition};

use crate::connect::ConnectArgs;
use crate::consume::{ConsumeArgs, StartAt};
use crate::output::say;

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// List consumer groups with their state and member count.
    List,
    /// Show a group's members and, per partition, its owner, committed offset, end
    /// offset and lag.
    Describe {
        /// The group id.
        group: String,
    },
    /// Move a group's committed offsets on every partition of a topic. The group must
    /// have no active members.
    ResetOffsets {
        /// The group id.
        group: String,
        /// The topic whose partitions move (all of them).
        #[arg(long)]
        topic: String,
        /// earliest, latest, an offset (such as 42), a time (@2026-12-06T08:00:00Z or
        /// @1733472000000 in ms) or a time ago (-1h): the first record at or after it.
        #[arg(long, allow_hyphen_values = true)]
        to: Target,
    },
    /// Delete a group and its committed offsets. The group must have no active members.
    Delete {
        /// The group id.
        group: String,
    },
}

/// Where `reset-offsets` moves a group.
#[derive(Debug, Clone)]
pub struct Target(pub ResetTarget);

impl std::str::FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        // The same positions `consume --from` takes.
        Ok(Target(match s.parse::<StartAt>()? {
            StartAt::Beginning => ResetTarget::Earliest,
            StartAt::End => ResetTarget::Latest,
            StartAt::Offset(o) => ResetTarget::Offset(o),
            StartAt::Time(ms) => ResetTarget::Timestamp(ms),
        }))
    }
}

pub async fn run(conn: &ConnectArgs, cmd: GroupCommand) -> anyhow::Result<()> {
    let client = conn.connect().await?;
    let admin = client.admin();
    match cmd {
        GroupCommand::List => {
            let groups = admin.list_groups().await?;
            say!("{:<40} {:<20} {:>7}", "GROUP", "STATE", "MEMBERS");
            for g in groups {
                say!("{:<40} {:<20} {:>7}", g.group_id, g.state, g.members);
            }
        }
        GroupCommand::Describe { group } => {
            let desc = admin.describe_group(&group).await?;
            print_description(&desc);
        }
        GroupCommand::ResetOffsets { group, topic, to } => {
            let offsets = admin
                .reset_group_offsets(&group, &topic, to.0)
                .await
                .with_context(|| format!("resetting the offsets of group '{group}'"))?;
            say!("{:<40} {:>9} {:>12}", "TOPIC", "PARTITION", "COMMITTED");
            for c in offsets {
                say!(
                    "{:<40} {:>9} {:>12}",
                    c.partition.topic,
                    c.partition.partition,
                    c.offset
                );
            }
        }
        GroupCommand::Delete { group } => {
            admin
                .delete_group(&group)
                .await
                .with_context(|| format!("deleting group '{group}'"))?;
            say!("deleted group {group}");
        }
    }
    Ok(())
}

fn print_description(d: &GroupDescription) {
    say!(
        "group {}  state {}  generation {}  assignor {}  members {}",
        d.group_id,
        d.state,
        d.generation,
        if d.assignor.is_empty() {
            "-"
        } else {
            &d.assignor
        },
        d.members.len()
    );
    say!("{:<44} {:<20} {:>10}", "MEMBER", "CLIENT", "PARTITIONS");
    let mut owner = BTreeMap::new();
    for m in &d.members {
        say!(
            "{:<44} {:<20} {:>10}",
            m.member_id,
            m.client_id,
            m.assignment.len()
        );
        for tp in &m.assignment {
            owner.insert(tp.clone(), m.member_id.as_str());
        }
    }
    say!(
        "{:<30} {:>9} {:<44} {:>12} {:>12} {:>8}",
        "TOPIC",
        "PARTITION",
        "MEMBER",
        "COMMITTED",
        "END",
        "LAG"
    );
    let dash = || "-".to_string();
    for row in &d.offsets {
        let tp = &row.partition;
        say!(
            "{:<30} {:>9} {:<44} {:>12} {:>12} {:>8}",
            tp.topic,
            tp.partition,
            owner.get(tp).copied().unwrap_or("-"),
            row.committed.map_or_else(dash, |c| c.to_string()),
            if row.end_offset < 0 {
                dash()
            } else {
                row.end_offset.to_string()
            },
            row.lag.map_or_else(dash, |l| l.to_string()),
        );
    }
}

/// `quiver consume TOPIC --group G`: reads the partitions the group gives this member,
/// from the group's committed offsets (`--from` applies to partitions without one),
/// commits what it printed after every batch, and commits and leaves on exit. Without
/// `--follow` it stops once its partitions reach the ends they had at start.
pub async fn consume(conn: &ConnectArgs, args: &ConsumeArgs, group: &str) -> anyhow::Result<()> {
    if args.partition.is_some() {
        anyhow::bail!("--partition and --group do not combine: the group assigns partitions");
    }
    let reset = match args.from {
        StartAt::Beginning => OffsetReset::Earliest,
        StartAt::End => OffsetReset::Latest,
        StartAt::Offset(_) | StartAt::Time(_) => anyhow::bail!(
            "--from OFFSET or TIME and --group do not combine: use `quiver group reset-offsets --to` to move the group"
        ),
    };
    let client = conn.connect().await?;
    let meta = client.topic_metadata(&args.topic).await?;
    let admin = client.admin();
    // Where to stop when not following: the end of each partition as we start.
    let mut ends = BTreeMap::new();
    for p in &meta.partitions {
        let end = admin
            .list_offsets(&args.topic, p.partition, OffsetSpec::Latest)
            .await?
            .offset
            .unwrap_or(0);
        ends.insert(TopicPartition::new(args.topic.clone(), p.partition), end);
    }
    if let (Some(filter), Some((tp, end))) = (args.filter_spec(), ends.iter().next()) {
        crate::consume::check_filter(&client, tp, *end, filter).await?;
    }
    let mut consumer = client.consumer(ConsumerConfig {
        group_id: Some(group.to_string()),
        client_id: "quiver-cli".to_string(),
        auto_offset_reset: reset,
        max_wait: Duration::from_millis(200),
        // Commits are explicit: exactly what was printed, so `--count` loses nothing.
        enable_auto_commit: false,
        filter: args.filter_spec(),
        ..ConsumerConfig::default()
    })?;
    consumer.subscribe([args.topic.clone()])?;
    let result = consume_loop(&mut consumer, args, &ends).await;
    // Leave even after an error, so the partitions move at once.
    consumer.close().await;
    result
}

async fn consume_loop(
    consumer: &mut quiver_sdk::Consumer,
    args: &ConsumeArgs,
    ends: &BTreeMap<TopicPartition, i64>,
) -> anyhow::Result<()> {
    let mut printed = 0u64;
    loop {
        let records = tokio::select! {
            r = consumer.poll(Duration::from_millis(500)) => r?,
            r = tokio::signal::ctrl_c() => {
                r.context("waiting for Ctrl-C")?;
                return Ok(());
            }
        };
        let mut next: BTreeMap<TopicPartition, i64> = BTreeMap::new();
        let mut done = false;
        for r in records {
            say!("{}", args.format.render(&r));
            next.insert(
                TopicPartition::new(r.topic.to_string(), r.partition),
                r.offset + 1,
            );
            printed += 1;
            if args.count.is_some_and(|c| printed >= c) {
                done = true;
                break;
            }
        }
        if !next.is_empty() {
            consumer
                .commit_offsets(next)
                .await
                .context("committing offsets")?;
        }
        if done || (!args.follow && caught_up(consumer, ends)?) {
            return Ok(());
        }
    }
}

/// Whether this member is in the group and every partition it holds has reached the
/// end it had when the command started.
fn caught_up(
    consumer: &quiver_sdk::Consumer,
    ends: &BTreeMap<TopicPartition, i64>,
) -> anyhow::Result<bool> {
    if consumer.group_metadata().is_none() {
        return Ok(false);
    }
    for tp in consumer.assignment() {
        let end = ends.get(&tp).copied().unwrap_or(0);
        match consumer.position(&tp)? {
            Some(position) if position >= end => {}
            _ => return Ok(false),
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_targets_parse() {
        let parse = |s: &str| s.parse::<Target>().map(|t| t.0);
        assert_eq!(parse("earliest"), Ok(ResetTarget::Earliest));
        assert_eq!(parse("latest"), Ok(ResetTarget::Latest));
        assert_eq!(parse("42"), Ok(ResetTarget::Offset(42)));
        assert_eq!(
            parse("@1700000000000"),
            Ok(ResetTarget::Timestamp(1_700_000_000_000))
        );
        assert!(parse("-1").is_err());
        assert!(parse("soon").is_err());
    }
}
