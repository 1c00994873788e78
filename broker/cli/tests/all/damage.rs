//! Damage in the middle of a partition's log: the broker keeps the intact batches after
//! it, consumers get the records before it and then an error naming the damaged offsets,
//! and skip it only when they ask to (SDK and `quiver consume --skip-damaged`).

use std::time::{Duration, Instant};

use quiver_proto::api::FetchRequest;
use quiver_proto::{ErrorCode, WireError};
use quiver_sdk::{Error, ProducerConfig, ProducerRecord, TopicPartition};

use crate::harness::{
    TestBroker, consumer_from_start, expect_code, fill_one_batch_per_record, segment_files,
};

/// Twenty records, one batch each, then the broker stops and one byte inside the records
/// of the batch holding offset 10 is flipped.
async fn damaged_at_ten(broker: &mut TestBroker) {
    fill_one_batch_per_record(broker, "dmg", 20).await;
    broker.stop().await;
    let log = segment_files(&broker.data_dir().join("dmg-0"))
        .pop()
        .expect("a segment");
    let mut bytes = std::fs::read(&log).expect("read segment");
    let mut at = 0usize;
    for piece in quiver_proto::batch::split(&bytes::Bytes::from(bytes.clone())) {
        let (header, batch) = piece.expect("whole batches");
        if header.base_offset == 10 {
            break;
        }
        at += batch.len();
    }
    bytes[at + 64] ^= 0x20;
    std::fs::write(&log, bytes).expect("write segment");
    broker.start_again().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_reads_around_mid_log_damage_only_when_it_skips() {
    let mut broker = TestBroker::start().await;
    damaged_at_ten(&mut broker).await;
    let client = broker.client().await;
    let tp = TopicPartition::new("dmg", 0);
    let mut consumer = consumer_from_start(&client, &tp);
    let mut offsets = Vec::new();
    let mut damage = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    while offsets.len() < 19 && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)).await {
            Ok(records) => offsets.extend(records.iter().map(|r| r.offset)),
            Err(e @ Error::DamagedData { .. }) => {
                assert!(
                    damage.is_none(),
                    "the damage is reported once before skipping"
                );
                assert_eq!(offsets, (0..10).collect::<Vec<i64>>(), "records before it");
                let Error::DamagedData {
                    first_offset,
                    next_offset,
                    ..
                } = &e
                else {
                    unreachable!()
                };
                assert_eq!((*first_offset, *next_offset), (10, 11), "{e}");
                // Without a skip, it is reported again.
                let again = consumer.poll(Duration::from_millis(200)).await;
                assert!(matches!(again, Err(Error::DamagedData { .. })), "{again:?}");
                assert_eq!(consumer.skip_damaged(&e).expect("skip"), Some(11));
                damage = Some(e);
            }
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert!(
        damage.is_some(),
        "the damage was reported; read {offsets:?}"
    );
    let expected: Vec<i64> = (0..10).chain(11..20).collect();
    assert_eq!(offsets, expected, "every intact record, none reused");

    // Appends continue after the intact records: offsets 10..20 are never handed out again.
    let producer = client
        .producer(ProducerConfig::default())
        .await
        .expect("producer");
    let meta = producer
        .send_and_wait(ProducerRecord::new("dmg", "next").partition(0))
        .await
        .expect("send");
    assert_eq!(meta.offset, 20);
    producer.close().await;

    // On the wire: the new code, and the offsets in a form clients read back.
    let fetch = FetchRequest {
        topic: "dmg".into(),
        partition: 0,
        offset: 10,
        max_bytes: 1 << 20,
        max_wait_ms: 0,
        min_bytes: 1,
        isolation: Default::default(),
        filter: None,
    };
    let message = expect_code(
        broker.raw().await.send(&fetch, &[]).await,
        ErrorCode::DAMAGED_DATA,
    );
    let wire = WireError::new(ErrorCode::DAMAGED_DATA, message);
    assert_eq!(wire.damaged_offsets(), Some((10, 11)), "{wire}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiver_consume_stops_at_damage_unless_told_to_skip_it() {
    let mut broker = TestBroker::start().await;
    damaged_at_ten(&mut broker).await;
    let ca = broker.dir.path().join("ca.pem");
    std::fs::write(&ca, broker.broker.as_ref().expect("running").cert_pem()).expect("ca");
    let run = |extra: &'static [&'static str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_quiver"));
        cmd.args(["--broker", &broker.url(), "--ca"])
            .arg(&ca)
            .args(["consume", "dmg"])
            .args(extra);
        async move {
            tokio::task::spawn_blocking(move || cmd.output().expect("quiver runs"))
                .await
                .expect("blocking task")
        }
    };
    let stopped = run(&[]).await;
    assert!(!stopped.status.success());
    let stderr = String::from_utf8_lossy(&stopped.stderr);
    assert!(stderr.contains("10..11"), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&stopped.stdout).lines().count(), 10);

    let skipped = run(&["--skip-damaged"]).await;
    let stderr = String::from_utf8_lossy(&skipped.stderr);
    assert!(skipped.status.success(), "{stderr}");
    assert!(stderr.contains("skipped to offset 11"), "{stderr}");
    let stdout = String::from_utf8_lossy(&skipped.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 19, "{stdout}");
    assert!(!lines.contains(&"record-10"));
    assert_eq!(lines[18], "record-19");
}
