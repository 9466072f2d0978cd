//! `[auth]`: the token algorithm and its keys (HMAC secret or PEM key files), lifetimes and size limits, and
//! the previous keys that still verify tokens during a rotation (`[[auth.previous_keys]]`).

use super::file::{AuthFile, PreviousKeyFile};
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
    /// Retired keys that still verify the tokens they signed, each chosen by its `kid` (never tried in turn).
    pub previous_keys: Vec<VerifyKey>,
    /// True when the shipped development secret is in use (as the current or a previous key).
    pub dev_secret: bool,
    /// Revocation bounds and `auth.recheck_active`.
    pub sessions: super::revocation::SessionsConfig,
}

/// A key that only verifies: a previous signing key kept for rotation.
#[derive(Clone)]
pub struct VerifyKey {
    /// The `kid` tokens signed with this key carry.
    pub kid: String,
    /// The only `alg` accepted with this key.
    pub algorithm: Algorithm,
    pub decoding_key: DecodingKey,
}

/// True for the HMAC algorithms, whose key is a shared secret.
pub fn is_hmac(algorithm: Algorithm) -> bool {
    matches!(
        algorithm,
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
    )
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
    let algorithm = parse_algorithm("auth.algorithm", &alg_text)?;
    // An empty value means "not set", so an environment variable can clear a secret from the file.
    let secret = secret(
        "auth.secret",
        a.secret.filter(|s| !s.is_empty()),
        a.secret_file,
        base,
    )?;
    let (decoding_key, encoding_key, dev_secret) = if is_hmac(algorithm) {
        if a.public_key_file.is_some() || a.private_key_file.is_some() {
            return Err(ConfigError::invalid(
                "auth.public_key_file",
                format!("{alg_text} uses auth.secret, not key files"),
            ));
        }
        hmac_keys("auth", secret, &alg_text)?
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
    let key_id = a.key_id.filter(|k| !k.is_empty());
    let previous_keys =
        validate_previous_keys(a.previous_keys, algorithm, key_id.as_deref(), base)?;
    let dev_secret = dev_secret || previous_keys.iter().any(|k| k.is_dev);
    let sessions = super::revocation::validate_sessions(a.recheck_active, a.revocation, token_ttl)?;
    Ok(AuthConfig {
        algorithm,
        decoding_key,
        encoding_key,
        key_id,
        previous_keys: previous_keys.into_iter().map(|k| k.key).collect(),
        issuer: a.issuer.filter(|s| !s.is_empty()),
        audience: a.audience.filter(|s| !s.is_empty()),
        leeway: dur(a.leeway, defaults::TOKEN_LEEWAY),
        token_ttl,
        max_token_bytes,
        dev_secret,
        sessions,
    })
}

/// A validated previous key and whether it is the development secret.
struct Previous {
    key: VerifyKey,
    is_dev: bool,
}

/// Validates `[[auth.previous_keys]]`: each needs a `kid` no other key has (the current key's included), and
/// the current key needs a `kid` too, or tokens it signs could not be told apart from the previous keys'.
fn validate_previous_keys(
    list: Vec<PreviousKeyFile>,
    current_algorithm: Algorithm,
    current_kid: Option<&str>,
    base: &Path,
) -> Result<Vec<Previous>, ConfigError> {
    if list.is_empty() {
        return Ok(Vec::new());
    }
    let Some(current_kid) = current_kid else {
        return Err(ConfigError::invalid(
            "auth.key_id",
            "required when auth.previous_keys is set: tokens are matched to their key by kid",
        ));
    };
    let mut out: Vec<Previous> = Vec::with_capacity(list.len());
    for (i, p) in list.into_iter().enumerate() {
        let prefix = format!("auth.previous_keys[{i}]");
        let key = |k: &str| format!("{prefix}.{k}");
        let kid = p
            .kid
            .filter(|k| !k.is_empty())
            .ok_or_else(|| ConfigError::invalid(key("kid"), "required"))?;
        if kid == current_kid || out.iter().any(|o| o.key.kid == kid) {
            return Err(ConfigError::invalid(
                key("kid"),
                format!("{kid:?} is used by another key; every key needs its own kid"),
            ));
        }
        let (algorithm, alg_text) = match p.algorithm {
            Some(text) => (parse_algorithm(&key("algorithm"), &text)?, text),
            None => (current_algorithm, format!("{current_algorithm:?}")),
        };
        let secret = secret(
            &key("secret"),
            p.secret.filter(|s| !s.is_empty()),
            p.secret_file,
            base,
        )?;
        let (decoding_key, is_dev) = if is_hmac(algorithm) {
            if p.public_key_file.is_some() {
                return Err(ConfigError::invalid(
                    key("public_key_file"),
                    format!("{alg_text} uses a secret, not a key file"),
                ));
            }
            let (decoding, _, dev) = hmac_keys(&prefix, secret, &alg_text)?;
            (decoding, dev)
        } else {
            if secret.is_some() {
                return Err(ConfigError::invalid(
                    key("secret"),
                    format!("{alg_text} uses public_key_file, not a secret"),
                ));
            }
            let path = p.public_key_file.ok_or_else(|| {
                ConfigError::invalid(key("public_key_file"), format!("required for {alg_text}"))
            })?;
            let decoding = read_public_key(
                &key("public_key_file"),
                algorithm,
                &alg_text,
                &resolve(base, &path),
            )?;
            (decoding, false)
        };
        out.push(Previous {
            key: VerifyKey {
                kid,
                algorithm,
                decoding_key,
            },
            is_dev,
        });
    }
    Ok(out)
}

/// An algorithm name, compared without ASCII case; `key` names the setting in errors.
fn parse_algorithm(key: &str, text: &str) -> Result<Algorithm, ConfigError> {
    let canonical = KNOWN_ALGORITHMS
        .iter()
        .find(|k| k.eq_ignore_ascii_case(text))
        .copied()
        .unwrap_or("");
    Algorithm::from_str(canonical).map_err(|_| {
        ConfigError::invalid(
            key,
            format!("{text:?} is not one of {}", KNOWN_ALGORITHMS.join(", ")),
        )
    })
}

/// Both keys from the HMAC secret, which must be present and long enough to resist brute force; `prefix` is
/// the table the secret was read from (`auth`, `auth.previous_keys[0]`).
fn hmac_keys(prefix: &str, secret: Option<String>, alg_text: &str) -> Result<Keys, ConfigError> {
    let key = format!("{prefix}.secret");
    let secret = secret.ok_or_else(|| {
        let hint = if prefix == "auth" {
            " (or auth.secret_file, or GATEWAY_AUTH__SECRET)".to_string()
        } else {
            format!(" (or {prefix}.secret_file)")
        };
        ConfigError::invalid(&key, format!("required for {alg_text}{hint}"))
    })?;
    if secret.len() < defaults::MIN_HMAC_SECRET_BYTES {
        return Err(ConfigError::invalid(
            &key,
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
    let decoding = read_public_key("auth.public_key_file", algorithm, alg_text, &public)?;
    let encoding = private
        .map(|p| read_private_key(algorithm, alg_text, &p))
        .transpose()?;
    if let Some(enc) = &encoding {
        check_key_pair(algorithm, enc, &decoding)?;
    }
    Ok((decoding, encoding, false))
}

/// Reads a public key file (`key` names the setting) as a PEM key of the algorithm's family.
fn read_public_key(
    key: &str,
    algorithm: Algorithm,
    alg_text: &str,
    path: &Path,
) -> Result<DecodingKey, ConfigError> {
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
    fn previous_keys_need_their_own_kid_and_a_current_kid() {
        let prev = |kid: &str| {
            format!("[[auth.previous_keys]]\nkid = \"{kid}\"\nsecret = \"{SECRET}-old\"\n")
        };
        let e = err(&format!("[auth]\nsecret = \"{SECRET}\"\n{}", prev("a")));
        assert!(
            e.starts_with("auth.key_id:") && e.contains("previous_keys"),
            "{e}"
        );
        let e = err(&format!(
            "[auth]\nsecret = \"{SECRET}\"\nkey_id = \"a\"\n{}",
            prev("a")
        ));
        assert!(e.starts_with("auth.previous_keys[0].kid:"), "{e}");
        let e = err(&format!(
            "[auth]\nsecret = \"{SECRET}\"\nkey_id = \"c\"\n{}{}",
            prev("a"),
            prev("a")
        ));
        assert!(e.starts_with("auth.previous_keys[1].kid:"), "{e}");
        let e = err(&format!(
            "[auth]\nsecret = \"{SECRET}\"\nkey_id = \"c\"\n[[auth.previous_keys]]\nsecret = \"{SECRET}\"\n"
        ));
        assert!(e.starts_with("auth.previous_keys[0].kid:"), "{e}");
        let e = err(&format!(
            "[auth]\nsecret = \"{SECRET}\"\nkey_id = \"c\"\n[[auth.previous_keys]]\nkid = \"a\"\nsecret = \"short\"\n"
        ));
        assert!(e.starts_with("auth.previous_keys[0].secret:"), "{e}");
        let c = Config::from_toml(&format!(
            "[auth]\nsecret = \"{SECRET}\"\nkey_id = \"c\"\n{}{}",
            prev("a"),
            prev("b")
        ))
        .unwrap();
        let kids: Vec<&str> = c
            .auth
            .previous_keys
            .iter()
            .map(|k| k.kid.as_str())
            .collect();
        assert_eq!(kids, ["a", "b"]);
        assert!(c
            .auth
            .previous_keys
            .iter()
            .all(|k| k.algorithm == Algorithm::HS256));
    }

    #[test]
    fn an_asymmetric_previous_key_needs_a_public_key_file_of_its_algorithm() {
        let dir = tempfile::tempdir().unwrap();
        let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let public = dir.path().join("old.pub");
        std::fs::write(&public, ec.public_key_pem()).unwrap();
        let base = format!("[auth]\nsecret = \"{SECRET}\"\nkey_id = \"new\"\n");
        let e = err(&format!(
            "{base}[[auth.previous_keys]]\nkid = \"old\"\nalgorithm = \"ES256\"\n"
        ));
        assert!(
            e.starts_with("auth.previous_keys[0].public_key_file:"),
            "{e}"
        );
        let e = err(&format!(
            "{base}[[auth.previous_keys]]\nkid = \"old\"\nalgorithm = \"EdDSA\"\npublic_key_file = {:?}\n",
            public.display().to_string()
        ));
        assert!(
            e.starts_with("auth.previous_keys[0].public_key_file:"),
            "{e}"
        );
        let c = Config::from_toml(&format!(
            "{base}[[auth.previous_keys]]\nkid = \"old\"\nalgorithm = \"es256\"\npublic_key_file = {:?}\n",
            public.display().to_string()
        ))
        .unwrap();
        assert_eq!(c.auth.previous_keys[0].algorithm, Algorithm::ES256);
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
