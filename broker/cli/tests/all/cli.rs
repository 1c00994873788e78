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
        .env_remove("QUIVER_PROFILE")
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
    let (child, _) = spawn_dev(home.path(), work.path(), &[]);
    Dev { child, home, work }
}

/// Starts `quiver dev` in `cwd` with profiles in `home`; returns it and its banner (the
/// lines up to the SDK hint).
fn spawn_dev(home: &Path, cwd: &Path, extra: &[&str]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["dev", "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0"])
        .args(extra)
        .env("QUIVER_HOME", home)
        .env_remove("QUIVER_PROFILE")
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn quiver dev");
    let banner = banner_until(&mut child, "  SDK: ");
    assert!(
        banner.starts_with("quiver dev: listening on quic://127.0.0.1:"),
        "{banner}"
    );
    (child, banner)
}

/// What a broker child printed on stdout up to the line holding `marker` (or its end).
fn banner_until(child: &mut Child, marker: &str) -> String {
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut banner = String::new();
    while !banner.contains(marker) {
        let mut line = String::new();
        if stdout.read_line(&mut line).expect("banner line") == 0 {
            break;
        }
        banner += &line;
    }
    banner
}

/// The source and value `topic describe` shows for `key`.
fn config_row(desc: &str, key: &str) -> (String, String) {
    let line = desc
        .lines()
        .find(|l| l.split_whitespace().next() == Some(key))
        .unwrap_or_else(|| panic!("no {key} in {desc}"));
    let rest = line[key.len()..].trim();
    let (source, value) = rest.rsplit_once(' ').unwrap_or(("", rest));
    (source.trim().to_owned(), value.to_owned())
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
    // Which configs the topic sets and which are defaults.
    let desc = ok(&run(&["topic", "describe", "orders"], None));
    assert_eq!(
        config_row(&desc, "retention.ms"),
        ("topic".into(), "3600000".into())
    );
    assert_eq!(
        config_row(&desc, "segment.bytes"),
        ("default".into(), "1073741824".into())
    );

    // A time to start from: an hour ago finds everything, a future time nothing.
    let all = ok(&run(&["consume", "orders", "--from", "-1h"], None));
    assert_eq!(all.lines().count(), 7, "{all}");
    let none = ok(&run(
        &["consume", "orders", "--from", "@4102444800000"],
        None,
    ));
    assert!(none.is_empty(), "{none}");
    let since = ok(&run(
        &["consume", "orders", "--from", "@2020-01-01T00:00:00Z"],
        None,
    ));
    assert_eq!(since.lines().count(), 7, "{since}");

    // A group reads, commits, and describe lists every partition with its lag.
    let read = ok(&run(
        &["consume", "orders", "--group", "tour", "--count", "3"],
        None,
    ));
    assert_eq!(read.lines().count(), 3, "{read}");
    let group = ok(&run(&["group", "describe", "tour"], None));
    // TOPIC PARTITION MEMBER COMMITTED END LAG; "-" where the group has no commit.
    let rows: Vec<Vec<&str>> = group
        .lines()
        .filter(|l| l.starts_with("orders "))
        .map(|l| l.split_whitespace().collect())
        .collect();
    let partitions: Vec<&str> = rows.iter().map(|r| r[1]).collect();
    assert_eq!(partitions, ["0", "1", "2"], "{group}");
    let number = |v: &str| v.parse::<i64>().unwrap_or(0);
    let committed: i64 = rows.iter().map(|r| number(r[3])).sum();
    let ends: i64 = rows.iter().map(|r| number(r[4])).sum();
    assert_eq!((committed, ends), (3, 7), "{group}");

    ok(&run(
        &["topic", "alter", "orders", "--set", "retention.ms=60000"],
        None,
    ));
    let desc = ok(&run(&["topic", "describe", "orders"], None));
    assert_eq!(
        config_row(&desc, "retention.ms"),
        ("topic".into(), "60000".into())
    );

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

    let status = ok(&run(&["cluster", "status"], None));
    assert!(status.contains("single node (broker 0)"), "{status}");
    assert!(
        status.contains(" 0 offline, 0 under-replicated"),
        "{status}"
    );

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
    assert_eq!(
        config_row(&desc, "segment.bytes"),
        ("topic".into(), "1048576".into())
    );
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

#[test]
fn dev_profiles_are_one_per_data_dir_and_a_stopped_broker_is_named() {
    let home = tempfile::tempdir().expect("home");
    let (a, b, c) = (
        tempfile::tempdir().expect("a"),
        tempfile::tempdir().expect("b"),
        tempfile::tempdir().expect("c"),
    );
    let elsewhere = tempfile::tempdir().expect("elsewhere");
    let run = |args: &[&str]| quiver(home.path(), elsewhere.path(), args, None);
    let (alpha, banner) = spawn_dev(home.path(), a.path(), &["--data", "alpha"]);
    assert!(banner.contains("profile:     alpha"), "{banner}");
    let (beta, _) = spawn_dev(home.path(), b.path(), &["--data", "beta"]);
    let mut devs = [alpha, beta];

    // Two running: a command must be told which, and --profile tells it.
    let out = run(&["topic", "list"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("several dev brokers are running"), "{err}");
    assert!(err.contains("alpha") && err.contains("beta"), "{err}");
    ok(&run(&[
        "--profile",
        "alpha",
        "topic",
        "create",
        "only-alpha",
    ]));
    assert!(ok(&run(&["--profile", "alpha", "topic", "list"])).contains("only-alpha"));
    assert!(!ok(&run(&["--profile", "beta", "topic", "list"])).contains("only-alpha"));

    // A third broker on another directory of the same name does not take the profile.
    let out = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["dev", "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0"])
        .args(["--data", "alpha"])
        .env("QUIVER_HOME", home.path())
        .current_dir(c.path())
        .stdin(Stdio::null())
        .output()
        .expect("third dev");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("profile 'alpha' belongs to"), "{err}");

    // A killed broker leaves its profile; commands name it instead of timing out.
    let _ = devs[0].kill();
    let _ = devs[0].wait();
    let out = run(&["--profile", "alpha", "topic", "list"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("dev broker of profile 'alpha'") && err.contains("not running"),
        "{err}"
    );
    // Without a name, the one still running is used.
    ok(&run(&["topic", "list"]));
    let _ = devs[1].kill();
    let _ = devs[1].wait();
    let out = run(&["topic", "list"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not running"), "{err}");
}

#[test]
fn serve_with_a_self_signed_certificate_says_where_it_is() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let config = dir.path().join("quiver.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n",
            data.display().to_string()
        ),
    )
    .expect("write config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn quiver serve");
    let banner = banner_until(&mut child, "metrics:");
    let _ = child.kill();
    let _ = child.wait();
    let cert = banner
        .lines()
        .find_map(|l| l.trim().strip_prefix("certificate: "))
        .and_then(|rest| rest.split(" (self-signed").next())
        .unwrap_or_else(|| panic!("no certificate line in {banner}"));
    assert!(Path::new(cert).is_file(), "{cert} from {banner}");
    assert!(cert.ends_with("tls/cert.pem"), "{banner}");
    assert!(
        banner.contains("metrics:     http://127.0.0.1:"),
        "{banner}"
    );
}

#[test]
fn dev_takes_a_free_metrics_port_when_its_own_is_taken() {
    let home = tempfile::tempdir().expect("home");
    let work = tempfile::tempdir().expect("work");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken_addr = taken.local_addr().expect("addr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["dev", "--listen", "127.0.0.1:0", "--metrics"])
        .arg(taken_addr.to_string())
        .env("QUIVER_HOME", home.path())
        .current_dir(work.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn quiver dev");
    let banner = banner_until(&mut child, "metrics:");
    let _ = child.kill();
    let _ = child.wait();
    let shown = banner
        .lines()
        .find_map(|l| l.trim().strip_prefix("metrics:"))
        .unwrap_or_else(|| panic!("the dev broker did not start with metrics: {banner}"));
    assert!(shown.contains("http://127.0.0.1:"), "{banner}");
    assert!(
        !shown.contains(&format!(":{}/", taken_addr.port())),
        "{banner}"
    );
}

#[test]
fn dev_with_three_nodes_is_a_cluster_every_command_finds() {
    let home = tempfile::tempdir().expect("home");
    let work = tempfile::tempdir().expect("work");
    let (child, banner) = spawn_dev(home.path(), work.path(), &["--nodes", "3"]);
    let _dev = Dev { child, home, work };
    let (home, work) = (_dev.home.path(), _dev.work.path());
    let first = banner.lines().next().unwrap_or_default();
    assert_eq!(first.matches("quic://").count(), 3, "{banner}");
    assert!(banner.contains("replication factor 3"), "{banner}");
    let run = |args: &[&str], stdin: Option<&str>| quiver(home, work, args, stdin);
    // No flags: the profile names the three brokers and the cluster's CA.
    ok(&run(
        &["topic", "create", "orders", "--partitions", "3"],
        None,
    ));
    let desc = ok(&run(&["topic", "describe", "orders"], None));
    assert!(desc.contains("replication 3"), "{desc}");
    assert!(
        desc.contains("min.insync.replicas") && desc.contains("broker default"),
        "{desc}"
    );
    // Every partition on three brokers, all in sync, leaders spread.
    let rows: Vec<Vec<&str>> = desc
        .lines()
        .skip_while(|l| !l.contains("PARTITION"))
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 3, "{desc}");
    let leaders: std::collections::BTreeSet<&str> = rows.iter().map(|r| r[1]).collect();
    assert_eq!(leaders.len(), 3, "{desc}");
    for r in &rows {
        assert_eq!(r[3].split(',').count(), 3, "{desc}");
        assert_eq!(r[4].split(',').count(), 3, "{desc}");
    }
    // Records go to each partition's leader and come back from it.
    ok(&run(
        &["produce", "orders", "--partition", "1"],
        Some("a\nb\nc\n"),
    ));
    let read_back = || {
        ok(&run(
            &[
                "consume",
                "orders",
                "--partition",
                "1",
                "--from",
                "earliest",
                "--count",
                "3",
            ],
            None,
        ))
    };
    let read = read_back();
    assert_eq!(read.lines().collect::<Vec<_>>(), ["a", "b", "c"], "{read}");
    let status = ok(&run(&["cluster", "status"], None));
    assert_eq!(status.matches(" active").count(), 3, "{status}");
    assert!(status.contains("0 offline, 0 under-replicated"), "{status}");
    // A fourth broker joins as an observer, takes a partition, and is taken out.
    let voter = run(&["dev", "--join", "2", "--no-metrics"], None);
    assert!(!voter.status.success());
    let err = String::from_utf8_lossy(&voter.stderr);
    assert!(err.contains("broker 2 is a voter"), "{err}");
    let mut joined = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["dev", "--join", "4", "--no-metrics", "--owned-by-parent"])
        .env("QUIVER_HOME", home)
        .env_remove("QUIVER_PROFILE")
        .current_dir(work)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn quiver dev --join");
    let banner = banner_until(&mut joined, "take it out");
    assert!(banner.contains("broker 4 joined"), "{banner}");
    let status = ok(&run(&["cluster", "status"], None));
    assert!(status.contains("observer"), "{status}");
    ok(&run(
        &["topic", "reassign", "orders", "1", "--replicas", "4,1,2"],
        None,
    ));
    ok(&run(&["cluster", "drain", "4", "--timeout", "60"], None));
    ok(&run(&["cluster", "remove", "4"], None));
    let status = ok(&run(&["cluster", "status"], None));
    assert!(!status.contains("observer"), "{status}");
    drop(joined.stdin.take());
    let _ = joined.wait();
    // The partition the observer held for a while is whole.
    let read = read_back();
    assert_eq!(read.lines().collect::<Vec<_>>(), ["a", "b", "c"], "{read}");
    // A single broker is not started over the cluster's data (it would take the
    // brokers' directories for a deleted topic's).
    let single = run(&["dev", "--listen", "127.0.0.1:0", "--no-metrics"], None);
    assert!(!single.status.success());
    let err = String::from_utf8_lossy(&single.stderr);
    assert!(err.contains("holds a dev cluster"), "{err}");
    assert!(work.join("quiver-data").join("node-1").is_dir());
}
