//! `cleanup.policy=compact` with the default policy: the latest record per key survives,
//! tombstones go after `delete.retention.ms`, offsets of survivors never change.

use std::collections::{BTreeMap, HashMap};

use quiver_sdk::{ProducerConfig, ProducerRecord};

use crate::harness::TestBroker;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_keeps_the_latest_value_per_key() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    let admin = client.admin();
    let configs = BTreeMap::from([
        ("cleanup.policy".to_string(), "compact".to_string()),
        // The smallest segment a topic may have; the padded values below fill several.
        ("segment.bytes".to_string(), "1048576".to_string()),
        ("delete.retention.ms".to_string(), "1".to_string()),
    ]);
    admin
        .create_topic("table", 1, 1, configs)
        .await
        .expect("create");
    let producer = client
        .producer(ProducerConfig {
            batch_size: 1,
            ..ProducerConfig::default()
        })
        .await
        .expect("producer");
    // Ten keys written twenty times each; key k0's last write deletes it.
    let mut latest: HashMap<String, (i64, Option<String>)> = HashMap::new();
    for round in 0..20 {
        for k in 0..10 {
            let key = format!("k{k}");
            let mut record = ProducerRecord::new("table", padded(&format!("{key}-v{round}"), 12))
                .key(key.clone())
                .partition(0);
            if k == 0 && round == 19 {
                record.value = None;
            }
            let value = record
                .value
                .as_ref()
                .map(|v| String::from_utf8_lossy(v).into_owned());
            let meta = producer.send_and_wait(record).await.expect("send");
            latest.insert(key, (meta.offset, value));
        }
    }
    // Unique keys after the overwrites, more than a segment of them, so every overwrite
    // sits in a closed segment.
    for i in 0..40 {
        producer
            .send_and_wait(
                ProducerRecord::new("table", padded(&format!("tail-{i}"), 32))
                    .key(format!("tail-{i}"))
                    .partition(0),
            )
            .await
            .expect("send");
    }
    let end = 240;
    // The cleaner runs as segments close; wait until what is left is the compacted view.
    let done = |per_key: &HashMap<String, Vec<(i64, Option<String>)>>| {
        (1..10).all(|k| per_key.get(&format!("k{k}")).is_some_and(|v| v.len() == 1))
            && !per_key.contains_key("k0")
    };
    let mut per_key = HashMap::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        per_key = remaining(&client, end).await;
        if done(&per_key) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let desc = admin.describe_topic("table").await.expect("describe");
    assert_eq!(
        desc.partitions[0].high_watermark, end,
        "compaction never moves the log end"
    );
    for k in 1..10 {
        let key = format!("k{k}");
        assert_eq!(
            per_key.get(&key),
            Some(&vec![latest[&key].clone()]),
            "only the latest {key} survives, at its offset"
        );
    }
    assert!(
        !per_key.contains_key("k0"),
        "the tombstoned key is gone: {:?}",
        per_key.get("k0")
    );
    for i in 0..40 {
        assert!(
            per_key.contains_key(&format!("tail-{i}")),
            "unique keys are kept"
        );
    }
}

/// `text` followed by filler up to `kib` KiB, so few records fill a segment.
fn padded(text: &str, kib: usize) -> String {
    format!(
        "{text}{}",
        ".".repeat((kib * 1024).saturating_sub(text.len()))
    )
}

/// Every record left in the partition, grouped by key, with offsets and values.
async fn remaining(
    client: &quiver_sdk::Client,
    end: i64,
) -> HashMap<String, Vec<(i64, Option<String>)>> {
    let mut consumer = client
        .consumer(quiver_sdk::ConsumerConfig {
            auto_offset_reset: quiver_sdk::OffsetReset::Earliest,
            ..Default::default()
        })
        .expect("consumer");
    let tp = quiver_sdk::TopicPartition::new("table", 0);
    consumer.assign(vec![tp.clone()]);
    consumer
        .seek_to_beginning(std::slice::from_ref(&tp))
        .await
        .expect("seek");
    let mut per_key: HashMap<String, Vec<(i64, Option<String>)>> = HashMap::new();
    while consumer.position(&tp).expect("position").unwrap_or(0) < end {
        for r in consumer
            .poll(std::time::Duration::from_millis(300))
            .await
            .expect("poll")
        {
            let key = String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned();
            let value = r
                .value
                .as_ref()
                .map(|v| String::from_utf8_lossy(v).into_owned());
            per_key.entry(key).or_default().push((r.offset, value));
        }
    }
    per_key
}
