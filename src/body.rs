//! Body types shared by every stage, and the size-limited collect used for bodies the gateway reads itself.

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;

/// Response body: a streamed upstream body, or a small body the gateway made.
pub type ResBody = Either<Incoming, Full<Bytes>>;

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
    deadline: std::time::Duration,
) -> Result<Bytes, BodyError> {
    match tokio::time::timeout(deadline, Limited::new(body, limit).collect()).await {
        Err(_) => Err(BodyError::Timeout),
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Ok(Err(e)) => Err(BodyError::Read(e.to_string())),
    }
}
