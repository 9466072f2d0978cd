//! `/.well-known/jwks.json`: the public keys of asymmetric signing keys (RFC 7517), so upstreams can verify
//! the gateway's tokens themselves: the current key and, during a rotation, the previous ones, each with its
//! `kid`. Never published for HMAC keys, which are secret.

use crate::config::{is_hmac, AuthConfig};
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

/// Path of the key set.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// The serialised key set, or None when the gateway issues no tokens (no private key) or holds no
/// asymmetric key.
pub fn document(auth: &AuthConfig) -> Result<Option<Vec<u8>>, String> {
    if auth.encoding_key.is_none() {
        return Ok(None);
    }
    let current = std::iter::once((
        auth.key_id.as_deref(),
        auth.algorithm,
        &auth.decoding_key,
        "auth.public_key_file".to_string(),
    ));
    let previous = auth.previous_keys.iter().enumerate().map(|(i, k)| {
        (
            Some(k.kid.as_str()),
            k.algorithm,
            &k.decoding_key,
            format!("auth.previous_keys[{i}].public_key_file"),
        )
    });
    let mut keys = Vec::new();
    for (kid, algorithm, key, setting) in current.chain(previous) {
        if !is_hmac(algorithm) {
            keys.push(public_jwk(kid, algorithm, key, &setting)?);
        }
    }
    if keys.is_empty() {
        return Ok(None);
    }
    serde_json::to_vec(&JwkSet { keys })
        .map(Some)
        .map_err(|e| e.to_string())
}

/// One public key as a JWK with its `kid`, `alg` and `use: sig`; `setting` names its config key in errors.
pub fn public_jwk(
    kid: Option<&str>,
    algorithm: Algorithm,
    key: &DecodingKey,
    setting: &str,
) -> Result<Jwk, String> {
    // From the public key: it is what verifiers need, and config validation checked it matches the private one.
    let mut jwk = Jwk::from_decoding_key(key, Some(algorithm))
        .map_err(|e| format!("{setting}: cannot publish as JWK: {e}"))?;
    jwk.common.key_id = kid.map(str::to_string);
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    Ok(jwk)
}
