//! A target's kept-alive upstream connections: hyper's connection-level HTTP/1.1 client, one sender per
//! connection, idle senders reused last-in-first-out and taken back (`ConnectionHome`) when a response body
//! has been read to its end.
//!
//! Why not hyper-util's pooled client: it hashes a `(scheme, authority)` key into a shared map on every
//! checkout and check-in, races each checkout against a connect, and spawns a task per request that waits
//! for the connection to become idle again. A target has one authority and the response body knows when it
//! ends, so none of that is needed (see docs/performance.md).

use crate::body::{ClientBody, ConnectionHome, Lent};
use crate::config::{RouteConfig, Upstream};
use crate::forward::connect::{ClientError, ConnectError, Connector};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// Why a request got no response head from the target.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No connection could be made.
    #[error("{0}")]
    Connect(#[from] ConnectError),
    /// The connection broke, or the upstream answered something that is not HTTP/1.
    #[error("{0}")]
    Protocol(String),
}

/// The kept-alive connections to one target.
pub struct Connections {
    upstream: Upstream,
    connector: Connector,
    /// Idle connections, the most recently used last.
    idle: Mutex<Vec<Idle>>,
    max_idle: usize,
    idle_timeout: Duration,
    /// A task closes connections idle longer than `idle_timeout` while any are kept.
    reaping: AtomicBool,
}

struct Idle {
    sender: SendRequest<ClientBody>,
    since: Instant,
}

impl Connections {
    /// The pool of `upstream`, a target of `route` (its connect timeout, TLS roots and idle limits).
    pub fn new(route: &RouteConfig, upstream: &Upstream) -> Result<Arc<Connections>, ClientError> {
        Ok(Arc::new(Connections {
            upstream: upstream.clone(),
            connector: Connector::new(route)?,
            idle: Mutex::new(Vec::new()),
            max_idle: route.max_idle_connections,
            idle_timeout: crate::defaults::UPSTREAM_POOL_IDLE_TIMEOUT,
            reaping: AtomicBool::new(false),
        }))
    }

    /// Sends `req` (origin-form URI, `Host` set) on an idle connection or a new one. A request that a kept
    /// connection closed before a byte of it was written is sent again on another: that is safe for any
    /// method, and it is how a keep-alive race with the upstream's own idle timeout must end.
    ///
    /// (Not an `async fn`, which would hold the request twice: see `forward::forward`.)
    #[allow(clippy::manual_async_fn)] // an async fn keeps its arguments twice
    pub fn send(
        self: &Arc<Self>,
        mut req: http::Request<ClientBody>,
    ) -> impl std::future::Future<Output = Result<(http::Response<Incoming>, Lent), SendError>> + '_
    {
        async move {
            loop {
                let (mut sender, reused) = match self.take() {
                    Some(sender) => (sender, true),
                    // Boxed: connecting (resolution, TCP, TLS) is rare on a kept-alive pool, and inline its state
                    // would enlarge, and be copied with, every request's future.
                    None => (Box::pin(self.open()).await?, false),
                };
                // A sender given back as its body ended may not have seen its connection turn idle yet.
                if reused && !sender.is_ready() && sender.ready().await.is_err() {
                    continue;
                }
                match sender.try_send_request(req).await {
                    Ok(res) => return Ok((res, Lent::new(sender, self.clone()))),
                    Err(mut e) => match e.take_message() {
                        Some(back) if reused => req = back,
                        _ => return Err(SendError::Protocol(chain(&e.into_error()))),
                    },
                }
            }
        }
    }

    /// The most recently used idle connection that is still open.
    fn take(&self) -> Option<SendRequest<ClientBody>> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(i) = idle.pop() {
            if !i.sender.is_closed() {
                return Some(i.sender);
            }
        }
        None
    }

    /// A new connection, driven by its own task (upgrades included, for WebSocket).
    async fn open(&self) -> Result<SendRequest<ClientBody>, SendError> {
        let stream = self.connector.connect(&self.upstream).await?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| SendError::Protocol(chain(&e)))?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }
}

impl ConnectionHome for Connections {
    fn take_back(self: Arc<Self>, sender: SendRequest<ClientBody>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() >= self.max_idle {
            return;
        }
        idle.push(Idle {
            sender,
            since: Instant::now(),
        });
        drop(idle);
        if !self.reaping.swap(true, Ordering::AcqRel) {
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn(reap(Arc::downgrade(&self)));
                }
                Err(_) => self.reaping.store(false, Ordering::Release),
            }
        }
    }
}

/// Closes connections idle longer than the pool's idle timeout (and forgets closed ones) until none are
/// kept or the pool is gone (its route was reloaded away).
async fn reap(pool: Weak<Connections>) {
    let every = match pool.upgrade() {
        Some(p) => (p.idle_timeout / 4).max(Duration::from_millis(250)),
        None => return,
    };
    loop {
        tokio::time::sleep(every).await;
        let Some(p) = pool.upgrade() else { return };
        let mut idle = p.idle.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        idle.retain(|i| !i.sender.is_closed() && now.duration_since(i.since) < p.idle_timeout);
        if idle.is_empty() {
            p.reaping.store(false, Ordering::Release);
            return;
        }
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
