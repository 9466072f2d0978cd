//! The operations listener (default 127.0.0.1:9090, off the public port): `/metrics` (Prometheus text or
//! OpenMetrics, by `Accept`),
//! `/healthz` (liveness: the process serves) and `/readyz` (readiness: config loaded, the user store can
//! answer, and the shared store has answered since start and, with it, the revocations were loaded), and `POST /revoke` for operators
//! when `metrics.admin_token_file` is set (`crate::admin`). The same health answers are available on the main listener with `metrics.health_on_main_listener`.

use crate::body::ResBody;
use crate::metrics::Format;
use crate::reload::Shared;
use crate::response;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// `/healthz`.
pub const HEALTHZ: &str = "/healthz";
/// `/readyz`.
pub const READYZ: &str = "/readyz";

/// Answers a health path, or None if `path` is not one.
pub async fn answer(shared: &Shared, method: &Method, path: &str) -> Option<Response<ResBody>> {
    if method != Method::GET && method != Method::HEAD {
        return None;
    }
    match path {
        HEALTHZ => Some(response::text(StatusCode::OK, "ok\n")),
        READYZ => Some(match ready(shared).await {
            Ok(()) => response::text(StatusCode::OK, "ready\n"),
            Err(e) => {
                tracing::warn!(reason = %e, "not ready");
                response::text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
            }
        }),
        _ => None,
    }
}

/// The current state can serve, and the shared store (when configured) has answered since start.
async fn ready(shared: &Shared) -> Result<(), String> {
    shared.current().ready().await?;
    shared.lasting.sessions.ready()?;
    match &shared.lasting.shared {
        Some(store) => store.ready(),
        None => Ok(()),
    }
}

async fn handle(shared: Arc<Shared>, req: Request<hyper::body::Incoming>) -> Response<ResBody> {
    if let Some(res) = answer(&shared, req.method(), req.uri().path()).await {
        return res;
    }
    if req.uri().path() == crate::auth::operator::REVOKE_PATH {
        return crate::admin::revoke(&shared, req).await;
    }
    if req.uri().path() == "/metrics" && req.method() == Method::GET {
        let state = shared.current();
        if let Some(login) = &state.login {
            shared
                .lasting
                .metrics
                .hash_queue
                .set(login.pool().queued() as i64);
        }
        let format = Format::negotiate(req.headers().get_all(http::header::ACCEPT));
        let body = shared.lasting.metrics.encode(format);
        let mut res = Response::new(http_body_util::Either::Right(http_body_util::Full::new(
            Bytes::from(body),
        )));
        res.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(format.content_type()),
        );
        // The body depends on Accept: a cache in between must not hand one scraper's format to another.
        res.headers_mut()
            .insert(http::header::VARY, http::HeaderValue::from_static("accept"));
        return res;
    }
    response::empty(StatusCode::NOT_FOUND)
}

/// Serves the operations listener until the task is aborted.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(shared, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(5))
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}
