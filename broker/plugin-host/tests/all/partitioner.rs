//! The partitioner world through PartitionerPlugin.

use quiver_plugin_host::{PartitionerPlugin, PluginError, PluginSource, RecordView};

use crate::reference::kafka_partition;
use crate::support::{host, keyed, load, params, record};

#[test]
fn key_hash_equals_kafka_murmur2_for_many_keys() {
    let (host, _dir) = host();
    let plugin = PartitionerPlugin::new(
        PluginSource::pinned(load(&host, "key-hash", None)),
        params(&[]),
    )
    .expect("binds");
    // Keys of every length 0..64 and assorted bytes, so every tail case and block count
    // is covered, against several partition counts.
    let keys: Vec<Vec<u8>> = (0..2000u32)
        .map(|i| {
            (0..(i % 64))
                .map(|j| (i.wrapping_mul(31).wrapping_add(j * 7)) as u8)
                .collect()
        })
        .collect();
    let records: Vec<_> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| record(i as i64, Some(k), None, &[]))
        .collect();
    let views: Vec<RecordView> = records.iter().map(RecordView::from).collect();
    for count in [1, 3, 12, 100, 1024] {
        let got = plugin.partition(&views, count).expect("partitions");
        let want: Vec<u32> = keys.iter().map(|k| kafka_partition(k, count)).collect();
        assert_eq!(got, want, "partition count {count}");
    }
}

#[test]
fn keyless_records_of_one_batch_stick_together() {
    let (host, _dir) = host();
    let plugin = PartitionerPlugin::new(
        PluginSource::pinned(load(&host, "key-hash", None)),
        params(&[]),
    )
    .expect("binds");
    let records: Vec<_> = (0..50).map(|i| record(i, None, Some(b"v"), &[])).collect();
    let views: Vec<RecordView> = records.iter().map(RecordView::from).collect();
    let first = plugin.partition(&views, 7).expect("partitions");
    assert!(
        first.iter().all(|p| *p == first[0]),
        "one batch, one partition: {first:?}"
    );
    let second = plugin.partition(&views, 7).expect("partitions");
    assert_ne!(first[0], second[0], "the next batch moves on");
}

#[test]
fn plain_wit_bindgen_plugin_works_without_the_helper() {
    let (host, _dir) = host();
    let plugin = PartitionerPlugin::new(
        PluginSource::pinned(load(&host, "first-byte", None)),
        params(&[]),
    )
    .expect("binds");
    let records = [
        record(0, Some(b"a"), None, &[]),
        record(1, None, None, &[]),
        record(2, Some(b"\x05x"), None, &[]),
    ];
    let views: Vec<RecordView> = records.iter().map(RecordView::from).collect();
    assert_eq!(
        plugin.partition(&views, 4).expect("partitions"),
        vec![b'a' as u32 % 4, 0, 1]
    );
}

#[test]
fn an_empty_batch_gets_an_empty_answer() {
    let (host, _dir) = host();
    let plugin = PartitionerPlugin::new(
        PluginSource::pinned(load(&host, "key-hash", None)),
        params(&[]),
    )
    .expect("binds");
    assert_eq!(
        plugin.partition(&[], 3).expect("partitions"),
        Vec::<u32>::new()
    );
    let records = keyed(3);
    let views: Vec<RecordView> = records.iter().map(RecordView::from).collect();
    match plugin.partition(&views, 0) {
        Err(PluginError::Guest { plugin, .. }) => assert_eq!(plugin, "key-hash"),
        other => panic!("zero partitions must be the guest's error, got {other:?}"),
    }
}
