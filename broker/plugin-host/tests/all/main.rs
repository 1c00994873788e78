//! Integration tests of quiver-plugin-host against real plugins built from `plugins/`.
//!
//! One binary (every module below) so plugins are built once per run, by
//! [`support::plugin`], through `plugins/build.sh`.

mod compactor;
mod filter;
mod legacy;
mod limits;
mod partitioner;
mod polyglot;
mod reference;
mod registry;
mod reload;
mod support;
mod validate;
