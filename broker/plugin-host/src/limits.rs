//! The time and memory a plugin may use, and the limiter that enforces memory.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};

/// Bounds of one plugin. The broker has defaults ([`PluginLimits::default`]); a plugin's
/// metadata may override them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginLimits {
    /// Wall-clock time one call may take, enforced by epoch interruption at the host's
    /// tick granularity. A call past it traps and its instance is replaced.
    pub call_timeout: Duration,
    /// Linear memory one instance may hold, in bytes. Instantiation counts too: a
    /// component whose initial memory exceeds the cap never runs.
    pub memory_bytes: usize,
    /// Instances kept warm per plugin binding; more are created under concurrency and
    /// dropped when returned to a full pool.
    pub max_idle_instances: usize,
}

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits {
            // Generous for a batch of thousands of records in an interpreted guest
            // (Python and JavaScript cost microseconds per record), short enough that a
            // stuck plugin does not hold up a produce for long.
            call_timeout: Duration::from_secs(1),
            // componentize-py's interpreter alone starts with tens of MiB.
            memory_bytes: 128 << 20,
            // The machine this runs on has two cores; more warm instances than
            // concurrent callers only costs memory (~20 KiB each plus the guest heap).
            max_idle_instances: 4,
        }
    }
}

/// Shortest call time limit a plugin may be given, in milliseconds: below the epoch
/// tick's granularity a limit means little.
pub const MIN_CALL_TIMEOUT_MS: u64 = 10;
/// Longest call time limit, in milliseconds: a produce or fetch waits for the call.
pub const MAX_CALL_TIMEOUT_MS: u64 = 60_000;
/// Smallest memory cap, in bytes: a Rust plugin starts with about 1 MiB.
pub const MIN_MEMORY_BYTES: u64 = 1 << 20;
/// Largest memory cap, in bytes: all that 32-bit linear memory can address.
pub const MAX_MEMORY_BYTES: u64 = 4 << 30;

/// A plugin limit outside its bounds, naming the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("plugin `{plugin}`: {setting} = {value} is out of range: use {min} to {max}")]
pub struct LimitOutOfRange {
    pub plugin: String,
    /// The setting as the user wrote it, such as `--timeout-ms`.
    pub setting: &'static str,
    pub value: u64,
    pub min: u64,
    pub max: u64,
}

impl PluginLimits {
    /// Checks a call time limit in milliseconds, given as `setting`.
    pub fn check_timeout_ms(
        plugin: &str,
        setting: &'static str,
        value: u64,
    ) -> Result<u64, LimitOutOfRange> {
        within(
            plugin,
            setting,
            value,
            MIN_CALL_TIMEOUT_MS,
            MAX_CALL_TIMEOUT_MS,
        )
    }

    /// Checks a memory cap in bytes, given as `setting`.
    pub fn check_memory_bytes(
        plugin: &str,
        setting: &'static str,
        value: u64,
    ) -> Result<u64, LimitOutOfRange> {
        within(plugin, setting, value, MIN_MEMORY_BYTES, MAX_MEMORY_BYTES)
    }
}

fn within(
    plugin: &str,
    setting: &'static str,
    value: u64,
    min: u64,
    max: u64,
) -> Result<u64, LimitOutOfRange> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(LimitOutOfRange {
            plugin: plugin.to_string(),
            setting,
            value,
            min,
            max,
        })
    }
}

/// The store's resource limiter: `StoreLimits` with the memory cap, plus a flag that
/// tells a memory trap apart from any other trap.
#[derive(Debug)]
pub(crate) struct MemoryCap {
    limits: StoreLimits,
    cap: usize,
    hit: bool,
    /// The largest memory size a growth asked for and got.
    grown_to: usize,
}

impl MemoryCap {
    pub(crate) fn new(cap: usize) -> MemoryCap {
        MemoryCap {
            limits: StoreLimitsBuilder::new()
                .memory_size(cap)
                .instances(64)
                .tables(64)
                .memories(16)
                .trap_on_grow_failure(true)
                .build(),
            cap,
            hit: false,
            grown_to: 0,
        }
    }

    /// The largest size the instance's memory has grown to.
    pub(crate) fn grown_to(&self) -> usize {
        self.grown_to
    }

    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    /// True when a growth past the cap was refused since the last [`reset`](Self::reset).
    pub(crate) fn hit(&self) -> bool {
        self.hit
    }

    pub(crate) fn reset(&mut self) {
        self.hit = false;
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.hit = true;
        }
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        if allowed {
            self.grown_to = self.grown_to.max(desired);
        }
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_outside_their_bounds_name_the_setting() {
        assert_eq!(
            PluginLimits::check_timeout_ms("p", "--timeout-ms", 10),
            Ok(10)
        );
        let err = PluginLimits::check_timeout_ms("p", "--timeout-ms", 5).expect_err("short");
        assert_eq!(
            err.to_string(),
            "plugin `p`: --timeout-ms = 5 is out of range: use 10 to 60000"
        );
        assert!(PluginLimits::check_memory_bytes("p", "memory_bytes", MAX_MEMORY_BYTES).is_ok());
        let err = PluginLimits::check_memory_bytes("p", "memory_bytes", 4096).expect_err("small");
        assert_eq!(err.setting, "memory_bytes");
    }
}
