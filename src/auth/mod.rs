//! Authentication: who the caller is (Bearer tokens) and how they get a token (the login endpoint).

pub mod assertion;
pub mod bearer;
pub mod csrf;
pub mod defences;
pub mod error;
pub mod guard;
pub mod hashing;
pub mod jwks;
pub mod login;
pub mod logout;
pub mod operator;
pub mod recheck;
pub mod replay;
pub mod revocation;
pub mod session;
pub mod sessions;
pub mod shared_revocations;
pub mod throttle;
pub mod timing;
pub mod token;
pub mod turnstile;

pub use error::{AuthError, TokenError};

/// A concurrent map keyed by a token, a `jti` or a user name, looked up on every proxied request. foldhash
/// instead of SipHash: several times faster on a 200-byte token, still seeded at random per process; the
/// tables only take entries for tokens that verified (or revocations an operator made), so a caller cannot
/// fill them with colliding keys.
pub type StrMap<V> = dashmap::DashMap<Box<str>, V, foldhash::fast::RandomState>;

/// An authenticated caller, from a verified token.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// The `sub` claim: the user name.
    pub sub: String,
    /// `sub` as the user header's value, made once when the token is first verified.
    pub sub_value: http::HeaderValue,
    /// The `name` claim, if any.
    pub name: Option<String>,
    /// `name` as the name header's value.
    pub name_value: Option<http::HeaderValue>,
    /// All other claims, decoded only when `[identity.claims]` passes some upstream.
    pub extra: Option<serde_json::Map<String, serde_json::Value>>,
    /// The `exp` claim, in seconds since the epoch: an upgraded connection this token opened is closed then
    /// (plus the leeway, see `TokenVerifier::refused_from`).
    pub exp: u64,
    /// The `jti` claim: what a logout revokes.
    pub jti: Option<std::sync::Arc<str>>,
    /// The `iat` claim in seconds since the epoch; 0 when absent (a user's revocation watermark covers it).
    pub iat: u64,
}
