//! What a plugin author and a consumer see when something is wrong, through the SDK
//! against a real broker: a trap's one-line error, a filter checked before any data
//! flows (fetch and subscribe alike), per-plugin limits, and refused uploads noted in
//! the plugin's log.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use quiver_proto::api::{FetchRequest, FilterSpec, PluginLimitsSpec, SubscribeRequest};
use quiver_sdk::{Client, ErrorCode, ProducerConfig, ProducerRecord};

use crate::harness::TestBroker;
use crate::plugins::plugin;

fn filter(name: &str, params: &[(&str, &str)]) -> FilterSpec {
    FilterSpec {
        name: name.to_string(),
        version: None,
        params: params
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect(),
    }
}

/// One filtered fetch of partition 0 from `offset`, answered at once.
async fn fetch(
    client: &Client,
    topic: &str,
    offset: i64,
    filter: FilterSpec,
) -> Result<Bytes, quiver_sdk::Error> {
    let req = FetchRequest {
        topic: topic.to_string(),
        partition: 0,
        offset,
        max_bytes: 1,
        max_wait_ms: 0,
        min_bytes: 1,
        isolation: Default::default(),
        filter: Some(filter),
    };
    Ok(client.call(&req, Bytes::new()).await?.1)
}

/// The error a subscription with `filter` ends with. On an empty partition nothing else
/// could come, so an answer at all shows the filter was checked at the start.
async fn subscribe_error(client: &Client, topic: &str, filter: FilterSpec) -> quiver_sdk::Error {
    let req = SubscribeRequest {
        topic: topic.to_string(),
        partition: 0,
        offset: 0,
        max_bytes: 1 << 20,
        filter: Some(filter),
    };
    let mut sub = match client.subscribe(&req).await {
        Ok(sub) => sub,
        Err(e) => return e,
    };
    match tokio::time::timeout(Duration::from_secs(30), sub.next()).await {
        Ok(Some(Err(e))) => e,
        other => panic!("expected the subscription to fail at once, got {other:?}"),
    }
}

async fn produce(client: &Client, topic: &str, key: &str, value: &str) {
    let producer = client
        .producer(ProducerConfig::default())
        .await
        .expect("producer");
    producer
        .send_and_wait(
            ProducerRecord::new(topic.to_string(), value.to_string())
                .key(key.to_string())
                .partition(0),
        )
        .await
        .expect("send");
    producer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_reaches_the_consumer_as_one_line_with_the_panic_message() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    let admin = client.admin();
    admin
        .add_plugin("misbehave", plugin("misbehave"))
        .await
        .expect("add");
    admin
        .create_topic("t", 1, 1, BTreeMap::new())
        .await
        .expect("create");
    produce(&client, "t", "trap", "x").await;
    let err = fetch(&client, "t", 0, filter("misbehave", &[]))
        .await
        .expect_err("traps");
    assert_eq!(err.code(), Some(ErrorCode::PLUGIN_FAILED), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("plugin `misbehave@1` trapped in keep: panicked at misbehave/src/lib.rs:"),
        "{text}"
    );
    assert!(text.contains("asked to trap"), "{text}");
    assert!(!text.contains("wasm backtrace"), "{text}");
    assert!(text.lines().count() <= 2, "{text}");
    let logs = admin
        .plugin_logs("misbehave", 0, false)
        .await
        .expect("logs");
    assert!(
        logs.entries
            .iter()
            .any(|e| e.source == "host" && e.message.contains("wasm backtrace")),
        "the backtrace is in the plugin's log: {logs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_filter_fails_fetch_and_subscribe_before_any_data() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    let admin = client.admin();
    admin
        .add_plugin("router", plugin("key-hash"))
        .await
        .expect("add");
    admin
        .add_plugin("json", plugin("json-filter"))
        .await
        .expect("add");
    admin
        .create_topic("empty", 1, 1, BTreeMap::new())
        .await
        .expect("create");
    for (spec, code, says) in [
        (
            filter("nosuch", &[]),
            ErrorCode::UNKNOWN_PLUGIN,
            "no plugin named `nosuch`",
        ),
        (
            filter("router", &[]),
            ErrorCode::INVALID_REQUEST,
            "filter `router` is not a filter",
        ),
        (
            filter("json", &[]),
            ErrorCode::INVALID_REQUEST,
            "filter `json` refused its parameters",
        ),
    ] {
        let err = fetch(&client, "empty", 0, spec.clone())
            .await
            .expect_err("fetch refused");
        assert_eq!(err.code(), Some(code), "fetch {}: {err}", spec.name);
        assert!(err.to_string().contains(says), "fetch: {err}");
        let err = subscribe_error(&client, "empty", spec.clone()).await;
        assert_eq!(err.code(), Some(code), "subscribe {}: {err}", spec.name);
        assert!(err.to_string().contains(says), "subscribe: {err}");
    }
    // With its parameter the same filter reads the empty partition: nothing, no error.
    let payload = fetch(
        &client,
        "empty",
        0,
        filter("json", &[("field", "n"), ("op", "exists")]),
    )
    .await
    .expect("a good filter");
    assert!(payload.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_plugin_limits_are_checked_stored_and_named_when_hit() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    let admin = client.admin();
    let tight = PluginLimitsSpec {
        call_timeout_ms: Some(5),
        memory_bytes: None,
    };
    let err = admin
        .add_plugin_with_limits("m", plugin("misbehave"), tight)
        .await
        .expect_err("below the bound");
    assert_eq!(err.code(), Some(ErrorCode::INVALID_CONFIG), "{err}");
    assert!(err.to_string().contains("call_timeout_ms = 5"), "{err}");
    let logs = admin.plugin_logs("m", 0, false).await.expect("logs");
    assert!(
        logs.entries
            .iter()
            .any(|e| e.message.starts_with("upload refused: ")
                && e.message.contains("call_timeout_ms")),
        "{logs:?}"
    );
    let small = PluginLimitsSpec {
        call_timeout_ms: None,
        memory_bytes: Some(16 << 20),
    };
    admin
        .add_plugin_with_limits("m", plugin("misbehave"), small)
        .await
        .expect("add");
    let desc = admin.describe_plugin("m").await.expect("describe");
    let v1 = &desc.versions[0];
    assert_eq!(
        (v1.call_timeout_ms, v1.memory_bytes, v1.own_limits),
        (1000, 16 << 20, true),
        "the time limit not given is the broker's default"
    );
    admin
        .create_topic("t", 1, 1, BTreeMap::new())
        .await
        .expect("create");
    produce(&client, "t", "alloc", "48").await;
    let err = fetch(&client, "t", 0, filter("m", &[]))
        .await
        .expect_err("past the cap");
    assert!(err.to_string().contains("--memory-mib"), "{err}");
    assert!(err.to_string().contains("plugins.memory_bytes"), "{err}");
    // The default cap (128 MiB) lets the same call through.
    admin
        .add_plugin("roomy", plugin("misbehave"))
        .await
        .expect("add");
    let kept = fetch(&client, "t", 0, filter("roomy", &[]))
        .await
        .expect("within the default");
    assert!(!kept.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forbidden_import_is_refused_by_name_and_noted_in_the_log() {
    let broker = TestBroker::start().await;
    let client = broker.client().await;
    let admin = client.admin();
    let err = admin
        .add_plugin("sneaky", plugin("forbidden-import"))
        .await
        .expect_err("forbidden import");
    assert_eq!(err.code(), Some(ErrorCode::INVALID_PLUGIN), "{err}");
    assert!(err.to_string().contains("`test:forbidden/steal`"), "{err}");
    let logs = admin.plugin_logs("sneaky", 0, false).await.expect("logs");
    assert!(
        logs.entries
            .iter()
            .any(|e| e.version == 0 && e.message.contains("test:forbidden/steal")),
        "{logs:?}"
    );
    assert!(admin.list_plugins().await.expect("list").is_empty());
}
