//! The producer against a real broker: codecs, idempotence, duplicates and gaps.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use quiver_proto::ErrorCode;
use quiver_proto::api::{
    Acks, FetchRequest, InitProducerIdRequest, InitProducerIdResponse, ProduceRequest,
    ProduceResponse,
};
use quiver_proto::batch::{self, BatchBuilder, Compression, ProducerIdentity};
use quiver_sdk::{ProducerConfig, ProducerRecord};

use crate::data_path::read_all;
use crate::harness::{Answer, RawConnection, TestBroker, expect_code};

fn produce(partition: u32) -> ProduceRequest {
    ProduceRequest {
        topic: "idem".into(),
        partition: Some(partition),
        acks: Acks::Leader,
        timeout_ms: 300,
    }
}

fn sequenced(producer_id: i64, epoch: i16, base_sequence: i32, n: usize) -> Vec<u8> {
    let mut b = BatchBuilder::new();
    for i in 0..n {
        b.push(
            1_000,
            None,
            Some(format!("s{}", base_sequence as usize + i).as_bytes()),
            &[],
        );
    }
    b.build(
        Compression::None,
        ProducerIdentity {
            producer_id,
            producer_epoch: epoch,
            base_sequence,
        },
    )
    .to_vec()
}

fn produced(answer: Answer) -> ProduceResponse {
    match answer {
        Answer::Ok(frame) => {
            quiver_proto::frame::decode_response::<ProduceResponse>(frame, "produce")
                .expect("frame")
                .expect("success")
                .body
        }
        Answer::Err(code, msg) => panic!("produce failed: {code}: {msg}"),
    }
}

async fn producer_id(raw: &RawConnection) -> i64 {
    match raw
        .send(
            &InitProducerIdRequest {
                transactional_id: None,
            },
            &[],
        )
        .await
    {
        Answer::Ok(frame) => {
            quiver_proto::frame::decode_response::<InitProducerIdResponse>(frame, "init")
                .expect("frame")
                .expect("ok")
                .body
                .producer_id
        }
        Answer::Err(code, msg) => panic!("{code}: {msg}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_codec_round_trips_and_is_stored_as_sent() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    for codec in Compression::ALL {
        let topic = format!("codec-{codec}");
        client
            .admin()
            .create_topic(&topic, 2, 1, BTreeMap::new())
            .await
            .expect("create");
        let producer = client
            .producer(ProducerConfig {
                compression: codec,
                ..ProducerConfig::default()
            })
            .await
            .expect("producer");
        for i in 0..500 {
            let text = format!("{codec} record {i} {}", "lorem ipsum dolor ".repeat(i % 7));
            producer
                .send(ProducerRecord::new(topic.clone(), text).key(format!("k{}", i % 13)))
                .await
                .expect("send");
        }
        producer.flush().await;
        producer.close().await;
        let records = read_all(&client, &topic, 2, 500).await;
        let mut got: Vec<String> = records
            .iter()
            .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
            .collect();
        got.sort();
        let mut want: Vec<String> = (0..500)
            .map(|i| format!("{codec} record {i} {}", "lorem ipsum dolor ".repeat(i % 7)))
            .collect();
        want.sort();
        assert_eq!(got, want, "{codec}");
        // The broker kept the producer's codec: no recompression on the way in.
        for partition in 0..2 {
            let req = FetchRequest {
                topic: topic.clone(),
                partition,
                offset: 0,
                max_bytes: 1 << 20,
                max_wait_ms: 0,
                min_bytes: 1,
                isolation: Default::default(),
                filter: None,
            };
            let (_, payload) = client.call(&req, Bytes::new()).await.expect("fetch");
            for piece in batch::split(&payload) {
                let (header, _) = piece.expect("whole batch");
                assert_eq!(header.compression().expect("codec"), codec);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_lies_about_its_codec_is_refused() {
    let broker = TestBroker::start().await;
    broker
        .client()
        .await
        .admin()
        .create_topic("idem", 1, 1, BTreeMap::new())
        .await
        .expect("create");
    let raw = broker.raw().await;
    // Records compressed with lz4 but labelled zstd, with a CRC that matches the lie.
    let mut b = BatchBuilder::new();
    b.push(1, None, Some(b"payload that is compressed"), &[]);
    let lz4 = b.build(Compression::Lz4, ProducerIdentity::NONE).to_vec();
    let mut lying = lz4.clone();
    lying[22] = (lying[22] & !0x07) | Compression::Zstd.id() as u8;
    let crc = crc32c(&lying[21..]);
    lying[17..21].copy_from_slice(&crc.to_be_bytes());
    let msg = expect_code(
        raw.send(&produce(0), &lying).await,
        ErrorCode::CORRUPT_BATCH,
    );
    assert!(msg.contains("zstd"), "{msg}");
    // The honest batch is accepted.
    assert_eq!(produced(raw.send(&produce(0), &lz4).await).base_offset, 0);
}

fn crc32c(bytes: &[u8]) -> u32 {
    // Castagnoli CRC, bitwise: slow but independent of the code under test.
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_batch_is_stored_once_even_across_a_restart() {
    let mut broker = TestBroker::start().await;
    broker
        .client()
        .await
        .admin()
        .create_topic("idem", 1, 1, BTreeMap::new())
        .await
        .expect("create");
    let raw = broker.raw().await;
    let pid = producer_id(&raw).await;
    let first = sequenced(pid, 0, 0, 3);
    let stored = produced(raw.send(&produce(0), &first).await);
    assert_eq!(
        (stored.base_offset, stored.last_offset, stored.duplicate),
        (0, 2, false)
    );
    // The response was "lost": the producer sends the same batch again.
    let again = produced(raw.send(&produce(0), &first).await);
    assert_eq!(
        (again.base_offset, again.last_offset, again.duplicate),
        (0, 2, true)
    );
    let next = produced(raw.send(&produce(0), &sequenced(pid, 0, 3, 2)).await);
    assert_eq!(next.base_offset, 3);

    broker.restart().await;
    let raw = broker.raw().await;
    let after = produced(raw.send(&produce(0), &sequenced(pid, 0, 3, 2)).await);
    assert!(after.duplicate, "producer state was rebuilt from the log");
    assert_eq!(after.base_offset, 3);
    let desc = broker
        .client()
        .await
        .admin()
        .describe_topic("idem")
        .await
        .expect("describe");
    assert_eq!(
        desc.partitions[0].high_watermark, 5,
        "five records, each once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sequence_gap_and_a_stale_epoch_are_refused() {
    let broker = TestBroker::start().await;
    broker
        .client()
        .await
        .admin()
        .create_topic("idem", 1, 1, BTreeMap::new())
        .await
        .expect("create");
    let raw = broker.raw().await;
    let pid = producer_id(&raw).await;
    produced(raw.send(&produce(0), &sequenced(pid, 1, 0, 2)).await);
    // Sequence 10 after 0..=1: records 2..=9 are missing.
    let msg = expect_code(
        raw.send(&produce(0), &sequenced(pid, 1, 10, 1)).await,
        ErrorCode::OUT_OF_ORDER_SEQUENCE,
    );
    assert!(msg.contains("10"), "{msg}");
    // An older epoch of the same producer id is fenced.
    expect_code(
        raw.send(&produce(0), &sequenced(pid, 0, 2, 1)).await,
        ErrorCode::INVALID_PRODUCER_EPOCH,
    );
    // The in-order batch still goes in.
    assert_eq!(
        produced(raw.send(&produce(0), &sequenced(pid, 1, 2, 1)).await).base_offset,
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_zero_produces_without_waiting_for_answers() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    client
        .admin()
        .create_topic("fire", 1, 1, BTreeMap::new())
        .await
        .expect("create");
    let producer = client
        .producer(ProducerConfig {
            acks: Acks::None,
            idempotence: false,
            ..ProducerConfig::default()
        })
        .await
        .expect("producer");
    for i in 0..100 {
        producer
            .send(ProducerRecord::new("fire", format!("{i}")))
            .await
            .expect("send");
    }
    producer.flush().await;
    producer.close().await;
    let records = tokio::time::timeout(Duration::from_secs(30), read_all(&client, "fire", 1, 100))
        .await
        .expect("all 100 arrive");
    assert_eq!(records.len(), 100);
}
