//! `SharedError`: the shared store did not give an answer in time. Whoever asked answers 503 with
//! `Retry-After` (decided in `crate::error`), never a 401: an outage must not look like bad credentials.

/// A shared-store call that did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SharedError {
    /// No answer within `shared.timeout`.
    #[error("shared store: {operation} timed out")]
    Timeout {
        /// The operation label, as in the metrics.
        operation: &'static str,
    },
    /// The store refused, the connection failed, or the reply was not what the operation expects.
    #[error("shared store: {operation} failed: {detail}")]
    Failed {
        /// The operation label, as in the metrics.
        operation: &'static str,
        /// The client's description (never holds the URL's password: the client does not print it).
        detail: String,
    },
}

impl SharedError {
    /// The operation that failed.
    pub fn operation(&self) -> &'static str {
        match self {
            SharedError::Timeout { operation } | SharedError::Failed { operation, .. } => operation,
        }
    }
}
