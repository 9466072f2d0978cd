//! Test upstreams on 127.0.0.1:0.
//!
//! `Upstream::echo()` records every request head it receives and answers by path:
//! - `/big/<n>`: streams n bytes of `x` in 64 KiB chunks;
//! - `/upload`: reads the whole body and answers `{"bytes": n, "sum": <byte sum>}`;
//! - `/slow/<ms>`: waits, then echoes;
//! - `/ws`: accepts a WebSocket and echoes its messages;
//! - `/status/<code>`: answers that status with an empty body;
//! - `/gateway-auth/<code>`: answers that status with `Gateway-Auth: required` (the gateway's own 401 marker)
//!   and `WWW-Authenticate: Bearer` (an ASP.NET JwtBearer-style challenge) and a short JSON body;
//! - anything else: 200 with JSON `{"method", "path", "query", "headers": {name: [values]}}`.
//!
//! Broken upstreams: `refusing()` (nothing listens), `hanging()` (accepts, never answers),
//! `garbage()` (answers bytes that are not HTTP), `reset_mid_body()` (promises 1 MB, sends 10 KB, closes),
//! `closing_idle_after(d)` (answers `ok` with keep-alive, but closes a connection idle for `d`).

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Map, Value};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// What the upstream saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub version: http::Version,
    pub headers: http::HeaderMap,
}

impl Seen {
    /// All values of a header, in order.
    pub fn all(&self, name: &str) -> Vec<String> {
        super::header_values(&self.headers, name)
    }

    /// The single value of a header.
    pub fn one(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }
}

/// A running test upstream.
pub struct Upstream {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// TCP connections accepted so far (the echo upstream counts them).
    accepted: Arc<std::sync::atomic::AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Body = BoxBody<Bytes, Infallible>;

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed()
}

impl Upstream {
    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `https://localhost:<port>`, for `echo_tls` (the name is resolved, and is in the certificate).
    pub fn https_url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    /// Requests received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The last request received.
    pub fn last(&self) -> Seen {
        self.seen()
            .last()
            .cloned()
            .expect("the upstream received a request")
    }

    /// How many requests arrived.
    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// How many TCP connections the upstream accepted.
    pub fn connections(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The echo upstream.
    pub async fn echo() -> Upstream {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let log = seen.clone();
        Self::serving(seen, move |tcp| {
            let log = log.clone();
            async move {
                let svc = service_fn(move |req| handle(req, log.clone()));
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(tcp), svc)
                    .await;
            }
        })
        .await
    }

    /// The echo upstream over HTTPS (HTTP/1.1 by ALPN) with `cert`, which a client must be told to trust.
    pub async fn echo_tls(cert: &super::tls::TestCert) -> Upstream {
        use rustls_pki_types::pem::PemObject;
        let chain: Vec<_> = rustls_pki_types::CertificateDer::pem_file_iter(&cert.cert_path)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let key = rustls_pki_types::PrivateKeyDer::from_pem_file(&cert.key_path).unwrap();
        let mut config = rustls::ServerConfig::builder_with_provider(
            rustls::crypto::ring::default_provider().into(),
        )
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let log = seen.clone();
        Self::serving(seen, move |tcp| {
            let (log, acceptor) = (log.clone(), acceptor.clone());
            async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = service_fn(move |req| handle(req, log.clone()));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            }
        })
        .await
    }

    /// An address where nothing listens.
    pub async fn refusing() -> String {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        format!("http://{addr}")
    }

    /// Accepts connections and never answers.
    pub async fn hanging() -> Upstream {
        Self::raw(|mut s| async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = s.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await
    }

    /// Answers bytes that are not HTTP.
    pub async fn garbage() -> Upstream {
        Self::raw(|mut s| async move {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"SSH-2.0-OpenSSH_9.6\r\n\x00\x01\x02garbage\r\n\r\n")
                .await;
        })
        .await
    }

    /// Sends a response head promising 1 MB, 10 KB of body, then closes.
    pub async fn reset_mid_body() -> Upstream {
        Self::raw(|mut s| async move {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1048576\r\ncontent-type: text/plain\r\n\r\n")
                .await;
            let _ = s.write_all(&[b'x'; 10 * 1024]).await;
            let _ = s.shutdown().await;
        })
        .await
    }

    /// Answers every request `200 ok` without `Connection: close`, as a keep-alive server does, and closes
    /// a connection that stays idle for `idle` (as servers with a short keep-alive timeout do).
    pub async fn closing_idle_after(idle: Duration) -> Upstream {
        Self::raw(move |mut s| async move {
            let mut buf = [0u8; 4096];
            let mut head = Vec::new();
            loop {
                match tokio::time::timeout(idle, s.read(&mut buf)).await {
                    Ok(Ok(n)) if n > 0 => head.extend_from_slice(&buf[..n]),
                    _ => return,
                }
                // The gateway forwards GETs without a body: a request ends with its head.
                while let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                    head.drain(..end + 4);
                    let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok";
                    if s.write_all(answer).await.is_err() {
                        return;
                    }
                }
            }
        })
        .await
    }

    async fn raw<F, Fut>(per_conn: F) -> Upstream
    where
        F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        Self::serving(Arc::default(), per_conn).await
    }

    /// Accepts connections on 127.0.0.1:0, counts them and runs `per_conn` on each; `seen` is what the
    /// connections record.
    async fn serving<F, Fut>(seen: Arc<Mutex<Vec<Seen>>>, per_conn: F) -> Upstream
    where
        F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted: Arc<std::sync::atomic::AtomicUsize> = Arc::default();
        let counter = accepted.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(per_conn(tcp));
            }
        });
        Upstream {
            addr,
            seen,
            accepted,
            task,
        }
    }
}

async fn handle(
    mut req: Request<Incoming>,
    log: Arc<Mutex<Vec<Seen>>>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    log.lock().unwrap().push(Seen {
        method: req.method().to_string(),
        path: path.clone(),
        query: req.uri().query().map(str::to_string),
        version: req.version(),
        headers: req.headers().clone(),
    });
    if path == "/ws" {
        return Ok(websocket(&mut req));
    }
    if let Some(n) = path
        .strip_prefix("/big/")
        .and_then(|n| n.parse::<usize>().ok())
    {
        let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
        let stream = futures_util::stream::iter((0..n.div_ceil(64 * 1024)).map(move |i| {
            let len = (n - i * 64 * 1024).min(64 * 1024);
            Ok::<_, Infallible>(Frame::data(chunk.slice(..len)))
        }));
        let mut res = Response::new(BodyExt::boxed(StreamBody::new(stream)));
        res.headers_mut().insert("content-length", n.into());
        return Ok(res);
    }
    if path == "/upload" {
        let mut body = req.into_body();
        let (mut bytes, mut sum) = (0u64, 0u64);
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { break };
            if let Some(d) = frame.data_ref() {
                bytes += d.len() as u64;
                sum = d.iter().fold(sum, |s, b| s.wrapping_add(*b as u64));
            }
        }
        return Ok(Response::new(full(
            json!({"bytes": bytes, "sum": sum}).to_string(),
        )));
    }
    if let Some(code) = path
        .strip_prefix("/status/")
        .and_then(|c| c.parse::<u16>().ok())
    {
        let mut res = Response::new(full(Bytes::new()));
        *res.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
        return Ok(res);
    }
    if let Some(code) = path
        .strip_prefix("/gateway-auth/")
        .and_then(|c| c.parse::<u16>().ok())
    {
        let mut res = Response::new(full(json!({"from": "upstream"}).to_string()));
        *res.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
        let h = res.headers_mut();
        h.insert("gateway-auth", http::HeaderValue::from_static("required"));
        h.insert(
            "www-authenticate",
            http::HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
        h.insert(
            "content-type",
            http::HeaderValue::from_static("application/json"),
        );
        return Ok(res);
    }
    if let Some(ms) = path
        .strip_prefix("/slow/")
        .and_then(|m| m.parse::<u64>().ok())
    {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let mut headers = Map::new();
    for name in req.headers().keys() {
        let values: Vec<Value> = req
            .headers()
            .get_all(name)
            .iter()
            .map(|v| Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        headers.insert(name.to_string(), Value::Array(values));
    }
    let body = json!({
        "method": req.method().as_str(),
        "path": path,
        "query": req.uri().query(),
        "headers": headers,
    });
    let mut res = Response::new(full(body.to_string()));
    res.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    // Hop-by-hop headers an upstream might send; the gateway must not pass them on.
    res.headers_mut()
        .insert("connection", "x-upstream-private".parse().unwrap());
    res.headers_mut()
        .insert("x-upstream-private", "secret".parse().unwrap());
    res.headers_mut()
        .insert("keep-alive", "timeout=5".parse().unwrap());
    Ok(res)
}

fn websocket(req: &mut Request<Incoming>) -> Response<Body> {
    let key = req.headers().get("sec-websocket-key").cloned();
    let Some(key) = key else {
        let mut r = Response::new(full(Bytes::new()));
        *r.status_mut() = StatusCode::BAD_REQUEST;
        return r;
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            tokio_tungstenite::tungstenite::protocol::Role::Server,
            None,
        )
        .await;
        let (mut tx, mut rx) = ws.split();
        while let Some(Ok(msg)) = rx.next().await {
            if msg.is_close() {
                break;
            }
            if msg.is_text() || msg.is_binary() {
                let _ = tx.send(msg).await;
            }
        }
    });
    let mut res = Response::new(full(Bytes::new()));
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = res.headers_mut();
    h.insert("connection", "upgrade".parse().unwrap());
    h.insert("upgrade", "websocket".parse().unwrap());
    h.insert("sec-websocket-accept", accept.parse().unwrap());
    res
}
