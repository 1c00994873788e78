//! What a plugin's store holds: a WASI context that grants nothing, the memory limiter,
//! and the plugin's log.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::wit_log;
use crate::limits::MemoryCap;
use crate::log::{LogLevel, LogSource, PluginLog};
use crate::stdio::LogStream;

/// The data of one plugin instance's `Store`.
pub(crate) struct GuestState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: MemoryCap,
    /// The guest's stderr, whose last lines name what a trapping call panicked with.
    pub(crate) stderr: LogStream,
    log: Arc<PluginLog>,
    version: u32,
}

impl std::fmt::Debug for GuestState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestState")
            .field("limiter", &self.limiter)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl GuestState {
    pub(crate) fn new(log: Arc<PluginLog>, version: u32, memory_cap: usize) -> GuestState {
        // Architecture invariant: a plugin has no ambient authority. The builder's
        // defaults already give no preopened directories, no environment, no arguments
        // and a closed stdin; sockets are switched off explicitly because the default
        // allows creating them (with every address denied). Only clocks and randomness
        // remain, which reveal nothing about the host.
        let stderr = LogStream::new(log.clone(), LogSource::Stderr, version);
        let wasi = WasiCtx::builder()
            .stdout(LogStream::new(log.clone(), LogSource::Stdout, version))
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        GuestState {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryCap::new(memory_cap),
            stderr,
            log,
            version,
        }
    }
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wit_log::Host for GuestState {
    fn log(&mut self, level: wit_log::Level, message: String) {
        let level = match level {
            wit_log::Level::Trace => LogLevel::Trace,
            wit_log::Level::Debug => LogLevel::Debug,
            wit_log::Level::Info => LogLevel::Info,
            wit_log::Level::Warn => LogLevel::Warn,
            wit_log::Level::Error => LogLevel::Error,
        };
        self.log
            .push(level, LogSource::Guest, self.version, &message);
    }
}
