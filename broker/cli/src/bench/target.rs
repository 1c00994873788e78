//! The broker a benchmark talks to: an external one (`--broker`), or a child `quiver dev`
//! process on a temporary data dir whose memory can be read from `/proc`.

use crate::output::say;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use quiver_sdk::{Client, ClientOptions};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

use super::report::Report;
use crate::connect::ConnectArgs;

/// A broker for the length of one benchmark.
#[derive(Debug)]
pub struct Target {
    pub url: String,
    pub ca: PathBuf,
    /// How clients connect: trusting `ca`, with the credentials given for an external
    /// broker.
    options: ClientOptions,
    child: Option<Child>,
    /// The child broker's stdin: it stops when this closes (see `--owned-by-parent`).
    _lifeline: Option<ChildStdin>,
    /// The child broker's data, deleted when the target is dropped or stopped.
    data_dir: Option<tempfile::TempDir>,
}

/// Flags that choose the target.
#[derive(Debug, Clone, clap::Args)]
pub struct TargetArgs {
    /// Use the broker given by --broker/--ca (or the dev profile) instead of starting a
    /// child broker.
    #[arg(long)]
    pub external: bool,
    /// Topic configs of the child broker, key=value (default flush=os).
    #[arg(long = "broker-config", value_parser = crate::topic::parse_kv)]
    pub broker_configs: Vec<(String, String)>,
}

/// `quiver dev` as a child of this process, on an ephemeral port and without a CLI
/// profile, logging only warnings and errors (they interleave with the report).
///
/// It is given `--owned-by-parent` and a piped stdin: keep the `ChildStdin` for as long
/// as the broker should run. The child stops when the pipe closes, which happens however
/// this process ends (a closed stdout, `timeout`'s SIGTERM, SIGKILL), whereas
/// `kill_on_drop` covers only an orderly drop; it then deletes its data directory.
pub(super) fn child_dev_command(data: &std::path::Path) -> anyhow::Result<Command> {
    child_dev_command_on(data, "127.0.0.1:0")
}

/// [`child_dev_command`] listening on `listen`, for a broker started again on the port
/// of the one it replaces.
pub(super) fn child_dev_command_on(
    data: &std::path::Path,
    listen: &str,
) -> anyhow::Result<Command> {
    let exe = std::env::current_exe().context("finding the quiver binary")?;
    let mut cmd = Command::new(exe);
    cmd.arg("dev")
        .arg("--data")
        .arg(data)
        .arg("--listen")
        .arg(listen)
        .arg("--no-metrics")
        .arg("--no-profile")
        .arg("--owned-by-parent")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .stdin(Stdio::piped())
        .env(
            "QUIVER_LOG",
            std::env::var("QUIVER_LOG").unwrap_or_else(|_| "warn".into()),
        )
        // The child broker picks its own worker count: TOKIO_WORKER_THREADS given to
        // the benchmark tunes the client side only.
        .env_remove("TOKIO_WORKER_THREADS")
        .kill_on_drop(true);
    Ok(cmd)
}

impl Target {
    pub async fn start(conn: &ConnectArgs, args: &TargetArgs) -> anyhow::Result<Target> {
        if args.external {
            let (url, ca) = conn.resolve()?;
            return Ok(Target {
                url,
                options: conn.options(&ca)?,
                ca,
                child: None,
                _lifeline: None,
                data_dir: None,
            });
        }
        let dir = tempfile::tempdir().context("creating a temporary data dir")?;
        let mut cmd = child_dev_command(&dir.path().join("data"))?;
        for (k, v) in &args.broker_configs {
            cmd.arg("--config").arg(format!("{k}={v}"));
        }
        let mut child = cmd.spawn().context("starting a child broker")?;
        let lifeline = child.stdin.take();
        let stdout = child.stdout.take().context("child broker has no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let url = listening_url(&mut lines).await?;
        // Keep draining its stdout so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let ca = dir.path().join("data").join("tls").join("cert.pem");
        Ok(Target {
            url,
            options: ClientOptions::new().ca_pem_file(&ca),
            ca,
            child: Some(child),
            _lifeline: lifeline,
            data_dir: Some(dir),
        })
    }

    pub async fn client(&self) -> anyhow::Result<Client> {
        Client::connect(&self.url, self.options.clone())
            .await
            .with_context(|| format!("connecting to {}", self.url))
    }

    /// Stops the child broker and waits until it has exited, then deletes its data
    /// directory and has the kernel commit that deletion; nothing for an external
    /// broker. Without the commit, freeing gigabytes of blocks lands in whatever fsync
    /// comes next (on a filesystem mounted with `discard`, the TRIMs as well), which
    /// stalled a measured broker's acks=all by up to 200 ms.
    pub async fn stop(mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // Already gone is fine: the wait reaps it either way.
        let _ = child.start_kill();
        let _ = child.wait().await;
        let dir = self.data_dir.take();
        let _ = tokio::task::spawn_blocking(move || {
            drop(dir);
            rustix::fs::sync();
        })
        .await;
    }

    /// The child broker's process id, if the target is a child.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref()?.id()
    }

    /// (peak, current) resident memory of the child broker in MiB.
    pub fn memory_mib(&self) -> Option<(f64, f64)> {
        let pid = self.child.as_ref()?.id()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| -> Option<f64> {
            let line = status.lines().find(|l| l.starts_with(name))?;
            let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kb / 1024.0)
        };
        Some((field("VmHWM:")?, field("VmRSS:")?))
    }

    /// Records the child's peak memory in the report.
    pub fn annotate(&self, report: &mut Report) {
        report.broker_peak_rss_mib = self.memory_mib().map(|(peak, _)| peak);
    }
}

#[derive(Debug, clap::Args)]
pub struct IdleArgs {
    /// Partitions of the one topic created.
    #[arg(long, default_value_t = 100)]
    pub partitions: u32,
    /// Seconds to let the broker settle before reading its memory.
    #[arg(long, default_value_t = 3)]
    pub settle: u64,
    /// Print the figures as one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub async fn idle(args: IdleArgs) -> anyhow::Result<()> {
    let target = Target::start(
        &ConnectArgs::default(),
        &TargetArgs {
            external: false,
            broker_configs: Vec::new(),
        },
    )
    .await?;
    let client = target.client().await?;
    client
        .admin()
        .create_topic("idle", args.partitions, 1, Default::default())
        .await?;
    tokio::time::sleep(Duration::from_secs(args.settle)).await;
    let (peak, rss) = target
        .memory_mib()
        .context("cannot read the child broker's memory")?;
    if args.json {
        say!(
            "{}",
            serde_json::json!({"bench": "idle", "partitions": args.partitions, "rss_mib": rss, "peak_rss_mib": peak})
        );
    } else {
        say!(
            "idle broker with {} partitions: RSS {rss:.1} MiB (peak {peak:.1} MiB)",
            args.partitions
        );
    }
    Ok(())
}

/// Waits (up to 30 s) for a child `quiver dev` or `quiver serve`'s first line and
/// returns the URL it listens on.
pub(super) async fn listening_url<R: tokio::io::AsyncBufRead + Unpin>(
    lines: &mut tokio::io::Lines<R>,
) -> anyhow::Result<String> {
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .context("the child broker did not start within 30 s")??
        .context("the child broker exited before listening")?;
    Ok(first
        .strip_prefix("quiver dev: listening on ")
        .or_else(|| first.strip_prefix("quiver: listening on "))
        .with_context(|| format!("unexpected first line from the child broker: {first:?}"))?
        .to_string())
}
