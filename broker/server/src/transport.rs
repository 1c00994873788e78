//! QUIC transport tuning for the broker.
//!
//! quinn's defaults suit web traffic: small windows that cap one stream at a few tens of
//! MB/s on a fast link, which is the stall other QUIC brokers show with 1 MiB batches.
//! Quiver moves megabyte batches, so windows are sized for a high bandwidth-delay product
//! and a whole batch can be in flight on one stream.

use std::time::Duration;

use quinn::{TransportConfig, VarInt};

pub use quiver_quic::{UDP_BUFFER_BYTES, endpoint, udp_socket};

/// Bytes one stream may have unacknowledged in flight towards the receiver.
pub const STREAM_WINDOW: u32 = 32 * 1024 * 1024;
/// Bytes all streams of a connection together may have in flight.
pub const CONNECTION_WINDOW: u32 = 256 * 1024 * 1024;

/// The broker's transport config; `max_streams` bounds concurrent requests per connection.
pub fn transport_config(max_streams: u32) -> TransportConfig {
    let mut t = TransportConfig::default();
    t.max_concurrent_bidi_streams(VarInt::from_u32(max_streams));
    t.max_concurrent_uni_streams(VarInt::from_u32(0));
    // Responses go out in the order they were written, not interleaved: of a
    // consumer's pipelined fetches the oldest arrives whole first and is decoded while
    // the next is on the wire. Responses without a payload go first, see
    // `quiver_quic::CONTROL_PRIORITY`.
    t.send_fairness(false);
    t.stream_receive_window(VarInt::from_u32(STREAM_WINDOW));
    t.receive_window(VarInt::from_u32(CONNECTION_WINDOW));
    t.send_window(u64::from(CONNECTION_WINDOW));
    t.keep_alive_interval(Some(Duration::from_secs(5)));
    // A peer silent this long is gone (QUIC sees no FIN from a killed process): its
    // connection, and the connection slot it holds against its client's limit, are
    // dropped. Keep-alives every 5 s keep a live client well inside it, even with two
    // in a row lost; the lower of the two ends' timeouts applies.
    t.max_idle_timeout(Duration::from_secs(15).try_into().ok());
    quiver_quic::allow_jumbo_datagrams(&mut t);
    t
}
