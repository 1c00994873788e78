//! [`Client`]: one QUIC connection to a broker, shared by admin, producers and consumers.
//!
//! Every request runs on its own bidirectional stream, so a slow partition never blocks
//! another. The connection is re-dialled lazily when it breaks (a broker that restarted
//! resets it at once, see `quiver_quic::server_endpoint`), with fresh handshakes spaced
//! by a jittered backoff until one succeeds or `connect_timeout` passes. With a bearer
//! token in the options, every new connection authenticates with it before it carries
//! any other request, so a reconnect never runs as anonymous. Requests that are safe to
//! repeat (reads, metadata, offset look-ups, topic admin that the broker makes
//! idempotent by name) are retried with exponential backoff on retriable error codes and
//! on connection loss; a request that may have reached the broker and is not safe to
//! repeat (produce) is retried only by the producer, which knows its sequence numbers.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use quiver_proto::api::{ApiKey, FetchResponse, Request, SubscribeRequest, TopicMetadata};
use quiver_proto::buffers::{BufferPool, POOLED_MIN_BYTES};
use quiver_proto::frame::{
    self,
    io::{read_bytes_into, read_frame, read_response_head},
};

use crate::url::BrokerUrl;
use crate::{ClientOptions, Error};

mod dial;
mod metadata;
mod route;

pub(crate) use route::GroupCall;

use dial::{Target, jittered, resolve};

/// A handle to a broker. Cheap to clone: clones share one connection and one metadata
/// cache.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The bootstrap brokers, in the order given; never empty.
    targets: Vec<Target>,
    /// The target the current (or last) connection went to: dialling starts there.
    preferred: std::sync::atomic::AtomicUsize,
    options: ClientOptions,
    endpoint: quinn::Endpoint,
    /// The live connection; replaced when it breaks.
    current: parking_lot::Mutex<Option<quinn::Connection>>,
    /// Held while dialling so that a broken connection is re-dialled once, not once per
    /// waiting request.
    dialling: tokio::sync::Mutex<()>,
    /// Topic metadata and the wall-clock millisecond it was fetched at (see [`now_ms`]).
    metadata: parking_lot::Mutex<foldhash::HashMap<String, (i64, Arc<TopicMetadata>)>>,
    /// Buffers response payloads are read into, reused once the application has
    /// dropped every record cut from them.
    payloads: BufferPool,
    /// The brokers of the cluster by id, from the last metadata answer.
    brokers: parking_lot::Mutex<foldhash::HashMap<u32, String>>,
    /// A client per broker address, for requests that go to a partition's leader.
    peers: route::Peers,
    /// Brokers that stopped answering; shared with the clients of the peers.
    suspects: Arc<route::Suspects>,
    /// The address this client dials when it is a peer client (one broker of the
    /// cluster, reached by routing), whose silence makes that broker a suspect.
    peer_address: Option<String>,
}

/// Payload buffers a client keeps: two fetches in flight per partition and the records
/// of a response or two still held by the application account for most of them.
/// Measured with `quiver bench consume` (8 MiB fetches), reusing them saved the client
/// about 7% of its CPU per megabyte.
const POOLED_PAYLOADS: usize = 4;
const POOLED_PAYLOAD_MAX_BYTES: usize = 64 * 1024 * 1024;

/// Requests that change nothing when repeated, so the client may retry them even when
/// the first attempt may have reached the broker.
fn is_idempotent(api: ApiKey) -> bool {
    matches!(
        api,
        ApiKey::FETCH
            | ApiKey::LIST_OFFSETS
            | ApiKey::METADATA
            | ApiKey::LIST_TOPICS
            | ApiKey::DESCRIBE_TOPIC
            | ApiKey::ALTER_TOPIC_CONFIG
            | ApiKey::OFFSET_FETCH
            | ApiKey::LIST_GROUPS
            | ApiKey::DESCRIBE_GROUP
            | ApiKey::PLUGIN_LIST
            | ApiKey::PLUGIN_DESCRIBE
            | ApiKey::FIND_COORDINATOR
            // A repeat hands out another producer id; the first is never used.
            | ApiKey::INIT_PRODUCER_ID
    )
}

/// A failed attempt, and whether its request may have reached the broker.
struct Failed {
    error: Error,
    maybe_sent: bool,
}

impl Client {
    /// Connects to the broker at `url` (`quic://host[:port]`, default port 7420), or to
    /// any of a bootstrap list of them, comma-separated
    /// (`quic://b1:7420,quic://b2:7420`). With a list, handshakes go to the brokers in
    /// turn until one answers, and a broken connection is dialled again the same way,
    /// starting with the broker that answered last; so a client of a cluster keeps
    /// working when the broker it talked to goes away.
    ///
    /// Fails with [`Error::InvalidUrl`], [`Error::Tls`] (no or bad CA),
    /// [`Error::Resolve`], [`Error::Connect`] or [`Error::Timeout`].
    pub async fn connect(url: &str, options: ClientOptions) -> Result<Client, Error> {
        Self::connect_with(url, options, Arc::default(), None).await
    }

    /// The client of one broker of the cluster, reached by routing from `parent`: it
    /// shares the parent's options and suspects, and gives a handshake at most twice
    /// the liveness timeout (at least 1 s), since the metadata says the broker exists.
    pub(super) async fn connect_peer(address: &str, parent: &Client) -> Result<Client, Error> {
        let mut options = parent.inner.options.clone();
        options.connect_timeout = options
            .connect_timeout
            .min((options.liveness_timeout * 2).max(std::time::Duration::from_secs(1)));
        let suspects = Arc::clone(&parent.inner.suspects);
        let url = format!("quic://{address}");
        Self::connect_with(&url, options, suspects, Some(address.to_string())).await
    }

    async fn connect_with(
        url: &str,
        options: ClientOptions,
        suspects: Arc<route::Suspects>,
        peer_address: Option<String>,
    ) -> Result<Client, Error> {
        let (low, high) = crate::transport::LIVENESS_RANGE;
        if !(low..=high).contains(&options.liveness_timeout) {
            return Err(Error::Config(format!(
                "liveness_timeout {:?} is outside {low:?}..={high:?}",
                options.liveness_timeout
            )));
        }
        let urls = url
            .split(',')
            .map(|u| BrokerUrl::parse(u.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        let ca = options.ca.as_ref().ok_or_else(|| {
            Error::Tls(
                "no trusted CA given: set ClientOptions::ca_pem_file to the broker's cert.pem"
                    .into(),
            )
        })?;
        let roots = ca.load()?;
        let identity = options.identity.as_ref().map(|i| i.load()).transpose()?;
        let client_config = crate::transport::client_config_with_identity(
            &roots,
            identity,
            options.liveness_timeout,
        )?;
        let mut targets = Vec::with_capacity(urls.len());
        for url in urls {
            let addr = resolve(&url).await?;
            let server_name = options
                .server_name
                .clone()
                .unwrap_or_else(|| url.host.clone());
            targets.push(Target {
                url,
                addr,
                server_name,
            });
        }
        // One UDP socket serves every target, so they must share an address family.
        let v6 = targets[0].addr.is_ipv6();
        if targets.iter().any(|t| t.addr.is_ipv6() != v6) {
            return Err(Error::InvalidUrl {
                url: url.to_string(),
                reason: "a bootstrap list mixes IPv4 and IPv6 brokers; use one family".into(),
            });
        }
        let bind: SocketAddr = if v6 {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        };
        let mut endpoint = crate::transport::endpoint(bind, None).map_err(|e| Error::Connect {
            addr: targets[0].addr.to_string(),
            reason: format!("cannot open a UDP socket: {e}"),
        })?;
        endpoint.set_default_client_config(client_config);
        let client = Client {
            inner: Arc::new(Inner {
                targets,
                preferred: std::sync::atomic::AtomicUsize::new(0),
                options,
                endpoint,
                current: parking_lot::Mutex::new(None),
                dialling: tokio::sync::Mutex::new(()),
                payloads: BufferPool::new(
                    POOLED_PAYLOADS,
                    POOLED_MIN_BYTES,
                    POOLED_PAYLOAD_MAX_BYTES,
                ),
                metadata: parking_lot::Mutex::new(foldhash::HashMap::default()),
                brokers: parking_lot::Mutex::new(foldhash::HashMap::default()),
                peers: route::Peers::default(),
                suspects,
                peer_address,
            }),
        };
        client.connection().await?;
        Ok(client)
    }

    /// The options this client was built with.
    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    /// The broker this client talks to now (or last did): one of its bootstrap list.
    pub fn url(&self) -> &BrokerUrl {
        &self.preferred().url
    }

    fn preferred(&self) -> &Target {
        let i = self
            .inner
            .preferred
            .load(std::sync::atomic::Ordering::Relaxed);
        &self.inner.targets[i % self.inner.targets.len()]
    }

    /// The live connection, dialling a new one when there is none or it has closed.
    async fn connection(&self) -> Result<quinn::Connection, Error> {
        if let Some(conn) = self.live() {
            return Ok(conn);
        }
        let _dialling = self.inner.dialling.lock().await;
        if let Some(conn) = self.live() {
            return Ok(conn);
        }
        if let Some(address) = &self.inner.peer_address
            && self.is_suspect()
        {
            return Err(Error::Unreachable {
                address: address.clone(),
            });
        }
        let conn = match self.dial().await {
            Ok(conn) => conn,
            Err(e) => {
                self.suspect();
                return Err(e);
            }
        };
        if let Some(address) = &self.inner.peer_address {
            self.inner.suspects.clear(address);
        }
        tracing::debug!(broker = %self.url(), "connected");
        // The one place a new connection becomes current: authenticate it first, so
        // that no request (of this task or another waiting here) goes out on it as
        // anonymous.
        if let Some(token) = &self.inner.options.token
            && let Err(e) = crate::authenticate::authenticate(
                &conn,
                token,
                self.inner.options.max_frame_size,
                self.inner.options.request_timeout,
            )
            .await
        {
            conn.close(0u32.into(), b"authentication failed");
            return Err(e);
        }
        *self.inner.current.lock() = Some(conn.clone());
        Ok(conn)
    }

    /// A peer client whose broker stopped answering less than a liveness period ago.
    pub(super) fn is_suspect(&self) -> bool {
        self.inner
            .peer_address
            .as_deref()
            .is_some_and(|a| self.inner.suspects.suspected(a, self.suspicion_window()))
    }

    /// How long a broker that went silent stays a suspect: two liveness periods, time
    /// for the cluster to fence it and elect new leaders (even when it was also the
    /// controller, whose successor must be elected first).
    pub(super) fn suspicion_window(&self) -> std::time::Duration {
        self.inner.options.liveness_timeout * 2
    }

    /// Makes a peer client's broker a suspect: its connection broke or could not be
    /// made. Nothing for a client of the bootstrap list, which dials the next broker.
    fn suspect(&self) {
        if let Some(address) = &self.inner.peer_address {
            tracing::debug!(broker = %address, "broker stopped answering");
            self.inner.suspects.mark(address);
        }
    }

    /// Forgets `conn` if it is still the current connection: it broke, and the next
    /// request dials a new one rather than trying it again.
    fn forget(&self, conn: &quinn::Connection) {
        let mut current = self.inner.current.lock();
        if current
            .as_ref()
            .is_some_and(|c| c.stable_id() == conn.stable_id())
        {
            *current = None;
        }
    }

    fn live(&self) -> Option<quinn::Connection> {
        let current = self.inner.current.lock();
        current
            .as_ref()
            .filter(|c| c.close_reason().is_none())
            .cloned()
    }

    /// Sends one request with its payload and reads its one response frame.
    ///
    /// An error response becomes [`Error::Broker`] with the broker's code and message.
    /// Idempotent requests are retried with backoff on retriable errors and broken
    /// connections; others are retried only when they certainly never left the client.
    pub async fn call<R: Request>(
        &self,
        req: &R,
        payload: Bytes,
    ) -> Result<(R::Response, Bytes), Error> {
        self.call_early(req, payload, &mut |_| {}).await
    }

    /// [`Client::call`], calling `on_head` with the response body as soon as it has
    /// arrived, before the payload that follows it: a fetch's `next_offset` lets the
    /// consumer send its next fetch while this one's batches are still in transit. With
    /// retries `on_head` may be called once per attempt.
    pub(crate) async fn call_early<R: Request>(
        &self,
        req: &R,
        payload: Bytes,
        on_head: &mut (dyn FnMut(&R::Response) + Send),
    ) -> Result<(R::Response, Bytes), Error> {
        let idempotent = is_idempotent(R::API);
        let mut attempt = 0;
        loop {
            let after = self.inner.options.request_timeout;
            let failed = match self
                .attempt(req, payload.clone(), true, after, on_head)
                .await
            {
                Ok(Some(done)) => return Ok(done),
                Ok(None) => {
                    return Err(Error::Transport {
                        api: R::NAME,
                        reason: "no response was read".into(),
                    });
                }
                Err(failed) => failed,
            };
            let repeatable = !failed.maybe_sent || idempotent;
            if attempt >= self.inner.options.retries || !repeatable || !failed.error.is_retriable()
            {
                return Err(failed.error);
            }
            tracing::debug!(api = R::NAME, attempt, error = %failed.error, "retrying");
            tokio::time::sleep(jittered(self.inner.options.backoff(attempt))).await;
            attempt += 1;
        }
    }

    /// One attempt without retries: what the producer uses, since it retries itself.
    /// With `expect_response` false the stream is finished and nothing is read (produce
    /// with `Acks::None`), and `Ok(None)` is returned.
    pub(crate) async fn call_once<R: Request>(
        &self,
        req: &R,
        payload: Bytes,
        expect_response: bool,
    ) -> Result<Option<(R::Response, Bytes)>, Error> {
        let after = self.inner.options.request_timeout;
        self.attempt(req, payload, expect_response, after, &mut |_| {})
            .await
            .map_err(|f| f.error)
    }

    /// One attempt without retries, bounded by `after` instead of the request timeout:
    /// for requests the broker may hold on purpose, such as a group join that waits for
    /// the rest of the group.
    pub(crate) async fn call_within<R: Request>(
        &self,
        req: &R,
        after: std::time::Duration,
    ) -> Result<R::Response, Error> {
        match self
            .attempt(req, Bytes::new(), true, after, &mut |_| {})
            .await
        {
            Ok(Some((resp, _))) => Ok(resp),
            Ok(None) => Err(Error::Transport {
                api: R::NAME,
                reason: "no response was read".into(),
            }),
            Err(failed) => Err(failed.error),
        }
    }

    /// One attempt carrying `payload`, bounded by `after` instead of the request timeout:
    /// for requests whose work on the broker legitimately outlasts it.
    pub(crate) async fn call_with_payload_within<R: Request>(
        &self,
        req: &R,
        payload: Bytes,
        after: std::time::Duration,
    ) -> Result<R::Response, Error> {
        match self.attempt(req, payload, true, after, &mut |_| {}).await {
            Ok(Some((resp, _))) => Ok(resp),
            Ok(None) => Err(Error::Transport {
                api: R::NAME,
                reason: "no response was read".into(),
            }),
            Err(failed) => Err(failed.error),
        }
    }

    async fn attempt<R: Request>(
        &self,
        req: &R,
        payload: Bytes,
        expect_response: bool,
        after: std::time::Duration,
        on_head: &mut (dyn FnMut(&R::Response) + Send),
    ) -> Result<Option<(R::Response, Bytes)>, Failed> {
        let unsent = |error| Failed {
            error,
            maybe_sent: false,
        };
        let conn = self.connection().await.map_err(unsent)?;
        let (mut send, mut recv) = match conn.open_bi().await {
            Ok(streams) => streams,
            Err(e) => {
                self.forget(&conn);
                self.suspect();
                return Err(unsent(Error::ConnectionLost(e)));
            }
        };
        if payload.is_empty() {
            // Fails only on a stream already closed, which the write below reports.
            let _ = send.set_priority(quiver_quic::CONTROL_PRIORITY);
        }
        let exchange = async {
            let mut chunks = [frame::encode_request(req, payload.len()), payload];
            send.write_all_chunks(&mut chunks)
                .await
                .map_err(|e| write_error(R::NAME, e))?;
            // The broker reads to the end of the send side; finishing cannot fail on a
            // stream we still own, and if the stream is gone the read below says why.
            let _ = send.finish();
            if !expect_response {
                return Ok(None);
            }
            let max = self.inner.options.max_frame_size;
            let head = read_response_head(&mut recv, max)
                .await
                .map_err(|e| read_error(&conn, R::NAME, e))?
                .ok_or_else(|| Error::Transport {
                    api: R::NAME,
                    reason: "the broker closed the stream without a response".into(),
                })?;
            let (resp, _) = decode::<R>(head.head)?;
            on_head(&resp);
            let payloads = &self.inner.payloads;
            let mut buf = payloads.take_bytes_mut(head.payload_len);
            read_bytes_into(&mut recv, &mut buf, head.payload_len)
                .await
                .map_err(|e| read_error(&conn, R::NAME, e))?;
            let payload = buf.freeze();
            // Given back at once: it is read into again once the records are dropped.
            payloads.recycle(payload.clone());
            Ok(Some((resp, payload)))
        };
        let outcome = tokio::time::timeout(after, exchange)
            .await
            .map_err(|_| Error::Timeout {
                what: R::NAME,
                after,
            })
            .and_then(|r| r);
        if let Err(Error::ConnectionLost(_)) = &outcome {
            self.forget(&conn);
            self.suspect();
        }
        outcome.map_err(|error| Failed {
            error,
            maybe_sent: true,
        })
    }

    /// Opens a subscription: the broker pushes a [`FetchResponse`] with batches each
    /// time data is appended at or after `req.offset`, until the [`Subscription`] is
    /// dropped. Not retried: on an error, subscribe again from the last offset seen.
    pub async fn subscribe(&self, req: &SubscribeRequest) -> Result<Subscription, Error> {
        let conn = self.connection().await?;
        let (mut send, recv) = match conn.open_bi().await {
            Ok(streams) => streams,
            Err(e) => {
                self.forget(&conn);
                return Err(Error::ConnectionLost(e));
            }
        };
        let mut chunks = [frame::encode_request(req, 0)];
        send.write_all_chunks(&mut chunks)
            .await
            .map_err(|e| write_error(SubscribeRequest::NAME, e))?;
        let _ = send.finish();
        Ok(Subscription {
            conn,
            recv,
            max_frame: self.inner.options.max_frame_size,
        })
    }

    /// Topic administration.
    pub fn admin(&self) -> crate::Admin {
        crate::Admin::new(self.clone())
    }

    /// Starts a producer. With idempotence on (the default) this asks the broker for a
    /// producer id first, so it fails early when the broker is unreachable.
    pub async fn producer(&self, config: crate::ProducerConfig) -> Result<crate::Producer, Error> {
        crate::Producer::start(self.clone(), config).await
    }

    /// Creates a consumer with no assignment yet.
    pub fn consumer(&self, config: crate::ConsumerConfig) -> Result<crate::Consumer, Error> {
        crate::Consumer::new(self.clone(), config)
    }

    /// Closes the connection; requests under way fail with [`Error::ConnectionLost`].
    pub fn close(&self) {
        if let Some(conn) = self.inner.current.lock().take() {
            conn.close(0u32.into(), b"client closed");
        }
    }
}

pub(crate) fn decode<R: Request>(frame: Bytes) -> Result<(R::Response, Bytes), Error> {
    match frame::decode_response::<R::Response>(frame, R::NAME) {
        Ok(Ok(resp)) => Ok((resp.body, resp.payload)),
        Ok(Err(wire)) => Err(Error::Broker {
            api: R::NAME,
            source: wire,
        }),
        Err(e) => Err(Error::frame(R::NAME, e)),
    }
}

pub(crate) fn write_error(api: &'static str, e: quinn::WriteError) -> Error {
    match e {
        quinn::WriteError::ConnectionLost(lost) => Error::ConnectionLost(lost),
        other => Error::Transport {
            api,
            reason: other.to_string(),
        },
    }
}

/// A read error hides quinn's cause inside `io::Error`; the connection's close reason,
/// when there is one, names it better.
pub(crate) fn read_error(
    conn: &quinn::Connection,
    api: &'static str,
    e: frame::FrameError,
) -> Error {
    match conn.close_reason() {
        Some(reason) => Error::ConnectionLost(reason),
        None => Error::frame(api, e),
    }
}

/// A push stream of fetch responses opened by [`Client::subscribe`]. Dropping it stops
/// the stream; the broker sees the stop and ends its side.
#[derive(Debug)]
pub struct Subscription {
    conn: quinn::Connection,
    recv: quinn::RecvStream,
    max_frame: usize,
}

impl Subscription {
    /// The next pushed response and its batches; `None` when the broker ended the stream.
    pub async fn next(&mut self) -> Option<Result<(FetchResponse, Bytes), Error>> {
        match read_frame(&mut self.recv, self.max_frame).await {
            Ok(None) => None,
            Ok(Some(frame)) => Some(decode::<SubscribeRequest>(frame)),
            Err(e) => Some(Err(read_error(&self.conn, SubscribeRequest::NAME, e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::dial::{is_crypto, worth_redialling};
    use super::*;

    #[test]
    fn produce_is_not_repeated_blindly() {
        assert!(!is_idempotent(ApiKey::PRODUCE));
        assert!(!is_idempotent(ApiKey::CREATE_TOPIC));
        assert!(is_idempotent(ApiKey::FETCH));
        assert!(is_idempotent(ApiKey::METADATA));
    }

    #[tokio::test]
    async fn connect_reports_typed_errors_before_dialling() {
        let err = Client::connect("tcp://x", ClientOptions::new())
            .await
            .expect_err("bad scheme");
        assert!(matches!(err, Error::InvalidUrl { .. }));
        let err = Client::connect("quic://localhost:1", ClientOptions::new())
            .await
            .expect_err("no CA");
        assert!(matches!(err, Error::Tls(_)));
    }

    #[test]
    fn jitter_shortens_by_at_most_half() {
        let delay = std::time::Duration::from_millis(800);
        for _ in 0..200 {
            let j = jittered(delay);
            assert!(j <= delay && j >= delay / 2, "{j:?}");
        }
    }

    #[test]
    fn only_failures_another_handshake_could_mend_are_redialled() {
        use quinn::ConnectionError as E;
        assert!(worth_redialling(&E::TimedOut));
        assert!(worth_redialling(&E::Reset));
        assert!(!worth_redialling(&E::VersionMismatch));
        assert!(!worth_redialling(&E::LocallyClosed));
        assert!(is_crypto(quinn::TransportErrorCode::crypto(42)));
        assert!(!is_crypto(quinn::TransportErrorCode::CONNECTION_REFUSED));
    }

    /// A client started while its broker is down connects once the broker listens, even
    /// though the packets of its first handshake went nowhere: a handshake on its own
    /// would not retransmit until well after `connect_timeout`.
    #[tokio::test]
    async fn a_client_dialling_a_broker_that_is_not_up_yet_connects_once_it_is() {
        let dir = tempfile::tempdir().expect("tempdir");
        let identity =
            quiver_server::tls::load_identity(&quiver_server::TlsConfig::SelfSigned, dir.path())
                .expect("identity");
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .expect("a free port")
            .port();
        let options = ClientOptions::new()
            .ca_pem(identity.cert_pem.clone())
            .connect_timeout(std::time::Duration::from_millis(2_500));
        let url = format!("quic://127.0.0.1:{port}");
        let client = tokio::spawn(async move { Client::connect(&url, options).await });
        // Past the first handshake's first packets, and well before its retransmission
        // (1 s after the first) plus its next (2 s later) would reach the server.
        tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
        let server = quiver_server::tls::server_config(
            &identity,
            quiver_server::transport::transport_config(16),
            None,
        )
        .expect("server config");
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let endpoint = quiver_quic::server_endpoint(addr, server, &[7; 32]).expect("listen");
        // Handshakes the client gave up may arrive too: accept them all.
        let accepting = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Some(incoming) = endpoint.accept().await {
                held.push(incoming.await);
            }
        });
        let client = client
            .await
            .expect("task")
            .expect("connects once the broker listens");
        client.close();
        accepting.abort();
    }
}
