//! Hot reload: swapping versions under load fails no call.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use quiver_plugin_host::{RecordView, Registry};

use crate::reference::kafka_partition;
use crate::support::{host, keyed, params, upload};

#[test]
fn replacing_a_partitioner_twenty_times_under_load_fails_no_call() {
    let (host, dir) = host();
    let registry = Registry::open(dir.path(), host).expect("opens");
    upload(&registry, "router", 1, "key-hash");
    let partitioner = registry
        .partitioner("router", None, params(&[]))
        .expect("binds");

    let records = keyed(64);
    let views: Vec<RecordView> = records.iter().map(RecordView::from).collect();
    let count = 16;
    let by_key_hash: Vec<u32> = records
        .iter()
        .map(|r| kafka_partition(r.key.as_deref().expect("keyed"), count))
        .collect();
    let by_first_byte = vec![u32::from(b'k') % count; records.len()];
    assert_ne!(
        by_key_hash, by_first_byte,
        "the two versions must be told apart"
    );

    let stop = AtomicBool::new(false);
    let (calls, failures) = (AtomicU64::new(0), AtomicU64::new(0));
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    match partitioner.partition(&views, count) {
                        Ok(p) if p == by_key_hash || p == by_first_byte => {}
                        Ok(p) => panic!("an answer from neither version: {p:?}"),
                        Err(e) => {
                            eprintln!("call failed during reload: {e}");
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    calls.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        for swap in 0..20 {
            // Odd swaps install first-byte, even ones key-hash again.
            let (plugin_name, want) = if swap % 2 == 0 {
                ("first-byte", &by_first_byte)
            } else {
                ("key-hash", &by_key_hash)
            };
            let meta = upload(&registry, "router", swap + 2, plugin_name);
            // The first call after the swap already runs the new version.
            assert_eq!(partitioner.current().version(), meta.version);
            assert_eq!(
                &partitioner.partition(&views, count).expect("runs"),
                want,
                "after swap {swap}"
            );
            // Let the callers run a little on this version before the next swap.
            let seen = calls.load(Ordering::Relaxed);
            while calls.load(Ordering::Relaxed) < seen + 5 {
                std::thread::yield_now();
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    assert_eq!(failures.load(Ordering::Relaxed), 0);
    assert!(calls.load(Ordering::Relaxed) >= 100);
}
