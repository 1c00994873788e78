//! `quiver bench`: what this machine can do.
//!
//! - `raw`: bytes over one QUIC stream on loopback with the broker's own TLS and transport
//!   settings, no broker in between: the transport ceiling.
//! - `produce` / `consume`: records through a real broker, by default a child `quiver dev`
//!   process on a temporary data dir, so its memory can be read from `/proc`;
//!   `produce --with-stalling-client N` measures it while a hostile client stalls N
//!   giant frames.
//! - `idle`: a child broker's resident memory with N partitions and no traffic.
//! - `group`: how long a consumer group takes to rebalance when a member leaves, and
//!   how a group of three reads compared with one consumer.
//! - `plugin`: produce through a Wasm partitioner and fetch through a Wasm filter, each
//!   against the built-in path; `--reload` times a hot reload in `quiver dev --plugins`.
//!
//! - `cluster produce | failover | idle`: three brokers as separate processes, set up
//!   as `quiver dev --nodes 3` sets them up: acks=all throughput against a single node's
//!   acks=1 and the latency at half that rate, the time from the SIGKILL of a leader to
//!   the next acknowledgement, and the cost of many idle replicated partitions.
//!
//! - `restart`: SIGKILL a child broker under a steady producer and start it again on the
//!   same port, N times: the time from "serving again" to the first new acknowledgement.
//!
//! Each prints records/s, MB/s and latency percentiles (`--json` for a machine-readable
//! line). A benchmark reports; nothing here asserts a number.

mod cluster;
mod consume;
mod group;
mod payload;
mod plugin;
mod produce;
mod raw;
mod report;
mod restart;
mod stalling;
mod steady;
mod target;

use clap::Subcommand;

use crate::connect::ConnectArgs;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Bytes over one QUIC stream on loopback: the transport ceiling.
    Raw(raw::RawArgs),
    /// Produce records through a broker.
    Produce(produce::ProduceBenchArgs),
    /// Consume records through a broker (fills the topic first).
    Consume(consume::ConsumeBenchArgs),
    /// A child broker's memory, idle, with N partitions.
    Idle(target::IdleArgs),
    /// Consumer groups: rebalance time when a member leaves, and group read throughput.
    Group(group::GroupBenchArgs),
    /// Wasm plugins: produce through a partitioner and fetch through a filter against the
    /// built-in paths, or (--reload) the time a rebuilt plugin takes to go live.
    Plugin(plugin::PluginBenchArgs),
    /// Kill and restart a child broker under a producer: time from serving again to the
    /// first new acknowledgement.
    Restart(restart::RestartBenchArgs),
    /// Three brokers as child processes: replicated throughput, failover time, idle cost.
    #[command(subcommand)]
    Cluster(cluster::ClusterBench),
}

pub async fn run(conn: &ConnectArgs, cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Raw(args) => raw::run(args).await,
        BenchCommand::Produce(args) => produce::run(conn, args).await,
        BenchCommand::Consume(args) => consume::run(conn, args).await,
        BenchCommand::Idle(args) => target::idle(args).await,
        BenchCommand::Group(args) => group::run(conn, args).await,
        BenchCommand::Plugin(args) => plugin::run(conn, args).await,
        BenchCommand::Restart(args) => restart::run(args).await,
        BenchCommand::Cluster(cmd) => cluster::run(cmd).await,
    }
}
