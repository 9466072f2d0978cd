//! A fake Cloudflare Turnstile siteverify endpoint on 127.0.0.1, so tests can
//! drive the gateway's captcha path without the network. It follows the
//! documented siteverify behaviour (test secrets, dummy token, single-use
//! tokens, idempotency keys, error codes) and can be switched at runtime into
//! failure modes (slow, bad status, garbage, one `internal-error`, one
//! dropped connection).

// Each integration-test binary compiles this module on its own and uses only
// part of it; unused helpers must not fail `clippy -D warnings`.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// Documented test secret that always passes (with the dummy token).
pub const PASS_SECRET: &str = "1x0000000000000000000000000000000AA";
/// Documented test secret that always fails with `invalid-input-response`.
pub const FAIL_SECRET: &str = "2x0000000000000000000000000000000AA";
/// Documented test secret that always fails with `timeout-or-duplicate`.
pub const SPENT_SECRET: &str = "3x0000000000000000000000000000000AA";
/// The token Cloudflare's test sitekeys emit; test secrets accept only it.
pub const DUMMY_TOKEN: &str = "XXXX.DUMMY.TOKEN.XXXX";
/// Path the fake serves, mirroring the real endpoint.
pub const SITEVERIFY_PATH: &str = "/turnstile/v0/siteverify";

const MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// How the fake answers; switch with [`FakeTurnstile::set_mode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Answer like Cloudflare does (the default).
    Cloudflare,
    /// Sleep this long, then answer like Cloudflare.
    Slow(Duration),
    /// Answer this HTTP status with an empty body (3xx also get `Location` to itself).
    Status(u16),
    /// Answer 200 with a body that is not JSON.
    Garbage,
    /// Answer `internal-error` once, then behave like `Cloudflare`.
    InternalErrorOnce,
    /// Close the connection without answering once, then behave like `Cloudflare`.
    HangUpOnce,
}

/// Service error that makes hyper close the connection without a response.
#[derive(Debug)]
struct HangUp;

impl std::fmt::Display for HangUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fake turnstile hung up on purpose")
    }
}

impl std::error::Error for HangUp {}

struct State {
    mode: Mode,
    hostname: String,
    action: String,
    valid_tokens: HashSet<String>,
    // token -> idempotency key of its first redemption, so a retry with that
    // key gets the same verdict while a plain replay is refused.
    redeemed: HashMap<String, Option<String>>,
    requests: Vec<Value>,
    calls: usize,
}

struct Shared(Mutex<State>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking handler must not hide every later assertion behind a
        // poison error.
        self.0.lock().unwrap_or_else(|poison| poison.into_inner())
    }
}

/// A running fake siteverify server; dropping it stops the server.
pub struct FakeTurnstile {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for FakeTurnstile {
    fn drop(&mut self) {
        // Aborting the accept task also drops its JoinSet, which aborts every
        // open connection, so pooled keep-alive connections die too.
        self.task.abort();
    }
}

impl FakeTurnstile {
    /// Binds 127.0.0.1:0 and starts serving in `Mode::Cloudflare`.
    pub async fn start() -> FakeTurnstile {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake turnstile");
        let addr = listener.local_addr().expect("fake turnstile addr");
        let shared = Arc::new(Shared(Mutex::new(State {
            mode: Mode::Cloudflare,
            hostname: "localhost".to_owned(),
            action: "login".to_owned(),
            valid_tokens: HashSet::new(),
            redeemed: HashMap::new(),
            requests: Vec::new(),
            calls: 0,
        })));
        let task = tokio::spawn(serve(listener, Arc::clone(&shared)));
        FakeTurnstile { addr, shared, task }
    }

    /// Full siteverify URL to configure the client under test with.
    pub fn url(&self) -> String {
        format!("http://{}{}", self.addr, SITEVERIFY_PATH)
    }

    /// Socket address the fake listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Number of HTTP requests received so far (any path or method).
    pub fn calls(&self) -> usize {
        self.shared.lock().calls
    }

    /// Every request body received so far, JSON or form, as a JSON value.
    pub fn requests(&self) -> Vec<Value> {
        self.shared.lock().requests.clone()
    }

    /// Switches how subsequent requests are answered.
    pub fn set_mode(&self, mode: Mode) {
        self.shared.lock().mode = mode;
    }

    /// Makes `token` pass once with any `1x` secret (single-use, like a real token).
    pub fn add_valid_token(&self, token: impl Into<String>) {
        self.shared.lock().valid_tokens.insert(token.into());
    }

    /// Hostname reported in success replies (default `localhost`).
    pub fn set_hostname(&self, hostname: impl Into<String>) {
        self.shared.lock().hostname = hostname.into();
    }

    /// Action reported in success replies (default `login`).
    pub fn set_action(&self, action: impl Into<String>) {
        self.shared.lock().action = action.into();
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let shared = Arc::clone(&shared);
                    connections.spawn(async move {
                        let service = service_fn(move |req| handle(Arc::clone(&shared), req));
                        // Client hang-ups mid-request are expected (timeout tests).
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
                // Typically fd exhaustion; back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, HangUp> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let raw = match Limited::new(req.into_body(), MAX_REQUEST_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Ok(empty(StatusCode::PAYLOAD_TOO_LARGE)),
    };
    let body = parse_body(&content_type, &raw);

    let mode = {
        let mut st = shared.lock();
        st.calls += 1;
        st.requests.push(match &body {
            Some(map) => Value::Object(map.clone()),
            None => Value::String(String::from_utf8_lossy(&raw).into_owned()),
        });
        let mode = st.mode.clone();
        if matches!(mode, Mode::InternalErrorOnce | Mode::HangUpOnce) {
            st.mode = Mode::Cloudflare;
        }
        mode
    };

    if path != SITEVERIFY_PATH {
        return Ok(empty(StatusCode::NOT_FOUND));
    }
    if method != Method::POST {
        return Ok(empty(StatusCode::METHOD_NOT_ALLOWED));
    }
    let reply = match mode {
        Mode::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = empty(status);
            if status.is_redirection() {
                // Points back at itself, so a client that follows redirects
                // loops and errors instead of quietly getting a verdict.
                response.headers_mut().insert(
                    header::LOCATION,
                    header::HeaderValue::from_static(SITEVERIFY_PATH),
                );
            }
            return Ok(response);
        }
        Mode::Garbage => {
            return Ok(Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "text/html")
                .body(Full::new(Bytes::from_static(
                    b"<html><body>502 Bad Gateway</body></html>",
                )))
                .expect("static response"))
        }
        Mode::InternalErrorOnce => failure(&["internal-error"]),
        Mode::HangUpOnce => return Err(HangUp),
        Mode::Slow(delay) => {
            tokio::time::sleep(delay).await;
            cloudflare_verdict(&mut shared.lock(), body.as_ref())
        }
        Mode::Cloudflare => cloudflare_verdict(&mut shared.lock(), body.as_ref()),
    };
    let status = if body.is_some() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    Ok(json_response(status, &reply))
}

fn cloudflare_verdict(st: &mut State, body: Option<&Map<String, Value>>) -> Value {
    let Some(body) = body else {
        return failure(&["bad-request"]);
    };
    let secret = str_field(body, "secret");
    let token = str_field(body, "response");
    let (secret, token) = match (secret, token) {
        (Some(secret), Some(token)) => (secret, token),
        (secret, token) => {
            let mut codes = Vec::new();
            if secret.is_none() {
                codes.push("missing-input-secret");
            }
            if token.is_none() {
                codes.push("missing-input-response");
            }
            return failure(&codes);
        }
    };
    let key = str_field(body, "idempotency_key").map(str::to_owned);

    match secret {
        FAIL_SECRET => failure(&["invalid-input-response"]),
        SPENT_SECRET => failure(&["timeout-or-duplicate"]),
        s if s.starts_with("1x") => {
            if st.valid_tokens.contains(token) {
                match st.redeemed.get(token) {
                    None => {
                        st.redeemed.insert(token.to_owned(), key);
                        success(st)
                    }
                    Some(Some(first_key)) if key.as_ref() == Some(first_key) => success(st),
                    Some(_) => failure(&["timeout-or-duplicate"]),
                }
            } else if token == DUMMY_TOKEN {
                success(st)
            } else {
                failure(&["invalid-input-response"])
            }
        }
        _ => failure(&["invalid-input-secret"]),
    }
}

fn str_field<'a>(body: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    body.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn success(st: &State) -> Value {
    json!({
        "success": true,
        "challenge_ts": now_iso8601(),
        "hostname": st.hostname,
        "error-codes": [],
        "action": st.action,
        "cdata": "",
        "metadata": { "interactive": false },
    })
}

fn failure(codes: &[&str]) -> Value {
    json!({ "success": false, "error-codes": codes, "messages": [] })
}

fn empty(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

fn json_response(status: StatusCode, value: &Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(value.to_string())))
        .expect("static response parts")
}

/// Siteverify accepts JSON and form bodies; an unlabelled body is tried as both.
fn parse_body(content_type: &str, raw: &[u8]) -> Option<Map<String, Value>> {
    let as_json = || match serde_json::from_slice::<Value>(raw) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    };
    if content_type.starts_with("application/x-www-form-urlencoded") {
        parse_form(raw)
    } else if content_type.contains("json") {
        as_json()
    } else {
        as_json().or_else(|| parse_form(raw))
    }
}

fn parse_form(raw: &[u8]) -> Option<Map<String, Value>> {
    let text = std::str::from_utf8(raw).ok()?;
    let mut map = Map::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        map.insert(percent_decode(name)?, Value::String(percent_decode(value)?));
    }
    Some(map)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// UTC timestamp in Cloudflare's `challenge_ts` shape, without a date crate.
fn now_iso8601() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.000Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}
