//! Wasm plugins end to end against a real broker: partitioners route produces, filters
//! shape fetches, compaction policies decide what the cleaner keeps; hot reload under
//! load; misbehaving plugins contained; uploads validated; the registry survives a
//! restart. The plugins are built from source once per test binary by
//! `plugins/build.sh` (Rust always; Python and JavaScript when their toolchains exist).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use quiver_proto::api::{
    FetchRequest, FetchResponse, FilterSpec, PluginAddRequest, PluginOutcome, PluginTestRequest,
};
use quiver_proto::batch;
use quiver_sdk::partitioner::partition_for_key;
use quiver_sdk::{
    Client, ConsumerConfig, ErrorCode, OffsetReset, ProducerConfig, ProducerRecord, TopicPartition,
};
use quiver_server::BrokerConfig;

use crate::data_path::read_all;
use crate::harness::TestBroker;

/// Builds every plugin once per test binary and returns the directory of the `.wasm`
/// files. `QUIVER_PLUGINS_RUST_ONLY` is removed so Python and JavaScript build too.
pub(crate) fn plugin_dir() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .canonicalize()
            .expect("workspace root");
        let status = std::process::Command::new("bash")
            .arg(root.join("plugins/build.sh"))
            .env_remove("QUIVER_PLUGINS_RUST_ONLY")
            .status()
            .expect("run plugins/build.sh");
        assert!(status.success(), "plugins/build.sh failed: {status}");
        root.join("target/plugins/wasm")
    })
}

/// Where `plugins/build.sh` puts the test plugins, apart from the examples.
pub(crate) fn test_plugin_dir() -> PathBuf {
    plugin_dir().with_file_name("test-wasm")
}

/// The component bytes of plugin `name` (an example, or a test plugin: `misbehave`,
/// `forbidden-import`); a plugin that did not build fails the test with the reason to
/// look for, never skips it.
pub(crate) fn plugin(name: &str) -> Bytes {
    let dir = match name {
        "misbehave" | "forbidden-import" => test_plugin_dir(),
        _ => plugin_dir().to_path_buf(),
    };
    let path = dir.join(format!("{name}.wasm"));
    match std::fs::read(&path) {
        Ok(bytes) => Bytes::from(bytes),
        Err(e) => panic!(
            "plugin {name} was not built ({}: {e}); plugins/build.sh printed why \
             (Python plugins need python3 with pip, JavaScript ones node with npm)",
            path.display()
        ),
    }
}

/// A short call deadline and a small memory cap, so a looping or hoarding plugin is
/// stopped after little work. (The Python and JavaScript tests keep the defaults: their
/// interpreters need tens of MiB.)
fn strict_limits(config: &mut BrokerConfig) {
    config.plugins.call_timeout_ms = 300;
    config.plugins.memory_bytes = 32 << 20;
}

fn configs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

fn code_of(err: &quiver_sdk::Error) -> Option<ErrorCode> {
    err.code()
}

/// Produces `records` one request each (so each is its own batch) and returns their
/// partitions and offsets.
async fn send_each(client: &Client, records: Vec<ProducerRecord>) -> Vec<(u32, i64)> {
    let producer = client
        .producer(ProducerConfig {
            batch_size: 1,
            ..ProducerConfig::default()
        })
        .await
        .expect("producer");
    let mut out = Vec::new();
    for r in records {
        let meta = producer.send_and_wait(r).await.expect("send");
        out.push((meta.partition, meta.offset));
    }
    producer.close().await;
    out
}

async fn fetch_filtered(
    client: &Client,
    topic: &str,
    offset: i64,
    max_bytes: u32,
    filter: FilterSpec,
) -> Result<(FetchResponse, Bytes), quiver_sdk::Error> {
    let req = FetchRequest {
        topic: topic.to_string(),
        partition: 0,
        offset,
        max_bytes,
        max_wait_ms: 0,
        min_bytes: 1,
        isolation: Default::default(),
        filter: Some(filter),
    };
    client.call(&req, Bytes::new()).await
}

fn offsets_in(payload: &Bytes) -> Vec<i64> {
    batch::split(payload)
        .flat_map(|p| batch::decode_records(&p.expect("whole batch").1).expect("decodes"))
        .map(|r| r.offset)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_hash_partitioner_routes_like_murmur2_and_bindings_are_checked() {
    let key_hash = plugin("key-hash");
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    let admin = client.admin();
    // Binding what is not registered, or a plugin of the wrong kind, is refused up front.
    let err = admin
        .create_topic("routed", 6, 1, configs(&[("partitioner", "key-hash")]))
        .await
        .expect_err("unknown plugin");
    assert_eq!(code_of(&err), Some(ErrorCode::INVALID_CONFIG), "{err}");
    assert!(err.to_string().contains("key-hash"), "{err}");
    let added = admin.add_plugin("key-hash", key_hash).await.expect("add");
    assert_eq!((added.version, added.kind.as_str()), (1, "partitioner"));
    admin
        .add_plugin("only-red", plugin("header-filter"))
        .await
        .expect("add filter");
    let err = admin
        .create_topic("routed", 6, 1, configs(&[("partitioner", "only-red")]))
        .await
        .expect_err("a filter is not a partitioner");
    assert_eq!(code_of(&err), Some(ErrorCode::INVALID_CONFIG), "{err}");
    assert!(err.to_string().contains("filter"), "{err}");
    let err = admin
        .create_topic("routed", 6, 1, configs(&[("partitioner", "key-hash@7")]))
        .await
        .expect_err("no version 7");
    assert_eq!(code_of(&err), Some(ErrorCode::INVALID_CONFIG), "{err}");

    admin
        .create_topic("routed", 6, 1, configs(&[("partitioner", "key-hash")]))
        .await
        .expect("create");
    let producer = client
        .producer(ProducerConfig::default())
        .await
        .expect("producer");
    let mut deliveries = Vec::new();
    for i in 0..300 {
        let record = ProducerRecord::new("routed", format!("v{i}")).key(format!("user-{}", i % 37));
        deliveries.push(producer.send(record).await.expect("send"));
    }
    for d in deliveries {
        d.await.expect("delivered");
    }
    let records = read_all(&client, "routed", 6, 300).await;
    assert_eq!(records.len(), 300);
    let mut used = std::collections::BTreeSet::new();
    for r in &records {
        let key = r.key.as_deref().expect("keyed");
        assert_eq!(
            r.partition,
            partition_for_key(key, 6),
            "record {:?} routed as murmur2 routes it",
            String::from_utf8_lossy(key)
        );
        used.insert(r.partition);
    }
    assert!(used.len() > 1, "keys spread over partitions: {used:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_router_routes_by_header_and_a_failing_partitioner_stores_nothing() {
    let router = plugin("header-router");
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    let admin = client.admin();
    admin.add_plugin("by-region", router).await.expect("add");
    // Parameters come from the topic's `partitioner.param.*` configs; `init` refusing
    // them (no routes) is a config error at create time.
    let err = admin
        .create_topic(
            "regions",
            4,
            1,
            configs(&[
                ("partitioner", "by-region"),
                ("partitioner.param.header", "region"),
            ]),
        )
        .await
        .expect_err("no routes");
    assert_eq!(code_of(&err), Some(ErrorCode::INVALID_CONFIG), "{err}");
    admin
        .create_topic(
            "regions",
            4,
            1,
            configs(&[
                ("partitioner", "by-region"),
                ("partitioner.param.header", "region"),
                ("partitioner.param.route.eu", "1"),
                ("partitioner.param.route.us", "2"),
                ("partitioner.param.route.apac", "3"),
            ]),
        )
        .await
        .expect("create");
    let regions = ["eu", "us", "apac"];
    let records = (0..30)
        .map(|i| {
            ProducerRecord::new("regions", format!("v{i}"))
                .key(format!("k{i}"))
                .header("region", regions[i % 3])
        })
        .collect();
    let sent = send_each(&client, records).await;
    for (i, (partition, _)) in sent.iter().enumerate() {
        assert_eq!(
            *partition,
            (i % 3) as u32 + 1,
            "record {i} follows its header"
        );
    }
    // No default route: a record without the header fails the whole produce, naming the
    // plugin, and nothing of the request is stored.
    let producer = client
        .producer(ProducerConfig {
            linger: Duration::from_millis(200),
            ..ProducerConfig::default()
        })
        .await
        .expect("producer");
    let good = producer
        .send(ProducerRecord::new("regions", "fine").header("region", "eu"))
        .await
        .expect("queue");
    let bad = producer
        .send(ProducerRecord::new("regions", "lost"))
        .await
        .expect("queue");
    let err = bad.await.expect_err("no route");
    assert_eq!(code_of(&err), Some(ErrorCode::PLUGIN_FAILED), "{err}");
    assert!(err.to_string().contains("by-region"), "{err}");
    let _ = good.await;
    let desc = admin.describe_topic("regions").await.expect("describe");
    let total: i64 = desc.partitions.iter().map(|p| p.high_watermark).sum();
    assert_eq!(total, 30, "the failed produce appended nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_consumption_returns_kept_records_at_their_offsets() {
    let filter = plugin("header-filter");
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    let admin = client.admin();
    admin.add_plugin("by-color", filter).await.expect("add");
    admin
        .create_topic("paint", 1, 1, BTreeMap::new())
        .await
        .expect("create");
    // Several records per batch, compressed, so kept ones are re-encoded; the tail is all
    // blue, so the position must move past records the filter dropped.
    let producer = client
        .producer(ProducerConfig {
            compression: quiver_sdk::Compression::Lz4,
            linger: Duration::from_millis(5),
            ..ProducerConfig::default()
        })
        .await
        .expect("producer");
    let mut deliveries = Vec::new();
    for i in 0..200 {
        let color = if i % 3 == 0 && i < 180 { "red" } else { "blue" };
        let record = ProducerRecord::new("paint", format!("value-{i}"))
            .partition(0)
            .header("color", color);
        deliveries.push(producer.send(record).await.expect("send"));
    }
    for d in deliveries {
        d.await.expect("delivered");
    }
    let spec = FilterSpec {
        name: "by-color".into(),
        version: None,
        params: BTreeMap::from([
            ("header".to_string(), "color".to_string()),
            ("value".to_string(), "red".to_string()),
        ]),
    };
    let mut consumer = client
        .consumer(ConsumerConfig {
            auto_offset_reset: OffsetReset::Earliest,
            filter: Some(spec.clone()),
            ..ConsumerConfig::default()
        })
        .expect("consumer");
    let tp = TopicPartition::new("paint", 0);
    consumer.assign(vec![tp.clone()]);
    consumer
        .seek_to_beginning(std::slice::from_ref(&tp))
        .await
        .expect("seek");
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while consumer.position(&tp).expect("position").unwrap_or(0) < 200 {
        assert!(tokio::time::Instant::now() < deadline, "position stuck");
        for r in consumer
            .poll(Duration::from_millis(300))
            .await
            .expect("poll")
        {
            got.push((
                r.offset,
                String::from_utf8_lossy(&r.value.expect("value")).into_owned(),
            ));
        }
    }
    let expected: Vec<(i64, String)> = (0..180)
        .filter(|i| i % 3 == 0)
        .map(|i| (i, format!("value-{i}")))
        .collect();
    assert_eq!(
        got, expected,
        "exactly the red records, at their original offsets"
    );
    assert_eq!(consumer.position(&tp).expect("position"), Some(200));

    // A fetch of only dropped records answers nothing but moves next_offset past them.
    let (resp, payload) = fetch_filtered(&client, "paint", 181, 1 << 20, spec.clone())
        .await
        .expect("fetch");
    assert!(payload.is_empty());
    assert_eq!(resp.next_offset, 200);

    // PLUGIN_TEST shows the same decisions on the stored records, binding nothing.
    let tested = admin
        .test_plugin(PluginTestRequest {
            name: "by-color".into(),
            version: None,
            topic: "paint".into(),
            partition: 0,
            from_offset: 0,
            count: 10,
            params: spec.params.clone(),
        })
        .await
        .expect("test");
    assert_eq!(tested.kind, "filter");
    let decisions: Vec<(i64, PluginOutcome)> = tested
        .decisions
        .into_iter()
        .map(|d| (d.offset, d.outcome))
        .collect();
    let want: Vec<(i64, PluginOutcome)> = (0..10)
        .map(|i| (i, PluginOutcome::Keep(i % 3 == 0)))
        .collect();
    assert_eq!(decisions, want);
    let desc = admin.describe_plugin("by-color").await.expect("describe");
    assert!(desc.bound_topics.is_empty(), "a filter binds no topic");

    // An unknown filter is UNKNOWN_PLUGIN.
    let err = fetch_filtered(
        &client,
        "paint",
        0,
        1024,
        FilterSpec {
            name: "nope".into(),
            version: None,
            params: BTreeMap::new(),
        },
    )
    .await
    .expect_err("unknown");
    assert_eq!(code_of(&err), Some(ErrorCode::UNKNOWN_PLUGIN), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_with_keep_highest_version_keeps_what_the_policy_says() {
    let policy = plugin("keep-highest-version");
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    let admin = client.admin();
    admin.add_plugin("highest", policy).await.expect("add");
    admin
        .create_topic(
            "versions",
            1,
            1,
            configs(&[
                ("cleanup.policy", "compact"),
                ("segment.bytes", "1048576"),
                ("compaction.policy", "highest"),
                ("compaction.policy.param.header", "v"),
            ]),
        )
        .await
        .expect("create");
    // Versions arrive out of order; default compaction would keep the last write, this
    // policy keeps the highest version.
    let writes: [(&str, &[i64]); 4] = [
        ("a", &[1, 5, 3, 2]),
        ("b", &[9, 4]),
        ("c", &[2, 2]),
        ("d", &[7, 8, 1, 6]),
    ];
    let mut records = Vec::new();
    let longest = writes.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
    for round in 0..longest {
        for (key, versions) in &writes {
            if let Some(v) = versions.get(round) {
                records.push(
                    ProducerRecord::new("versions", format!("{key}-v{v}-r{round}"))
                        .key(*key)
                        .partition(0)
                        .header("v", v.to_string()),
                );
            }
        }
    }
    let sent = send_each(&client, records.clone()).await;
    // Which write of each key must survive: the highest version, the newest on a tie.
    let mut expected: HashMap<String, (i64, String)> = HashMap::new();
    for (r, (_, offset)) in records.iter().zip(&sent) {
        let key = String::from_utf8_lossy(r.key.as_deref().expect("key")).into_owned();
        let value = String::from_utf8_lossy(r.value.as_deref().expect("value")).into_owned();
        let version = |v: &str| {
            v.split('-')
                .nth(1)
                .map(|s| s[1..].parse::<i64>().expect("n"))
        };
        let replace = match expected.get(&key) {
            None => true,
            Some((_, old)) => version(&value) >= version(old),
        };
        if replace {
            expected.insert(key, (*offset, value));
        }
    }
    // Unique keys after them, more than a segment of them (the smallest a topic may have),
    // so the contested writes sit in closed segments.
    let tail = (0..40)
        .map(|i| {
            ProducerRecord::new("versions", format!("tail-{i}:{}", ".".repeat(32 * 1024)))
                .key(format!("tail-{i}"))
                .partition(0)
                .header("v", "1")
        })
        .collect();
    send_each(&client, tail).await;
    let end = 52;
    let contested = ["a", "b", "c", "d"];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let per_key = loop {
        let per_key = remaining(&client, "versions", end).await;
        if contested
            .iter()
            .all(|k| per_key.get(*k).is_some_and(|v| v.len() == 1))
        {
            break per_key;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "compaction never finished: {per_key:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for key in contested {
        assert_eq!(
            per_key[key],
            vec![expected[key].clone()],
            "key {key}: the highest version survives at its original offset"
        );
    }
    for i in 0..40 {
        assert!(per_key.contains_key(&format!("tail-{i}")));
    }
    let desc = admin.describe_plugin("highest").await.expect("describe");
    assert_eq!(desc.bound_topics, vec!["versions".to_string()]);
}

/// Every record of `topic`'s partition 0, grouped by key, as (offset, value).
async fn remaining(client: &Client, topic: &str, end: i64) -> HashMap<String, Vec<(i64, String)>> {
    let mut consumer = client
        .consumer(ConsumerConfig {
            auto_offset_reset: OffsetReset::Earliest,
            ..ConsumerConfig::default()
        })
        .expect("consumer");
    let tp = TopicPartition::new(topic, 0);
    consumer.assign(vec![tp.clone()]);
    consumer
        .seek_to_beginning(std::slice::from_ref(&tp))
        .await
        .expect("seek");
    let mut per_key: HashMap<String, Vec<(i64, String)>> = HashMap::new();
    while consumer.position(&tp).expect("position").unwrap_or(0) < end {
        for r in consumer
            .poll(Duration::from_millis(300))
            .await
            .expect("poll")
        {
            let key = String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned();
            let value =
                String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned();
            per_key.entry(key).or_default().push((r.offset, value));
        }
    }
    per_key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioner_swapped_twenty_times_under_load_fails_nothing() {
    let key_hash = plugin("key-hash");
    let first_byte = plugin("first-byte");
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    let admin = client.admin();
    admin
        .add_plugin("router", key_hash.clone())
        .await
        .expect("add");
    const PARTITIONS: u32 = 8;
    admin
        .create_topic(
            "swapped",
            PARTITIONS,
            1,
            configs(&[("partitioner", "router")]),
        )
        .await
        .expect("create");
    // Keys on which the two versions disagree, so every routed record tells which ran.
    let keys: Vec<String> = (0..10_000)
        .map(|i| format!("k{i}"))
        .filter(|k| {
            partition_for_key(k.as_bytes(), PARTITIONS) != u32::from(k.as_bytes()[0]) % PARTITIONS
        })
        .take(64)
        .collect();
    assert!(keys.len() == 64, "enough disagreeing keys");
    // Swaps begun and swaps completed so far; after n completed swaps, version n+1
    // routes: key-hash for even n, first-byte for odd n.
    let begun = Arc::new(AtomicU32::new(0));
    let done = Arc::new(AtomicU32::new(0));
    let stop = Arc::new(AtomicU32::new(0));
    let producer_task = {
        let client = client.clone();
        let (begun, done, stop) = (Arc::clone(&begun), Arc::clone(&done), Arc::clone(&stop));
        let keys = keys.clone();
        tokio::spawn(async move {
            let producer = client
                .producer(ProducerConfig {
                    batch_size: 1,
                    ..ProducerConfig::default()
                })
                .await
                .expect("producer");
            let mut sent = Vec::new();
            let mut failures = Vec::new();
            let mut i = 0usize;
            while stop.load(Ordering::SeqCst) == 0 {
                let key = &keys[i % keys.len()];
                let done_before = done.load(Ordering::SeqCst);
                let result = producer
                    .send_and_wait(ProducerRecord::new("swapped", "x").key(key.clone()))
                    .await;
                // No swap began while this record was in flight: exactly one version
                // can have routed it.
                let settled = begun.load(Ordering::SeqCst) == done_before;
                match result {
                    Ok(meta) => sent.push((done_before, settled, key.clone(), meta.partition)),
                    Err(e) => failures.push(e.to_string()),
                }
                i += 1;
            }
            producer.close().await;
            (sent, failures)
        })
    };
    for n in 0..20u32 {
        // Let some records through on the current version first.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let bytes = if n % 2 == 0 {
            first_byte.clone()
        } else {
            key_hash.clone()
        };
        begun.store(n + 1, Ordering::SeqCst);
        let added = admin.add_plugin("router", bytes).await.expect("swap");
        assert_eq!(added.version, n + 2, "every swap is a new version");
        done.store(n + 1, Ordering::SeqCst);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.store(1, Ordering::SeqCst);
    let (sent, failures) = producer_task.await.expect("producer task");
    assert!(
        failures.is_empty(),
        "failed requests during swaps: {failures:?}"
    );
    let settled: Vec<_> = sent.iter().filter(|(_, settled, _, _)| *settled).collect();
    assert!(
        settled.len() > 40,
        "the producer kept sending: {}",
        settled.len()
    );
    for (swaps, _, key, partition) in &settled {
        let expected = if swaps % 2 == 0 {
            partition_for_key(key.as_bytes(), PARTITIONS)
        } else {
            u32::from(key.as_bytes()[0]) % PARTITIONS
        };
        assert_eq!(
            *partition, expected,
            "key {key} sent after swap {swaps} went where that version routes"
        );
    }
    let swaps_seen: std::collections::BTreeSet<u32> = settled.iter().map(|(s, ..)| *s).collect();
    assert!(
        swaps_seen.contains(&20) && swaps_seen.len() > 10,
        "records were routed between most swaps and after the last: {swaps_seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_plugins_are_contained_and_the_broker_carries_on() {
    let misbehave = plugin("misbehave");
    let broker = TestBroker::start_with(strict_limits).await;
    let client = broker.client().await;
    let admin = client.admin();
    admin.add_plugin("misbehave", misbehave).await.expect("add");
    admin
        .create_topic("chaos", 1, 1, BTreeMap::new())
        .await
        .expect("create");
    let keys = [
        "spin",
        "hog",
        "trap",
        "read-file",
        "socket",
        "env",
        "log",
        "fine",
    ];
    let records = keys
        .iter()
        .map(|k| {
            ProducerRecord::new("chaos", format!("value of {k}"))
                .key(*k)
                .partition(0)
        })
        .collect();
    let sent = send_each(&client, records).await;
    let offset_of = |key: &str| sent[keys.iter().position(|k| *k == key).expect("key")].1;
    let spec = FilterSpec {
        name: "misbehave".into(),
        version: None,
        params: BTreeMap::new(),
    };
    // max_bytes 1: each fetch reads exactly the one batch holding that record. No
    // ambient authority: a file read and a socket are refused, and the plugin's own error
    // saying so reaches the consumer like a trap does.
    for (key, what) in [
        ("spin", "timed out"),
        ("hog", "memory"),
        ("trap", "trapped"),
        ("read-file", "read-file denied"),
        ("socket", "socket denied"),
    ] {
        let err = fetch_filtered(&client, "chaos", offset_of(key), 1, spec.clone())
            .await
            .expect_err(key);
        assert_eq!(
            code_of(&err),
            Some(ErrorCode::PLUGIN_FAILED),
            "{key}: {err}"
        );
        let text = err.to_string();
        assert!(
            text.contains("misbehave"),
            "{key}: names the plugin: {text}"
        );
        assert!(text.contains(what), "{key}: says what happened: {text}");
        // The broker serves the next request, with the same plugin.
        let (_, payload) = fetch_filtered(&client, "chaos", offset_of("fine"), 1, spec.clone())
            .await
            .expect("the next request is served");
        assert_eq!(offsets_in(&payload), vec![offset_of("fine")]);
    }
    // The environment is empty: the plugin drops the record that asked for it.
    let (resp, payload) = fetch_filtered(&client, "chaos", offset_of("env"), 1, spec.clone())
        .await
        .expect("env");
    assert!(payload.is_empty(), "env: the sandbox has no environment");
    assert_eq!(resp.next_offset, offset_of("env") + 1);
    // What the plugin logged is readable, including the host's note of each failure.
    let (_, payload) = fetch_filtered(&client, "chaos", offset_of("log"), 1, spec.clone())
        .await
        .expect("log");
    assert_eq!(offsets_in(&payload), vec![offset_of("log")]);
    let logs = admin
        .plugin_logs("misbehave", 0, false)
        .await
        .expect("logs");
    let messages: Vec<&str> = logs.entries.iter().map(|e| e.message.as_str()).collect();
    assert!(messages.contains(&"value of log"), "{messages:?}");
    assert!(
        messages.iter().any(|m| m.contains("read-file")),
        "the failed file read is logged: {messages:?}"
    );
    // Follow: a long poll that returns the entry appended while it waits.
    let since = logs.next_seq;
    let follower = {
        let admin = client.admin();
        tokio::spawn(async move { admin.plugin_logs("misbehave", since, true).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    fetch_filtered(&client, "chaos", offset_of("log"), 1, spec.clone())
        .await
        .expect("log again");
    let followed = follower.await.expect("task").expect("follow");
    assert!(
        followed
            .entries
            .iter()
            .any(|e| e.message == "value of log" && e.seq >= since),
        "{followed:?}"
    );
    let err = admin
        .plugin_logs("nope", 0, false)
        .await
        .expect_err("unknown");
    assert_eq!(code_of(&err), Some(ErrorCode::UNKNOWN_PLUGIN), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_uploads_are_refused_with_what_is_wrong() {
    let filter = plugin("header-filter");
    let forbidden = plugin("forbidden-import");
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    let admin = client.admin();
    // Uploaded as a partitioner, a filter lacks the `partition` export.
    let req = PluginAddRequest {
        name: "router".into(),
        kind: Some("partitioner".into()),
        limits: Default::default(),
    };
    let err = client
        .call(&req, filter.clone())
        .await
        .expect_err("wrong world");
    assert_eq!(code_of(&err), Some(ErrorCode::INVALID_PLUGIN), "{err}");
    assert!(
        err.to_string().contains("`partition`"),
        "names the missing export: {err}"
    );
    // A name keeps its kind: a filter cannot become a new version of a partitioner.
    admin
        .add_plugin("router", plugin("key-hash"))
        .await
        .expect("add");
    let err = admin
        .add_plugin("router", filter)
        .await
        .expect_err("kind kept");
    assert_eq!(code_of(&err), Some(ErrorCode::INVALID_PLUGIN), "{err}");
    assert!(err.to_string().contains("`partition`"), "{err}");
    let err = admin
        .add_plugin("sneaky", forbidden)
        .await
        .expect_err("forbidden import");
    assert_eq!(code_of(&err), Some(ErrorCode::INVALID_PLUGIN), "{err}");
    assert!(err.to_string().contains("imports"), "{err}");
    let err = admin
        .add_plugin("junk", Bytes::from_static(b"not wasm"))
        .await
        .expect_err("not wasm");
    assert_eq!(code_of(&err), Some(ErrorCode::INVALID_PLUGIN), "{err}");
    // Nothing refused was stored.
    let names: Vec<String> = admin
        .list_plugins()
        .await
        .expect("list")
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, vec!["router".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_survive_a_restart_and_removal_waits_for_unbinding() {
    let mut broker = TestBroker::start().await;
    let client = broker.client().await;
    let admin = client.admin();
    admin
        .add_plugin("router", plugin("key-hash"))
        .await
        .expect("v1");
    admin
        .add_plugin("router", plugin("first-byte"))
        .await
        .expect("v2");
    admin
        .create_topic("bound", 4, 1, configs(&[("partitioner", "router")]))
        .await
        .expect("create");
    drop(admin);
    drop(client);
    broker.restart().await;

    let client = broker.client().await;
    let admin = client.admin();
    let desc = admin.describe_plugin("router").await.expect("describe");
    assert_eq!(desc.current_version, 2);
    assert_eq!(
        desc.versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(desc.kind, "partitioner");
    assert_eq!(desc.bound_topics, vec!["bound".to_string()]);
    // Routing after the restart uses the current version (first-byte).
    let sent = send_each(
        &client,
        vec![
            ProducerRecord::new("bound", "x").key("a"),
            ProducerRecord::new("bound", "y").key("b"),
        ],
    )
    .await;
    assert_eq!(sent[0].0, u32::from(b'a') % 4);
    assert_eq!(sent[1].0, u32::from(b'b') % 4);

    let err = admin
        .remove_plugin("router", None, false)
        .await
        .expect_err("bound");
    assert_eq!(code_of(&err), Some(ErrorCode::PLUGIN_IN_USE), "{err}");
    assert!(err.to_string().contains("bound"), "names the topic: {err}");
    let err = admin
        .remove_plugin("router", Some(2), false)
        .await
        .expect_err("the current version is what the topic follows");
    assert_eq!(code_of(&err), Some(ErrorCode::PLUGIN_IN_USE), "{err}");
    // An old version nobody uses goes.
    let removed = admin
        .remove_plugin("router", Some(1), false)
        .await
        .expect("v1");
    assert_eq!(removed.removed_versions, vec![1]);
    admin
        .alter_topic_config("bound", BTreeMap::new(), vec!["partitioner".into()])
        .await
        .expect("unbind");
    let removed = admin
        .remove_plugin("router", None, false)
        .await
        .expect("all");
    assert_eq!(removed.removed_versions, vec![2]);
    assert!(admin.list_plugins().await.expect("list").is_empty());
    let err = admin.describe_plugin("router").await.expect_err("gone");
    assert_eq!(code_of(&err), Some(ErrorCode::UNKNOWN_PLUGIN), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_partitioner_and_javascript_filter_work_end_to_end() {
    let python = plugin("py-key-sum");
    let javascript = plugin("js-value-contains");
    let broker = TestBroker::start().await;
    // Validating a ~17 MiB interpreter component compiles it: far longer than a usual
    // request in a debug build on a busy machine (the compilation cache makes the next
    // start fast).
    let client = Client::connect(
        &broker.url(),
        broker.options().request_timeout(Duration::from_secs(600)),
    )
    .await
    .expect("client");
    let admin = client.admin();
    let added = admin.add_plugin("py-sum", python).await.expect("python");
    assert_eq!(added.kind, "partitioner");
    let added = admin
        .add_plugin("js-contains", javascript)
        .await
        .expect("js");
    assert_eq!(added.kind, "filter");
    admin
        .create_topic("poly", 5, 1, configs(&[("partitioner", "py-sum")]))
        .await
        .expect("create");
    let keys = ["a", "bb", "hello", "zz", "quiver", "k9"];
    let records = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let value = if i % 2 == 0 {
                format!("has needle {i}")
            } else {
                format!("plain {i}")
            };
            ProducerRecord::new("poly", value).key(*k)
        })
        .collect();
    let sent = send_each(&client, records).await;
    for (key, (partition, _)) in keys.iter().zip(&sent) {
        let sum: u32 = key.bytes().map(u32::from).sum();
        assert_eq!(*partition, sum % 5, "python routed {key} by its byte sum");
    }
    // The JavaScript filter over every partition keeps the values holding the needle.
    let mut consumer = client
        .consumer(ConsumerConfig {
            auto_offset_reset: OffsetReset::Earliest,
            filter: Some(FilterSpec {
                name: "js-contains".into(),
                version: None,
                params: BTreeMap::from([("needle".to_string(), "needle".to_string())]),
            }),
            ..ConsumerConfig::default()
        })
        .expect("consumer");
    let tps: Vec<TopicPartition> = (0..5).map(|p| TopicPartition::new("poly", p)).collect();
    consumer.assign(tps.clone());
    consumer.seek_to_beginning(&tps).await.expect("seek");
    let mut values = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while values.len() < 3 {
        assert!(tokio::time::Instant::now() < deadline, "got {values:?}");
        for r in consumer
            .poll(Duration::from_millis(300))
            .await
            .expect("poll")
        {
            values.push(String::from_utf8_lossy(&r.value.expect("value")).into_owned());
        }
    }
    // Drain briefly: nothing else may arrive.
    values.extend(
        consumer
            .poll(Duration::from_millis(500))
            .await
            .expect("poll")
            .into_iter()
            .map(|r| String::from_utf8_lossy(&r.value.expect("value")).into_owned()),
    );
    values.sort();
    assert_eq!(values, vec!["has needle 0", "has needle 2", "has needle 4"]);
}

/// Writes one plugin version the way the registry stored it before the metadata log:
/// `<data>/plugins/<name>/<version>.wasm` and its `<version>.json`.
fn write_old_plugin_version(data: &Path, name: &str, version: u32, kind: &str, bytes: &[u8]) {
    use sha2::Digest;
    let dir = data.join("plugins").join(name);
    std::fs::create_dir_all(&dir).expect("plugin dir");
    std::fs::write(dir.join(format!("{version}.wasm")), bytes).expect("component");
    let sha256: String = sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let meta = format!(
        r#"{{"name":"{name}","version":{version},"kind":"{kind}","sha256":"{sha256}","size_bytes":{},"added_ms":1690000000000,"limits":null}}"#,
        bytes.len()
    );
    std::fs::write(dir.join(format!("{version}.json")), meta).expect("metadata");
}

/// A data directory from before the metadata log — plugins stored per name, topics in
/// `meta/topics.json`, one topic pinned to a plugin version — is imported on first start:
/// versions keep their numbers, the bound topic routes through its plugin, stored records
/// stay, and the old files are moved aside.
#[tokio::test]
async fn an_old_data_directory_with_plugins_and_a_bound_topic_is_imported() {
    let mut broker = TestBroker::start().await;
    let client = broker.client().await;
    client
        .admin()
        .create_topic("bound", 4, 1, BTreeMap::new())
        .await
        .expect("create");
    let before = send_each(
        &client,
        vec![ProducerRecord::new("bound", "old").partition(3)],
    )
    .await;
    assert_eq!(before, vec![(3, 0)]);
    drop(client);
    broker.stop().await;

    let data = broker.data_dir();
    std::fs::remove_dir_all(data.join("meta/log")).expect("no metadata log yet");
    std::fs::remove_dir_all(data.join("plugins")).expect("no plugin blobs yet");
    // Nor did partition directories record a topic id then.
    for entry in std::fs::read_dir(&data).expect("data dir").flatten() {
        let marker = entry.path().join("partition.metadata");
        if marker.exists() {
            std::fs::remove_file(marker).expect("no topic id record yet");
        }
    }
    write_old_plugin_version(&data, "router", 1, "partitioner", &plugin("key-hash"));
    // Version 2 was removed long ago: the numbers have a gap the import keeps.
    write_old_plugin_version(&data, "router", 3, "partitioner", &plugin("first-byte"));
    std::fs::write(
        data.join("meta/topics.json"),
        r#"{"version":1,"topics":[
            {"name":"bound","partitions":4,"replication_factor":1,
             "configs":{"partitioner":"router@3"},"internal":false},
            {"name":"__consumer_offsets","partitions":1,"replication_factor":1,
             "configs":{"cleanup.policy":"compact"},"internal":true}]}"#,
    )
    .expect("old catalog");
    broker.start_again().await;

    let client = broker.client().await;
    let admin = client.admin();
    let desc = admin
        .describe_plugin("router")
        .await
        .expect("imported plugin");
    assert_eq!(
        desc.versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        vec![1, 3]
    );
    assert_eq!(desc.current_version, 3);
    assert_eq!(desc.bound_topics, vec!["bound".to_string()]);
    // Pinned to version 3 (first byte of the key, modulo 4).
    let sent = send_each(&client, vec![ProducerRecord::new("bound", "new").key("b")]).await;
    assert_eq!(sent[0].0, u32::from(b'b') % 4);
    let stored = admin
        .describe_topic("bound")
        .await
        .expect("describe")
        .partitions[3]
        .high_watermark;
    assert!(
        stored >= 1,
        "the record stored before the upgrade is still there"
    );
    assert!(data.join("meta/topics.json.migrated").exists());
    assert!(
        !data.join("plugins/router").exists(),
        "old layout moved aside"
    );
    drop(admin);
    drop(client);

    // Imported once: the next start comes from the metadata log alone.
    broker.restart().await;
    let client = broker.client().await;
    let desc = client
        .admin()
        .describe_plugin("router")
        .await
        .expect("still there");
    assert_eq!(desc.current_version, 3);
}
