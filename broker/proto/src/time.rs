//! Wall-clock milliseconds since the Unix epoch: the unit of every record timestamp,
//! metadata age and `added_ms` field Quiver writes.
//!
//! Reading the clock is the one thing here that is not pure encoding; it lives in this
//! crate because both the broker and the SDK need the same reading, and the SDK depends
//! on nothing broker-side but this crate and `quiver-quic`.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch now; 0 if the clock is set before the epoch, and
/// `i64::MAX` past the year 292 million, rather than a panic on a broken clock.
pub fn now_ms() -> i64 {
    ms_since_epoch(SystemTime::now())
}

fn ms_since_epoch(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn milliseconds_count_from_the_epoch() {
        assert_eq!(ms_since_epoch(UNIX_EPOCH), 0);
        assert_eq!(
            ms_since_epoch(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)),
            1_700_000_000_123
        );
    }

    #[test]
    fn a_clock_before_the_epoch_reads_zero() {
        let before = UNIX_EPOCH
            .checked_sub(Duration::from_secs(1))
            .expect("representable");
        assert_eq!(ms_since_epoch(before), 0);
    }

    #[test]
    fn the_clock_reads_after_2020() {
        // 2020-01-01T00:00:00Z: any machine running this has a later clock.
        assert!(now_ms() > 1_577_836_800_000);
    }
}
