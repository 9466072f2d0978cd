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

/// A client's request body being forwarded; `broken()` tells whether reading it failed.
pub struct ClientBody {
    inner: Incoming,
    broken: Arc<AtomicBool>,
}

impl ClientBody {
    /// Wraps a body; the returned flag turns true if the client's stream errors.
    pub fn new(inner: Incoming) -> (ClientBody, Arc<AtomicBool>) {
        let broken = Arc::new(AtomicBool::new(false));
        (
            ClientBody {
                inner,
                broken: broken.clone(),
            },
            broken,
        )
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Err(_))) = &r {
            self.broken.store(true, Ordering::Relaxed);
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
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
}

impl UpstreamBody {
    /// Wraps an upstream body.
    pub fn new(inner: Incoming, idle: Duration) -> UpstreamBody {
        UpstreamBody {
            inner,
            idle,
            last_frame: Instant::now(),
            timer: None,
        }
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
                this.last_frame = Instant::now();
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
