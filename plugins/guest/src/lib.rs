//! quiver-plugin: write a Quiver plugin in Rust with one trait impl and one macro.
//!
//! A plugin is a WebAssembly component exporting one world of `wit/plugin.wit`
//! (partitioner, filter or compactor). This crate wraps wit-bindgen so an author never
//! sees the flat batch the broker sends: implement [`Partitioner`], [`Filter`] or
//! [`Compactor`] per record, then export the type with the matching macro. Build with
//! `cargo build --release --target wasm32-wasip2`; the `.wasm` in
//! `target/wasm32-wasip2/release/` is the component to upload.
//!
//! What it is not: a host. It has no broker types and no wasmtime; it compiles only for
//! Wasm targets in practice (it builds elsewhere, but the imports have no host).
//!
//! The batch format: one byte buffer plus spans into it for keys, values and headers,
//! and lists of offsets and timestamps; see `wit/README.md`. [`Batch`] and [`Record`]
//! read it without copying.
//!
//! ```ignore
//! use quiver_plugin::{Config, Error, Partitioner, Record};
//!
//! struct FirstByte;
//!
//! impl Partitioner for FirstByte {
//!     fn new(_config: &Config) -> Result<Self, Error> {
//!         Ok(FirstByte)
//!     }
//!     fn partition(&mut self, record: &Record<'_>, count: u32) -> Result<u32, Error> {
//!         Ok(record.key().and_then(|k| k.first()).map_or(0, |b| u32::from(*b) % count))
//!     }
//! }
//!
//! quiver_plugin::export_partitioner!(FirstByte);
//! ```

extern crate self as quiver_plugin;

#[doc(hidden)]
pub mod bindings;
pub mod compactor;
mod config;
mod error;
pub mod filter;
pub mod log;
pub mod partitioner;
mod record;

pub use compactor::{Compactor, Survivor};
pub use config::Config;
pub use error::Error;
pub use filter::Filter;
pub use partitioner::Partitioner;
pub use record::{Batch, Parts, Record};

/// Kafka's default key hash and partition choice, the same code the broker and SDK run:
/// a partitioner that calls [`key_partition`] places keyed records exactly where Kafka
/// clients and Quiver's built-in partitioner do.
pub use quiver_murmur2::{key_partition, murmur2};

#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;
}
