//! `[auth]`: the token algorithm and its keys (HMAC secret or PEM key files), lifetimes and size limits.

use super::file::AuthFile;
use super::value::{dur, resolve, secret};
use super::ConfigError;
use crate::defaults;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// Token signing and verification.
#[derive(Clone)]
pub struct AuthConfig {
    pub algorithm: Algorithm,
    pub decoding_key: DecodingKey,
    /// Present when the gateway can issue tokens (HMAC secret, or a private key file).
    pub encoding_key: Option<EncodingKey>,
    pub key_id: Option<String>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub leeway: Duration,
    pub token_ttl: Duration,
    pub max_token_bytes: usize,
    /// True when the shipped development secret is in use.
    pub dev_secret: bool,
    /// Revocation bounds and `auth.recheck_active`.
    pub sessions: super::revocation::SessionsConfig,
}

/// The algorithms `auth.algorithm` accepts, in their canonical spelling.
const KNOWN_ALGORITHMS: [&str; 12] = [
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
    "ES384", "EdDSA",
];

/// The verification key, the signing key if any, and whether it is the development secret.
type Keys = (DecodingKey, Option<EncodingKey>, bool);

/// Validates `[auth]`; relative key paths resolve against `base`.
pub(super) fn validate_auth(a: AuthFile, base: &Path) -> Result<AuthConfig, ConfigError> {
    let alg_text = a.algorithm.unwrap_or_else(|| "HS256".to_string());
    let algorithm = parse_algorithm(&alg_text)?;
    // An empty value means "not set", so an environment variable can clear a secret from the file.
    let secret = secret(
        "auth.secret",
        a.secret.filter(|s| !s.is_empty()),
        a.secret_file,
        base,
    )?;
    let is_hmac = matches!(
        algorithm,
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
    );
    let (decoding_key, encoding_key, dev_secret) = if is_hmac {
        if a.public_key_file.is_some() || a.private_key_file.is_some() {
            return Err(ConfigError::invalid(
                "auth.public_key_file",
                format!("{alg_text} uses auth.secret, not key files"),
            ));
        }
        hmac_keys(secret, &alg_text)?
    } else {
        if secret.is_some() {
            return Err(ConfigError::invalid(
                "auth.secret",
                format!(
                    "{alg_text} uses auth.public_key_file / auth.private_key_file, not a secret"
                ),
            ));
        }
        let public = a.public_key_file.map(|p| resolve(base, &p));
        let private = a.private_key_file.map(|p| resolve(base, &p));
        key_file_keys(algorithm, &alg_text, public, private)?
    };
    let token_ttl = dur(a.token_ttl, defaults::TOKEN_TTL);
    if token_ttl.is_zero() {
        return Err(ConfigError::invalid(
            "auth.token_ttl",
            "must be longer than 0s",
        ));
    }
    let max_token_bytes = a.max_token_bytes.unwrap_or(defaults::MAX_TOKEN_BYTES);
    if max_token_bytes < 256 {
        return Err(ConfigError::invalid(
            "auth.max_token_bytes",
            "must be at least 256",
        ));
    }
    let sessions = super::revocation::validate_sessions(a.recheck_active, a.revocation, token_ttl)?;
    Ok(AuthConfig {
        algorithm,
        decoding_key,
        encoding_key,
        key_id: a.key_id,
        issuer: a.issuer.filter(|s| !s.is_empty()),
        audience: a.audience.filter(|s| !s.is_empty()),
        leeway: dur(a.leeway, defaults::TOKEN_LEEWAY),
        token_ttl,
        max_token_bytes,
        dev_secret,
        sessions,
    })
}

/// `auth.algorithm`, compared without ASCII case.
fn parse_algorithm(text: &str) -> Result<Algorithm, ConfigError> {
    let canonical = KNOWN_ALGORITHMS
        .iter()
        .find(|k| k.eq_ignore_ascii_case(text))
        .copied()
        .unwrap_or("");
    Algorithm::from_str(canonical).map_err(|_| {
        ConfigError::invalid(
            "auth.algorithm",
            format!("{text:?} is not one of {}", KNOWN_ALGORITHMS.join(", ")),
        )
    })
}

/// Both keys from the HMAC secret, which must be present and long enough to resist brute force.
fn hmac_keys(secret: Option<String>, alg_text: &str) -> Result<Keys, ConfigError> {
    let secret = secret.ok_or_else(|| {
        ConfigError::invalid(
            "auth.secret",
            format!("required for {alg_text} (or auth.secret_file, or GATEWAY_AUTH__SECRET)"),
        )
    })?;
    if secret.len() < defaults::MIN_HMAC_SECRET_BYTES {
        return Err(ConfigError::invalid(
            "auth.secret",
            format!(
                "is {} bytes; an HMAC secret needs at least {} random bytes",
                secret.len(),
                defaults::MIN_HMAC_SECRET_BYTES
            ),
        ));
    }
    Ok((
        DecodingKey::from_secret(secret.as_bytes()),
        Some(EncodingKey::from_secret(secret.as_bytes())),
        secret == defaults::DEV_JWT_SECRET,
    ))
}

/// The public key (required) and the private key (optional: without it the gateway only verifies).
fn key_file_keys(
    algorithm: Algorithm,
    alg_text: &str,
    public: Option<PathBuf>,
    private: Option<PathBuf>,
) -> Result<Keys, ConfigError> {
    let public = public.ok_or_else(|| {
        ConfigError::invalid("auth.public_key_file", format!("required for {alg_text}"))
    })?;
    let decoding = read_public_key(algorithm, alg_text, &public)?;
    let encoding = private
        .map(|p| read_private_key(algorithm, alg_text, &p))
        .transpose()?;
    if let Some(enc) = &encoding {
        check_key_pair(algorithm, enc, &decoding)?;
    }
    Ok((decoding, encoding, false))
}

/// Reads `auth.public_key_file` as a PEM key of the algorithm's family.
fn read_public_key(
    algorithm: Algorithm,
    alg_text: &str,
    path: &Path,
) -> Result<DecodingKey, ConfigError> {
    let key = "auth.public_key_file";
    let pem = std::fs::read(path)
        .map_err(|e| ConfigError::invalid(key, format!("{}: {e}", path.display())))?;
    match algorithm {
        Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(&pem),
        Algorithm::EdDSA => DecodingKey::from_ed_pem(&pem),
        _ => DecodingKey::from_rsa_pem(&pem),
    }
    .map_err(|e| ConfigError::invalid(key, format!("not a {alg_text} public key PEM: {e}")))
}

/// Reads `auth.private_key_file` as a PEM key of the algorithm's family.
fn read_private_key(
    algorithm: Algorithm,
    alg_text: &str,
    path: &Path,
) -> Result<EncodingKey, ConfigError> {
    let key = "auth.private_key_file";
    let pem = std::fs::read(path)
        .map_err(|e| ConfigError::invalid(key, format!("{}: {e}", path.display())))?;
    match algorithm {
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&pem),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
        _ => EncodingKey::from_rsa_pem(&pem),
    }
    .map_err(|e| ConfigError::invalid(key, format!("not a {alg_text} private key PEM: {e}")))
}

/// Signs a probe token and verifies it with the public key.
///
/// A mismatched pair would issue tokens the gateway itself refuses: find out now, not at the first login.
fn check_key_pair(
    algorithm: Algorithm,
    encoding: &EncodingKey,
    decoding: &DecodingKey,
) -> Result<(), ConfigError> {
    let probe = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(algorithm),
        &serde_json::json!({"sub": "probe", "exp": u32::MAX}),
        encoding,
    )
    .map_err(|e| {
        ConfigError::invalid("auth.private_key_file", format!("cannot sign with it: {e}"))
    })?;
    let mut v = jsonwebtoken::Validation::new(algorithm);
    v.validate_aud = false;
    if jsonwebtoken::decode::<serde_json::Value>(&probe, decoding, &v).is_err() {
        return Err(ConfigError::invalid(
            "auth.private_key_file",
            "does not match auth.public_key_file",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{err, SECRET};
    use super::super::Config;
    use jsonwebtoken::Algorithm;
    use std::path::Path;

    #[test]
    fn short_secret_is_refused() {
        let e = err("[auth]\nsecret = \"short\"\n");
        assert!(e.starts_with("auth.secret:") && e.contains("32"), "{e}");
    }

    #[test]
    fn missing_secret_is_refused() {
        assert!(err("").starts_with("auth.secret:"));
    }

    #[test]
    fn unknown_algorithm_lists_the_known_ones() {
        let e = err(&format!(
            "[auth]\nalgorithm = \"none\"\nsecret = \"{SECRET}\"\n"
        ));
        assert!(
            e.starts_with("auth.algorithm:") && e.contains("HS256, HS384") && e.contains("EdDSA"),
            "{e}"
        );
    }

    #[test]
    fn secret_and_secret_file_together_are_refused() {
        let e = err(&format!(
            "[auth]\nsecret = \"{SECRET}\"\nsecret_file = \"/nonexistent\"\n"
        ));
        assert!(e.contains("not both"), "{e}");
    }

    #[test]
    fn secret_file_is_read_without_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("jwt");
        std::fs::write(&f, format!("{SECRET}\n")).unwrap();
        let c = Config::from_toml(&format!(
            "[auth]\nsecret_file = {:?}\n",
            f.display().to_string()
        ))
        .unwrap();
        assert!(!c.auth.dev_secret);
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &serde_json::json!({"sub": "a", "exp": 4_000_000_000u64}),
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        let v = jsonwebtoken::Validation::new(Algorithm::HS256);
        assert!(
            jsonwebtoken::decode::<serde_json::Value>(&token, &c.auth.decoding_key, &v).is_ok()
        );
    }

    #[test]
    fn mismatched_key_pair_is_refused_and_algorithm_names_ignore_case() {
        let dir = tempfile::tempdir().unwrap();
        let a = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let b = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let private = dir.path().join("a.pem");
        let public_a = dir.path().join("a.pub");
        let public_b = dir.path().join("b.pub");
        std::fs::write(&private, a.serialize_pem()).unwrap();
        std::fs::write(&public_a, a.public_key_pem()).unwrap();
        std::fs::write(&public_b, b.public_key_pem()).unwrap();
        let toml = |public: &Path| {
            format!(
                "[auth]\nalgorithm = \"es256\"\nprivate_key_file = {:?}\npublic_key_file = {:?}\n",
                private.display().to_string(),
                public.display().to_string()
            )
        };
        Config::from_toml(&toml(&public_a)).unwrap();
        let e = err(&toml(&public_b));
        assert!(
            e.starts_with("auth.private_key_file:") && e.contains("does not match"),
            "{e}"
        );
    }
}
