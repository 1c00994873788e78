//! Frames: how a request or response is laid out on a QUIC stream.
//!
//! Every request travels on its own bidirectional stream, so frames need no correlation
//! id. A frame is a length prefix, a small fixed head, a postcard-encoded body, and an
//! optional payload of raw record batches that is never copied into a struct.
//!
//! ```text
//! request:  u32 frame_len | u16 api | u16 version | u32 body_len | body | payload
//! response: u32 frame_len | u16 error code        | u32 body_len | body | payload
//! ```
//!
//! `frame_len` counts the bytes after itself. Readers check it against their maximum frame
//! size before allocating anything. A response whose code is not `NONE` carries a UTF-8
//! message as its body instead of the response struct.

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::{ApiKey, Request};
use crate::error::{ErrorCode, WireError};

/// Default largest frame a broker or client accepts: 16 MiB.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

const REQUEST_HEAD: usize = 2 + 2 + 4;
const RESPONSE_HEAD: usize = 2 + 4;

/// Why a frame could not be read or decoded.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("frame truncated: {0}")]
    Truncated(&'static str),
    #[error("frame body does not decode as {what}: {source}")]
    Body {
        what: &'static str,
        #[source]
        source: postcard::Error,
    },
    #[error("frame body is not valid UTF-8 error text")]
    BadErrorText,
    #[error("I/O error while reading a frame: {0}")]
    Io(#[from] std::io::Error),
}

/// The length prefix of a frame, checked against `max` before anything is allocated.
pub fn check_len(prefix: [u8; 4], max: usize) -> Result<usize, FrameError> {
    let size = u32::from_be_bytes(prefix) as usize;
    if size > max {
        return Err(FrameError::TooLarge { size, max });
    }
    Ok(size)
}

/// A decoded request frame: which API, and the undecoded body and payload.
#[derive(Debug, Clone)]
pub struct RequestFrame {
    pub api: ApiKey,
    pub version: u16,
    pub body: Bytes,
    pub payload: Bytes,
}

impl RequestFrame {
    /// Splits the bytes after the length prefix into head, body and payload.
    pub fn parse(frame: Bytes) -> Result<RequestFrame, FrameError> {
        if frame.len() < REQUEST_HEAD {
            return Err(FrameError::Truncated("request head"));
        }
        let api = ApiKey(u16::from_be_bytes([frame[0], frame[1]]));
        let version = u16::from_be_bytes([frame[2], frame[3]]);
        let body_len = u32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]) as usize;
        let rest = frame.slice(REQUEST_HEAD..);
        if body_len > rest.len() {
            return Err(FrameError::Truncated("request body"));
        }
        Ok(RequestFrame {
            api,
            version,
            body: rest.slice(..body_len),
            payload: rest.slice(body_len..),
        })
    }

    /// Decodes the body as the request type `R`.
    pub fn decode<R: Request>(&self) -> Result<R, FrameError> {
        postcard::from_bytes(&self.body).map_err(|source| FrameError::Body {
            what: R::NAME,
            source,
        })
    }
}

/// Encodes the head and body of a request; the payload follows as its own chunk.
pub fn encode_request<R: Request>(req: &R, payload_len: usize) -> Bytes {
    let body = postcard::to_allocvec(req).unwrap_or_default();
    let mut out = BytesMut::with_capacity(4 + REQUEST_HEAD + body.len());
    out.put_u32((REQUEST_HEAD + body.len() + payload_len) as u32);
    out.put_u16(R::API.0);
    out.put_u16(R::VERSION);
    out.put_u32(body.len() as u32);
    out.put_slice(&body);
    out.freeze()
}

/// Encodes the head and body of a successful response; the payload follows separately.
pub fn encode_response<T: Serialize>(resp: &T, payload_len: usize) -> Bytes {
    let body = postcard::to_allocvec(resp).unwrap_or_default();
    response_head(ErrorCode::NONE, &body, payload_len)
}

/// Encodes an error response: its code and a message naming what was wrong.
pub fn encode_error(err: &WireError) -> Bytes {
    response_head(err.code, err.message.as_bytes(), 0)
}

fn response_head(code: ErrorCode, body: &[u8], payload_len: usize) -> Bytes {
    let mut out = BytesMut::with_capacity(4 + RESPONSE_HEAD + body.len());
    out.put_u32((RESPONSE_HEAD + body.len() + payload_len) as u32);
    out.put_u16(code.0);
    out.put_u32(body.len() as u32);
    out.put_slice(body);
    out.freeze()
}

/// A response frame split into its decoded body and its payload.
#[derive(Debug, Clone)]
pub struct ResponseFrame<T> {
    pub body: T,
    pub payload: Bytes,
}

/// Decodes the bytes after the length prefix as a response of type `T`, or the error the
/// broker sent instead.
pub fn decode_response<T: DeserializeOwned>(
    frame: Bytes,
    what: &'static str,
) -> Result<Result<ResponseFrame<T>, WireError>, FrameError> {
    if frame.len() < RESPONSE_HEAD {
        return Err(FrameError::Truncated("response head"));
    }
    let code = ErrorCode(u16::from_be_bytes([frame[0], frame[1]]));
    let body_len = u32::from_be_bytes([frame[2], frame[3], frame[4], frame[5]]) as usize;
    let rest = frame.slice(RESPONSE_HEAD..);
    if body_len > rest.len() {
        return Err(FrameError::Truncated("response body"));
    }
    let body = rest.slice(..body_len);
    if code != ErrorCode::NONE {
        let message = std::str::from_utf8(&body).map_err(|_| FrameError::BadErrorText)?;
        return Ok(Err(WireError::new(code, message)));
    }
    let decoded =
        postcard::from_bytes(&body).map_err(|source| FrameError::Body { what, source })?;
    Ok(Ok(ResponseFrame {
        body: decoded,
        payload: rest.slice(body_len..),
    }))
}

/// Reading frames from any tokio `AsyncRead`, such as a quinn `RecvStream`.
#[cfg(feature = "tokio-io")]
pub mod io {
    use super::{FrameError, RESPONSE_HEAD, check_len};
    use bytes::{BufMut, Bytes, BytesMut};
    use tokio::io::{AsyncRead, AsyncReadExt};

    /// Reads the next frame's bytes after its length prefix. `Ok(None)` means the stream
    /// ended cleanly before a new frame began.
    pub async fn read_frame<R: AsyncRead + Unpin>(
        reader: &mut R,
        max: usize,
    ) -> Result<Option<Bytes>, FrameError> {
        match read_prefix(reader, max).await? {
            None => Ok(None),
            Some(len) => read_bytes(reader, len).await.map(Some),
        }
    }

    /// The head of a response frame, read before its payload.
    #[derive(Debug)]
    pub struct ResponseHead {
        /// Code, body length and body: what [`super::decode_response`] takes, with an
        /// empty payload.
        pub head: Bytes,
        /// Bytes of payload still on the stream after the head.
        pub payload_len: usize,
    }

    /// Reads a response frame's length prefix, code and body, and leaves its payload on
    /// the stream, so the caller can act on the body while the payload is still arriving
    /// (the consumer starts its next fetch from a fetch response's `next_offset`). Read
    /// the payload with [`read_bytes`]. `Ok(None)`: the stream ended before a frame.
    pub async fn read_response_head<R: AsyncRead + Unpin>(
        reader: &mut R,
        max: usize,
    ) -> Result<Option<ResponseHead>, FrameError> {
        let Some(len) = read_prefix(reader, max).await? else {
            return Ok(None);
        };
        if len < RESPONSE_HEAD {
            return Err(FrameError::Truncated("response head"));
        }
        let mut fixed = [0u8; RESPONSE_HEAD];
        reader
            .read_exact(&mut fixed)
            .await
            .map_err(|_| FrameError::Truncated("response head"))?;
        let body_len = u32::from_be_bytes([fixed[2], fixed[3], fixed[4], fixed[5]]) as usize;
        let rest = len - RESPONSE_HEAD;
        if body_len > rest {
            return Err(FrameError::Truncated("response body"));
        }
        let mut head = BytesMut::with_capacity(RESPONSE_HEAD + body_len);
        head.put_slice(&fixed);
        fill(reader, &mut head, RESPONSE_HEAD + body_len).await?;
        Ok(Some(ResponseHead {
            head: head.freeze(),
            payload_len: rest - body_len,
        }))
    }

    /// Reads exactly `len` bytes (a frame, or a payload whose length a head gave).
    pub async fn read_bytes<R: AsyncRead + Unpin>(
        reader: &mut R,
        len: usize,
    ) -> Result<Bytes, FrameError> {
        let mut buf = BytesMut::with_capacity(len);
        fill(reader, &mut buf, len).await?;
        Ok(buf.freeze())
    }

    /// The length prefix, checked against `max`; `None` if the stream ended first.
    async fn read_prefix<R: AsyncRead + Unpin>(
        reader: &mut R,
        max: usize,
    ) -> Result<Option<usize>, FrameError> {
        let mut prefix = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            let n = reader.read(&mut prefix[got..]).await?;
            if n == 0 {
                return if got == 0 {
                    Ok(None)
                } else {
                    Err(FrameError::Truncated("length prefix"))
                };
            }
            got += n;
        }
        check_len(prefix, max).map(Some)
    }

    /// Appends exactly `len` bytes read from `reader` to `buf`, like [`read_bytes`] but
    /// into a buffer the caller chose (one it reuses, say).
    pub async fn read_bytes_into<R: AsyncRead + Unpin>(
        reader: &mut R,
        buf: &mut BytesMut,
        len: usize,
    ) -> Result<(), FrameError> {
        buf.reserve(len);
        let end = buf.len() + len;
        fill(reader, buf, end).await
    }

    /// Reads into `buf`'s spare capacity until it holds `len` bytes: no zeroing pass over
    /// a frame of megabytes.
    async fn fill<R: AsyncRead + Unpin>(
        reader: &mut R,
        buf: &mut BytesMut,
        len: usize,
    ) -> Result<(), FrameError> {
        while buf.len() < len {
            let room = len - buf.len();
            if reader.read_buf(&mut (&mut *buf).limit(room)).await? == 0 {
                return Err(FrameError::Truncated("frame ends before its length"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{FetchRequest, FetchResponse};
    use proptest::prelude::*;

    #[test]
    fn oversized_prefix_is_refused_before_allocation() {
        let err = check_len(
            (DEFAULT_MAX_FRAME as u32 + 1).to_be_bytes(),
            DEFAULT_MAX_FRAME,
        );
        assert!(matches!(err, Err(FrameError::TooLarge { .. })));
    }

    #[test]
    fn error_responses_carry_code_and_message() {
        let head = encode_error(&WireError::new(ErrorCode::UNKNOWN_TOPIC, "no topic 'x'"));
        let got = decode_response::<FetchResponse>(head.slice(4..), "fetch").expect("frame");
        let err = got.expect_err("an error");
        assert_eq!(err.code, ErrorCode::UNKNOWN_TOPIC);
        assert_eq!(err.message, "no topic 'x'");
    }

    #[cfg(feature = "tokio-io")]
    #[tokio::test]
    async fn a_response_head_is_read_before_its_payload() {
        let resp = FetchResponse {
            high_watermark: 9,
            log_start_offset: 0,
            next_offset: 7,
        };
        let payload = b"batches".as_slice();
        let mut wire = encode_response(&resp, payload.len()).to_vec();
        wire.extend_from_slice(payload);
        wire.extend_from_slice(b"next frame");
        let mut reader = wire.as_slice();
        let head = io::read_response_head(&mut reader, DEFAULT_MAX_FRAME)
            .await
            .expect("reads")
            .expect("a frame");
        assert_eq!(head.payload_len, payload.len());
        let body = decode_response::<FetchResponse>(head.head, "fetch")
            .expect("decodes")
            .expect("not an error");
        assert_eq!(body.body, resp);
        assert!(body.payload.is_empty());
        let mut rest = bytes::BytesMut::from(&b"kept:"[..]);
        io::read_bytes_into(&mut reader, &mut rest, head.payload_len)
            .await
            .expect("payload");
        assert_eq!(&rest[..], b"kept:batches", "appended after what was there");
        assert_eq!(reader, b"next frame", "nothing past the frame was consumed");

        // A body longer than its frame, a stream cut inside the payload, and an
        // oversized prefix are errors, not hangs or panics.
        let mut lying = encode_response(&resp, 0).to_vec();
        lying[4 + 2..4 + 6].copy_from_slice(&1000u32.to_be_bytes());
        let err = io::read_response_head(&mut lying.as_slice(), DEFAULT_MAX_FRAME).await;
        assert!(matches!(err, Err(FrameError::Truncated(_))), "{err:?}");
        let err = io::read_bytes(&mut b"abc".as_slice(), 10).await;
        assert!(matches!(err, Err(FrameError::Truncated(_))), "{err:?}");
        let err = io::read_bytes_into(&mut b"abc".as_slice(), &mut Default::default(), 10).await;
        assert!(matches!(err, Err(FrameError::Truncated(_))), "{err:?}");
        let huge = (DEFAULT_MAX_FRAME as u32 + 1).to_be_bytes();
        let err = io::read_response_head(&mut huge.as_slice(), DEFAULT_MAX_FRAME).await;
        assert!(matches!(err, Err(FrameError::TooLarge { .. })), "{err:?}");
        assert!(matches!(
            io::read_response_head(&mut b"".as_slice(), 64).await,
            Ok(None)
        ));
    }

    proptest! {
        #[test]
        fn requests_round_trip(topic in "[a-z]{1,20}", partition in any::<u32>(), offset in any::<i64>(), payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let req = FetchRequest { topic, partition, offset, max_bytes: 1024, max_wait_ms: 5, min_bytes: 1, isolation: Default::default(), filter: None };
            let head = encode_request(&req, payload.len());
            let mut whole = head.to_vec();
            whole.extend_from_slice(&payload);
            let whole = Bytes::from(whole);
            let len = check_len([whole[0], whole[1], whole[2], whole[3]], DEFAULT_MAX_FRAME).expect("fits");
            prop_assert_eq!(len, whole.len() - 4);
            let frame = RequestFrame::parse(whole.slice(4..)).expect("parses");
            prop_assert_eq!(frame.api, ApiKey::FETCH);
            prop_assert_eq!(frame.decode::<FetchRequest>().expect("decodes"), req);
            prop_assert_eq!(&frame.payload[..], &payload[..]);
        }

        #[test]
        fn random_frames_never_panic(data in proptest::collection::vec(any::<u8>(), 0..128)) {
            let data = Bytes::from(data);
            if let Ok(frame) = RequestFrame::parse(data.clone()) {
                let _ = frame.decode::<FetchRequest>();
            }
            let _ = decode_response::<FetchResponse>(data, "fetch");
        }
    }
}
