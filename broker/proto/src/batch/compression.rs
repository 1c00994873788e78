//! The five codecs a batch's records may be compressed with, and their ids.

use super::BatchError;

/// The compression codec stored in a batch's attribute bits.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub enum Compression {
    #[default]
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// The id Kafka uses for this codec in the attribute bits.
    pub fn id(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    pub fn from_id(id: i16) -> Result<Self, BatchError> {
        Ok(match id {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            other => return Err(BatchError::UnknownCodec(other)),
        })
    }

    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        })
    }
}

impl std::str::FromStr for Compression {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(Compression::None),
            "gzip" => Ok(Compression::Gzip),
            "snappy" => Ok(Compression::Snappy),
            "lz4" => Ok(Compression::Lz4),
            "zstd" => Ok(Compression::Zstd),
            other => Err(format!(
                "unknown compression '{other}': expected none, gzip, snappy, lz4 or zstd"
            )),
        }
    }
}

/// Compresses a record block with the given codec.
pub fn compress(codec: Compression, data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    match codec {
        Compression::None => data.to_vec(),
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(
                Vec::with_capacity(data.len() / 2),
                flate2::Compression::fast(),
            );
            // Writing into a Vec cannot fail.
            let _ = enc.write_all(data);
            enc.finish().unwrap_or_default()
        }
        Compression::Snappy => snap::raw::Encoder::new()
            .compress_vec(data)
            .unwrap_or_default(),
        Compression::Lz4 => {
            let mut enc = lz4_flex::frame::FrameEncoder::new(Vec::with_capacity(data.len() / 2));
            let _ = enc.write_all(data);
            enc.finish().unwrap_or_default()
        }
        Compression::Zstd => zstd::bulk::compress(data, 3).unwrap_or_default(),
    }
}

/// Largest record block a compressed batch may expand to. Bounds a decompression bomb.
pub const MAX_DECOMPRESSED: usize = 256 * 1024 * 1024;

/// Decompresses a record block. Snappy accepts both raw blocks and the xerial framing
/// Kafka's Java client writes.
pub fn decompress(codec: Compression, data: &[u8]) -> Result<Vec<u8>, BatchError> {
    use std::io::Read;
    let fail = |reason: String| BatchError::Decompression { codec, reason };
    match codec {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(data)
                .take(MAX_DECOMPRESSED as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| fail(e.to_string()))?;
            check_bound(out, codec)
        }
        Compression::Snappy => decompress_snappy(data).map_err(fail),
        Compression::Lz4 => {
            let mut out = Vec::new();
            lz4_flex::frame::FrameDecoder::new(data)
                .take(MAX_DECOMPRESSED as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| fail(e.to_string()))?;
            check_bound(out, codec)
        }
        Compression::Zstd => {
            let mut out = Vec::new();
            zstd::stream::read::Decoder::new(data)
                .map_err(|e| fail(e.to_string()))?
                .take(MAX_DECOMPRESSED as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| fail(e.to_string()))?;
            check_bound(out, codec)
        }
    }
}

fn check_bound(out: Vec<u8>, codec: Compression) -> Result<Vec<u8>, BatchError> {
    if out.len() > MAX_DECOMPRESSED {
        return Err(BatchError::Decompression {
            codec,
            reason: format!("expands past {MAX_DECOMPRESSED} bytes"),
        });
    }
    Ok(out)
}

const XERIAL_MAGIC: &[u8] = &[0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];

fn decompress_snappy(data: &[u8]) -> Result<Vec<u8>, String> {
    let raw = |block: &[u8]| -> Result<Vec<u8>, String> {
        let len = snap::raw::decompress_len(block).map_err(|e| e.to_string())?;
        if len > MAX_DECOMPRESSED {
            return Err(format!("expands past {MAX_DECOMPRESSED} bytes"));
        }
        snap::raw::Decoder::new()
            .decompress_vec(block)
            .map_err(|e| e.to_string())
    };
    if !data.starts_with(XERIAL_MAGIC) {
        return raw(data);
    }
    // Xerial framing: 16-byte header, then blocks each prefixed by a 4-byte length.
    let mut rest = data.get(16..).ok_or("xerial header truncated")?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let len_bytes: [u8; 4] = rest
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .ok_or("xerial block length truncated")?;
        let len = u32::from_be_bytes(len_bytes) as usize;
        let block = rest.get(4..4 + len).ok_or("xerial block truncated")?;
        out.extend_from_slice(&raw(block)?);
        if out.len() > MAX_DECOMPRESSED {
            return Err(format!("expands past {MAX_DECOMPRESSED} bytes"));
        }
        rest = &rest[4 + len..];
    }
    Ok(out)
}
