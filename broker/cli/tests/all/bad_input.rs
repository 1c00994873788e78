//! Bad input gets a typed error on its own stream, and the broker keeps serving.

use std::collections::BTreeMap;

use quiver_proto::ErrorCode;
use quiver_proto::api::{Acks, CreateTopicRequest, FetchRequest, MetadataRequest, ProduceRequest};
use quiver_proto::batch::{BatchBuilder, Compression, ProducerIdentity};

use crate::harness::{Answer, TestBroker, expect_code};

fn produce(topic: &str, partition: Option<u32>) -> ProduceRequest {
    ProduceRequest {
        topic: topic.into(),
        partition,
        acks: Acks::Leader,
        timeout_ms: 5_000,
    }
}

fn fetch(topic: &str, partition: u32, offset: i64) -> FetchRequest {
    FetchRequest {
        topic: topic.into(),
        partition,
        offset,
        max_bytes: 1 << 20,
        max_wait_ms: 0,
        min_bytes: 1,
        isolation: Default::default(),
        filter: None,
    }
}

fn one_batch(value: &[u8]) -> Vec<u8> {
    let mut b = BatchBuilder::new();
    b.push(1, None, Some(value), &[]);
    b.build(Compression::None, ProducerIdentity::NONE).to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_bad_input_gets_its_typed_error_and_service_continues() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    client
        .admin()
        .create_topic("ok", 2, 1, BTreeMap::new())
        .await
        .expect("create");
    let raw = broker.raw().await;

    // Random bytes whose length prefix is small: the frame does not parse.
    let answer = raw
        .send_raw(&[0, 0, 0, 5, 0xde, 0xad, 0xbe, 0xef, 0x42])
        .await;
    expect_code(answer, ErrorCode::CORRUPT_FRAME);

    // A prefix promising more bytes than follow.
    let answer = raw.send_raw(&[0, 0, 1, 0, 1, 2, 3]).await;
    expect_code(answer, ErrorCode::CORRUPT_FRAME);

    // A frame larger than the limit is refused from its prefix, before allocation.
    let answer = raw.send_raw(&[0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0]).await;
    let msg = expect_code(answer, ErrorCode::FRAME_TOO_LARGE);
    assert!(msg.contains("exceeds"), "{msg}");

    // An API the broker does not serve.
    let mut unknown = vec![0, 0, 0, 8, 0x03, 0xe7, 0, 0, 0, 0, 0, 0];
    unknown.truncate(12);
    let msg = expect_code(raw.send_raw(&unknown).await, ErrorCode::UNSUPPORTED_API);
    assert!(msg.contains("999"), "{msg}");

    // A known API with a body that does not decode as it.
    let mut garbage = vec![0, 0, 0, 12, 0, 1, 0, 0, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff];
    garbage.truncate(16);
    expect_code(raw.send_raw(&garbage).await, ErrorCode::CORRUPT_FRAME);

    // A batch whose CRC does not match its bytes: refused, nothing appended.
    let mut bad = one_batch(b"tampered");
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    let msg = expect_code(
        raw.send(&produce("ok", Some(0)), &bad).await,
        ErrorCode::CORRUPT_BATCH,
    );
    assert!(msg.contains("CRC"), "{msg}");
    // A batch cut short.
    let good = one_batch(b"fine");
    expect_code(
        raw.send(&produce("ok", Some(0)), &good[..good.len() - 4])
            .await,
        ErrorCode::CORRUPT_BATCH,
    );
    // A good batch followed by a corrupt one appends neither.
    let mut pair = good.clone();
    pair.extend_from_slice(&bad);
    expect_code(
        raw.send(&produce("ok", Some(0)), &pair).await,
        ErrorCode::CORRUPT_BATCH,
    );
    let desc = client.admin().describe_topic("ok").await.expect("describe");
    assert_eq!(
        desc.partitions[0].high_watermark, 0,
        "no bad batch was stored"
    );

    // Unknown topic, unknown partition, offset out of range.
    expect_code(
        raw.send(&produce("nope", Some(0)), &good).await,
        ErrorCode::UNKNOWN_TOPIC,
    );
    let msg = expect_code(
        raw.send(&produce("ok", Some(7)), &good).await,
        ErrorCode::UNKNOWN_PARTITION,
    );
    assert!(msg.contains("has 2"), "{msg}");
    expect_code(
        raw.send(&fetch("nope", 0, 0), &[]).await,
        ErrorCode::UNKNOWN_TOPIC,
    );
    expect_code(
        raw.send(&fetch("ok", 9, 0), &[]).await,
        ErrorCode::UNKNOWN_PARTITION,
    );
    expect_code(
        raw.send(&fetch("ok", 0, 42), &[]).await,
        ErrorCode::OFFSET_OUT_OF_RANGE,
    );
    expect_code(
        raw.send(&fetch("ok", 0, -5), &[]).await,
        ErrorCode::OFFSET_OUT_OF_RANGE,
    );

    // Invalid topic names and configs, sent raw (the SDK would refuse them itself).
    for name in ["", "has space", "slash/es", &"x".repeat(250)] {
        let req = CreateTopicRequest {
            name: name.to_string(),
            partitions: 1,
            replication_factor: 1,
            configs: BTreeMap::new(),
        };
        expect_code(raw.send(&req, &[]).await, ErrorCode::INVALID_TOPIC_NAME);
    }
    let req = CreateTopicRequest {
        name: "cfg".into(),
        partitions: 1,
        replication_factor: 1,
        configs: BTreeMap::from([("retention.ms".into(), "soon".into())]),
    };
    let msg = expect_code(raw.send(&req, &[]).await, ErrorCode::INVALID_CONFIG);
    assert!(msg.contains("retention.ms"), "{msg}");
    let req = CreateTopicRequest {
        name: "zero".into(),
        partitions: 0,
        replication_factor: 1,
        configs: BTreeMap::new(),
    };
    expect_code(raw.send(&req, &[]).await, ErrorCode::INVALID_REQUEST);

    // The same connection still serves good requests, and so does a fresh one.
    assert!(matches!(
        raw.send(&produce("ok", Some(0)), &good).await,
        Answer::Ok(_)
    ));
    assert!(matches!(
        raw.send(&MetadataRequest { topics: None }, &[]).await,
        Answer::Ok(_)
    ));
    let fresh = broker.raw().await;
    assert!(matches!(
        fresh.send(&fetch("ok", 0, 0), &[]).await,
        Answer::Ok(_)
    ));
    let desc = client.admin().describe_topic("ok").await.expect("describe");
    assert_eq!(desc.partitions[0].high_watermark, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_garbage_never_takes_the_broker_down() {
    use rand::{Rng, SeedableRng};
    let broker = TestBroker::start().await;
    let raw = broker.raw().await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for _ in 0..200 {
        let len = rng.gen_range(0..256);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.r#gen()).collect();
        // Keep most prefixes small so the body is actually parsed.
        if bytes.len() >= 4 && rng.gen_bool(0.8) {
            let n = (bytes.len() - 4) as u32;
            bytes[..4].copy_from_slice(&n.to_be_bytes());
        }
        let (mut send, mut recv) = raw.conn.open_bi().await.expect("stream");
        let _ = send.write_all(&bytes).await;
        let _ = send.finish();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), recv.read_to_end(1 << 20))
            .await;
    }
    assert!(matches!(
        raw.send(&MetadataRequest { topics: None }, &[]).await,
        Answer::Ok(_)
    ));
}
