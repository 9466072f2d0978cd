//! Listener: bind, accept, cap connections, serve each on its own task, and drain on shutdown.
//!
//! The accept loop never waits on a client: the TLS handshake (bounded by a timeout) and HTTP serving run on
//! the connection's task. At `max_connections` the loop stops accepting and new clients wait in the kernel
//! backlog. Each connection is closed gracefully after `idle_timeout` without traffic. On shutdown the
//! listener closes at once, every connection is asked to finish its in-flight requests, and after
//! `drain_timeout` whatever is left is dropped.

use crate::config::{Config, ServerConfig};
use crate::connection::{self, Builders, Protocol};
use crate::forward::upgrade::{RunUpgraded, UpgradeHost, UpgradedWork};
use crate::metrics::Metrics;
use crate::reload::Shared;
use crate::server::{ConnInfo, Gateway};
use crate::state::{Lasting, State};
use crate::wakeups::SideWaker;
use futures_util::FutureExt;
use hyper::service::service_fn;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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
        tracker.spawn(serve_tcp(
            tcp,
            peer,
            tls,
            Serve {
                gateway,
                builders,
                idle,
                head_timeout,
                shutdown,
                force,
                slot,
            },
        ));
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
    /// Cancelled when the drain timeout expires. Before a connection is served, the shutdown ends it first.
    force: CancellationToken,
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
        force,
        slot,
    } = serve;
    let activity = Arc::new(Activity::new());
    let io = ActivityIo {
        inner: io,
        activity: activity.clone(),
    };
    let requests = activity.clone();
    let svc = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        // Only upgrade requests carry the slot: the upgraded stream outlives this connection task.
        if req.headers().contains_key(http::header::UPGRADE) {
            req.extensions_mut().insert(UpgradeHost(slot.clone()));
        }
        let in_flight = requests.begin();
        // A combinator, not an `async` block: that would keep the request a second time beside the
        // gateway's future, in every connection's in-flight slot.
        gateway.clone().handle(req, conn).map(move |res| {
            drop(in_flight);
            Ok::<_, Infallible>(res)
        })
    });
    let mut connection = builders.serve(protocol, io, svc);
    // Made once: a fresh `cancelled()` per loop turn would join and leave the token's waiter list on every
    // wake-up of the connection (several per request).
    let cancelled = shutdown.cancelled();
    tokio::pin!(cancelled);
    let forced = force.cancelled();
    tokio::pin!(forced);
    // A connection must start a request within the head timeout: this closes HTTP/2 (and h2c preface)
    // tricklers that hyper's HTTP/1 header timeout does not see.
    let first_request = tokio::time::sleep(head_timeout);
    tokio::pin!(first_request);
    let mut closing: Option<Instant> = None;
    // When the last tick saw progress: progress is only flagged by the IO and the requests (no clock read per
    // read or write), so the idle timeout is measured to within one tick.
    let mut progressed = Instant::now();
    // The tick also drives hyper's HTTP/1 header read timeout, which is only checked when hyper is polled
    // (`connection::TickedTimer`): it must come at least every quarter of that timeout.
    let mut tick =
        tokio::time::interval((idle.min(head_timeout) / 4).max(Duration::from_millis(50)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The timers and shutdown signals are polled only when one of them woke the task, not on each of the
    // socket's wake-ups.
    let side = SideWaker::new();
    loop {
        let event = std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = Pin::new(&mut connection).poll(cx) {
                return Poll::Ready(Event::Ended(r));
            }
            let Some(mut scx) = side.due(cx) else {
                return Poll::Pending;
            };
            let ready = if forced.as_mut().poll(&mut scx).is_ready() {
                Some(Event::Forced)
            } else if closing.is_none() && cancelled.as_mut().poll(&mut scx).is_ready() {
                Some(Event::Shutdown)
            } else if !activity.started_any() && first_request.as_mut().poll(&mut scx).is_ready() {
                Some(Event::NoRequest)
            } else if tick.poll_tick(&mut scx).is_ready() {
                Some(Event::Tick)
            } else {
                None
            };
            match ready {
                Some(event) => {
                    // The others were maybe not polled, and the one that was must be polled to re-arm.
                    side.again();
                    Poll::Ready(event)
                }
                None => Poll::Pending,
            }
        })
        .await;
        match event {
            Event::Ended(r) => {
                if let Err(e) = r {
                    tracing::debug!(peer = %conn.peer, error = %e, "connection ended with an error");
                }
                return;
            }
            Event::Forced => return,
            Event::NoRequest => {
                tracing::debug!(peer = %conn.peer, "no request within the header read timeout; closing");
                return;
            }
            Event::Shutdown => {
                connection.graceful_shutdown();
                closing = Some(Instant::now());
            }
            Event::Tick => match closing {
                None => {
                    if activity.take_progress() {
                        progressed = Instant::now();
                    } else if activity.in_flight() == 0 && progressed.elapsed() >= idle {
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

/// What woke a served connection's loop.
enum Event {
    /// The connection ended, cleanly or not.
    Ended(Result<(), connection::ConnError>),
    /// The drain timeout expired.
    Forced,
    /// The gateway is shutting down: close gracefully.
    Shutdown,
    /// No request started within the head timeout.
    NoRequest,
    /// Time to check for idleness.
    Tick,
}

/// Whether a connection made progress since it was last looked at, and how many requests it is serving.
///
/// Progress is bytes written, a request starting or ending, or bytes read while a request is in flight (an
/// upload). Bytes read with no request in flight are not progress: otherwise a client trickling a request head
/// or HTTP/2 frames one byte at a time would never look idle.
struct Activity {
    progress: AtomicBool,
    in_flight: AtomicUsize,
    started: AtomicBool,
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
            progress: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            started: AtomicBool::new(false),
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
        self.progress.store(true, Ordering::Relaxed);
    }

    /// Whether there was progress since the last call.
    fn take_progress(&self) -> bool {
        self.progress.swap(false, Ordering::Relaxed)
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
