//! `quiver topic create|list|describe|alter|delete|reopen`.

use crate::output::say;
use std::collections::BTreeMap;

use clap::Subcommand;

use crate::connect::ConnectArgs;

#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic.
    Create {
        /// The topic's name: 1 to 249 of A-Z a-z 0-9 . _ -.
        name: String,
        /// Partitions: units of parallelism and of ordering (records with one key stay in
        /// one partition).
        #[arg(long, short, default_value_t = 1)]
        partitions: u32,
        /// Copies of each partition, on as many brokers (1 on a single node). Each
        /// partition's first replica leads; the others follow it. Default: the
        /// cluster's `default_replication_factor` (1 on a single node).
        #[arg(long)]
        replication_factor: Option<u16>,
        /// A topic config, key=value; repeat for more.
        #[arg(long = "config", short = 'c', value_parser = parse_kv)]
        configs: Vec<(String, String)>,
    },
    /// List topics.
    List,
    /// Show a topic's configs (and where each comes from) and partitions.
    Describe {
        /// The topic.
        name: String,
    },
    /// Set or remove topic configs.
    Alter {
        /// The topic.
        name: String,
        /// A config to set, key=value; repeat for more (`quiver config topic` lists them).
        #[arg(long = "set", value_parser = parse_kv)]
        set: Vec<(String, String)>,
        /// A config to remove (back to the default).
        #[arg(long = "delete")]
        delete: Vec<String>,
    },
    /// Delete a topic and its data.
    Delete {
        /// The topic.
        name: String,
    },
    /// Move a partition to other brokers (a cluster's partition reassignment): the
    /// brokers added copy its log, and once all of them are in sync the partition
    /// switches to exactly these replicas. Returns once the move has started; `describe`
    /// shows the replicas, old and new together, until it finishes.
    Reassign {
        /// The topic.
        topic: String,
        /// The partition to move.
        partition: u32,
        /// The brokers to hold it, comma-separated; the first is its preferred leader.
        #[arg(long, value_delimiter = ',', required = true)]
        replicas: Vec<u32>,
    },
    /// Reopen a partition without restarting the broker: re-run recovery on its log and
    /// serve it again. For a partition `describe` shows OFFLINE (its log could not be
    /// opened) or one locked after a failed write or fsync (disk full, I/O error), once
    /// the cause is fixed. A healthy partition may be reopened too; it just recovers again.
    Reopen {
        /// The topic.
        topic: String,
        /// The partition to reopen.
        partition: u32,
    },
}

/// Parses `key=value`.
pub fn parse_kv(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("'{s}' is not key=value")),
    }
}

pub async fn run(conn: &ConnectArgs, cmd: TopicCommand) -> anyhow::Result<()> {
    let client = conn.connect().await?;
    let admin = client.admin();
    match cmd {
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            configs,
        } => {
            let configs: BTreeMap<_, _> = configs.into_iter().collect();
            let desc = admin
                .create_topic(&name, partitions, replication_factor.unwrap_or(0), configs)
                .await?;
            say!(
                "created topic {} with {} partitions",
                desc.name,
                desc.partitions.len()
            );
        }
        TopicCommand::List => {
            let mut topics = admin.list_topics().await?;
            topics.sort_by(|a, b| a.name.cmp(&b.name));
            say!("{:<40} {:>10} {:>8}", "TOPIC", "PARTITIONS", "REPLICAS");
            for t in topics {
                let mark = if t.internal { " (internal)" } else { "" };
                say!(
                    "{:<40} {:>10} {:>8}{mark}",
                    t.name,
                    t.partitions,
                    t.replication_factor
                );
            }
        }
        TopicCommand::Describe { name } => {
            let d = admin.describe_topic(&name).await?;
            say!(
                "topic {}  partitions {}  replication {}",
                d.name,
                d.partitions.len(),
                d.replication_factor
            );
            say!("{:<28} {:<16} VALUE", "CONFIG", "SOURCE");
            for (k, v) in &d.configs {
                let source = d.config_sources.get(k).map_or("default", |s| s.as_str());
                say!("{k:<28} {source:<16} {v}");
            }
            say!(
                "{:>9} {:>6} {:>6} {:<12} {:<12} {:>12} {:>14} {:>12} {:>8}",
                "PARTITION",
                "LEADER",
                "EPOCH",
                "REPLICAS",
                "ISR",
                "START",
                "HIGH-WATERMARK",
                "BYTES",
                "SEGMENTS"
            );
            let ids = |v: &[u32]| {
                let text: Vec<String> = v.iter().map(u32::to_string).collect();
                if text.is_empty() {
                    "-".to_string()
                } else {
                    text.join(",")
                }
            };
            for p in &d.partitions {
                let placement = format!(
                    "{:>9} {:>6} {:>6} {:<12} {:<12}",
                    p.partition,
                    p.leader,
                    p.leader_epoch,
                    ids(&p.replicas),
                    ids(&p.in_sync_replicas)
                );
                if let Some(reason) = &p.offline {
                    say!(
                        "{placement} OFFLINE: {reason} (if its log could not open: fix it, then `quiver topic reopen {} {}`)",
                        d.name,
                        p.partition
                    );
                    continue;
                }
                say!(
                    "{placement} {:>12} {:>14} {:>12} {:>8}",
                    p.log_start_offset,
                    p.high_watermark,
                    p.size_bytes,
                    p.segments
                );
            }
        }
        TopicCommand::Reassign {
            topic,
            partition,
            replicas,
        } => {
            admin
                .reassign_partition(&topic, partition, replicas.clone())
                .await?;
            let to: Vec<String> = replicas.iter().map(u32::to_string).collect();
            say!(
                "moving {topic}-{partition} to brokers {}; `quiver topic describe {topic}` shows when it is done",
                to.join(",")
            );
        }
        TopicCommand::Reopen { topic, partition } => {
            let p = admin.reopen_partition(&topic, partition).await?;
            say!(
                "reopened {topic}-{partition}: start {}  high-watermark {}  segments {}",
                p.log_start_offset,
                p.high_watermark,
                p.segments
            );
        }
        TopicCommand::Alter { name, set, delete } => {
            if set.is_empty() && delete.is_empty() {
                anyhow::bail!("nothing to alter: pass --set key=value or --delete key");
            }
            admin
                .alter_topic_config(&name, set.into_iter().collect(), delete)
                .await?;
            say!("altered topic {name}");
        }
        TopicCommand::Delete { name } => {
            admin.delete_topic(&name).await?;
            say!("deleted topic {name}");
        }
    }
    Ok(())
}
