//! Authenticating a connection with a bearer token.
//!
//! The broker names a connection by its client certificate, or anonymous; AUTHENTICATE
//! with a token makes it the token's principal from the answer on. The client sends it
//! first on every connection it opens and waits for the answer before it lets any other
//! request use the connection, so no request ever runs as the wrong principal, after a
//! reconnect included.

use std::time::Duration;

use quiver_proto::api::{AuthenticateRequest, Request};
use quiver_proto::frame::{self, io::read_frame};

use crate::client::{decode, read_error, write_error};
use crate::{BearerToken, Error};

/// Presents `token` on `conn` and returns the principal the broker now runs the
/// connection as. A refusal is [`Error::Authentication`] (not retriable: a refused
/// token stays refused); losing the connection or running out of `after` is the usual
/// retriable error.
pub(crate) async fn authenticate(
    conn: &quinn::Connection,
    token: &BearerToken,
    max_frame: usize,
    after: Duration,
) -> Result<String, Error> {
    const API: &str = AuthenticateRequest::NAME;
    let req = AuthenticateRequest {
        token: token.expose().to_string(),
    };
    let exchange = async {
        let (mut send, mut recv) = conn.open_bi().await.map_err(Error::ConnectionLost)?;
        // Fails only on a stream already closed, which the write below reports.
        let _ = send.set_priority(quiver_quic::CONTROL_PRIORITY);
        let mut chunks = [frame::encode_request(&req, 0)];
        send.write_all_chunks(&mut chunks)
            .await
            .map_err(|e| write_error(API, e))?;
        let _ = send.finish();
        let frame = read_frame(&mut recv, max_frame)
            .await
            .map_err(|e| read_error(conn, API, e))?
            .ok_or_else(|| Error::Transport {
                api: API,
                reason: "the broker closed the stream without a response".into(),
            })?;
        decode::<AuthenticateRequest>(frame)
    };
    match tokio::time::timeout(after, exchange).await {
        Err(_) => Err(Error::Timeout { what: API, after }),
        Ok(Ok((resp, _))) => {
            tracing::debug!(principal = %resp.principal, "authenticated by token");
            Ok(resp.principal)
        }
        Ok(Err(Error::Broker { source, .. })) => Err(refused(token, source)),
        Ok(Err(other)) => Err(other),
    }
}

fn refused(token: &BearerToken, source: quiver_proto::WireError) -> Error {
    Error::Authentication {
        token_id: token.id().unwrap_or("(malformed)").to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quiver_proto::ErrorCode;

    #[test]
    fn a_refusal_names_the_token_by_its_id_only() {
        let source = quiver_proto::WireError::new(ErrorCode::UNAUTHORIZED, "token refused");
        let err = refused(&BearerToken::new("qvr_abc123_s3cr3t"), source.clone());
        let text = err.to_string();
        assert!(
            text.contains("abc123") && !text.contains("s3cr3t"),
            "{text}"
        );
        let err = refused(&BearerToken::new("garbage"), source);
        assert!(err.to_string().contains("(malformed)"), "{err}");
    }
}
