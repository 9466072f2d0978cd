//! `[identity.assertion]`: the signed identity assertion sent to upstreams (issue 18) — its header, its own
//! asymmetric key (EdDSA or ES256, never the login key), lifetime, issuer, cache size and the previous public
//! keys kept for rotation.
//!
//! The key is an asymmetric private key so an upstream can verify assertions without holding a secret that
//! would also let it mint them, even in an HS256 deployment. Without `key_file` the gateway generates an
//! ephemeral key at start (development only: `exposure` refuses it on a non-loopback address).

use super::file::{AssertionFile, AssertionKeyFile};
use super::value::{dur, header_name, resolve};
use super::{AuthConfig, ConfigError};
use crate::defaults;
use http::HeaderName;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use std::path::Path;
use std::time::Duration;

/// The validated assertion settings; present only when `identity.assertion.header` is set.
#[derive(Clone)]
pub struct AssertionConfig {
    /// The request header that carries the assertion upstream.
    pub header: HeaderName,
    /// EdDSA (Ed25519) or ES256.
    pub algorithm: Algorithm,
    /// The signing key from `key_file`; None means an ephemeral key generated at start.
    pub key: Option<AssertionSigningKey>,
    /// `identity.assertion.kid` as configured (None: the key's RFC 7638 thumbprint).
    pub kid: Option<String>,
    pub ttl: Duration,
    /// The `iss` claim.
    pub issuer: String,
    /// Signed assertions remembered per route (0: sign every request).
    pub cache_size: usize,
    /// Previous public keys, published for rotation (each JWK carries its `kid`).
    pub previous_keys: Vec<Jwk>,
}

impl std::fmt::Debug for AssertionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssertionConfig")
            .field("header", &self.header)
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid)
            .field("ephemeral", &self.key.is_none())
            .field("ttl", &self.ttl)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// An assertion signing key: the private key and its public JWK (with `kid`, `alg` and `use: sig`).
#[derive(Clone)]
pub struct AssertionSigningKey {
    pub encoding: EncodingKey,
    pub public: Jwk,
}

/// Why an assertion key could not be read or made.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(String);

impl AssertionSigningKey {
    /// Reads a PKCS#8 PEM private key of `algorithm` (EdDSA or ES256); `kid` None takes the thumbprint.
    pub fn from_pem(algorithm: Algorithm, pem: &[u8], kid: Option<&str>) -> Result<Self, KeyError> {
        let encoding = match algorithm {
            Algorithm::EdDSA => EncodingKey::from_ed_pem(pem),
            _ => EncodingKey::from_ec_pem(pem),
        }
        .map_err(|e| KeyError(format!("not a {algorithm:?} private key PEM (PKCS#8): {e}")))?;
        Self::from_der(algorithm, encoding, kid)
    }

    /// A fresh random key, for development when no `key_file` is given.
    pub fn generate(algorithm: Algorithm) -> Result<Self, KeyError> {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = match algorithm {
            Algorithm::EdDSA => ring::signature::Ed25519KeyPair::generate_pkcs8(&rng),
            _ => ring::signature::EcdsaKeyPair::generate_pkcs8(
                &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &rng,
            ),
        }
        .map_err(|_| KeyError("cannot generate a key".into()))?;
        let encoding = match algorithm {
            Algorithm::EdDSA => EncodingKey::from_ed_der(pkcs8.as_ref()),
            _ => EncodingKey::from_ec_der(pkcs8.as_ref()),
        };
        Self::from_der(algorithm, encoding, None)
    }

    /// Derives the public half (ring parses the PKCS#8 document), builds its JWK and proves the pair works
    /// with the library that signs: a key the gateway could not sign with must fail now, not per request.
    fn from_der(
        algorithm: Algorithm,
        encoding: EncodingKey,
        kid: Option<&str>,
    ) -> Result<Self, KeyError> {
        let der = encoding.as_bytes();
        let public = match algorithm {
            Algorithm::EdDSA => {
                use ring::signature::KeyPair;
                let pair = ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                    .map_err(|e| KeyError(format!("not an Ed25519 PKCS#8 key: {e}")))?;
                DecodingKey::from_ed_der(pair.public_key().as_ref())
            }
            _ => {
                use ring::signature::KeyPair;
                let pair = ring::signature::EcdsaKeyPair::from_pkcs8(
                    &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    der,
                    &ring::rand::SystemRandom::new(),
                )
                .map_err(|e| KeyError(format!("not a P-256 PKCS#8 key: {e}")))?;
                DecodingKey::from_ec_der(pair.public_key().as_ref())
            }
        };
        let probe = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(algorithm),
            &serde_json::json!({"sub": "probe", "exp": u32::MAX}),
            &encoding,
        )
        .map_err(|e| KeyError(format!("cannot sign with it: {e}")))?;
        let mut v = jsonwebtoken::Validation::new(algorithm);
        v.validate_aud = false;
        jsonwebtoken::decode::<serde_json::Value>(&probe, &public, &v)
            .map_err(|e| KeyError(format!("its public half does not verify: {e}")))?;
        let public = publishable(&public, algorithm, kid)?;
        Ok(AssertionSigningKey { encoding, public })
    }

    /// The `kid` assertions carry.
    pub fn kid(&self) -> &str {
        self.public.common.key_id.as_deref().unwrap_or_default()
    }
}

/// A public key as a JWK with `alg`, `use: sig` and `kid` (the given one, or its RFC 7638 SHA-256 thumbprint).
fn publishable(
    key: &DecodingKey,
    algorithm: Algorithm,
    kid: Option<&str>,
) -> Result<Jwk, KeyError> {
    let mut jwk = Jwk::from_decoding_key(key, Some(algorithm))
        .map_err(|e| KeyError(format!("cannot publish as JWK: {e}")))?;
    let kid = match kid {
        Some(k) => k.to_string(),
        None => jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|e| KeyError(format!("cannot compute its thumbprint: {e}")))?,
    };
    jwk.common.key_id = Some(kid);
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    Ok(jwk)
}

/// `EdDSA` (the default) or `ES256`, without ASCII case.
fn parse_algorithm(key: &str, text: Option<&str>) -> Result<Algorithm, ConfigError> {
    match text {
        None => Ok(Algorithm::EdDSA),
        Some(t) if t.eq_ignore_ascii_case("EdDSA") => Ok(Algorithm::EdDSA),
        Some(t) if t.eq_ignore_ascii_case("ES256") => Ok(Algorithm::ES256),
        Some(t) => Err(ConfigError::invalid(
            key,
            format!(
                "{t:?} is not one of EdDSA, ES256 (assertions are signed with an asymmetric key)"
            ),
        )),
    }
}

/// Validates `[identity.assertion]`; None when no header is set (assertions off).
pub(super) fn validate_assertion(
    a: AssertionFile,
    auth: &AuthConfig,
    base: &Path,
) -> Result<Option<AssertionConfig>, ConfigError> {
    let Some(header_text) = a.header.filter(|h| !h.is_empty()) else {
        return Ok(None);
    };
    let header = header_name("identity.assertion.header", &header_text)?;
    if header == http::header::AUTHORIZATION || header == http::header::COOKIE {
        return Err(ConfigError::invalid(
            "identity.assertion.header",
            format!("{header_text:?} carries the client's credentials; choose another header"),
        ));
    }
    let algorithm = parse_algorithm("identity.assertion.algorithm", a.algorithm.as_deref())?;
    let kid = a.kid.filter(|k| !k.is_empty());
    let key = match a.key_file {
        None => None,
        Some(p) => {
            let path = resolve(base, &p);
            let pem = std::fs::read(&path).map_err(|e| {
                ConfigError::invalid(
                    "identity.assertion.key_file",
                    format!("{}: {e}", path.display()),
                )
            })?;
            let key = AssertionSigningKey::from_pem(algorithm, &pem, kid.as_deref())
                .map_err(|e| ConfigError::invalid("identity.assertion.key_file", e.to_string()))?;
            Some(key)
        }
    };
    let ttl = dur(a.ttl, defaults::ASSERTION_TTL);
    if ttl < Duration::from_secs(2) || ttl > Duration::from_secs(3600) {
        return Err(ConfigError::invalid(
            "identity.assertion.ttl",
            "must be between 2s and 1h (an assertion is short-lived by design)",
        ));
    }
    let issuer = a
        .issuer
        .filter(|s| !s.is_empty())
        .or_else(|| auth.issuer.clone())
        .unwrap_or_else(|| defaults::ASSERTION_ISSUER.to_string());
    let previous_keys = previous_keys(a.previous_keys, algorithm, base)?;
    let config = AssertionConfig {
        header,
        algorithm,
        key,
        kid,
        ttl,
        issuer,
        cache_size: a.cache_size.unwrap_or(defaults::ASSERTION_CACHE_SIZE),
        previous_keys,
    };
    check_kids(&config)?;
    check_not_a_login_key(&config, auth)?;
    Ok(Some(config))
}

/// `[[identity.assertion.previous_keys]]`: public keys only, each with its `kid`.
fn previous_keys(
    list: Vec<AssertionKeyFile>,
    current_algorithm: Algorithm,
    base: &Path,
) -> Result<Vec<Jwk>, ConfigError> {
    let mut out = Vec::with_capacity(list.len());
    for (i, p) in list.into_iter().enumerate() {
        let key = |k: &str| format!("identity.assertion.previous_keys[{i}].{k}");
        let kid = p
            .kid
            .filter(|k| !k.is_empty())
            .ok_or_else(|| ConfigError::invalid(key("kid"), "required"))?;
        let algorithm = match p.algorithm {
            Some(t) => parse_algorithm(&key("algorithm"), Some(&t))?,
            None => current_algorithm,
        };
        let path = p
            .public_key_file
            .ok_or_else(|| ConfigError::invalid(key("public_key_file"), "required"))?;
        let path = resolve(base, &path);
        let pem = std::fs::read(&path).map_err(|e| {
            ConfigError::invalid(key("public_key_file"), format!("{}: {e}", path.display()))
        })?;
        let decoding = match algorithm {
            Algorithm::EdDSA => DecodingKey::from_ed_pem(&pem),
            _ => DecodingKey::from_ec_pem(&pem),
        }
        .map_err(|e| {
            ConfigError::invalid(
                key("public_key_file"),
                format!("not a {algorithm:?} public key PEM: {e}"),
            )
        })?;
        let jwk = publishable(&decoding, algorithm, Some(&kid))
            .map_err(|e| ConfigError::invalid(key("public_key_file"), e.to_string()))?;
        out.push(jwk);
    }
    Ok(out)
}

/// Every published assertion key needs its own `kid`, or upstreams could not tell them apart.
fn check_kids(c: &AssertionConfig) -> Result<(), ConfigError> {
    let current = c.key.as_ref().map(AssertionSigningKey::kid);
    for (i, k) in c.previous_keys.iter().enumerate() {
        let kid = k.common.key_id.as_deref();
        let clash = kid == current
            || c.previous_keys[..i]
                .iter()
                .any(|o| o.common.key_id.as_deref() == kid);
        if clash {
            return Err(ConfigError::invalid(
                format!("identity.assertion.previous_keys[{i}].kid"),
                format!(
                    "{:?} is used by another assertion key",
                    kid.unwrap_or_default()
                ),
            ));
        }
    }
    Ok(())
}

/// The assertion key must never be a login key: refused when any assertion key (current or previous) is the
/// same public key as a login key, or carries a login key's `kid` (the Bearer check chooses keys by `kid`).
fn check_not_a_login_key(c: &AssertionConfig, auth: &AuthConfig) -> Result<(), ConfigError> {
    let mut login_kids: Vec<&str> = auth.key_id.iter().map(String::as_str).collect();
    login_kids.extend(auth.previous_keys.iter().map(|k| k.kid.as_str()));
    let mut login_keys = vec![(auth.algorithm, &auth.decoding_key)];
    login_keys.extend(
        auth.previous_keys
            .iter()
            .map(|k| (k.algorithm, &k.decoding_key)),
    );
    let login_params: Vec<serde_json::Value> = login_keys
        .into_iter()
        .filter(|(alg, _)| !super::is_hmac(*alg))
        .filter_map(|(alg, key)| Jwk::from_decoding_key(key, Some(alg)).ok())
        .filter_map(|jwk| serde_json::to_value(&jwk.algorithm).ok())
        .collect();
    let ours = c
        .key
        .iter()
        .map(|k| ("identity.assertion.key_file".to_string(), &k.public))
        .chain(c.previous_keys.iter().enumerate().map(|(i, k)| {
            (
                format!("identity.assertion.previous_keys[{i}].public_key_file"),
                k,
            )
        }));
    if let Some(kid) = c.kid.as_deref().filter(|k| login_kids.contains(k)) {
        return Err(ConfigError::invalid(
            "identity.assertion.kid",
            format!("{kid:?} is a login key's kid; assertion keys need their own"),
        ));
    }
    for (setting, jwk) in ours {
        let same_key =
            serde_json::to_value(&jwk.algorithm).is_ok_and(|params| login_params.contains(&params));
        if same_key {
            return Err(ConfigError::invalid(
                setting,
                "is a login signing key; the assertion key must be a separate key",
            ));
        }
        if let Some(kid) = jwk
            .common
            .key_id
            .as_deref()
            .filter(|k| login_kids.contains(k))
        {
            return Err(ConfigError::invalid(
                setting
                    .replace(".key_file", ".kid")
                    .replace(".public_key_file", ".kid"),
                format!("{kid:?} is a login key's kid; assertion keys need their own"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{err, SECRET};
    use super::super::Config;

    fn ed_pem(dir: &std::path::Path, name: &str) -> (String, String) {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let private = dir.join(format!("{name}.pem"));
        let public = dir.join(format!("{name}.pub.pem"));
        std::fs::write(&private, kp.serialize_pem()).unwrap();
        std::fs::write(&public, kp.public_key_pem()).unwrap();
        (private.display().to_string(), public.display().to_string())
    }

    #[test]
    fn off_unless_a_header_is_set_and_defaults_otherwise() {
        let c = Config::from_toml(&format!("[auth]\nsecret = \"{SECRET}\"\n")).unwrap();
        assert!(c.identity.assertion.is_none());
        let c = Config::from_toml(&format!(
            "[auth]\nsecret = \"{SECRET}\"\nissuer = \"https://login\"\n[identity.assertion]\nheader = \"X-Auth-Assertion\"\n"
        ))
        .unwrap();
        let a = c.identity.assertion.unwrap();
        assert_eq!(a.header, "x-auth-assertion");
        assert_eq!(a.algorithm, jsonwebtoken::Algorithm::EdDSA);
        assert!(a.key.is_none(), "ephemeral without key_file");
        assert_eq!(a.ttl, std::time::Duration::from_secs(60));
        assert_eq!(a.issuer, "https://login");
    }

    #[test]
    fn key_file_gives_a_thumbprint_kid_unless_one_is_set() {
        let dir = tempfile::tempdir().unwrap();
        let (private, _) = ed_pem(dir.path(), "a");
        let toml = |kid: &str| {
            format!(
                "[auth]\nsecret = \"{SECRET}\"\n[identity.assertion]\nheader = \"X-Auth-Assertion\"\nkey_file = {private:?}\n{kid}"
            )
        };
        let c = Config::from_toml(&toml("")).unwrap();
        let key = c.identity.assertion.unwrap().key.unwrap();
        assert_eq!(
            key.kid().len(),
            43,
            "base64url SHA-256 thumbprint: {}",
            key.kid()
        );
        let c = Config::from_toml(&toml("kid = \"as-1\"\n")).unwrap();
        assert_eq!(c.identity.assertion.unwrap().key.unwrap().kid(), "as-1");
    }

    #[test]
    fn bad_settings_name_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let (private, public) = ed_pem(dir.path(), "a");
        let base = format!("[auth]\nsecret = \"{SECRET}\"\nkey_id = \"login\"\n[identity.assertion]\nheader = \"X-Auth-Assertion\"\n");
        for (extra, key) in [
            ("algorithm = \"HS256\"\n".to_string(), "identity.assertion.algorithm:"),
            ("ttl = \"1s\"\n".to_string(), "identity.assertion.ttl:"),
            ("ttl = \"2h\"\n".to_string(), "identity.assertion.ttl:"),
            ("key_file = \"/nonexistent.pem\"\n".to_string(), "identity.assertion.key_file:"),
            (format!("key_file = {public:?}\n"), "identity.assertion.key_file:"),
            (
                format!("algorithm = \"ES256\"\nkey_file = {private:?}\n"),
                "identity.assertion.key_file:",
            ),
            (
                format!("key_file = {private:?}\nkid = \"login\"\n"),
                "identity.assertion.kid:",
            ),
            (
                format!("key_file = {private:?}\nkid = \"x\"\n[[identity.assertion.previous_keys]]\nkid = \"x\"\npublic_key_file = {public:?}\n"),
                "identity.assertion.previous_keys[0].kid:",
            ),
            (
                "[[identity.assertion.previous_keys]]\nkid = \"p\"\n".to_string(),
                "identity.assertion.previous_keys[0].public_key_file:",
            ),
        ] {
            let e = err(&format!("{base}{extra}"));
            assert!(e.starts_with(key), "{extra}: {e}");
        }
        let e = err(&format!(
            "[auth]\nsecret = \"{SECRET}\"\n[identity.assertion]\nheader = \"Authorization\"\n"
        ));
        assert!(e.starts_with("identity.assertion.header:"), "{e}");
    }

    #[test]
    fn the_login_key_cannot_be_the_assertion_key() {
        let dir = tempfile::tempdir().unwrap();
        let (private, public) = ed_pem(dir.path(), "login");
        let e = err(&format!(
            "[auth]\nalgorithm = \"EdDSA\"\nprivate_key_file = {private:?}\npublic_key_file = {public:?}\n[identity.assertion]\nheader = \"X-Auth-Assertion\"\nkey_file = {private:?}\n"
        ));
        assert!(
            e.starts_with("identity.assertion.key_file:") && e.contains("separate"),
            "{e}"
        );
        let (other, _) = ed_pem(dir.path(), "assertion");
        Config::from_toml(&format!(
            "[auth]\nalgorithm = \"EdDSA\"\nprivate_key_file = {private:?}\npublic_key_file = {public:?}\n[identity.assertion]\nheader = \"X-Auth-Assertion\"\nkey_file = {other:?}\n"
        ))
        .unwrap();
    }
}
