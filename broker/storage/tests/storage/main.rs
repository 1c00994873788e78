//! Integration tests of quiver-storage, compiled into one binary.

#![allow(clippy::unwrap_used)]

mod append_read;
mod common;
mod compaction;
mod damage;
mod idempotence;
mod leader_epoch_prop;
mod leader_epochs;
mod recovery;
mod replica;
mod retention;
mod round_trip_prop;
