//! The QUIC door: Quiver's own protocol (`quiver_proto`) over QUIC with TLS 1.3.
//!
//! `listener.rs` accepts connections and request streams and bounds both (with
//! `clients.rs`: connections per client; `budget.rs`: in-flight bytes per connection
//! and broker; `quota.rs`: byte rates per client); `dispatch.rs`
//! decodes each frame and calls the [`BrokerService`](crate::service::BrokerService);
//! `convert.rs` and `errors.rs` translate between wire structs and the service's types.
//! This is the only module of the broker that knows a frame, a stream or an error code.

pub(crate) mod blobs;
pub(crate) mod budget;
pub(crate) mod clients;
pub(crate) mod convert;
pub(crate) mod dispatch;
pub(crate) mod errors;
pub(crate) mod forward;
pub(crate) mod listener;
pub(crate) mod quorum;
pub(crate) mod quota;
pub(crate) mod replica;
