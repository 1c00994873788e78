//! The metrics endpoint: plain HTTP/1.1 on its own TCP address (`metrics_listen`), for
//! Prometheus and for load balancers' health checks.
//!
//! - `GET /metrics`: every metric in Prometheus' text format.
//! - `GET /health`: 200 while the process runs and is not shutting down, else 503.
//! - `GET /ready`: 200 once the broker serves requests (its data is open, its listener
//!   accepts, and in a cluster the metadata quorum has a leader), else 503 with the reason.
//!
//! Anything else is 404; a method other than GET or HEAD is 405. The endpoint carries no
//! secrets, only figures and topic and group names, and has no TLS: bind it to an address
//! only your monitoring can reach.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::service::BrokerService;

/// The content type of Prometheus' text exposition format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Binds the endpoint; serving starts with [`serve`].
pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves the endpoint until `shutdown` is cancelled.
pub(crate) async fn serve(
    listener: TcpListener,
    service: BrokerService,
    shutdown: CancellationToken,
) {
    loop {
        let stream = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: wait a moment rather than spin.
                    tracing::warn!(error = %e, "metrics endpoint: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let service = service.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let handler = hyper::service::service_fn(move |req| {
                let service = service.clone();
                async move { Ok::<_, Infallible>(answer(&service, &req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), handler);
            tokio::select! {
                result = conn => if let Err(e) = result {
                    tracing::debug!(error = %e, "metrics endpoint: connection ended with an error");
                },
                () = shutdown.cancelled() => {}
            }
        });
    }
}

async fn answer(service: &BrokerService, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n".into());
    }
    match req.uri().path() {
        "/metrics" => {
            let service = service.clone();
            // A scrape reads every partition's figures, which may wait on a log's lock.
            match tokio::task::spawn_blocking(move || service.render_metrics()).await {
                Ok(body) => {
                    let mut response = text(StatusCode::OK, body);
                    response.headers_mut().insert(
                        hyper::header::CONTENT_TYPE,
                        hyper::header::HeaderValue::from_static(TEXT_FORMAT),
                    );
                    response
                }
                Err(e) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("collecting metrics failed: {e}\n"),
                ),
            }
        }
        "/health" => {
            if service.shutdown.is_cancelled() {
                text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n".into())
            } else {
                text(StatusCode::OK, "ok\n".into())
            }
        }
        "/ready" => match service.not_ready() {
            None => text(StatusCode::OK, "ready\n".into()),
            Some(why) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
        },
        other => text(
            StatusCode::NOT_FOUND,
            format!("no such path {other}: try /metrics, /health or /ready\n"),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}
