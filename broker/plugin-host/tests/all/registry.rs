//! The registry: prepare and install, hot swap, uninstall, the blob store, migration of
//! the old layout.

use std::collections::BTreeSet;
use std::path::Path;

use quiver_plugin_host::registry::content_hash;
use quiver_plugin_host::{PluginKind, RecordView, Registry, RegistryError, VersionMeta};

use crate::reference::kafka_partition;
use crate::support::{host, keyed, params, plugin, upload};

fn blob_path(data: &Path, hash: &str) -> std::path::PathBuf {
    data.join("plugins")
        .join(".blobs")
        .join(format!("{hash}.wasm"))
}

/// What key-hash answers for `keyed(10)` over 5 partitions, and what first-byte does.
fn answers() -> (Vec<u32>, Vec<u32>) {
    let key_hash = keyed(10)
        .iter()
        .map(|r| kafka_partition(r.key.as_deref().expect("keyed"), 5))
        .collect();
    (key_hash, vec![u32::from(b'k') % 5; 10])
}

fn partition(registry: &Registry, name: &str, version: Option<u32>) -> Vec<u32> {
    let records = keyed(10);
    let views: Vec<RecordView> = records.iter().map(RecordView::from).collect();
    registry
        .partitioner(name, version, params(&[]))
        .expect("binds")
        .partition(&views, 5)
        .expect("runs")
}

#[test]
fn prepare_stores_the_component_and_install_makes_the_version() {
    let (host, dir) = host();
    let registry = Registry::open(dir.path(), host).expect("opens");
    let bytes = plugin("key-hash");
    let prepared = registry.prepare("router", &bytes, None).expect("prepares");
    assert_eq!(prepared.content_hash, content_hash(&bytes));
    assert_eq!(prepared.kind, PluginKind::Partitioner);
    assert_eq!(prepared.size, bytes.len() as u64);
    assert_eq!(
        std::fs::read(blob_path(dir.path(), &prepared.content_hash)).expect("stored"),
        bytes
    );
    assert!(registry.has_blob(&prepared.content_hash));
    assert!(
        matches!(
            registry.describe("router"),
            Err(RegistryError::NotFound { .. })
        ),
        "preparing creates no version"
    );

    let meta = prepared.into_version("router", 3, 1_700_000_000_123, None);
    registry.install(meta.clone()).expect("installs");
    let info = registry.describe("router").expect("described");
    assert_eq!(
        info.current, 3,
        "the version is the metadata's, not counted here"
    );
    assert_eq!(info.versions, vec![meta.clone()]);
    assert_eq!(info.kind(), Some(PluginKind::Partitioner));
    assert_eq!(registry.list(), vec![info]);
    assert_eq!(partition(&registry, "router", None), answers().0);
    registry
        .install(meta)
        .expect("installing again does nothing");
    assert_eq!(
        registry
            .describe("router")
            .expect("described")
            .versions
            .len(),
        1
    );
}

#[test]
fn prepare_is_idempotent_for_the_same_bytes() {
    let (host, dir) = host();
    let registry = Registry::open(dir.path(), host).expect("opens");
    let a = registry
        .prepare("p", &plugin("key-hash"), None)
        .expect("prepares");
    let b = registry
        .prepare("p", &plugin("key-hash"), Some(PluginKind::Partitioner))
        .expect("prepares again");
    assert_eq!(a, b);
    // Another name with the same component shares the blob.
    let c = registry
        .prepare("q", &plugin("key-hash"), None)
        .expect("prepares");
    assert_eq!(c.content_hash, a.content_hash);
    assert_eq!(
        registry.blob_hashes().expect("lists"),
        BTreeSet::from([a.content_hash])
    );
}

#[test]
fn installing_a_newer_version_switches_followers_and_an_older_one_does_not() {
    let (host, dir) = host();
    let registry = Registry::open(dir.path(), host).expect("opens");
    let (by_key_hash, by_first_byte) = answers();
    upload(&registry, "router", 1, "key-hash");
    let records = keyed(10);
    let views: Vec<RecordView> = records.iter().map(RecordView::from).collect();
    let following = registry
        .partitioner("router", None, params(&[]))
        .expect("binds");
    let pinned = registry
        .partitioner("router", Some(1), params(&[]))
        .expect("binds");
    assert_eq!(following.partition(&views, 5).expect("runs"), by_key_hash);

    upload(&registry, "router", 4, "first-byte");
    assert_eq!(following.current().version(), 4);
    assert_eq!(following.partition(&views, 5).expect("runs"), by_first_byte);
    assert_eq!(pinned.partition(&views, 5).expect("runs"), by_key_hash);

    // Versions may arrive out of order (a restart installs whatever the metadata
    // lists): a lower number never takes over.
    upload(&registry, "router", 2, "key-hash");
    assert_eq!(registry.describe("router").expect("described").current, 4);
    assert_eq!(following.current().version(), 4);
    assert_eq!(partition(&registry, "router", Some(2)), by_key_hash);
}

#[test]
fn uninstalling_the_current_version_falls_back_to_the_previous_one() {
    let (host, dir) = host();
    let registry = Registry::open(dir.path(), host).expect("opens");
    upload(&registry, "p", 1, "key-hash");
    upload(&registry, "p", 2, "first-byte");
    let following = registry.partitioner("p", None, params(&[])).expect("binds");
    assert_eq!(following.current().version(), 2);

    assert_eq!(
        registry.uninstall("p", &[2, 7]).expect("uninstalls"),
        vec![2]
    );
    assert_eq!(registry.describe("p").expect("left").current, 1);
    assert_eq!(
        following.current().version(),
        1,
        "followers fall back to the remaining version"
    );
    assert_eq!(partition(&registry, "p", None), answers().0);

    assert_eq!(registry.uninstall("p", &[1]).expect("uninstalls"), vec![1]);
    assert!(matches!(
        registry.describe("p"),
        Err(RegistryError::NotFound { .. })
    ));
    assert!(registry.list().is_empty());
    assert_eq!(
        registry.uninstall("p", &[1]).expect("nothing to do"),
        Vec::<u32>::new()
    );
    // The name may start over, as the metadata allows once it had no version left.
    upload(&registry, "p", 1, "first-byte");
    assert_eq!(partition(&registry, "p", None), answers().1);
}

#[test]
fn a_missing_blob_is_a_typed_error_naming_the_hash() {
    let (host, dir) = host();
    let registry = Registry::open(dir.path(), host).expect("opens");
    let bytes = plugin("key-hash");
    let hash = content_hash(&bytes);
    let meta = VersionMeta {
        name: "router".into(),
        version: 1,
        kind: PluginKind::Partitioner,
        sha256: hash.clone(),
        size_bytes: bytes.len() as u64,
        added_ms: 1,
        limits: None,
    };
    match registry.install(meta.clone()) {
        Err(RegistryError::BlobMissing { hash: missing, .. }) => assert_eq!(missing, hash),
        other => panic!("expected a missing blob, got {other:?}"),
    }
    assert!(registry.list().is_empty(), "nothing was installed");
    assert!(matches!(
        registry.read_blob(&hash),
        Err(RegistryError::BlobMissing { .. })
    ));

    // Fetched from another broker: checked against the hash, then installable.
    assert!(matches!(
        registry.store_blob(&hash, b"not the component"),
        Err(RegistryError::BlobCorrupt { .. })
    ));
    registry.store_blob(&hash, &bytes).expect("stores");
    assert_eq!(registry.read_blob(&hash).expect("reads"), bytes);
    registry.install(meta).expect("installs");
    assert_eq!(partition(&registry, "router", None), answers().0);

    // A blob lost after install fails the load that needs it, by name.
    upload(&registry, "router", 2, "first-byte");
    std::fs::remove_file(blob_path(dir.path(), &hash)).expect("lose the blob");
    match registry.get("router", Some(1)) {
        Err(RegistryError::BlobMissing { hash: missing, .. }) => assert_eq!(missing, hash),
        other => panic!("expected a missing blob, got {other:?}"),
    }
}

#[test]
fn collect_garbage_keeps_live_blobs_and_removes_dead_ones() {
    let (host, dir) = host();
    let registry = Registry::open(dir.path(), host.clone()).expect("opens");
    let installed = upload(&registry, "a", 1, "key-hash").sha256;
    let live = registry
        .prepare("b", &plugin("first-byte"), None)
        .expect("prepares")
        .content_hash;
    let dead = registry
        .prepare("c", &plugin("header-filter"), None)
        .expect("prepares")
        .content_hash;
    // Installed versions and uploads awaiting their metadata record are kept even when
    // the caller's set does not name them.
    assert_eq!(
        registry
            .collect_garbage(&BTreeSet::new())
            .expect("collects"),
        0
    );
    assert_eq!(registry.blob_hashes().expect("lists").len(), 3);
    drop(registry);

    // After a restart only what the metadata names, and what is installed, is live.
    let registry = Registry::open(dir.path(), host).expect("reopens");
    let mut meta = VersionMeta {
        name: "a".into(),
        version: 1,
        kind: PluginKind::Partitioner,
        sha256: installed.clone(),
        size_bytes: plugin("key-hash").len() as u64,
        added_ms: 1,
        limits: None,
    };
    registry.install(meta.clone()).expect("reinstalls");
    let removed = registry
        .collect_garbage(&BTreeSet::from([live.clone()]))
        .expect("collects");
    assert_eq!(removed, 1);
    assert!(registry.has_blob(&installed) && registry.has_blob(&live));
    assert!(!registry.has_blob(&dead));
    assert!(!blob_path(dir.path(), &dead).exists());

    // Once uninstalled and no longer live, a blob goes too.
    registry.uninstall("a", &[1]).expect("uninstalls");
    assert_eq!(
        registry
            .collect_garbage(&BTreeSet::new())
            .expect("collects"),
        2
    );
    assert!(registry.blob_hashes().expect("lists").is_empty());
    meta.version = 2;
    assert!(matches!(
        registry.install(meta),
        Err(RegistryError::BlobMissing { .. })
    ));
}

#[test]
fn a_torn_blob_from_a_crash_is_ignored_and_written_over() {
    let (host, dir) = host();
    let registry = Registry::open(dir.path(), host.clone()).expect("opens");
    let bytes = plugin("key-hash");
    let hash = content_hash(&bytes);
    drop(registry);
    // A crash while the blob was being written: only its temporary file, torn.
    let torn = dir
        .path()
        .join("plugins/.blobs")
        .join(format!("{hash}.wasm.tmp"));
    std::fs::write(&torn, &bytes[..bytes.len() / 2]).expect("torn blob");

    let registry = Registry::open(dir.path(), host).expect("reopens past the leftover");
    assert!(!registry.has_blob(&hash));
    assert!(registry.blob_hashes().expect("lists").is_empty());
    let prepared = registry.prepare("router", &bytes, None).expect("prepares");
    assert!(!torn.exists(), "the write replaced the leftover");
    registry
        .install(prepared.into_version("router", 1, 1, None))
        .expect("installs");
    assert_eq!(partition(&registry, "router", None), answers().0);

    // A leftover that no write replaces is removed by the next collection.
    let other = dir
        .path()
        .join("plugins/.blobs")
        .join(format!("{}.wasm.tmp", "ab".repeat(32)));
    std::fs::write(&other, b"\0as").expect("torn blob");
    registry
        .collect_garbage(&BTreeSet::from([hash]))
        .expect("collects");
    assert!(!other.exists());
}

#[test]
fn open_starts_empty_and_the_metadata_installs_everything_again() {
    let (host, dir) = host();
    let registry = Registry::open(dir.path(), host.clone()).expect("opens");
    let metas = vec![
        upload(&registry, "router", 1, "key-hash"),
        upload(&registry, "router", 2, "first-byte"),
        upload(&registry, "only-eu", 1, "header-filter"),
    ];
    let before = registry.list();
    drop(registry);

    let reopened = Registry::open(dir.path(), host).expect("reopens");
    assert!(
        reopened.list().is_empty(),
        "versions are the metadata's to list"
    );
    for meta in metas {
        reopened
            .install(meta)
            .expect("reinstalls from the stored blob");
    }
    assert_eq!(reopened.list(), before);
    assert_eq!(
        reopened.describe("only-eu").expect("described").kind(),
        Some(PluginKind::Filter)
    );
    let (by_key_hash, by_first_byte) = answers();
    assert_eq!(partition(&reopened, "router", None), by_first_byte);
    assert_eq!(partition(&reopened, "router", Some(1)), by_key_hash);
}

#[test]
fn a_name_keeps_its_kind_and_an_explicit_kind_must_match() {
    let (host, dir) = host();
    let registry = Registry::open(dir.path(), host).expect("opens");
    upload(&registry, "p", 1, "key-hash");
    let err = registry
        .prepare("p", &plugin("header-filter"), None)
        .expect_err("a filter is not a partitioner");
    assert!(
        err.to_string().contains("missing export `partition`"),
        "{err}"
    );
    let err = registry
        .prepare("q", &plugin("key-hash"), Some(PluginKind::Filter))
        .expect_err("a partitioner is not a filter");
    assert!(matches!(err, RegistryError::Plugin(_)), "{err:?}");
    assert_eq!(registry.describe("p").expect("still there").current, 1);
}

#[test]
fn bad_names_hashes_unknown_versions_and_conflicts_are_clear_errors() {
    let (host, dir) = host();
    let registry = Registry::open(dir.path(), host).expect("opens");
    assert!(matches!(
        registry.prepare("../evil", b"", None),
        Err(RegistryError::InvalidName { .. })
    ));
    let meta = upload(&registry, "p", 1, "key-hash");
    match registry.get("p", Some(9)) {
        Err(RegistryError::VersionNotFound {
            version: 9,
            available,
            ..
        }) => assert_eq!(available, vec![1]),
        other => panic!("expected version not found, got {other:?}"),
    }
    let other = registry
        .prepare("p", &plugin("first-byte"), None)
        .expect("prepares")
        .into_version("p", 1, 2, None);
    match registry.install(other) {
        Err(RegistryError::VersionConflict { version: 1, .. }) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(
        registry.describe("p").expect("kept").versions,
        vec![meta.clone()]
    );
    let bad_hash = VersionMeta {
        sha256: "../../etc/passwd".into(),
        version: 2,
        ..meta
    };
    assert!(matches!(
        registry.install(bad_hash),
        Err(RegistryError::InvalidHash { .. })
    ));
}

#[test]
fn a_new_current_version_that_does_not_load_switches_no_follower() {
    let (host, dir) = host();
    let registry = Registry::open(dir.path(), host).expect("opens");
    upload(&registry, "p", 1, "key-hash");
    let following = registry.partitioner("p", None, params(&[])).expect("binds");
    // A record claiming a partitioner for a component that is a filter.
    let filter = registry
        .prepare("other", &plugin("header-filter"), None)
        .expect("prepares");
    let wrong = VersionMeta {
        kind: PluginKind::Partitioner,
        ..filter.into_version("p", 2, 2, None)
    };
    assert!(matches!(
        registry.install(wrong),
        Err(RegistryError::Plugin(_))
    ));
    assert_eq!(registry.describe("p").expect("kept").current, 1);
    assert_eq!(following.current().version(), 1);
}

#[test]
fn a_fallback_that_cannot_load_is_reported_and_nothing_new_binds_to_the_removed_version() {
    let (host, dir) = host();
    let registry = Registry::open(dir.path(), host).expect("opens");
    let v1 = upload(&registry, "p", 1, "key-hash");
    upload(&registry, "p", 2, "first-byte");
    let following = registry.partitioner("p", None, params(&[])).expect("binds");
    std::fs::remove_file(blob_path(dir.path(), &v1.sha256)).expect("lose the blob");

    match registry.uninstall("p", &[2]) {
        Err(RegistryError::BlobMissing { hash, .. }) => assert_eq!(hash, v1.sha256),
        other => panic!("expected a missing blob, got {other:?}"),
    }
    assert_eq!(registry.describe("p").expect("left").current, 1);
    assert_eq!(
        following.current().version(),
        2,
        "a follower keeps what it holds"
    );
    assert!(matches!(
        registry.partitioner("p", None, params(&[])),
        Err(RegistryError::BlobMissing { .. })
    ));
}

#[test]
fn a_refused_upload_is_logged_under_its_name_even_before_a_first_version() {
    let (host, dir) = host();
    let registry = Registry::open(dir.path(), host).expect("open");
    assert!(matches!(
        registry.log("router"),
        Err(RegistryError::NotFound { .. })
    ));
    registry.note_refused("router", "it is not a component");
    registry.note_refused("bad/name", "never logged");
    let log = registry.log("router").expect("a log for the refusal");
    let entries = log.read(0, 10);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].message, "upload refused: it is not a component");
    assert_eq!(entries[0].version, 0);
    assert!(registry.list().is_empty(), "a refusal makes no version");
    assert!(registry.log("bad/name").is_err());
    // The first version takes the log over, and later refusals land in it too.
    upload(&registry, "router", 1, "key-hash");
    registry.note_refused("router", "wrong world");
    let messages: Vec<String> = registry
        .log("router")
        .expect("log")
        .read(0, 10)
        .into_iter()
        .map(|e| e.message)
        .collect();
    assert_eq!(
        messages.first().map(String::as_str),
        Some("upload refused: it is not a component")
    );
    assert_eq!(
        messages.last().map(String::as_str),
        Some("upload refused: wrong world")
    );
}
