//! Runs Quiver's WebAssembly plugins: the only crate of the broker that uses wasmtime.
//!
//! What is here: one [`PluginHost`] (a wasmtime engine with epoch interruption, a linker
//! with WASI granted nothing and the `quiver:plugin/log` import, an epoch ticker thread,
//! and an on-disk compilation cache keyed by content hash and engine config); one typed
//! wrapper per WIT world ([`PartitionerPlugin`], [`FilterPlugin`], [`CompactorPlugin`]),
//! each with its own pool of warm instances; load-time validation
//! ([`PluginHost::validate`]); each plugin's bounded log ([`PluginLog`]); and the
//! [`Registry`] that runs the versions the cluster metadata lists, hot-reloads them, and
//! stores their components in the data directory by content hash.
//!
//! What is not: the broker's wiring (which topic uses which plugin, when to call it),
//! any async runtime (calls are synchronous; the broker runs them from
//! `spawn_blocking`), or the wire protocol.
//!
//! Format: the contract is `wit/plugin.wit` (package `quiver:plugin@0.1.0`); records
//! cross the boundary as one flat batch per call (one byte buffer plus spans), see
//! `wit/README.md`.
//!
//! Architecture invariants: a plugin has no ambient authority (no files, network,
//! environment or host stdio); every call has a deadline and every instance a memory
//! cap; an instance that trapped is never called again; swapping a version never fails a
//! call in flight.
//!
//! ```no_run
//! use quiver_plugin_host::{HostConfig, PluginHost, RecordView, Registry};
//! use quiver_proto::Record;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let host = PluginHost::new(HostConfig::default())?;
//! let registry = Registry::open(std::path::Path::new("data"), host)?;
//! let prepared = registry.prepare("router", &std::fs::read("key-hash.wasm")?, None)?;
//! // The server records version 1 of `router` with this hash in the metadata, then:
//! registry.install(prepared.into_version("router", 1, 1_700_000_000_000, None))?;
//! let partitioner = registry.partitioner("router", None, vec![])?;
//! let record = Record { offset: -1, timestamp: 0, key: Some("k".into()), value: None, headers: vec![] };
//! let partitions = partitioner.partition(&[RecordView::from(&record)], 12)?;
//! assert!(partitions[0] < 12);
//! # Ok(())
//! # }
//! ```

mod bindings;
mod compactor;
mod error;
mod filter;
mod host;
mod imports;
mod kind;
mod limits;
mod loaded;
pub mod log;
mod partitioner;
mod pool;
mod record;
pub mod registry;
mod source;
mod state;
mod stats;
mod stdio;
mod ticker;
mod trap;
mod validate;

pub use compactor::{CompactorPlugin, Survivor};
pub use error::{GuestError, PluginError};
pub use filter::FilterPlugin;
pub use host::{CacheStats, HostConfig, LoadSpec, PluginHost};
pub use kind::{PluginKind, UnknownKind};
pub use limits::{LimitOutOfRange, PluginLimits};
pub use loaded::LoadedPlugin;
pub use log::{LogEntry, LogLevel, LogSource, PluginLog};
pub use partitioner::PartitionerPlugin;
pub use record::RecordView;
pub use registry::{
    LegacyVersion, PluginInfo, PreparedComponent, Registry, RegistryError, VersionMeta,
};
pub use source::PluginSource;
pub use stats::{PluginFigures, PluginStats};
