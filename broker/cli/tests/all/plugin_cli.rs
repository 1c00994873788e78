//! The plugin developer loop as a user runs it: `quiver dev --plugins DIR` loads and
//! hot-reloads the components in DIR, and `quiver plugin ...` and `quiver consume
//! --filter` work against it with no flags. Plugins come from `plugins/build.sh`, run
//! once per test process (shared with the `plugins` tests).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use quiver_sdk::partitioner::partition_for_key;

/// A `quiver dev --plugins DIR` child, its stdout as a stream of lines.
struct Dev {
    child: Child,
    home: tempfile::TempDir,
    work: tempfile::TempDir,
    /// Kept for its lifetime: the watched directory.
    _plugins: tempfile::TempDir,
    lines: Receiver<String>,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Dev {
    fn start(plugins: tempfile::TempDir) -> Dev {
        let home = tempfile::tempdir().expect("home");
        let work = tempfile::tempdir().expect("work");
        let mut child = Command::new(env!("CARGO_BIN_EXE_quiver"))
            .args([
                "dev",
                "--listen",
                "127.0.0.1:0",
                "--metrics",
                "127.0.0.1:0",
                "--plugins",
            ])
            .arg(plugins.path())
            .env("QUIVER_HOME", home.path())
            .current_dir(work.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn quiver dev");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Dev {
            child,
            home,
            work,
            _plugins: plugins,
            lines,
        }
    }

    /// The next line of `quiver dev` that contains `needle`; earlier lines are skipped.
    /// The timeout is a safety net (compiling a component takes a moment in debug).
    fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => panic!("no line with {needle:?} from quiver dev"),
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("quiver dev exited before printing {needle:?}")
                }
            }
        }
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_quiver"))
            .args(args)
            .env("QUIVER_HOME", self.home.path())
            .env_remove("QUIVER_BROKER")
            .env_remove("QUIVER_CA")
            .current_dir(self.work.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn quiver");
        let mut input = child.stdin.take().expect("stdin");
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).expect("write stdin");
        }
        drop(input);
        child.wait_with_output().expect("quiver runs")
    }

    /// Runs a command that must succeed and returns its stdout.
    fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin);
        assert!(
            out.status.success(),
            "quiver {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a command that must fail with one line on stderr, and returns that line.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args, None);
        assert!(!out.status.success(), "quiver {args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        assert_eq!(err.lines().count(), 1, "one line expected: {err}");
        err
    }
}

/// `(offset, key, partition)` of each decision line of `quiver plugin test` on a
/// partitioner: `   3  key=alice   -> partition 2`.
fn routes(test_output: &str) -> Vec<(i64, String, u32)> {
    test_output
        .lines()
        .filter(|l| l.contains("-> partition"))
        .map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let offset = words[0].parse().expect("offset");
            let key = words[1].strip_prefix("key=").expect("key").to_string();
            let partition = words[words.len() - 1].parse().expect("partition");
            (offset, key, partition)
        })
        .collect()
}

/// `(partition, key)` of each record of a topic, read with `quiver consume`.
fn placed(dev: &Dev, topic: &str) -> Vec<(u32, String)> {
    dev.ok(&["consume", topic, "--format", "{partition} {key}"], None)
        .lines()
        .map(|l| {
            let (p, k) = l.split_once(' ').expect("partition and key");
            (p.parse().expect("partition"), k.to_string())
        })
        .collect()
}

fn first_byte(key: &str, partitions: u32) -> u32 {
    u32::from(key.as_bytes()[0]) % partitions
}

#[test]
fn dev_loads_tests_reloads_and_filters_plugins() {
    let wasm = crate::plugins::plugin_dir();
    let dir = tempfile::tempdir().expect("plugins dir");
    let router = dir.path().join("router.wasm");
    std::fs::copy(wasm.join("key-hash.wasm"), &router).expect("copy key-hash");
    let dev = Dev::start(dir);
    // A line says what is loading before the broker compiles it, then one when done.
    let loading = dev.wait_for("loading plugin router (");
    assert!(loading.contains("compiling..."), "{loading}");
    let loaded = dev.wait_for("loaded router v1");
    assert!(loaded.contains("(partitioner)"), "{loaded}");

    let list = dev.ok(&["plugin", "list"], None);
    let row = list
        .lines()
        .find(|l| l.starts_with("router "))
        .unwrap_or_else(|| panic!("router missing from:\n{list}"));
    assert!(row.contains("partitioner") && row.contains("v1"), "{row}");

    // A topic bound to the plugin; partition 0 also gets records placed by hand, which
    // `plugin test` then runs over.
    dev.ok(
        &[
            "topic",
            "create",
            "orders",
            "--partitions",
            "4",
            "--config",
            "partitioner=router",
        ],
        None,
    );
    let keys = ["alice", "bob", "carol", "dave", "erin", "frank"];
    let lines: String = keys.iter().map(|k| format!("{k}:order of {k}\n")).collect();
    dev.ok(
        &[
            "produce",
            "orders",
            "--partition",
            "0",
            "--key-separator",
            ":",
        ],
        Some(&lines),
    );
    let out = dev.ok(&["plugin", "test", "router", "--topic", "orders"], None);
    assert!(out.contains("router v1 (partitioner) on orders-0"), "{out}");
    let expected: Vec<(i64, String, u32)> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (i as i64, k.to_string(), partition_for_key(k.as_bytes(), 4)))
        .collect();
    assert_eq!(routes(&out), expected, "{out}");
    assert!(
        out.lines()
            .last()
            .is_some_and(|l| l.starts_with("6 records (")),
        "{out}"
    );

    // Produced without a partition: the broker routes with the plugin, as Kafka would.
    let routed = ["r-alice", "r-bob", "r-carol", "r-dave"];
    let lines: String = routed.iter().map(|k| format!("{k}:x\n")).collect();
    dev.ok(&["produce", "orders", "--key-separator", ":"], Some(&lines));
    for (p, k) in placed(&dev, "orders")
        .iter()
        .filter(|(_, k)| k.starts_with("r-"))
    {
        assert_eq!(*p, partition_for_key(k.as_bytes(), 4), "key {k}");
    }

    // A different build copied over the file becomes version 2, and is what runs.
    std::fs::copy(wasm.join("first-byte.wasm"), &router).expect("copy first-byte");
    let reloaded = dev.wait_for("reloaded router v2");
    assert!(reloaded.contains("(partitioner) in "), "{reloaded}");
    let desc = dev.ok(&["plugin", "describe", "router"], None);
    assert!(desc.contains("current v2"), "{desc}");
    assert!(desc.contains("bound topics: orders"), "{desc}");
    assert!(
        desc.lines().any(|l| l.trim_start().starts_with("v1 ")),
        "{desc}"
    );
    assert!(
        desc.lines()
            .any(|l| l.trim_start().starts_with("v2 ") && l.contains("(current)")),
        "{desc}"
    );
    let out = dev.ok(
        &["plugin", "test", "router", "--topic", "orders", "-n", "6"],
        None,
    );
    assert!(out.contains("router v2 (partitioner)"), "{out}");
    let now: Vec<(i64, String, u32)> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (i as i64, k.to_string(), first_byte(k, 4)))
        .collect();
    assert_eq!(routes(&out), now, "{out}");
    assert_ne!(
        now, expected,
        "the two builds must route these keys differently"
    );
    let again = ["a-1", "b-1", "c-1", "d-1"];
    let lines: String = again.iter().map(|k| format!("{k}:y\n")).collect();
    dev.ok(&["produce", "orders", "--key-separator", ":"], Some(&lines));
    let placed_now = placed(&dev, "orders");
    for k in again {
        assert!(
            placed_now.contains(&(first_byte(k, 4), k.to_string())),
            "{k} not routed by first-byte: {placed_now:?}"
        );
    }

    // A broken file is refused with one line; version 2 stays current.
    std::fs::write(&router, b"not a component").expect("write garbage");
    let refused = dev.wait_for("router: ");
    assert!(refused.contains("was not loaded"), "{refused}");
    assert!(refused.contains("v2 stays current"), "{refused}");
    assert!(
        dev.ok(&["plugin", "describe", "router"], None)
            .contains("current v2")
    );
    // The refusal is in the plugin's log on the broker too, not only in this terminal.
    let logs = dev.ok(&["plugin", "logs", "router"], None);
    assert!(
        logs.lines()
            .any(|l| l.contains("ERROR - [host] upload refused: ") && l.contains("router")),
        "{logs}"
    );

    // Removing a bound plugin is refused and says what to do.
    let err = dev.fails(&["plugin", "remove", "router"]);
    assert!(err.contains("cannot remove plugin 'router'"), "{err}");
    assert!(err.contains("--force"), "{err}");

    // A filter added by hand, with parameters from the consume command.
    let added = dev.ok(
        &[
            "plugin",
            "add",
            "only-big",
            wasm.join("json-filter.wasm").to_str().expect("utf-8 path"),
        ],
        None,
    );
    assert!(added.starts_with("added only-big v1 (filter"), "{added}");
    dev.ok(&["topic", "create", "events"], None);
    let events = "{\"n\":1}\n{\"n\":5}\nnot json\n{\"n\":2}\n{\"n\":9}\n{\"n\":3}\n";
    dev.ok(&["produce", "events"], Some(events));
    // The same filter on a plain consumer's fetches and on a consumer group's.
    let filter = [
        "--filter",
        "only-big",
        "--param",
        "field=n",
        "--param",
        "op=gt",
        "--param",
        "value=3",
        "--format",
        "{offset} {value}",
    ];
    for group in [&[][..], &["--group", "big-readers"][..]] {
        let args: Vec<&str> = ["consume", "events"]
            .iter()
            .chain(group)
            .chain(&filter)
            .copied()
            .collect();
        let out = dev.ok(&args, None);
        assert_eq!(
            out.lines().collect::<Vec<_>>(),
            ["1 {\"n\":5}", "4 {\"n\":9}"],
            "{args:?}"
        );
    }
    let out = dev.ok(
        &[
            "plugin", "test", "only-big", "--topic", "events", "--param", "field=n", "--param",
            "op=gt", "--param", "value=3",
        ],
        None,
    );
    assert!(out.contains("6 records: 2 kept, 4 dropped"), "{out}");

    // Errors about plugins are one readable line too.
    let err = dev.fails(&["plugin", "describe", "no-such-plugin"]);
    assert!(err.contains("no-such-plugin"), "{err}");
    let err = dev.fails(&["plugin", "add", "x", "/nonexistent/x.wasm"]);
    assert!(err.contains("/nonexistent/x.wasm"), "{err}");
}

#[test]
fn limits_are_set_per_plugin_and_filters_are_checked_when_a_consume_starts() {
    let test_plugins = crate::plugins::test_plugin_dir();
    let misbehave = test_plugins.join("misbehave.wasm");
    let misbehave = misbehave.to_str().expect("utf-8 path");
    let dev = Dev::start(tempfile::tempdir().expect("plugins dir"));
    dev.wait_for("watching");

    // Bounds are checked by the command line, naming the flag.
    let out = dev.run(
        &["plugin", "add", "slow", misbehave, "--timeout-ms", "5"],
        None,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--timeout-ms"), "{err}");

    // A lowered limit fails a call the default lets through; raised again, it passes.
    let added = dev.ok(
        &[
            "plugin",
            "add",
            "slow",
            misbehave,
            "--timeout-ms",
            "50",
            "--memory-mib",
            "16",
        ],
        None,
    );
    assert!(added.starts_with("added slow v1 (filter"), "{added}");
    let desc = dev.ok(&["plugin", "describe", "slow"], None);
    assert!(desc.contains("50 ms, 16.0 MiB"), "{desc}");
    dev.ok(&["topic", "create", "work"], None);
    dev.ok(
        &["produce", "work", "--key-separator", ":"],
        Some("busy:300\nalloc:48\n"),
    );
    let consume = |args: &[&str]| {
        let mut all = vec!["consume", "work", "--filter", "slow", "--format", "{key}"];
        all.extend_from_slice(args);
        dev.run(&all, None)
    };
    let out = consume(&["-p", "0", "--from", "0", "-n", "1"]);
    assert!(!out.status.success(), "busy 300 ms within 50 ms");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("timed out after 50 ms"), "{err}");
    assert!(err.contains("--timeout-ms"), "names the setting: {err}");
    let out = consume(&["-p", "0", "--from", "1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("out of memory"), "{err}");
    assert!(err.contains("--memory-mib"), "names the setting: {err}");
    dev.ok(
        &[
            "plugin",
            "add",
            "slow",
            misbehave,
            "--timeout-ms",
            "5000",
            "--memory-mib",
            "128",
        ],
        None,
    );
    let out = dev.ok(
        &["consume", "work", "--filter", "slow", "--format", "{key}"],
        None,
    );
    assert_eq!(out.lines().collect::<Vec<_>>(), ["busy", "alloc"], "{out}");
    // A version uploaded without the flags keeps the previous version's limits.
    dev.ok(&["plugin", "add", "slow", misbehave], None);
    let desc = dev.ok(&["plugin", "describe", "slow"], None);
    assert!(
        desc.lines()
            .any(|l| l.contains("5000 ms, 128.0 MiB") && l.contains("(current)")),
        "{desc}"
    );

    // A filter is checked when the consume starts, even on an empty topic.
    dev.ok(&["topic", "create", "quiet"], None);
    dev.ok(
        &[
            "plugin",
            "add",
            "big",
            crate::plugins::plugin_dir()
                .join("json-filter.wasm")
                .to_str()
                .expect("utf-8 path"),
        ],
        None,
    );
    dev.ok(
        &[
            "plugin",
            "add",
            "router",
            crate::plugins::plugin_dir()
                .join("key-hash.wasm")
                .to_str()
                .expect("utf-8 path"),
        ],
        None,
    );
    let err = dev.fails(&["consume", "quiet", "--filter", "nosuch"]);
    assert!(err.contains("no plugin named `nosuch`"), "{err}");
    let err = dev.fails(&["consume", "quiet", "--filter", "router"]);
    assert!(err.contains("filter `router` is not a filter"), "{err}");
    assert!(err.contains("partitioner"), "{err}");
    let err = dev.fails(&["consume", "quiet", "--filter", "big"]);
    assert!(err.contains("filter `big` refused its parameters"), "{err}");
    assert!(err.contains("field"), "names the parameter: {err}");
    let err = dev.fails(&["consume", "quiet", "--group", "g", "--filter", "nosuch"]);
    assert!(err.contains("nosuch"), "{err}");
    let out = dev.ok(
        &[
            "consume",
            "quiet",
            "--filter",
            "big",
            "--param",
            "field=n",
            "--param",
            "op=exists",
        ],
        None,
    );
    assert!(out.is_empty(), "{out}");
}

#[test]
fn test_plugins_are_built_apart_from_the_examples() {
    let examples = crate::plugins::plugin_dir();
    let tests = crate::plugins::test_plugin_dir();
    for name in ["misbehave", "forbidden-import"] {
        let file = format!("{name}.wasm");
        assert!(tests.join(&file).is_file(), "{name} in {}", tests.display());
        assert!(
            !examples.join(&file).exists(),
            "{name} must not be in {}, which `quiver dev --plugins` loads",
            examples.display()
        );
    }
    assert!(examples.join("key-hash.wasm").is_file());
}
