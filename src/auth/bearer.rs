//! Reads `Authorization: Bearer <token>` (RFC 6750 §2.1) and turns it into an `Identity` or an `AuthError`.
//!
//! The scheme name is case-insensitive (RFC 9110 §11.1); the token must be a single b64token with no
//! whitespace inside; anything malformed is "no valid credential", never a panic.

use super::error::{AuthError, TokenError};
use super::token::TokenVerifier;
use super::Identity;
use http::header::AUTHORIZATION;
use http::HeaderMap;

/// Extracts the raw token, checking shape and size only.
pub fn extract(headers: &HeaderMap, max_token_bytes: usize) -> Result<&str, AuthError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next().ok_or(AuthError::Missing)?;
    if values.next().is_some() {
        return Err(AuthError::Duplicate);
    }
    let bytes = value.as_bytes();
    if bytes.len() > max_token_bytes + 7 {
        return Err(AuthError::TooLong);
    }
    if bytes.len() < 7 || !bytes[..7].eq_ignore_ascii_case(b"bearer ") {
        return Err(AuthError::NotBearer);
    }
    let token = std::str::from_utf8(&bytes[7..])
        .map_err(|_| AuthError::Invalid(TokenError::Malformed))?
        .trim_matches(' ');
    // A header value holds no control bytes but HTAB, so `<= b' '` finds SP and HTAB; a fold without an
    // early exit compiles to a vector loop over the ~200-byte token (this runs on every request).
    if token.is_empty() || token.bytes().fold(false, |ws, b| ws | (b <= b' ')) {
        return Err(AuthError::Invalid(TokenError::Malformed));
    }
    Ok(token)
}

/// Authenticates a request from its headers.
pub fn authenticate(
    headers: &HeaderMap,
    verifier: &TokenVerifier,
    max_token_bytes: usize,
) -> Result<std::sync::Arc<Identity>, AuthError> {
    let token = extract(headers, max_token_bytes)?;
    verifier.verify(token).map_err(AuthError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(AUTHORIZATION, HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    #[test]
    fn scheme_is_case_insensitive() {
        for v in [
            &b"Bearer abc"[..],
            b"bearer abc",
            b"BEARER abc",
            b"Bearer  abc ",
        ] {
            assert_eq!(extract(&headers(&[v]), 100), Ok("abc"));
        }
    }

    #[test]
    fn shapes_that_are_not_a_bearer_token() {
        assert_eq!(extract(&HeaderMap::new(), 100), Err(AuthError::Missing));
        assert_eq!(
            extract(&headers(&[b"Basic dXNlcjpwYXNz"]), 100),
            Err(AuthError::NotBearer)
        );
        assert_eq!(
            extract(&headers(&[b"Bearer"]), 100),
            Err(AuthError::NotBearer)
        );
        assert_eq!(
            extract(&headers(&[b"Bearertoken"]), 100),
            Err(AuthError::NotBearer)
        );
        assert_eq!(
            extract(&headers(&[b"Bearer  "]), 100),
            Err(AuthError::Invalid(TokenError::Malformed))
        );
        assert_eq!(
            extract(&headers(&[b"Bearer a b"]), 100),
            Err(AuthError::Invalid(TokenError::Malformed))
        );
        assert_eq!(
            extract(&headers(&[b"Bearer a", b"Bearer b"]), 100),
            Err(AuthError::Duplicate)
        );
        assert_eq!(
            extract(&headers(&[b"Bearer \xff\xfe"]), 100),
            Err(AuthError::Invalid(TokenError::Malformed))
        );
        let long = format!("Bearer {}", "a".repeat(101));
        assert_eq!(
            extract(&headers(&[long.as_bytes()]), 100),
            Err(AuthError::TooLong)
        );
    }
}
