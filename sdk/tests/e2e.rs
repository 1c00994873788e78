//! The SDK against a real broker started in-process on an ephemeral port.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use quiver_sdk::partitioner::partition_for_key;
use quiver_sdk::{
    Client, ClientOptions, Compression, ConsumerConfig, Error, ErrorCode, OffsetReset, OffsetSpec,
    ProducerConfig, ProducerRecord, TopicPartition,
};

struct Broker {
    running: quiver_server::RunningBroker,
    _dir: tempfile::TempDir,
}

async fn broker() -> Broker {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = quiver_server::BrokerConfig::dev(dir.path());
    config.listen = "127.0.0.1:0".parse().expect("addr");
    let running = quiver_server::start(config).await.expect("broker starts");
    Broker { running, _dir: dir }
}

async fn client(b: &Broker, host: &str) -> Client {
    let url = format!("quic://{host}:{}", b.running.local_addr().port());
    let options = ClientOptions::new().ca_pem(b.running.cert_pem().as_bytes());
    Client::connect(&url, options).await.expect("connects")
}

#[tokio::test]
async fn admin_produce_and_consume_round_trip() {
    let b = broker().await;
    let client = client(&b, "localhost").await;
    let admin = client.admin();
    admin
        .create_topic("orders", 3, 1, BTreeMap::new())
        .await
        .expect("created");
    let topics = admin.list_topics().await.expect("listed");
    assert!(
        topics
            .iter()
            .any(|t| t.name == "orders" && t.partitions == 3)
    );
    let again = admin.create_topic("orders", 3, 1, BTreeMap::new()).await;
    assert_eq!(
        again.expect_err("exists").code(),
        Some(ErrorCode::TOPIC_ALREADY_EXISTS)
    );

    let producer = client
        .producer(ProducerConfig {
            compression: Compression::Lz4,
            ..Default::default()
        })
        .await
        .expect("producer");
    let mut deliveries = Vec::new();
    for i in 0..200u32 {
        let key = format!("k{}", i % 10);
        let record = ProducerRecord::new("orders", format!("v{i}")).key(key.clone());
        deliveries.push((key, producer.send(record).await.expect("queued")));
    }
    producer.flush().await;
    let mut per_partition: BTreeMap<u32, Vec<i64>> = BTreeMap::new();
    for (key, d) in deliveries {
        let meta = d.await.expect("delivered");
        assert_eq!(meta.partition, partition_for_key(key.as_bytes(), 3));
        per_partition
            .entry(meta.partition)
            .or_default()
            .push(meta.offset);
    }
    for offsets in per_partition.values() {
        let expected: Vec<i64> = (0..offsets.len() as i64).collect();
        assert_eq!(offsets, &expected, "offsets are dense and in send order");
    }
    producer.close().await;

    let mut consumer = client
        .consumer(ConsumerConfig {
            auto_offset_reset: OffsetReset::Earliest,
            max_wait: Duration::from_millis(100),
            ..Default::default()
        })
        .expect("consumer");
    consumer.assign((0..3).map(|p| TopicPartition::new("orders", p)).collect());
    let mut seen = Vec::new();
    while seen.len() < 200 {
        let records = consumer.poll(Duration::from_secs(5)).await.expect("polled");
        assert!(!records.is_empty(), "records arrive before the timeout");
        seen.extend(records);
    }
    let mut values: Vec<String> = seen
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect();
    values.sort();
    let mut expected: Vec<String> = (0..200).map(|i| format!("v{i}")).collect();
    expected.sort();
    assert_eq!(values, expected);

    let tp = TopicPartition::new("orders", 0);
    let end = admin
        .list_offsets("orders", 0, OffsetSpec::Latest)
        .await
        .expect("offsets")
        .offset
        .expect("an end offset");
    assert_eq!(consumer.position(&tp).expect("assigned"), Some(end));
    consumer.seek(&tp, 1).expect("seek");
    let again = consumer.poll(Duration::from_secs(5)).await.expect("polled");
    assert_eq!(again.first().map(|r| r.offset), Some(1));
    b.running.shutdown().await.expect("stops");
}

#[tokio::test]
async fn ip_addresses_verify_and_errors_are_typed() {
    let b = broker().await;
    let client = client(&b, "127.0.0.1").await;
    let err = client
        .admin()
        .describe_topic("missing")
        .await
        .expect_err("no such topic");
    assert_eq!(err.code(), Some(ErrorCode::UNKNOWN_TOPIC));
    assert!(!err.is_retriable());

    // Another broker's self-signed certificate is a valid CA that did not sign this one.
    let other = broker().await;
    let wrong_ca = ClientOptions::new().ca_pem(other.running.cert_pem().as_bytes());
    let url = format!("quic://localhost:{}", b.running.local_addr().port());
    match Client::connect(&url, wrong_ca).await {
        Err(Error::Connect { reason, .. }) => assert!(!reason.is_empty()),
        other => panic!("expected a connect error, got {other:?}"),
    }
    other.running.shutdown().await.expect("stops");

    let mut consumer = client
        .consumer(ConsumerConfig {
            auto_offset_reset: OffsetReset::None,
            ..Default::default()
        })
        .expect("consumer");
    client
        .admin()
        .create_topic("t", 1, 1, BTreeMap::new())
        .await
        .expect("created");
    consumer.assign(vec![TopicPartition::new("t", 0)]);
    let err = consumer.poll(Duration::from_millis(100)).await;
    assert!(matches!(err, Err(Error::NoOffset(_))));
    b.running.shutdown().await.expect("stops");
}

#[tokio::test]
async fn acks_none_and_keyless_sticky_records_arrive() {
    let b = broker().await;
    let client = client(&b, "localhost").await;
    client
        .admin()
        .create_topic("fire", 2, 1, BTreeMap::new())
        .await
        .expect("created");
    let producer = client
        .producer(ProducerConfig {
            acks: quiver_sdk::Acks::None,
            idempotence: false,
            ..Default::default()
        })
        .await
        .expect("producer");
    for i in 0..50 {
        let value = Bytes::from(format!("{i}"));
        let meta = producer
            .send_and_wait(ProducerRecord {
                topic: "fire".into(),
                value: Some(value),
                ..Default::default()
            })
            .await
            .expect("sent");
        assert_eq!(meta.offset, -1, "acks=none reports no offset");
    }
    producer.close().await;
    let mut consumer = client
        .consumer(ConsumerConfig {
            auto_offset_reset: OffsetReset::Earliest,
            max_wait: Duration::from_millis(100),
            ..Default::default()
        })
        .expect("consumer");
    consumer.assign(vec![
        TopicPartition::new("fire", 0),
        TopicPartition::new("fire", 1),
    ]);
    let mut count = 0;
    for _ in 0..50 {
        count += consumer
            .poll(Duration::from_millis(500))
            .await
            .expect("poll")
            .len();
        if count >= 50 {
            break;
        }
    }
    assert_eq!(count, 50);
    b.running.shutdown().await.expect("stops");
}
