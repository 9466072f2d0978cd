//! Body types shared by every stage: the size-limited collect for bodies the gateway reads itself, and the
//! two wrappers for streamed bodies: `ClientBody` (a request body on its way upstream, remembering whether the
//! *client* broke it, so that is answered 400 and not blamed on the upstream) and `UpstreamBody` (a response
//! body on its way to the client, failed after `idle` without a frame so a stalled upstream cannot hold two
//! connections forever).

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// Response body: a streamed upstream body, or a small body the gateway made.
pub type ResBody = Either<UpstreamBody, Full<Bytes>>;

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Longer than the limit.
    #[error("body too large")]
    TooLarge,
    /// The whole body did not arrive within the time allowed (slow-body clients).
    #[error("body read timed out")]
    Timeout,
    /// The client stopped sending or the stream broke.
    #[error("body read failed: {0}")]
    Read(String),
}

/// Reads a whole body within `deadline`, refusing it as soon as it exceeds `limit` bytes (never buffers more).
pub async fn collect_limited(
    body: Incoming,
    limit: usize,
    deadline: Duration,
) -> Result<Bytes, BodyError> {
    match tokio::time::timeout(deadline, Limited::new(body, limit).collect()).await {
        Err(_) => Err(BodyError::Timeout),
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Ok(Err(e)) => Err(BodyError::Read(e.to_string())),
    }
}

/// The first bytes of a request body, read before anything is sent upstream.
#[derive(Debug, Default)]
pub struct Prefix {
    /// The data read so far.
    pub data: Bytes,
    /// The body's trailers, when they arrived within the prefix.
    pub trailers: Option<http::HeaderMap>,
    /// True when the whole body (and its trailers, if any) is in the prefix.
    pub complete: bool,
}

/// Reads `body` until it ends or at least `limit` bytes have arrived. A body that breaks on the way is an
/// error (`BodyError::Read`), so nothing of it needs to reach an upstream; the caller bounds the time.
pub async fn read_prefix(body: &mut Incoming, limit: usize) -> Result<Prefix, BodyError> {
    let mut data = bytes::BytesMut::new();
    loop {
        if data.len() >= limit {
            return Ok(Prefix {
                data: data.freeze(),
                trailers: None,
                complete: false,
            });
        }
        match body.frame().await {
            None => {
                return Ok(Prefix {
                    data: data.freeze(),
                    trailers: None,
                    complete: true,
                })
            }
            Some(Err(e)) => return Err(BodyError::Read(e.to_string())),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(chunk) => data.extend_from_slice(&chunk),
                // Trailers end a body.
                Err(frame) => {
                    return Ok(Prefix {
                        data: data.freeze(),
                        trailers: frame.into_trailers().ok(),
                        complete: true,
                    })
                }
            },
        }
    }
}

/// A client's request body being forwarded (a prefix read ahead, then the rest as it streams);
/// `broken()` tells whether reading it failed.
pub struct ClientBody {
    /// What was read ahead and not yet given out; boxed because most requests have none, and every
    /// upstream connection's request channel keeps slots of this type's size.
    ahead: Option<Box<Ahead>>,
    /// The rest of the client's stream; None when the prefix holds the whole body.
    inner: Option<Incoming>,
    /// Where the rest waits until this body is first polled, when the request may be sent again: a
    /// connection that was never made leaves it there for the next attempt.
    parked: Option<Parked>,
    broken: Arc<AtomicBool>,
}

/// Bytes of a body read ahead, then its trailers if it ended with them.
struct Ahead {
    data: Bytes,
    trailers: Option<http::HeaderMap>,
}

impl Ahead {
    fn boxed(data: Bytes, trailers: Option<http::HeaderMap>) -> Option<Box<Ahead>> {
        (!data.is_empty() || trailers.is_some()).then(|| Box::new(Ahead { data, trailers }))
    }
}

/// The unread rest of a client's body, shared by the attempts of one request.
pub type Parked = Arc<std::sync::Mutex<Option<Incoming>>>;

impl ClientBody {
    /// Wraps a body; the returned flag turns true if the client's stream errors.
    pub fn new(inner: Incoming) -> (ClientBody, Arc<AtomicBool>) {
        Self::with_prefix(Prefix::default(), inner)
    }

    /// A body whose first bytes were already read into `prefix`; `rest` is not polled when it is complete.
    pub fn with_prefix(prefix: Prefix, rest: Incoming) -> (ClientBody, Arc<AtomicBool>) {
        let broken = Arc::new(AtomicBool::new(false));
        (
            ClientBody {
                ahead: Ahead::boxed(prefix.data, prefix.trailers),
                inner: (!prefix.complete).then_some(rest),
                parked: None,
                broken: broken.clone(),
            },
            broken,
        )
    }

    /// A body with nothing in it (health checks).
    pub fn empty() -> ClientBody {
        ClientBody {
            ahead: None,
            inner: None,
            parked: None,
            broken: Arc::new(AtomicBool::new(false)),
        }
    }

    /// One attempt's copy of a request body that may be sent more than once: the prefix again, then the
    /// rest from `parked` (taken by whichever attempt polls it first).
    pub fn attempt(prefix: &Prefix, parked: &Parked, broken: &Arc<AtomicBool>) -> ClientBody {
        ClientBody {
            ahead: Ahead::boxed(prefix.data.clone(), prefix.trailers.clone()),
            inner: None,
            parked: (!prefix.complete).then(|| parked.clone()),
            broken: broken.clone(),
        }
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        if let Some(ahead) = self.ahead.as_mut() {
            if !ahead.data.is_empty() {
                let data = std::mem::take(&mut ahead.data);
                if ahead.trailers.is_none() {
                    self.ahead = None;
                }
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            let trailers = ahead.trailers.take();
            self.ahead = None;
            if let Some(trailers) = trailers {
                return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
            }
        }
        if let Some(parked) = self.parked.take() {
            self.inner = parked.lock().ok().and_then(|mut rest| rest.take());
        }
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let r = Pin::new(inner).poll_frame(cx);
        if let Poll::Ready(Some(Err(_))) = &r {
            self.broken.store(true, Ordering::Relaxed);
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.ahead.is_none()
            && self.parked.is_none()
            && self.inner.as_ref().is_none_or(Incoming::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let ahead = self.ahead.as_ref().map_or(0, |a| a.data.len() as u64);
        if self.parked.is_some() {
            let mut hint = SizeHint::new();
            hint.set_lower(ahead);
            return hint;
        }
        match &self.inner {
            None => SizeHint::with_exact(ahead),
            Some(inner) => {
                let rest = inner.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(rest.lower() + ahead);
                if let Some(upper) = rest.upper() {
                    hint.set_upper(upper + ahead);
                }
                hint
            }
        }
    }
}

/// Where an upstream connection goes when the response body on it has ended: its target's idle list.
pub trait ConnectionHome: Send + Sync {
    /// Takes back a connection whose last response has been read to its end.
    fn take_back(self: Arc<Self>, sender: hyper::client::conn::http1::SendRequest<ClientBody>);
}

/// An upstream connection lent to one response: given back (`give_back`) when its body has ended, dropped
/// (closing the connection) when the body was abandoned or broke.
pub struct Lent {
    sender: hyper::client::conn::http1::SendRequest<ClientBody>,
    home: Arc<dyn ConnectionHome>,
}

impl Lent {
    /// Lends `sender`, to be given back to `home`.
    pub fn new(
        sender: hyper::client::conn::http1::SendRequest<ClientBody>,
        home: Arc<dyn ConnectionHome>,
    ) -> Lent {
        Lent { sender, home }
    }

    /// Returns the connection to where it came from.
    pub fn give_back(self) {
        self.home.take_back(self.sender);
    }
}

/// The upstream stopped sending its body for longer than the route's timeout.
#[derive(Debug, thiserror::Error)]
#[error("upstream body stalled")]
pub struct BodyStalled;

/// An upstream response body with an idle timeout between frames.
pub struct UpstreamBody {
    inner: Incoming,
    idle: Duration,
    last_frame: Instant,
    // Created on the first Pending only: most responses arrive in one go and never need a timer.
    timer: Option<Pin<Box<Sleep>>>,
    /// Whatever else must live as long as the response body (a `least_requests` count).
    _held: Option<Box<dyn std::any::Any + Send + Sync>>,
    /// The upstream connection, given back to its pool once the body has ended (dropped, and so closed, if
    /// the body broke or the client went away first).
    lent: Option<Lent>,
    /// The request's slot on its target (`max_connections_per_target`), inline rather than in `_held`: a
    /// route has a limit by default, and this saves an allocation per request. Declared after `lent`, so it is
    /// released only once the connection is back in the pool and the next request waiting for it finds it.
    _slot: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl UpstreamBody {
    /// Wraps an upstream body.
    pub fn new(inner: Incoming, idle: Duration, lent: Lent) -> UpstreamBody {
        UpstreamBody {
            inner,
            idle,
            last_frame: Instant::now(),
            timer: None,
            _held: None,
            lent: Some(lent),
            _slot: None,
        }
    }

    /// Keeps the request's slot on its target until the body is dropped.
    pub fn taking_slot(mut self, slot: Option<tokio::sync::OwnedSemaphorePermit>) -> UpstreamBody {
        self._slot = slot;
        self
    }

    /// Keeps `held` until the body is dropped (ended, failed or abandoned by the client).
    pub fn holding(mut self, held: Box<dyn std::any::Any + Send + Sync>) -> UpstreamBody {
        self._held = Some(held);
        self
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                match &frame {
                    None => {
                        if let Some(lent) = this.lent.take() {
                            lent.give_back();
                        }
                    }
                    Some(Err(_)) => this.lent = None,
                    Some(Ok(_)) => this.last_frame = Instant::now(),
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => loop {
                let deadline = this.last_frame + this.idle;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                match timer.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(()) if Instant::now() >= this.last_frame + this.idle => {
                        return Poll::Ready(Some(Err(Box::new(BodyStalled))));
                    }
                    Poll::Ready(()) => continue,
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        // A body of known length is not polled past its last byte (nor one that was empty): it has ended
        // when nothing of it is left.
        if let Some(lent) = self.lent.take() {
            if self.inner.is_end_stream() {
                lent.give_back();
            }
        }
    }
}
