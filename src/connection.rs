//! The hyper connection serving one client connection, with its protocol chosen before hyper reads a byte.
//!
//! hyper-util's auto connection tells HTTP/1 from HTTP/2 by reading the first 24 bytes itself and handing
//! them back to hyper through a rewind buffer; hyper's HTTP/1 reader then finds those bytes in its fresh
//! 8 KiB read buffer, needs room for the rest of the head and doubles the buffer to 16 KiB, which every
//! keep-alive connection keeps for its whole life. Here the protocol comes from ALPN (TLS) or from peeking
//! at the socket (plain TCP), so an HTTP/1 connection is hyper's own HTTP/1 connection with one 8 KiB read
//! buffer and no rewind layer; only a client whose first bytes are an unfinished HTTP/2 preface (or a TLS
//! client without ALPN) is left to the auto connection, as before.
//!
//! Every variant is boxed: the connection task then holds a pointer whatever the protocol, instead of the
//! size of the largest connection type (HTTP/2's), for every idle HTTP/1 connection.

use crate::body::ResBody;
use crate::config::ServerConfig;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::rt::{Sleep, Timer};
use hyper::server::conn::{http1, http2};
use hyper::service::Service;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Which protocol a connection will be served with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.x, served by hyper's HTTP/1 connection directly.
    Http1,
    /// HTTP/2 (ALPN `h2`, or the whole preface already received).
    Http2,
    /// Not known yet: hyper-util's auto connection reads the first bytes and decides.
    Detect,
}

/// The protocol a TLS client negotiated with ALPN.
pub fn from_alpn(alpn: Option<&[u8]>) -> Protocol {
    match alpn {
        Some(b"h2") => Protocol::Http2,
        Some(b"http/1.1") | Some(b"http/1.0") => Protocol::Http1,
        _ => Protocol::Detect,
    }
}

/// The protocol of a plain TCP client, from its first bytes (peeked, so hyper still reads them). Waits for
/// the first bytes to arrive; the caller bounds the wait.
pub async fn sniff(tcp: &TcpStream) -> io::Result<Protocol> {
    let mut buf = [0u8; PREFACE.len()];
    let n = tcp.peek(&mut buf).await?;
    Ok(classify(&buf[..n]))
}

/// What the first bytes of a connection say about its protocol.
fn classify(first: &[u8]) -> Protocol {
    if first.is_empty() || first != &PREFACE[..first.len()] {
        // Closed before a byte (hyper sees the end), or not the preface: HTTP/1.
        Protocol::Http1
    } else if first.len() == PREFACE.len() {
        Protocol::Http2
    } else {
        Protocol::Detect
    }
}

/// The three configured hyper builders.
pub struct Builders {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
    auto: auto::Builder<TokioExecutor>,
}

impl Builders {
    /// Builders carrying the server settings (timeouts, head size, HTTP/2 limits).
    pub fn new(cfg: &ServerConfig) -> Builders {
        let mut http1 = http1::Builder::new();
        configure_http1(&mut http1, cfg);
        let mut http2 = http2::Builder::new(TokioExecutor::new());
        configure_http2(&mut http2, cfg);
        let mut auto = auto::Builder::new(TokioExecutor::new());
        auto.http1()
            .timer(TickedTimer)
            .header_read_timeout(cfg.header_read_timeout)
            .max_buf_size(cfg.max_header_bytes)
            .keep_alive(true);
        auto.http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(cfg.h2_max_concurrent_streams)
            .max_header_list_size(max_header_list_size(cfg));
        Builders { http1, http2, auto }
    }

    /// Binds `io` and `service` into a connection speaking `protocol` (upgrades allowed on HTTP/1).
    pub fn serve<I, S>(&self, protocol: Protocol, io: I, service: S) -> Conn<'_, I, S>
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: ConnService,
    {
        let io = TokioIo::new(io);
        match protocol {
            Protocol::Http1 => Conn::Http1(Box::pin(
                self.http1.serve_connection(io, service).with_upgrades(),
            )),
            Protocol::Http2 => Conn::Http2(Box::pin(self.http2.serve_connection(io, service))),
            Protocol::Detect => Conn::Detect(Box::pin(
                self.auto.serve_connection_with_upgrades(io, service),
            )),
        }
    }
}

fn configure_http1(b: &mut http1::Builder, cfg: &ServerConfig) {
    // `max_buf_size` alone is a soft limit: one read may fill the buffer's spare capacity past it, and a
    // head that is complete by then is accepted. `max_header_size` refuses any complete head over the limit.
    b.timer(TickedTimer)
        .header_read_timeout(cfg.header_read_timeout)
        .max_buf_size(cfg.max_header_bytes)
        .max_header_size(cfg.max_header_bytes)
        .keep_alive(true);
}

/// hyper's timer for HTTP/1 connections: its sleeps are deadlines checked whenever hyper polls them, with no
/// timer registered. hyper uses it only for the header read timeout, which it makes and drops for every
/// request (with tokio's timer: an allocation, a timer-wheel insertion and a removal each time). Sound only
/// because the connection loop (`listener::serve_io`) wakes every connection at least every quarter of the
/// header read timeout and each wake-up polls hyper: the timeout fires at most that much late.
#[derive(Clone, Copy, Debug)]
struct TickedTimer;

impl Timer for TickedTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        self.sleep_until(Instant::now() + duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        Box::pin(Deadline(deadline))
    }
}

/// A moment that has come or not; polling it registers nothing (see `TickedTimer`).
struct Deadline(Instant);

impl Future for Deadline {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.0 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Sleep for Deadline {}

fn configure_http2(b: &mut http2::Builder<TokioExecutor>, cfg: &ServerConfig) {
    b.timer(TokioTimer::new())
        .max_concurrent_streams(cfg.h2_max_concurrent_streams)
        .max_header_list_size(max_header_list_size(cfg));
}

fn max_header_list_size(cfg: &ServerConfig) -> u32 {
    u32::try_from(cfg.max_header_bytes).unwrap_or(u32::MAX)
}

/// The service every connection serves: the gateway's.
///
/// Its request future is not boxed: hyper keeps an HTTP/1 connection's in-flight future in one allocation
/// made when the connection starts and reused for every request, where a boxed future costs an allocation
/// and a free of the whole request path's size per request.
pub trait ConnService:
    Service<
        Request<Incoming>,
        Response = Response<ResBody>,
        Error = Infallible,
        Future = <Self as ConnService>::Answer,
    > + Send
    + 'static
{
    /// The future answering one request.
    type Answer: Future<Output = Result<Response<ResBody>, Infallible>> + Send + 'static;
}

impl<T, F> ConnService for T
where
    T: Service<Request<Incoming>, Response = Response<ResBody>, Error = Infallible, Future = F>
        + Send
        + 'static,
    F: Future<Output = Result<Response<ResBody>, Infallible>> + Send + 'static,
{
    type Answer = F;
}

/// One client connection being served.
pub enum Conn<'a, I, S>
where
    S: ConnService,
{
    /// HTTP/1, upgrades allowed.
    Http1(Pin<Box<http1::UpgradeableConnection<TokioIo<I>, S>>>),
    /// HTTP/2.
    Http2(Pin<Box<http2::Connection<TokioIo<I>, S, TokioExecutor>>>),
    /// Either, decided by the auto connection.
    Detect(Pin<Box<auto::UpgradeableConnection<'a, TokioIo<I>, S, TokioExecutor>>>),
}

/// Why serving a connection ended early.
pub type ConnError = Box<dyn std::error::Error + Send + Sync>;

impl<I, S> Conn<'_, I, S>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: ConnService,
{
    /// Finish the requests in flight, accept no new ones, then end.
    pub fn graceful_shutdown(&mut self) {
        match self {
            Conn::Http1(c) => c.as_mut().graceful_shutdown(),
            Conn::Http2(c) => c.as_mut().graceful_shutdown(),
            Conn::Detect(c) => c.as_mut().graceful_shutdown(),
        }
    }
}

impl<I, S> Future for Conn<'_, I, S>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: ConnService,
{
    type Output = Result<(), ConnError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Conn::Http1(c) => c.as_mut().poll(cx).map_err(Into::into),
            Conn::Http2(c) => c.as_mut().poll(cx).map_err(Into::into),
            Conn::Detect(c) => c.as_mut().poll(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_bytes_choose_the_protocol() {
        assert_eq!(classify(b""), Protocol::Http1);
        assert_eq!(classify(b"GET / HTTP/1.1\r\n"), Protocol::Http1);
        assert_eq!(classify(b"P"), Protocol::Detect);
        assert_eq!(classify(b"POST / HTTP/1.1\r\n"), Protocol::Http1);
        assert_eq!(classify(b"PRI * HTTP/2.0\r\n"), Protocol::Detect);
        assert_eq!(classify(PREFACE), Protocol::Http2);
        assert_eq!(
            classify(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\r"),
            Protocol::Http1
        );
    }

    #[test]
    fn alpn_chooses_the_protocol() {
        assert_eq!(from_alpn(Some(b"h2")), Protocol::Http2);
        assert_eq!(from_alpn(Some(b"http/1.1")), Protocol::Http1);
        assert_eq!(from_alpn(None), Protocol::Detect);
        assert_eq!(from_alpn(Some(b"spdy/3")), Protocol::Detect);
    }
}
