//! `quiver dev --nodes 3` (or 5): a whole cluster on this machine in one command.
//!
//! The brokers run in this one process, each with a data directory of its own under the
//! dev data directory (`node-1`, `node-2`, ...), its own client listener and its own
//! inter-broker (quorum) listener, all on loopback. On first start a CA is made and
//! every broker gets a certificate signed by it (`cluster/` in the data directory), and
//! the ports are chosen and written down (`cluster/cluster.json`), because the quorum
//! remembers its voters' addresses: a restart reuses both. The CLI profile names the
//! three client listeners as a bootstrap list and the CA to trust, so every other
//! command works against the cluster with no flags.
//!
//! With `--plugins DIR` the plugins of DIR are uploaded to the cluster through the
//! bootstrap list and uploaded again whenever they are rebuilt; every broker loads each
//! version, the ones the upload did not reach fetching the component from a peer.
//!
//! `quiver dev --join ID` adds broker ID to a running dev cluster as an observer (it
//! joins the metadata quorum without voting), in a process of its own: a certificate
//! from the cluster's CA (whose key the dev cluster keeps, `cluster/ca.key`), its own
//! data directory and ports (written down in `cluster/observer-ID.json`). Partitions
//! move onto it with `quiver topic reassign`, and `quiver cluster drain ID` then
//! `quiver cluster remove ID` take it out again.
//!
//! The timing is tighter than a production default, for quick failover on one machine:
//! quorum elections start after 300–600 ms without a leader, brokers heartbeat every
//! 200 ms and are fenced after 1 s of silence, and leaderships
//! go back to their preferred brokers within 10 s of those being in sync again. Topics get three
//! replicas and `min.insync.replicas = 2` unless asked otherwise.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use quiver_server::{BrokerConfig, TlsConfig};
use serde::{Deserialize, Serialize};

use crate::dev::{
    DevArgs, print_quietly, stdin_closed, wait_for_stop, watch_plugins, write_profile,
};

/// Where the cluster's brokers listen, as first chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Layout {
    nodes: Vec<NodeAddrs>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct NodeAddrs {
    id: u32,
    /// The client listener.
    listen: SocketAddr,
    /// The inter-broker listener: quorum and replication.
    quorum: SocketAddr,
}

/// A UDP port on `ip` that is free right now.
fn free_port(ip: std::net::IpAddr) -> anyhow::Result<u16> {
    let socket = std::net::UdpSocket::bind((ip, 0)).context("finding a free UDP port")?;
    Ok(socket.local_addr()?.port())
}

impl Layout {
    /// The layout of `dir` (`<data>/cluster`), made on first start: client listeners on
    /// consecutive ports from `listen` (or free ones for port 0), quorum listeners on
    /// free ports.
    fn load_or_create(dir: &Path, nodes: u32, listen: SocketAddr) -> anyhow::Result<Layout> {
        let file = dir.join("cluster.json");
        if let Ok(text) = std::fs::read_to_string(&file) {
            let layout: Layout = serde_json::from_str(&text)
                .with_context(|| format!("reading {}", file.display()))?;
            if layout.nodes.len() != nodes as usize {
                anyhow::bail!(
                    "{} holds a cluster of {} brokers, not {nodes}; start it with --nodes {} or use another --data directory",
                    dir.parent().unwrap_or(dir).display(),
                    layout.nodes.len(),
                    layout.nodes.len()
                );
            }
            return Ok(layout);
        }
        let ip = listen.ip();
        let mut layout = Layout { nodes: Vec::new() };
        for id in 1..=nodes {
            let port = match listen.port() {
                0 => free_port(ip)?,
                p => p
                    .checked_add(u16::try_from(id - 1)?)
                    .context("port past 65535")?,
            };
            layout.nodes.push(NodeAddrs {
                id,
                listen: SocketAddr::new(ip, port),
                quorum: SocketAddr::new(ip, free_port(ip)?),
            });
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        make_certificates(dir, nodes)?;
        std::fs::write(&file, serde_json::to_vec_pretty(&layout)?)
            .with_context(|| format!("writing {}", file.display()))?;
        Ok(layout)
    }
}

/// The dev cluster CA's certificate as an issuer, made with `ca_key`. Made again from
/// the same name and key it signs certificates that chain to the `ca.pem` first made.
fn ca_issuer(ca_key: &rcgen::KeyPair) -> anyhow::Result<rcgen::Certificate> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "quiver dev cluster CA");
    Ok(params.self_signed(ca_key)?)
}

/// A CA and one certificate per broker (for 127.0.0.1 and localhost, to serve and to
/// dial the others), as PEM files in `dir`. The CA's key is kept too, for brokers that
/// join later.
fn make_certificates(dir: &Path, nodes: u32) -> anyhow::Result<()> {
    let ca_key = rcgen::KeyPair::generate()?;
    let ca = ca_issuer(&ca_key)?;
    write_private(&dir.join("ca.pem"), ca.pem().as_bytes())?;
    write_private(&dir.join("ca.key"), ca_key.serialize_pem().as_bytes())?;
    for id in 1..=nodes {
        sign_broker(dir, id, &ca, &ca_key)?;
    }
    Ok(())
}

/// Broker `id`'s certificate and key, signed by the CA, as PEM files in `dir`.
fn sign_broker(
    dir: &Path,
    id: u32,
    ca: &rcgen::Certificate,
    ca_key: &rcgen::KeyPair,
) -> anyhow::Result<()> {
    let key = rcgen::KeyPair::generate()?;
    let mut params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("broker-{id}"));
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = params.signed_by(&key, ca, ca_key)?;
    write_private(&dir.join(format!("broker-{id}.pem")), cert.pem().as_bytes())?;
    write_private(
        &dir.join(format!("broker-{id}.key")),
        key.serialize_pem().as_bytes(),
    )?;
    Ok(())
}

/// Runs `quiver dev --join ID`: broker `id` joins the dev cluster in `data` as an
/// observer and serves until Ctrl-C, SIGTERM or (with `--owned-by-parent`) the parent's
/// end.
pub async fn join(args: DevArgs, id: u32, data: PathBuf) -> anyhow::Result<()> {
    let cluster_dir = data.join("cluster");
    let file = cluster_dir.join("cluster.json");
    let text = std::fs::read_to_string(&file).with_context(|| {
        format!(
            "no dev cluster in {} (reading {}); start one with `quiver dev --nodes 3 --data {}`",
            data.display(),
            file.display(),
            data.display()
        )
    })?;
    let layout: Layout =
        serde_json::from_str(&text).with_context(|| format!("reading {}", file.display()))?;
    if layout.nodes.iter().any(|n| n.id == id) {
        anyhow::bail!(
            "--join {id}: broker {id} is a voter of this dev cluster; pick an id beyond {}",
            layout.nodes.len()
        );
    }
    let node = observer_addrs(&cluster_dir, id, args.listen.ip())?;
    if !cluster_dir.join(format!("broker-{id}.pem")).exists() {
        let key_file = cluster_dir.join("ca.key");
        let pem = std::fs::read_to_string(&key_file).with_context(|| {
            format!(
                "reading {}: this dev cluster was made by an older quiver that did not keep its CA key; make a new one to add brokers",
                key_file.display()
            )
        })?;
        let ca_key = rcgen::KeyPair::from_pem(&pem)
            .with_context(|| format!("reading {}", key_file.display()))?;
        sign_broker(&cluster_dir, id, &ca_issuer(&ca_key)?, &ca_key)?;
    }
    let metrics = (!args.no_metrics).then(|| SocketAddr::new(args.metrics.ip(), 0));
    let mut config = node_config(&data, &layout, &node, &args.configs, metrics);
    config.cluster.quorum_listen = Some(node.quorum);
    let broker = start(config).await?;
    let mut banner = format!("quiver dev: listening on quic://{}\n", broker.local_addr());
    banner += &format!(
        "  broker {id} joined the dev cluster in {} as an observer: inter-broker {}, data {}\n",
        data.display(),
        node.quorum,
        data.join(format!("node-{id}")).display()
    );
    banner += &format!(
        "  move partitions onto it with `quiver topic reassign`; take it out with `quiver cluster drain {id}` and `quiver cluster remove {id}`\n"
    );
    crate::dev::run_until_stopped(broker, &banner, args.owned_by_parent).await
}

/// The ports of observer `id`, chosen at its first start and written down beside the
/// layout, so that a restart is where the cluster's metadata says it is.
fn observer_addrs(dir: &Path, id: u32, ip: std::net::IpAddr) -> anyhow::Result<NodeAddrs> {
    let file = dir.join(format!("observer-{id}.json"));
    if let Ok(text) = std::fs::read_to_string(&file) {
        return serde_json::from_str(&text).with_context(|| format!("reading {}", file.display()));
    }
    let node = NodeAddrs {
        id,
        listen: SocketAddr::new(ip, free_port(ip)?),
        quorum: SocketAddr::new(ip, free_port(ip)?),
    };
    std::fs::write(&file, serde_json::to_vec_pretty(&node)?)
        .with_context(|| format!("writing {}", file.display()))?;
    Ok(node)
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    std::io::Write::write_all(&mut file, bytes)
        .with_context(|| format!("writing {}", path.display()))
}

/// The config of broker `node` of the dev cluster in `data`, with `topic_configs` over
/// the cluster's topic defaults and metrics served at `metrics`.
fn node_config(
    data: &Path,
    layout: &Layout,
    node: &NodeAddrs,
    topic_configs: &[(String, String)],
    metrics: Option<SocketAddr>,
) -> BrokerConfig {
    let cluster_dir = data.join("cluster");
    let mut config = BrokerConfig::dev(data.join(format!("node-{}", node.id)));
    config.node_id = node.id;
    config.listen = node.listen;
    config.tls = TlsConfig::Files {
        cert: cluster_dir.join(format!("broker-{}.pem", node.id)),
        key: cluster_dir.join(format!("broker-{}.key", node.id)),
    };
    config.cluster.voters = layout
        .nodes
        .iter()
        .map(|n| format!("{}@{}", n.id, n.quorum))
        .collect();
    config.cluster.ca = Some(cluster_dir.join("ca.pem"));
    // Quorum elections within 300–600 ms of a lost controller (heartbeats every 100 ms).
    config.cluster.election_timeout_ms = 300;
    config.cluster.broker_heartbeat_ms = 200;
    config.cluster.broker_session_timeout_ms = 1000;
    config.cluster.default_replication_factor = 3;
    // Leaderships go back to their preferred brokers soon after a restart.
    config.cluster.leader_rebalance_interval_ms = 10_000;
    config
        .topic_defaults
        .insert("min.insync.replicas".into(), "2".into());
    config.topic_defaults.extend(topic_configs.iter().cloned());
    config.metrics_listen = metrics;
    config
}

/// The configs of a dev cluster of `nodes` brokers in `data` (made on first use, as
/// `quiver dev --nodes` makes it) without metrics listeners, and the CA that signed
/// their certificates: for running its brokers as separate `quiver serve` processes.
pub(crate) fn process_configs(
    data: &Path,
    nodes: u32,
) -> anyhow::Result<(Vec<BrokerConfig>, PathBuf)> {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let layout = Layout::load_or_create(&data.join("cluster"), nodes, loopback)?;
    let configs = layout
        .nodes
        .iter()
        .map(|n| node_config(data, &layout, n, &[], None))
        .collect();
    Ok((configs, data.join("cluster").join("ca.pem")))
}

/// Starts one broker, taking a free metrics port if its own is taken.
async fn start(mut config: BrokerConfig) -> anyhow::Result<quiver_server::RunningBroker> {
    let id = config.node_id;
    match quiver_server::start(config.clone()).await {
        Err(quiver_server::ServerError::Bind { addr, .. })
            if Some(addr) == config.metrics_listen && addr.port() != 0 =>
        {
            config.metrics_listen = Some(SocketAddr::new(addr.ip(), 0));
            quiver_server::start(config).await
        }
        other => other,
    }
    .with_context(|| format!("starting broker {id} of the dev cluster"))
}

/// Runs `quiver dev --nodes N` until Ctrl-C, SIGTERM or (with `--owned-by-parent`) the
/// parent's end.
pub async fn run(
    args: DevArgs,
    nodes: u32,
    data: PathBuf,
    profile_name: String,
) -> anyhow::Result<()> {
    if nodes != 3 && nodes != 5 {
        anyhow::bail!(
            "--nodes {nodes}: a dev cluster has 3 or 5 brokers (its metadata quorum needs an odd count); 1 is a single broker"
        );
    }
    let layout = Layout::load_or_create(&data.join("cluster"), nodes, args.listen)?;
    let configs: Vec<BrokerConfig> = layout
        .nodes
        .iter()
        .map(|n| {
            // The first broker serves metrics where asked; the others on free ports.
            let metrics = (!args.no_metrics).then(|| match n.id {
                1 => args.metrics,
                _ => SocketAddr::new(args.metrics.ip(), 0),
            });
            node_config(&data, &layout, n, &args.configs, metrics)
        })
        .collect();
    // Together: each broker serves only once the quorum, a majority of them, has
    // registered it.
    let started = futures_util::future::join_all(configs.into_iter().map(start)).await;
    let mut brokers = Vec::new();
    let mut failure = None;
    for s in started {
        match s {
            Ok(b) => brokers.push(b),
            Err(e) => failure = failure.or(Some(e)),
        }
    }
    if let Some(e) = failure {
        for b in brokers {
            let _ = b.shutdown().await;
        }
        return Err(e);
    }
    let urls: Vec<String> = brokers
        .iter()
        .map(|b| format!("quic://{}", b.local_addr()))
        .collect();
    let url = urls.join(",");
    let ca = data.join("cluster").join("ca.pem");
    let profile = write_profile(&args, &profile_name, &url, &ca, &data);
    // The first line is stable, as for a single broker: the address, here a bootstrap
    // list every client command and `Client::connect` take.
    let mut banner = format!("quiver dev: listening on {url}\n");
    banner += &format!(
        "  cluster:     {nodes} brokers in this process, replication factor 3, min.insync.replicas 2\n"
    );
    for (b, n) in brokers.iter().zip(&layout.nodes) {
        banner += &format!(
            "  broker {}:    quic://{}  inter-broker {}  data {}",
            n.id,
            b.local_addr(),
            n.quorum,
            data.join(format!("node-{}", n.id)).display()
        );
        if let Some(m) = b.metrics_addr() {
            banner += &format!("  metrics http://{m}/metrics");
        }
        banner += "\n";
    }
    banner += &format!(
        "  CA:          {} (signed every broker's certificate)\n",
        ca.display()
    );
    match profile {
        Ok(path) => {
            banner += &format!(
                "  profile:     {profile_name} ({}); the quiver CLI on this machine uses it\n",
                path.display()
            )
        }
        Err(e) => banner += &format!("  no CLI profile written ({e:#}); pass --broker and --ca\n"),
    }
    banner += &format!(
        "  SDK: Client::connect({url:?}, ClientOptions::new().ca_pem_file({:?}))\n",
        ca.display().to_string()
    );
    if let Some(dir) = &args.plugins {
        banner += &format!(
            "  plugins:     watching {} (uploaded once, loaded by every broker)\n",
            dir.display()
        );
    }
    print_quietly(&banner);
    // Plugins go to the cluster through any broker; the others fetch them from it.
    let watch = match args.plugins.clone() {
        Some(dir) => {
            let options = quiver_sdk::ClientOptions::new().ca_pem_file(&ca);
            match watch_plugins(brokers[0].shutdown_token(), &url, options, dir).await {
                Ok(watch) => Some(watch),
                Err(e) => {
                    for b in brokers {
                        let _ = b.shutdown().await;
                    }
                    return Err(e);
                }
            }
        }
        None => None,
    };
    let parent_gone = args.owned_by_parent.then(stdin_closed);
    let result = wait_for_stop(&brokers[0], parent_gone).await;
    if let Some((cancel, task)) = watch {
        cancel.cancel();
        let _ = task.await;
    }
    eprintln!("shutting down");
    for b in brokers {
        b.shutdown().await.context("shutting down")?;
    }
    if args.owned_by_parent {
        std::fs::remove_dir_all(&data)
            .with_context(|| format!("removing the data directory {}", data.display()))?;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layout_is_made_once_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let listen: SocketAddr = "127.0.0.1:17420".parse().expect("addr");
        let first = Layout::load_or_create(dir.path(), 3, listen).expect("made");
        let ports: Vec<u16> = first.nodes.iter().map(|n| n.listen.port()).collect();
        assert_eq!(ports, [17420, 17421, 17422]);
        for file in ["ca.pem", "broker-1.pem", "broker-3.key", "cluster.json"] {
            assert!(dir.path().join(file).exists(), "{file}");
        }
        let again = Layout::load_or_create(dir.path(), 3, "127.0.0.1:0".parse().expect("addr"))
            .expect("reused");
        assert_eq!(again, first);
        let err = Layout::load_or_create(dir.path(), 5, listen).expect_err("other size");
        assert!(err.to_string().contains("--nodes 3"), "{err}");
    }
}
