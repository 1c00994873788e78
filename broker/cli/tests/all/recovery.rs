//! A torn or corrupted tail is cut off at start, and earlier data is still served; a
//! batch damaged while being served fails the consumer's CRC check.

use std::io::Write;
use std::time::Duration;

use quiver_sdk::{ProducerConfig, ProducerRecord, TopicPartition};

use crate::data_path::read_all;
use crate::harness::{TestBroker, consumer_from_start, fill_one_batch_per_record, segment_files};

async fn fill(broker: &TestBroker, n: u32) {
    fill_one_batch_per_record(broker, "tail", n).await;
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

/// A batch damaged on disk while the broker serves it (bit rot after the append's CRC
/// check): the consumer returns the records before it, then a typed error at its offset
/// on every poll, and reads on once the application seeks past it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_damaged_at_rest_fails_the_consumers_crc_check_at_its_offset() {
    use std::os::unix::fs::FileExt;

    let broker = TestBroker::start().await;
    fill(&broker, 50).await;
    let log = segment_files(&broker.data_dir().join("tail-0"))
        .pop()
        .expect("a segment");
    let bytes = std::fs::read(&log).expect("read");
    let at = bytes
        .windows(9)
        .position(|w| w == b"record-20")
        .expect("record 20 is in the log");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .expect("open")
        .write_all_at(b"R", at as u64)
        .expect("flip one byte");

    let client = broker.client().await;
    let tp = TopicPartition::new("tail", 0);
    let mut consumer = consumer_from_start(&client, &tp);
    let mut values = Vec::new();
    let err = loop {
        match consumer.poll(Duration::from_secs(5)).await {
            Ok(records) => values.extend(records.into_iter().map(|r| r.value)),
            Err(e) => break e,
        }
        assert!(
            values.len() <= 20,
            "records past the damaged batch came back"
        );
    };
    assert!(
        matches!(&err, quiver_sdk::Error::Batch { offset: 20, source, .. }
            if matches!(**source, quiver_proto::batch::BatchError::CrcMismatch { .. })),
        "{err}"
    );
    // The records before the damaged batch arrive exactly once, before or after the error.
    while values.len() < 20 {
        let more = consumer.poll(Duration::from_secs(5)).await.expect("poll");
        assert!(!more.is_empty(), "stalled at {} records", values.len());
        values.extend(more.into_iter().map(|r| r.value));
    }
    let want: Vec<_> = (0..20)
        .map(|i| Some(format!("record-{i}").into()))
        .collect();
    assert_eq!(values, want);
    for _ in 0..2 {
        let again = consumer.poll(Duration::from_secs(5)).await;
        assert!(
            matches!(again, Err(quiver_sdk::Error::Batch { offset: 20, .. })),
            "the consumer stays on the damaged batch, returning nothing twice: {again:?}"
        );
    }

    consumer.seek(&tp, 21).expect("seek past it");
    let rest = read_n(&mut consumer, 29).await;
    assert_eq!(rest.first().map(|r| r.offset), Some(21));
    assert_eq!(rest.last().map(|r| r.offset), Some(49));
}

async fn read_n(consumer: &mut quiver_sdk::Consumer, n: usize) -> Vec<quiver_sdk::ConsumerRecord> {
    let mut out = Vec::new();
    while out.len() < n {
        let more = consumer.poll(Duration::from_secs(5)).await.expect("poll");
        assert!(!more.is_empty(), "stalled at {} of {n} records", out.len());
        out.extend(more);
    }
    out
}
