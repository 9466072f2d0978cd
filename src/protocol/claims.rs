//! Registered JWT claim names (RFC 7519 §4.1) plus `name`: the claims the gateway sets itself.

/// Claim names the gateway sets itself; a user's extra claims cannot override them.
pub const RESERVED_CLAIMS: [&str; 8] = ["sub", "name", "iat", "nbf", "exp", "jti", "iss", "aud"];
