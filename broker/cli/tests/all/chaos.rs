//! Fault injection: three `quiver serve` children under two idempotent acks=all
//! producers and a consumer group of two, while a seeded schedule breaks one broker at a
//! time:
//!
//! - SIGKILL and restart, or SIGSTOP and SIGCONT (a broker that freezes, then wakes up
//!   believing it still leads);
//! - network partitions, through the UDP relay every inter-broker packet passes
//!   (`relay.rs`): a broker cut off from the others both ways (a minority of one
//!   against a majority of two), the controller cut off (leader isolation: it still
//!   hears its clients), or a broker that can send but not receive;
//! - reassignments that reorder a partition's replicas, moving its leadership under
//!   load;
//! - once per run, a broker added and removed under load: it joins as an observer, a
//!   partition moves onto it, then it is drained (`quiver cluster drain`) and removed
//!   (`quiver cluster remove`).
//!
//! Then the cluster is healed and checked:
//!
//! - every acknowledged record is in the log at the offset it was acknowledged with, and
//!   the group read every one of them;
//! - no record is stored twice (the producers are idempotent and retry across failovers);
//! - every replica holds the same offset → record mapping;
//! - no consumer saw a partition's offsets go backwards within an assignment;
//! - the group's committed offsets never went backwards.
//!
//! `cargo test -p quiver-cli --test all chaos` runs a short schedule (20 s of faults,
//! seed 1). A long run is one command (seed and length from the environment; the seed
//! is printed, so a failing schedule can be run again):
//!
//! ```sh
//! QUIVER_CHAOS_SECS=900 QUIVER_CHAOS_SEED=$RANDOM \
//!     cargo test --release -p quiver-cli --test all chaos -- --nocapture
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use quiver_sdk::{
    Client, Consumer, ProducerConfig, ProducerRecord, RebalanceListener, TopicPartition,
};
use rand::{Rng, SeedableRng};
use tokio_util::sync::CancellationToken;

use crate::cluster::Cluster;
use crate::groups::member_config;
use crate::harness::consumer_from_start;

const TOPIC: &str = "chaos";
const PARTITIONS: u32 = 3;
const GROUP: &str = "chaos-group";

/// What the workload saw, for the checks at the end.
#[derive(Debug, Default)]
struct Journal {
    /// Acknowledged records: partition, offset, value.
    acked: Vec<(u32, i64, String)>,
    /// Sends that failed for good (allowed; an unacknowledged record promises nothing).
    failed: u64,
    /// Values the group's members read.
    consumed: BTreeSet<String>,
    /// Broken invariants, in words.
    violations: Vec<String>,
}

impl Journal {
    /// Counts a send that failed for good. A failure may be allowed, but an idempotent
    /// producer that stops (its retry refused as out of order, or any fatal error) is a
    /// broken promise: a retry after a failover must be recognised.
    fn send_failed(&mut self, value: &str, what: &str, e: &quiver_sdk::Error) {
        eprintln!("chaos: {value} {what}: {e}");
        self.failed += 1;
        let stopped = matches!(e, quiver_sdk::Error::ProducerFatal(_))
            || e.code() == Some(quiver_proto::ErrorCode::OUT_OF_ORDER_SEQUENCE);
        if stopped
            && self
                .violations
                .iter()
                .all(|v| !v.starts_with("a producer stopped"))
        {
            self.violations
                .push(format!("a producer stopped at {value}: {e}"));
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Shared(Arc<Mutex<Journal>>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Journal> {
        self.0
            .lock()
            .expect("a task panicked while holding the journal")
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Sends `tag-N` to partition N % 3 about 200 times a second until `stop`, then waits
/// for every delivery.
async fn produce(client: Client, tag: &'static str, journal: Shared, stop: CancellationToken) {
    let producer = client
        .producer(ProducerConfig {
            delivery_timeout: Duration::from_secs(120),
            request_timeout: Duration::from_secs(5),
            ..ProducerConfig::default()
        })
        .await
        .expect("producer");
    let mut deliveries = Vec::new();
    let mut n = 0u64;
    while !stop.is_cancelled() {
        let value = format!("{tag}-{n:07}");
        let record = ProducerRecord::new(TOPIC, value.clone()).partition((n % 3) as u32);
        n += 1;
        match producer.send(record).await {
            Ok(delivery) => {
                let journal = journal.clone();
                deliveries.push(tokio::spawn(async move {
                    match delivery.await {
                        Ok(meta) => journal
                            .lock()
                            .acked
                            .push((meta.partition, meta.offset, value)),
                        Err(e) => journal.lock().send_failed(&value, "not acknowledged", &e),
                    }
                }));
            }
            Err(e) => journal.lock().send_failed(&value, "not sent", &e),
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    producer.flush().await;
    for d in deliveries {
        d.await.expect("delivery task");
    }
    producer.close().await;
}

/// Forgets the last offset seen of partitions that change hands: a new assignment may
/// start again from the committed offset.
struct Reassigned(Arc<Mutex<HashMap<u32, i64>>>);

impl Reassigned {
    fn forget(&self, partitions: &[TopicPartition]) {
        let mut last = self.0.lock().expect("positions");
        for tp in partitions {
            last.remove(&tp.partition);
        }
    }
}

impl RebalanceListener for Reassigned {
    fn on_assigned(&mut self, partitions: &[TopicPartition]) {
        self.forget(partitions);
    }
    fn on_revoked(&mut self, partitions: &[TopicPartition]) {
        self.forget(partitions);
    }
    fn on_lost(&mut self, partitions: &[TopicPartition]) {
        self.forget(partitions);
    }
}

/// A member of the group, reading until `stop` and checking that offsets only move on.
async fn consume(client: Client, name: &'static str, journal: Shared, stop: CancellationToken) {
    let mut consumer: Consumer = client.consumer(member_config(GROUP)).expect("consumer");
    let last = Arc::new(Mutex::new(HashMap::new()));
    consumer.set_rebalance_listener(Reassigned(Arc::clone(&last)));
    consumer.subscribe([TOPIC]).expect("subscribe");
    while !stop.is_cancelled() {
        match consumer.poll(Duration::from_millis(200)).await {
            Ok(records) => {
                let mut j = journal.lock();
                let mut last = last.lock().expect("positions");
                for r in records {
                    if let Some(before) = last.insert(r.partition, r.offset)
                        && r.offset <= before
                    {
                        j.violations.push(format!(
                            "{name} read {TOPIC}-{} offset {} after offset {before}",
                            r.partition, r.offset
                        ));
                    }
                    let value = r.value.as_deref().unwrap_or_default();
                    j.consumed
                        .insert(String::from_utf8_lossy(value).into_owned());
                }
            }
            Err(e) => {
                eprintln!("chaos: {name} poll: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    consumer.close().await;
}

/// Reads the group's committed offsets every 250 ms, checking that none goes back.
async fn watch_commits(client: Client, journal: Shared, stop: CancellationToken) {
    let admin = client.admin();
    let mut highest: HashMap<u32, i64> = HashMap::new();
    while !stop.is_cancelled() {
        if let Ok(offsets) = admin.group_offsets(GROUP).await {
            for c in offsets.iter().filter(|c| c.partition.topic == TOPIC) {
                let p = c.partition.partition;
                let before = highest.get(&p).copied().unwrap_or(i64::MIN);
                if c.offset < before {
                    journal.lock().violations.push(format!(
                        "the committed offset of {TOPIC}-{p} went from {before} back to {}",
                        c.offset
                    ));
                }
                highest.insert(p, before.max(c.offset));
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Adds an observer broker, moves a partition onto it, then drains and removes it, all
/// under the producers' load; the cluster ends on its three voters as it began.
async fn add_and_remove_a_broker(
    cluster: &mut Cluster,
    admin_client: &Client,
    rng: &mut rand::rngs::StdRng,
    at: f64,
) {
    let id = tokio::task::block_in_place(|| cluster.add_observer());
    let partition = rng.gen_range(0..PARTITIONS);
    let keep = rng.gen_range(1..=3u32);
    let mut target = vec![id];
    target.extend((1..=3).filter(|b| *b != keep));
    eprintln!("chaos: {at:.1}s broker {id} joins; {TOPIC}-{partition} moves to {target:?}");
    let admin = admin_client.admin();
    // Under load a new broker can be fenced for a moment (a late heartbeat); the move
    // is asked until it is taken.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while let Err(e) = admin
        .reassign_partition(TOPIC, partition, target.clone())
        .await
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "moving a partition onto broker {id}: {e}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    loop {
        let done = admin.describe_topic(TOPIC).await.is_ok_and(|d| {
            let p = &d.partitions[partition as usize];
            p.replicas == target && p.in_sync_replicas.len() == target.len()
        });
        if done {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{TOPIC}-{partition} did not move onto broker {id}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let cli = |args: &[&str]| {
        let (ok, text) = cluster.cli(args);
        assert!(ok, "quiver {args:?}: {text}");
    };
    let id_text = id.to_string();
    tokio::task::block_in_place(|| {
        cli(&["cluster", "drain", &id_text, "--timeout", "120"]);
        cli(&["cluster", "remove", &id_text]);
    });
    eprintln!("chaos: broker {id} drained and removed");
    cluster.stop(id);
}

/// Waits until every partition of `topics` has all its replicas in sync.
async fn in_sync(client: &Client, topics: &[&str], secs: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let mut all = true;
        for topic in topics {
            all &= client.admin().describe_topic(topic).await.is_ok_and(|d| {
                d.partitions
                    .iter()
                    .all(|p| p.leader > 0 && p.in_sync_replicas.len() == p.replicas.len())
            });
        }
        if all {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{topics:?} not fully in sync after healing"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every record of one partition as `offset → value`, read by a client.
async fn read_partition(client: &Client, partition: u32, end: i64) -> BTreeMap<i64, String> {
    let mut consumer = consumer_from_start(client, &TopicPartition::new(TOPIC, partition));
    let mut records = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while (records.len() as i64) < end {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{TOPIC}-{partition}: read {} of {end} records",
            records.len()
        );
        for r in consumer
            .poll(Duration::from_millis(200))
            .await
            .unwrap_or_default()
        {
            let value = r.value.as_deref().unwrap_or_default();
            records.insert(r.offset, String::from_utf8_lossy(value).into_owned());
        }
    }
    records
}

/// Every record of one replica's log on disk, as `offset → value`.
fn read_replica(dir: &std::path::Path) -> BTreeMap<i64, String> {
    let log = quiver_storage::PartitionLog::open(dir, quiver_storage::LogConfig::default())
        .unwrap_or_else(|e| panic!("open {}: {e}", dir.display()));
    let mut records = BTreeMap::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let read = log
            .read_with(offset, 1 << 20, quiver_storage::ReadBound::LogEnd)
            .expect("read the replica");
        assert!(read.next_offset > offset, "no progress at {offset}");
        for item in quiver_proto::batch::split(&read.bytes) {
            let (_, batch) = item.expect("a whole batch");
            for r in quiver_proto::batch::decode_records(&batch).expect("records") {
                let value = r.value.as_deref().unwrap_or_default();
                records.insert(r.offset, String::from_utf8_lossy(value).into_owned());
            }
        }
        offset = read.next_offset;
    }
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_survive_a_seeded_schedule_of_faults() {
    let seed = env_u64("QUIVER_CHAOS_SEED", 1);
    let secs = env_u64("QUIVER_CHAOS_SECS", 20);
    eprintln!("chaos: seed {seed}, {secs} s of faults");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut cluster = Cluster::with_relay();
    cluster.start();
    let admin_client = cluster.bootstrap().await;
    let two = BTreeMap::from([("min.insync.replicas".to_string(), "2".to_string())]);
    admin_client
        .admin()
        .create_topic(TOPIC, PARTITIONS, 3, two)
        .await
        .expect("create the topic");

    let journal = Shared::default();
    let stop_producing = CancellationToken::new();
    let stop_consuming = CancellationToken::new();
    let mut producers = Vec::new();
    for tag in ["a", "b"] {
        let client = cluster.bootstrap().await;
        producers.push(tokio::spawn(produce(
            client,
            tag,
            journal.clone(),
            stop_producing.clone(),
        )));
    }
    let mut readers = Vec::new();
    for name in ["c1", "c2"] {
        let client = cluster.bootstrap().await;
        readers.push(tokio::spawn(consume(
            client,
            name,
            journal.clone(),
            stop_consuming.clone(),
        )));
    }
    readers.push(tokio::spawn(watch_commits(
        cluster.bootstrap().await,
        journal.clone(),
        stop_consuming.clone(),
    )));

    // The schedule: one fault at a time. The broker added and removed comes at the
    // third fault, so that every run has one.
    let started = tokio::time::Instant::now();
    let mut faults = 0;
    while started.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(1500..3500))).await;
        let victim = rng.gen_range(1..=3u32);
        let down = Duration::from_millis(rng.gen_range(500..3000));
        let at = started.elapsed().as_secs_f64();
        let kind = if faults == 2 {
            10
        } else {
            rng.gen_range(0..10)
        };
        match kind {
            0 | 1 => {
                eprintln!("chaos: {at:.1}s SIGKILL broker {victim}, restart after {down:?}");
                cluster.kill(victim);
                tokio::time::sleep(down).await;
                tokio::task::block_in_place(|| cluster.start());
            }
            2 | 3 => {
                eprintln!("chaos: {at:.1}s SIGSTOP broker {victim}, SIGCONT after {down:?}");
                cluster.signal(victim, "STOP");
                tokio::time::sleep(down).await;
                cluster.signal(victim, "CONT");
            }
            4 => {
                // A reassignment that makes `victim` the preferred leader of a partition:
                // the replicas switch order once in sync, then the controller moves the
                // leadership there, all under load.
                let partition = rng.gen_range(0..PARTITIONS);
                let mut replicas: Vec<u32> = vec![victim];
                replicas.extend((1..=3).filter(|b| *b != victim));
                eprintln!("chaos: {at:.1}s reassign {TOPIC}-{partition} to {replicas:?}");
                if let Err(e) = admin_client
                    .admin()
                    .reassign_partition(TOPIC, partition, replicas)
                    .await
                {
                    eprintln!("chaos: the reassignment was not started: {e}");
                }
            }
            5..=9 => {
                let relay = cluster.relay.as_ref().expect("a relay");
                let what = match kind {
                    5 | 6 => {
                        relay.isolate(victim);
                        format!("broker {victim} cut off from the others")
                    }
                    7 | 8 => {
                        // The controller, if one is known; else any broker.
                        let controller = admin_client
                            .admin()
                            .cluster_status()
                            .await
                            .ok()
                            .and_then(|s| s.quorum.and_then(|q| q.leader))
                            .unwrap_or(victim);
                        relay.isolate(controller);
                        format!("the controller, broker {controller}, cut off")
                    }
                    _ => {
                        for other in (1..=3).filter(|b| *b != victim) {
                            relay.cut(other, victim);
                        }
                        format!("broker {victim} deaf: it sends but hears no broker")
                    }
                };
                eprintln!("chaos: {at:.1}s {what}, healed after {down:?}");
                tokio::time::sleep(down).await;
                relay.heal();
            }
            _ => add_and_remove_a_broker(&mut cluster, &admin_client, &mut rng, at).await,
        }
        faults += 1;
    }

    // Heal, let the producers finish, and the group read everything acknowledged.
    in_sync(&admin_client, &[TOPIC, "__consumer_offsets"], 60).await;
    stop_producing.cancel();
    for p in producers {
        p.await.expect("producer task");
    }
    let acked: BTreeSet<String> = journal
        .lock()
        .acked
        .iter()
        .map(|(_, _, v)| v.clone())
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !journal.lock().consumed.is_superset(&acked) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the group did not read {} acknowledged records",
            acked.difference(&journal.lock().consumed).count()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop_consuming.cancel();
    for r in readers {
        r.await.expect("reader task");
    }

    // Every task has ended: the journal is whole.
    let j = std::mem::take(&mut *journal.lock());
    eprintln!(
        "chaos: {faults} faults; {} records acknowledged, {} failed, {} read by the group",
        j.acked.len(),
        j.failed,
        j.consumed.len()
    );
    assert!(j.violations.is_empty(), "{:#?}", j.violations);
    assert!(
        j.acked.len() > 1000,
        "too little got through to prove anything: {}",
        j.acked.len()
    );

    // The log as clients read it: every acknowledged record where it was acknowledged,
    // and no record twice.
    let described = admin_client
        .admin()
        .describe_topic(TOPIC)
        .await
        .expect("describe");
    let mut reference = Vec::new();
    for p in &described.partitions {
        assert_eq!(p.log_start_offset, 0);
        // The end as the leader has it: a follower that answered the describe learns
        // the last high watermark only with its next fetch.
        let end = admin_client
            .admin()
            .list_offsets(TOPIC, p.partition, quiver_proto::api::OffsetSpec::Latest)
            .await
            .expect("the partition's end")
            .offset
            .expect("an end offset");
        reference.push(read_partition(&admin_client, p.partition, end).await);
    }
    for (partition, offset, value) in &j.acked {
        let stored = reference[*partition as usize].get(offset);
        assert_eq!(
            stored,
            Some(value),
            "{TOPIC}-{partition} offset {offset} was acknowledged as {value}"
        );
    }
    let mut seen = BTreeSet::new();
    for (p, records) in reference.iter().enumerate() {
        for (offset, value) in records {
            assert!(
                seen.insert(value.clone()),
                "{value} is stored twice (again at {TOPIC}-{p} offset {offset})"
            );
        }
    }

    // Every replica holds the same records at the same offsets.
    cluster.stop_all();
    for id in 1..=3 {
        for (p, records) in reference.iter().enumerate() {
            let dir = cluster.data_dir(id).join(format!("{TOPIC}-{p}"));
            assert_eq!(
                &read_replica(&dir),
                records,
                "broker {id}'s replica of {TOPIC}-{p} differs from what clients read"
            );
        }
    }
}
