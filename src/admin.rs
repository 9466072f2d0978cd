//! Operator actions on the operations listener (`metrics.listen`): `POST /revoke`, and the client side of
//! it that `gateway revoke` uses when there is no shared store to write to.
//!
//! The endpoint is served only with `metrics.admin_token_file` (see `auth::operator` for the contract).

use crate::auth::operator::{self, OperatorError, MAX_REVOKE_BODY_BYTES};
use crate::auth::revocation::now_secs;
use crate::body::ResBody;
use crate::error::GatewayError;
use crate::reload::Shared;
use http::{Method, Request, Response};
use std::time::Duration;

/// Time an operator client gets to send the revoke body.
const REVOKE_BODY_TIMEOUT: Duration = Duration::from_secs(5);

/// Answers `POST /revoke`; every refusal becomes its response in `crate::error`.
pub async fn revoke(shared: &Shared, req: Request<hyper::body::Incoming>) -> Response<ResBody> {
    match try_revoke(shared, req).await {
        Ok(()) => crate::response::empty(http::StatusCode::NO_CONTENT),
        Err(e) => {
            tracing::info!(error = %e, "operator revoke refused");
            GatewayError::Operator(e).into_response()
        }
    }
}

async fn try_revoke(
    shared: &Shared,
    req: Request<hyper::body::Incoming>,
) -> Result<(), OperatorError> {
    let state = shared.current();
    // Refused before anything else, so without a token the path looks like any unknown one.
    operator::authorize(req.headers(), state.config.metrics.admin_token.as_ref())?;
    if req.method() != Method::POST {
        return Err(OperatorError::Method);
    }
    let body =
        crate::body::collect_limited(req.into_body(), MAX_REVOKE_BODY_BYTES, REVOKE_BODY_TIMEOUT)
            .await
            .map_err(|e| OperatorError::BadRequest(e.to_string()))?;
    let revocation = operator::parse(&body, now_secs(), state.config.auth.leeway.as_secs())?;
    shared.lasting.sessions.revoke(&revocation).await?;
    tracing::warn!(revocation = ?revocation, "revoked by an operator");
    Ok(())
}

/// Sends a revoke request (a JSON body from `auth::operator`) to a running gateway's operations listener
/// at `base` (`http://host:port`), with the operator `token`.
pub async fn send_revoke(base: &str, token: &str, body: String) -> Result<(), String> {
    use hyper_util::client::legacy::{connect::HttpConnector, Client};
    let uri: http::Uri = format!("{}{}", base.trim_end_matches('/'), operator::REVOKE_PATH)
        .parse()
        .map_err(|_| format!("{base:?} is not a URL like http://127.0.0.1:9090"))?;
    let req = Request::post(uri)
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let client: Client<HttpConnector, http_body_util::Full<bytes::Bytes>> =
        Client::builder(hyper_util::rt::TokioExecutor::new()).build(HttpConnector::new());
    let res = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .map_err(|_| "no answer within 10s".to_string())?
        .map_err(|e| e.to_string())?;
    match res.status().as_u16() {
        204 => Ok(()),
        401 => Err("401: the operator token was refused (metrics.admin_token_file differs?)".into()),
        404 => Err("404: the gateway serves no revoke endpoint (no metrics.admin_token_file in its configuration)".into()),
        503 => Err("503: the gateway could not record the revocation (shared store down, or its table is full); try again".into()),
        s => Err(format!("unexpected answer {s}")),
    }
}

/// Where a client on this host reaches a listener bound to `addr`: the unspecified address becomes loopback.
pub fn reachable(addr: std::net::SocketAddr) -> std::net::SocketAddr {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    std::net::SocketAddr::new(ip, addr.port())
}
