//! The QUIC accept loop: connections, request streams, and the bounds on both.
//!
//! Each request arrives on its own bidirectional stream. A stream task reads one frame,
//! checking its length prefix against the frame limit, reserving the in-flight budget
//! as the frame's bytes arrive (see `budget.rs`), dispatches it, and writes the
//! response. A bad frame gets an error on its own stream; the connection carries on.
//! Plugin uploads alone may exceed the frame limit, up to `plugins.max_component_bytes`.
//!
//! No client can starve the others: each client has its own connection limit
//! (`clients.rs`), each connection its own share of the in-flight budget, each frame a
//! read deadline (a stalled stream is answered REQUEST_TIMED_OUT and its reservation
//! freed), and each client byte-rate quotas that delay it rather than refuse it
//! (`quota.rs`).

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes};
use quinn::{RecvStream, SendStream};
use quiver_proto::api::ApiKey;
use quiver_proto::buffers::{BufferPool, POOLED_MIN_BYTES};
use quiver_proto::frame::{self, FrameError, RequestFrame};
use quiver_proto::{ErrorCode, WireError};
use tokio::io::AsyncReadExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::budget::{ConnectionBudget, Reservation};
use super::clients::{ClientKey, ClientSlot, Clients, TooManyConnections};
use super::dispatch;
use super::quota::{ClientQuotas, QuotaRates};
use crate::auth::{Caller, principal};
use crate::service::BrokerService;

/// What every connection and stream task shares.
#[derive(Debug)]
pub(crate) struct Context {
    /// What requests are served by; this door only reads, decodes, calls and answers.
    pub service: BrokerService,
    pub shutdown: CancellationToken,
    /// Bytes of request frames held in memory right now, across all connections.
    inflight: Arc<Semaphore>,
    /// Connections per client, and each client's quotas.
    clients: Arc<Clients>,
    /// Buffers of answered requests, which the next large frames are read into.
    frames: BufferPool,
    tracker: TaskTracker,
}

/// What the request streams of one connection share.
#[derive(Debug)]
struct Peer {
    /// Who the connection is: a client certificate's principal, a token's (after an
    /// AUTHENTICATE on it), or anonymous.
    session: Session,
    /// The client's connection slot, which also carries its quotas.
    client: ClientSlot,
    budget: ConnectionBudget,
}

/// Idle request buffers the broker keeps: produce requests of about a megabyte arrive
/// one after another, and each is done with before many more have been read.
const POOLED_FRAMES: usize = 8;
const POOLED_FRAME_MAX_IDLE_BYTES: usize = 16 * 1024 * 1024;
/// A frame's buffer is allocated up to this size at once (a produce batch of a megabyte
/// fits); a larger one grows with its reservation, so a declared giant costs nothing
/// until its bytes come.
const UPFRONT_BUFFER_BYTES: usize = 2 * 1024 * 1024;
/// How long an error answer may take to leave, for a peer that does not read.
const ERROR_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// Accepts connections until `shutdown` fires.
pub(crate) async fn accept_loop(
    endpoint: quinn::Endpoint,
    service: BrokerService,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let limits = &service.config().limits;
    let per_client = limits.max_connections_per_client;
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let rates = QuotaRates {
        produce_bytes_per_sec: limits.produce_bytes_per_sec_per_client,
        fetch_bytes_per_sec: limits.fetch_bytes_per_sec_per_client,
    };
    let ctx = Arc::new(Context {
        inflight: Arc::new(Semaphore::new(
            limits.max_inflight_bytes.min(Semaphore::MAX_PERMITS),
        )),
        clients: Arc::new(
            Clients::new(per_client, rates)
                .with_inflight_bytes(limits.max_inflight_bytes_per_client),
        ),
        frames: BufferPool::new(POOLED_FRAMES, POOLED_MIN_BYTES, POOLED_FRAME_MAX_IDLE_BYTES),
        service,
        shutdown: shutdown.clone(),
        tracker: tracker.clone(),
    });
    ctx.service.metrics.track_inflight(
        Arc::clone(&ctx.inflight),
        ctx.service
            .config()
            .limits
            .max_inflight_bytes
            .min(Semaphore::MAX_PERMITS),
    );
    ctx.service.metrics.set_serving(true);
    loop {
        let incoming = tokio::select! {
            () = shutdown.cancelled() => break,
            incoming = endpoint.accept() => match incoming {
                Some(i) => i,
                None => break,
            },
        };
        let remote = incoming.remote_address();
        let key = ClientKey::of(remote);
        // Before an address counts against a client's limit, a client near that limit
        // proves it owns the address (a QUIC retry), so a forged source address cannot
        // use up someone else's slots.
        if !incoming.remote_address_validated()
            && incoming.may_retry()
            && ctx.clients.held(&key) >= per_client / 2
        {
            let _ = incoming.retry();
            continue;
        }
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            tracing::warn!(%remote, "connection limit reached (limits.max_connections); refusing");
            incoming.refuse();
            continue;
        };
        let client = match ctx.clients.admit(key) {
            Ok(slot) => slot,
            Err(refused) => {
                tracing::warn!(%remote, "{refused}; refusing the connection");
                incoming.refuse();
                continue;
            }
        };
        tracker.spawn(connection(incoming, Arc::clone(&ctx), permit, client));
    }
}

async fn connection(
    incoming: quinn::Incoming,
    ctx: Arc<Context>,
    _permit: OwnedSemaphorePermit,
    client: ClientSlot,
) {
    let remote = incoming.remote_address();
    let conn = match incoming.await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(%remote, error = %e, "handshake failed");
            return;
        }
    };
    tracing::debug!(%remote, client = %client.key, "connection open");
    let _open = ctx.service.metrics.connection();
    let limits = &ctx.service.config().limits;
    let caller = caller_of(&conn);
    tracing::debug!(%remote, principal = %caller.principal, "connection authenticated");
    let session = match Session::new(caller, Arc::clone(&ctx.clients)) {
        Ok(s) => s,
        Err(refused) => {
            tracing::warn!(%remote, error = %refused, "connection limit of the principal reached; closing");
            conn.close(0u32.into(), b"too many connections for this principal");
            return;
        }
    };
    let budget = ConnectionBudget::new(
        &ctx.inflight,
        limits.max_inflight_bytes,
        limits.max_inflight_bytes_per_connection,
        &client.inflight,
        limits.max_inflight_bytes_per_client,
    );
    let peer = Arc::new(Peer {
        session,
        client,
        budget,
    });
    loop {
        let (send, recv) = tokio::select! {
            () = ctx.shutdown.cancelled() => {
                conn.close(0u32.into(), b"broker shutting down");
                break;
            }
            stream = conn.accept_bi() => match stream {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(%remote, reason = %e, "connection closed");
                    break;
                }
            },
        };
        ctx.tracker.spawn(request_stream(
            send,
            recv,
            Arc::clone(&ctx),
            Arc::clone(&peer),
        ));
    }
}

/// The identity of one connection, and the client slots it counts against: its address
/// always, its principal once authenticated. AUTHENTICATE replaces the identity.
#[derive(Debug)]
pub(crate) struct Session {
    /// Read at the start of every request, written only by an authentication: a short
    /// lock, never held across an await.
    state: parking_lot::RwLock<(Caller, Option<Arc<ClientSlot>>)>,
    clients: Arc<Clients>,
}

impl Session {
    /// A session for `caller`, admitted against its principal's connection limit when it
    /// is authenticated.
    fn new(caller: Caller, clients: Arc<Clients>) -> Result<Session, TooManyConnections> {
        let session = Session {
            state: parking_lot::RwLock::new((Caller::anonymous(), None)),
            clients,
        };
        session.become_caller(caller)?;
        Ok(session)
    }

    /// Who the connection is now.
    pub(crate) fn caller(&self) -> Caller {
        self.state.read().0.clone()
    }

    /// The principal's quotas once authenticated, else none (the address's apply).
    fn principal_quotas(&self) -> Option<Arc<ClientQuotas>> {
        self.state
            .read()
            .1
            .as_ref()
            .map(|slot| Arc::clone(&slot.quotas))
    }

    /// From now on the connection is `caller`, counted against its principal's
    /// connection limit (refused when the principal is at it) and quotas.
    pub(crate) fn become_caller(&self, caller: Caller) -> Result<(), TooManyConnections> {
        {
            // The same principal again keeps its slot: its count does not change.
            let mut state = self.state.write();
            if state.0.principal == caller.principal && state.1.is_some() {
                state.0 = caller;
                return Ok(());
            }
        }
        let slot = if caller.principal == quiver_metadata::Principal::anonymous() {
            None
        } else {
            let key = ClientKey::Principal(caller.principal.0.clone());
            Some(Arc::new(self.clients.admit(key)?))
        };
        *self.state.write() = (caller, slot);
        Ok(())
    }
}

/// The principal of the client certificate the handshake verified (against
/// `[auth] client_ca`), or anonymous when the client presented none. A verified
/// certificate that names nobody counts as anonymous, with a warning.
fn caller_of(conn: &quinn::Connection) -> Caller {
    let certs = conn.peer_identity().and_then(|id| {
        id.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
            .ok()
    });
    let Some(leaf) = certs.as_deref().and_then(|c| c.first()) else {
        return Caller::anonymous();
    };
    match principal::from_certificate(leaf) {
        Ok(p) => Caller::client(p),
        Err(e) => {
            tracing::warn!(remote = %conn.remote_address(), error = %e, "client certificate names nobody; treating the connection as anonymous");
            Caller::anonymous()
        }
    }
}

async fn request_stream(
    mut send: SendStream,
    mut recv: RecvStream,
    ctx: Arc<Context>,
    peer: Arc<Peer>,
) {
    let _stream = ctx.service.metrics.stream();
    let (frame, whole, reservation) = match read_request(&mut recv, &ctx, &peer).await {
        Ok(Some(f)) => f,
        Ok(None) => return,
        Err(err) => {
            ctx.service
                .metrics
                .request("unreadable", None, Some(err.code.name()));
            // Tell the client to stop sending the rest of a frame we will not read.
            let _ = recv.stop(0u32.into());
            let _ = tokio::time::timeout(ERROR_WRITE_TIMEOUT, write_error(&mut send, &err)).await;
            return;
        }
    };
    // An authenticated connection is throttled as its principal, wherever it connects
    // from; an anonymous one as its address.
    let principal_quotas = peer.session.principal_quotas();
    let quotas: &ClientQuotas = principal_quotas.as_deref().unwrap_or(&peer.client.quotas);
    if frame.api == ApiKey::PRODUCE {
        // Over its produce quota, a client's request waits here, holding its own
        // connection's budget: the client is slowed down and nobody else is.
        tokio::select! {
            () = quotas.throttle_produce(whole.len()) => {}
            () = ctx.shutdown.cancelled() => {
                let err = WireError::new(ErrorCode::BROKER_UNAVAILABLE, "the broker is shutting down");
                let _ = write_error(&mut send, &err).await;
                return;
            }
        }
    }
    let api = frame.api;
    let started = Instant::now();
    let failed = dispatch::dispatch(&ctx, &peer.session, quotas, frame, &mut send).await;
    // A subscription's "duration" is the life of its stream, not a latency.
    let took = (api != ApiKey::SUBSCRIBE).then(|| started.elapsed());
    ctx.service
        .metrics
        .request(api.name(), took, failed.map(ErrorCode::name));
    // The request is answered: its buffer is read into again if nothing kept a slice.
    ctx.frames.recycle(whole);
    drop(reservation);
    let _ = send.finish();
    // Wait for the peer to take the response before the stream's state is dropped, so a
    // slow reader still receives all of it; a stop or a reset ends the wait.
    let _ = send.stopped().await;
}

/// Reads one request frame, reserving the in-flight budget as its bytes arrive, within
/// the read deadlines. Returns the frame, the whole buffer it was read into, and the
/// reservation, which holds the frame's bytes until it is dropped.
async fn read_request(
    recv: &mut RecvStream,
    ctx: &Context,
    peer: &Peer,
) -> Result<Option<(RequestFrame, Bytes, Reservation)>, WireError> {
    let config = ctx.service.config();
    let limits = &config.limits;
    let idle = Duration::from_millis(limits.request_read_timeout_ms);
    let opened = Instant::now();
    let stalled = |len: Option<usize>, got: usize| {
        let declared = len.map_or_else(|| "its length".to_string(), |l| format!("{l} bytes"));
        tracing::debug!(got, %declared, "request frame stalled; stopping its stream");
        WireError::new(
            ErrorCode::REQUEST_TIMED_OUT,
            format!(
                "the request frame stalled: {got} bytes of {declared} arrived, then nothing for {} ms (limits.request_read_timeout_ms); send a frame whole once its stream is open",
                idle.as_millis()
            ),
        )
    };
    let mut prefix = [0u8; 4];
    match timeout_at(opened + idle, recv.read_exact(&mut prefix)).await {
        Err(_) => return Err(stalled(None, 0)),
        Ok(Ok(())) => {}
        Ok(Err(quinn::ReadExactError::FinishedEarly(0))) => return Ok(None),
        Ok(Err(e)) => {
            return Err(WireError::new(
                ErrorCode::CORRUPT_FRAME,
                format!("reading frame length: {e}"),
            ));
        }
    }
    let max = limits.max_frame_bytes;
    // A plugin upload carries a whole component (a Python one is ~17 MiB), so it alone
    // may go past the frame limit, up to its own bound; its API key is read first.
    let mut api = [0u8; 2];
    let len = match frame::check_len(prefix, max) {
        Ok(len) => len,
        Err(too_large) => {
            let upload_max = config.plugins.max_component_bytes.saturating_add(64 * 1024);
            let len = frame::check_len(prefix, upload_max).map_err(|_| frame_error(&too_large))?;
            let is_upload = match timeout_at(Instant::now() + idle, recv.read_exact(&mut api)).await
            {
                Err(_) => return Err(stalled(Some(len), 0)),
                Ok(read) => read.is_ok() && ApiKey(u16::from_be_bytes(api)) == ApiKey::PLUGIN_ADD,
            };
            if !is_upload {
                return Err(frame_error(&too_large));
            }
            len
        }
    };
    let largest = peer.budget.largest_frame();
    if len > largest {
        return Err(WireError::new(
            ErrorCode::FRAME_TOO_LARGE,
            format!(
                "a frame of {len} bytes exceeds the {largest} bytes one connection may hold in flight (limits.max_inflight_bytes_per_connection)"
            ),
        ));
    }
    // However slowly its bytes come, a frame must be whole by this instant.
    let min_rate = limits.request_read_min_bytes_per_sec.max(1) as f64;
    let whole_by = opened + idle + Duration::from_secs_f64(len as f64 / min_rate);
    let mut reservation = peer.budget.reservation();
    let mut buf = ctx.frames.take_bytes_mut(len.min(UPFRONT_BUFFER_BYTES));
    if len > max {
        buf.extend_from_slice(&api);
    }
    while buf.len() < len {
        if reservation.bytes() <= buf.len() {
            let grant = reservation.next_grant(len - reservation.bytes());
            match timeout_at(whole_by, reservation.grow(grant)).await {
                Err(_) => return Err(too_slow(len, buf.len(), whole_by - opened)),
                Ok(Err(closed)) => {
                    return Err(WireError::new(
                        ErrorCode::BROKER_UNAVAILABLE,
                        closed.to_string(),
                    ));
                }
                Ok(Ok(())) => {}
            }
            buf.reserve(reservation.bytes().min(len) - buf.len());
        }
        // Each read takes every chunk that has arrived (one lock of the connection for
        // all of them), into the buffer's spare room: one copy, no zero-filling first.
        let room = reservation.bytes().min(len) - buf.len();
        let read_by = (Instant::now() + idle).min(whole_by);
        let got = buf.len();
        match timeout_at(read_by, recv.read_buf(&mut (&mut buf).limit(room))).await {
            Err(_) if read_by == whole_by => {
                return Err(too_slow(len, got, whole_by - opened));
            }
            Err(_) => return Err(stalled(Some(len), got)),
            Ok(Ok(0)) => return Err(ended(len, got, "ended")),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(ended(len, got, &format!("failed ({e})"))),
        }
    }
    let whole = buf.freeze();
    let frame = RequestFrame::parse(whole.clone()).map_err(|e| frame_error(&e))?;
    Ok(Some((frame, whole, reservation)))
}

fn ended(len: usize, got: usize, detail: &str) -> WireError {
    WireError::new(
        ErrorCode::CORRUPT_FRAME,
        format!("frame declared {len} bytes but the stream {detail} after {got}"),
    )
}

fn too_slow(len: usize, got: usize, allowed: Duration) -> WireError {
    tracing::debug!(len, got, "request frame too slow; stopping its stream");
    WireError::new(
        ErrorCode::REQUEST_TIMED_OUT,
        format!(
            "the request frame of {len} bytes was not whole within {} ms ({got} bytes arrived); limits.request_read_timeout_ms and limits.request_read_min_bytes_per_sec set how long a frame may take",
            allowed.as_millis()
        ),
    )
}

fn frame_error(e: &FrameError) -> WireError {
    let code = match e {
        FrameError::TooLarge { .. } => ErrorCode::FRAME_TOO_LARGE,
        _ => ErrorCode::CORRUPT_FRAME,
    };
    WireError::new(code, e.to_string())
}

/// Writes an error response frame.
pub(crate) async fn write_error(
    send: &mut SendStream,
    err: &WireError,
) -> Result<(), quinn::WriteError> {
    send.write_all(&frame::encode_error(err)).await
}

/// Writes a success response frame: head and body, then the payload without copying it.
pub(crate) async fn write_response<T: serde::Serialize>(
    send: &mut SendStream,
    body: &T,
    payload: Bytes,
) -> Result<(), quinn::WriteError> {
    let head = frame::encode_response(body, payload.len());
    if payload.is_empty() {
        // Fails only on a stream already closed, which the write below reports.
        let _ = send.set_priority(quiver_quic::CONTROL_PRIORITY);
        send.write_all(&head).await
    } else {
        send.write_all_chunks(&mut [head, payload]).await
    }
}

#[cfg(test)]
mod tests {
    use quiver_metadata::Principal;

    use super::*;

    #[test]
    fn an_authenticated_session_counts_against_its_principal_and_uses_its_quotas() {
        let clients = Arc::new(Clients::new(1, QuotaRates::default()));
        let alice = || Caller::client(Principal("User:alice".into()));
        let first = Session::new(alice(), Arc::clone(&clients)).expect("first of alice");
        assert!(first.principal_quotas().is_some());
        assert!(
            Session::new(alice(), Arc::clone(&clients)).is_err(),
            "a second connection of alice is past a limit of one"
        );
        let anonymous = Session::new(Caller::anonymous(), Arc::clone(&clients)).expect("anonymous");
        assert!(anonymous.principal_quotas().is_none());
        // Authenticating later counts too, and gives the slot back when it changes.
        let bob = Session::new(Caller::anonymous(), Arc::clone(&clients)).expect("anonymous");
        assert!(bob.become_caller(alice()).is_err());
        drop(first);
        bob.become_caller(alice())
            .expect("alice's slot is free again");
        assert_eq!(bob.caller().principal.0, "User:alice");
    }
}
