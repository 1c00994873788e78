//! `quiver bench` runs its broker as a child process, which must not outlive the
//! benchmark however the benchmark ends: not after a SIGKILL, which runs no destructor.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Process ids whose parent is `parent`, from `/proc/*/stat`.
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // "pid (comm) state ppid ...": the command name may hold spaces, so parse
            // after its closing parenthesis.
            let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
            after.split_whitespace().nth(1) == Some(&parent.to_string())
        })
        .collect()
}

/// Whether `pid` still runs (a zombie nobody reaped counts as gone).
fn running(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
    matches!(state, Some(s) if !s.starts_with('Z'))
}

/// The `--data` argument `pid` was started with.
fn data_arg(pid: u32) -> Option<PathBuf> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let mut args = cmdline.split(|b| *b == 0);
    args.find(|a| *a == b"--data")?;
    Some(PathBuf::from(
        String::from_utf8_lossy(args.next()?).into_owned(),
    ))
}

/// Kills a process left behind by a failing test, so it does not outlive the run either.
struct Reaper(Option<u32>);

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
    }
}

#[cfg(target_os = "linux")]
#[test]
fn a_killed_benchmark_takes_its_child_broker_and_its_data_with_it() {
    // The benchmark's own temporary directory outlives a SIGKILL (empty, once the broker
    // deleted its data in it): keep it inside one this test removes.
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut bench = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["bench", "produce", "--records", "1000000000", "--json"])
        .env("TMPDIR", tmp.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the benchmark starts");
    let mut reaper = Reaper(None);

    let deadline = Instant::now() + Duration::from_secs(60);
    let (broker, data) = loop {
        let found = children_of(bench.id())
            .into_iter()
            .find_map(|pid| Some((pid, data_arg(pid)?)));
        // Serving once it has made its data directory and TLS certificate.
        if let Some((pid, data)) = found
            && data.join("tls").exists()
        {
            break (pid, data);
        }
        assert!(Instant::now() < deadline, "no child broker started");
        std::thread::sleep(Duration::from_millis(50));
    };
    reaper.0 = Some(broker);
    // Let the benchmark get going, then end it the hard way.
    std::thread::sleep(Duration::from_millis(500));
    bench.kill().expect("SIGKILL the benchmark");
    bench.wait().expect("reaped");

    let deadline = Instant::now() + Duration::from_secs(20);
    while running(broker) || data.exists() {
        assert!(
            Instant::now() < deadline,
            "the child broker {broker} outlived its benchmark (running: {}, data kept: {})",
            running(broker),
            data.exists()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    reaper.0 = None;
}

/// Runs `quiver bench ARGS --json` and returns its JSON line.
fn bench_json(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .arg("bench")
        .args(args)
        .arg("--json")
        .env("QUIVER_LOG", "error")
        .stdin(Stdio::null())
        .output()
        .expect("run the benchmark");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{args:?} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON line in {stdout}"));
    serde_json::from_str(line).expect("the figures are JSON")
}

/// The cluster benchmarks run three `quiver serve` children: one failover trial kills
/// the partition's leader, the producer is acknowledged by the new one with nothing
/// failing, and the killed broker returns to the ISR; the idle figures read each
/// broker's CPU and memory. (What the numbers are is the benchmark's to report.)
#[cfg(target_os = "linux")]
#[test]
fn the_cluster_benchmarks_fail_over_and_read_three_brokers() {
    let failover = bench_json(&["cluster", "failover", "--trials", "1", "--rate", "100"]);
    assert_eq!(failover["trials"], 1, "{failover}");
    assert_eq!(failover["failed_deliveries"], 0, "{failover}");
    assert!(
        failover["median_ms"].as_f64().is_some_and(|ms| ms > 0.0),
        "{failover}"
    );
    let idle = bench_json(&[
        "cluster",
        "idle",
        "--partitions",
        "6",
        "--settle",
        "0",
        "--window",
        "1",
    ]);
    let brokers = idle["brokers"].as_array().expect("brokers");
    assert_eq!(brokers.len(), 3, "{idle}");
    assert!(
        brokers
            .iter()
            .all(|b| b["rss_mib"].as_f64().is_some_and(|m| m > 0.0)),
        "{idle}"
    );
}
