//! Who the caller is when either a Bearer header or the session cookie may carry the token.
//!
//! Bearer wins: when an `Authorization` field is present, the cookie is not looked at, so an API client's
//! explicit credential is never overridden by a browser's ambient one. The cookie is read only when the
//! server passes its name, i.e. cookie mode is on and the request arrived over HTTPS (or loopback). Several
//! copies of the cookie are refused rather than one picked: with a name without `__Host-`, a sibling
//! subdomain could plant its own next to the real one ("cookie tossing").

use super::bearer;
use super::error::{AuthError, TokenError};
use super::token::TokenVerifier;
use super::Identity;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};

/// Where the accepted token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// `Authorization: Bearer`.
    Bearer,
    /// The session cookie: unsafe methods and upgrades must pass the CSRF check.
    Cookie,
}

/// A caller the gateway accepted: who, through which credential, and the token exactly as presented (it
/// keys the per-token caches downstream, e.g. the identity assertion's).
#[derive(Debug)]
pub struct Authenticated<'h> {
    /// Who the token names (shared with the verified-token table: no copy per request).
    pub identity: std::sync::Arc<Identity>,
    /// Where the token came from.
    pub via: Via,
    /// The token as sent, borrowed from the request's headers.
    pub token: &'h str,
}

/// Authenticates from the Bearer header, else from cookie `cookie` when given.
pub fn authenticate<'h>(
    headers: &'h HeaderMap,
    verifier: &TokenVerifier,
    max_token_bytes: usize,
    cookie: Option<&str>,
) -> Result<Authenticated<'h>, AuthError> {
    let (token, via) = presented(headers, max_token_bytes, cookie)?;
    let identity = verifier.verify(token).map_err(AuthError::Invalid)?;
    Ok(Authenticated {
        identity,
        via,
        token,
    })
}

/// The token the request presents (shape and size checked, not verified) and where it came from.
fn presented<'h>(
    headers: &'h HeaderMap,
    max_token_bytes: usize,
    cookie: Option<&str>,
) -> Result<(&'h str, Via), AuthError> {
    let cookie = match cookie {
        Some(name) if !headers.contains_key(AUTHORIZATION) => name,
        _ => return bearer::extract(headers, max_token_bytes).map(|t| (t, Via::Bearer)),
    };
    let token = match crate::protocol::cookie::values(headers, cookie).as_slice() {
        [] => return Err(AuthError::Missing),
        [one] => *one,
        _ => return Err(AuthError::SeveralCookies),
    };
    if token.len() > max_token_bytes {
        return Err(AuthError::TooLong);
    }
    let token =
        std::str::from_utf8(token).map_err(|_| AuthError::Invalid(TokenError::Malformed))?;
    Ok((token, Via::Cookie))
}

/// `Set-Cookie` carrying `token` for `max_age` seconds. `__Host-` rules (Secure, `Path=/`, no `Domain`)
/// hold for every name; `SameSite=Lax` keeps the cookie off cross-site subresource requests and POSTs
/// while top-level navigations from links still carry it.
pub fn set_cookie(name: &str, token: &str, max_age: u64) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{name}={token}; Max-Age={max_age}; Path=/; Secure; HttpOnly; SameSite=Lax"
    ))
    .ok()
}

/// `Set-Cookie` that makes the browser drop the session cookie at once.
pub fn clear_cookie(name: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{name}=; Max-Age=0; Path=/; Secure; HttpOnly; SameSite=Lax"
    ))
    .ok()
}
