//! What a plugin did, counted for the broker's metrics: calls, records in and out, time,
//! failures by kind, the largest memory an instance grew to, and reloads. One set per
//! plugin name, shared by its versions (it lives beside the name's log).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::PluginError;

/// Counters of one plugin name since the broker started.
#[derive(Debug, Default)]
pub struct PluginStats {
    calls: AtomicU64,
    records_in: AtomicU64,
    records_out: AtomicU64,
    call_nanos: AtomicU64,
    traps: AtomicU64,
    timeouts: AtomicU64,
    out_of_memory: AtomicU64,
    guest_errors: AtomicU64,
    memory_peak: AtomicU64,
    reloads: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PluginFigures {
    pub calls: u64,
    pub records_in: u64,
    pub records_out: u64,
    /// Wall-clock time inside calls, summed.
    pub call_time: Duration,
    pub traps: u64,
    pub timeouts: u64,
    pub out_of_memory: u64,
    /// Calls the guest answered with its own error.
    pub guest_errors: u64,
    /// The most linear memory one instance grew to, in bytes.
    pub memory_peak_bytes: u64,
    /// New versions made current after the first.
    pub reloads: u64,
}

impl PluginStats {
    /// One call over `records` records that took `took` and ended with `failure`, if it
    /// failed; `memory` is the size the instance's memory had grown to.
    pub(crate) fn call(
        &self,
        records: usize,
        took: Duration,
        memory: usize,
        failure: Option<&PluginError>,
    ) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.records_in.fetch_add(records as u64, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.call_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.memory_peak.fetch_max(memory as u64, Ordering::Relaxed);
        let counter = match failure {
            None => return,
            Some(PluginError::Trap { .. }) => &self.traps,
            Some(PluginError::Timeout { .. }) => &self.timeouts,
            Some(PluginError::Memory { .. }) => &self.out_of_memory,
            Some(PluginError::Guest { .. }) => &self.guest_errors,
            Some(_) => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A call passed `records` records on: kept by a filter, routed by a partitioner,
    /// kept by a compaction policy.
    pub(crate) fn passed(&self, records: usize) {
        self.records_out
            .fetch_add(records as u64, Ordering::Relaxed);
    }

    pub(crate) fn reloaded(&self) {
        self.reloads.fetch_add(1, Ordering::Relaxed);
    }

    pub fn figures(&self) -> PluginFigures {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        PluginFigures {
            calls: get(&self.calls),
            records_in: get(&self.records_in),
            records_out: get(&self.records_out),
            call_time: Duration::from_nanos(get(&self.call_nanos)),
            traps: get(&self.traps),
            timeouts: get(&self.timeouts),
            out_of_memory: get(&self.out_of_memory),
            guest_errors: get(&self.guest_errors),
            memory_peak_bytes: get(&self.memory_peak),
            reloads: get(&self.reloads),
        }
    }
}
