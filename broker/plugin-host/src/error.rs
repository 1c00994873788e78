//! Why a plugin could not be loaded or a call to it failed.

/// A failed plugin load or call. Every variant names the plugin, so the message can go
/// straight to the client or the broker's log.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The call ran past its epoch deadline; the instance was discarded.
    #[error(
        "plugin `{plugin}` timed out after {timeout_ms} ms; it may loop forever, or the \
         batch is too large for its time limit (send less, or raise the limit: \
         `quiver plugin add {plugin} FILE --timeout-ms N` for this plugin, \
         `plugins.call_timeout_ms` in the broker's config for every plugin)"
    )]
    Timeout { plugin: String, timeout_ms: u64 },
    /// The guest tried to grow its memory past the cap; the instance was discarded.
    #[error(
        "plugin `{plugin}` ran out of memory: it asked for more than its cap of \
         {cap_bytes} bytes (make it allocate less, or raise the cap: \
         `quiver plugin add {plugin} FILE --memory-mib N` for this plugin, \
         `plugins.memory_bytes` in the broker's config for every plugin)"
    )]
    Memory { plugin: String, cap_bytes: usize },
    /// The guest trapped (a panic, an `unreachable`, an out-of-bounds access); the
    /// instance was discarded. `message` is what the guest said last on stderr (a
    /// panic's location and message), or wasmtime's reason when it said nothing; the
    /// backtrace is in the plugin's log.
    #[error(
        "plugin `{plugin}@{version}` trapped in {during}: {message} (backtrace: \
         `quiver plugin logs {plugin}`)"
    )]
    Trap {
        plugin: String,
        version: u32,
        /// The guest function that was running: `init`, `keep`, `partition`, ...
        during: &'static str,
        message: String,
    },
    /// The guest returned its own error; the instance stays usable.
    #[error("plugin `{plugin}` failed: {error}")]
    Guest { plugin: String, error: GuestError },
    /// The guest returned something the contract forbids, such as one partition too few.
    #[error("plugin `{plugin}` broke its contract: {reason}")]
    BadOutput { plugin: String, reason: String },
    /// The component does not satisfy the world it was loaded as.
    #[error("plugin `{plugin}` is not a valid {expected}: {reason}")]
    WrongWorld {
        plugin: String,
        expected: String,
        reason: String,
    },
    /// The component imports something the host does not provide.
    #[error(
        "plugin `{plugin}` imports `{import}`, which Quiver does not provide; a plugin may \
         import only quiver:plugin/log and the WASI interfaces wasi:cli, wasi:io, \
         wasi:clocks, wasi:random, wasi:filesystem and wasi:sockets (granted nothing)"
    )]
    ForbiddenImport { plugin: String, import: String },
    /// The bytes are not a WebAssembly component this engine can compile.
    #[error("plugin `{plugin}` is not a valid WebAssembly component: {message}")]
    Invalid { plugin: String, message: String },
    /// Instantiation or `init` failed for a reason other than the guest's own error.
    #[error("plugin `{plugin}` could not be instantiated: {message}")]
    Instantiate { plugin: String, message: String },
    /// The records do not fit the batch format (a buffer past 4 GiB).
    #[error("plugin `{plugin}`: {reason}")]
    BatchTooLarge { plugin: String, reason: String },
    /// The engine could not be configured or started.
    #[error("plugin engine could not start: {0}")]
    Engine(String),
}

impl PluginError {
    /// The plugin the error is about, when there is one.
    pub fn plugin(&self) -> Option<&str> {
        match self {
            PluginError::Timeout { plugin, .. }
            | PluginError::Memory { plugin, .. }
            | PluginError::Trap { plugin, .. }
            | PluginError::Guest { plugin, .. }
            | PluginError::BadOutput { plugin, .. }
            | PluginError::WrongWorld { plugin, .. }
            | PluginError::ForbiddenImport { plugin, .. }
            | PluginError::Invalid { plugin, .. }
            | PluginError::Instantiate { plugin, .. }
            | PluginError::BatchTooLarge { plugin, .. } => Some(plugin),
            PluginError::Engine(_) => None,
        }
    }
}

/// The error a plugin returned, mirroring the WIT `error` variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuestError {
    /// `init` refused its parameters.
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// Record `index` of the batch could not be handled.
    #[error("record {index} of the batch: {reason}")]
    InvalidRecord { index: u32, reason: String },
    /// Anything else.
    #[error("{0}")]
    Failed(String),
}

impl From<crate::bindings::wit::Error> for GuestError {
    fn from(e: crate::bindings::wit::Error) -> Self {
        use crate::bindings::wit::Error as W;
        match e {
            W::InvalidConfig(m) => GuestError::InvalidConfig(m),
            W::InvalidRecord(b) => GuestError::InvalidRecord {
                index: b.index,
                reason: b.reason,
            },
            W::Failed(m) => GuestError::Failed(m),
        }
    }
}
