//! A plugin is contained: time, memory, traps and the sandbox.

use std::time::Duration;

use quiver_plugin_host::{
    FilterPlugin, LogSource, PluginError, PluginLimits, PluginSource, RecordView,
};

use crate::support::{host, load, params, record};

fn misbehave(
    limits: PluginLimits,
) -> (
    FilterPlugin,
    quiver_plugin_host::PluginHost,
    tempfile::TempDir,
) {
    let (host, dir) = host();
    let plugin = FilterPlugin::new(
        PluginSource::pinned(load(&host, "misbehave", Some(limits))),
        params(&[]),
    )
    .expect("binds");
    (plugin, host, dir)
}

fn keep_key(plugin: &FilterPlugin, key: &str) -> Result<Vec<bool>, PluginError> {
    let records = [record(0, Some(key.as_bytes()), Some(b"hello"), &[])];
    let views: Vec<RecordView> = records.iter().map(RecordView::from).collect();
    plugin.keep(&views)
}

#[test]
fn an_endless_loop_times_out_and_the_next_call_succeeds() {
    let limits = PluginLimits {
        call_timeout: Duration::from_millis(50),
        ..PluginLimits::default()
    };
    let (plugin, _host, _dir) = misbehave(limits);
    match keep_key(&plugin, "spin") {
        Err(PluginError::Timeout { plugin, timeout_ms }) => {
            assert_eq!((plugin.as_str(), timeout_ms), ("misbehave", 50))
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(
        keep_key(&plugin, "fine").expect("a fresh instance answers"),
        vec![true]
    );
    let log = plugin.current().log().read(0, 100);
    assert!(
        log.iter()
            .any(|e| e.source == LogSource::Host && e.message.contains("timed out")),
        "{log:?}"
    );
}

#[test]
fn unbounded_allocation_hits_the_memory_cap() {
    let limits = PluginLimits {
        memory_bytes: 16 << 20,
        ..PluginLimits::default()
    };
    let (plugin, _host, _dir) = misbehave(limits);
    match keep_key(&plugin, "hog") {
        Err(PluginError::Memory { plugin, cap_bytes }) => {
            assert_eq!((plugin.as_str(), cap_bytes), ("misbehave", 16 << 20))
        }
        other => panic!("expected the memory cap, got {other:?}"),
    }
    assert_eq!(
        keep_key(&plugin, "fine").expect("a fresh instance answers"),
        vec![true]
    );
}

#[test]
fn a_trap_is_a_typed_error_and_the_instance_is_replaced() {
    let (plugin, _host, _dir) = misbehave(PluginLimits::default());
    for _ in 0..3 {
        match keep_key(&plugin, "trap") {
            Err(PluginError::Trap { plugin, .. }) => assert_eq!(plugin, "misbehave"),
            other => panic!("expected a trap, got {other:?}"),
        }
        assert_eq!(
            keep_key(&plugin, "fine").expect("a fresh instance answers"),
            vec![true]
        );
    }
}

#[test]
fn a_trap_names_the_plugin_the_call_and_the_panic_and_logs_the_backtrace() {
    let (plugin, _host, _dir) = misbehave(PluginLimits::default());
    let log = plugin.current().log().clone();
    let start = log.next_seq();
    let err = keep_key(&plugin, "trap").expect_err("traps");
    match &err {
        PluginError::Trap {
            plugin,
            version,
            during,
            message,
        } => {
            assert_eq!(
                (plugin.as_str(), *version, *during),
                ("misbehave", 1, "keep")
            );
            assert!(
                message.starts_with("panicked at misbehave/src/lib.rs:")
                    && message.ends_with("asked to trap"),
                "{message}"
            );
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.starts_with("plugin `misbehave@1` trapped in keep: panicked at misbehave/src/lib.rs:"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 1, "one line for the client: {text}");
    assert!(!text.contains("backtrace:\n"), "{text}");
    let entries = log.read(start, 100);
    assert!(
        entries.iter().any(|e| e.source == LogSource::Host
            && e.message.contains("asked to trap")
            && e.message.contains("wasm backtrace")),
        "the backtrace is in the log: {entries:?}"
    );
}

#[test]
fn work_within_a_limit_passes_and_past_it_fails() {
    let limits = PluginLimits {
        call_timeout: Duration::from_millis(100),
        memory_bytes: 32 << 20,
        ..PluginLimits::default()
    };
    let (plugin, _host, _dir) = misbehave(limits);
    let call = |key: &str, value: &str| {
        let records = [record(0, Some(key.as_bytes()), Some(value.as_bytes()), &[])];
        let views: Vec<RecordView> = records.iter().map(RecordView::from).collect();
        plugin.keep(&views)
    };
    assert_eq!(call("busy", "10").expect("quick"), vec![true]);
    assert!(matches!(
        call("busy", "400"),
        Err(PluginError::Timeout { .. })
    ));
    assert_eq!(call("alloc", "8").expect("small"), vec![true]);
    assert!(matches!(
        call("alloc", "64"),
        Err(PluginError::Memory { .. })
    ));
}

#[test]
fn the_sandbox_grants_no_files_no_sockets_no_environment() {
    // The test process has environment variables (cargo sets several); none may leak.
    let (plugin, _host, _dir) = misbehave(PluginLimits::default());
    // The plugin fails its call with the denial it met; a kept record would mean the
    // probe worked.
    for (key, what) in [
        ("read-file", "read-file denied"),
        ("socket", "socket denied"),
    ] {
        match keep_key(&plugin, key) {
            Err(PluginError::Guest { plugin, error }) => {
                assert_eq!(plugin, "misbehave");
                assert!(error.to_string().contains(what), "{key}: {error}");
            }
            other => panic!("{key}: expected the denial as a guest error, got {other:?}"),
        }
    }
    assert_eq!(
        keep_key(&plugin, "env").expect("answers"),
        vec![false],
        "no environment"
    );
    let log = plugin.current().log().read(0, 100);
    assert!(
        log.iter().any(|e| e.message.starts_with("read-file:")),
        "{log:?}"
    );
}

#[test]
fn stdout_stderr_and_the_log_import_land_in_the_plugin_log() {
    let (plugin, _host, _dir) = misbehave(PluginLimits::default());
    let log = plugin.current().log().clone();
    let start = log.next_seq();
    keep_key(&plugin, "print").expect("prints");
    keep_key(&plugin, "log").expect("logs");
    let entries = log.read(start, 100);
    let find = |source: LogSource, text: &str| {
        entries
            .iter()
            .any(|e| e.source == source && e.message == text)
    };
    assert!(find(LogSource::Stdout, "stdout: hello"), "{entries:?}");
    assert!(find(LogSource::Stderr, "stderr: hello"), "{entries:?}");
    assert!(find(LogSource::Guest, "hello"), "{entries:?}");
}

#[test]
fn many_threads_share_one_binding() {
    let (plugin, _host, _dir) = misbehave(PluginLimits::default());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..50 {
                    assert_eq!(keep_key(&plugin, "fine").expect("answers"), vec![true]);
                }
            });
        }
    });
}
