//! Plugins written in Python and JavaScript, when their toolchains were available.

use quiver_plugin_host::{
    FilterPlugin, GuestError, LoadSpec, LogSource, PartitionerPlugin, PluginError, PluginSource,
    RecordView,
};

use crate::support::{host, keyed, optional_plugin, params, record};

#[test]
fn python_partitioner_matches_its_native_rule() {
    let Some(bytes) = optional_plugin("py-key-sum") else {
        return;
    };
    let (host, _dir) = host();
    let plugin = host
        .load(
            LoadSpec {
                name: "py-key-sum",
                version: 1,
                bytes: &bytes,
                kind: None,
                limits: None,
            },
            host.new_log(),
        )
        .expect("loads");
    let partitioner =
        PartitionerPlugin::new(PluginSource::pinned(plugin.clone()), params(&[])).expect("binds");
    let mut records = keyed(200);
    records.push(record(200, None, Some(b"keyless"), &[]));
    let views: Vec<RecordView> = records.iter().map(RecordView::from).collect();
    let want: Vec<u32> = records
        .iter()
        .map(|r| {
            r.key
                .as_deref()
                .map_or(0, |k| k.iter().map(|b| u32::from(*b)).sum::<u32>() % 7)
        })
        .collect();
    assert_eq!(partitioner.partition(&views, 7).expect("partitions"), want);
    let log = plugin.log().read(0, 10);
    assert!(
        log.iter()
            .any(|e| e.source == LogSource::Guest && e.message.contains("py-key-sum ready")),
        "{log:?}"
    );
}

#[test]
fn javascript_filter_matches_its_native_rule() {
    let Some(bytes) = optional_plugin("js-value-contains") else {
        return;
    };
    let (host, _dir) = host();
    let plugin = host
        .load(
            LoadSpec {
                name: "js-value-contains",
                version: 1,
                bytes: &bytes,
                kind: None,
                limits: None,
            },
            host.new_log(),
        )
        .expect("loads");
    let source = PluginSource::pinned(plugin);
    let filter = FilterPlugin::new(source.clone(), params(&[("needle", "err")])).expect("binds");
    let values: [Option<&[u8]>; 5] = [
        Some(b"an error here"),
        Some(b"fine"),
        None,
        Some(b"err"),
        Some(b"er"),
    ];
    let records: Vec<_> = values
        .iter()
        .enumerate()
        .map(|(i, v)| record(i as i64, None, *v, &[]))
        .collect();
    let views: Vec<RecordView> = records.iter().map(RecordView::from).collect();
    assert_eq!(
        filter.keep(&views).expect("keeps"),
        vec![true, false, false, true, false]
    );

    match FilterPlugin::new(source, params(&[])) {
        Err(PluginError::Guest {
            error: GuestError::InvalidConfig(m),
            ..
        }) => assert!(m.contains("needle"), "{m}"),
        other => panic!("expected invalid config, got {other:?}"),
    }
}
