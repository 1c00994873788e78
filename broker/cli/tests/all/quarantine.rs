//! A partition whose log cannot be opened is quarantined: the broker starts, every other
//! partition serves, the bad one is reported offline (describe, and `PARTITION_OFFLINE`
//! on produce, fetch and list-offsets) until an operator fixes its files and runs
//! `quiver topic reopen`, which brings it back without a restart.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use quiver_proto::ErrorCode;
use quiver_proto::api::{Acks, FetchRequest, ListOffsetsRequest, OffsetSpec, ProduceRequest};
use quiver_proto::batch::{BatchBuilder, Compression, ProducerIdentity};
use quiver_sdk::{Client, ProducerConfig, ProducerRecord, TopicPartition};

use crate::harness::{TestBroker, consumer_from_start, expect_code, segment_files};

async fn produce(client: &Client, topic: &str, partition: u32, n: usize) {
    let producer = client
        .producer(ProducerConfig::default())
        .await
        .expect("producer");
    for i in 0..n {
        producer
            .send_and_wait(
                ProducerRecord::new(topic, format!("{topic}-{partition}-{i}")).partition(partition),
            )
            .await
            .expect("send");
    }
    producer.close().await;
}

/// Every record of one partition from the start, until `count` arrived.
async fn consume(client: &Client, topic: &str, partition: u32, count: usize) -> Vec<String> {
    let mut consumer = consumer_from_start(client, &TopicPartition::new(topic, partition));
    let mut values = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while values.len() < count && Instant::now() < deadline {
        for r in consumer
            .poll(Duration::from_millis(200))
            .await
            .expect("poll")
        {
            values
                .push(String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned());
        }
    }
    values
}

fn quiver(broker: &TestBroker, args: &[&str]) -> std::process::Output {
    let ca = broker.dir.path().join("ca.pem");
    std::fs::write(&ca, broker.broker.as_ref().expect("running").cert_pem()).expect("ca");
    std::process::Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["--broker", &broker.url(), "--ca"])
        .arg(&ca)
        .args(args)
        .output()
        .expect("quiver runs")
}

/// Damages `dir`'s only segment beyond what recovery repairs: garbage in its index
/// (which recovery would rebuild) and a directory where its log file should be (which
/// it cannot read). The log file is kept at `aside` for the repair.
fn make_unopenable(dir: &Path, aside: &Path) {
    let log = segment_files(dir).pop().expect("a segment");
    std::fs::write(log.with_extension("index"), b"not an index at all").expect("garbage index");
    std::fs::rename(&log, aside).expect("move the segment aside");
    std::fs::create_dir(&log).expect("a directory where the segment was");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unopenable_partition_is_quarantined_and_reopened_without_a_restart() {
    let mut broker = TestBroker::start().await;
    let client = broker.client().await;
    let admin = client.admin();
    admin
        .create_topic("q", 2, 1, BTreeMap::new())
        .await
        .expect("create q");
    admin
        .create_topic("ok", 1, 1, BTreeMap::new())
        .await
        .expect("create ok");
    for (topic, partition) in [("q", 0), ("q", 1), ("ok", 0)] {
        produce(&client, topic, partition, 5).await;
    }
    drop((admin, client));
    broker.stop().await;
    let bad_dir = broker.data_dir().join("q-1");
    let aside = broker.dir.path().join("q-1-segment.log");
    make_unopenable(&bad_dir, &aside);

    // The broker starts, and everything but q-1 serves.
    broker.start_again().await;
    let client = broker.client().await;
    let admin = client.admin();
    produce(&client, "ok", 0, 1).await;
    produce(&client, "q", 0, 1).await;
    assert_eq!(consume(&client, "ok", 0, 6).await.len(), 6);
    assert_eq!(consume(&client, "q", 0, 6).await.len(), 6);

    // q-1 is reported offline, with why and how to recover.
    let described = quiver(&broker, &["topic", "describe", "q"]);
    let stdout = String::from_utf8_lossy(&described.stdout);
    assert!(
        described.status.success(),
        "{}",
        String::from_utf8_lossy(&described.stderr)
    );
    let row = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("1 ") && l.contains("OFFLINE"))
        .unwrap_or_else(|| panic!("partition 1 is not reported offline:\n{stdout}"));
    assert!(row.contains("quiver topic reopen q 1"), "{row}");
    let d = admin.describe_topic("q").await.expect("describe");
    assert_eq!(d.partitions[0].offline, None);
    assert!(d.partitions[1].offline.is_some());

    // Produce, fetch and list-offsets on it fail with the new code, naming the partition.
    let raw = broker.raw().await;
    let mut batch = BatchBuilder::new();
    batch.push(0, None, Some(b"refused"), &[]);
    let batch = batch.build(Compression::None, ProducerIdentity::NONE);
    let produce_req = ProduceRequest {
        topic: "q".into(),
        partition: Some(1),
        acks: Acks::Leader,
        timeout_ms: 5_000,
    };
    let message = expect_code(
        raw.send(&produce_req, &batch).await,
        ErrorCode::PARTITION_OFFLINE,
    );
    assert!(message.contains("q-1"), "{message}");
    let fetch = FetchRequest {
        topic: "q".into(),
        partition: 1,
        offset: 0,
        max_bytes: 1 << 20,
        max_wait_ms: 0,
        min_bytes: 1,
        isolation: Default::default(),
        filter: None,
    };
    expect_code(raw.send(&fetch, &[]).await, ErrorCode::PARTITION_OFFLINE);
    let list = ListOffsetsRequest {
        topic: "q".into(),
        partition: 1,
        spec: OffsetSpec::Latest,
    };
    expect_code(raw.send(&list, &[]).await, ErrorCode::PARTITION_OFFLINE);

    // A reopen before the cause is fixed fails and says why.
    let early = quiver(&broker, &["topic", "reopen", "q", "1"]);
    assert!(!early.status.success());
    assert!(
        String::from_utf8_lossy(&early.stderr).contains("offline"),
        "{early:?}"
    );

    // The operator puts the segment back (the garbage index stays: recovery rebuilds it).
    let log = segment_files(&bad_dir)
        .pop()
        .expect("the directory named like a segment");
    std::fs::remove_dir(&log).expect("remove the directory");
    std::fs::rename(&aside, &log).expect("restore the segment");
    let reopened = quiver(&broker, &["topic", "reopen", "q", "1"]);
    assert!(
        reopened.status.success(),
        "{}",
        String::from_utf8_lossy(&reopened.stderr)
    );
    assert!(
        String::from_utf8_lossy(&reopened.stdout).contains("high-watermark 5"),
        "{reopened:?}"
    );

    // It serves again, with everything it held, and the same client carries on.
    produce(&client, "q", 1, 1).await;
    let values = consume(&client, "q", 1, 6).await;
    let expected: Vec<String> = (0..5)
        .map(|i| format!("q-1-{i}"))
        .chain(["q-1-0".to_string()])
        .collect();
    assert_eq!(values, expected);
    assert_eq!(
        admin
            .describe_topic("q")
            .await
            .expect("describe")
            .partitions[1]
            .offline,
        None
    );
}
