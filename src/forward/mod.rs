//! Forwarding: turn an accepted request into an upstream request, send it, and stream the answer back.
//!
//! Bodies are streamed both ways, never collected. The upstream path is the normalised (and possibly
//! rewritten) path the router matched, so the upstream never resolves a different resource than was checked.
//! Upgrades (WebSocket) are spliced byte-for-byte once the upstream answers 101 (`splice`), within the
//! terms the request was accepted on: the token's expiry, the idle timeout and a per-user seat (`seats`).

pub mod connect;
pub mod echo;
pub mod headers;
pub mod pool;
pub mod seats;
pub mod splice;
pub mod upgrade;

use crate::auth::Identity;
use crate::body::{Prefix, ResBody};
use crate::config::{IdentityConfig, RouteConfig};
use crate::protocol::identity;
use connect::ConnectError;
use headers::Hop;
use http::uri::PathAndQuery;
use http::{HeaderValue, Request, Response, StatusCode, Uri, Version};
use http_body_util::Either;
use hyper::body::Incoming;
use pool::connections::SendError;
use splice::UpgradeTerms;

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
    /// No target of the route's pool takes requests (health checks fail, or all are ejected).
    #[error("no healthy upstream target")]
    NoHealthyTarget {
        /// When the first target may be back.
        retry_after: std::time::Duration,
    },
    /// Every slot of the chosen target stayed taken for the route's queue timeout.
    #[error("upstream target busy")]
    TargetBusy,
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
            UpstreamError::NoHealthyTarget { .. } => "no_healthy_target",
            UpstreamError::TargetBusy => "target_busy",
        }
    }
}

/// Everything forwarding needs besides the request.
pub struct Outbound<'a> {
    pub route: &'a RouteConfig,
    /// The route's targets.
    pub pool: &'a pool::Pool,
    /// The key `balance = "user"` hashes: the token's `sub`, or the client address on public routes.
    pub affinity: u64,
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
    /// The signed identity assertion and its header, set after the client's copies were stripped.
    pub assertion: Option<(&'a http::HeaderName, HeaderValue)>,
}

/// Sends a request upstream and returns the upstream's response, ready for the client.
///
/// The request comes as its parts and body (`Request::into_parts`): a whole request kept beside its parts
/// would add its size to this future for nothing. Not an `async fn` either: one of those keeps its
/// arguments twice (as arguments and as locals), and this future is copied into each caller's; the
/// `async move` block keeps them once.
#[allow(clippy::manual_async_fn)] // an async fn keeps its arguments twice
pub fn forward<'a>(
    mut parts: http::request::Parts,
    mut body: Incoming,
    out: Outbound<'a>,
) -> impl std::future::Future<Output = Result<Response<ResBody>, UpstreamError>> + 'a {
    async move {
        let upgrade = headers::is_upgrade(&parts.headers);
        // What `hyper::upgrade::on` takes from a request; None when hyper offers no upgrade of it.
        let client_upgrade = if upgrade {
            parts.extensions.remove::<hyper::upgrade::OnUpgrade>()
        } else {
            None
        };
        let upgrade_host = parts.extensions.remove::<upgrade::UpgradeHost>();

        let route = out.route;
        // Read the body's first part before anything goes upstream: a body that breaks or stalls here never
        // reaches the backend, and a short one is sent whole, with its length.
        let no_body = http_body::Body::is_end_stream(&body);
        let prefix = if upgrade || route.request_buffer_bytes == 0 || no_body {
            Prefix::default()
        } else {
            // Boxed: only requests with a body wait here, and inline this state would enlarge (and be copied
            // with) every request's future.
            let read = Box::pin(crate::body::read_prefix(
                &mut body,
                route.request_buffer_bytes,
            ));
            match tokio::time::timeout(out.body_timeout, read).await {
                Err(_) => return Err(UpstreamError::ClientBodyTimeout),
                Ok(Err(_)) => return Err(UpstreamError::ClientBody),
                Ok(Ok(prefix)) => prefix,
            }
        };
        let pq = match parts.uri.path_and_query() {
            // The path goes upstream as the client sent it (the common case): no copy, no second parse.
            Some(pq) if pq.path() == out.upstream_path => pq.clone(),
            _ => {
                let mut pq = String::with_capacity(
                    out.upstream_path.len() + parts.uri.query().map_or(0, |q| q.len() + 1),
                );
                pq.push_str(out.upstream_path);
                if let Some(q) = parts.uri.query() {
                    pq.push('?');
                    pq.push_str(q);
                }
                PathAndQuery::try_from(pq).map_err(|e| UpstreamError::BadRequest(e.to_string()))?
            }
        };
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
        // Without the client's Host, each target gets its own authority (set per attempt).
        let client_host = if route.preserve_host {
            out.hop.host.cloned()
        } else {
            None
        };
        if let Some(host) = client_host.clone() {
            headers::set_host(h, host);
        }
        if let Some(id) = out.identity {
            set_identity(h, out.identity_cfg, id)?;
        }
        if let Some((name, value)) = out.assertion {
            h.insert(name.clone(), value);
        }
        if prefix.complete && prefix.trailers.is_none() {
            h.insert(
                http::header::CONTENT_LENGTH,
                HeaderValue::from(prefix.data.len()),
            );
        }

        if route.local == Some(crate::config::LocalTarget::Echo) {
            // Answered here, after all the surgery, so it shows exactly what an upstream would receive.
            parts.uri = Uri::from(pq);
            return Ok(echo::answer(&parts, out.identity_cfg));
        }

        let pool = out.pool;
        let ((response, connection), lease) = if pool.is_single() {
            let target = &pool.targets[0];
            if pool.pick(0, 0).is_none() {
                return Err(UpstreamError::NoHealthyTarget {
                    retry_after: pool.retry_after(),
                });
            }
            let lease = target
                .lease(pool.counts_load(), pool.queue_timeout)
                .await
                .map_err(|_| UpstreamError::TargetBusy)?;
            parts.uri = Uri::from(pq);
            if client_host.is_none() {
                headers::set_host(&mut parts.headers, target.host.clone());
            }
            let (body, client_broke) = crate::body::ClientBody::with_prefix(prefix, body);
            let sent = std::time::Instant::now();
            let result = attempt(
                target,
                Request::from_parts(parts, body),
                route.timeout,
                &client_broke,
            )
            .await;
            (settle(pool, 0, result, sent)?, lease)
        } else {
            // Boxed for the same reason: single-target routes never enter the retry loop.
            Box::pin(send_to_pool(PoolRequest {
                pool,
                parts,
                pq,
                client_host,
                whole: prefix.complete || no_body,
                prefix,
                body,
                affinity: out.affinity,
                timeout: route.timeout,
            }))
            .await?
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
        let (slot, in_flight) = lease.into_parts();
        let mut body =
            crate::body::UpstreamBody::new(body, route.timeout, connection).taking_slot(slot);
        if let Some(counted) = in_flight {
            body = body.holding(Box::new(counted));
        }
        Ok(Response::from_parts(parts, Either::Left(body)))
    }
}

/// Sends one attempt within `budget`; a failure of the client's own body is the client's.
fn attempt<'a>(
    target: &'a pool::target::Target,
    req: Request<crate::body::ClientBody>,
    budget: std::time::Duration,
    client_broke: &'a std::sync::atomic::AtomicBool,
) -> impl std::future::Future<Output = Result<Sent, UpstreamError>> + 'a {
    use futures_util::FutureExt;
    target.requests.inc();
    // A combinator, not an `async` block: the block would hold the sending future twice (captured, and
    // again while awaiting it), and this future is moved into its callers'.
    tokio::time::timeout(budget, target.conns.send(req)).map(move |sent| match sent {
        Err(_) => Err(UpstreamError::Timeout),
        Ok(Err(_)) if client_broke.load(std::sync::atomic::Ordering::Relaxed) => {
            Err(UpstreamError::ClientBody)
        }
        Ok(Err(SendError::Connect(ConnectError::Timeout))) => Err(UpstreamError::ConnectTimeout),
        Ok(Err(SendError::Connect(e))) => Err(UpstreamError::Connect(e.to_string())),
        Ok(Err(SendError::Protocol(e))) => Err(UpstreamError::Protocol(e)),
        Ok(Ok(r)) => Ok(r),
    })
}

/// A response head and the connection its body arrives on.
type Sent = (Response<Incoming>, crate::body::Lent);

/// Tells the pool how an attempt on target `i` went; passes the result on.
fn settle(
    pool: &pool::Pool,
    i: usize,
    result: Result<Sent, UpstreamError>,
    sent: std::time::Instant,
) -> Result<Sent, UpstreamError> {
    match &result {
        Ok((res, _)) => pool.answered(i, res.status(), sent),
        Err(
            e @ (UpstreamError::Connect(_)
            | UpstreamError::ConnectTimeout
            | UpstreamError::Protocol(_)),
        ) => pool.failed(i, e.kind(), true),
        Err(UpstreamError::Timeout) => pool.failed(i, "timeout", false),
        Err(_) => {}
    }
    result
}

/// A request on its way to a pool of several targets.
struct PoolRequest<'a> {
    pool: &'a pool::Pool,
    parts: http::request::Parts,
    pq: PathAndQuery,
    client_host: Option<HeaderValue>,
    prefix: Prefix,
    /// The whole body is in `prefix` (or there is none): it can be sent again.
    whole: bool,
    body: Incoming,
    affinity: u64,
    timeout: std::time::Duration,
}

/// Idempotent methods (RFC 9110 §9.2.2) the gateway may send twice.
fn idempotent(m: &http::Method) -> bool {
    matches!(
        *m,
        http::Method::GET
            | http::Method::HEAD
            | http::Method::OPTIONS
            | http::Method::PUT
            | http::Method::DELETE
    )
}

/// Sends a request to a pool, retrying on another target when that cannot do harm: a connection that was
/// never made (any method; the body is still unread), or a connection that broke before the response head
/// for an idempotent method whose whole body was buffered. Never after a response head; all attempts share
/// the route's timeout.
async fn send_to_pool(r: PoolRequest<'_>) -> Result<(Sent, pool::target::Lease), UpstreamError> {
    let pool = r.pool;
    let deadline = tokio::time::Instant::now() + r.timeout;
    let resend_after_sending = idempotent(&r.parts.method) && r.whole;
    let parked: crate::body::Parked = std::sync::Arc::new(std::sync::Mutex::new(Some(r.body)));
    let broken = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tried: pool::balance::Candidates = 0;
    let mut last_error: Option<UpstreamError> = None;
    for n in 1..=pool.max_attempts {
        let Some(i) = pool.pick(tried, r.affinity) else {
            break;
        };
        tried |= 1 << i;
        let target = &pool.targets[i];
        let lease = match target.lease(pool.counts_load(), pool.queue_timeout).await {
            Ok(lease) => lease,
            // Moving an affine user to another server would lose their in-process session: 503 instead.
            Err(_) if pool.balance == crate::config::Balance::User || n == pool.max_attempts => {
                return Err(UpstreamError::TargetBusy)
            }
            Err(_) => {
                pool.retrying(i, "target_busy", n);
                last_error = Some(UpstreamError::TargetBusy);
                continue;
            }
        };
        let mut req = Request::new(crate::body::ClientBody::attempt(
            &r.prefix, &parked, &broken,
        ));
        *req.method_mut() = r.parts.method.clone();
        *req.version_mut() = r.parts.version;
        *req.headers_mut() = r.parts.headers.clone();
        *req.uri_mut() = Uri::from(r.pq.clone());
        if r.client_host.is_none() {
            headers::set_host(req.headers_mut(), target.host.clone());
        }
        // One clock read for both the attempt's budget and its latency.
        let now = tokio::time::Instant::now();
        let budget = deadline.saturating_duration_since(now);
        let sent = now.into_std();
        let result = settle(pool, i, attempt(target, req, budget, &broken).await, sent);
        let e = match result {
            Ok(res) => return Ok((res, lease)),
            Err(e) => e,
        };
        let body_unread = r.whole || parked.lock().map(|p| p.is_some()).unwrap_or(false);
        let again = match &e {
            UpstreamError::Connect(_) | UpstreamError::ConnectTimeout => body_unread,
            UpstreamError::Protocol(_) => resend_after_sending,
            _ => false,
        };
        if !again || n == pool.max_attempts || deadline <= tokio::time::Instant::now() {
            return Err(e);
        }
        pool.retrying(i, e.kind(), n);
        last_error = Some(e);
    }
    Err(
        last_error.unwrap_or_else(|| UpstreamError::NoHealthyTarget {
            retry_after: pool.retry_after(),
        }),
    )
}

/// Sets the identity headers. Verification already refused tokens whose `sub`, `name` or mapped claims
/// cannot be header values (`TokenVerifier`) and made the `sub` and `name` values once, so this cannot fail
/// for a verified identity; if a mapped claim ever does, the request is not forwarded at all rather than
/// forwarded without the header (an upstream would read a missing `X-Auth-User` as "anonymous").
fn set_identity(
    h: &mut http::HeaderMap,
    cfg: &IdentityConfig,
    id: &Identity,
) -> Result<(), UpstreamError> {
    let refused = |what: &str| UpstreamError::BadRequest(format!("{what} is not a header value"));
    h.insert(cfg.user_header.clone(), id.sub_value.clone());
    if let Some(name) = &id.name_value {
        h.insert(cfg.name_header.clone(), name.clone());
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
