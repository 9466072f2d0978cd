//! Authentication: who the caller is (Bearer tokens) and how they get a token (the login endpoint).

pub mod bearer;
pub mod csrf;
pub mod defences;
pub mod error;
pub mod hashing;
pub mod jwks;
pub mod login;
pub mod replay;
pub mod session;
pub mod throttle;
pub mod timing;
pub mod token;
pub mod turnstile;

pub use error::{AuthError, TokenError};

/// An authenticated caller, from a verified token.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// The `sub` claim: the user name.
    pub sub: String,
    /// The `name` claim, if any.
    pub name: Option<String>,
    /// All other claims, decoded only when `[identity.claims]` passes some upstream.
    pub extra: Option<serde_json::Map<String, serde_json::Value>>,
    /// The `exp` claim, in seconds since the epoch: an upgraded connection this token opened is closed then
    /// (plus the leeway, see `TokenVerifier::refused_from`).
    pub exp: u64,
}
