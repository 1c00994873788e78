//! The registry: versions on disk, reopen, list, describe, remove.

use quiver_plugin_host::{PluginKind, RecordView, Registry, RegistryError};

use crate::support::{host, keyed, params, plugin};

#[test]
fn versions_survive_a_reopen() {
    let (host, dir) = host();
    let registry = Registry::open(dir.path(), host.clone()).expect("opens");
    let v1 = registry
        .add("router", &plugin("key-hash"), None, None)
        .expect("adds");
    let v2 = registry
        .add("router", &plugin("first-byte"), None, None)
        .expect("adds");
    assert_eq!(
        (v1.version, v2.version, v2.kind),
        (1, 2, PluginKind::Partitioner)
    );
    registry
        .add(
            "only-eu",
            &plugin("header-filter"),
            Some(PluginKind::Filter),
            None,
        )
        .expect("adds");
    let before = registry.list();
    drop(registry);

    let reopened = Registry::open(dir.path(), host).expect("reopens");
    assert_eq!(reopened.list(), before);
    let router = reopened.describe("router").expect("described");
    assert_eq!(router.current, 2);
    assert_eq!(router.kind(), Some(PluginKind::Partitioner));
    // Both versions still run, and they are the plugins that were stored.
    let records = keyed(10);
    let views: Vec<RecordView> = records.iter().map(RecordView::from).collect();
    let first_byte = reopened
        .partitioner("router", None, params(&[]))
        .expect("binds");
    assert_eq!(
        first_byte.partition(&views, 5).expect("runs"),
        vec![u32::from(b'k') % 5; 10]
    );
    let key_hash = reopened
        .partitioner("router", Some(1), params(&[]))
        .expect("binds");
    let want: Vec<u32> = records
        .iter()
        .map(|r| crate::reference::kafka_partition(r.key.as_deref().expect("keyed"), 5))
        .collect();
    assert_eq!(key_hash.partition(&views, 5).expect("runs"), want);
}

#[test]
fn a_torn_upload_from_a_crash_is_no_version_and_the_next_upload_writes_over_it() {
    let (host, dir) = host();
    let registry = Registry::open(dir.path(), host.clone()).expect("opens");
    registry
        .add("router", &plugin("key-hash"), None, None)
        .expect("adds");
    drop(registry);
    // A crash while version 2 was being written: only temporary files, one of them torn.
    let name_dir = dir.path().join("plugins").join("router");
    std::fs::write(name_dir.join("2.wasm.tmp"), b"\0asm torn").expect("torn component");
    std::fs::write(name_dir.join("2.json.tmp"), b"{\"name\": \"rou").expect("torn metadata");

    let reopened = Registry::open(dir.path(), host).expect("reopens past the leftovers");
    assert_eq!(reopened.describe("router").expect("described").current, 1);
    let v2 = reopened
        .add("router", &plugin("first-byte"), None, None)
        .expect("adds over the leftovers");
    assert_eq!(v2.version, 2);
    assert!(!name_dir.join("2.wasm.tmp").exists());
    assert!(!name_dir.join("2.json.tmp").exists());
    assert_eq!(
        std::fs::read(name_dir.join("2.wasm")).expect("stored"),
        plugin("first-byte")
    );
}

#[test]
fn same_bytes_again_is_the_same_version() {
    let (host, dir) = host();
    let registry = Registry::open(dir.path(), host).expect("opens");
    let a = registry
        .add("p", &plugin("key-hash"), None, None)
        .expect("adds");
    let b = registry
        .add("p", &plugin("key-hash"), None, None)
        .expect("adds");
    assert_eq!(a, b);
}

#[test]
fn a_name_keeps_its_kind() {
    let (host, dir) = host();
    let registry = Registry::open(dir.path(), host).expect("opens");
    registry
        .add("p", &plugin("key-hash"), None, None)
        .expect("adds");
    let err = registry
        .add("p", &plugin("header-filter"), None, None)
        .expect_err("a filter is not a partitioner");
    assert!(
        err.to_string().contains("missing export `partition`"),
        "{err}"
    );
    assert_eq!(registry.describe("p").expect("still there").current, 1);
}

#[test]
fn remove_honours_bindings_and_falls_back_to_the_previous_version() {
    let (host, dir) = host();
    let registry = Registry::open(dir.path(), host.clone()).expect("opens");
    registry
        .add("p", &plugin("key-hash"), None, None)
        .expect("adds");
    registry
        .add("p", &plugin("first-byte"), None, None)
        .expect("adds");
    let following = registry.partitioner("p", None, params(&[])).expect("binds");
    assert_eq!(following.current().version(), 2);

    let topics = vec!["orders".to_string()];
    match registry.remove("p", Some(2), &topics, false) {
        Err(RegistryError::InUse { topics, .. }) => assert_eq!(topics, vec!["orders".to_string()]),
        other => panic!("expected in use, got {other:?}"),
    }
    assert_eq!(
        registry
            .remove("p", Some(2), &topics, true)
            .expect("forced"),
        vec![2]
    );
    assert_eq!(registry.describe("p").expect("left").current, 1);
    assert_eq!(
        following.current().version(),
        1,
        "followers fall back to the remaining version"
    );

    assert_eq!(
        registry.remove("p", None, &[], false).expect("removes"),
        vec![1]
    );
    assert!(matches!(
        registry.describe("p"),
        Err(RegistryError::NotFound { .. })
    ));
    drop(registry);
    let reopened = Registry::open(dir.path(), host).expect("reopens");
    assert!(reopened.list().is_empty());
}

#[test]
fn bad_names_and_unknown_versions_are_clear_errors() {
    let (host, dir) = host();
    let registry = Registry::open(dir.path(), host).expect("opens");
    assert!(matches!(
        registry.add("../evil", b"", None, None),
        Err(RegistryError::InvalidName { .. })
    ));
    registry
        .add("p", &plugin("key-hash"), None, None)
        .expect("adds");
    match registry.get("p", Some(9)) {
        Err(RegistryError::VersionNotFound {
            version: 9,
            available,
            ..
        }) => assert_eq!(available, vec![1]),
        other => panic!("expected version not found, got {other:?}"),
    }
}
