//! Quiver's async Rust client: [`Client`], [`Admin`], [`Producer`] and [`Consumer`],
//! speaking Quiver's wire protocol over QUIC (quinn + rustls, TLS 1.3, ALPN `quiver/1`).
//!
//! - [`Client`] holds one QUIC connection (re-dialled when it breaks), a metadata cache
//!   and the retry policy; it is cheap to clone. Every request runs on its own stream.
//! - [`Producer`] batches records per partition (by `batch_size` and `linger`),
//!   compresses, keeps many batches in flight, retries in order, is idempotent by
//!   default, and partitions keys exactly like Kafka's default partitioner.
//! - [`Consumer`] reads assigned partitions, or joins a consumer group with
//!   [`Consumer::subscribe`] (heartbeats in the background, rebalances inside `poll`,
//!   auto or manual commits), with pipelined long-poll fetches per partition, as
//!   `poll` batches or a [`Stream`](futures_core::Stream).
//! - [`Admin`] creates, lists, describes, alters and deletes topics, and lists,
//!   describes, deletes and resets consumer groups; it also manages access rules and
//!   bearer tokens on a broker that checks them.
//!
//! A broker that authenticates clients accepts a client certificate
//! ([`ClientOptions::identity_pem`]) or a bearer token ([`ClientOptions::token`]), which
//! the client presents on every connection it opens.
//!
//! What this crate is not: it has no broker internals (only `quiver-proto`, the wire
//! codec) and no Kafka wire protocol.
//!
//! Record batches travel in Kafka's RecordBatch v2 format; the SDK builds them with
//! `quiver_proto::batch::BatchBuilder` and reads them with `decode_records`.
//!
//! ```no_run
//! use std::time::Duration;
//! use quiver_sdk::{Client, ClientOptions, ConsumerConfig, ProducerConfig, ProducerRecord};
//! use quiver_sdk::proto::api::TopicPartition;
//!
//! # async fn demo() -> Result<(), quiver_sdk::Error> {
//! // `quiver dev` prints where its self-signed certificate is.
//! let options = ClientOptions::new().ca_pem_file("data/tls/cert.pem");
//! let client = Client::connect("quic://localhost:7420", options).await?;
//! client.admin().create_topic("orders", 3, 1, Default::default()).await?;
//!
//! let producer = client.producer(ProducerConfig::default()).await?;
//! let delivery = producer
//!     .send(ProducerRecord::new("orders", "42 apples").key("customer-7"))
//!     .await?;
//! let stored = delivery.await?;
//! println!("stored at {}-{}@{}", stored.topic, stored.partition, stored.offset);
//! producer.close().await;
//!
//! let mut consumer = client.consumer(ConsumerConfig::default())?;
//! let tp = TopicPartition::new("orders", stored.partition);
//! consumer.assign(vec![tp.clone()]);
//! consumer.seek(&tp, stored.offset)?;
//! for record in consumer.poll(Duration::from_secs(1)).await? {
//!     println!("{}: {:?}", record.offset, record.value);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! A member of a consumer group reads the partitions the group gives it, from the
//! group's committed offsets, and commits as it goes (auto-commit by default):
//!
//! ```no_run
//! # use std::time::Duration;
//! # use quiver_sdk::{Client, ConsumerConfig};
//! # async fn demo(client: Client) -> Result<(), quiver_sdk::Error> {
//! let mut consumer = client.consumer(ConsumerConfig {
//!     group_id: Some("billing".into()),
//!     ..ConsumerConfig::default()
//! })?;
//! consumer.subscribe(["orders"])?;
//! for _ in 0..100 {
//!     for record in consumer.poll(Duration::from_secs(1)).await? {
//!         println!("{}-{}@{}", record.topic, record.partition, record.offset);
//!     }
//! }
//! consumer.close().await; // commits, and leaves so the partitions move at once
//! # Ok(())
//! # }
//! ```

mod access;
mod admin;
mod authenticate;
mod client;
mod consumer;
mod error;
mod options;
pub mod partitioner;
mod producer;
pub mod transport;
mod url;

pub use access::{
    AccessRule, Effect, IssuedToken, Operation, PatternKind, ResourceKind, TokenInfo,
};
pub use admin::Admin;
pub use client::{Client, Subscription};
pub use consumer::{
    CommitHandle, Consumer, ConsumerConfig, ConsumerRecord, GroupMetadata, OffsetReset,
    RebalanceListener,
};
pub use error::Error;
pub use options::{BearerToken, ClientIdentity, ClientOptions, TrustedCa};
pub use producer::{
    DeliveryFuture, Producer, ProducerConfig, ProducerRecord, RecordMetadata, UNKNOWN_PARTITION,
};
pub use url::{BrokerUrl, DEFAULT_PORT};

/// The wire codec this SDK speaks, re-exported for its types (topics, offsets,
/// compression, acks, filters).
pub use quiver_proto as proto;
pub use quiver_proto::api::{Acks, FilterSpec, OffsetSpec, ResetTarget, TopicPartition};
pub use quiver_proto::batch::Compression;
pub use quiver_proto::{ErrorCode, Header, WireError};
