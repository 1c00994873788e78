//! `quiver`: run a broker, administer topics, consumer groups and Wasm plugins, produce,
//! consume and benchmark.
//!
//! Every client command finds its broker and the certificate to trust from, in order:
//! `--broker`/`--ca` (or `QUIVER_BROKER`/`QUIVER_CA`), the profile a running `quiver dev`
//! writes (`$QUIVER_HOME/profiles/NAME.json` or `~/.quiver/profiles/`; see
//! `quiver_cli::profile`), then `quic://127.0.0.1:7420` with `./quiver-data/tls/cert.pem`.
//! So after `quiver dev` in one terminal, every command works in another with no flags,
//! and a command whose dev broker has stopped says so. A broker that authenticates clients takes `--token` (or
//! `QUIVER_TOKEN`) or `--cert` and `--key` (or `QUIVER_CERT`/`QUIVER_KEY`). Errors print
//! as one line and exit non-zero.

mod acl;
mod bench;
mod cluster;
mod config;
mod connect;
mod consume;
mod dev;
mod dev_cluster;
mod format;
mod group;
mod output;
mod plugin;
mod produce;
mod reload;
mod token;
mod topic;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Quiver: a streaming platform with Kafka's model over QUIC.
#[derive(Debug, Parser)]
#[command(name = "quiver", version, about, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    conn: connect::ConnectArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a single-node development broker: data in ./quiver-data, a self-signed
    /// certificate generated and trusted by this CLI on this machine.
    Dev(dev::DevArgs),
    /// Run a broker from a TOML config file.
    Serve(dev::ServeArgs),
    /// Create, list, describe, alter and delete topics.
    #[command(subcommand)]
    Topic(topic::TopicCommand),
    /// Produce records: one per line from stdin or a file.
    Produce(produce::ProduceArgs),
    /// Consume records and print them, alone or as a member of a group (--group).
    Consume(consume::ConsumeArgs),
    /// List, describe, reset and delete consumer groups.
    #[command(subcommand)]
    Group(group::GroupCommand),
    /// Add, list, describe, remove, test and watch Wasm plugins, and read their logs.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Add, remove and list access rules (who may do what) on a broker that checks them.
    #[command(subcommand)]
    Acl(acl::AclCommand),
    /// Issue, list and revoke bearer tokens for clients without a certificate.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// The cluster: brokers, metadata quorum, partitions needing attention.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Print the configuration reference: every topic config or broker TOML key with its
    /// default, range and meaning.
    Config(config::ConfigArgs),
    /// Measure the transport, produce and consume on this machine.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("QUIVER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,quiver_server=info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = worker_threads() {
        builder.worker_threads(n);
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let anonymous = cli.conn.token.is_none() && cli.conn.cert.is_none();
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", output::one_line(&e));
            if anonymous && output::is_unauthorized(&e) {
                eprintln!(
                    "hint: this command ran anonymously; authenticate with --token (or QUIVER_TOKEN), or --cert and --key"
                );
            }
            ExitCode::FAILURE
        }
    }
}

/// Async worker threads: every core but one, and at least one, unless
/// `TOKIO_WORKER_THREADS` says otherwise (`None` leaves the choice to tokio, which reads
/// it). The core left over is not idle: a broker's storage reads, writes and fsyncs run
/// on tokio's blocking pool, and the kernel's UDP work needs CPU too. Measured on 2 cores
/// with `quiver bench produce` and `consume`, a broker with one worker moved about 20%
/// more than with two, which spent the difference waking each other.
pub(crate) fn worker_threads() -> Option<usize> {
    if std::env::var_os("TOKIO_WORKER_THREADS").is_some() {
        return None;
    }
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    Some(workers_for(cores))
}

fn workers_for(cores: usize) -> usize {
    cores.saturating_sub(1).max(1)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Dev(args) => dev::dev(args).await,
        Command::Serve(args) => dev::serve(args).await,
        Command::Topic(cmd) => topic::run(&cli.conn, cmd).await,
        Command::Produce(args) => produce::run(&cli.conn, args).await,
        Command::Consume(args) => consume::run(&cli.conn, args).await,
        Command::Group(cmd) => group::run(&cli.conn, cmd).await,
        Command::Plugin(cmd) => plugin::run(&cli.conn, cmd).await,
        Command::Acl(cmd) => acl::run(&cli.conn, cmd).await,
        Command::Token(cmd) => token::run(&cli.conn, cmd).await,
        Command::Bench(cmd) => bench::run(&cli.conn, cmd).await,
        Command::Config(args) => config::run(&args),
        Command::Cluster(cmd) => cluster::run(&cli.conn, cmd).await,
    }
}

#[cfg(test)]
mod tests {
    /// Every argument of every command says what it is for in `--help`, positional
    /// ones included.
    #[test]
    fn every_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" || arg.is_hide_set() {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} <{id}>"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_about().is_none() && sub.get_name() != "help" {
                    missing.push(format!("{path} {} (the command)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(
            &<super::Cli as clap::CommandFactory>::command(),
            "quiver",
            &mut missing,
        );
        assert!(
            missing.is_empty(),
            "arguments without help:\n{}",
            missing.join("\n")
        );
    }

    #[test]
    fn one_core_is_left_to_the_blocking_pool_and_the_kernel_but_never_the_last() {
        assert_eq!(super::workers_for(1), 1);
        assert_eq!(super::workers_for(2), 1);
        assert_eq!(super::workers_for(16), 15);
    }
}
