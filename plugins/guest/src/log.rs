//! Writing to the plugin's log on the broker (`quiver plugin logs NAME`).
//!
//! The broker keeps a bounded ring of entries per plugin; logging never blocks and never
//! fails. Output to stdout and stderr lands in the same log.

use crate::bindings::wit_log::{Level, log};

/// Logs at trace level.
pub fn trace(message: &str) {
    log(Level::Trace, message)
}

/// Logs at debug level.
pub fn debug(message: &str) {
    log(Level::Debug, message)
}

/// Logs at info level.
pub fn info(message: &str) {
    log(Level::Info, message)
}

/// Logs at warn level.
pub fn warn(message: &str) {
    log(Level::Warn, message)
}

/// Logs at error level.
pub fn error(message: &str) {
    log(Level::Error, message)
}
