//! The compactor world through CompactorPlugin, and the header-router partitioner.

use quiver_plugin_host::{
    CompactorPlugin, GuestError, PartitionerPlugin, PluginError, PluginSource, RecordView, Survivor,
};

use crate::support::{host, load, params, record};

fn compactor(name: &str, pairs: &[(&str, &str)]) -> (CompactorPlugin, tempfile::TempDir) {
    let (host, dir) = host();
    let plugin = CompactorPlugin::new(PluginSource::pinned(load(&host, name, None)), params(pairs))
        .expect("binds");
    (plugin, dir)
}

#[test]
fn keep_highest_version_by_header_matches_a_native_rule() {
    let (plugin, _dir) = compactor("keep-highest-version", &[("header", "v")]);
    let older = [
        record(0, Some(b"a"), Some(b"x"), &[("v", b"5")]),
        record(1, Some(b"b"), Some(b"x"), &[("v", b"1")]),
        record(2, Some(b"c"), Some(b"x"), &[("v", b"3")]),
        record(3, Some(b"d"), Some(b"x"), &[]),
        record(4, Some(b"e"), Some(b"x"), &[("v", b"2")]),
    ];
    let newer = [
        record(10, Some(b"a"), Some(b"y"), &[("v", b"4")]),
        record(11, Some(b"b"), Some(b"y"), &[("v", b"2")]),
        record(12, Some(b"c"), Some(b"y"), &[("v", b"3")]),
        record(13, Some(b"d"), Some(b"y"), &[]),
        record(14, Some(b"e"), None, &[]),
    ];
    let o: Vec<RecordView> = older.iter().map(RecordView::from).collect();
    let n: Vec<RecordView> = newer.iter().map(RecordView::from).collect();
    use Survivor::{Newer, Older};
    assert_eq!(
        plugin.survivors(&o, &n).expect("decides"),
        vec![Older, Newer, Newer, Newer, Older]
    );
    // Keys and retention keep the default policy.
    assert_eq!(
        plugin.keys(&o).expect("keys")[0].as_deref(),
        Some(&b"a"[..])
    );
    assert_eq!(plugin.retain(&o, 0).expect("retains"), vec![true; 5]);
}

#[test]
fn keep_highest_version_by_json_field() {
    let (plugin, _dir) = compactor("keep-highest-version", &[("field", "version")]);
    let older = [record(0, Some(b"k"), Some(br#"{"version": 9}"#), &[])];
    let newer = [record(1, Some(b"k"), Some(br#"{"version": 8}"#), &[])];
    let o: Vec<RecordView> = older.iter().map(RecordView::from).collect();
    let n: Vec<RecordView> = newer.iter().map(RecordView::from).collect();
    assert_eq!(
        plugin.survivors(&o, &n).expect("decides"),
        vec![Survivor::Older]
    );
}

#[test]
fn ttl_drops_records_past_their_keys_time_to_live() {
    let (plugin, _dir) = compactor(
        "ttl",
        &[
            ("key.session", "1000"),
            ("prefix.tmp-", "10"),
            ("default", "100000"),
            ("tombstone", "50"),
        ],
    );
    let now = 1_700_000_000_000 + 5_000;
    let at = |age: i64, key: Option<&[u8]>, value: Option<&[u8]>| {
        let mut r = record(0, key, value, &[]);
        r.timestamp = now - age;
        r
    };
    let records = [
        at(999, Some(b"session"), Some(b"v")),
        at(1000, Some(b"session"), Some(b"v")),
        at(9, Some(b"tmp-1"), Some(b"v")),
        at(11, Some(b"tmp-1"), Some(b"v")),
        at(99_999, Some(b"other"), Some(b"v")),
        at(60, Some(b"other"), None),
        at(1_000_000, None, Some(b"keyless")),
    ];
    let views: Vec<RecordView> = records.iter().map(RecordView::from).collect();
    assert_eq!(
        plugin.retain(&views, now).expect("retains"),
        vec![true, false, true, false, true, false, true]
    );
    // The default survivor rule: the newer record wins.
    assert_eq!(
        plugin
            .survivors(&views[..1], &views[1..2])
            .expect("decides"),
        vec![Survivor::Newer]
    );
}

#[test]
fn ttl_refuses_unknown_parameters() {
    let (host, _dir) = host();
    let err = CompactorPlugin::new(
        PluginSource::pinned(load(&host, "ttl", None)),
        params(&[("dflt", "1")]),
    )
    .expect_err("typo");
    assert!(
        matches!(err, PluginError::Guest { error: GuestError::InvalidConfig(ref m), .. } if m.contains("dflt")),
        "{err}"
    );
}

#[test]
fn header_router_routes_by_header_and_names_unroutable_records() {
    let (host, _dir) = host();
    let source = PluginSource::pinned(load(&host, "header-router", None));
    let routed = PartitionerPlugin::new(
        source.clone(),
        params(&[
            ("header", "region"),
            ("route.eu", "0"),
            ("route.us", "2"),
            ("default", "1"),
        ]),
    )
    .expect("binds");
    let records = [
        record(0, None, None, &[("region", b"us")]),
        record(1, None, None, &[("region", b"eu")]),
        record(2, None, None, &[("region", b"apac")]),
        record(3, None, None, &[]),
    ];
    let views: Vec<RecordView> = records.iter().map(RecordView::from).collect();
    assert_eq!(
        routed.partition(&views, 3).expect("routes"),
        vec![2, 0, 1, 1]
    );

    let strict = PartitionerPlugin::new(source, params(&[("header", "region"), ("route.eu", "0")]))
        .expect("binds");
    match strict.partition(&views, 3) {
        Err(PluginError::Guest {
            error: GuestError::InvalidRecord { index, reason },
            ..
        }) => {
            assert_eq!(index, 0);
            assert!(reason.contains("us"), "{reason}");
        }
        other => panic!("expected an unroutable record, got {other:?}"),
    }
}
