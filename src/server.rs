//! The gateway as a hyper service: one request in, one response out, never an error.
//!
//! `handle` cannot fail: it runs `try_handle` (the request path written with `?`), turns any
//! `GatewayError` into its response, adds CORS headers and logs once. Stages in order:
//! Host check → path normalisation and screening → CORS preflight → the gateway's own files (`/.gateway/`)
//! → routing (and the route's `;` parameter rule) → authentication → forwarding (or a local target).

use crate::auth::csrf::{self, Arrival};
use crate::auth::logout::{self, LogoutError};
use crate::auth::session::{self, Via};
use crate::body::ResBody;
use crate::cors::Cors;
use crate::error::{BadRequest, GatewayError};
use crate::forward::headers::{self, Hop};
use crate::forward::splice::{Revoked, UpgradeTerms};
use crate::forward::{self, Outbound};
use crate::metrics::RouteName;
use crate::protocol::path::{self, PathError};
use crate::reload::Shared;
use crate::routing::Routed;
use crate::state::State;
use http::header::HOST;
use http::uri::Authority;
use http::HeaderName;
use http::{HeaderValue, Request, Response, Version};
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

/// Facts about the connection a request arrived on.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub tls: bool,
}

/// What the access log and metrics need to know about a request, filled in along the way.
#[derive(Default)]
struct Trace {
    route: Option<RouteName>,
    /// The route's index when the request was routed to an upstream (its metric series are resolved).
    route_index: Option<usize>,
    user: Option<String>,
    upstream: Option<Duration>,
}

/// The request handler.
#[derive(Clone)]
pub struct Gateway {
    shared: Arc<Shared>,
}

static ROUTE_NONE: LazyLock<RouteName> = LazyLock::new(|| Arc::new("none".to_string()));
static ROUTE_LOGIN: LazyLock<RouteName> = LazyLock::new(|| Arc::new("login".to_string()));
static ROUTE_LOGOUT: LazyLock<RouteName> = LazyLock::new(|| Arc::new("logout".to_string()));
static ROUTE_INTERNAL: LazyLock<RouteName> = LazyLock::new(|| Arc::new("gateway".to_string()));
static ROUTE_LOGIN_PAGE: LazyLock<RouteName> = LazyLock::new(|| Arc::new("login_page".to_string()));
/// `Gateway-Session: cookie` on `POST /api/Auth` asks for the session cookie besides the JSON token.
static GATEWAY_SESSION: HeaderName = HeaderName::from_static("gateway-session");

/// Cookie mode's view of one request: the cookie's name, whether it may be set or read over this
/// connection, and the origins an unsafe cookie request may come from.
struct CookieSession<'a> {
    name: &'a str,
    secure: bool,
    own_origin: Option<String>,
    allowed: &'a [String],
}

impl CookieSession<'_> {
    /// The CSRF check for a cookie-authenticated request.
    fn check(&self, method: &http::Method, headers: &http::HeaderMap) -> Result<(), GatewayError> {
        let upgrade = headers::is_upgrade(headers);
        csrf::check(
            method,
            headers,
            upgrade,
            self.own_origin.as_deref(),
            self.allowed,
        )
        .map_err(GatewayError::from)
    }
}
static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

impl Gateway {
    /// Serves whatever state `shared` currently holds.
    pub fn new(shared: Arc<Shared>) -> Gateway {
        Gateway { shared }
    }

    /// Answers one request; never fails. Takes the (cheaply cloned) gateway so the future owns all it needs
    /// and the connection can hold it without a wrapper of its own.
    #[allow(clippy::manual_async_fn)] // an async fn keeps its arguments twice
    pub fn handle(
        self,
        mut req: Request<Incoming>,
        conn: ConnInfo,
    ) -> impl std::future::Future<Output = Response<ResBody>> + Send + 'static {
        // Not an `async fn`, which would keep `req` twice (see `forward::forward`).
        async move {
            let started = Instant::now();
            // In-flight requests keep the state they started with across a reload.
            let state = self.shared.current();
            let origin = state.cors.allowed_origin(req.headers());
            let method = req.method().clone();
            let request_id = request_id(&state, &req, conn);
            req.headers_mut()
                .insert(X_REQUEST_ID.clone(), request_id.clone());
            let path_for_log = state.access_log.then(|| req.uri().path().to_string());
            let mut trace = Trace::default();
            let mut res = match self
                .try_handle(&state, req, conn, origin.is_some(), &mut trace)
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    match &e {
                        GatewayError::Upstream(
                            u @ (crate::forward::UpstreamError::ClientBody
                            | crate::forward::UpstreamError::ClientBodyTimeout),
                        ) => {
                            tracing::debug!(request_id = ?request_id, peer = %conn.peer, %method, error = %u, "client request body broke or stalled")
                        }
                        GatewayError::Upstream(u) => {
                            state
                                .metrics
                                .upstream_errors
                                .get_or_create(&crate::metrics::KindLabels { kind: u.kind() })
                                .inc();
                            tracing::warn!(request_id = ?request_id, peer = %conn.peer, %method, kind = u.kind(), error = %u, "upstream failed")
                        }
                        other => {
                            tracing::debug!(request_id = ?request_id, peer = %conn.peer, %method, error = %other, "request refused")
                        }
                    }
                    e.into_response()
                }
            };
            if let Some(o) = origin {
                state.cors.decorate(o, &mut res);
            }
            res.headers_mut()
                .insert(X_REQUEST_ID.clone(), request_id.clone());
            let took = started.elapsed();
            let route = trace.route.as_ref().unwrap_or(&ROUTE_NONE);
            match trace.route_index {
                Some(i) => {
                    state.route_metrics[i].request(&state.metrics, &method, res.status(), took)
                }
                None => state.metrics.request(route, &method, res.status(), took),
            }
            if let Some(path) = path_for_log {
                tracing::info!(
                    target: "access",
                    request_id = request_id.to_str().unwrap_or("-"),
                    client = %conn.peer.ip(),
                    method = %method,
                    path = %path,
                    route = %route,
                    status = res.status().as_u16(),
                    bytes = res.headers().get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).unwrap_or("-"),
                    duration_ms = took.as_secs_f64() * 1000.0,
                    upstream_ms = trace.upstream.map(|d| d.as_secs_f64() * 1000.0),
                    user = trace.user.as_deref(),
                );
            }
            res
        }
    }

    #[allow(clippy::manual_async_fn)] // an async fn keeps its arguments twice
    fn try_handle<'a>(
        &'a self,
        state: &'a State,
        mut req: Request<Incoming>,
        conn: ConnInfo,
        origin_allowed: bool,
        trace: &'a mut Trace,
    ) -> impl std::future::Future<Output = Result<Response<ResBody>, GatewayError>> + 'a {
        async move {
            let host = request_host(&req)?;
            let path = path::normalise(req.uri().path()).map_err(BadRequest::Path)?;
            path::screen(&path).map_err(BadRequest::Path)?;
            // Routes are chosen without `;` parameters; whether the path may carry them depends on the route.
            let parameters = path::has_parameters(&path);
            let refuse_parameters = || GatewayError::from(BadRequest::Path(PathError::Parameters));
            if origin_allowed && Cors::is_preflight(req.method(), req.headers()) {
                trace.route = Some(ROUTE_INTERNAL.clone());
                return Ok(state.cors.preflight());
            }
            // The rare paths are boxed (health here, login below): their futures would otherwise size every
            // proxied request's future, which is moved and allocated per request.
            let health_path = path == crate::health::HEALTHZ || path == crate::health::READYZ;
            if state.health_on_main && health_path {
                if let Some(res) =
                    Box::pin(crate::health::answer(&self.shared, req.method(), &path)).await
                {
                    trace.route = Some(ROUTE_INTERNAL.clone());
                    return Ok(res);
                }
            }
            if crate::assets::is_reserved(&path) {
                trace.route = Some(ROUTE_INTERNAL.clone());
                return crate::assets::gateway_file(
                    req.method(),
                    req.headers(),
                    &path,
                    &state.config,
                )
                .map_err(GatewayError::Asset);
            }
            let cookies = state.config.cookie.as_ref().map(|c| {
                let arrival = Arrival {
                    tls: conn.tls,
                    trusted: state.is_trusted(conn.peer.ip()),
                    loopback: is_loopback(conn.peer.ip()),
                    headers: req.headers(),
                    host: host.as_ref(),
                };
                CookieSession {
                    name: c.name.as_str(),
                    secure: arrival.secure(),
                    own_origin: arrival.own_origin(),
                    allowed: &c.allowed_origins,
                }
            });
            if let (Some(page), Some(cookies)) = (&state.page, &cookies) {
                if let Some(target) = page.target(&path) {
                    trace.route = Some(ROUTE_LOGIN_PAGE.clone());
                    if parameters {
                        return Err(refuse_parameters());
                    }
                    // Boxed like the login: rare paths must not size every proxied request's future.
                    return Box::pin(self.login_page(state, page, target, req, conn, cookies))
                        .await;
                }
            }
            let host_str = host.as_ref().and_then(|h| h.to_str().ok());
            match state.router.route(host_str, &path) {
                Routed::Login
                | Routed::Logout
                | Routed::Jwks
                | Routed::AssertionJwks
                | Routed::NotFound
                    if parameters =>
                {
                    Err(refuse_parameters())
                }
                Routed::Login => {
                    trace.route = Some(ROUTE_LOGIN.clone());
                    let Some(login) = &state.login else {
                        return Err(GatewayError::NotFound);
                    };
                    if req.method() != http::Method::POST {
                        return Err(GatewayError::MethodNotAllowed);
                    }
                    let wants_cookie = req
                        .headers()
                        .get(&GATEWAY_SESSION)
                        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cookie"));
                    let set_cookie = match (&cookies, wants_cookie) {
                        // Refused before the login runs, so no captcha is spent on a cookie that cannot be set.
                        (Some(c), true) if !c.secure => return Err(GatewayError::InsecureCookie),
                        (Some(c), true) => Some(c.name),
                        _ => None,
                    };
                    let ip = client_ip(state, &req, conn);
                    match Box::pin(login.handle(req, ip)).await {
                        Ok(issued) => {
                            state.metrics.login("success");
                            let mut res = issued.json_response()?;
                            if let Some(v) = set_cookie.and_then(|name| {
                                session::set_cookie(
                                    name,
                                    &issued.token,
                                    issued.expires_in.as_secs(),
                                )
                            }) {
                                res.headers_mut().insert(http::header::SET_COOKIE, v);
                            }
                            Ok(res)
                        }
                        Err(e) => {
                            // The only places the causes are told apart: this log line and the metrics.
                            state.metrics.login(e.outcome());
                            tracing::info!(client = %ip, outcome = e.outcome(), reason = %e, "login refused");
                            Err(e.into())
                        }
                    }
                }
                Routed::Logout => {
                    trace.route = Some(ROUTE_LOGOUT.clone());
                    if req.method() != http::Method::POST {
                        return Err(GatewayError::MethodNotAllowed);
                    }
                    Box::pin(self.logout(state, &req, trace, cookies.as_ref())).await
                }
                Routed::Jwks => match &state.jwks {
                    Some(doc) => Ok(crate::response::json(http::StatusCode::OK, doc.to_vec())),
                    None => Err(GatewayError::NotFound),
                },
                Routed::AssertionJwks => match &state.asserter {
                    Some(a) => Ok(crate::response::json(
                        http::StatusCode::OK,
                        a.jwks().to_vec(),
                    )),
                    None => Err(GatewayError::NotFound),
                },
                Routed::NotFound => {
                    // Authenticate first so that unauthenticated callers cannot probe which routes exist.
                    identify(state, &req, cookies.as_ref())?;
                    Err(GatewayError::NotFound)
                }
                Routed::Upstream {
                    index,
                    route,
                    upstream_path,
                } => {
                    trace.route = Some(state.route_names[index].clone());
                    trace.route_index = Some(index);
                    // Before authentication: the path is refused whoever asks.
                    if parameters && !route.allow_path_parameters {
                        return Err(refuse_parameters());
                    }
                    let (identity, assertion) = if route.public {
                        (None, None)
                    } else {
                        let caller = identify(state, &req, cookies.as_ref())?;
                        if let (Via::Cookie, Some(c)) = (caller.via, &cookies) {
                            c.check(req.method(), req.headers())?;
                        }
                        // Before the cookie is removed below: the exact token, Bearer or cookie, keys the
                        // signing cache (the same token means the same identity).
                        let assertion = match &state.asserter {
                            Some(a) => a
                                .for_request(index, Some(caller.token), &caller.identity)
                                .map_err(GatewayError::Assertion)?
                                .map(|v| (a.header(), v)),
                            None => None,
                        };
                        (Some(caller.identity), assertion)
                    };
                    // The session cookie is the gateway's credential, never the backend's: gone on every route.
                    if let Some(c) = &cookies {
                        crate::protocol::cookie::remove(req.headers_mut(), c.name);
                    }
                    trace.user = identity
                        .as_ref()
                        .filter(|_| state.access_log)
                        .map(|i| i.sub.clone());
                    if route.local == Some(crate::config::LocalTarget::ExampleSpa) {
                        let rest = if route.prefix == "/" {
                            path.as_str()
                        } else {
                            path.get(route.prefix.len()..).unwrap_or("")
                        };
                        return crate::assets::example_spa(
                            req.method(),
                            req.headers(),
                            rest,
                            &state.config,
                        )
                        .map_err(GatewayError::Asset);
                    }
                    let upgrade = self.upgrade_terms(state, &req, identity.as_deref())?;
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
                    let pool = &state.pools[index];
                    let affinity = if pool.balance == crate::config::Balance::User {
                        match &identity {
                            Some(id) => forward::pool::balance::hash_bytes(id.sub.as_bytes()),
                            None => forward::pool::balance::hash_bytes(
                                client_ip(state, &req, conn).to_string().as_bytes(),
                            ),
                        }
                    } else {
                        0
                    };
                    let out = Outbound {
                        route,
                        pool,
                        affinity,
                        upstream_path: &upstream_path,
                        hop,
                        identity_cfg: &state.identity,
                        identity_names: &state.identity_names,
                        untrusted_names: &state.untrusted_names,
                        body_timeout: state.config.server.body_timeout,
                        identity: identity.as_deref(),
                        upgrade,
                        assertion,
                    };
                    let sent = Instant::now();
                    let (parts, body) = req.into_parts();
                    let res = forward::forward(parts, body, out).await;
                    let upstream = sent.elapsed();
                    trace.upstream = Some(upstream);
                    state.route_metrics[index].upstream(&state.metrics, upstream);
                    let mut res = res?;
                    if let Some(c) = &cookies {
                        crate::protocol::cookie::remove_set_cookie(res.headers_mut(), c.name);
                    }
                    Ok(res)
                }
            }
        }
    }
}

impl Gateway {
    /// Ends the presented token's session (see `auth::logout`).
    async fn logout(
        &self,
        state: &State,
        req: &Request<Incoming>,
        trace: &mut Trace,
        cookies: Option<&CookieSession<'_>>,
    ) -> Result<Response<ResBody>, GatewayError> {
        let cookie = cookies.filter(|c| c.secure).map(|c| c.name);
        let session::Authenticated {
            identity: id, via, ..
        } = session::authenticate(
            req.headers(),
            &state.verifier,
            state.max_token_bytes,
            cookie,
        )
        .map_err(LogoutError::Auth)?;
        if let (Via::Cookie, Some(c)) = (via, cookies) {
            // Another site must not be able to end the browser's session either.
            c.check(req.method(), req.headers())?;
        }
        let revocation = logout::revocation_for(&id, state.config.auth.leeway.as_secs());
        trace.user = Some(id.sub.clone()).filter(|_| state.access_log);
        self.shared
            .lasting
            .sessions
            .revoke(&revocation)
            .await
            .map_err(LogoutError::from)?;
        Ok(logout::logged_out(cookies.map(|c| c.name)))
    }

    /// The limits an upgraded connection will live under, taking the caller's per-user seat for a WebSocket
    /// upgrade; refused before anything reaches the upstream when the caller holds all their seats.
    fn upgrade_terms(
        &self,
        state: &State,
        req: &Request<Incoming>,
        identity: Option<&crate::auth::Identity>,
    ) -> Result<UpgradeTerms, GatewayError> {
        let server = &state.config.server;
        let mut terms = UpgradeTerms {
            idle_timeout: server.websocket_idle_timeout,
            expires: identity.and_then(|id| state.verifier.refused_from(id)),
            seat: None,
            revoked: None,
        };
        // The same test forwarding uses to decide whether to splice, so every spliced connection has a seat.
        if let (Some(id), true) = (identity, headers::is_upgrade(req.headers())) {
            let seat = self
                .shared
                .lasting
                .websockets
                .take(&id.sub, server.max_websockets_per_user)
                .map_err(GatewayError::WebsocketLimit)?;
            terms.seat = Some(seat);
            terms.revoked = state
                .verifier
                .revocations()
                .map(|table| Box::pin(table.until_refused(id.clone())) as Revoked);
        }
        Ok(terms)
    }
}

impl Gateway {
    /// The login page's path: the page (GET shows it, POST signs in), its logout target and its assets.
    async fn login_page(
        &self,
        state: &State,
        page: &crate::page::LoginPage,
        target: crate::page::PageTarget,
        req: Request<Incoming>,
        conn: ConnInfo,
        cookies: &CookieSession<'_>,
    ) -> Result<Response<ResBody>, GatewayError> {
        use crate::page::PageTarget;
        use http::Method;
        let method = req.method().clone();
        let read_only = method == Method::GET || method == Method::HEAD;
        match target {
            PageTarget::Page if read_only => {
                let asked = req.uri().query().and_then(|q| {
                    form_urlencoded::parse(q.as_bytes())
                        .find(|(k, _)| k == "return_to")
                        .map(|(_, v)| v.into_owned())
                });
                Ok(page.render(
                    http::StatusCode::OK,
                    page.return_to(asked.as_deref()),
                    false,
                ))
            }
            PageTarget::Page if method == Method::POST => {
                if !cookies.secure {
                    return Err(GatewayError::InsecureCookie);
                }
                // Login CSRF: another site must not sign the browser in to an account of its choosing.
                cookies.check(&method, req.headers())?;
                let Some(login) = &state.login else {
                    return Err(GatewayError::NotFound);
                };
                let ip = client_ip(state, &req, conn);
                let (result, asked) = login.handle_form(req, ip).await;
                let back = page.return_to(asked.as_deref());
                match result {
                    Ok(issued) => {
                        state.metrics.login("success");
                        Ok(page.signed_in(&issued, back))
                    }
                    Err(e) => {
                        state.metrics.login(e.outcome());
                        tracing::info!(client = %ip, outcome = e.outcome(), reason = %e, "login page refused");
                        Ok(page.failed(GatewayError::Login(e).into_response(), back))
                    }
                }
            }
            PageTarget::Page => Err(GatewayError::PageMethod("GET, HEAD, POST")),
            PageTarget::Logout if method == Method::POST => {
                cookies.check(&method, req.headers())?;
                // End the session itself, not only this browser's copy: a saved copy of the cookie (another
                // tab, a stolen value) must be dead too. No valid session: nothing to revoke, still signed out.
                let cookie = Some(cookies.name).filter(|_| cookies.secure);
                if let Ok(session) = session::authenticate(
                    req.headers(),
                    &state.verifier,
                    state.max_token_bytes,
                    cookie,
                ) {
                    let revocation = logout::revocation_for(
                        &session.identity,
                        state.config.auth.leeway.as_secs(),
                    );
                    self.shared
                        .lasting
                        .sessions
                        .revoke(&revocation)
                        .await
                        .map_err(LogoutError::from)?;
                }
                Ok(page.signed_out())
            }
            PageTarget::Logout => Err(GatewayError::PageMethod("POST")),
            asset if read_only => page.asset(asset).ok_or(GatewayError::NotFound),
            _ => Err(GatewayError::PageMethod("GET, HEAD")),
        }
    }
}

/// Who the caller is, from the Bearer header or (cookie mode, secure transport) the session cookie. A
/// browser navigation without either is sent to the login page when there is one.
fn identify<'r>(
    state: &State,
    req: &'r Request<Incoming>,
    cookies: Option<&CookieSession<'_>>,
) -> Result<session::Authenticated<'r>, GatewayError> {
    let cookie = cookies.filter(|c| c.secure).map(|c| c.name);
    session::authenticate(
        req.headers(),
        &state.verifier,
        state.max_token_bytes,
        cookie,
    )
    .map_err(|e| match &state.page {
        Some(page)
            if crate::page::is_navigation(req.method(), req.headers())
                && !req.headers().contains_key(http::header::AUTHORIZATION) =>
        {
            let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
            GatewayError::SignIn(page.sign_in_location(target))
        }
        _ => e.into(),
    })
}

/// True for loopback peers, including IPv4 ones on a dual-stack socket (`::ffff:127.0.0.1`).
fn is_loopback(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(v6.is_loopback(), |v4| v4.is_loopback()),
        v4 => v4.is_loopback(),
    }
}

/// The request id: kept from a trusted proxy when it is sane, otherwise a new one.
fn request_id(state: &State, req: &Request<Incoming>, conn: ConnInfo) -> HeaderValue {
    if let Some(v) = req.headers().get(&X_REQUEST_ID) {
        let sane = v.len() <= 128 && v.as_bytes().iter().all(|b| b.is_ascii_graphic());
        if sane && state.is_trusted(conn.peer.ip()) {
            return v.clone();
        }
    }
    crate::telemetry::new_request_id()
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
        // Userinfo has no place in a request target (RFC 9110 §4.2.4), and would become a Host upstream.
        if auth.as_str().contains('@') {
            return Err(BadRequest::BadHost);
        }
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
