//! End-to-end tests: real brokers (in-process on port 0, or `quiver` child processes),
//! temporary data dirs, and the SDK or the CLI as the client. One test binary, one shared
//! harness.

mod auth;
mod bad_input;
mod bench_child;
mod chaos;
mod cli;
mod cluster;
mod cluster_groups;
mod cluster_join;
mod cluster_plugins;
mod cluster_reassign;
mod compaction;
mod crash;
mod damage;
mod data_path;
mod groups;
mod harness;
mod metrics;
mod plugin_cli;
mod plugin_errors;
mod plugins;
mod producer;
mod quarantine;
mod recovery;
mod relay;
mod replication;
mod restart;
mod starvation;
