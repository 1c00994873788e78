//! Consumer groups against a real broker through the SDK: assignment across members,
//! failover after a crash, committed offsets across a restart, independent groups, idle
//! members, stale generations, and the `quiver group` commands.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use quiver_proto::ErrorCode;
use quiver_proto::api::{CommittedOffset, GroupDescription, OffsetCommitRequest};
use quiver_sdk::{
    Client, ConsumerConfig, OffsetReset, ProducerConfig, ProducerRecord, TopicPartition,
};
use quiver_server::BrokerConfig;
use tokio::sync::watch;

use crate::harness::{TestBroker, eventually};

/// Short group timings so rebalances take milliseconds, not the production seconds.
fn fast_groups(config: &mut BrokerConfig) {
    config.groups.initial_rebalance_delay_ms = 50;
    config.groups.min_session_timeout_ms = 500;
}

/// A member of `group` with a 1.5 s session, so a crashed member is noticed quickly.
pub(crate) fn member_config(group: &str) -> ConsumerConfig {
    ConsumerConfig {
        group_id: Some(group.to_string()),
        auto_offset_reset: OffsetReset::Earliest,
        session_timeout: Duration::from_millis(1500),
        heartbeat_interval: Duration::from_millis(100),
        max_poll_interval: Duration::from_secs(20),
        auto_commit_interval: Duration::from_millis(100),
        max_wait: Duration::from_millis(100),
        ..ConsumerConfig::default()
    }
}

pub(crate) async fn fill(
    client: &Client,
    topic: &str,
    partitions: u32,
    per_partition: u32,
    tag: &str,
) {
    let producer = client
        .producer(ProducerConfig::default())
        .await
        .expect("producer");
    let mut deliveries = Vec::new();
    for p in 0..partitions {
        for i in 0..per_partition {
            let record = ProducerRecord::new(topic, format!("{tag}-{p}-{i}")).partition(p);
            deliveries.push(producer.send(record).await.expect("send"));
        }
    }
    producer.flush().await;
    for d in deliveries {
        d.await.expect("delivered");
    }
    producer.close().await;
}

/// A mutex whose lock cannot fail in these tests (a panicking holder fails the test).
#[derive(Debug, Default)]
struct Mutex<T>(std::sync::Mutex<T>);

impl<T> Mutex<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, T> {
        self.0.lock().expect("lock")
    }
}

/// What one member read: (partition, offset) of each record, in order.
type Seen = Arc<Mutex<Vec<(u32, i64)>>>;

/// A member polling in its own task until `stop` turns true, then closing (commit and
/// leave). Returns the task; abort it to simulate a crash (no leave, no commit).
fn spawn_member(
    client: &Client,
    config: ConsumerConfig,
    topic: &str,
    seen: Seen,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let client = client.clone();
    let topic = topic.to_string();
    tokio::spawn(async move {
        let mut consumer = client.consumer(config).expect("consumer");
        consumer.subscribe([topic]).expect("subscribe");
        while !*stop.borrow() {
            let records = consumer
                .poll(Duration::from_millis(100))
                .await
                .expect("poll");
            seen.lock()
                .extend(records.iter().map(|r| (r.partition, r.offset)));
            if !records.is_empty() {
                // Some work per batch, so rebalances land while records are being read.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        consumer.close().await;
    })
}

async fn describe(client: &Client, group: &str) -> Option<GroupDescription> {
    client.admin().describe_group(group).await.ok()
}

/// The group is stable with `members` members holding these partition counts.
async fn settled(client: &Client, group: &str, members: usize, counts: &[usize]) -> bool {
    let Some(d) = describe(client, group).await else {
        return false;
    };
    let mut got: Vec<usize> = d.members.iter().map(|m| m.assignment.len()).collect();
    got.sort_unstable();
    let mut want = counts.to_vec();
    want.sort_unstable();
    d.state == "Stable" && d.members.len() == members && got == want
}

fn duplicates(all: &[(u32, i64)]) -> Vec<(u32, i64)> {
    let mut count: HashMap<(u32, i64), usize> = HashMap::new();
    for r in all {
        *count.entry(*r).or_default() += 1;
    }
    let mut dups: Vec<_> = count
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(r, _)| r)
        .collect();
    dups.sort_unstable();
    dups
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_split_six_partitions_and_read_everything_once() {
    let broker = TestBroker::start_with(fast_groups).await;
    let client = broker.client().await;
    client
        .admin()
        .create_topic("six", 6, 1, BTreeMap::new())
        .await
        .expect("create");
    fill(&client, "six", 6, 2000, "a").await;

    let (stop_tx, stop) = watch::channel(false);
    let seen: Vec<Seen> = (0..3).map(|_| Seen::default()).collect();
    // Members arrive one by one while the others are reading, so partitions are revoked
    // from readers mid-stream: what they read before giving a partition up must be
    // committed first, or its new owner reads it again.
    let mut tasks = Vec::new();
    for (i, s) in seen.iter().enumerate() {
        let config = ConsumerConfig {
            max_poll_records: 10,
            ..member_config("split")
        };
        tasks.push(spawn_member(
            &client,
            config,
            "six",
            Arc::clone(s),
            stop.clone(),
        ));
        let counts: Vec<usize> = match i {
            0 => vec![6],
            1 => vec![3, 3],
            _ => vec![2, 2, 2],
        };
        eventually(60, "the group settles", || {
            settled(&client, "split", i + 1, &counts)
        })
        .await;
        eventually(60, "the newest member reads", || {
            std::future::ready(!s.lock().is_empty())
        })
        .await;
    }
    let read: usize = seen.iter().map(|s| s.lock().len()).sum();
    assert!(
        read < 6 * 2000,
        "the rebalances happened while records were still unread"
    );
    // Records written while the group is settled are read too.
    fill(&client, "six", 6, 50, "b").await;
    let total = 6 * 2050;
    eventually(60, "every record read", || {
        let n: BTreeSet<(u32, i64)> = seen.iter().flat_map(|s| s.lock().clone()).collect();
        std::future::ready(n.len() == total)
    })
    .await;
    stop_tx.send(true).expect("stop");
    for t in tasks {
        t.await.expect("member ends cleanly");
    }
    let all: Vec<(u32, i64)> = seen.iter().flat_map(|s| s.lock().clone()).collect();
    assert_eq!(
        duplicates(&all),
        vec![],
        "graceful rebalances commit before revoking"
    );
    assert_eq!(all.len(), total);
    // Each member ended with its own two partitions: their reads never overlap.
    let desc = describe(&client, "split")
        .await
        .expect("group kept for its offsets");
    assert!(desc.members.is_empty(), "every member left on close");
    assert!(
        desc.offsets
            .iter()
            .all(|o| o.committed == Some(2050) && o.lag == Some(0)),
        "{desc:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_member_loses_its_partitions_and_only_its_uncommitted_records_repeat() {
    let broker = TestBroker::start_with(fast_groups).await;
    let client = broker.client().await;
    client
        .admin()
        .create_topic("fail", 6, 1, BTreeMap::new())
        .await
        .expect("create");
    fill(&client, "fail", 6, 100, "a").await;

    let (stop_tx, stop) = watch::channel(false);
    let survivors: Vec<Seen> = (0..2).map(|_| Seen::default()).collect();
    let tasks: Vec<_> = survivors
        .iter()
        .map(|s| {
            spawn_member(
                &client,
                member_config("failover"),
                "fail",
                Arc::clone(s),
                stop.clone(),
            )
        })
        .collect();

    // The victim commits by hand after each batch, and crashes holding one batch it
    // read but never committed: exactly the records that may be read twice.
    let victim_seen = Seen::default();
    let window: Seen = Seen::default();
    let (crash_tx, mut crash) = watch::channel(false);
    let victim = {
        let client = client.clone();
        let (seen, window) = (Arc::clone(&victim_seen), Arc::clone(&window));
        tokio::spawn(async move {
            let mut consumer = client
                .consumer(ConsumerConfig {
                    enable_auto_commit: false,
                    ..member_config("failover")
                })
                .expect("consumer");
            consumer.subscribe(["fail"]).expect("subscribe");
            loop {
                let crashing = *crash.borrow_and_update();
                let records = consumer
                    .poll(Duration::from_millis(100))
                    .await
                    .expect("poll");
                let batch: Vec<(u32, i64)> =
                    records.iter().map(|r| (r.partition, r.offset)).collect();
                seen.lock().extend(&batch);
                if crashing && !batch.is_empty() {
                    window.lock().extend(&batch);
                    // Dropped without close: no commit, no leave; the heartbeat stops.
                    drop(consumer);
                    return;
                }
                consumer.commit().await.expect("commit");
            }
        })
    };
    eventually(60, "three members with two partitions each", || {
        settled(&client, "failover", 3, &[2, 2, 2])
    })
    .await;
    eventually(60, "the first records read", || {
        let n: BTreeSet<(u32, i64)> = survivors
            .iter()
            .chain([&victim_seen])
            .flat_map(|s| s.lock().clone())
            .collect();
        std::future::ready(n.len() == 600)
    })
    .await;
    crash_tx.send(true).expect("crash");
    fill(&client, "fail", 6, 100, "b").await;
    victim.await.expect("victim task");
    assert!(
        !window.lock().is_empty(),
        "the victim crashed holding records"
    );

    eventually(60, "the survivors own all six partitions", || {
        settled(&client, "failover", 2, &[3, 3])
    })
    .await;
    eventually(60, "every record read", || {
        let n: BTreeSet<(u32, i64)> = survivors
            .iter()
            .chain([&victim_seen])
            .flat_map(|s| s.lock().clone())
            .collect();
        std::future::ready(n.len() == 1200)
    })
    .await;
    stop_tx.send(true).expect("stop");
    for t in tasks {
        t.await.expect("member ends cleanly");
    }
    let all: Vec<(u32, i64)> = survivors
        .iter()
        .chain([&victim_seen])
        .flat_map(|s| s.lock().clone())
        .collect();
    let dups = duplicates(&all);
    let window: BTreeSet<(u32, i64)> = window.lock().iter().copied().collect();
    assert!(
        dups.len() <= window.len(),
        "{} duplicates, {} uncommitted",
        dups.len(),
        window.len()
    );
    assert!(
        dups.iter().all(|d| window.contains(d)),
        "a committed record was read twice: {dups:?}"
    );
    // The window's records went to the new owners, from the victim's last commit.
    assert_eq!(
        dups.len(),
        window.len(),
        "the new owners start at the victim's last commit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_survive_a_restart_and_a_resumed_consumer_continues_there() {
    let mut broker = TestBroker::start_with(fast_groups).await;
    let client = broker.client().await;
    client
        .admin()
        .create_topic("durable", 2, 1, BTreeMap::new())
        .await
        .expect("create");
    fill(&client, "durable", 2, 100, "a").await;
    let t0 = TopicPartition::new("durable", 0);
    let t1 = TopicPartition::new("durable", 1);
    {
        let mut consumer = client
            .consumer(ConsumerConfig {
                enable_auto_commit: false,
                ..member_config("resume")
            })
            .expect("consumer");
        consumer.subscribe(["durable"]).expect("subscribe");
        let mut read = 0;
        while read < 200 {
            read += consumer
                .poll(Duration::from_millis(200))
                .await
                .expect("poll")
                .len();
        }
        // Only part of it counts as processed.
        consumer
            .commit_offsets(BTreeMap::from([(t0.clone(), 60), (t1.clone(), 17)]))
            .await
            .expect("commit");
        assert_eq!(consumer.committed(&t0).await.expect("committed"), Some(60));
        consumer.close().await;
    }
    drop(client);
    broker.restart().await;
    let client = broker.client().await;
    let offsets = client
        .admin()
        .group_offsets("resume")
        .await
        .expect("offsets");
    let got: Vec<(u32, i64)> = offsets
        .iter()
        .map(|c| (c.partition.partition, c.offset))
        .collect();
    assert_eq!(got, vec![(0, 60), (1, 17)]);

    let mut consumer = client.consumer(member_config("resume")).expect("consumer");
    consumer.subscribe(["durable"]).expect("subscribe");
    let mut first: BTreeMap<u32, i64> = BTreeMap::new();
    let mut count = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while count < (100 - 60) + (100 - 17) {
        assert!(tokio::time::Instant::now() < deadline, "read {count}");
        for r in consumer
            .poll(Duration::from_millis(200))
            .await
            .expect("poll")
        {
            first.entry(r.partition).or_insert(r.offset);
            count += 1;
        }
    }
    assert_eq!(first, BTreeMap::from([(0, 60), (1, 17)]));
    assert_eq!(count, 40 + 83, "nothing before the commits is read again");
    consumer.close().await;
    let offsets = client
        .admin()
        .group_offsets("resume")
        .await
        .expect("offsets");
    assert!(
        offsets.iter().all(|c| c.offset == 100),
        "close committed: {offsets:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_groups_read_the_same_topic_independently() {
    let broker = TestBroker::start_with(fast_groups).await;
    let client = broker.client().await;
    client
        .admin()
        .create_topic("shared", 3, 1, BTreeMap::new())
        .await
        .expect("create");
    fill(&client, "shared", 3, 50, "a").await;
    let (stop_tx, stop) = watch::channel(false);
    let (one, two) = (Seen::default(), Seen::default());
    let tasks = [
        spawn_member(
            &client,
            member_config("first"),
            "shared",
            Arc::clone(&one),
            stop.clone(),
        ),
        spawn_member(
            &client,
            member_config("second"),
            "shared",
            Arc::clone(&two),
            stop.clone(),
        ),
    ];
    eventually(60, "both groups read everything", || {
        std::future::ready(one.lock().len() >= 150 && two.lock().len() >= 150)
    })
    .await;
    stop_tx.send(true).expect("stop");
    for t in tasks {
        t.await.expect("member ends");
    }
    for seen in [&one, &two] {
        let set: BTreeSet<(u32, i64)> = seen.lock().iter().copied().collect();
        assert_eq!(
            (set.len(), seen.lock().len()),
            (150, 150),
            "each group reads each record once"
        );
    }
    let groups: Vec<String> = client
        .admin()
        .list_groups()
        .await
        .expect("list")
        .into_iter()
        .map(|g| g.group_id)
        .collect();
    assert!(
        groups.contains(&"first".to_string()) && groups.contains(&"second".to_string()),
        "{groups:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fourth_member_on_three_partitions_idles_until_one_leaves() {
    let broker = TestBroker::start_with(fast_groups).await;
    let client = broker.client().await;
    client
        .admin()
        .create_topic("three", 3, 1, BTreeMap::new())
        .await
        .expect("create");
    let stops: Vec<_> = (0..4).map(|_| watch::channel(false)).collect();
    let seen: Vec<Seen> = (0..4).map(|_| Seen::default()).collect();
    let mut tasks: Vec<_> = (0..4)
        .map(|i| {
            spawn_member(
                &client,
                member_config("idle"),
                "three",
                Arc::clone(&seen[i]),
                stops[i].1.clone(),
            )
        })
        .collect();
    eventually(60, "four members, one idle", || {
        settled(&client, "idle", 4, &[0, 1, 1, 1])
    })
    .await;
    let desc = describe(&client, "idle").await.expect("group");
    // Stop a member that holds a partition; the idle one must take it over.
    let idle_id = desc
        .members
        .iter()
        .find(|m| m.assignment.is_empty())
        .expect("idle")
        .member_id
        .clone();
    // Members are numbered by join order in their ids only loosely, so find the task by
    // what it reads: write to each partition and see who reads it.
    fill(&client, "three", 3, 10, "a").await;
    eventually(60, "every partition read", || {
        let parts: BTreeSet<u32> = seen
            .iter()
            .flat_map(|s| s.lock().iter().map(|r| r.0).collect::<Vec<_>>())
            .collect();
        std::future::ready(parts.len() == 3)
    })
    .await;
    let leaver = (0..4)
        .find(|i| !seen[*i].lock().is_empty())
        .expect("a reader");
    let idle = (0..4)
        .find(|i| seen[*i].lock().is_empty())
        .expect("an idle member");
    stops[leaver].0.send(true).expect("stop");
    tasks.remove(leaver).await.expect("leaver closes");
    eventually(60, "three members with one partition each", || {
        settled(&client, "idle", 3, &[1, 1, 1])
    })
    .await;
    let desc = describe(&client, "idle").await.expect("group");
    let former = desc
        .members
        .iter()
        .find(|m| m.member_id == idle_id)
        .expect("idle member stayed");
    assert_eq!(
        former.assignment.len(),
        1,
        "the idle member took over: {desc:?}"
    );
    fill(&client, "three", 3, 10, "b").await;
    eventually(60, "the former idle member reads", || {
        std::future::ready(!seen[idle].lock().is_empty())
    })
    .await;
    for (i, (tx, _)) in stops.iter().enumerate() {
        if i != leaver {
            tx.send(true).expect("stop");
        }
    }
    for t in tasks {
        t.await.expect("member ends");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_from_a_stale_generation_is_refused() {
    let broker = TestBroker::start_with(fast_groups).await;
    let client = broker.client().await;
    client
        .admin()
        .create_topic("gen", 2, 1, BTreeMap::new())
        .await
        .expect("create");
    let mut first = client.consumer(member_config("gens")).expect("consumer");
    first.subscribe(["gen"]).expect("subscribe");
    // group_metadata is set by the poll that joins; poll until it is.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while first.group_metadata().is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "first member never joined"
        );
        first.poll(Duration::from_millis(50)).await.expect("poll");
    }
    let old = first.group_metadata().expect("joined");

    let (stop_tx, stop) = watch::channel(false);
    let second = spawn_member(
        &client,
        member_config("gens"),
        "gen",
        Seen::default(),
        stop.clone(),
    );
    // Keep the first member polling so the group can rebalance around it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        first.poll(Duration::from_millis(50)).await.expect("poll");
        let now = first.group_metadata();
        if now.as_ref().is_some_and(|m| m.generation != old.generation)
            && settled(&client, "gens", 2, &[1, 1]).await
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no rebalance");
    }
    let stale = OffsetCommitRequest {
        group_id: "gens".into(),
        member_id: Some(old.member_id.clone()),
        generation: old.generation,
        offsets: vec![CommittedOffset {
            partition: TopicPartition::new("gen", 0),
            offset: 0,
            metadata: String::new(),
        }],
    };
    let err = client
        .call(&stale, bytes::Bytes::new())
        .await
        .expect_err("stale generation");
    assert_eq!(err.code(), Some(ErrorCode::ILLEGAL_GENERATION), "{err}");
    stop_tx.send(true).expect("stop");
    second.await.expect("second ends");
    first.close().await;
}

/// Runs the `quiver` binary against the test broker and returns (success, stdout, stderr).
async fn quiver(
    broker: &TestBroker,
    ca: &std::path::Path,
    args: &[&str],
) -> (bool, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_quiver"));
    cmd.args(["--broker", &broker.url(), "--ca"])
        .arg(ca)
        .args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("quiver runs"))
        .await
        .expect("blocking task");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_consumes_with_a_group_describes_resets_and_deletes_it() {
    let broker = TestBroker::start_with(fast_groups).await;
    let ca = broker.dir.path().join("ca.pem");
    std::fs::write(&ca, broker.broker.as_ref().expect("running").cert_pem()).expect("write ca");
    let client = broker.client().await;
    client
        .admin()
        .create_topic("cli-t", 2, 1, BTreeMap::new())
        .await
        .expect("create");
    fill(&client, "cli-t", 2, 3, "a").await;

    // `consume --group` reads everything once, commits it and leaves: a second run
    // finds nothing new, a third only what was written since.
    let (ok, out, err) = quiver(&broker, &ca, &["consume", "cli-t", "--group", "cli-g"]).await;
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 6, "{out}");
    let (ok, out, err) = quiver(&broker, &ca, &["consume", "cli-t", "--group", "cli-g"]).await;
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 0, "{out}");
    fill(&client, "cli-t", 2, 1, "b").await;
    let (ok, out, err) = quiver(&broker, &ca, &["consume", "cli-t", "--group", "cli-g"]).await;
    assert!(ok, "{err}");
    let mut got: Vec<&str> = out.lines().collect();
    got.sort_unstable();
    assert_eq!(got, ["b-0-0", "b-1-0"]);

    // While a member is active: describe shows it; reset and delete are refused clearly.
    let (stop_tx, stop) = watch::channel(false);
    let member = spawn_member(
        &client,
        member_config("cli-g"),
        "cli-t",
        Seen::default(),
        stop.clone(),
    );
    eventually(60, "the member owns both partitions", || {
        settled(&client, "cli-g", 1, &[2])
    })
    .await;
    let (ok, out, err) = quiver(&broker, &ca, &["group", "describe", "cli-g"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("state Stable"), "{out}");
    assert!(out.contains("quiver-sdk"), "the member's client id: {out}");
    let rows: Vec<&str> = out.lines().filter(|l| l.starts_with("cli-t")).collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert!(
        rows.iter()
            .all(|r| r.split_whitespace().collect::<Vec<_>>()[3..] == ["4", "4", "0"]),
        "committed, end, lag: {out}"
    );
    let (ok, _, err) = quiver(
        &broker,
        &ca,
        &[
            "group",
            "reset-offsets",
            "cli-g",
            "--topic",
            "cli-t",
            "--to",
            "earliest",
        ],
    )
    .await;
    assert!(!ok, "a reset while the group is active must fail");
    assert!(err.contains("active member"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let (ok, _, err) = quiver(&broker, &ca, &["group", "delete", "cli-g"]).await;
    assert!(!ok && err.contains("active member"), "{err}");

    stop_tx.send(true).expect("stop");
    member.await.expect("member closes");
    let (ok, out, err) = quiver(
        &broker,
        &ca,
        &[
            "group",
            "reset-offsets",
            "cli-g",
            "--topic",
            "cli-t",
            "--to",
            "1",
        ],
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("cli-t")).count(),
        2,
        "{out}"
    );
    let offsets = client
        .admin()
        .group_offsets("cli-g")
        .await
        .expect("offsets");
    assert!(offsets.iter().all(|c| c.offset == 1), "{offsets:?}");
    let (ok, out, _) = quiver(&broker, &ca, &["group", "list"]).await;
    assert!(ok && out.contains("cli-g"), "{out}");
    let (ok, out, err) = quiver(&broker, &ca, &["group", "delete", "cli-g"]).await;
    assert!(ok, "{err}");
    assert!(out.contains("deleted group cli-g"), "{out}");
    let (ok, out, _) = quiver(&broker, &ca, &["group", "list"]).await;
    assert!(ok && !out.contains("cli-g"), "{out}");
    let (ok, _, err) = quiver(&broker, &ca, &["group", "describe", "cli-g"]).await;
    assert!(!ok && err.contains("UNKNOWN_GROUP"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_committed_before_a_sigkill_are_there_after_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let broker = crate::harness::ChildBroker::spawn(&data, &[]);
    let client = broker.client().await;
    client
        .admin()
        .create_topic("killed", 2, 1, BTreeMap::new())
        .await
        .expect("create");
    fill(&client, "killed", 2, 10, "a").await;
    // A consumer outside any generation (assigned partitions) commits as an outsider.
    let mut consumer = client
        .consumer(ConsumerConfig {
            group_id: Some("survivor".into()),
            ..ConsumerConfig::default()
        })
        .expect("consumer");
    let (t0, t1) = (
        TopicPartition::new("killed", 0),
        TopicPartition::new("killed", 1),
    );
    consumer.assign(vec![t0.clone(), t1.clone()]);
    for round in 1..=5 {
        consumer
            .commit_offsets(BTreeMap::from([
                (t0.clone(), round),
                (t1.clone(), 2 * round),
            ]))
            .await
            .expect("commit");
    }
    drop(consumer);
    drop(client);
    broker.kill();

    let broker = crate::harness::ChildBroker::spawn(&data, &[]);
    let client = broker.client().await;
    let offsets = client
        .admin()
        .group_offsets("survivor")
        .await
        .expect("offsets");
    let got: Vec<(u32, i64)> = offsets
        .iter()
        .map(|c| (c.partition.partition, c.offset))
        .collect();
    assert_eq!(
        got,
        vec![(0, 5), (1, 10)],
        "the latest acknowledged commit of each partition"
    );
    let topics = client.admin().list_topics().await.expect("topics");
    let internal = topics
        .iter()
        .find(|t| t.name == "__consumer_offsets")
        .expect("offsets topic");
    assert!(internal.internal);
    let err = client
        .admin()
        .delete_topic("__consumer_offsets")
        .await
        .expect_err("internal");
    assert_eq!(err.code(), Some(ErrorCode::INVALID_REQUEST), "{err}");
}
