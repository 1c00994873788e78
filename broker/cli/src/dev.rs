//! `quiver dev` and `quiver serve`: run a broker in the foreground until Ctrl-C.
//!
//! `quiver dev --plugins DIR` also keeps the plugins of DIR loaded (see `reload.rs`).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use quiver_sdk::{Client, ClientOptions};
use quiver_server::BrokerConfig;
use tokio_util::sync::CancellationToken;

use quiver_cli::profile::{self, DevProfile};

#[derive(Debug, clap::Args)]
pub struct DevArgs {
    /// Data directory.
    #[arg(long, default_value = "quiver-data")]
    pub data: PathBuf,
    /// UDP address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:7420")]
    pub listen: SocketAddr,
    /// Default topic configs, as key=value (for example flush=always).
    #[arg(long = "config", value_parser = crate::topic::parse_kv)]
    pub configs: Vec<(String, String)>,
    /// Name of the profile other commands find this broker by (`--profile NAME` on
    /// them); defaults to the data directory's name.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Do not write the CLI profile (used by benchmarks and tests that start their own).
    #[arg(long, hide = true)]
    pub no_profile: bool,
    /// TCP address of the HTTP metrics endpoint (/metrics for Prometheus, /health,
    /// /ready). When the default port is taken, a free one is used and printed.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_METRICS)]
    pub metrics: SocketAddr,
    /// Serve no metrics endpoint.
    #[arg(long, conflicts_with = "metrics")]
    pub no_metrics: bool,
    /// Stop when standard input closes, then delete the data directory: for a broker that
    /// `quiver bench` starts as its child. The pipe closes however the parent ends (a
    /// closed stdout, SIGTERM from `timeout`, SIGKILL), so the child never outlives it.
    #[arg(long, hide = true)]
    pub owned_by_parent: bool,
    /// Upload every *.wasm in DIR as a plugin named after its file stem, then upload a
    /// new version whenever a file there changes or appears.
    #[arg(long, value_name = "DIR")]
    pub plugins: Option<PathBuf>,
    /// Run a cluster of this many brokers in this process (3 or 5), each with its own
    /// data directory, ports and a certificate from a CA made for the cluster; the
    /// client listeners take consecutive ports from --listen.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub nodes: u32,
    /// Add broker ID to the running dev cluster in --data, in this process, as an
    /// observer (it joins without voting): a certificate from the cluster's CA, its own
    /// data directory and ports. Take it out with `quiver cluster drain ID` and
    /// `quiver cluster remove ID`.
    #[arg(long, value_name = "ID", conflicts_with_all = ["nodes", "plugins"])]
    pub join: Option<u32>,
}

/// Where `quiver dev` serves metrics unless told otherwise.
const DEFAULT_METRICS: &str = "127.0.0.1:9644";

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// TOML config file: node id, listeners, data directory, TLS, limits, cluster
    /// voters; `quiver config broker` lists every key.
    #[arg(long)]
    pub config: PathBuf,
    /// Stop when stdin closes: for a broker run as the child of another process (the
    /// cluster benchmarks), which it must not outlive.
    #[arg(long, hide = true)]
    pub owned_by_parent: bool,
}

pub async fn dev(args: DevArgs) -> anyhow::Result<()> {
    if let Some(dir) = &args.plugins
        && !dir.is_dir()
    {
        anyhow::bail!(
            "--plugins {}: not a directory (build plugins with plugins/build.sh; they land in target/plugins/wasm)",
            dir.display()
        );
    }
    // Absolute, so that nothing below depends on the working directory (the plugin
    // engine's compilation cache refuses a relative path).
    let data = std::path::absolute(&args.data)
        .with_context(|| format!("resolving the data directory {}", args.data.display()))?;
    let mut config = BrokerConfig::dev(&data);
    config.listen = args.listen;
    config.topic_defaults.extend(args.configs.iter().cloned());
    config.metrics_listen = (!args.no_metrics).then_some(args.metrics);
    let profile_name = args
        .profile
        .clone()
        .unwrap_or_else(|| profile::default_name(&data));
    // A name a running broker holds is refused before anything starts.
    if !args.no_profile
        && let Some(other) = profile::list()?
            .into_iter()
            .find(|p| p.name == profile_name && p.data_dir != data && p.is_running())
    {
        anyhow::bail!(profile::ProfileError::Taken {
            name: profile_name,
            other: other.data_dir.display().to_string(),
            pid: other.pid,
        });
    }
    // A cluster's data directory holds its brokers' directories (`node-1`, ...), which a
    // single broker opened on it would take for data of deleted topics and remove.
    if let Some(id) = args.join {
        return crate::dev_cluster::join(args, id, data).await;
    }
    if args.nodes == 1 && data.join("cluster").join("cluster.json").exists() {
        anyhow::bail!(
            "{} holds a dev cluster; start it with `quiver dev --nodes N` (N as before, see cluster/cluster.json) or use another --data directory",
            data.display()
        );
    }
    if args.nodes != 1 {
        let nodes = nodes_checked(args.nodes)?;
        return crate::dev_cluster::run(args, nodes, data, profile_name).await;
    }
    let broker = match quiver_server::start(config.clone()).await {
        // Another dev broker has the metrics port: take a free one (the banner says which).
        Err(quiver_server::ServerError::Bind { addr, .. })
            if Some(addr) == config.metrics_listen && addr.port() != 0 =>
        {
            config.metrics_listen = Some(SocketAddr::new(addr.ip(), 0));
            quiver_server::start(config).await
        }
        other => other,
    }
    .context("starting the dev broker")?;
    let url = format!("quic://{}", broker.local_addr());
    let ca = std::fs::canonicalize(broker.cert_path())
        .unwrap_or_else(|_| broker.cert_path().to_path_buf());
    let profile = write_profile(&args, &profile_name, &url, &ca, &data);
    // The first line is stable: scripts and `quiver bench` read the address from it. A
    // broker keeps serving when whoever started it stops reading its stdout, so write
    // errors here are ignored rather than fatal.
    let mut banner = format!("quiver dev: listening on {url}\n");
    banner += &format!("  data:        {}\n", args.data.display());
    banner += &format!("  certificate: {} (self-signed)\n", ca.display());
    match profile {
        Ok(path) => {
            banner += &format!(
                "  profile:     {profile_name} ({}); the quiver CLI on this machine uses it\n",
                path.display()
            )
        }
        Err(e) => {
            banner += &format!("  no CLI profile written ({e:#}); pass --ca to client commands\n")
        }
    }
    banner += &format!(
        "  SDK: ClientOptions::new().ca_pem_file({:?})\n",
        ca.display().to_string()
    );
    if let Some(addr) = broker.metrics_addr() {
        banner += &format!("  metrics:     http://{addr}/metrics (also /health, /ready)\n");
    }
    if let Some(dir) = &args.plugins {
        banner += &format!("  plugins:     watching {}\n", dir.display());
    }
    print_quietly(&banner);
    let watch = match args.plugins {
        Some(dir) => match watch_plugins(
            broker.shutdown_token(),
            &url,
            ClientOptions::new().ca_pem(broker.cert_pem().as_bytes().to_vec()),
            dir,
        )
        .await
        {
            Ok(watch) => Some(watch),
            Err(e) => {
                let _ = broker.shutdown().await;
                return Err(e);
            }
        },
        None => None,
    };
    let parent_gone = args.owned_by_parent.then(stdin_closed);
    let result = wait_for_stop(&broker, parent_gone).await;
    if let Some((cancel, task)) = watch {
        cancel.cancel();
        let _ = task.await;
    }
    eprintln!("shutting down");
    broker.shutdown().await.context("shutting down")?;
    if args.owned_by_parent {
        std::fs::remove_dir_all(&data)
            .with_context(|| format!("removing the data directory {}", data.display()))?;
    }
    result
}

/// Writes the CLI profile that points other commands at this dev broker (or cluster,
/// with `url` a bootstrap list), unless `--no-profile`; returns its path.
pub(crate) fn write_profile(
    args: &DevArgs,
    name: &str,
    url: &str,
    ca: &std::path::Path,
    data: &std::path::Path,
) -> anyhow::Result<PathBuf> {
    if args.no_profile {
        anyhow::bail!("--no-profile given");
    }
    Ok(profile::write(&DevProfile {
        name: name.to_string(),
        broker: url.to_string(),
        ca: ca.to_path_buf(),
        data_dir: data.to_path_buf(),
        pid: std::process::id(),
    })?)
}

/// `--nodes`, refused unless a cluster can be made of it.
fn nodes_checked(nodes: u32) -> anyhow::Result<u32> {
    if nodes == 0 {
        anyhow::bail!("--nodes 0: a dev broker needs at least one node");
    }
    Ok(nodes)
}

/// Resolves when standard input reaches its end or fails. Read on a plain thread, not
/// tokio's blocking pool: a read that never ends must not hold up the runtime's shutdown.
pub(crate) fn stdin_closed() -> tokio::sync::oneshot::Receiver<()> {
    let (closed, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("stdin-watch".into())
        .spawn(move || {
            let mut sink = std::io::sink();
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut sink);
            let _ = closed.send(());
        });
    if let Err(e) = spawned {
        // Without the watcher the broker still stops on SIGTERM and when its parent
        // drops it; say why the usual way is missing.
        eprintln!("warning: cannot watch standard input: {e}");
    }
    rx
}

/// Starts the task that keeps the plugins of `dir` loaded in the broker (or cluster) at
/// `url` until `shutdown`, and returns what stops it earlier.
pub(crate) async fn watch_plugins(
    shutdown: CancellationToken,
    url: &str,
    options: ClientOptions,
    dir: PathBuf,
) -> anyhow::Result<(CancellationToken, tokio::task::JoinHandle<()>)> {
    let client = Client::connect(url, options)
        .await
        .context("connecting to the dev broker to load plugins")?;
    let cancel = shutdown.child_token();
    let stop = cancel.clone();
    let task = tokio::spawn(async move {
        crate::reload::run(&client, crate::reload::Watched::Dir(dir), stop).await;
        client.close();
    });
    Ok((cancel, task))
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("reading {}", args.config.display()))?;
    let config =
        BrokerConfig::from_toml(&text).with_context(|| format!("in {}", args.config.display()))?;
    let self_signed = matches!(config.tls, quiver_server::TlsConfig::SelfSigned);
    let broker = quiver_server::start(config)
        .await
        .context("starting the broker")?;
    let mut banner = format!("quiver: listening on quic://{}\n", broker.local_addr());
    if self_signed {
        let cert = std::fs::canonicalize(broker.cert_path())
            .unwrap_or_else(|_| broker.cert_path().to_path_buf());
        banner += &format!(
            "  certificate: {} (self-signed; clients trust it with --ca)\n",
            cert.display()
        );
    }
    if let Some(addr) = broker.metrics_addr() {
        banner += &format!("  metrics:     http://{addr}/metrics (also /health, /ready)\n");
    }
    run_until_stopped(broker, &banner, args.owned_by_parent).await
}

/// Prints `banner`, serves until Ctrl-C, SIGTERM or (when `owned_by_parent`) the
/// parent's end, then shuts the broker down.
pub(crate) async fn run_until_stopped(
    broker: quiver_server::RunningBroker,
    banner: &str,
    owned_by_parent: bool,
) -> anyhow::Result<()> {
    print_quietly(banner);
    let parent_gone = owned_by_parent.then(stdin_closed);
    let result = wait_for_stop(&broker, parent_gone).await;
    eprintln!("shutting down");
    broker.shutdown().await.context("shutting down")?;
    result
}

pub(crate) fn print_quietly(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// Waits for Ctrl-C, SIGTERM, the broker's own shutdown, or `parent_gone`.
pub(crate) async fn wait_for_stop(
    broker: &quiver_server::RunningBroker,
    parent_gone: Option<tokio::sync::oneshot::Receiver<()>>,
) -> anyhow::Result<()> {
    let token = broker.shutdown_token();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let parent_gone = async {
        // A watcher that could not start drops its sender: that is no reason to stop.
        let closed = match parent_gone {
            Some(rx) => rx.await.is_ok(),
            None => false,
        };
        if !closed {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
        _ = terminate.recv() => {}
        () = token.cancelled() => {}
        () = parent_gone => {}
    }
    Ok(())
}
