//! Listener: bind, accept, cap connections, serve each on its own task, and drain on shutdown.
//!
//! The accept loop never waits on a client: the TLS handshake (bounded by a timeout) and HTTP serving run on
//! the connection's task. At `max_connections` the loop stops accepting and new clients wait in the kernel
//! backlog. Each connection is closed gracefully after `idle_timeout` without traffic. On shutdown the
//! listener closes at once, every connection is asked to finish its in-flight requests, and after
//! `drain_timeout` whatever is left is dropped.

use crate::config::{Config, ServerConfig};
use crate::connection::{self, Builders, Protocol, RequestFuture};
use crate::forward::upgrade::{RunUpgraded, UpgradeHost, UpgradedWork};
use crate::metrics::Metrics;
use crate::reload::Shared;
use crate::server::{ConnInfo, Gateway};
use crate::state::{Lasting, State};
use hyper::service::service_fn;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The listen address could not be bound.
    #[error("server.listen: cannot bind {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    /// The metrics address could not be bound.
    #[error("metrics.listen: cannot bind {addr}: {source}")]
    BindMetrics { addr: SocketAddr, source: io::Error },
    /// Runtime state (TLS files, upstream clients, login) could not be built.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// Development settings on a non-loopback address.
    #[error("{0}")]
    Exposed(String),
}

/// A running gateway.
pub struct Running {
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
    /// The bound metrics/health address, when enabled.
    pub metrics_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    done: tokio::task::JoinHandle<()>,
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Starts a graceful shutdown without waiting for it.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Waits until the gateway has stopped (after `shutdown`, once drained or after the drain timeout).
    pub async fn wait(mut self) {
        let _ = (&mut self.done).await;
        for task in &self.background {
            task.abort();
        }
    }

    /// Shuts down and waits.
    pub async fn stop(self) {
        self.shutdown();
        self.wait().await;
    }

    /// Re-reads the configuration and users files now (as SIGHUP does); the old copies stay on error.
    pub fn reload(&self) -> Result<(), String> {
        crate::reload::reload_everything(&self.shared)
    }

    /// The process metrics.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.shared.lasting.metrics.clone()
    }
}

impl Drop for Running {
    /// A gateway dropped without `stop` still stops: no accept loop or watcher outlives its handle.
    fn drop(&mut self) {
        self.shutdown.cancel();
        for task in &self.background {
            task.abort();
        }
    }
}

/// Binds the listeners and serves in the background.
pub async fn spawn(config: Config) -> Result<Running, StartError> {
    let lasting = Lasting::new(&config)?;
    let state = Arc::new(State::new(&config, &lasting, None)?);
    crate::exposure::check(&config, &state).map_err(StartError::Exposed)?;
    let listener = TcpListener::bind(config.server.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.server.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.server.listen,
        source,
    })?;
    let shared = Arc::new(Shared::new(state, lasting, config.source.clone()));
    let shutdown = CancellationToken::new();
    let mut background = Vec::new();
    let metrics_addr = match config.metrics.listen {
        None => None,
        Some(at) => {
            let l = TcpListener::bind(at)
                .await
                .map_err(|source| StartError::BindMetrics { addr: at, source })?;
            let bound = l
                .local_addr()
                .map_err(|source| StartError::BindMetrics { addr: at, source })?;
            background.push(tokio::spawn(crate::health::serve(l, shared.clone())));
            Some(bound)
        }
    };
    background.push(tokio::spawn(crate::reload::watch(
        shared.clone(),
        config.users.reload_interval,
    )));
    background.push(tokio::spawn(crate::auth::sessions::sweep(
        shared.lasting.sessions.clone(),
    )));
    if let Some(remote) = shared.lasting.sessions.remote() {
        let current = Arc::downgrade(&shared);
        background.push(tokio::spawn(remote.clone().follow(
            shared.lasting.sessions.table().clone(),
            move || {
                current
                    .upgrade()
                    .and_then(|s| {
                        s.current()
                            .config
                            .shared
                            .as_ref()
                            .map(|c| c.reconcile_interval)
                    })
                    .unwrap_or(crate::defaults::SHARED_RECONCILE_INTERVAL)
            },
        )));
    }
    let current = Arc::downgrade(&shared);
    background.push(tokio::spawn(crate::auth::recheck::run(
        shared.lasting.sessions.clone(),
        move || match current.upgrade() {
            Some(shared) => {
                let state = shared.current();
                (
                    state.login.as_ref().map(|l| l.store().clone()),
                    state.config.auth.sessions.recheck_active,
                )
            }
            None => (None, None),
        },
    )));
    let done = tokio::spawn(accept_loop(
        listener,
        shared.clone(),
        config.server,
        shutdown.clone(),
    ));
    Ok(Running {
        addr,
        metrics_addr,
        shared,
        shutdown,
        done,
        background,
    })
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    cfg: ServerConfig,
    shutdown: CancellationToken,
) {
    let gateway = Gateway::new(shared.clone());
    let handshake_timeout = cfg.tls.as_ref().map(|t| t.handshake_timeout);
    let builders = Arc::new(Builders::new(&cfg));
    let slots = Arc::new(Semaphore::new(cfg.max_connections));
    let tracker = TaskTracker::new();
    // Cancelled when the drain timeout expires: every connection still open is then dropped.
    let force = CancellationToken::new();
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = shutdown.cancelled() => break,
        };
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors or a transient error: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let _ = tcp.set_nodelay(true);
        let gateway = gateway.clone();
        let builders = builders.clone();
        // The acceptor of the current config, so a renewed certificate serves new connections.
        let tls = match (shared.current().tls.clone(), handshake_timeout) {
            (Some(acceptor), Some(t)) => Some((acceptor, t)),
            _ => None,
        };
        let slot = Arc::new(ConnSlot {
            _permit: permit,
            _open: OpenConnection::new(&shared.lasting.metrics),
            tracker: tracker.clone(),
            force: force.clone(),
        });
        let shutdown = shutdown.clone();
        let idle = cfg.idle_timeout;
        let head_timeout = cfg.header_read_timeout;
        let force = force.clone();
        tracker.spawn(async move {
            tokio::select! {
                _ = serve_tcp(tcp, peer, tls, Serve { gateway, builders, idle, head_timeout, shutdown, slot }) => {}
                _ = force.cancelled() => {}
            }
        });
    }
    drop(listener);
    tracker.close();
    if tokio::time::timeout(cfg.drain_timeout, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            remaining = tracker.len(),
            "drain timeout reached; dropping remaining connections"
        );
        // Without this the tasks would outlive `Running::wait` and keep serving (the process exit hid it).
        force.cancel();
        tracker.wait().await;
    }
}

/// What serving one connection needs besides the socket.
struct Serve {
    gateway: Gateway,
    builders: Arc<Builders>,
    idle: Duration,
    head_timeout: Duration,
    shutdown: CancellationToken,
    slot: Arc<ConnSlot>,
}

async fn serve_tcp(
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<(TlsAcceptor, Duration)>,
    serve: Serve,
) {
    match tls {
        None => {
            // The first bytes say HTTP/1 or HTTP/2; a client that sends none within the head timeout (or the
            // idle timeout, if shorter) is closed, as one that sends no request would be.
            let wait = serve.head_timeout.min(serve.idle);
            let protocol = tokio::select! {
                r = tokio::time::timeout(wait, connection::sniff(&tcp)) => match r {
                    Ok(Ok(p)) => p,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "connection failed before its first request");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "no request within the header read timeout; closing");
                        return;
                    }
                },
                _ = serve.shutdown.cancelled() => return,
            };
            serve_io(tcp, protocol, ConnInfo { peer, tls: false }, serve).await
        }
        // Boxed: the TLS handshake and stream are far larger than a plain connection's state, and would
        // otherwise size every connection task.
        Some((acceptor, handshake_timeout)) => {
            Box::pin(serve_tls(tcp, peer, acceptor, handshake_timeout, serve)).await
        }
    }
}

async fn serve_tls(
    tcp: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    handshake_timeout: Duration,
    serve: Serve,
) {
    let stream = tokio::select! {
        r = tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)) => match r {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        },
        _ = serve.shutdown.cancelled() => return,
    };
    let protocol = connection::from_alpn(stream.get_ref().1.alpn_protocol());
    serve_io(stream, protocol, ConnInfo { peer, tls: true }, serve).await
}

async fn serve_io<I>(io: I, protocol: Protocol, conn: ConnInfo, serve: Serve)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Serve {
        gateway,
        builders,
        idle,
        head_timeout,
        shutdown,
        slot,
    } = serve;
    let activity = Arc::new(Activity::new());
    let io = ActivityIo {
        inner: io,
        activity: activity.clone(),
    };
    let requests = activity.clone();
    let svc = service_fn(
        move |mut req: hyper::Request<hyper::body::Incoming>| -> RequestFuture {
            // Only upgrade requests carry the slot: the upgraded stream outlives this connection task.
            if req.headers().contains_key(http::header::UPGRADE) {
                req.extensions_mut().insert(UpgradeHost(slot.clone()));
            }
            let gateway = gateway.clone();
            let in_flight = requests.begin();
            Box::pin(async move {
                let res = gateway.handle(req, conn).await;
                drop(in_flight);
                Ok::<_, Infallible>(res)
            })
        },
    );
    let mut connection = builders.serve(protocol, io, svc);
    // Made once: a fresh `cancelled()` per loop turn would join and leave the token's waiter list on every
    // wake-up of the connection (several per request).
    let cancelled = shutdown.cancelled();
    tokio::pin!(cancelled);
    // A connection must start a request within the head timeout: this closes HTTP/2 (and h2c preface)
    // tricklers that hyper's HTTP/1 header timeout does not see.
    let first_request = tokio::time::sleep(head_timeout);
    tokio::pin!(first_request);
    let mut closing: Option<Instant> = None;
    let mut tick =
        tokio::time::interval((idle.min(head_timeout) / 4).max(Duration::from_millis(50)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            r = &mut connection => {
                if let Err(e) = r {
                    tracing::debug!(peer = %conn.peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = &mut first_request, if !activity.started_any() => {
                tracing::debug!(peer = %conn.peer, "no request within the header read timeout; closing");
                return;
            }
            _ = &mut cancelled, if closing.is_none() => {
                connection.graceful_shutdown();
                closing = Some(Instant::now());
            }
            _ = tick.tick() => match closing {
                None => {
                    if activity.in_flight() == 0 && activity.idle_for() >= idle {
                        connection.graceful_shutdown();
                        closing = Some(Instant::now());
                    }
                }
                // A graceful close waits for in-flight requests; a client that is in none and still does
                // not let go (half-sent HTTP/2 frames) is dropped.
                Some(since) => {
                    if activity.in_flight() == 0 && since.elapsed() >= head_timeout {
                        tracing::debug!(peer = %conn.peer, "idle connection did not close gracefully; dropping it");
                        return;
                    }
                }
            },
        }
    }
}

/// When a connection last made progress, and how many requests it is serving.
///
/// Progress is bytes written, a request starting or ending, or bytes read while a request is in flight (an
/// upload). Bytes read with no request in flight are not progress: otherwise a client trickling a request head
/// or HTTP/2 frames one byte at a time would never look idle.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
    in_flight: std::sync::atomic::AtomicUsize,
    started: std::sync::atomic::AtomicBool,
}

/// Marks a request in flight until dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: std::sync::atomic::AtomicUsize::new(0),
            started: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.started.store(true, Ordering::Relaxed);
        self.touch();
        InFlight(self.clone())
    }

    fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    fn started_any(&self) -> bool {
        self.started.load(Ordering::Relaxed)
    }

    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let now = self.start.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// An IO wrapper that records when bytes last moved, for the idle timeout.
struct ActivityIo<I> {
    inner: I,
    activity: Arc<Activity>,
}

impl<I: AsyncRead + Unpin> AsyncRead for ActivityIo<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before && self.activity.in_flight() > 0 {
            self.activity.touch();
        }
        r
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for ActivityIo<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A client connection's hold on the listener: its `max_connections` slot, its place in the open-connections
/// gauge, and the drain machinery. An upgraded (WebSocket) stream keeps it after the HTTP connection ends, so
/// upgrades count against the cap and are drained and force-closed like any connection.
pub struct ConnSlot {
    _permit: tokio::sync::OwnedSemaphorePermit,
    _open: OpenConnection,
    tracker: TaskTracker,
    force: CancellationToken,
}

impl RunUpgraded for ConnSlot {
    /// Runs an upgraded stream's copy loop under this slot, until it ends or the drain timeout forces it.
    fn run_upgraded(self: Arc<Self>, work: UpgradedWork) {
        let tracker = self.tracker.clone();
        tracker.spawn(async move {
            tokio::select! {
                _ = work => {}
                _ = self.force.cancelled() => {}
            }
        });
    }
}

/// Counts a connection in `gateway_open_connections` for as long as it lives.
struct OpenConnection(prometheus_client::metrics::gauge::Gauge);

impl OpenConnection {
    fn new(metrics: &Metrics) -> OpenConnection {
        metrics.open_connections.inc();
        OpenConnection(metrics.open_connections.clone())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}
