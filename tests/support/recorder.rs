//! A recording upstream for attack tests: keeps every request's head **and body**, and every byte that
//! arrived on the wire, so a test can prove what an upstream behind the gateway actually received
//! (one request or two, which framing headers, which body).
//!
//! It answers every request `200` with the body `ok` (and a Content-Length), and is also used as the
//! "attacker's server" that `jku`/`x5u` token headers point at: `count()` tells whether anything called it.

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Bytes of wire traffic kept (the rest is dropped, not an error).
const WIRE_CAP: usize = 8 * 1024 * 1024;
/// Largest body read per request.
const BODY_CAP: usize = 64 * 1024 * 1024;

/// One request as the upstream parsed it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query as received.
    pub target: String,
    pub version: http::Version,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// Set when the body could not be read to its end (peer aborted, framing error).
    pub body_error: Option<String>,
}

impl Recorded {
    /// All values of a header, lossily decoded.
    pub fn all(&self, name: &str) -> Vec<String> {
        super::header_values(&self.headers, name)
    }

    /// Framing problems an upstream parser could disagree about, or an empty list.
    ///
    /// Checks: at most one `Content-Length`, made of digits only; never both `Content-Length` and
    /// `Transfer-Encoding`; `Transfer-Encoding`, if present, exactly `chunked`; a `Content-Length` equal to
    /// the body length that arrived.
    pub fn framing_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let cl = self.all("content-length");
        let te = self.all("transfer-encoding");
        if cl.len() > 1 {
            problems.push(format!("{} Content-Length fields: {cl:?}", cl.len()));
        }
        for v in &cl {
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                problems.push(format!("Content-Length {v:?} is not 1*DIGIT"));
            }
        }
        if !cl.is_empty() && !te.is_empty() {
            problems.push(format!(
                "both Content-Length {cl:?} and Transfer-Encoding {te:?}"
            ));
        }
        let chunked_alone = matches!(te.as_slice(), [one] if one.eq_ignore_ascii_case("chunked"));
        if !te.is_empty() && !chunked_alone {
            problems.push(format!("Transfer-Encoding {te:?} is not exactly chunked"));
        }
        if let [one] = cl.as_slice() {
            if let Ok(n) = one.parse::<usize>() {
                if self.body_error.is_none() && n != self.body.len() {
                    problems.push(format!(
                        "Content-Length {n} but {} body bytes",
                        self.body.len()
                    ));
                }
            }
        }
        problems
    }
}

/// A running recording upstream; dropping it stops it.
pub struct Recorder {
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<Recorded>>>,
    wire: Arc<Mutex<Vec<u8>>>,
    connections: Arc<Mutex<usize>>,
    task: JoinHandle<()>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Recorder {
    /// Binds 127.0.0.1:0 and serves HTTP/1.1.
    pub async fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let wire: Arc<Mutex<Vec<u8>>> = Arc::default();
        let connections: Arc<Mutex<usize>> = Arc::default();
        let (l, w, c) = (log.clone(), wire.clone(), connections.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                *c.lock().unwrap() += 1;
                let (l, w) = (l.clone(), w.clone());
                tokio::spawn(async move {
                    let io = Tap {
                        inner: tcp,
                        wire: w,
                    };
                    let svc = service_fn(move |req| record(req, l.clone()));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(io), svc)
                        .await;
                });
            }
        });
        Recorder {
            addr,
            log,
            wire,
            connections,
            task,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request parsed so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }

    /// How many requests were parsed.
    pub fn count(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    /// How many TCP connections were accepted (a request that never parsed still counts here).
    pub fn connections(&self) -> usize {
        *self.connections.lock().unwrap()
    }

    /// The targets (path and query) of every request, in arrival order.
    pub fn targets(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.target.clone())
            .collect()
    }

    /// Every byte received, all connections interleaved in arrival order.
    pub fn wire(&self) -> Vec<u8> {
        self.wire.lock().unwrap().clone()
    }
}

async fn record(
    req: Request<Incoming>,
    log: Arc<Mutex<Vec<Recorded>>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let (body, body_error) = match Limited::new(body, BODY_CAP).collect().await {
        Ok(c) => (c.to_bytes().to_vec(), None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    log.lock().unwrap().push(Recorded {
        method: parts.method.to_string(),
        target: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.to_string(), |pq| pq.as_str().to_string()),
        version: parts.version,
        headers: parts.headers,
        body,
        body_error,
    });
    let mut res = Response::new(Full::new(Bytes::from_static(b"ok")));
    res.headers_mut()
        .insert("content-type", "text/plain".parse().unwrap());
    Ok(res)
}

/// A TCP stream that copies every byte it reads into a shared buffer.
struct Tap {
    inner: TcpStream,
    wire: Arc<Mutex<Vec<u8>>>,
}

impl AsyncRead for Tap {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let new = &buf.filled()[before..];
        if !new.is_empty() {
            let mut w = self.wire.lock().unwrap();
            let room = WIRE_CAP.saturating_sub(w.len());
            w.extend_from_slice(&new[..new.len().min(room)]);
        }
        r
    }
}

impl AsyncWrite for Tap {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
