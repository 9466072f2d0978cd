//! Every default limit, timeout and TTL, each a named constant with its unit and the reason for its value.
//!
//! `gateway.toml` overrides any of them; the README lists them with the config key that does.

use std::time::Duration;

/// Listen address: loopback, so a fresh install is never exposed by accident.
pub const LISTEN_ADDR: &str = "127.0.0.1:8080";
/// Time a client gets to send a complete request head; defeats slowloris.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head accepted (hyper's read buffer); nginx's default is 8 KiB per line, 32 KiB total.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// A keep-alive connection with no traffic for this long is closed gracefully (nginx: 75 s, HAProxy: 60 s).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Connections held at once; beyond it new connections wait in the kernel backlog.
pub const MAX_CONNECTIONS: usize = 10_000;
/// How long in-flight requests may run after SIGTERM before the process exits anyway.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// A TLS client that has not finished its handshake by then is dropped; it holds a connection slot.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP/2 streams a single connection may run at once (Envoy and Go use 100-250).
pub const H2_MAX_CONCURRENT_STREAMS: u32 = 200;
/// An upgraded (WebSocket) connection with no byte either way for this long is closed. Longer than the
/// keep-alive idle timeout because a quiet channel is normal for WebSockets; clients that want to stay open
/// longer ping (browsers' and most libraries' keep-alive pings are 20-60 s apart).
pub const WEBSOCKET_IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// Upgraded connections one token subject may hold at once: enough for many tabs and devices of one
/// person, small enough that one token cannot take a meaningful share of `MAX_CONNECTIONS`.
pub const MAX_WEBSOCKETS_PER_USER: usize = 32;
/// `Retry-After` of an upgrade refused for `MAX_WEBSOCKETS_PER_USER`: a seat frees only when one of the
/// user's own connections closes, which the gateway cannot foresee, so a few seconds keeps a reconnect loop
/// from hammering without making a user who just closed a tab wait long.
pub const WEBSOCKET_LIMIT_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Metrics and health listener: loopback only, off the public port.
pub const METRICS_LISTEN_ADDR: &str = "127.0.0.1:9090";
/// Shortest operator token (`metrics.admin_token_file`): as hard to guess as an HMAC key.
pub const MIN_ADMIN_TOKEN_BYTES: usize = 32;

/// Upstream TCP (and TLS) connect timeout: a healthy upstream on a LAN connects in milliseconds.
pub const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for the upstream to send its response head; nginx's proxy_read_timeout is 60 s.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle pooled upstream connections are closed after this (hyper-util's default).
pub const UPSTREAM_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle pooled connections kept per upstream target (`routes[].max_idle_connections`). As many as the client
/// connections a busy gateway serves at once (nginx is told the same with `keepalive 1024`): fewer, and at
/// 1,000 concurrent clients connections returning to a full pool are closed and opened again, a TCP handshake
/// on the request path. Idle ones cost the upstream a socket and the gateway a few KiB, and close after
/// `UPSTREAM_POOL_IDLE_TIMEOUT`.
pub const UPSTREAM_POOL_MAX_IDLE_PER_HOST: usize = 1024;
/// Largest accepted `routes[].max_idle_connections`.
pub const UPSTREAM_POOL_MAX_IDLE_LIMIT: usize = 65_536;

/// Clock skew tolerated on `exp`/`nbf`/`iat`: the same operator runs issuer and verifier, so keep it small.
pub const TOKEN_LEEWAY: Duration = Duration::from_secs(30);
/// Lifetime of issued tokens, as the original API documents.
pub const TOKEN_TTL: Duration = Duration::from_secs(30 * 60);
/// Longest `Authorization` value considered; real tokens are < 2 KiB, a cap keeps parsing cheap.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// HS256 keys shorter than the hash output are guessable (RFC 7518 §3.2 requires >= 256 bits).
pub const MIN_HMAC_SECRET_BYTES: usize = 32;
/// Development secret shipped in the default `gateway.toml`; the gateway warns loudly when it is in use.
pub const DEV_JWT_SECRET: &str = "DEVELOPMENT-ONLY-jwt-secret-change-me-0123456789";
/// Realm announced in `WWW-Authenticate`.
pub const REALM: &str = "gateway";

/// Identity header carrying the token's `sub`.
pub const USER_HEADER: &str = "X-Auth-User";
/// Identity header carrying the token's `name`.
pub const NAME_HEADER: &str = "X-Auth-Name";

/// Browsers cache a preflight answer this long (Chrome caps it at 2 h).
pub const CORS_MAX_AGE: Duration = Duration::from_secs(600);

/// Request-body bytes read before anything is sent upstream, so a body that breaks or stalls early never
/// reaches a legacy backend (and slow-body clients do not hold its threads); 0 streams everything.
pub const REQUEST_BUFFER_BYTES: usize = 64 * 1024;
/// Time a client gets to send that first part of its body (the whole body when it is shorter) → 408.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Revoked token ids remembered at once (~100 bytes each); a logout beyond it is refused with 503.
pub const MAX_REVOKED_TOKENS: usize = 100_000;
/// Users with a revocation watermark remembered at once.
pub const MAX_REVOKED_USERS: usize = 100_000;
/// Shortest `auth.recheck_active`: each period looks every user seen again up in the user store.
pub const MIN_RECHECK_ACTIVE: Duration = Duration::from_secs(1);
/// Appended to `login.path` to make the default logout path (`/api/Auth/logout`).
pub const LOGOUT_SUFFIX: &str = "/logout";

/// Path the gateway answers logins on, as the original API.
pub const LOGIN_PATH: &str = "/api/Auth";
/// Largest login body read; a real one is < 3 KiB (a Turnstile token is at most 2048 characters).
pub const MAX_LOGIN_BODY_BYTES: usize = 16 * 1024;
/// Time a client gets to send the whole login body; a trickled body cannot hold a login open.
pub const LOGIN_BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Cloudflare's siteverify endpoint.
pub const SITEVERIFY_URL: &str = "https://challenges.cloudflare.com/turnstile/v0/siteverify";
/// Cloudflare's widget script, which browser pages load (`/.gateway/config.json` tells them where it is).
pub const TURNSTILE_SCRIPT_URL: &str = "https://challenges.cloudflare.com/turnstile/v0/api.js";
/// A siteverify call slower than this fails closed.
pub const SITEVERIFY_TIMEOUT: Duration = Duration::from_secs(5);
/// siteverify calls in flight at once; more wait up to `SITEVERIFY_QUEUE_TIMEOUT` for a free one.
pub const SITEVERIFY_MAX_CONCURRENT: usize = 64;
/// How long a login waits for a free siteverify slot before it gets 503 + Retry-After (never a 401).
pub const SITEVERIFY_QUEUE_TIMEOUT: Duration = Duration::from_secs(2);
/// siteverify calls one client address (IPv6: its /64) may have in flight or waiting; more get 429, so a
/// junk-captcha flood from a few addresses cannot take every slot from everyone else.
pub const SITEVERIFY_MAX_PER_IP: usize = 8;
/// Least time any credential failure takes (they also wait for the slowest verification seen); 0 = only that.
pub const LOGIN_MIN_FAILURE_TIME: Duration = Duration::ZERO;
/// Longest user name looked up, in characters (ASP.NET Identity's `UserName` is `nvarchar(256)`); a longer
/// one is treated as an unknown user, with the same 401 and timing.
pub const MAX_USER_NAME_CHARS: usize = 256;
/// Logins waiting for a hashing slot; beyond it the login gets 503 rather than queueing without bound.
pub const HASH_QUEUE: usize = 256;
/// argon2id memory for new hashes: OWASP's m=19 MiB, t=2, p=1 setting.
pub const ARGON2_MEMORY_KIB: u32 = 19_456;
/// argon2id passes for new hashes (OWASP).
pub const ARGON2_ITERATIONS: u32 = 2;
/// argon2id lanes for new hashes (OWASP).
pub const ARGON2_PARALLELISM: u32 = 1;
/// Failed logins one client IP may make per `THROTTLE_IP_WINDOW` before getting 429.
pub const THROTTLE_IP_MAX_FAILURES: u32 = 30;
/// Window of the per-IP limit.
pub const THROTTLE_IP_WINDOW: Duration = Duration::from_secs(60);
/// Failed logins per user name per `THROTTLE_USER_WINDOW` (ASVS 2.2.1 allows at most 100 an hour).
pub const THROTTLE_USER_MAX_FAILURES: u32 = 10;
/// Window of the per-user limit.
pub const THROTTLE_USER_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Keys each throttle table holds at most (~100 bytes each).
pub const THROTTLE_MAX_ENTRIES: usize = 100_000;
/// Users file used when `[users]` names none.
pub const USERS_FILE: &str = "users.toml";
/// How often the users file's modification time is checked.
pub const USERS_RELOAD_INTERVAL: Duration = Duration::from_secs(2);
/// Lifetime of a signed identity assertion: long enough for one upstream request, short enough that a copy
/// leaked from a log is useless a minute later (Pomerium's assertions use the same order of magnitude).
pub const ASSERTION_TTL: Duration = Duration::from_secs(60);
/// `iss` of identity assertions when neither `identity.assertion.issuer` nor `auth.issuer` is set.
pub const ASSERTION_ISSUER: &str = "gateway";
/// Signed assertions remembered per route (a few hundred bytes each), so repeat requests skip signing.
pub const ASSERTION_CACHE_SIZE: usize = 10_000;

/// Attempts per proxied request (first + retries): one retry per other target of a typical 3-server farm.
pub const UPSTREAM_MAX_ATTEMPTS: u32 = 3;
/// Most attempts a route may configure: beyond, retries only multiply load on a failing farm.
pub const UPSTREAM_MAX_ATTEMPTS_LIMIT: u32 = 10;
/// Most targets in one route's pool (rendezvous hashing scores every target per request).
pub const UPSTREAM_MAX_TARGETS: usize = 64;
/// Requests in flight per upstream target (`routes[].max_connections_per_target`; 0 lifts the limit). The
/// backends in front of which the gateway sits run fixed worker pools (IIS/ASP.NET, Tomcat's 200 threads,
/// PHP-FPM children): sending them more concurrent requests than that only moves the queue into the backend,
/// where it can neither be timed out nor answered 503. Each upstream connection also costs the gateway about
/// 30 KiB (hyper's buffers and dispatch channel), so an unlimited fan-out at 1,000 clients holds one
/// connection per client. Upgraded (WebSocket) connections leave the count once switched.
pub const UPSTREAM_MAX_CONNECTIONS_PER_TARGET: usize = 256;
/// Longest wait for a slot on a target at `routes[].max_connections_per_target` before 503.
pub const UPSTREAM_QUEUE_TIMEOUT: Duration = Duration::from_secs(1);
/// Active health check period: a dead server is noticed within a few seconds without flooding it.
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(5);
/// Active health check timeout: a health page slower than this is as good as down.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
/// First passive ejection (doubled while the target keeps failing): about one active check period.
pub const PASSIVE_EJECT_TIME: Duration = Duration::from_secs(5);
/// Longest passive ejection: a target that keeps failing is still tried every few minutes.
pub const PASSIVE_MAX_EJECT_TIME: Duration = Duration::from_secs(300);
/// Window over which the 5xx ratio is judged, when `passive.eject_5xx` is on.
pub const PASSIVE_WINDOW: Duration = Duration::from_secs(30);

/// Key namespace in the shared store, so several gateways (or other apps) can share one Redis.
pub const SHARED_PREFIX: &str = "gateway";
/// How long a login waits for the shared store: a loopback Redis answers in well under 1 ms, so 200 ms only
/// trips on a real outage, and a login never hangs on it.
pub const SHARED_TIMEOUT: Duration = Duration::from_millis(200);
/// Full reload of the shared revocation set: pub/sub loses what is published while an instance is
/// disconnected, so this bounds how long such a gap can last.
pub const SHARED_RECONCILE_INTERVAL: Duration = Duration::from_secs(10);

/// Cookie that carries the session token when `[auth.cookie]` is on; `__Host-` makes browsers bind it to
/// this exact host (Secure, `Path=/`, no `Domain`), so a sibling subdomain cannot set or overwrite it.
pub const SESSION_COOKIE_NAME: &str = "__Host-gateway-session";
/// Path of the login page when `[login.page]` is on.
pub const LOGIN_PAGE_PATH: &str = "/login";
/// Title of the login page.
pub const LOGIN_PAGE_TITLE: &str = "Sign in";
/// Longest `return_to` the login page keeps; longer ones fall back to `/` (a real path + query is far
/// shorter, and the value travels in a query string and a `Location` header).
pub const MAX_RETURN_TO_BYTES: usize = 2048;
/// Largest logo or template file read at start-up: they are held in memory and sent on every page view.
pub const MAX_PAGE_FILE_BYTES: u64 = 512 * 1024;
