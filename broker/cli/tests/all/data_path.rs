//! The data path through the SDK: produce, fetch, subscribe, list offsets, restart.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::Bytes;
use quiver_proto::api::{OffsetSpec, SubscribeRequest};
use quiver_proto::batch;
use quiver_sdk::{
    Client, ConsumerConfig, ConsumerRecord, OffsetReset, ProducerConfig, ProducerRecord,
    TopicPartition,
};

use crate::harness::{TestBroker, eventually};

/// Deterministic value bytes for record `i`: binary, of varied length, some empty.
fn value_of(i: u64) -> Vec<u8> {
    let len = (i * 7919 % 1500) as usize;
    (0..len).map(|j| (i as usize * 31 + j * 17) as u8).collect()
}

/// Reads every record of `topic` from the beginning until `total` have arrived.
pub async fn read_all(
    client: &Client,
    topic: &str,
    partitions: u32,
    total: usize,
) -> Vec<ConsumerRecord> {
    let mut consumer = client
        .consumer(ConsumerConfig {
            auto_offset_reset: OffsetReset::Earliest,
            max_poll_records: 10_000,
            ..ConsumerConfig::default()
        })
        .expect("consumer");
    let tps: Vec<TopicPartition> = (0..partitions)
        .map(|p| TopicPartition::new(topic, p))
        .collect();
    consumer.assign(tps.clone());
    consumer.seek_to_beginning(&tps).await.expect("seek");
    let mut out = Vec::with_capacity(total);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while out.len() < total {
        assert!(
            tokio::time::Instant::now() < deadline,
            "read {} of {total}",
            out.len()
        );
        out.extend(
            consumer
                .poll(Duration::from_millis(500))
                .await
                .expect("poll"),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_records_round_trip_byte_exact_in_order() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    client
        .admin()
        .create_topic("events", 4, 1, BTreeMap::new())
        .await
        .expect("create");
    let producer = client
        .producer(ProducerConfig::default())
        .await
        .expect("producer");
    const N: u64 = 100_000;
    let mut deliveries = Vec::with_capacity(N as usize);
    for i in 0..N {
        let mut record = ProducerRecord::new("events", value_of(i));
        if i % 3 != 0 {
            record = record.key(format!("key-{}", i % 977));
        }
        if i % 5 == 0 {
            record = record.header("n", i.to_string());
        }
        deliveries.push((i, producer.send(record).await.expect("send")));
    }
    producer.flush().await;
    // Per partition, offsets must follow send order.
    let mut expected: HashMap<(u32, i64), u64> = HashMap::new();
    let mut last_offset: HashMap<u32, i64> = HashMap::new();
    for (i, d) in deliveries {
        let meta = d.await.expect("delivered");
        let prev = last_offset.insert(meta.partition, meta.offset);
        assert!(
            prev.is_none_or(|p| p < meta.offset),
            "offsets out of send order"
        );
        expected.insert((meta.partition, meta.offset), i);
    }
    producer.close().await;
    assert_eq!(last_offset.len(), 4, "records spread over every partition");

    let records = read_all(&client, "events", 4, N as usize).await;
    assert_eq!(records.len(), N as usize);
    let mut seen_per_partition: HashMap<u32, i64> = HashMap::new();
    for r in &records {
        let i = expected
            .remove(&(r.partition, r.offset))
            .unwrap_or_else(|| {
                panic!("unexpected or repeated record {}@{}", r.partition, r.offset)
            });
        assert_eq!(
            r.value.as_deref(),
            Some(value_of(i).as_slice()),
            "value of record {i}"
        );
        let want_key = (!i.is_multiple_of(3)).then(|| format!("key-{}", i % 977));
        assert_eq!(
            r.key.as_deref(),
            want_key.as_deref().map(str::as_bytes),
            "key of record {i}"
        );
        if i.is_multiple_of(5) {
            assert_eq!(r.headers.len(), 1);
            assert_eq!(
                r.headers[0].value.as_deref(),
                Some(i.to_string().as_bytes())
            );
        }
        if !i.is_multiple_of(3) {
            let key = format!("key-{}", i % 977);
            assert_eq!(
                r.partition,
                quiver_proto::murmur2::key_partition(key.as_bytes(), 4),
                "Kafka-compatible key routing"
            );
        }
        let prev = seen_per_partition.insert(r.partition, r.offset);
        assert!(prev.is_none_or(|p| p < r.offset), "consumed out of order");
    }
    assert!(
        expected.is_empty(),
        "{} records never consumed",
        expected.len()
    );
}

/// Several small fetches of one partition in flight at once: records still come back
/// contiguous and in order, and a seek drops what the fetches in flight would bring.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_fetches_keep_order_and_a_seek_drops_them() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    client
        .admin()
        .create_topic("piped", 1, 1, BTreeMap::new())
        .await
        .expect("create");
    // Many small batches, so that every fetch below ends inside the log.
    let producer = client
        .producer(ProducerConfig {
            batch_size: 2048,
            ..ProducerConfig::default()
        })
        .await
        .expect("producer");
    const N: i64 = 3000;
    let value = |i: i64| format!("record-{i:05}-{}", "x".repeat((i % 50) as usize));
    let mut deliveries = Vec::new();
    for i in 0..N {
        let record = ProducerRecord::new("piped", value(i)).partition(0);
        deliveries.push(producer.send(record).await.expect("send"));
    }
    producer.flush().await;
    for d in deliveries {
        d.await.expect("delivered");
    }
    let tp = TopicPartition::new("piped", 0);
    for in_flight in [1, 4] {
        let mut consumer = client
            .consumer(ConsumerConfig {
                auto_offset_reset: OffsetReset::Earliest,
                max_bytes: 4096,
                fetches_in_flight: in_flight,
                max_poll_records: 40,
                ..ConsumerConfig::default()
            })
            .expect("consumer");
        consumer.assign(vec![tp.clone()]);
        consumer.seek(&tp, 0).expect("seek");
        let mut next = 0;
        let mut sought = false;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while next < N {
            assert!(tokio::time::Instant::now() < deadline, "stuck at {next}");
            let records = consumer
                .poll(Duration::from_millis(500))
                .await
                .expect("poll");
            for r in records {
                assert_eq!(
                    r.offset, next,
                    "{in_flight} in flight: contiguous, in order"
                );
                assert_eq!(r.value.as_deref(), Some(value(next).as_bytes()));
                next += 1;
            }
            // Jump back while the fetches sent ahead are still out.
            if !sought && next >= 1000 {
                sought = true;
                consumer.seek(&tp, 200).expect("seek");
                next = 200;
            }
        }
        assert_eq!(consumer.position(&tp).expect("assigned"), Some(N));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_topics_configs_and_data() {
    let mut broker = TestBroker::start().await;
    {
        let client = broker.client().await;
        let admin = client.admin();
        admin
            .create_topic(
                "kept",
                2,
                1,
                BTreeMap::from([("retention.ms".to_string(), "-1".to_string())]),
            )
            .await
            .expect("create");
        admin
            .create_topic("other", 1, 1, BTreeMap::new())
            .await
            .expect("create");
        let producer = client
            .producer(ProducerConfig::default())
            .await
            .expect("producer");
        for i in 0..1000u32 {
            producer
                .send(ProducerRecord::new("kept", format!("v{i}")).partition(i % 2))
                .await
                .expect("send");
        }
        producer.flush().await;
        producer.close().await;
    }
    broker.restart().await;
    let client = broker.client().await;
    let admin = client.admin();
    let mut names: Vec<String> = admin
        .list_topics()
        .await
        .expect("list")
        .into_iter()
        .filter(|t| !t.internal)
        .map(|t| t.name)
        .collect();
    names.sort();
    assert_eq!(names, ["kept", "other"]);
    let desc = admin.describe_topic("kept").await.expect("describe");
    assert_eq!(desc.configs["retention.ms"], "-1");
    assert_eq!(
        desc.partitions
            .iter()
            .map(|p| p.high_watermark)
            .sum::<i64>(),
        1000
    );
    let records = read_all(&client, "kept", 2, 1000).await;
    let mut values: Vec<String> = records
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect();
    values.sort();
    let mut want: Vec<String> = (0..1000).map(|i| format!("v{i}")).collect();
    want.sort();
    assert_eq!(values, want);
    // New appends continue after the recovered offsets.
    let producer = client
        .producer(ProducerConfig::default())
        .await
        .expect("producer");
    let meta = producer
        .send_and_wait(ProducerRecord::new("kept", "after").partition(0))
        .await
        .expect("send");
    assert_eq!(meta.offset, 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_fetch_is_woken_by_an_append() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    client
        .admin()
        .create_topic("wake", 1, 1, BTreeMap::new())
        .await
        .expect("create");
    let fetcher = client.clone();
    // A fetch at the end of the log that may wait up to 25 s (the broker caps at 30 s).
    let fetch = tokio::spawn(async move {
        let req = quiver_proto::api::FetchRequest {
            topic: "wake".into(),
            partition: 0,
            offset: 0,
            max_bytes: 1 << 20,
            max_wait_ms: 25_000,
            min_bytes: 1,
            isolation: Default::default(),
            filter: None,
        };
        fetcher.call(&req, Bytes::new()).await.expect("fetch")
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let producer = client
        .producer(ProducerConfig::default())
        .await
        .expect("producer");
    producer
        .send_and_wait(ProducerRecord::new("wake", "hello").partition(0))
        .await
        .expect("send");
    // The safety net is well below the fetch's own 25 s wait: only a wake-up passes.
    let (resp, payload) = tokio::time::timeout(Duration::from_secs(10), fetch)
        .await
        .expect("the append woke the fetch")
        .expect("task");
    assert_eq!(resp.high_watermark, 1);
    assert_eq!(resp.next_offset, 1);
    let records = batch::decode_records(&payload).expect("decode");
    assert_eq!(records[0].value.as_deref(), Some(&b"hello"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_pushes_new_batches() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    client
        .admin()
        .create_topic("push", 1, 1, BTreeMap::new())
        .await
        .expect("create");
    let producer = client
        .producer(ProducerConfig::default())
        .await
        .expect("producer");
    producer
        .send_and_wait(ProducerRecord::new("push", "before").partition(0))
        .await
        .expect("send");
    let mut sub = client
        .subscribe(&SubscribeRequest {
            topic: "push".into(),
            partition: 0,
            offset: 0,
            max_bytes: 1 << 20,
            filter: None,
        })
        .await
        .expect("subscribe");
    let mut values = Vec::new();
    let mut sent_after = false;
    while values.len() < 3 {
        let (resp, payload) = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .expect("a push")
            .expect("stream open")
            .expect("frame");
        // One push may carry several batches, when appends land before it is sent.
        for piece in batch::split(&payload) {
            let (_, bytes) = piece.expect("whole batches");
            for r in batch::decode_records(&bytes).expect("decode") {
                values.push(
                    String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned(),
                );
            }
        }
        assert_eq!(resp.next_offset as usize, values.len());
        if !sent_after {
            sent_after = true;
            for v in ["one", "two"] {
                producer
                    .send_and_wait(ProducerRecord::new("push", v).partition(0))
                    .await
                    .expect("send");
            }
        }
    }
    assert_eq!(values, ["before", "one", "two"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_offsets_earliest_latest_and_by_time() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    let admin = client.admin();
    admin
        .create_topic("times", 1, 1, BTreeMap::new())
        .await
        .expect("create");
    let producer = client
        .producer(ProducerConfig::default())
        .await
        .expect("producer");
    for (i, ts) in [1_000i64, 2_000, 3_000].into_iter().enumerate() {
        let mut r = ProducerRecord::new("times", format!("v{i}")).partition(0);
        r.timestamp = Some(ts);
        producer.send_and_wait(r).await.expect("send");
    }
    let at = |spec| admin.list_offsets("times", 0, spec);
    assert_eq!(
        at(OffsetSpec::Earliest).await.expect("earliest").offset,
        Some(0)
    );
    assert_eq!(
        at(OffsetSpec::Latest).await.expect("latest").offset,
        Some(3)
    );
    let mid = at(OffsetSpec::Timestamp(1_500)).await.expect("by time");
    assert_eq!((mid.offset, mid.timestamp), (Some(1), Some(2_000)));
    assert_eq!(
        at(OffsetSpec::Timestamp(9_999))
            .await
            .expect("future")
            .offset,
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_removes_old_segments_in_the_background() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    let admin = client.admin();
    let configs = BTreeMap::from([
        // The smallest segment and retention a topic may have: 1 MiB and 2 MiB.
        ("segment.bytes".to_string(), "1048576".to_string()),
        ("retention.bytes".to_string(), "2097152".to_string()),
    ]);
    admin
        .create_topic("short", 1, 1, configs)
        .await
        .expect("create");
    let producer = client
        .producer(ProducerConfig::default())
        .await
        .expect("producer");
    for i in 0..60 {
        producer
            .send_and_wait(ProducerRecord::new("short", vec![b'x'; 100 * 1024 + i]).partition(0))
            .await
            .expect("send");
    }
    eventually(20, "retention to delete old segments", || async {
        let d = admin.describe_topic("short").await.expect("describe");
        d.partitions[0].log_start_offset > 0
            && d.partitions[0].size_bytes <= 2 * 1024 * 1024 + 1024 * 1024
    })
    .await;
    let d = admin.describe_topic("short").await.expect("describe");
    assert_eq!(
        d.partitions[0].high_watermark, 60,
        "retention never touches the end of the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_topic_ends_its_subscriptions_with_a_typed_error() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    client
        .admin()
        .create_topic("doomed", 1, 1, BTreeMap::new())
        .await
        .expect("create");
    let mut sub = client
        .subscribe(&SubscribeRequest {
            topic: "doomed".into(),
            partition: 0,
            offset: 0,
            max_bytes: 1 << 20,
            filter: None,
        })
        .await
        .expect("subscribe");
    let waiting = tokio::spawn(async move { sub.next().await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    client.admin().delete_topic("doomed").await.expect("delete");
    let ended = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the subscription ends")
        .expect("task")
        .expect("a final frame");
    let err = ended.expect_err("an error, not data");
    assert_eq!(
        err.code(),
        Some(quiver_proto::ErrorCode::UNKNOWN_TOPIC),
        "{err}"
    );
}
