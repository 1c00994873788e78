//! A broker restart is seen by clients at once: the restarted broker answers packets of
//! the old connection with a QUIC stateless reset its clients recognise (its reset key
//! is kept in the data dir), and the SDK reconnects and retries.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use quiver_sdk::{Acks, ProducerConfig, ProducerRecord};

use crate::harness::ChildBroker;

/// Far above what a recognised reset takes (well under a second) and far below the 30 s
/// idle timeout a client waited for before: a safety net that tells the two apart, not
/// a measurement.
const GENEROUS: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_is_acknowledged_again_within_seconds_of_a_restart_on_the_same_port() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let broker = ChildBroker::spawn(&data, &[]);
    let listen = broker
        .url
        .strip_prefix("quic://")
        .expect("a quic:// URL")
        .to_string();
    let client = broker.client().await;
    client
        .admin()
        .create_topic("restart", 1, 1, BTreeMap::new())
        .await
        .expect("create");
    let producer = client
        .producer(ProducerConfig {
            acks: Acks::Leader,
            linger: Duration::from_millis(1),
            ..ProducerConfig::default()
        })
        .await
        .expect("producer");
    let before = producer
        .send_and_wait(ProducerRecord::new("restart", "before"))
        .await
        .expect("acknowledged before the restart");

    broker.kill();
    let restarted = ChildBroker::spawn_on(&data, &listen, &[]);
    let serving = Instant::now();
    let after = tokio::time::timeout(
        Duration::from_secs(60),
        producer.send_and_wait(ProducerRecord::new("restart", "after")),
    )
    .await
    .expect("an acknowledgement at all")
    .expect("acknowledged after the restart");
    let waited = serving.elapsed();

    assert_eq!(after.partition, before.partition);
    assert_eq!(after.offset, before.offset + 1, "appended after the first");
    assert!(
        waited < GENEROUS,
        "the first acknowledgement after the restart took {waited:?}: the client did not see \
         its old connection reset and waited for the idle timeout"
    );
    drop(restarted);
}
