//! JWT verification and issuance with one pinned algorithm per key (RFC 8725 §3.1).
//!
//! The `Validation` and keys are built once at start-up; verifying a token re-parses nothing but the token.
//! Contract: the key is chosen by the header's `kid` — the current key, or a previous one kept for rotation —
//! and never by trying keys in turn; a token without `kid` is checked against the current key only, and a
//! `kid` no key has is refused. `alg` must equal the chosen key's algorithm (so `none` and RS→HS confusion are
//! refused), a `typ` marking the gateway's identity assertion is refused, the signature is checked before any
//! claim is trusted, `exp` and `sub` are required, `nbf` and `iat` are honoured, `iss`/`aud` are required and
//! checked when configured, all with one small leeway.

use super::error::TokenError;
use super::Identity;
use crate::config::{AuthConfig, IdentityConfig};
use crate::protocol::claims::{is_assertion_typ, RESERVED_CLAIMS};
use crate::protocol::identity;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One verifying key with the validation rules pinned to its algorithm.
#[derive(Clone)]
struct KeyCheck {
    key: DecodingKey,
    validation: Validation,
}

/// Verifies Bearer tokens.
#[derive(Clone)]
pub struct TokenVerifier {
    current: KeyCheck,
    /// The current key's `kid`; None when no key ids are configured, and then a token's `kid` is not read
    /// (there are no previous keys to choose from).
    current_kid: Option<String>,
    /// Previous keys by `kid` (rotation).
    previous: std::sync::Arc<std::collections::HashMap<String, KeyCheck>>,
    leeway: u64,
    /// Decode every claim (slower) only when some are passed upstream.
    keep_extra_claims: bool,
    /// Claims that become identity headers (`[identity.claims]`); like `sub` and `name`, each must be a valid
    /// header value or the token is refused (checked here so the table below never holds such a token).
    header_claims: std::sync::Arc<[String]>,
    /// Tokens that passed full verification, keyed by their exact compact form: a client sends the same token
    /// on every request, so the signature check and JSON parsing run once per token, not once per request.
    /// Only bytes that verified can hit, and `exp` is still checked on every hit. The key includes everything
    /// that decided validity: the header (`alg`, `kid`, `typ`), the claims and the signature; the key set is
    /// this verifier's own, and a reload (which may remove a previous key) builds a new verifier with an
    /// empty table, so a token of a removed key can never be served from here.
    verified: std::sync::Arc<super::StrMap<std::sync::Arc<Identity>>>,
    /// Ended sessions, checked after every successful verification (cached or not), so the table above can
    /// never let a revoked token through.
    revocations: Option<std::sync::Arc<super::revocation::Revocations>>,
}

/// Verified tokens remembered at most (a few hundred bytes each); when full the table starts over.
const VERIFIED_TOKENS_MAX: usize = 10_000;

/// The claims the gateway itself reads.
#[derive(Deserialize)]
struct CoreClaims {
    exp: Option<f64>,
    sub: Option<String>,
    name: Option<String>,
    iat: Option<f64>,
    /// Any JSON: a token minted elsewhere with a numeric `jti` is not refused for it.
    jti: Option<serde_json::Value>,
}

/// The same, plus every other claim, for `[identity.claims]`.
#[derive(Deserialize)]
struct AllClaims {
    #[serde(flatten)]
    core: CoreClaims,
    #[serde(flatten)]
    extra: serde_json::Map<String, serde_json::Value>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn map_error(e: &jsonwebtoken::errors::Error) -> TokenError {
    match e.kind() {
        ErrorKind::InvalidSignature => TokenError::BadSignature,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::MissingAlgorithm => TokenError::Algorithm,
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidIssuer => TokenError::Issuer,
        ErrorKind::InvalidAudience => TokenError::Audience,
        ErrorKind::MissingRequiredClaim(_) | ErrorKind::InvalidSubject => TokenError::Claims,
        _ => TokenError::Malformed,
    }
}

/// The validation rules for tokens signed with `algorithm`: the same claims rules for every key.
fn validation(auth: &AuthConfig, algorithm: Algorithm) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.leeway = auth.leeway.as_secs();
    validation.validate_exp = true;
    validation.validate_nbf = true;
    let mut required = vec!["exp", "sub"];
    match &auth.issuer {
        Some(iss) => {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        None => validation.iss = None,
    }
    match &auth.audience {
        Some(aud) => {
            validation.set_audience(&[aud]);
            required.push("aud");
        }
        // A token that carries `aud` is still accepted when no audience is configured.
        None => validation.validate_aud = false,
    }
    validation.set_required_spec_claims(&required);
    validation
}

impl TokenVerifier {
    /// Builds the verifier from validated settings.
    pub fn new(auth: &AuthConfig, keep_extra_claims: bool) -> TokenVerifier {
        let previous = auth
            .previous_keys
            .iter()
            .map(|k| {
                let check = KeyCheck {
                    key: k.decoding_key.clone(),
                    validation: validation(auth, k.algorithm),
                };
                (k.kid.clone(), check)
            })
            .collect();
        TokenVerifier {
            current: KeyCheck {
                key: auth.decoding_key.clone(),
                validation: validation(auth, auth.algorithm),
            },
            current_kid: auth.key_id.clone(),
            previous: std::sync::Arc::new(previous),
            leeway: auth.leeway.as_secs(),
            keep_extra_claims,
            header_claims: std::sync::Arc::default(),
            verified: std::sync::Arc::default(),
            revocations: None,
        }
    }

    /// The same verifier, refusing tokens `table` holds as revoked.
    pub fn with_revocations(
        mut self,
        table: std::sync::Arc<super::revocation::Revocations>,
    ) -> TokenVerifier {
        self.revocations = Some(table);
        self
    }

    /// The revocation table this verifier consults, if any.
    pub fn revocations(&self) -> Option<&std::sync::Arc<super::revocation::Revocations>> {
        self.revocations.as_ref()
    }

    /// The verifier for a gateway's settings: extra claims are decoded when `[identity.claims]` maps some to
    /// headers, and those claims are checked like `sub` and `name`.
    pub fn for_identity(auth: &AuthConfig, identity: &IdentityConfig) -> TokenVerifier {
        let mut v = TokenVerifier::new(auth, !identity.claims.is_empty());
        v.header_claims = identity.claims.iter().map(|(c, _)| c.clone()).collect();
        v
    }

    /// Verifies a compact JWS and returns who it names.
    pub fn verify(&self, token: &str) -> Result<std::sync::Arc<Identity>, TokenError> {
        let now = now_secs();
        let identity = match self.verified.get(token) {
            // Same rule as the full check: valid while exp + leeway has not passed.
            Some(hit) if now <= hit.exp.saturating_add(self.leeway) => hit.clone(),
            Some(hit) => {
                drop(hit);
                self.verified.remove(token);
                return Err(TokenError::Expired);
            }
            None => self.verify_uncached(token, now)?,
        };
        match &self.revocations {
            Some(table) if table.refuses(&identity, now) => Err(TokenError::Revoked),
            _ => Ok(identity),
        }
    }

    /// The key a token's `kid` names: the current key for no `kid` (or when no key ids are configured), a
    /// previous key by exact match, otherwise none.
    fn key_for(&self, kid: Option<&str>) -> Result<&KeyCheck, TokenError> {
        match (kid, self.current_kid.as_deref()) {
            (None, _) | (_, None) => Ok(&self.current),
            (Some(k), Some(current)) if k == current => Ok(&self.current),
            (Some(k), Some(_)) => self.previous.get(k).ok_or(TokenError::UnknownKey),
        }
    }

    fn verify_uncached(
        &self,
        token: &str,
        now: u64,
    ) -> Result<std::sync::Arc<Identity>, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| map_error(&e))?;
        if header.typ.as_deref().is_some_and(is_assertion_typ) {
            return Err(TokenError::Type);
        }
        let check = self.key_for(header.kid.as_deref())?;
        let (core, extra) = if self.keep_extra_claims {
            let data = jsonwebtoken::decode::<AllClaims>(token, &check.key, &check.validation)
                .map_err(|e| map_error(&e))?;
            (data.claims.core, Some(data.claims.extra))
        } else {
            let data = jsonwebtoken::decode::<CoreClaims>(token, &check.key, &check.validation)
                .map_err(|e| map_error(&e))?;
            (data.claims, None)
        };
        if let Some(iat) = core.iat {
            if !iat.is_finite() || iat > (now + self.leeway) as f64 {
                return Err(TokenError::NotYetValid);
            }
        }
        let sub = core
            .sub
            .filter(|s| !s.is_empty())
            .ok_or(TokenError::Claims)?;
        // Fail closed: the upstream learns who the caller is only from these headers. The values are kept, so
        // a request with a token seen before sets them without checking or copying the text again.
        let claims_ok = self.header_claims.iter().all(|claim| {
            identity::claim_text(extra.as_ref().and_then(|e| e.get(claim)))
                .is_none_or(|t| identity::identity_value(&t).is_some())
        });
        let sub_value = identity::identity_value(&sub).ok_or(TokenError::HeaderValue)?;
        let name_value = match core.name.as_deref() {
            Some(name) => Some(identity::identity_value(name).ok_or(TokenError::HeaderValue)?),
            None => None,
        };
        if !claims_ok {
            return Err(TokenError::HeaderValue);
        }
        // `exp` was validated as present, numeric and not passed by the library, so this refuses nothing the
        // library accepted; it only fails closed should that ever change. A fractional `exp` rounds down.
        let exp = core
            .exp
            .filter(|e| e.is_finite() && *e >= 0.0)
            .ok_or(TokenError::Claims)? as u64;
        let identity = std::sync::Arc::new(Identity {
            sub,
            sub_value,
            name: core.name,
            name_value,
            extra,
            exp,
            jti: core.jti.and_then(|j| j.as_str().map(Into::into)),
            // Checked finite and not in the future above; a negative or fractional one rounds toward 0.
            iat: core.iat.map_or(0, |i| i.max(0.0) as u64),
        });
        if self.verified.len() >= VERIFIED_TOKENS_MAX {
            self.verified.clear();
        }
        self.verified.insert(token.into(), identity.clone());
        Ok(identity)
    }

    /// When `id`'s token stops being accepted: its `exp` plus the leeway, the same rule `verify` applies.
    /// None when that moment is beyond what the clock can represent (it never comes).
    pub fn refused_from(&self, id: &Identity) -> Option<SystemTime> {
        UNIX_EPOCH.checked_add(Duration::from_secs(id.exp.checked_add(self.leeway)?))
    }
}

/// Issues tokens the verifier accepts.
#[derive(Clone)]
pub struct TokenIssuer {
    key: EncodingKey,
    header: Header,
    issuer: Option<String>,
    audience: Option<String>,
    ttl: Duration,
}

#[derive(Serialize)]
struct IssuedClaims<'a> {
    sub: &'a str,
    name: &'a str,
    iat: u64,
    nbf: u64,
    exp: u64,
    jti: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
    #[serde(flatten)]
    extra: &'a serde_json::Map<String, serde_json::Value>,
}

impl TokenIssuer {
    /// None when the configuration has no signing key (asymmetric algorithm without a private key).
    pub fn new(auth: &AuthConfig) -> Option<TokenIssuer> {
        let key = auth.encoding_key.clone()?;
        let mut header = Header::new(auth.algorithm);
        header.kid = auth.key_id.clone();
        Some(TokenIssuer {
            key,
            header,
            issuer: auth.issuer.clone(),
            audience: auth.audience.clone(),
            ttl: auth.token_ttl,
        })
    }

    /// Signs a token for `user`; `extra` claims named in `RESERVED_CLAIMS` are dropped.
    pub fn issue(
        &self,
        user: &str,
        extra: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let now = now_secs();
        let filtered;
        let extra = if extra.keys().any(|k| RESERVED_CLAIMS.contains(&k.as_str())) {
            filtered = extra
                .iter()
                .filter(|(k, _)| !RESERVED_CLAIMS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            &filtered
        } else {
            extra
        };
        let claims = IssuedClaims {
            sub: user,
            name: user,
            iat: now,
            nbf: now,
            exp: now + self.ttl.as_secs(),
            jti: uuid::Uuid::new_v4().to_string(),
            iss: self.issuer.as_deref(),
            aud: self.audience.as_deref(),
            extra,
        };
        jsonwebtoken::encode(&self.header, &claims, &self.key)
    }

    /// How long an issued token lives.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The algorithm tokens are signed with.
    pub fn algorithm(&self) -> Algorithm {
        self.header.alg
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use serde_json::json;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn config(extra: &str) -> Config {
        Config::from_toml(&format!("[auth]\nsecret = \"{SECRET}\"\n{extra}")).unwrap()
    }

    fn sign(claims: serde_json::Value, alg: Algorithm, secret: &str) -> String {
        jsonwebtoken::encode(
            &Header::new(alg),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn now() -> u64 {
        now_secs()
    }

    #[test]
    fn issued_token_is_accepted_with_its_claims() {
        let c = config("");
        let issuer = TokenIssuer::new(&c.auth).unwrap();
        let mut extra = serde_json::Map::new();
        extra.insert("role".into(), json!("admin"));
        extra.insert("exp".into(), json!(1));
        let token = issuer.issue("jdoe", &extra).unwrap();
        let v = TokenVerifier::new(&c.auth, true);
        let id = v.verify(&token).unwrap();
        assert_eq!(id.sub, "jdoe");
        assert_eq!(id.name.as_deref(), Some("jdoe"));
        assert_eq!(id.extra.as_ref().unwrap()["role"], "admin");
    }

    #[test]
    fn each_failure_has_its_reason() {
        let c = config("");
        let v = TokenVerifier::new(&c.auth, false);
        let n = now();
        let ok = json!({"sub": "a", "exp": n + 60});
        assert!(v
            .verify(&sign(ok.clone(), Algorithm::HS256, SECRET))
            .is_ok());
        assert_eq!(
            v.verify(&sign(
                ok.clone(),
                Algorithm::HS256,
                "another-secret-another-secret-00"
            )),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            v.verify(&sign(ok.clone(), Algorithm::HS512, SECRET)),
            Err(TokenError::Algorithm)
        );
        assert_eq!(
            v.verify(&sign(
                json!({"sub": "a", "exp": n - 120}),
                Algorithm::HS256,
                SECRET
            )),
            Err(TokenError::Expired)
        );
        assert_eq!(
            v.verify(&sign(
                json!({"sub": "a", "exp": n + 600, "nbf": n + 300}),
                Algorithm::HS256,
                SECRET
            )),
            Err(TokenError::NotYetValid)
        );
        assert_eq!(
            v.verify(&sign(
                json!({"sub": "a", "exp": n + 600, "iat": n + 300}),
                Algorithm::HS256,
                SECRET
            )),
            Err(TokenError::NotYetValid)
        );
        assert_eq!(
            v.verify(&sign(json!({"sub": "a"}), Algorithm::HS256, SECRET)),
            Err(TokenError::Claims)
        );
        assert_eq!(
            v.verify(&sign(json!({"exp": n + 60}), Algorithm::HS256, SECRET)),
            Err(TokenError::Claims)
        );
        assert_eq!(v.verify("not.a.token"), Err(TokenError::Malformed));
        assert_eq!(v.verify(""), Err(TokenError::Malformed));
    }

    #[test]
    fn a_remembered_token_still_expires_and_other_bytes_never_hit() {
        let c = config("leeway = \"0s\"\n");
        let v = TokenVerifier::new(&c.auth, false);
        let t = sign(
            json!({"sub": "a", "exp": now() + 1}),
            Algorithm::HS256,
            SECRET,
        );
        assert!(v.verify(&t).is_ok());
        assert!(v.verify(&t).is_ok(), "second check served from the table");
        // A different signature on the same claims is not the same token.
        let last = if t.ends_with('A') { "B" } else { "A" };
        let forged = format!("{}{last}", &t[..t.len() - 1]);
        assert!(v.verify(&forged).is_err());
        std::thread::sleep(std::time::Duration::from_millis(2100));
        assert_eq!(v.verify(&t), Err(TokenError::Expired));
        assert_eq!(v.verify(&t), Err(TokenError::Expired));
    }

    #[test]
    fn identity_claims_that_cannot_be_header_values_are_refused() {
        let c = config("[identity.claims]\nrole = \"X-Role\"\n");
        let v = TokenVerifier::for_identity(&c.auth, &c.identity);
        let exp = now() + 60;
        let token = |claims: serde_json::Value| sign(claims, Algorithm::HS256, SECRET);
        for bad in [
            json!({"sub": "bob\u{1}", "exp": exp}),
            json!({"sub": "bob\n", "exp": exp}),
            json!({"sub": "bob\u{7f}", "exp": exp}),
            json!({"sub": "bob ", "exp": exp}),
            json!({"sub": "bob", "name": "Bob\r\nX-Admin: 1", "exp": exp}),
            json!({"sub": "bob", "role": "admin\u{0}", "exp": exp}),
            json!({"sub": "bob", "role": ["a", "b\n"], "exp": exp}),
        ] {
            let t = token(bad.clone());
            assert_eq!(v.verify(&t), Err(TokenError::HeaderValue), "{bad}");
            // Refused again, not served from the verified-token table.
            assert_eq!(v.verify(&t), Err(TokenError::HeaderValue), "{bad}");
        }
        // A claim that is not mapped to a header may hold anything.
        let ok =
            token(json!({"sub": "jos\u{e9}", "name": "Jos\u{e9}", "note": "a\nb", "exp": exp}));
        assert_eq!(v.verify(&ok).unwrap().sub, "jos\u{e9}");
        // The same sub is refused by a verifier without mapped claims too.
        let plain = TokenVerifier::new(&c.auth, false);
        assert_eq!(
            plain.verify(&token(json!({"sub": "bob\u{1}", "exp": exp}))),
            Err(TokenError::HeaderValue)
        );
    }

    #[test]
    fn identity_carries_exp_and_is_refused_from_exp_plus_leeway() {
        let c = config("leeway = \"7s\"\n");
        let v = TokenVerifier::new(&c.auth, false);
        let exp = now() + 60;
        let t = sign(json!({"sub": "a", "exp": exp}), Algorithm::HS256, SECRET);
        let id = v.verify(&t).unwrap();
        assert_eq!(id.exp, exp);
        assert_eq!(v.verify(&t).unwrap().exp, exp, "remembered tokens keep exp");
        assert_eq!(
            v.refused_from(&id),
            Some(UNIX_EPOCH + Duration::from_secs(exp + 7))
        );
    }

    /// Signs `claims` with `secret` and, when given, a `kid` and a `typ`.
    fn sign_kid(claims: &serde_json::Value, secret: &str, kid: Option<&str>) -> String {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = kid.map(str::to_string);
        jsonwebtoken::encode(&h, claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
    }

    const OLD: &str = "old-secret-old-secret-old-secret-0123";

    fn rotating() -> Config {
        Config::from_toml(&format!(
            "[auth]\nsecret = \"{SECRET}\"\nkey_id = \"new\"\n[[auth.previous_keys]]\nkid = \"old\"\nsecret = \"{OLD}\"\n"
        ))
        .unwrap()
    }

    #[test]
    fn the_kid_chooses_the_key_and_keys_are_never_tried_in_turn() {
        let c = rotating();
        let v = TokenVerifier::new(&c.auth, false);
        let ok = json!({"sub": "a", "exp": now() + 60});
        assert!(v.verify(&sign_kid(&ok, SECRET, Some("new"))).is_ok());
        assert!(v.verify(&sign_kid(&ok, OLD, Some("old"))).is_ok());
        // The right secret under the other key's kid: that key is the only one tried.
        assert_eq!(
            v.verify(&sign_kid(&ok, OLD, Some("new"))),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            v.verify(&sign_kid(&ok, SECRET, Some("old"))),
            Err(TokenError::BadSignature)
        );
        // No kid: the current key only, even though the previous key would verify it.
        assert!(v.verify(&sign_kid(&ok, SECRET, None)).is_ok());
        assert_eq!(
            v.verify(&sign_kid(&ok, OLD, None)),
            Err(TokenError::BadSignature)
        );
        // A kid no key has.
        assert_eq!(
            v.verify(&sign_kid(&ok, SECRET, Some("other"))),
            Err(TokenError::UnknownKey)
        );
        assert_eq!(
            v.verify(&sign_kid(&ok, SECRET, Some("NEW"))),
            Err(TokenError::UnknownKey),
            "kids compare exactly"
        );
    }

    #[test]
    fn issued_tokens_carry_the_current_kid() {
        let c = rotating();
        let token = TokenIssuer::new(&c.auth)
            .unwrap()
            .issue("a", &serde_json::Map::new())
            .unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some("new"));
        assert!(TokenVerifier::new(&c.auth, false).verify(&token).is_ok());
    }

    #[test]
    fn without_key_ids_the_kid_is_not_read() {
        let c = config("");
        let v = TokenVerifier::new(&c.auth, false);
        let ok = json!({"sub": "a", "exp": now() + 60});
        assert!(v.verify(&sign_kid(&ok, SECRET, Some("anything"))).is_ok());
    }

    #[test]
    fn a_removed_key_is_refused_even_for_a_token_verified_before() {
        let before = TokenVerifier::new(&rotating().auth, false);
        let old = sign_kid(&json!({"sub": "a", "exp": now() + 60}), OLD, Some("old"));
        assert!(
            before.verify(&old).is_ok(),
            "remembered by the old verifier"
        );
        // What a reload that drops the previous key builds.
        let after = TokenVerifier::new(
            &Config::from_toml(&format!(
                "[auth]\nsecret = \"{SECRET}\"\nkey_id = \"new\"\n"
            ))
            .unwrap()
            .auth,
            false,
        );
        assert_eq!(after.verify(&old), Err(TokenError::UnknownKey));
    }

    #[test]
    fn an_assertion_typ_is_refused_whatever_the_key() {
        let c = config("");
        let v = TokenVerifier::new(&c.auth, false);
        let claims = json!({"sub": "a", "exp": now() + 60});
        for typ in [
            "assertion+jwt",
            "application/assertion+jwt",
            "ASSERTION+JWT",
        ] {
            let mut h = Header::new(Algorithm::HS256);
            h.typ = Some(typ.into());
            let t = jsonwebtoken::encode(&h, &claims, &EncodingKey::from_secret(SECRET.as_bytes()))
                .unwrap();
            assert_eq!(v.verify(&t), Err(TokenError::Type), "{typ}");
        }
    }

    #[test]
    fn leeway_accepts_slightly_expired_tokens() {
        let c = config("");
        let v = TokenVerifier::new(&c.auth, false);
        let t = sign(
            json!({"sub": "a", "exp": now() - 10}),
            Algorithm::HS256,
            SECRET,
        );
        assert!(v.verify(&t).is_ok());
    }

    #[test]
    fn alg_none_is_refused() {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let c = config("");
        let v = TokenVerifier::new(&c.auth, false);
        let payload = b64.encode(json!({"sub": "a", "exp": now() + 60}).to_string());
        for alg in ["none", "None", "NONE", "nOnE"] {
            let header = b64.encode(format!("{{\"alg\":\"{alg}\",\"typ\":\"JWT\"}}"));
            assert!(v.verify(&format!("{header}.{payload}.")).is_err(), "{alg}");
            assert!(v.verify(&format!("{header}.{payload}")).is_err(), "{alg}");
        }
    }

    #[test]
    fn issuer_and_audience_are_required_when_configured() {
        let c = config("issuer = \"https://gw\"\naudience = \"legacy\"\n");
        let v = TokenVerifier::new(&c.auth, false);
        let n = now() + 60;
        let good = json!({"sub": "a", "exp": n, "iss": "https://gw", "aud": "legacy"});
        assert!(v.verify(&sign(good, Algorithm::HS256, SECRET)).is_ok());
        let aud_list = json!({"sub": "a", "exp": n, "iss": "https://gw", "aud": ["x", "legacy"]});
        assert!(v.verify(&sign(aud_list, Algorithm::HS256, SECRET)).is_ok());
        assert_eq!(
            v.verify(&sign(
                json!({"sub": "a", "exp": n, "iss": "evil", "aud": "legacy"}),
                Algorithm::HS256,
                SECRET
            )),
            Err(TokenError::Issuer)
        );
        assert_eq!(
            v.verify(&sign(
                json!({"sub": "a", "exp": n, "iss": "https://gw", "aud": "other"}),
                Algorithm::HS256,
                SECRET
            )),
            Err(TokenError::Audience)
        );
        assert_eq!(
            v.verify(&sign(
                json!({"sub": "a", "exp": n, "aud": "legacy"}),
                Algorithm::HS256,
                SECRET
            )),
            Err(TokenError::Claims)
        );
        let issuer = TokenIssuer::new(&c.auth).unwrap();
        assert!(v
            .verify(&issuer.issue("a", &serde_json::Map::new()).unwrap())
            .is_ok());
    }
}
