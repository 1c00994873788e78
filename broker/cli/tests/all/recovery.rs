//! A torn or corrupted tail is cut off at start, and earlier data is still served.

use std::collections::BTreeMap;
use std::io::Write;

use quiver_sdk::{ProducerConfig, ProducerRecord};

use crate::data_path::read_all;
use crate::harness::{TestBroker, segment_files};

async fn fill(broker: &TestBroker, n: u32) {
    let client = broker.client().await;
    client
        .admin()
        .create_topic("tail", 1, 1, BTreeMap::new())
        .await
        .expect("create");
    let producer = client
        .producer(ProducerConfig {
            batch_size: 1,
            ..ProducerConfig::default()
        })
        .await
        .expect("producer");
    for i in 0..n {
        producer
            .send_and_wait(ProducerRecord::new("tail", format!("record-{i}")).partition(0))
            .await
            .expect("send");
    }
    producer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_write_at_the_tail_is_truncated() {
    let mut broker = TestBroker::start().await;
    fill(&broker, 50).await;
    broker.stop().await;
    let log = segment_files(&broker.data_dir().join("tail-0"))
        .pop()
        .expect("a segment");
    let before = std::fs::metadata(&log).expect("meta").len();
    // Half a batch header at the end, as a crash in the middle of a write leaves it.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .expect("open");
    f.write_all(&[0, 0, 0, 0, 0, 0, 0, 50, 0, 0, 1, 0, 0xff, 0xff])
        .expect("write");
    drop(f);
    broker.start_again().await;
    assert_eq!(
        std::fs::metadata(&log).expect("meta").len(),
        before,
        "torn bytes removed"
    );
    let client = broker.client().await;
    let records = read_all(&client, "tail", 1, 50).await;
    assert_eq!(records.len(), 50);
    assert_eq!(records[49].value.as_deref(), Some(&b"record-49"[..]));
    let producer = client
        .producer(ProducerConfig::default())
        .await
        .expect("producer");
    let meta = producer
        .send_and_wait(ProducerRecord::new("tail", "next").partition(0))
        .await
        .expect("send");
    assert_eq!(
        meta.offset, 50,
        "appends continue right after the last good batch"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_last_batch_is_dropped_and_earlier_data_served() {
    let mut broker = TestBroker::start().await;
    fill(&broker, 20).await;
    broker.stop().await;
    let log = segment_files(&broker.data_dir().join("tail-0"))
        .pop()
        .expect("a segment");
    let mut bytes = std::fs::read(&log).expect("read");
    let last = bytes.len() - 3;
    bytes[last] ^= 0x55; // inside the value of the last record: its CRC no longer matches
    std::fs::write(&log, &bytes).expect("write");
    // A missing index must be rebuilt too.
    let index = log.with_extension("index");
    let _ = std::fs::remove_file(&index);
    broker.start_again().await;
    let client = broker.client().await;
    let desc = client
        .admin()
        .describe_topic("tail")
        .await
        .expect("describe");
    assert_eq!(
        desc.partitions[0].high_watermark, 19,
        "only the corrupt last batch is gone"
    );
    let records = read_all(&client, "tail", 1, 19).await;
    let values: Vec<String> = records
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect();
    let want: Vec<String> = (0..19).map(|i| format!("record-{i}")).collect();
    assert_eq!(values, want);
}
