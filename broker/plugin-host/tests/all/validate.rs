//! Load-time validation: the world, the imports, the bytes.

use quiver_plugin_host::{HostConfig, PluginError, PluginHost, PluginKind};

use crate::support::{host, plugin};

#[test]
fn each_example_is_detected_as_its_world() {
    let (host, _dir) = host();
    for (name, kind) in [
        ("key-hash", PluginKind::Partitioner),
        ("first-byte", PluginKind::Partitioner),
        ("header-filter", PluginKind::Filter),
        ("json-filter", PluginKind::Filter),
    ] {
        assert_eq!(
            host.validate(name, &plugin(name), None).expect("valid"),
            kind,
            "{name}"
        );
        assert_eq!(
            host.validate(name, &plugin(name), Some(kind))
                .expect("valid"),
            kind,
            "{name}"
        );
    }
}

#[test]
fn a_filter_uploaded_as_a_partitioner_names_the_missing_export() {
    let (host, _dir) = host();
    let err = host
        .validate(
            "header-filter",
            &plugin("header-filter"),
            Some(PluginKind::Partitioner),
        )
        .expect_err("wrong world");
    let message = err.to_string();
    assert!(matches!(err, PluginError::WrongWorld { .. }), "{err:?}");
    assert!(message.contains("header-filter"), "{message}");
    assert!(message.contains("missing export `partition`"), "{message}");
    assert!(message.contains("it exports init, keep"), "{message}");
}

#[test]
fn bytes_that_are_not_a_component_are_refused() {
    let (host, _dir) = host();
    let err = host
        .validate("junk", b"\0asm not really", None)
        .expect_err("invalid");
    assert!(
        matches!(err, PluginError::Invalid { ref plugin, .. } if plugin == "junk"),
        "{err:?}"
    );
}

#[test]
fn a_second_host_loads_compiled_code_from_the_disk_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = HostConfig {
        cache_dir: Some(dir.path().join("cache")),
        ..HostConfig::default()
    };
    let bytes = plugin("header-filter");
    let first = PluginHost::new(config.clone()).expect("host");
    first
        .validate("header-filter", &bytes, None)
        .expect("valid");
    assert_eq!(first.cache_stats().hits, 0);
    assert!(first.cache_stats().misses >= 1);
    drop(first);
    let second = PluginHost::new(config).expect("host");
    second
        .validate("header-filter", &bytes, None)
        .expect("valid");
    assert!(second.cache_stats().hits >= 1, "{:?}", second.cache_stats());
    assert_eq!(second.cache_stats().misses, 0);
}

#[test]
fn an_import_the_host_does_not_provide_is_named() {
    let (host, _dir) = host();
    let err = host
        .validate("evil", &plugin("forbidden-import"), None)
        .expect_err("forbidden import");
    assert!(
        matches!(err, PluginError::ForbiddenImport { ref plugin, ref import } if plugin == "evil" && import.starts_with("test:forbidden/steal")),
        "{err:?}"
    );
}

#[test]
fn a_forbidden_import_is_refused_from_the_bytes_without_compiling() {
    // A host with a cache of its own counts every compilation as a hit or a miss, so a
    // refusal that left both at zero never reached the compiler.
    let dir = tempfile::tempdir().expect("tempdir");
    let host = PluginHost::new(HostConfig {
        cache_dir: Some(dir.path().join("cache")),
        ..HostConfig::default()
    })
    .expect("host");
    let err = host
        .validate("evil", &plugin("forbidden-import"), None)
        .expect_err("forbidden import");
    assert!(
        matches!(err, PluginError::ForbiddenImport { ref import, .. } if import == "test:forbidden/steal"),
        "{err:?}"
    );
    assert!(err.to_string().contains("`test:forbidden/steal`"), "{err}");
    assert_eq!(
        host.cache_stats(),
        Default::default(),
        "nothing was compiled"
    );
    host.validate("header-filter", &plugin("header-filter"), None)
        .expect("valid");
    assert_eq!(host.cache_stats().misses, 1, "a valid one is compiled");
}
