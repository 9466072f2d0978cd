//! `POST <login.logout_path>`: ends the session of the Bearer token presented.
//!
//! Contract: only a token that verifies (and is not already revoked) can be logged out; anything else is the
//! bare 401. The token's `jti` is revoked until its `exp` + leeway; a token without `jti` cannot be told
//! apart from its user's other tokens, so its user's watermark moves to the token's `iat` instead (that
//! token and every older one of the same user end). With a shared store the revocation is written there
//! first: if that fails the answer is 503 and nothing is revoked locally either, so a logout that did not
//! reach every instance never looks done.

use super::error::AuthError;
use super::revocation::Revocation;
use super::sessions::RevokeError;
use super::Identity;
use crate::body::ResBody;
use crate::response;
use http::{Response, StatusCode};

/// Why a logout did not happen.
#[derive(Debug, thiserror::Error)]
pub enum LogoutError {
    /// No acceptable token: nothing to log out.
    #[error("no acceptable token: {0}")]
    Auth(AuthError),
    /// The revocation was not recorded.
    #[error(transparent)]
    Revoke(#[from] RevokeError),
}

/// The revocation that ends `id`'s token: its `jti` until `exp` + `leeway`, else its user's watermark.
pub fn revocation_for(id: &Identity, leeway_secs: u64) -> Revocation {
    match &id.jti {
        Some(jti) => Revocation::Token {
            jti: jti.to_string(),
            until: id.exp.saturating_add(leeway_secs),
        },
        None => Revocation::User {
            sub: id.sub.clone(),
            not_after: id.iat,
        },
    }
}

/// The answer to a logout that happened. The one place it is built, so anything a logout must also undo
/// on the client is added here: in cookie mode (`cookie` = the session cookie's name) the browser's copy is
/// cleared too, whichever credential the logout came with.
pub fn logged_out(cookie: Option<&str>) -> Response<ResBody> {
    let mut res = response::empty(StatusCode::NO_CONTENT);
    if let Some(clear) = cookie.and_then(super::session::clear_cookie) {
        res.headers_mut().insert(http::header::SET_COOKIE, clear);
    }
    res
}
