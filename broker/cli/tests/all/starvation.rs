//! No client can starve the others: stalled giant frames, connection hogs and clients
//! over their byte-rate quotas against a real broker.

use std::time::{Duration, Instant};

use bytes::Bytes;
use quinn::{RecvStream, SendStream};
use quiver_proto::ErrorCode;
use quiver_proto::api::{ApiKey, MetadataRequest};
use quiver_proto::frame;
use quiver_sdk::{Client, ProducerConfig, ProducerRecord};
use quiver_server::BrokerConfig;

use crate::data_path::read_all;
use crate::harness::{Answer, RawConnection, TestBroker, eventually};

const MIB: u32 = 1 << 20;

/// Opens `n` streams that each declare a frame of `declared` bytes for `api`, send 16
/// bytes of it and then nothing. The streams are returned open: dropping a send half
/// would finish its stream, which is not a stall.
async fn stall(
    raw: &RawConnection,
    n: usize,
    declared: u32,
    api: ApiKey,
) -> Vec<(SendStream, RecvStream)> {
    let mut streams = Vec::with_capacity(n);
    for _ in 0..n {
        let (mut send, recv) = raw.conn.open_bi().await.expect("open stream");
        let mut head = declared.to_be_bytes().to_vec();
        head.extend_from_slice(&api.0.to_be_bytes());
        head.extend_from_slice(&[0u8; 14]);
        send.write_all(&head).await.expect("write the first bytes");
        streams.push((send, recv));
    }
    // Let the broker take every stream in before the well-behaved client comes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    streams
}

/// A new client connects, creates nothing, and produces one record to `topic`;
/// panics unless it is acknowledged within `secs` seconds.
async fn produce_one_within(broker: &TestBroker, topic: &str, secs: u64) {
    let produced = tokio::time::timeout(Duration::from_secs(secs), async {
        let client = broker.client().await;
        let producer = client
            .producer(ProducerConfig::default())
            .await
            .expect("producer");
        let delivery = producer
            .send(ProducerRecord::new(
                topic,
                Bytes::from_static(b"still served"),
            ))
            .await
            .expect("send");
        delivery.await.expect("acknowledged")
    })
    .await;
    assert!(
        produced.is_ok(),
        "a small produce from another client was not served within {secs} s"
    );
}

async fn create_topic(broker: &TestBroker, topic: &str) {
    let client = broker.client().await;
    client
        .admin()
        .create_topic(topic, 1, 1, Default::default())
        .await
        .expect("create topic");
    client.close();
}

/// Reads the one answer frame of a stream.
async fn answer(recv: &mut RecvStream, secs: u64) -> Answer {
    let frame = tokio::time::timeout(
        Duration::from_secs(secs),
        frame::io::read_frame(recv, frame::DEFAULT_MAX_FRAME),
    )
    .await
    .unwrap_or_else(|_| panic!("no answer within {secs} s"))
    .expect("a readable frame")
    .expect("a frame, not an empty stream");
    let code = ErrorCode(u16::from_be_bytes([frame[0], frame[1]]));
    if code.is_ok() {
        Answer::Ok(frame)
    } else {
        let body_len = u32::from_be_bytes([frame[2], frame[3], frame[4], frame[5]]) as usize;
        let text = String::from_utf8_lossy(&frame[6..6 + body_len]).into_owned();
        Answer::Err(code, text)
    }
}

/// A read deadline long enough that only the reservation scheme can save the others.
fn patient(c: &mut BrokerConfig) {
    c.limits.request_read_timeout_ms = 120_000;
}

fn quick_deadline(c: &mut BrokerConfig) {
    c.limits.request_read_timeout_ms = 1_000;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_stalled_16_mib_produce_frames_do_not_hold_up_another_client() {
    let broker = TestBroker::start_with(patient).await;
    create_topic(&broker, "served").await;
    let hog = broker.raw().await;
    // 40 × 16 MiB is more than the broker's whole in-flight budget (512 MiB).
    let _stalled = stall(&hog, 40, 16 * MIB, ApiKey::PRODUCE).await;
    produce_one_within(&broker, "served", 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_stalled_64_mib_plugin_uploads_do_not_hold_up_another_client() {
    let broker = TestBroker::start_with(patient).await;
    create_topic(&broker, "served").await;
    let hog = broker.raw().await;
    let _stalled = stall(&hog, 8, 64 * MIB, ApiKey::PLUGIN_ADD).await;
    produce_one_within(&broker, "served", 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_frame_is_answered_request_timed_out_by_its_deadline() {
    let broker = TestBroker::start_with(quick_deadline).await;
    create_topic(&broker, "served").await;
    let hog = broker.raw().await;
    let mut stalled = stall(&hog, 40, 16 * MIB, ApiKey::PRODUCE).await;
    let mut uploads = stall(&hog, 8, 64 * MIB, ApiKey::PLUGIN_ADD).await;
    // The deadline is one second; twenty is a safety net, not a timing assertion.
    for (_send, recv) in stalled.iter_mut().chain(uploads.iter_mut()) {
        match answer(recv, 20).await {
            Answer::Err(code, message) => {
                assert_eq!(code, ErrorCode::REQUEST_TIMED_OUT, "{message}");
                assert!(message.contains("request_read_timeout_ms"), "{message}");
            }
            Answer::Ok(_) => panic!("a stalled frame was answered with success"),
        }
    }
    // The connection is still usable, and so is the broker.
    let ok = hog.send(&MetadataRequest { topics: None }, &[]).await;
    assert!(matches!(ok, Answer::Ok(_)), "{ok:?}");
    produce_one_within(&broker, "served", 10).await;
}

fn four_per_client(c: &mut BrokerConfig) {
    c.limits.max_connections_per_client = 4;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_past_its_connection_limit_is_refused_and_the_others_are_served() {
    let broker = TestBroker::start_with(four_per_client).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(broker.raw().await);
    }
    let refused = broker.try_raw().await;
    assert!(
        refused.is_err(),
        "a fifth connection from one address was let in"
    );
    // The client's existing connections are still served.
    for raw in &held {
        let ok = raw.send(&MetadataRequest { topics: None }, &[]).await;
        assert!(matches!(ok, Answer::Ok(_)), "{ok:?}");
    }
    // A closed connection gives its slot back.
    let gone = held.pop().expect("a connection");
    gone.conn.close(0u32.into(), b"done");
    drop(gone);
    eventually(10, "a freed slot to be usable", || async {
        broker.try_raw().await.is_ok()
    })
    .await;
}

fn one_mib_produce_quota(c: &mut BrokerConfig) {
    c.limits.produce_bytes_per_sec_per_client = u64::from(MIB);
}

fn one_mib_fetch_quota(c: &mut BrokerConfig) {
    c.limits.fetch_bytes_per_sec_per_client = u64::from(MIB);
}

const RECORDS: usize = 64;
const RECORD_BYTES: usize = 64 * 1024;

/// Produces 4 MiB (64 records of 64 KiB) and returns how long until all were acknowledged.
async fn produce_four_mib(client: &Client, topic: &str) -> Duration {
    let producer = client
        .producer(ProducerConfig::default())
        .await
        .expect("producer");
    let started = Instant::now();
    let mut deliveries = Vec::new();
    for i in 0..RECORDS {
        let value = Bytes::from(vec![i as u8; RECORD_BYTES]);
        deliveries.push(
            producer
                .send(ProducerRecord::new(topic, value))
                .await
                .expect("send"),
        );
    }
    for d in deliveries {
        d.await.expect("every record is acknowledged, none dropped");
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_produce_quota_is_slowed_down_not_refused() {
    let broker = TestBroker::start_with(one_mib_produce_quota).await;
    let client = broker.client().await;
    client
        .admin()
        .create_topic("quota", 1, 1, Default::default())
        .await
        .expect("create");
    let took = produce_four_mib(&client, "quota").await;
    // 4 MiB at 1 MiB/s with a one-second burst takes about three seconds.
    assert!(took >= Duration::from_secs(2), "4 MiB took only {took:?}");
    let records = read_all(&client, "quota", 1, RECORDS).await;
    assert_eq!(records.len(), RECORDS);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.value.as_deref().map(<[u8]>::len), Some(RECORD_BYTES));
        assert_eq!(r.offset, i as i64);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_fetch_quota_is_slowed_down_not_refused() {
    let broker = TestBroker::start_with(one_mib_fetch_quota).await;
    let client = broker.client().await;
    client
        .admin()
        .create_topic("quota", 1, 1, Default::default())
        .await
        .expect("create");
    produce_four_mib(&client, "quota").await;
    let started = Instant::now();
    let records = read_all(&client, "quota", 1, RECORDS).await;
    let took = started.elapsed();
    assert_eq!(records.len(), RECORDS);
    assert!(
        took >= Duration::from_secs(2),
        "4 MiB were read in {took:?}"
    );
}

#[test]
fn bench_produce_runs_beside_a_stalling_client() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["bench", "produce", "--records", "20000", "--json"])
        .args(["--with-stalling-client", "8"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run quiver bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("\"stalling_streams\":8"), "{stdout}");
}
