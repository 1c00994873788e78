//! `quiver produce TOPIC`: one record per line from stdin or a file.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use quiver_sdk::{Acks, Compression, ProducerConfig, ProducerRecord};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::connect::ConnectArgs;

#[derive(Debug, clap::Args)]
pub struct ProduceArgs {
    /// The topic to write to.
    pub topic: String,
    /// Read lines from this file instead of stdin.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Split each line at the first occurrence of this into key and value.
    #[arg(long)]
    pub key_separator: Option<String>,
    /// Send every record to this partition.
    #[arg(long, short)]
    pub partition: Option<u32>,
    /// A header for every record, key=value; repeat for more.
    #[arg(long = "header", value_parser = crate::topic::parse_kv)]
    pub headers: Vec<(String, String)>,
    #[command(flatten)]
    pub producer: ProducerArgs,
}

/// Producer settings shared by `produce` and `bench produce`.
#[derive(Debug, Clone, clap::Args)]
pub struct ProducerArgs {
    /// 0, 1 or all.
    #[arg(long, default_value = "all")]
    pub acks: Acks,
    /// none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none")]
    pub compression: Compression,
    /// How long a batch waits for more records, in milliseconds.
    #[arg(long, default_value_t = 5)]
    pub linger: u64,
    /// Batch size in bytes.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub batch_size: usize,
    /// Idempotent delivery (true or false).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub idempotence: bool,
    /// Batches of one partition in flight at once (at most 16 with idempotence).
    #[arg(long, default_value_t = quiver_sdk::ProducerConfig::default().max_in_flight_per_partition)]
    pub max_in_flight: usize,
}

impl ProducerArgs {
    pub fn config(&self) -> ProducerConfig {
        ProducerConfig {
            acks: self.acks,
            compression: self.compression,
            linger: Duration::from_millis(self.linger),
            batch_size: self.batch_size,
            // Acks 0 cannot be idempotent: nothing tells the producer what was stored.
            idempotence: self.idempotence && self.acks != Acks::None,
            max_in_flight_per_partition: self.max_in_flight,
            ..ProducerConfig::default()
        }
    }
}

pub async fn run(conn: &ConnectArgs, args: ProduceArgs) -> anyhow::Result<()> {
    let client = conn.connect().await?;
    // Fail early with a clear message if the topic or the partition does not exist. The
    // producer checks the partition of each record it sends, so without this an empty
    // input would send nothing, check nothing and report success.
    let meta = client.topic_metadata(&args.topic).await?;
    check_partition(&args.topic, args.partition, meta.partitions.len())?;
    let producer = client.producer(args.producer.config()).await?;
    let input: Box<dyn tokio::io::AsyncRead + Unpin + Send> = match &args.file {
        Some(path) => Box::new(
            tokio::fs::File::open(path)
                .await
                .with_context(|| format!("opening {}", path.display()))?,
        ),
        None => Box::new(tokio::io::stdin()),
    };
    let mut lines = BufReader::new(input).lines();
    let mut deliveries = Vec::new();
    let mut count = 0u64;
    let topic: Arc<str> = args.topic.as_str().into();
    while let Some(line) = lines.next_line().await.context("reading input")? {
        let (key, value) = match &args.key_separator {
            Some(sep) => match line.split_once(sep.as_str()) {
                Some((k, v)) => (Some(Bytes::from(k.to_string())), v.to_string()),
                None => (None, line),
            },
            None => (None, line),
        };
        let mut record = ProducerRecord::new(topic.clone(), value);
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(p) = args.partition {
            record = record.partition(p);
        }
        for (k, v) in &args.headers {
            record = record.header(k.clone(), v.clone());
        }
        deliveries.push(producer.send(record).await?);
        count += 1;
        // Collect results as we go so memory stays bounded on long inputs.
        if deliveries.len() >= 10_000 {
            for d in deliveries.drain(..) {
                d.await?;
            }
        }
    }
    producer.flush().await;
    for d in deliveries {
        d.await?;
    }
    producer.close().await;
    eprintln!("produced {count} records to {}", args.topic);
    Ok(())
}

/// Refuses a `--partition` the topic does not have.
fn check_partition(topic: &str, partition: Option<u32>, count: usize) -> anyhow::Result<()> {
    match partition {
        Some(p) if p as usize >= count => anyhow::bail!(
            "topic '{topic}' has no partition {p}: it has {count} (0 to {}); pick one of those or leave out --partition",
            count.saturating_sub(1)
        ),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::check_partition;

    #[test]
    fn a_partition_past_the_last_is_refused() {
        assert!(check_partition("t", None, 3).is_ok());
        assert!(check_partition("t", Some(2), 3).is_ok());
        let err = check_partition("t", Some(99), 3).expect_err("no partition 99");
        assert!(err.to_string().contains("no partition 99"), "{err}");
        assert!(check_partition("t", Some(0), 0).is_err());
    }
}
