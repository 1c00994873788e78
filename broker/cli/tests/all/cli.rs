//! The `quiver` CLI as a user runs it: `quiver dev` in one place, commands with no flags
//! in another, trusting the dev certificate through the profile `dev` writes.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

struct Dev {
    child: Child,
    home: tempfile::TempDir,
    work: tempfile::TempDir,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn quiver(home: &Path, cwd: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(args)
        .env("QUIVER_HOME", home)
        .env_remove("QUIVER_BROKER")
        .env_remove("QUIVER_CA")
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn quiver");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    } else {
        drop(child.stdin.take());
    }
    child.wait_with_output().expect("quiver runs")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "quiver failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn start_dev() -> Dev {
    let home = tempfile::tempdir().expect("home");
    let work = tempfile::tempdir().expect("work");
    let mut child = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["dev", "--listen", "127.0.0.1:0"])
        .env("QUIVER_HOME", home.path())
        .current_dir(work.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn quiver dev");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("first line");
    assert!(
        first.starts_with("quiver dev: listening on quic://127.0.0.1:"),
        "{first}"
    );
    Dev { child, home, work }
}

#[test]
fn dev_then_every_command_with_no_flags() {
    let dev = start_dev();
    // Commands run from another directory: they find the broker through the profile.
    let elsewhere = tempfile::tempdir().expect("elsewhere");
    let run =
        |args: &[&str], stdin: Option<&str>| quiver(dev.home.path(), elsewhere.path(), args, stdin);

    ok(&run(
        &[
            "topic",
            "create",
            "orders",
            "--partitions",
            "3",
            "--config",
            "retention.ms=3600000",
        ],
        None,
    ));
    let list = ok(&run(&["topic", "list"], None));
    assert!(list.contains("orders"), "{list}");

    let lines = "alice:apple\nbob:banana\nalice:avocado\ncarol:cherry\n";
    ok(&run(
        &["produce", "orders", "--key-separator", ":"],
        Some(lines),
    ));
    let out = ok(&run(
        &["consume", "orders", "--format", "{key}={value}"],
        None,
    ));
    let mut got: Vec<&str> = out.lines().collect();
    got.sort();
    assert_eq!(
        got,
        ["alice=apple", "alice=avocado", "bob=banana", "carol=cherry"]
    );

    // Same key, same partition, in order.
    let out = ok(&run(
        &["consume", "orders", "--format", "{partition} {key} {value}"],
        None,
    ));
    let alice: Vec<&str> = out.lines().filter(|l| l.contains(" alice ")).collect();
    assert_eq!(alice.len(), 2);
    assert_eq!(alice[0].split(' ').next(), alice[1].split(' ').next());
    assert!(alice[0].ends_with("apple") && alice[1].ends_with("avocado"));

    // Partition, offset and count.
    ok(&run(
        &["produce", "orders", "--partition", "1"],
        Some("p1-a\np1-b\np1-c\n"),
    ));
    let out = ok(&run(
        &[
            "consume",
            "orders",
            "--partition",
            "1",
            "--count",
            "1",
            "--format",
            "{value}",
        ],
        None,
    ));
    assert_eq!(out.lines().count(), 1);
    // Past the end without --follow: nothing to print, and a note on stderr says why.
    let out = run(
        &["consume", "orders", "--partition", "1", "--from", "99"],
        None,
    );
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    let note = String::from_utf8_lossy(&out.stderr);
    assert!(note.contains("orders-1 ends at offset "), "{note}");
    assert!(note.contains("reading from 99 finds nothing"), "{note}");
    let desc = ok(&run(&["topic", "describe", "orders"], None));
    assert!(desc.contains("retention.ms = 3600000"), "{desc}");

    ok(&run(
        &["topic", "alter", "orders", "--set", "retention.ms=60000"],
        None,
    ));
    let desc = ok(&run(&["topic", "describe", "orders"], None));
    assert!(desc.contains("retention.ms = 60000"), "{desc}");

    // Errors are one line and a non-zero exit.
    let out = run(&["consume", "missing"], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown topic 'missing'"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let out = run(
        &["topic", "alter", "orders", "--set", "retention.ms=soon"],
        None,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("retention.ms=soon"));

    ok(&run(&["topic", "delete", "orders"], None));
    assert!(!ok(&run(&["topic", "list"], None)).contains("orders"));
    // The dev broker kept its data where it was started.
    assert!(dev.work.path().join("quiver-data/tls/cert.pem").exists());
}

#[test]
fn produce_to_a_missing_partition_fails_even_with_empty_input() {
    let dev = start_dev();
    let run =
        |args: &[&str], stdin: Option<&str>| quiver(dev.home.path(), dev.work.path(), args, stdin);
    ok(&run(
        &["topic", "create", "orders", "--partitions", "3"],
        None,
    ));
    for input in ["", "one\ntwo\n"] {
        let out = run(&["produce", "orders", "-p", "99"], Some(input));
        assert!(!out.status.success(), "input {input:?} exited 0");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("topic 'orders' has no partition 99"), "{err}");
        assert!(err.contains("it has 3"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    // The last partition is fine, with or without input.
    ok(&run(&["produce", "orders", "-p", "2"], Some("")));
    ok(&run(&["produce", "orders", "-p", "2"], Some("x\n")));
}

#[test]
fn topic_configs_out_of_range_are_refused_naming_the_range() {
    let dev = start_dev();
    let run = |args: &[&str]| quiver(dev.home.path(), dev.work.path(), args, None);
    for value in ["1", "100000000000000"] {
        let config = format!("segment.bytes={value}");
        let out = run(&["topic", "create", "tiny", "--config", &config]);
        assert!(!out.status.success(), "{config} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&config), "{err}");
        assert!(
            err.contains("1048576 (1 MiB) to 2147483648 (2 GiB)"),
            "{err}"
        );
    }
    assert!(!ok(&run(&["topic", "list"])).contains("tiny"));
    ok(&run(&["topic", "create", "orders"]));
    let out = run(&["topic", "alter", "orders", "--set", "segment.ms=1"]);
    assert!(!out.status.success(), "segment.ms=1 was accepted by alter");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("segment.ms=1 is out of range"), "{err}");
    ok(&run(&[
        "topic",
        "alter",
        "orders",
        "--set",
        "segment.bytes=1048576",
    ]));
    let desc = ok(&run(&["topic", "describe", "orders"]));
    assert!(desc.contains("segment.bytes = 1048576"), "{desc}");
}

#[test]
fn client_commands_without_a_broker_say_what_to_do() {
    let home = tempfile::tempdir().expect("home");
    let cwd = tempfile::tempdir().expect("cwd");
    let out = quiver(home.path(), cwd.path(), &["topic", "list"], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("quiver dev"), "{err}");
}
