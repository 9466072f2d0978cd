//! The gateway as a hyper service: one request in, one response out, never an error.
//!
//! `handle` cannot fail: it runs `try_handle` (the request path written with `?`), turns any
//! `GatewayError` into its response, adds CORS headers and logs once. Stages in order:
//! Host check → path normalisation → CORS preflight → routing → authentication → forwarding.

use crate::auth::bearer;
use crate::body::ResBody;
use crate::cors::Cors;
use crate::error::{BadRequest, GatewayError};
use crate::forward::headers::Hop;
use crate::forward::{self, Outbound};
use crate::routing::{path, Routed};
use crate::state::State;
use http::header::HOST;
use http::uri::Authority;
use http::{HeaderValue, Request, Response, Version};
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;

/// Facts about the connection a request arrived on.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub tls: bool,
}

/// The request handler.
#[derive(Clone)]
pub struct Gateway {
    state: Arc<State>,
}

impl Gateway {
    /// Wraps built state.
    pub fn new(state: Arc<State>) -> Gateway {
        Gateway { state }
    }

    /// Answers one request; never fails.
    pub async fn handle(&self, req: Request<Incoming>, conn: ConnInfo) -> Response<ResBody> {
        let origin = self.state.cors.allowed_origin(req.headers());
        let method = req.method().clone();
        let mut res = match self.try_handle(req, conn, origin.is_some()).await {
            Ok(r) => r,
            Err(e) => {
                match &e {
                    GatewayError::Upstream(u) => {
                        tracing::warn!(peer = %conn.peer, %method, kind = u.kind(), error = %u, "upstream failed")
                    }
                    other => {
                        tracing::debug!(peer = %conn.peer, %method, error = %other, "request refused")
                    }
                }
                e.into_response()
            }
        };
        if let Some(o) = origin {
            self.state.cors.decorate(o, &mut res);
        }
        res
    }

    async fn try_handle(
        &self,
        req: Request<Incoming>,
        conn: ConnInfo,
        origin_allowed: bool,
    ) -> Result<Response<ResBody>, GatewayError> {
        let state = &*self.state;
        let host = request_host(&req)?;
        let path = path::normalise(req.uri().path()).map_err(BadRequest::Path)?;
        if origin_allowed && Cors::is_preflight(req.method(), req.headers()) {
            return Ok(state.cors.preflight());
        }
        let host_str = host.as_ref().and_then(|h| h.to_str().ok());
        match state.router.route(host_str, &path) {
            Routed::Login => {
                let Some(login) = &state.login else {
                    return Err(GatewayError::NotFound);
                };
                if req.method() != http::Method::POST {
                    return Err(GatewayError::MethodNotAllowed);
                }
                let ip = client_ip(state, &req, conn);
                match login.handle(req, ip).await {
                    Ok(res) => Ok(res),
                    Err(e) => {
                        // The one place the causes are told apart: the log (and later metrics).
                        tracing::info!(peer = %conn.peer, outcome = e.outcome(), reason = %e, "login refused");
                        Err(e.into())
                    }
                }
            }
            Routed::Jwks => match &state.jwks {
                Some(doc) => Ok(crate::response::json(http::StatusCode::OK, doc.to_vec())),
                None => Err(GatewayError::NotFound),
            },
            Routed::NotFound => {
                // Authenticate first so that unauthenticated callers cannot probe which routes exist.
                bearer::authenticate(req.headers(), &state.verifier, state.max_token_bytes)?;
                Err(GatewayError::NotFound)
            }
            Routed::Upstream {
                index,
                route,
                upstream_path,
            } => {
                let identity = if route.public {
                    None
                } else {
                    Some(bearer::authenticate(
                        req.headers(),
                        &state.verifier,
                        state.max_token_bytes,
                    )?)
                };
                let hop = Hop {
                    peer: conn.peer.ip(),
                    trusted: state.is_trusted(conn.peer.ip()),
                    tls: conn.tls,
                    host: host.as_ref(),
                    via: if req.version() == Version::HTTP_2 {
                        "2"
                    } else {
                        "1.1"
                    },
                };
                let out = Outbound {
                    route,
                    client: &state.clients[index],
                    upstream_path: &upstream_path,
                    hop,
                    identity_cfg: &state.identity,
                    identity_names: &state.identity_names,
                    identity: identity.as_ref(),
                };
                Ok(forward::forward(req, out).await?)
            }
        }
    }
}

/// The client's address: the peer, or behind trusted proxies the rightmost untrusted `X-Forwarded-For` entry.
fn client_ip(state: &State, req: &Request<Incoming>, conn: ConnInfo) -> std::net::IpAddr {
    let peer = conn.peer.ip();
    if !state.is_trusted(peer) {
        return peer;
    }
    let forwarded: Vec<std::net::IpAddr> = req
        .headers()
        .get_all(crate::forward::headers::X_FORWARDED_FOR.clone())
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    forwarded
        .into_iter()
        .rev()
        .find(|ip| !state.is_trusted(*ip))
        .unwrap_or(peer)
}

/// The request's host: the absolute-form or HTTP/2 authority if present (RFC 9112 §3.2.2), else exactly one
/// valid `Host` header, required for HTTP/1.1 (RFC 9112 §3.2).
fn request_host(req: &Request<Incoming>) -> Result<Option<HeaderValue>, BadRequest> {
    let mut hosts = req.headers().get_all(HOST).iter();
    let first = hosts.next();
    if hosts.next().is_some() {
        return Err(BadRequest::BadHost);
    }
    if let Some(auth) = req.uri().authority() {
        return HeaderValue::from_str(auth.as_str())
            .map(Some)
            .map_err(|_| BadRequest::BadHost);
    }
    match first {
        Some(v) => {
            let ok = v.to_str().ok().is_some_and(|s| {
                !s.is_empty() && Authority::from_str(s).is_ok() && !s.contains('@')
            });
            if ok {
                Ok(Some(v.clone()))
            } else {
                Err(BadRequest::BadHost)
            }
        }
        None if req.version() == Version::HTTP_11 => Err(BadRequest::MissingHost),
        None => Ok(None),
    }
}
