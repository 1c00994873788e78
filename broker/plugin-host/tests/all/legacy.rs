//! Migration of the old registry layout (`<name>/<version>.wasm` + `.json`): read back
//! faithfully, moved into blobs and installed, then retired.

use std::path::Path;
use std::time::Duration;

use quiver_plugin_host::registry::{content_hash, legacy_versions, retire_legacy};
use quiver_plugin_host::{PluginKind, PluginLimits, Registry, RegistryError, VersionMeta};

use crate::support::{host, plugin};

/// Writes one version the way the old registry did: component first, then metadata.
fn write_old_version(data: &Path, json: &str, name: &str, version: u32, bytes: &[u8]) {
    let dir = data.join("plugins").join(name);
    std::fs::create_dir_all(&dir).expect("name dir");
    std::fs::write(dir.join(format!("{version}.wasm")), bytes).expect("component");
    std::fs::write(dir.join(format!("{version}.json")), json).expect("metadata");
}

/// The old `<version>.json`, spelled out as the old registry wrote it, so that a change
/// to `VersionMeta`'s format breaks this test rather than a broker's migration.
fn old_json(name: &str, version: u32, kind: &str, bytes: &[u8], limits: &str) -> String {
    format!(
        r#"{{
  "name": "{name}",
  "version": {version},
  "kind": "{kind}",
  "sha256": "{}",
  "size_bytes": {},
  "added_ms": {},
  "limits": {limits}
}}"#,
        content_hash(bytes),
        bytes.len(),
        1_690_000_000_000_i64 + i64::from(version)
    )
}

#[test]
fn the_legacy_layout_is_read_back_faithfully_migrated_and_retired() {
    let (host, dir) = host();
    let data = dir.path();
    let (key_hash, first_byte, filter) = (
        plugin("key-hash"),
        plugin("first-byte"),
        plugin("header-filter"),
    );
    write_old_version(
        data,
        &old_json("router", 1, "partitioner", &key_hash, "null"),
        "router",
        1,
        &key_hash,
    );
    // Version 2 was removed once: numbers have gaps.
    let limits = r#"{"call_timeout": {"secs": 2, "nanos": 0}, "memory_bytes": 1048576, "max_idle_instances": 2}"#;
    write_old_version(
        data,
        &old_json("router", 3, "partitioner", &first_byte, limits),
        "router",
        3,
        &first_byte,
    );
    write_old_version(
        data,
        &old_json("only-eu", 1, "filter", &filter, "null"),
        "only-eu",
        1,
        &filter,
    );
    // A crash while version 4 was being written left only torn temporary files, and a
    // name whose only upload crashed left an empty directory.
    let router = data.join("plugins/router");
    std::fs::write(router.join("4.wasm.tmp"), b"\0asm torn").expect("torn component");
    std::fs::write(router.join("4.json.tmp"), b"{\"name\": \"rou").expect("torn metadata");
    std::fs::create_dir_all(data.join("plugins/ghost")).expect("empty name");

    // The registry opening in the same directory does not disturb the old layout.
    let registry = Registry::open(data, host).expect("opens");
    let legacy = legacy_versions(data).expect("reads the old layout");
    let found: Vec<(&str, u32)> = legacy
        .iter()
        .map(|v| (v.meta.name.as_str(), v.meta.version))
        .collect();
    assert_eq!(found, vec![("only-eu", 1), ("router", 1), ("router", 3)]);
    assert_eq!(
        legacy[2].meta,
        VersionMeta {
            name: "router".into(),
            version: 3,
            kind: PluginKind::Partitioner,
            sha256: content_hash(&first_byte),
            size_bytes: first_byte.len() as u64,
            added_ms: 1_690_000_000_003,
            limits: Some(PluginLimits {
                call_timeout: Duration::from_secs(2),
                memory_bytes: 1 << 20,
                max_idle_instances: 2,
            }),
        }
    );
    assert_eq!(legacy[0].meta.kind, PluginKind::Filter);
    assert_eq!(legacy[1].meta.limits, None);

    // What the server does on first start: blob, metadata record, install.
    for version in &legacy {
        let bytes = version.read().expect("the component matches its metadata");
        registry
            .store_blob(&version.meta.sha256, &bytes)
            .expect("stores");
        registry.install(version.meta.clone()).expect("installs");
    }
    let info = registry.describe("router").expect("migrated");
    assert_eq!(info.current, 3);
    assert_eq!(
        info.versions,
        vec![legacy[1].meta.clone(), legacy[2].meta.clone()]
    );

    let mut retired = retire_legacy(data).expect("retires");
    retired.sort();
    assert_eq!(retired, vec!["ghost", "only-eu", "router"]);
    assert!(legacy_versions(data).expect("reads").is_empty());
    assert!(!router.exists());
    let kept = data.join("plugins/.legacy-migrated/router");
    assert_eq!(
        std::fs::read(kept.join("3.wasm")).expect("kept aside"),
        first_byte
    );
    assert!(retire_legacy(data).expect("nothing left").is_empty());
    // The blobs the registry owns were not mistaken for old names.
    assert!(registry.has_blob(&content_hash(&key_hash)));
    assert_eq!(
        registry.blob_hashes().expect("lists").len(),
        3,
        "one blob per distinct component"
    );
}

#[test]
fn a_damaged_legacy_version_is_a_clear_error() {
    let (_host, dir) = host();
    let data = dir.path();
    let key_hash = plugin("key-hash");
    assert!(
        legacy_versions(data).expect("no plugins dir").is_empty(),
        "a fresh data directory has no legacy"
    );
    // The component does not match its metadata.
    write_old_version(
        data,
        &old_json("router", 1, "partitioner", &key_hash, "null"),
        "router",
        1,
        b"\0asm not the component",
    );
    let legacy = legacy_versions(data).expect("the metadata reads");
    match legacy[0].read() {
        Err(RegistryError::Corrupt { path, .. }) => assert!(path.ends_with("router/1.wasm")),
        other => panic!("expected a corrupt component, got {other:?}"),
    }
    // The metadata does not parse.
    std::fs::write(data.join("plugins/router/1.json"), b"{\"name\": ").expect("torn");
    match legacy_versions(data) {
        Err(RegistryError::Corrupt { path, .. }) => assert!(path.ends_with("router/1.json")),
        other => panic!("expected corrupt metadata, got {other:?}"),
    }
    // The metadata is in the wrong place.
    std::fs::write(
        data.join("plugins/router/1.json"),
        old_json("other", 1, "partitioner", &key_hash, "null"),
    )
    .expect("misplaced");
    assert!(matches!(
        legacy_versions(data),
        Err(RegistryError::Corrupt { .. })
    ));
}
