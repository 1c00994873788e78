//! The log file format: a header, then framed records.
//!
//! ```text
//! header  "QVMETLOG" (8 bytes) | format u32 LE (= 1)
//! frame   length u32 LE | crc32c u32 LE | index u64 LE | record (length bytes)
//! ```
//!
//! The CRC-32C covers the index and the record, so a frame whose bytes were damaged or
//! only partly written does not pass. A file is named after the index of its first
//! record, and the indexes in it count up by one.

/// Magic bytes at the start of every log file.
pub const LOG_MAGIC: &[u8; 8] = b"QVMETLOG";
/// The log file format this code writes and reads.
pub const LOG_FORMAT: u32 = 1;
/// Bytes of the file header.
pub const LOG_HEADER: usize = 12;
/// Bytes before a frame's record.
pub const FRAME_HEADER: usize = 16;
/// The largest record a frame may hold. Metadata records are small; a length beyond
/// this is damage, not a record.
pub const MAX_RECORD_BYTES: usize = 16 << 20;

/// The file header.
pub fn header() -> [u8; LOG_HEADER] {
    let mut h = [0u8; LOG_HEADER];
    h[..8].copy_from_slice(LOG_MAGIC);
    h[8..].copy_from_slice(&LOG_FORMAT.to_le_bytes());
    h
}

/// One record framed with its index.
pub fn encode(index: u64, record: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME_HEADER + record.len());
    // Records are far below 4 GiB; the caller refuses larger ones.
    out.extend_from_slice(
        &u32::try_from(record.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    out.extend_from_slice(&checksum(index, record).to_le_bytes());
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(record);
    out
}

fn checksum(index: u64, record: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&index.to_le_bytes()), record)
}

/// A frame found in a file.
#[derive(Debug)]
pub struct Frame<'a> {
    /// Byte offset of the frame in the file.
    pub offset: usize,
    pub index: u64,
    pub record: &'a [u8],
}

/// What a scan of a file's frames found.
#[derive(Debug)]
pub struct Scan<'a> {
    pub frames: Vec<Frame<'a>>,
    /// Where the good frames end; a torn tail starts here.
    pub valid_len: usize,
    /// Whether bytes after `valid_len` are a partly written frame.
    pub torn: bool,
}

/// Damage that is not a torn tail: a bad frame with more data after it.
#[derive(Debug)]
pub struct Damage {
    pub offset: usize,
    pub reason: String,
}

/// Reads the frames of `bytes` from `start` (just after the header).
///
/// A bad frame is a torn tail when it is what a crash during an append leaves: a frame
/// that runs past the end of the file, zeros to the end, or a frame whose checksum fails
/// and that ends exactly at the end of the file. A bad frame followed by more data is
/// damage: an append never writes after a frame it has not finished.
pub fn scan(bytes: &[u8], start: usize) -> Result<Scan<'_>, Damage> {
    let mut frames = Vec::new();
    let mut pos = start;
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        let torn = |frames| {
            Ok(Scan {
                frames,
                valid_len: pos,
                torn: true,
            })
        };
        if rest.len() < FRAME_HEADER || rest.iter().all(|b| *b == 0) {
            return torn(frames);
        }
        let len = u32_at(rest, 0) as usize;
        let crc = u32_at(rest, 4);
        let index = u64::from_le_bytes(rest[8..16].try_into().unwrap_or_default());
        let end = FRAME_HEADER.saturating_add(len);
        if end > rest.len() {
            return torn(frames);
        }
        if len == 0 || len > MAX_RECORD_BYTES {
            return Err(Damage {
                offset: pos,
                reason: format!("frame length {len} is not that of a record"),
            });
        }
        let record = &rest[FRAME_HEADER..end];
        if checksum(index, record) != crc {
            if end == rest.len() {
                return torn(frames);
            }
            return Err(Damage {
                offset: pos,
                reason: "checksum does not match the frame's bytes".into(),
            });
        }
        frames.push(Frame {
            offset: pos,
            index,
            record,
        });
        pos += end;
    }
    Ok(Scan {
        frames,
        valid_len: pos,
        torn: false,
    })
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(frames: &[(u64, &[u8])]) -> Vec<u8> {
        let mut out = header().to_vec();
        for (i, r) in frames {
            out.extend(encode(*i, r));
        }
        out
    }

    #[test]
    fn frames_round_trip() {
        let bytes = file(&[(1, b"a"), (2, b"bc")]);
        let scan = scan(&bytes, LOG_HEADER).expect("scan");
        assert!(!scan.torn);
        assert_eq!(scan.valid_len, bytes.len());
        let got: Vec<(u64, &[u8])> = scan.frames.iter().map(|f| (f.index, f.record)).collect();
        assert_eq!(got, vec![(1, &b"a"[..]), (2, &b"bc"[..])]);
    }

    #[test]
    fn every_prefix_of_a_frame_is_a_torn_tail() {
        let whole = file(&[(1, b"first"), (2, b"second")]);
        let first_end = LOG_HEADER + FRAME_HEADER + 5;
        for cut in first_end + 1..whole.len() {
            let scan = scan(&whole[..cut], LOG_HEADER).expect("torn, not damaged");
            assert!(scan.torn, "cut at {cut}");
            assert_eq!(scan.valid_len, first_end);
            assert_eq!(scan.frames.len(), 1);
        }
    }

    #[test]
    fn a_bad_last_frame_is_torn_but_a_bad_middle_frame_is_damage() {
        let mut bytes = file(&[(1, b"first"), (2, b"second")]);
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(scan(&bytes, LOG_HEADER).expect("torn").torn);

        let mut bytes = file(&[(1, b"first"), (2, b"second")]);
        bytes[LOG_HEADER + FRAME_HEADER] ^= 1;
        let damage = scan(&bytes, LOG_HEADER).expect_err("damage");
        assert_eq!(damage.offset, LOG_HEADER);
    }

    #[test]
    fn zeros_to_the_end_are_a_torn_tail() {
        let mut bytes = file(&[(1, b"first")]);
        let good = bytes.len();
        bytes.extend([0u8; 100]);
        let scan = scan(&bytes, LOG_HEADER).expect("torn");
        assert!(scan.torn);
        assert_eq!(scan.valid_len, good);
    }
}
