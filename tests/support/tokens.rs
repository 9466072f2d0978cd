//! Token minting for tests: valid, expired, not yet valid, wrong key, wrong algorithm, tampered.

use super::SECRET;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Signs `claims` with the test secret (HS256).
pub fn sign(claims: &Value) -> String {
    sign_with(claims, Algorithm::HS256, SECRET.as_bytes())
}

/// Signs `claims` with any HMAC algorithm and key.
pub fn sign_with(claims: &Value, alg: Algorithm, key: &[u8]) -> String {
    encode(&Header::new(alg), claims, &EncodingKey::from_secret(key)).unwrap()
}

/// A token as the login would issue it for `user`, valid 30 minutes.
pub fn valid(user: &str) -> String {
    let n = now();
    sign(&json!({"sub": user, "name": user, "iat": n, "nbf": n, "exp": n + 1800, "jti": "test"}))
}

/// Expired well beyond the leeway.
pub fn expired(user: &str) -> String {
    let n = now();
    sign(&json!({"sub": user, "name": user, "iat": n - 3600, "exp": n - 600}))
}

/// Not valid before 10 minutes from now.
pub fn not_yet_valid(user: &str) -> String {
    let n = now();
    sign(&json!({"sub": user, "name": user, "iat": n, "nbf": n + 600, "exp": n + 1800}))
}

/// Bearer header value for a token.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// base64url without padding.
pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// An unsigned token with the given header JSON (e.g. alg none).
pub fn unsigned(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}.",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

/// A valid token whose payload was replaced after signing (signature kept).
pub fn tampered(user: &str, new_sub: &str) -> String {
    let t = valid(user);
    let mut parts: Vec<&str> = t.split('.').collect();
    let n = now();
    let payload = b64(json!({"sub": new_sub, "name": new_sub, "exp": n + 1800})
        .to_string()
        .as_bytes());
    parts[1] = &payload;
    parts.join(".")
}

/// A valid token for `user` with extra claims merged in (they override the defaults).
pub fn valid_with(user: &str, extra: &Value) -> String {
    let n = now();
    let mut claims = json!({"sub": user, "name": user, "iat": n, "nbf": n, "exp": n + 1800});
    if let (Some(c), Some(e)) = (claims.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            c.insert(k.clone(), v.clone());
        }
    }
    sign(&claims)
}
