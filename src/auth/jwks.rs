//! `/.well-known/jwks.json`: the public key of an asymmetric signing key (RFC 7517), so upstreams can verify
//! the gateway's tokens themselves. Never published for HMAC algorithms, whose key is secret.

use crate::config::AuthConfig;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::Algorithm;

/// Path of the key set.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// The serialised key set, or None for HMAC algorithms or when the gateway holds no private key.
pub fn document(auth: &AuthConfig) -> Result<Option<Vec<u8>>, String> {
    if matches!(
        auth.algorithm,
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
    ) {
        return Ok(None);
    }
    if auth.encoding_key.is_none() {
        return Ok(None);
    }
    // From the public key: it is what verifiers need, and config validation checked it matches the private one.
    let mut jwk = Jwk::from_decoding_key(&auth.decoding_key, Some(auth.algorithm))
        .map_err(|e| format!("auth.public_key_file: cannot publish as JWK: {e}"))?;
    jwk.common.key_id = auth.key_id.clone();
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    serde_json::to_vec(&JwkSet { keys: vec![jwk] })
        .map(Some)
        .map_err(|e| e.to_string())
}
