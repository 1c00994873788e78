//! Quiver's wire codec, shared by the broker and the SDK.
//!
//! What is here: the frame layout ([`frame`]), every request and response ([`api`]), the
//! append-only table of error codes ([`error`]), and Kafka's RecordBatch v2 format with
//! its codecs ([`batch`]).
//!
//! What is not: sockets, QUIC, an async runtime, or any broker state. The one reading of
//! the outside world is the wall clock ([`time::now_ms`]), shared so that broker and SDK
//! stamp time the same way. The optional
//! `tokio-io` feature adds [`frame::io::read_frame`] for any `AsyncRead`, without a runtime.
//!
//! ```
//! use quiver_proto::batch::{self, BatchBuilder, Compression, ProducerIdentity};
//!
//! let mut builder = BatchBuilder::new();
//! builder.push(1_700_000_000_000, Some(b"key"), Some(b"value"), &[]);
//! let bytes = builder.build(Compression::Lz4, ProducerIdentity::NONE);
//! let header = batch::validate(&bytes).expect("a fresh batch is valid");
//! assert_eq!(header.record_count, 1);
//! let records = batch::decode_records(&bytes).expect("decodes");
//! assert_eq!(records[0].value.as_deref(), Some(&b"value"[..]));
//! ```

pub mod api;
pub mod batch;
pub mod buffers;
pub mod error;
pub mod frame;
pub mod murmur2;
pub mod record;
pub mod time;
pub mod topic_name;
mod varint;

pub use error::{ErrorCode, WireError};
pub use record::{Header, Record};
