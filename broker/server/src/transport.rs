//! QUIC transport tuning for the broker.
//!
//! quinn's defaults suit web traffic: small windows that cap one stream at a few tens of
//! MB/s on a fast link, which is the stall other QUIC brokers show with 1 MiB batches.
//! Quiver moves megabyte batches, so windows are sized for a high bandwidth-delay product
//! and a whole batch can be in flight on one stream.

use std::time::Duration;

use quinn::{TransportConfig, VarInt};

/// Bytes one stream may have unacknowledged in flight towards the receiver.
pub const STREAM_WINDOW: u32 = 32 * 1024 * 1024;
/// Bytes all streams of a connection together may have in flight.
pub const CONNECTION_WINDOW: u32 = 256 * 1024 * 1024;

/// Stream priority of responses without a payload (produce acknowledgements, metadata,
/// heartbeats): above fetch responses, so that they do not wait behind megabytes.
pub const CONTROL_PRIORITY: i32 = 1;

/// The broker's transport config; `max_streams` bounds concurrent requests per connection.
pub fn transport_config(max_streams: u32) -> TransportConfig {
    let mut t = TransportConfig::default();
    t.max_concurrent_bidi_streams(VarInt::from_u32(max_streams));
    t.max_concurrent_uni_streams(VarInt::from_u32(0));
    // Responses go out in the order they were written, not interleaved: of a
    // consumer's pipelined fetches the oldest arrives whole first and is decoded while
    // the next is on the wire. Responses without a payload go first, see
    // `CONTROL_PRIORITY`.
    t.send_fairness(false);
    t.stream_receive_window(VarInt::from_u32(STREAM_WINDOW));
    t.receive_window(VarInt::from_u32(CONNECTION_WINDOW));
    t.send_window(u64::from(CONNECTION_WINDOW));
    t.keep_alive_interval(Some(Duration::from_secs(5)));
    // An idle client is dropped after this long without a packet; keep-alives stop it.
    t.max_idle_timeout(Duration::from_secs(30).try_into().ok());
    t
}

/// Bytes of kernel buffer asked for on each QUIC UDP socket. Linux's default (about
/// 208 KiB) overflows at a few hundred MB/s and every dropped datagram makes congestion
/// control back off; measured here, a quarter of all datagrams were dropped. The kernel
/// caps the request at `net.core.rmem_max` / `wmem_max`; a smaller buffer still works.
pub const UDP_BUFFER_BYTES: usize = 8 * 1024 * 1024;

/// A UDP socket bound to `addr` with enlarged send and receive buffers, for quinn.
pub fn udp_socket(addr: std::net::SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    // Best effort: a refused size leaves the default, which is slower but correct.
    let _ = socket.set_recv_buffer_size(UDP_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(UDP_BUFFER_BYTES);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// A quinn endpoint on [`udp_socket`], serving when `server` is given.
pub fn endpoint(
    addr: std::net::SocketAddr,
    server: Option<quinn::ServerConfig>,
) -> std::io::Result<quinn::Endpoint> {
    let runtime = quinn::default_runtime()
        .ok_or_else(|| std::io::Error::other("no async runtime for quinn (run inside tokio)"))?;
    quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        server,
        udp_socket(addr)?,
        runtime,
    )
}
