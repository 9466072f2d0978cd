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
    /// The client stopped sending or the stream broke.
    #[error("body read failed: {0}")]
    Read(String),
}

/// Reads a whole body, refusing it as soon as it exceeds `limit` bytes (never buffers more).
pub async fn collect_limited(body: Incoming, limit: usize) -> Result<Bytes, BodyError> {
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Err(e) => Err(BodyError::Read(e.to_string())),
    }
}
