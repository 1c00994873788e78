//! The filter world through FilterPlugin.

use quiver_plugin_host::{FilterPlugin, GuestError, PluginError, PluginSource, RecordView};
use serde_json::json;

use crate::support::{host, load, params, record};

fn filter(name: &str, pairs: &[(&str, &str)]) -> (FilterPlugin, tempfile::TempDir) {
    let (host, dir) = host();
    let plugin = FilterPlugin::new(PluginSource::pinned(load(&host, name, None)), params(pairs))
        .expect("binds");
    (plugin, dir)
}

#[test]
fn header_filter_keeps_matching_headers() {
    let (plugin, _dir) = filter("header-filter", &[("header", "region"), ("value", "eu")]);
    let records = [
        record(0, None, None, &[("region", b"eu")]),
        record(1, None, None, &[("region", b"us")]),
        record(2, None, None, &[]),
        record(3, None, None, &[("other", b"x"), ("region", b"eu")]),
    ];
    let views: Vec<RecordView> = records.iter().map(RecordView::from).collect();
    assert_eq!(
        plugin.keep(&views).expect("keeps"),
        vec![true, false, false, true]
    );

    let (present, _dir) = filter("header-filter", &[("header", "region"), ("invert", "true")]);
    assert_eq!(
        present.keep(&views).expect("keeps"),
        vec![false, false, true, false]
    );
}

#[test]
fn header_filter_refuses_missing_parameters_at_bind_time() {
    let (host, _dir) = host();
    let err = FilterPlugin::new(
        PluginSource::pinned(load(&host, "header-filter", None)),
        params(&[]),
    )
    .expect_err("no header parameter");
    match err {
        PluginError::Guest {
            error: GuestError::InvalidConfig(m),
            ..
        } => assert!(m.contains("header"), "{m}"),
        other => panic!("expected invalid config, got {other}"),
    }
}

/// Filter parameters as written in a test case.
type Params<'a> = &'a [(&'a str, &'a str)];

/// The json-filter decision for each op, checked against a native evaluation of the same
/// documents.
#[test]
fn json_filter_matches_a_native_evaluation() {
    let docs = [
        json!({"user": {"age": 30, "name": "ada"}, "tags": ["a", "b"]}),
        json!({"user": {"age": 17, "name": "bob"}, "tags": []}),
        json!({"user": {"name": "cy"}}),
        json!({"user": {"age": 30.0}}),
    ];
    let values: Vec<Vec<u8>> = docs
        .iter()
        .map(|d| serde_json::to_vec(d).expect("json"))
        .collect();
    let mut records: Vec<_> = values
        .iter()
        .enumerate()
        .map(|(i, v)| record(i as i64, None, Some(v), &[]))
        .collect();
    records.push(record(9, None, Some(b"not json"), &[]));
    let views: Vec<RecordView> = records.iter().map(RecordView::from).collect();
    let age = |d: &serde_json::Value| d["user"]["age"].as_f64();
    let cases: Vec<(Params, Vec<bool>)> = vec![
        (
            &[("field", "user.age"), ("op", "eq"), ("value", "30")],
            docs.iter().map(|d| age(d) == Some(30.0)).collect(),
        ),
        (
            &[("field", "user.age"), ("op", "gt"), ("value", "18")],
            docs.iter()
                .map(|d| age(d).is_some_and(|a| a > 18.0))
                .collect(),
        ),
        (
            &[("field", "user.age"), ("op", "lt"), ("value", "18")],
            docs.iter()
                .map(|d| age(d).is_some_and(|a| a < 18.0))
                .collect(),
        ),
        (
            &[("field", "user.age"), ("op", "ne"), ("value", "30")],
            docs.iter().map(|d| age(d) != Some(30.0)).collect(),
        ),
        (
            &[("field", "user.age"), ("op", "exists")],
            docs.iter().map(|d| age(d).is_some()).collect(),
        ),
        (
            &[("field", "user.name"), ("op", "contains"), ("value", "d")],
            docs.iter()
                .map(|d| d["user"]["name"].as_str().is_some_and(|n| n.contains('d')))
                .collect(),
        ),
        (
            &[("field", "tags"), ("op", "contains"), ("value", "b")],
            docs.iter()
                .map(|d| {
                    d["tags"]
                        .as_array()
                        .is_some_and(|t| t.contains(&json!("b")))
                })
                .collect(),
        ),
        (
            &[("field", "tags.0"), ("op", "eq"), ("value", "a")],
            docs.iter().map(|d| d["tags"][0] == json!("a")).collect(),
        ),
    ];
    for (pairs, mut want) in cases {
        // The record that is not JSON is dropped by default.
        want.push(false);
        let (plugin, _dir) = filter("json-filter", pairs);
        assert_eq!(plugin.keep(&views).expect("keeps"), want, "{pairs:?}");
    }
}

#[test]
fn json_filter_can_fail_on_invalid_records_naming_the_record() {
    let (plugin, _dir) = filter(
        "json-filter",
        &[("field", "a"), ("op", "exists"), ("invalid", "fail")],
    );
    let records = [
        record(0, None, Some(br#"{"a":1}"#), &[]),
        record(1, None, Some(b"{oops"), &[]),
    ];
    let views: Vec<RecordView> = records.iter().map(RecordView::from).collect();
    match plugin.keep(&views) {
        Err(PluginError::Guest {
            plugin,
            error: GuestError::InvalidRecord { index, reason },
        }) => {
            assert_eq!((plugin.as_str(), index), ("json-filter", 1));
            assert!(reason.contains("not JSON"), "{reason}");
        }
        other => panic!("expected an invalid record, got {other:?}"),
    }
    // A guest error does not poison the instance.
    assert_eq!(plugin.keep(&views[..1]).expect("keeps"), vec![true]);
}
