//! The snapshot file: one image, checksummed, written so that after a crash it is
//! either absent or complete.
//!
//! ```text
//! "QVMETSNP" (8 bytes) | format u32 LE (= 1) | index u64 LE | length u32 LE
//! | crc32c u32 LE of the image bytes | image bytes (MetadataImage::snapshot)
//! ```
//!
//! It is written as `<index>.snapshot.tmp`, synced, renamed to `<index>.snapshot`, and
//! the directory is synced; a temporary file found at open is what a crash left and is
//! removed.

use std::path::Path;

use crate::image::MetadataImage;

use super::error::LocalLogError;

const MAGIC: &[u8; 8] = b"QVMETSNP";
const FORMAT: u32 = 1;
const HEADER: usize = 28;

/// Writes `image` durably to `path` (via a temporary file beside it).
pub(crate) fn write(path: &Path, image: &MetadataImage) -> Result<(), LocalLogError> {
    let body = image.snapshot();
    let len = u32::try_from(body.len()).map_err(|_| LocalLogError::Io {
        action: "write snapshot",
        path: path.to_path_buf(),
        source: std::io::Error::other("the image is larger than 4 GiB"),
    })?;
    let mut bytes = Vec::with_capacity(HEADER + body.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&FORMAT.to_le_bytes());
    bytes.extend_from_slice(&image.last_applied().to_le_bytes());
    bytes.extend_from_slice(&len.to_le_bytes());
    bytes.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    bytes.extend_from_slice(&body);

    quiver_durable::write_atomic(path, &bytes).map_err(|source| LocalLogError::Io {
        action: "write snapshot",
        path: path.to_path_buf(),
        source,
    })
}

/// Reads the snapshot at `path`, which its name says covers up to `index`.
pub(crate) fn read(path: &Path, index: u64) -> Result<MetadataImage, LocalLogError> {
    let bad = |reason: String| LocalLogError::BadSnapshot {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|source| LocalLogError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })?;
    if bytes.len() < HEADER || &bytes[..8] != MAGIC {
        return Err(bad("it does not start with a snapshot header".into()));
    }
    let format = u32::from_le_bytes(bytes[8..12].try_into().unwrap_or_default());
    if format != FORMAT {
        return Err(bad(format!(
            "format {format} is not the supported {FORMAT}"
        )));
    }
    let header_index = u64::from_le_bytes(bytes[12..20].try_into().unwrap_or_default());
    let len = u32::from_le_bytes(bytes[20..24].try_into().unwrap_or_default()) as usize;
    let crc = u32::from_le_bytes(bytes[24..28].try_into().unwrap_or_default());
    let body = &bytes[HEADER..];
    if body.len() != len || crc32c::crc32c(body) != crc {
        return Err(bad(
            "its length or checksum does not match; the file is damaged".into(),
        ));
    }
    let image = MetadataImage::restore(body).map_err(|e| bad(e.to_string()))?;
    if header_index != index || image.last_applied() != index {
        return Err(bad(format!(
            "its name says index {index}, its header {header_index}, its image {}",
            image.last_applied()
        )));
    }
    Ok(image)
}
