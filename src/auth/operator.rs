//! The operator's revoke request on the operations listener: who may send it and what it says.
//!
//! Contract: the endpoint exists only when `metrics.admin_token_file` is configured (that listener is
//! reachable on the pod IP in Kubernetes, so an unguarded revoke would let anyone there log users out). The
//! bearer token is compared in constant time over SHA-256 digests, so neither its bytes nor its length leak
//! through timing; anything malformed is "no credential". The body is JSON, either `{"user": "NAME"}`
//! (every token of that user issued up to now) or `{"jti": "ID", "exp": UNIX}` (one token).

use super::revocation::Revocation;
use super::sessions::RevokeError;
use crate::config::AdminToken;
use http::header::AUTHORIZATION;
use http::HeaderMap;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Path of the revoke endpoint on the operations listener.
pub const REVOKE_PATH: &str = "/revoke";
/// Largest revoke body read (a user name or a token id and a number).
pub const MAX_REVOKE_BODY_BYTES: usize = 4096;

/// Why an operator request was refused.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// No `metrics.admin_token_file`: the endpoint is not served.
    #[error("no operator token configured")]
    NotConfigured,
    /// Missing or wrong operator token.
    #[error("missing or wrong operator token")]
    Unauthorized,
    /// Not POST.
    #[error("method not allowed")]
    Method,
    /// The body is not a revoke request.
    #[error("bad revoke request: {0}")]
    BadRequest(String),
    /// The revocation was not recorded.
    #[error(transparent)]
    Revoke(#[from] RevokeError),
}

/// Checks the request's `Authorization: Bearer` against the configured operator token.
pub fn authorize(headers: &HeaderMap, expected: Option<&AdminToken>) -> Result<(), OperatorError> {
    let expected = expected.ok_or(OperatorError::NotConfigured)?;
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(OperatorError::Unauthorized);
    };
    let bytes = value.as_bytes();
    if bytes.len() < 7 || !bytes[..7].eq_ignore_ascii_case(b"bearer ") {
        return Err(OperatorError::Unauthorized);
    }
    let given = Sha256::digest(bytes[7..].trim_ascii());
    let wanted = Sha256::digest(expected.0.as_bytes());
    if bool::from(given.ct_eq(&wanted)) {
        Ok(())
    } else {
        Err(OperatorError::Unauthorized)
    }
}

/// The body of a revoke request.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    user: Option<String>,
    jti: Option<String>,
    exp: Option<u64>,
}

/// Parses a revoke body: a user's watermark moves to `now`, a token is refused until `exp` + `leeway_secs`.
pub fn parse(body: &[u8], now: u64, leeway_secs: u64) -> Result<Revocation, OperatorError> {
    let b: RevokeBody =
        serde_json::from_slice(body).map_err(|e| OperatorError::BadRequest(e.to_string()))?;
    let bad = |why: &str| Err(OperatorError::BadRequest(why.into()));
    match (b.user, b.jti, b.exp) {
        (Some(user), None, None) if !user.is_empty() => Ok(Revocation::User {
            sub: user,
            not_after: now,
        }),
        (None, Some(jti), Some(exp)) if !jti.is_empty() => Ok(Revocation::Token {
            jti,
            until: exp.saturating_add(leeway_secs),
        }),
        (None, Some(_), None) => bad("\"jti\" needs \"exp\" (when the token expires)"),
        _ => bad("expected {\"user\": NAME} or {\"jti\": ID, \"exp\": UNIX}"),
    }
}

/// The JSON body asking to revoke every token of `user` issued up to now.
pub fn user_body(user: &str) -> String {
    serde_json::json!({ "user": user }).to_string()
}

/// The JSON body asking to revoke token `jti` that expires at `exp`.
pub fn token_body(jti: &str, exp: u64) -> String {
    serde_json::json!({ "jti": jti, "exp": exp }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn the_operator_token_must_match_exactly() {
        let t = AdminToken("an-operator-token-of-enough-length-0123".into());
        assert!(matches!(
            authorize(&headers("Bearer x"), None),
            Err(OperatorError::NotConfigured)
        ));
        assert!(authorize(&headers(&format!("Bearer {}", t.0)), Some(&t)).is_ok());
        assert!(authorize(&headers(&format!("bearer  {} ", t.0)), Some(&t)).is_ok());
        for bad in [
            "Bearer".to_string(),
            "Bearer ".to_string(),
            "Basic abc".to_string(),
            format!("Bearer {}x", t.0),
            format!("Bearer {}", &t.0[1..]),
        ] {
            assert!(
                matches!(
                    authorize(&headers(&bad), Some(&t)),
                    Err(OperatorError::Unauthorized)
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            authorize(&HeaderMap::new(), Some(&t)),
            Err(OperatorError::Unauthorized)
        ));
    }

    #[test]
    fn revoke_bodies() {
        assert_eq!(
            parse(user_body("alice").as_bytes(), 100, 30).unwrap(),
            Revocation::User {
                sub: "alice".into(),
                not_after: 100
            }
        );
        assert_eq!(
            parse(token_body("j1", 500).as_bytes(), 100, 30).unwrap(),
            Revocation::Token {
                jti: "j1".into(),
                until: 530
            }
        );
        for bad in [
            "",
            "{}",
            "[]",
            r#"{"user": ""}"#,
            r#"{"jti": "x"}"#,
            r#"{"user": "a", "jti": "x", "exp": 1}"#,
            r#"{"user": "a", "extra": 1}"#,
            r#"{"user": 5}"#,
        ] {
            assert!(
                matches!(
                    parse(bad.as_bytes(), 1, 1),
                    Err(OperatorError::BadRequest(_))
                ),
                "{bad}"
            );
        }
    }
}
