//! Per-record cost of calling plugins through the typed wrappers: a batch of 1,000
//! records per call, reported as records per second. Python and JavaScript plugins are
//! measured when `plugins/build.sh` could build them.
//!
//! Run with `cargo bench -p quiver-plugin-host`; builds the plugins first if needed.

use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use quiver_plugin_host::{
    FilterPlugin, HostConfig, LoadSpec, PartitionerPlugin, PluginHost, PluginSource, RecordView,
};
use quiver_proto::Record;

const BATCH: usize = 1000;

fn plugins() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let status = Command::new("bash")
        .arg(root.join("plugins/build.sh"))
        .status()
        .expect("runs build.sh");
    assert!(status.success(), "plugins/build.sh failed");
    root.join("target/plugins/wasm")
}

fn records() -> Vec<Record> {
    (0..BATCH)
        .map(|i| Record {
            offset: i as i64,
            timestamp: 1_700_000_000_000,
            key: Some(Bytes::from(format!("user-{i:08}"))),
            value: Some(Bytes::from(vec![b'x'; 1024])),
            headers: vec![],
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let dir = plugins();
    let host = PluginHost::new(HostConfig {
        cache_dir: Some(dir.join("../bench-cache")),
        ..HostConfig::default()
    })
    .expect("host");
    let load = |name: &str| {
        let bytes = std::fs::read(dir.join(format!("{name}.wasm"))).ok()?;
        let spec = LoadSpec {
            name,
            version: 1,
            bytes: &bytes,
            kind: None,
            limits: None,
        };
        Some(PluginSource::pinned(
            host.load(spec, host.new_log()).expect("loads"),
        ))
    };
    let records = records();
    let views: Vec<RecordView> = records.iter().map(RecordView::from).collect();
    let mut group = c.benchmark_group("per_record");
    group.throughput(Throughput::Elements(BATCH as u64));

    for name in ["key-hash", "first-byte", "py-key-sum"] {
        let Some(source) = load(name) else {
            eprintln!("{name} was not built; skipped");
            continue;
        };
        let plugin = PartitionerPlugin::new(source, vec![]).expect("binds");
        group.bench_function(BenchmarkId::new("partition", name), |b| {
            b.iter(|| plugin.partition(&views, 12).expect("partitions"))
        });
    }
    // (label, plugin, params). The JavaScript filter is measured twice: scanning each
    // 1 KiB value to the end (the needle is absent), and matching at the first byte, which
    // leaves mostly the cost of crossing into the plugin and back.
    for (label, name, params) in [
        (
            "header-filter",
            "header-filter",
            vec![("header".to_string(), "region".to_string())],
        ),
        (
            "js-value-contains/scan-1KiB",
            "js-value-contains",
            vec![("needle".to_string(), "y".to_string())],
        ),
        (
            "js-value-contains/first-byte",
            "js-value-contains",
            vec![("needle".to_string(), "x".to_string())],
        ),
    ] {
        let Some(source) = load(name) else {
            eprintln!("{name} was not built; skipped");
            continue;
        };
        let plugin = FilterPlugin::new(source, params).expect("binds");
        group.bench_function(BenchmarkId::new("keep", label), |b| {
            b.iter(|| plugin.keep(&views).expect("keeps"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
