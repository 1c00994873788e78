//! Settings of one partition log, alterable at run time through
//! [`PartitionLog::set_config`](crate::PartitionLog::set_config).

use std::time::Duration;

const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// When appended bytes are forced to stable storage, and so what an acknowledged append
/// survives.
///
/// Every policy writes an append's bytes to the file before `append` returns, so all of
/// them survive a crash of the broker process: the bytes are in the kernel's page cache.
/// They differ in what survives a power loss or a kernel crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushPolicy {
    /// `append` fsyncs before it returns, and readers see the batches only after that.
    /// An acknowledged append survives a power loss. The slowest policy.
    Always,
    /// [`PartitionLog::tick`](crate::PartitionLog::tick) fsyncs when this long has passed
    /// since the last flush. A power loss loses at most about one interval of appends.
    Interval(Duration),
    /// Never fsync on the append path; only a segment roll and `close` do. A power loss
    /// may lose whatever the kernel had not written back yet (typically up to ~30 s).
    Os,
}

/// What happens to old data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanupPolicy {
    /// Whole closed segments are deleted by age and size (`retention_ms`, `retention_bytes`).
    Delete,
    /// Closed segments are rewritten by a compaction policy; nothing is deleted by age.
    Compact,
    /// Both.
    DeleteAndCompact,
}

impl CleanupPolicy {
    /// Whether retention by age and size applies.
    pub fn deletes(self) -> bool {
        matches!(
            self,
            CleanupPolicy::Delete | CleanupPolicy::DeleteAndCompact
        )
    }

    /// Whether the log is meant to be compacted.
    pub fn compacts(self) -> bool {
        matches!(
            self,
            CleanupPolicy::Compact | CleanupPolicy::DeleteAndCompact
        )
    }
}

/// Settings of one partition log. Field defaults mirror Kafka's topic defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// The active segment rolls when an append would take it past this many bytes
    /// (default 1 GiB). A request larger than this still goes, whole, into a fresh segment.
    /// Capped at 4 GiB because index positions are 32-bit.
    pub segment_bytes: u64,
    /// The active segment rolls once its first batch is older than this (default 7 days).
    pub segment_ms: Option<u64>,
    /// One sparse index entry every this many bytes of log (default 4096). Smaller means
    /// larger indexes and shorter scans on lookup.
    pub index_interval_bytes: u32,
    /// Largest size of an index file (default 10 MiB); the segment rolls when either of its
    /// indexes would outgrow it. Index files grow on demand, they are not preallocated.
    pub segment_index_bytes: u32,
    /// Closed segments whose newest timestamp is older than this are deleted (default
    /// 7 days). `None` keeps them forever.
    pub retention_ms: Option<i64>,
    /// Oldest closed segments are deleted while the log is larger than this. `None` is
    /// unbounded (the default).
    pub retention_bytes: Option<u64>,
    /// Largest batch accepted by `append` (default 8 MiB).
    pub max_batch_bytes: u32,
    /// When appends are fsynced.
    pub flush: FlushPolicy,
    /// Deletion, compaction or both.
    pub cleanup: CleanupPolicy,
    /// How long a tombstone survives compaction, measured from its timestamp (default 1 day).
    pub delete_retention_ms: i64,
    /// This log is the partition's only replica (default true): every append is
    /// committed at once, so the high watermark follows the log end and is the log end
    /// again after a restart. With `false` the owner advances it
    /// ([`PartitionLog::advance_high_watermark`](crate::PartitionLog::advance_high_watermark))
    /// as replicas catch up, and a restart takes it from its checkpoint.
    pub sole_replica: bool,
    /// How much of its fsynced data, counted back from the end of what was fsynced, a
    /// segment leaves in the OS page cache (default 32 MiB); after each fsync the pages
    /// older than that are dropped from the cache. `None` leaves every page to the OS.
    ///
    /// The tail is what followers and consumers that keep up read. Growing the page cache
    /// with every byte ever written costs a fresh page per 4 KiB appended, and on virtual
    /// machines that hand freed memory back to their host (free page reporting) each fresh
    /// page is a fault in the host as well: there, writing into a bounded, recycled cache
    /// costs a fraction of the kernel time. Data the OS has not yet written out is never
    /// dropped, so a log that is not fsynced (`FlushPolicy::Os`) keeps its pages.
    pub cache_tail_bytes: Option<u64>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: Some(7 * DAY_MS),
            index_interval_bytes: 4096,
            segment_index_bytes: 10 << 20,
            retention_ms: Some(7 * DAY_MS as i64),
            retention_bytes: None,
            max_batch_bytes: 8 << 20,
            flush: FlushPolicy::Os,
            cleanup: CleanupPolicy::Delete,
            delete_retention_ms: DAY_MS as i64,
            sole_replica: true,
            cache_tail_bytes: Some(DEFAULT_CACHE_TAIL_BYTES),
        }
    }
}

/// [`LogConfig::cache_tail_bytes`] by default: several follower fetches' worth.
pub const DEFAULT_CACHE_TAIL_BYTES: u64 = 32 << 20;

impl LogConfig {
    /// The roll size actually applied: positions in the index are `u32`.
    pub(crate) fn effective_segment_bytes(&self) -> u64 {
        self.segment_bytes.clamp(1, u64::from(u32::MAX))
    }
}
