//! `AuthError`: why a request to a protected route carries no acceptable identity.
//!
//! Variants stay distinct for logs; to the client they are all 401 with `WWW-Authenticate: Bearer`
//! (`error="invalid_token"` when a token was presented), decided in `crate::error`.

/// A request without an acceptable Bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header.
    #[error("no credentials")]
    Missing,
    /// `Authorization` uses another scheme (Basic, ...).
    #[error("not a Bearer credential")]
    NotBearer,
    /// More than one `Authorization` header.
    #[error("several Authorization headers")]
    Duplicate,
    /// Longer than `auth.max_token_bytes`.
    #[error("token too long")]
    TooLong,
    /// The token failed verification.
    #[error("invalid token: {0}")]
    Invalid(TokenError),
    /// The session cookie was sent more than once.
    #[error("several session cookies")]
    SeveralCookies,
}

/// Why a token failed verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url segments of JSON, or not UTF-8.
    #[error("malformed")]
    Malformed,
    /// Signature does not match the configured key.
    #[error("bad signature")]
    BadSignature,
    /// `alg` is not the configured algorithm (includes `none`).
    #[error("algorithm not allowed")]
    Algorithm,
    /// `exp` has passed (beyond the leeway) or is missing.
    #[error("expired")]
    Expired,
    /// `nbf` or `iat` lies in the future (beyond the leeway).
    #[error("not yet valid")]
    NotYetValid,
    /// `iss` differs from `auth.issuer`.
    #[error("wrong issuer")]
    Issuer,
    /// `aud` does not name `auth.audience`.
    #[error("wrong audience")]
    Audience,
    /// A required claim (`exp`, `sub`, or a configured `iss`/`aud`) is absent or of the wrong type.
    #[error("missing or invalid claim")]
    Claims,
    /// `sub`, `name` or a claim mapped to a header (`[identity.claims]`) cannot be an HTTP header value
    /// (control characters, edge whitespace), so the upstream could not be told who the caller is.
    #[error("identity claim is not a valid header value")]
    HeaderValue,
    /// The header's `kid` names no configured key (current or previous).
    #[error("unknown key id")]
    UnknownKey,
    /// The header's `typ` marks another kind of JWT: the gateway's own identity assertion, which is for
    /// upstreams and never a credential.
    #[error("token type not accepted")]
    Type,
    /// The token was revoked (logout, `gateway revoke`, or its user became inactive).
    #[error("revoked")]
    Revoked,
}

impl TokenError {
    /// Stable label for logs and metrics.
    pub fn kind(self) -> &'static str {
        match self {
            TokenError::Malformed => "malformed",
            TokenError::BadSignature => "bad_signature",
            TokenError::Algorithm => "algorithm",
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not_yet_valid",
            TokenError::Issuer => "issuer",
            TokenError::Audience => "audience",
            TokenError::Claims => "claims",
            TokenError::HeaderValue => "header_value",
            TokenError::UnknownKey => "unknown_key",
            TokenError::Type => "type",
            TokenError::Revoked => "revoked",
        }
    }
}
