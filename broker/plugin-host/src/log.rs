//! A plugin's log: a bounded ring of entries that can be read and followed.
//!
//! Guests write to it through the `quiver:plugin/log` import and through stdout and
//! stderr. Writing never blocks a call: when the ring is full the oldest entry goes.
//! Readers page through it by sequence number, which keeps counting across drops, so a
//! follower can tell that it missed entries.

use std::collections::VecDeque;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use serde::{Deserialize, Serialize};

/// Longest message kept; longer ones are cut, so one chatty call cannot fill memory.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// Severity of a log entry, as the guest gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Where a log entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogSource {
    /// The `quiver:plugin/log` import.
    Guest,
    /// A line the guest wrote to stdout.
    Stdout,
    /// A line the guest wrote to stderr.
    Stderr,
    /// The host, about the plugin: a trap, a timeout, a new version.
    Host,
}

/// One entry of a plugin's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Position in the plugin's log, from 0, never reused.
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub time_ms: i64,
    pub level: LogLevel,
    pub source: LogSource,
    /// The plugin version that wrote it.
    pub version: u32,
    pub message: String,
}

/// The bounded log of one plugin name, shared by all its versions and instances, with
/// the name's counters beside it.
#[derive(Debug)]
pub struct PluginLog {
    ring: Mutex<Ring>,
    appended: Condvar,
    capacity: usize,
    stats: crate::PluginStats,
}

#[derive(Debug)]
struct Ring {
    entries: VecDeque<LogEntry>,
    next_seq: u64,
}

impl PluginLog {
    /// A log that keeps the last `capacity` entries (at least one).
    pub fn new(capacity: usize) -> PluginLog {
        let capacity = capacity.max(1);
        PluginLog {
            ring: Mutex::new(Ring {
                entries: VecDeque::with_capacity(capacity.min(1024)),
                next_seq: 0,
            }),
            appended: Condvar::new(),
            capacity,
            stats: crate::PluginStats::default(),
        }
    }

    /// What the plugin of this name did: calls, records, time, failures, reloads.
    pub fn stats(&self) -> &crate::PluginStats {
        &self.stats
    }

    /// Appends an entry, dropping the oldest when full, and wakes followers.
    pub fn push(&self, level: LogLevel, source: LogSource, version: u32, message: &str) {
        let message = truncate(message);
        let time_ms = quiver_proto::time::now_ms();
        let mut ring = self.ring.lock();
        if ring.entries.len() == self.capacity {
            ring.entries.pop_front();
        }
        let seq = ring.next_seq;
        ring.next_seq += 1;
        ring.entries.push_back(LogEntry {
            seq,
            time_ms,
            level,
            source,
            version,
            message,
        });
        drop(ring);
        self.appended.notify_all();
    }

    /// Up to `max` entries with `seq >= since`, oldest first. Entries already dropped
    /// from the ring are skipped: compare the first `seq` with `since` to notice.
    pub fn read(&self, since: u64, max: usize) -> Vec<LogEntry> {
        let ring = self.ring.lock();
        collect(&ring, since, max)
    }

    /// Like [`read`](Self::read), but waits up to `timeout` for an entry at or after
    /// `since` when there is none yet: the building block of `logs --follow`.
    pub fn wait(&self, since: u64, max: usize, timeout: Duration) -> Vec<LogEntry> {
        let mut ring = self.ring.lock();
        if ring.next_seq <= since {
            // One wait is enough: a spurious or early wake-up returns an empty page and
            // the follower asks again.
            let _ = self.appended.wait_for(&mut ring, timeout);
        }
        collect(&ring, since, max)
    }

    /// The `seq` the next entry will get.
    pub fn next_seq(&self) -> u64 {
        self.ring.lock().next_seq
    }
}

fn collect(ring: &Ring, since: u64, max: usize) -> Vec<LogEntry> {
    let first = ring.entries.front().map_or(ring.next_seq, |e| e.seq);
    let skip = usize::try_from(since.saturating_sub(first)).unwrap_or(usize::MAX);
    ring.entries.iter().skip(skip).take(max).cloned().collect()
}

fn truncate(message: &str) -> String {
    if message.len() <= MAX_MESSAGE_BYTES {
        return message.to_string();
    }
    let mut end = MAX_MESSAGE_BYTES;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &message[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_drops_oldest_and_keeps_counting() {
        let log = PluginLog::new(3);
        for i in 0..5 {
            log.push(LogLevel::Info, LogSource::Guest, 1, &format!("m{i}"));
        }
        let all = log.read(0, 100);
        assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2, 3, 4]);
        assert_eq!(log.read(4, 100).len(), 1);
        assert!(log.read(5, 100).is_empty());
        assert_eq!(log.next_seq(), 5);
    }

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let log = PluginLog::new(2);
        log.push(
            LogLevel::Warn,
            LogSource::Stdout,
            1,
            &"é".repeat(MAX_MESSAGE_BYTES),
        );
        let entry = &log.read(0, 1)[0];
        assert!(entry.message.len() <= MAX_MESSAGE_BYTES + '…'.len_utf8());
    }

    #[test]
    fn wait_returns_entries_pushed_by_another_thread() {
        let log = std::sync::Arc::new(PluginLog::new(8));
        let writer = {
            let log = log.clone();
            std::thread::spawn(move || log.push(LogLevel::Info, LogSource::Guest, 1, "late"))
        };
        let mut got = Vec::new();
        // The safety-net timeout is long; the loop ends as soon as the entry arrives.
        for _ in 0..100 {
            got = log.wait(0, 10, Duration::from_secs(5));
            if !got.is_empty() {
                break;
            }
        }
        writer.join().expect("writer thread");
        assert_eq!(got[0].message, "late");
    }
}
