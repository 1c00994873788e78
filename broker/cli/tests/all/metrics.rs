//! The metrics endpoint: what it serves to a plain HTTP client, and a real Prometheus
//! server (Debian's `prometheus`, which `.ci/run` installs) scraping it and answering a
//! query about records the test produced.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use quiver_sdk::{ConsumerConfig, OffsetReset, ProducerConfig, ProducerRecord};

use crate::harness::{TestBroker, eventually};

/// A minimal HTTP/1.0 GET: the status code and the body. Enough for a test to read a
/// local endpoint without an HTTP client crate.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("write request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read response");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"));
    (status, body.to_owned())
}

async fn metrics_broker() -> TestBroker {
    TestBroker::start_with(|c| c.metrics_listen = Some("127.0.0.1:0".parse().expect("addr"))).await
}

fn metrics_addr(broker: &TestBroker) -> SocketAddr {
    broker
        .broker
        .as_ref()
        .and_then(|b| b.metrics_addr())
        .expect("metrics endpoint")
}

/// The value of the sample of `name` whose labels contain every one of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .find(|l| labels.iter().all(|want| l.contains(want)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// The sum of `name` over partitions 0..`partitions` of `topic`; each must have a sample.
fn sum_over_partitions(text: &str, name: &str, topic: &str, partitions: u32) -> f64 {
    (0..partitions)
        .map(|p| {
            let labels = [format!("topic=\"{topic}\""), format!("partition=\"{p}\"")];
            let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
            sample(text, name, &labels)
                .unwrap_or_else(|| panic!("no {name} of {topic}/{p}\n{text}"))
        })
        .sum()
}

/// Produces `n` keyed records to `topic` (created with 3 partitions) and reads them
/// back in group `g`, committing, so every family has something to show.
async fn traffic(broker: &TestBroker, topic: &str, n: usize) {
    let client = broker.client().await;
    client
        .admin()
        .create_topic(topic, 3, 1, Default::default())
        .await
        .expect("create");
    let producer = client
        .producer(ProducerConfig::default())
        .await
        .expect("producer");
    for i in 0..n {
        producer
            .send_and_wait(ProducerRecord::new(topic, format!("v{i}")).key(format!("k{i}")))
            .await
            .expect("send");
    }
    let mut consumer = client
        .consumer(ConsumerConfig {
            group_id: Some("g".into()),
            auto_offset_reset: OffsetReset::Earliest,
            ..ConsumerConfig::default()
        })
        .expect("consumer");
    consumer.subscribe([topic]).expect("subscribe");
    let mut read = 0;
    while read < n {
        read += consumer
            .poll(Duration::from_secs(2))
            .await
            .expect("poll")
            .len();
    }
    consumer.commit().await.expect("commit");
}

#[tokio::test]
async fn the_endpoint_serves_metrics_health_and_readiness() {
    let broker = metrics_broker().await;
    let addr = metrics_addr(&broker);
    traffic(&broker, "m", 30).await;
    // A connection open while scraping.
    let client = broker.client().await;
    client.admin().list_topics().await.expect("list");

    let (status, text) = tokio::task::spawn_blocking(move || get(addr, "/metrics"))
        .await
        .expect("get");
    assert_eq!(status, 200, "{text}");
    let tp = |p: u32| format!("partition=\"{p}\"");
    let total = |name: &str| sum_over_partitions(&text, name, "m", 3);
    assert_eq!(total("quiver_partition_records_in_total"), 30.0, "{text}");
    assert_eq!(total("quiver_partition_log_end_offset"), 30.0, "{text}");
    let out = total("quiver_partition_records_out_total");
    assert!(out >= 30.0, "records out {out}\n{text}");
    for family in [
        "quiver_partition_high_watermark",
        "quiver_partition_segments",
        "quiver_partition_size_bytes",
        "quiver_partition_bytes_in_total",
    ] {
        assert!(
            sample(&text, family, &["topic=\"m\""]).is_some(),
            "{family}\n{text}"
        );
    }
    assert!(
        sample(&text, "quiver_requests_total", &["api=\"produce\""]).is_some_and(|v| v >= 1.0),
        "{text}"
    );
    assert!(
        sample(
            &text,
            "quiver_request_duration_seconds_count",
            &["api=\"fetch\""]
        )
        .is_some(),
        "{text}"
    );
    assert!(
        sample(&text, "quiver_connections", &[]).is_some_and(|v| v >= 1.0),
        "{text}"
    );
    assert!(
        sample(&text, "quiver_inflight_request_bytes", &[]).is_some(),
        "{text}"
    );
    // The group committed everything: no lag on any partition of the topic.
    let lag: f64 = (0..3)
        .filter_map(|p| {
            sample(
                &text,
                "quiver_group_lag",
                &["group=\"g\"", "topic=\"m\"", &tp(p)],
            )
        })
        .sum();
    assert_eq!(lag, 0.0, "{text}");
    assert!(
        sample(&text, "quiver_group_generation", &["group=\"g\""]).is_some_and(|g| g >= 1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "quiver_group_members", &["group=\"g\""]),
        Some(1.0),
        "{text}"
    );

    // An error is counted by API and code; counted once the answer is written, which
    // the client may see a moment earlier.
    let _ = client.admin().describe_topic("no-such-topic").await;
    eventually(10, "the error counted by API and code", || async move {
        let (_, text) = tokio::task::spawn_blocking(move || get(addr, "/metrics"))
            .await
            .expect("get");
        sample(
            &text,
            "quiver_request_errors_total",
            &["api=\"describe_topic\"", "UNKNOWN_TOPIC"],
        )
        .is_some_and(|v| v >= 1.0)
    })
    .await;

    let (health, _) = tokio::task::spawn_blocking(move || get(addr, "/health"))
        .await
        .expect("get");
    let (ready, body) = tokio::task::spawn_blocking(move || get(addr, "/ready"))
        .await
        .expect("get");
    let (missing, _) = tokio::task::spawn_blocking(move || get(addr, "/nope"))
        .await
        .expect("get");
    assert_eq!((health, ready, missing), (200, 200, 404), "{body}");
}

/// Prometheus, if this machine has it (`.ci/run` installs Debian's package).
fn prometheus_binary() -> Option<&'static str> {
    let found = Command::new("prometheus")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    found.then_some("prometheus")
}

struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn start_prometheus(binary: &str, dir: &Path, target: SocketAddr) -> (Prometheus, SocketAddr) {
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: quiver\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .expect("write config");
    let web: SocketAddr = format!("127.0.0.1:{}", free_tcp_port())
        .parse()
        .expect("addr");
    let child = Command::new(binary)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address={web}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    (Prometheus(child), web)
}

#[tokio::test]
async fn a_real_prometheus_scrapes_the_broker_and_answers_a_query() {
    let Some(binary) = prometheus_binary() else {
        eprintln!(
            "skipping: the `prometheus` server is not installed (Debian: apt-get install prometheus; .ci/run installs it)"
        );
        return;
    };
    let broker = metrics_broker().await;
    let target = metrics_addr(&broker);
    traffic(&broker, "scraped", 12).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (_prometheus, web) = start_prometheus(binary, dir.path(), target);

    // Through Prometheus' own HTTP API: the records produced, summed over partitions.
    let query =
        "/api/v1/query?query=sum(quiver_partition_records_in_total%7Btopic%3D%22scraped%22%7D)";
    eventually(60, "Prometheus reports the records produced", || async move {
        let answer = tokio::task::spawn_blocking(move || {
            TcpStream::connect(web).ok().map(|_| get(web, query))
        })
        .await
        .expect("get");
        matches!(answer, Some((200, body)) if body.contains("\"status\":\"success\"") && body.contains("\"12\""))
    })
    .await;
    // And the target is up.
    let (status, body) = tokio::task::spawn_blocking(move || {
        get(web, "/api/v1/query?query=up%7Bjob%3D%22quiver%22%7D")
    })
    .await
    .expect("get");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("\"1\""),
        "the scrape target is not up: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_calls_records_failures_and_reloads_are_counted() {
    use crate::plugins::plugin;
    use quiver_sdk::proto::api::{FetchRequest, FilterSpec};

    let broker = metrics_broker().await;
    let addr = metrics_addr(&broker);
    let client = broker.client().await;
    let admin = client.admin();
    // A partitioner routes every record of a produce that names no partition.
    admin
        .add_plugin("router", plugin("key-hash"))
        .await
        .expect("add");
    let configs = [("partitioner".to_owned(), "router".to_owned())].into();
    admin
        .create_topic("routed", 3, 1, configs)
        .await
        .expect("create");
    let producer = client
        .producer(ProducerConfig::default())
        .await
        .expect("producer");
    for i in 0..10 {
        producer
            .send_and_wait(ProducerRecord::new("routed", format!("v{i}")).key(format!("k{i}")))
            .await
            .expect("send");
    }
    // A second version of it is a reload.
    admin
        .add_plugin("router", plugin("first-byte"))
        .await
        .expect("add again");
    // A filter that traps on the record keyed "trap".
    admin
        .add_plugin("wild", plugin("misbehave"))
        .await
        .expect("add filter");
    admin
        .create_topic("plain", 1, 1, Default::default())
        .await
        .expect("create");
    producer
        .send_and_wait(
            ProducerRecord::new("plain", "boom")
                .key("trap")
                .partition(0),
        )
        .await
        .expect("send");
    let fetch = FetchRequest {
        topic: "plain".into(),
        partition: 0,
        offset: 0,
        max_bytes: 1 << 20,
        max_wait_ms: 0,
        min_bytes: 1,
        isolation: Default::default(),
        filter: Some(FilterSpec {
            name: "wild".into(),
            version: None,
            params: Default::default(),
        }),
    };
    let trapped = client.call(&fetch, bytes::Bytes::new()).await;
    assert!(trapped.is_err(), "the filter trapped");

    let (_, text) = tokio::task::spawn_blocking(move || get(addr, "/metrics"))
        .await
        .expect("get");
    let router = ["plugin=\"router\""];
    let value = |name: &str, labels: &[&str]| sample(&text, name, labels).unwrap_or(-1.0);
    assert!(value("quiver_plugin_calls_total", &router) >= 1.0, "{text}");
    assert_eq!(
        value("quiver_plugin_records_in_total", &router),
        10.0,
        "{text}"
    );
    assert_eq!(
        value("quiver_plugin_records_out_total", &router),
        10.0,
        "{text}"
    );
    assert_eq!(value("quiver_plugin_reloads_total", &router), 1.0, "{text}");
    assert!(
        value("quiver_plugin_call_microseconds_total", &router) > 0.0,
        "{text}"
    );
    assert!(
        value("quiver_plugin_memory_peak_bytes", &router) > 0.0,
        "{text}"
    );
    let wild = ["plugin=\"wild\""];
    assert_eq!(value("quiver_plugin_traps_total", &wild), 1.0, "{text}");
    assert_eq!(value("quiver_plugin_timeouts_total", &wild), 0.0, "{text}");
}
