//! Crash tests: SIGKILL a broker process mid-produce and reopen its data.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use quiver_sdk::{Acks, ProducerConfig, ProducerRecord};
use std::sync::Mutex;

use crate::data_path::read_all;
use crate::harness::ChildBroker;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_produce_loses_no_acknowledged_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let broker = ChildBroker::spawn(&data, &["flush=always"]);
    let client = broker.client().await;
    client
        .admin()
        .create_topic("durable", 3, 1, BTreeMap::new())
        .await
        .expect("create");

    // Acknowledged (partition, offset) -> sequence number of the record.
    let acked: Arc<Mutex<HashMap<(u32, i64), u64>>> = Arc::default();
    let producer = client
        .producer(ProducerConfig {
            acks: Acks::Leader,
            linger: Duration::from_millis(1),
            batch_size: 16 * 1024,
            request_timeout: Duration::from_secs(2),
            delivery_timeout: Duration::from_secs(3),
            ..ProducerConfig::default()
        })
        .await
        .expect("producer");
    let producer = Arc::new(producer);
    let sender = {
        let producer = Arc::clone(&producer);
        let acked = Arc::clone(&acked);
        tokio::spawn(async move {
            let mut i = 0u64;
            loop {
                let record = ProducerRecord::new("durable", format!("seq-{i:08}"))
                    .key(format!("k{}", i % 50));
                let Ok(delivery) = producer.send(record).await else {
                    break;
                };
                let acked = Arc::clone(&acked);
                tokio::spawn(async move {
                    if let (Ok(meta), Ok(mut a)) = (delivery.await, acked.lock()) {
                        a.insert((meta.partition, meta.offset), i);
                    }
                });
                i += 1;
                if i.is_multiple_of(64) {
                    tokio::task::yield_now().await;
                }
            }
        })
    };
    // Let a few thousand records be acknowledged, then kill the broker mid-stream.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while acked.lock().map(|a| a.len()).unwrap_or(0) < 3000 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "producer made no progress"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    broker.kill();
    // Give in-flight deliveries time to fail, then stop producing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    sender.abort();
    let acked: HashMap<(u32, i64), u64> = acked.lock().map(|a| a.clone()).unwrap_or_default();
    drop(producer);
    drop(client);

    let broker = ChildBroker::spawn(&data, &["flush=always"]);
    let client = broker.client().await;
    let desc = client
        .admin()
        .describe_topic("durable")
        .await
        .expect("topic survives");
    let stored: i64 = desc.partitions.iter().map(|p| p.high_watermark).sum();
    assert!(
        stored as usize >= acked.len(),
        "stored {stored} < acknowledged {}",
        acked.len()
    );
    let records = read_all(&client, "durable", 3, stored as usize).await;

    // Every acknowledged record is there, at its offset, exactly once.
    let mut by_position: HashMap<(u32, i64), String> = HashMap::new();
    let mut seen_values: HashMap<String, u32> = HashMap::new();
    for r in &records {
        let v = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned();
        *seen_values.entry(v.clone()).or_default() += 1;
        by_position.insert((r.partition, r.offset), v);
    }
    for ((p, o), i) in &acked {
        let want = format!("seq-{i:08}");
        assert_eq!(
            by_position.get(&(*p, *o)),
            Some(&want),
            "acknowledged record {i} at {p}@{o}"
        );
        assert_eq!(seen_values[&want], 1, "record {i} stored more than once");
    }
    // And per partition, sequence numbers only grow with offsets (order kept).
    let mut last: HashMap<u32, String> = HashMap::new();
    let mut sorted = records.clone();
    sorted.sort_by_key(|r| (r.partition, r.offset));
    for r in sorted {
        let v = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned();
        if let Some(prev) = last.insert(r.partition, v.clone()) {
            assert!(
                prev < v,
                "partition {} out of order: {prev} before {v}",
                r.partition
            );
        }
    }
}
