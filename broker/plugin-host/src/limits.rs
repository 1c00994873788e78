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

/// The store's resource limiter: `StoreLimits` with the memory cap, plus a flag that
/// tells a memory trap apart from any other trap.
#[derive(Debug)]
pub(crate) struct MemoryCap {
    limits: StoreLimits,
    cap: usize,
    hit: bool,
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
        }
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
        self.limits.memory_growing(current, desired, maximum)
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
