//! Walking a segment file batch by batch, reading only headers and skipping bodies by
//! their length.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use quiver_proto::batch::{BatchError, BatchHeader, HEADER_LEN};

use crate::damage::DamagedRange;

/// Bytes read at once when looking for headers: small batches share one read, and a large
/// batch costs one small read for its header.
const WINDOW: usize = 8 * 1024;

/// One step of a [`BatchScan`].
#[derive(Debug)]
pub(crate) enum ScanStep {
    /// A batch whose header parses and whose declared length fits before the end.
    Batch { position: u64, header: BatchHeader },
    /// The scan reached the end exactly on a batch boundary.
    End,
    /// The bytes at `position` are not a whole batch: torn, garbage or truncated.
    Broken { position: u64, reason: BatchError },
    /// A known damaged range starts at `position`; the scan continues after it.
    Hole { position: u64 },
}

/// A forward scan over the batches of `file` between two positions. It checks headers
/// and lengths, not CRCs.
#[derive(Debug)]
pub(crate) struct BatchScan<'f> {
    file: &'f File,
    position: u64,
    end: u64,
    window: Vec<u8>,
    window_start: u64,
    /// Damaged ranges recovery found, each passed over as one step.
    holes: &'f [DamagedRange],
}

impl<'f> BatchScan<'f> {
    /// Scans from `from` (which must be a batch boundary) up to `end` (exclusive).
    pub(crate) fn new(file: &'f File, from: u64, end: u64) -> Self {
        BatchScan {
            file,
            position: from,
            end,
            window: Vec::new(),
            window_start: 0,
            holes: &[],
        }
    }

    /// Reports each of `holes` as a [`ScanStep::Hole`] and continues after it.
    pub(crate) fn passing(mut self, holes: &'f [DamagedRange]) -> Self {
        self.holes = holes;
        self
    }

    /// The next batch, the end, or where the bytes stop making sense.
    pub(crate) fn next_step(&mut self) -> io::Result<ScanStep> {
        if self.position >= self.end {
            return Ok(ScanStep::End);
        }
        let position = self.position;
        if let Some(hole) = self.holes.iter().find(|h| h.position == position) {
            self.position = hole.end_position;
            return Ok(ScanStep::Hole { position });
        }
        let remaining = self.end - position;
        if remaining < HEADER_LEN as u64 {
            return Ok(self.broken(BatchError::Truncated {
                needed: HEADER_LEN,
                available: remaining as usize,
            }));
        }
        let header = match BatchHeader::parse(self.header_bytes()?) {
            Ok(header) => header,
            Err(reason) => return Ok(self.broken(reason)),
        };
        let len = header.total_len() as u64;
        if len > remaining {
            return Ok(self.broken(BatchError::Truncated {
                needed: len as usize,
                available: remaining as usize,
            }));
        }
        self.position += len;
        Ok(ScanStep::Batch { position, header })
    }

    fn broken(&mut self, reason: BatchError) -> ScanStep {
        let position = self.position;
        // Nothing after a broken batch can be trusted, so the scan ends here.
        self.position = self.end;
        ScanStep::Broken { position, reason }
    }

    fn header_bytes(&mut self) -> io::Result<&[u8]> {
        let window_end = self.window_start + self.window.len() as u64;
        let cached =
            self.position >= self.window_start && self.position + HEADER_LEN as u64 <= window_end;
        if !cached {
            let len = (self.end - self.position).min(WINDOW as u64) as usize;
            self.window.resize(len, 0);
            self.file.read_exact_at(&mut self.window, self.position)?;
            self.window_start = self.position;
        }
        let at = (self.position - self.window_start) as usize;
        Ok(&self.window[at..at + HEADER_LEN])
    }
}
