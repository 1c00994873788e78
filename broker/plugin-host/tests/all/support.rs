//! Shared by the tests: building plugins once, loading them, making records.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use quiver_plugin_host::{
    HostConfig, LoadSpec, LoadedPlugin, PluginHost, PluginLimits, Registry, VersionMeta,
};
use quiver_proto::{Header, Record};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The plugins `plugins/build.sh` keeps apart from the examples, in
/// `target/plugins/test-wasm`.
const TEST_PLUGINS: &[&str] = &["misbehave", "forbidden-import"];

/// Runs `plugins/build.sh` once per test process and returns the directory of the
/// example `.wasm`s.
pub fn plugin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let script = repo_root().join("plugins/build.sh");
        let status = Command::new("bash")
            .arg(&script)
            .status()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(status.success(), "{} failed: {status}", script.display());
        repo_root().join("target/plugins/wasm")
    })
}

/// Where `plugins/build.sh` put plugin `name`: the test plugins beside the examples.
fn plugin_path(name: &str) -> PathBuf {
    let examples = plugin_dir();
    if TEST_PLUGINS.contains(&name) {
        examples
            .with_file_name("test-wasm")
            .join(format!("{name}.wasm"))
    } else {
        examples.join(format!("{name}.wasm"))
    }
}

/// The bytes of plugin `name`, built by `plugins/build.sh`.
pub fn plugin(name: &str) -> Vec<u8> {
    let path = plugin_path(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("plugin {}: {e}", path.display()))
}

/// The bytes of plugin `name` if its toolchain was available, else `None` (and a note).
pub fn optional_plugin(name: &str) -> Option<Vec<u8>> {
    let path = plugin_dir().join(format!("{name}.wasm"));
    match std::fs::read(&path) {
        Ok(bytes) => Some(bytes),
        Err(_) => {
            eprintln!(
                "skipping: {} was not built (see plugins/build.sh output)",
                path.display()
            );
            None
        }
    }
}

/// A host sharing one compilation cache with every other host of the test run (and of
/// later runs: it lives under `target/plugins`), so each plugin is compiled once, and a
/// short tick. The cache is keyed by content and engine config, so sharing is safe.
pub fn host() -> (PluginHost, tempfile::TempDir) {
    let cache = repo_root().join("target/plugins/test-cache");
    let dir = tempfile::tempdir().expect("tempdir");
    let host = PluginHost::new(HostConfig {
        cache_dir: Some(cache),
        epoch_tick: Duration::from_millis(5),
        ..HostConfig::default()
    })
    .expect("host starts");
    (host, dir)
}

/// Loads plugin `name` as version 1, with `limits` or the defaults.
pub fn load(host: &PluginHost, name: &str, limits: Option<PluginLimits>) -> Arc<LoadedPlugin> {
    let bytes = plugin(name);
    let spec = LoadSpec {
        name,
        version: 1,
        bytes: &bytes,
        kind: None,
        limits,
    };
    host.load(spec, host.new_log())
        .unwrap_or_else(|e| panic!("{name} loads: {e}"))
}

/// Uploads plugin `plugin_name` as `version` of `name` the way the server does: prepare
/// (validate and store the bytes), then install what the metadata would have recorded.
pub fn upload(registry: &Registry, name: &str, version: u32, plugin_name: &str) -> VersionMeta {
    let meta = registry
        .prepare(name, &plugin(plugin_name), None)
        .unwrap_or_else(|e| panic!("{plugin_name} prepares as {name}: {e}"))
        .into_version(name, version, 1_700_000_000_000 + i64::from(version), None);
    registry
        .install(meta.clone())
        .unwrap_or_else(|e| panic!("{name} version {version} installs: {e}"));
    meta
}

/// Parameters from pairs.
pub fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A record with `key`, `value` and headers, at `offset`.
pub fn record(
    offset: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[(&str, &[u8])],
) -> Record {
    Record {
        offset,
        timestamp: 1_700_000_000_000 + offset,
        key: key.map(Bytes::copy_from_slice),
        value: value.map(Bytes::copy_from_slice),
        headers: headers
            .iter()
            .map(|(k, v)| Header {
                key: k.to_string(),
                value: Some(Bytes::copy_from_slice(v)),
            })
            .collect(),
    }
}

/// Keyed records `key-0`.. with small values: the standard batch of the tests.
pub fn keyed(n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| {
            let key = format!("key-{i}");
            record(i as i64, Some(key.as_bytes()), Some(b"value"), &[])
        })
        .collect()
}
