//! Forwarding: turn an accepted request into an upstream request, send it, and stream the answer back.
//!
//! Bodies are streamed both ways, never collected. The upstream path is the normalised (and possibly
//! rewritten) path the router matched, so the upstream never resolves a different resource than was checked.
//! Upgrades (WebSocket) are spliced byte-for-byte once the upstream answers 101 (`splice`), within the
//! terms the request was accepted on: the token's expiry, the idle timeout and a per-user seat (`seats`).

pub mod client;
pub mod echo;
pub mod headers;
pub mod seats;
pub mod splice;
pub mod upgrade;

use crate::auth::Identity;
use crate::body::{Prefix, ResBody};
use crate::config::{IdentityConfig, RouteConfig};
use crate::protocol::identity;
use client::UpstreamClient;
use headers::Hop;
use http::{HeaderValue, Request, Response, StatusCode, Uri, Version};
use http_body_util::Either;
use hyper::body::Incoming;
use splice::UpgradeTerms;
use std::error::Error as StdError;

/// Why the upstream gave no usable response.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// TCP/TLS connection refused or failed.
    #[error("connect: {0}")]
    Connect(String),
    /// The connection was not established within the route's connect timeout.
    #[error("connect timeout")]
    ConnectTimeout,
    /// No response head within the route's timeout.
    #[error("response timeout")]
    Timeout,
    /// The connection broke or the upstream spoke something that is not HTTP.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The client's request body broke (malformed chunking, reset) while it was being forwarded: the client's
    /// fault, answered 400, not blamed on the upstream.
    #[error("client request body broke while forwarding")]
    ClientBody,
    /// The first part of the client's body did not arrive within `server.body_timeout`; nothing was sent
    /// upstream (408).
    #[error("client request body too slow")]
    ClientBodyTimeout,
    /// The request could not be turned into an upstream request (bad path characters).
    #[error("bad upstream request: {0}")]
    BadRequest(String),
}

impl UpstreamError {
    /// Stable label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamError::Connect(_) => "connect",
            UpstreamError::ConnectTimeout => "connect_timeout",
            UpstreamError::Timeout => "timeout",
            UpstreamError::Protocol(_) => "protocol",
            UpstreamError::BadRequest(_) => "bad_request",
            UpstreamError::ClientBody => "client_body",
            UpstreamError::ClientBodyTimeout => "client_body_timeout",
        }
    }
}

/// Everything forwarding needs besides the request.
pub struct Outbound<'a> {
    pub route: &'a RouteConfig,
    pub client: &'a UpstreamClient,
    pub upstream_path: &'a str,
    pub hop: Hop<'a>,
    pub identity_cfg: &'a IdentityConfig,
    /// Every identity header name, stripped from what the client sent.
    pub identity_names: &'a [http::HeaderName],
    /// Header names stripped when the peer is not a trusted proxy.
    pub untrusted_names: &'a [http::HeaderName],
    /// The caller, on protected routes.
    pub identity: Option<&'a Identity>,
    /// Time the client gets to send the buffered part of its body.
    pub body_timeout: std::time::Duration,
    /// What bounds the connection if the request is upgraded; dropped (giving its seat back) otherwise.
    pub upgrade: UpgradeTerms,
}

/// Sends `req` upstream and returns the upstream's response, ready for the client.
pub async fn forward(
    mut req: Request<Incoming>,
    out: Outbound<'_>,
) -> Result<Response<ResBody>, UpstreamError> {
    let upgrade = headers::is_upgrade(req.headers());
    let client_upgrade = if upgrade {
        Some(hyper::upgrade::on(&mut req))
    } else {
        None
    };
    let upgrade_host = req.extensions_mut().remove::<upgrade::UpgradeHost>();

    let (mut parts, mut body) = req.into_parts();
    let route = out.route;
    // Read the body's first part before anything goes upstream: a body that breaks or stalls here never
    // reaches the backend, and a short one is sent whole, with its length.
    let prefix =
        if upgrade || route.request_buffer_bytes == 0 || http_body::Body::is_end_stream(&body) {
            Prefix::default()
        } else {
            let read = crate::body::read_prefix(&mut body, route.request_buffer_bytes);
            match tokio::time::timeout(out.body_timeout, read).await {
                Err(_) => return Err(UpstreamError::ClientBodyTimeout),
                Ok(Err(_)) => return Err(UpstreamError::ClientBody),
                Ok(Ok(prefix)) => prefix,
            }
        };
    let mut pq = String::with_capacity(
        out.upstream_path.len() + parts.uri.query().map_or(0, |q| q.len() + 1),
    );
    pq.push_str(out.upstream_path);
    if let Some(q) = parts.uri.query() {
        pq.push('?');
        pq.push_str(q);
    }
    parts.uri = Uri::builder()
        .scheme(route.upstream.scheme.clone())
        .authority(route.upstream.authority.clone())
        .path_and_query(pq)
        .build()
        .map_err(|e| UpstreamError::BadRequest(e.to_string()))?;
    if parts.version == Version::HTTP_2 {
        headers::join_cookies(&mut parts.headers);
    }
    // The pooled client speaks HTTP/1.1 upstream whatever the client used (an h2 request on an h1 pool errors).
    parts.version = Version::HTTP_11;

    let h = &mut parts.headers;
    headers::remove_hop_by_hop(h, upgrade);
    headers::strip_identity(h, out.identity_names);
    if !out.hop.trusted {
        headers::strip_identity(h, out.untrusted_names);
    }
    if !(out.identity_cfg.forward_authorization && route.forward_authorization) {
        h.remove(http::header::AUTHORIZATION);
    }
    headers::set_forwarded(h, &out.hop);
    let host = if route.preserve_host {
        out.hop.host.cloned()
    } else {
        None
    };
    let host = match host {
        Some(h) => h,
        None => HeaderValue::from_str(route.upstream.authority.as_str())
            .map_err(|e| UpstreamError::BadRequest(e.to_string()))?,
    };
    headers::set_host(h, host);
    if let Some(id) = out.identity {
        set_identity(h, out.identity_cfg, id)?;
    }
    if prefix.complete && prefix.trailers.is_none() {
        h.insert(
            http::header::CONTENT_LENGTH,
            HeaderValue::from(prefix.data.len()),
        );
    }

    if route.local == Some(crate::config::LocalTarget::Echo) {
        // Answered here, after all the surgery, so it shows exactly what an upstream would receive.
        return Ok(echo::answer(&parts, out.identity_cfg));
    }

    let (body, client_broke) = crate::body::ClientBody::with_prefix(prefix, body);
    let upstream_req = Request::from_parts(parts, body);
    let response = match tokio::time::timeout(route.timeout, out.client.request(upstream_req)).await
    {
        Err(_) => return Err(UpstreamError::Timeout),
        Ok(Err(_)) if client_broke.load(std::sync::atomic::Ordering::Relaxed) => {
            return Err(UpstreamError::ClientBody)
        }
        Ok(Err(e)) => return Err(classify(&e)),
        Ok(Ok(r)) => r,
    };

    let mut response = response;
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade else {
            // A 101 nobody asked for cannot be relayed.
            return Err(UpstreamError::Protocol("unsolicited 101".into()));
        };
        splice::splice(
            client_upgrade,
            hyper::upgrade::on(&mut response),
            upgrade_host,
            out.upgrade,
        );
        let (mut parts, _) = response.into_parts();
        headers::remove_hop_by_hop(&mut parts.headers, true);
        headers::strip_response(&mut parts.headers);
        return Ok(Response::from_parts(
            parts,
            Either::Right(Default::default()),
        ));
    }
    let (mut parts, body) = response.into_parts();
    headers::remove_hop_by_hop(&mut parts.headers, false);
    headers::strip_response(&mut parts.headers);
    Ok(Response::from_parts(
        parts,
        Either::Left(crate::body::UpstreamBody::new(body, route.timeout)),
    ))
}

/// Sets the identity headers. Verification already refused tokens whose `sub`, `name` or mapped claims
/// cannot be header values (`TokenVerifier`), so this cannot fail for a verified identity; if it ever does,
/// the request is not forwarded at all rather than forwarded without the header (an upstream would read a
/// missing `X-Auth-User` as "anonymous").
fn set_identity(
    h: &mut http::HeaderMap,
    cfg: &IdentityConfig,
    id: &Identity,
) -> Result<(), UpstreamError> {
    let refused = |what: &str| UpstreamError::BadRequest(format!("{what} is not a header value"));
    let sub = identity::identity_value(&id.sub).ok_or_else(|| refused("sub"))?;
    h.insert(cfg.user_header.clone(), sub);
    if let Some(name) = id.name.as_deref() {
        let name = identity::identity_value(name).ok_or_else(|| refused("name"))?;
        h.insert(cfg.name_header.clone(), name);
    }
    if let Some(extra) = &id.extra {
        for (claim, header) in &cfg.claims {
            if let Some(text) = identity::claim_text(extra.get(claim)) {
                let v = identity::identity_value(&text).ok_or_else(|| refused(claim))?;
                h.insert(header.clone(), v);
            }
        }
    }
    Ok(())
}

fn classify(e: &hyper_util::client::legacy::Error) -> UpstreamError {
    if e.is_connect() {
        let mut source: Option<&(dyn StdError + 'static)> = e.source();
        while let Some(s) = source {
            if let Some(io) = s.downcast_ref::<std::io::Error>() {
                if io.kind() == std::io::ErrorKind::TimedOut {
                    return UpstreamError::ConnectTimeout;
                }
            }
            source = s.source();
        }
        return UpstreamError::Connect(chain(e));
    }
    UpstreamError::Protocol(chain(e))
}

fn chain(e: &dyn StdError) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
