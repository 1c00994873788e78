//! Wasm plugins end to end: a partitioner bound to a topic routes records on the broker,
//! and a filter with parameters drops records on the broker before they are sent.
//!
//! Run it against a dev broker:
//!
//! ```sh
//! plugins/build.sh                                  # builds target/plugins/wasm/*.wasm
//! cargo run -p quiver-cli -- dev                    # in one terminal
//! cargo run -p quiver-cli --example plugins         # in another
//! ```
//!
//! It finds the broker as the `quiver` CLI does (the profile the running `quiver dev`
//! writes under `~/.quiver/profiles/` or `$QUIVER_HOME/profiles/`), registers the `key-hash` partitioner
//! and the `json-filter` filter, creates the topic `plugin-demo` bound to the partitioner
//! (`partitioner=demo-key-hash`), produces keyed records without naming a partition,
//! shows the partition each landed in, then reads the topic through the filter and shows
//! the records it kept with their offsets. Running it again starts the topic afresh.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use quiver_sdk::{
    Client, ClientOptions, ConsumerConfig, ConsumerRecord, ErrorCode, FilterSpec, OffsetReset,
    ProducerConfig, ProducerRecord, TopicPartition,
};

const TOPIC: &str = "plugin-demo";
const PARTITIONER: &str = "demo-key-hash";
const FILTER: &str = "demo-json-filter";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let plugins = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/plugins/wasm");
    let read = |name: &str| -> anyhow::Result<Vec<u8>> {
        let path = plugins.join(format!("{name}.wasm"));
        std::fs::read(&path)
            .with_context(|| format!("{} is missing: run plugins/build.sh first", path.display()))
    };
    let key_hash = read("key-hash")?;
    let json_filter = read("json-filter")?;

    let (url, ca) = dev_broker()?;
    let client = Client::connect(&url, ClientOptions::new().ca_pem_file(&ca))
        .await
        .with_context(|| format!("connecting to {url} (is `quiver dev` running?)"))?;
    let admin = client.admin();

    // 1. Register both plugins. The broker checks each against its world.
    for (name, bytes) in [(PARTITIONER, key_hash), (FILTER, json_filter)] {
        let added = admin.add_plugin(name, bytes).await?;
        println!(
            "registered {} v{} ({})",
            added.name, added.version, added.kind
        );
    }

    // 2. A topic whose records are routed by the plugin when producers name no partition.
    match admin.delete_topic(TOPIC).await {
        Err(e) if e.code() != Some(ErrorCode::UNKNOWN_TOPIC) => return Err(e.into()),
        _ => {}
    }
    let configs = [("partitioner".to_string(), PARTITIONER.to_string())].into();
    admin.create_topic(TOPIC, 3, 1, configs).await?;
    println!("created {TOPIC} with 3 partitions, partitioner={PARTITIONER}");

    // 3. Produce without partitions: the SDK sees the partitioner in the topic's metadata
    //    and leaves the choice to the broker.
    let orders = [
        ("alice", 120),
        ("bob", 15),
        ("carol", 300),
        ("alice", 42),
        ("dave", 101),
        ("bob", 250),
    ];
    let producer = client.producer(ProducerConfig::default()).await?;
    for (user, amount) in orders {
        let value = format!(r#"{{"user":"{user}","amount":{amount}}}"#);
        producer
            .send_and_wait(ProducerRecord::new(TOPIC, value).key(user))
            .await?;
    }
    producer.close().await;

    // 4. Where they went: key-hash is Kafka's murmur2, so the SDK's own hash agrees.
    println!("\nwhere the partitioner put them:");
    for r in read_topic(&client, None, orders.len()).await? {
        let key = r.key.as_deref().unwrap_or_default();
        println!(
            "  partition {} offset {}  key={:<6} (murmur2 says {})",
            r.partition,
            r.offset,
            String::from_utf8_lossy(key),
            quiver_sdk::partitioner::partition_for_key(key, 3)
        );
    }

    // 5. Read through the filter: only orders over 100 cross the network.
    let filter = FilterSpec {
        name: FILTER.to_string(),
        version: None,
        params: [
            ("field".to_string(), "amount".to_string()),
            ("op".to_string(), "gt".to_string()),
            ("value".to_string(), "100".to_string()),
        ]
        .into(),
    };
    println!("\nkept by {FILTER} (amount > 100):");
    for r in read_topic(&client, Some(filter), 4).await? {
        println!(
            "  partition {} offset {}  {}",
            r.partition,
            r.offset,
            String::from_utf8_lossy(r.value.as_deref().unwrap_or_default())
        );
    }
    Ok(())
}

/// Every partition of the topic from the beginning, until `expected` records arrived or
/// a quiet second passed, sorted by partition and offset.
async fn read_topic(
    client: &Client,
    filter: Option<FilterSpec>,
    expected: usize,
) -> anyhow::Result<Vec<ConsumerRecord>> {
    let mut consumer = client.consumer(ConsumerConfig {
        auto_offset_reset: OffsetReset::Earliest,
        filter,
        ..ConsumerConfig::default()
    })?;
    let tps: Vec<TopicPartition> = (0..3).map(|p| TopicPartition::new(TOPIC, p)).collect();
    consumer.assign(tps.clone());
    consumer.seek_to_beginning(&tps).await?;
    let mut records = Vec::new();
    while records.len() < expected {
        let batch = consumer.poll(Duration::from_secs(1)).await?;
        if batch.is_empty() {
            break;
        }
        records.extend(batch);
    }
    records.sort_by_key(|r| (r.partition, r.offset));
    Ok(records)
}

/// The broker and certificate of the running `quiver dev` (its profile), or its defaults.
fn dev_broker() -> anyhow::Result<(String, PathBuf)> {
    Ok(match quiver_cli::profile::choose(None)? {
        Some(p) => (p.broker, p.ca),
        None => (
            "quic://127.0.0.1:7420".into(),
            PathBuf::from("quiver-data/tls/cert.pem"),
        ),
    })
}
