//! The signed identity assertion (issue 18): a short-lived JWT on each authenticated forwarded request, so an
//! upstream reachable by others can check that the gateway authorised the request rather than trust headers.
//!
//! Contract: signed with the assertion key (EdDSA or ES256, never a login key), header `typ: assertion+jwt`
//! and the key's `kid`; claims `iss`, `sub`, `name`, the claims `[identity.claims]` maps, `aud` (the route's
//! audience), `iat`, `exp` (`iat` + ttl, never after the user's token expires) and `jti` (the user's token's
//! `jti`, so an upstream can tie the assertion to a session; not unique per assertion). Signing is cached per
//! (user token, route) until half the assertion's lifetime has passed, so repeats cost a hash lookup and an
//! upstream always receives an assertion with at least half its lifetime left.

use super::Identity;
use crate::config::{AssertionConfig, AssertionSigningKey, IdentityConfig, RouteConfig};
use crate::protocol::claims::{ASSERTION_TYP, RESERVED_CLAIMS};
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{EncodingKey, Header};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// Path of the assertion keys' JWKS (public, no token needed).
pub const ASSERTION_JWKS_PATH: &str = "/.well-known/gateway/assertion-jwks.json";

/// Why no assertion could be made for a request that needs one.
#[derive(Debug, thiserror::Error)]
pub enum AssertionError {
    /// The signing library refused (it signed a probe at start, so this is not expected).
    #[error("cannot sign the identity assertion: {0}")]
    Sign(String),
}

/// A signed assertion remembered for one (user token, route).
struct Signed {
    value: HeaderValue,
    /// From this second on the assertion is signed afresh.
    refresh_at: u64,
}

/// Signs (and remembers) identity assertions for one configuration.
pub struct Asserter {
    header: HeaderName,
    jws: Header,
    key: EncodingKey,
    issuer: String,
    ttl: u64,
    /// Claim names `[identity.claims]` maps, copied into assertions when the token has them.
    claims: Vec<String>,
    /// Per route (same index as the router's): its audience, or None when it gets no assertion.
    audiences: Vec<Option<String>>,
    /// Per route: signed assertions by the exact user token.
    cache: Vec<super::StrMap<Signed>>,
    cache_size: usize,
    jwks: Bytes,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    aud: &'a str,
    iat: u64,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    jti: Option<&'a str>,
    #[serde(flatten)]
    extra: BTreeMap<&'a str, &'a serde_json::Value>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Asserter {
    /// Builds the signer for `cfg` with `key` (from `key_file`, or the process's ephemeral key); `routes`
    /// decide which routes get an assertion and with which audience.
    pub fn new(
        cfg: &AssertionConfig,
        key: &AssertionSigningKey,
        identity: &IdentityConfig,
        routes: &[RouteConfig],
    ) -> Result<Asserter, String> {
        let mut public = key.public.clone();
        if let Some(kid) = &cfg.kid {
            public.common.key_id = Some(kid.clone());
        }
        let mut jws = Header::new(cfg.algorithm);
        jws.typ = Some(ASSERTION_TYP.to_string());
        jws.kid = public.common.key_id.clone();
        let mut keys = vec![public];
        keys.extend(cfg.previous_keys.iter().cloned());
        let jwks = serde_json::to_vec(&JwkSet { keys })
            .map_err(|e| format!("identity.assertion: cannot publish the JWKS: {e}"))?;
        Ok(Asserter {
            header: cfg.header.clone(),
            jws,
            key: key.encoding.clone(),
            issuer: cfg.issuer.clone(),
            ttl: cfg.ttl.as_secs(),
            claims: identity
                .claims
                .iter()
                .map(|(c, _)| c.clone())
                .filter(|c| !RESERVED_CLAIMS.contains(&c.as_str()))
                .collect(),
            audiences: routes
                .iter()
                .map(|r| (r.assertion && !r.public).then(|| r.assertion_audience.clone()))
                .collect(),
            cache: routes.iter().map(|_| super::StrMap::default()).collect(),
            cache_size: cfg.cache_size,
            jwks: Bytes::from(jwks),
        })
    }

    /// The header the assertion travels in.
    pub fn header(&self) -> &HeaderName {
        &self.header
    }

    /// The published key set (current and previous assertion keys).
    pub fn jwks(&self) -> &Bytes {
        &self.jwks
    }

    /// The assertion for `id` on route `route`, or None when the route gets none. `token` (the user's token
    /// as sent) keys the cache; without it the assertion is signed afresh.
    pub fn for_request(
        &self,
        route: usize,
        token: Option<&str>,
        id: &Identity,
    ) -> Result<Option<HeaderValue>, AssertionError> {
        let Some(aud) = self.audiences.get(route).and_then(Option::as_deref) else {
            return Ok(None);
        };
        let now = now_secs();
        let cache = &self.cache[route];
        if let Some(hit) = token.and_then(|t| cache.get(t)) {
            if now < hit.refresh_at {
                return Ok(Some(hit.value.clone()));
            }
        }
        let signed = self.sign(aud, id, now)?;
        let value = signed.value.clone();
        if let Some(token) = token.filter(|_| self.cache_size > 0) {
            // Same bound as the verified-token table: when full, start over rather than track ages.
            if cache.len() >= self.cache_size {
                cache.clear();
            }
            cache.insert(token.into(), signed);
        }
        Ok(Some(value))
    }

    fn sign(&self, aud: &str, id: &Identity, now: u64) -> Result<Signed, AssertionError> {
        // Never outlive the user's token; a token inside its leeway still gets a (one-second) assertion.
        let exp = (now + self.ttl).min(id.exp.max(now + 1));
        let extra = match &id.extra {
            Some(map) => self
                .claims
                .iter()
                .filter_map(|c| map.get(c).filter(|v| !v.is_null()).map(|v| (c.as_str(), v)))
                .collect(),
            None => BTreeMap::new(),
        };
        let claims = Claims {
            iss: &self.issuer,
            sub: &id.sub,
            name: id.name.as_deref(),
            aud,
            iat: now,
            exp,
            jti: id.jti.as_deref(),
            extra,
        };
        let jwt = jsonwebtoken::encode(&self.jws, &claims, &self.key)
            .map_err(|e| AssertionError::Sign(e.to_string()))?;
        let value = HeaderValue::from_str(&jwt).map_err(|e| AssertionError::Sign(e.to_string()))?;
        Ok(Signed {
            value,
            refresh_at: now + (exp - now) / 2,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use serde_json::{json, Value};

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn asserter(extra: &str) -> (Asserter, AssertionSigningKey) {
        let c = Config::from_toml(&format!(
            "[auth]\nsecret = \"{SECRET}\"\n[identity.claims]\nrole = \"X-Role\"\nexp = \"X-Exp\"\n[identity.assertion]\nheader = \"X-Auth-Assertion\"\n{extra}\n[[routes]]\nname = \"orders\"\nprefix = \"/orders\"\nupstream = \"http://127.0.0.1:9\"\n[[routes]]\nname = \"pub\"\nprefix = \"/pub\"\nupstream = \"http://127.0.0.1:9\"\npublic = true\n[[routes]]\nname = \"off\"\nprefix = \"/off\"\nupstream = \"http://127.0.0.1:9\"\nassertion = false\n[[routes]]\nname = \"aud\"\nprefix = \"/aud\"\nupstream = \"http://127.0.0.1:9\"\nassertion_audience = \"urn:billing\"\n"
        ))
        .unwrap();
        let a = c.identity.assertion.as_ref().unwrap();
        let key = AssertionSigningKey::generate(a.algorithm).unwrap();
        (Asserter::new(a, &key, &c.identity, &c.routes).unwrap(), key)
    }

    fn identity(exp: u64) -> Identity {
        let mut extra = serde_json::Map::new();
        extra.insert("role".into(), json!(["admin", "ops"]));
        extra.insert("exp".into(), json!(1));
        Identity {
            sub: "alice".into(),
            sub_value: http::HeaderValue::from_static("alice"),
            name: Some("Alice".into()),
            name_value: Some(http::HeaderValue::from_static("Alice")),
            extra: Some(extra),
            exp,
            jti: Some("jti-1".into()),
            iat: 0,
        }
    }

    fn decode(
        a: &Asserter,
        key: &AssertionSigningKey,
        v: &HeaderValue,
        aud: &str,
    ) -> (Header, Value) {
        let dk = jsonwebtoken::DecodingKey::from_jwk(&key.public).unwrap();
        let mut val = jsonwebtoken::Validation::new(a.jws.alg);
        val.set_audience(&[aud]);
        val.set_issuer(&["gateway"]);
        let data = jsonwebtoken::decode::<Value>(v.to_str().unwrap(), &dk, &val).unwrap();
        (data.header, data.claims)
    }

    #[test]
    fn claims_header_and_audiences_per_route() {
        let (a, key) = asserter("");
        let now = now_secs();
        let id = identity(now + 1800);
        let v = a.for_request(0, Some("tok"), &id).unwrap().unwrap();
        let (h, c) = decode(&a, &key, &v, "orders");
        assert_eq!(h.typ.as_deref(), Some("assertion+jwt"));
        assert_eq!(h.kid.as_deref(), Some(key.kid()));
        assert_eq!(c["sub"], "alice");
        assert_eq!(c["name"], "Alice");
        assert_eq!(c["role"], json!(["admin", "ops"]));
        assert_eq!(c["jti"], "jti-1");
        let exp = c["exp"].as_u64().unwrap();
        assert!(
            exp >= now + 60 && exp <= now + 61,
            "ttl 60s, and a mapped `exp` claim cannot override it"
        );
        assert!(
            a.for_request(1, Some("tok"), &id).unwrap().is_none(),
            "public route"
        );
        assert!(
            a.for_request(2, Some("tok"), &id).unwrap().is_none(),
            "turned off"
        );
        let v = a.for_request(3, Some("tok"), &id).unwrap().unwrap();
        assert_eq!(decode(&a, &key, &v, "urn:billing").1["aud"], "urn:billing");
    }

    #[test]
    fn repeats_are_served_from_the_cache_and_never_outlive_the_token() {
        let (a, _) = asserter("");
        let id = identity(now_secs() + 1800);
        let first = a.for_request(0, Some("tok"), &id).unwrap().unwrap();
        assert_eq!(a.for_request(0, Some("tok"), &id).unwrap().unwrap(), first);
        // Another token (even for the same user) and another route are other entries.
        assert_eq!(a.cache[0].len(), 1);
        a.for_request(0, Some("tok2"), &id).unwrap();
        a.for_request(3, Some("tok"), &id).unwrap();
        assert_eq!((a.cache[0].len(), a.cache[3].len()), (2, 1));
        // A token about to expire gets an assertion that ends with it.
        let short = identity(now_secs() + 5);
        let v = a.for_request(0, Some("short"), &short).unwrap().unwrap();
        let claims: Value = jsonwebtoken::dangerous::insecure_decode::<Value>(v.to_str().unwrap())
            .unwrap()
            .claims;
        assert_eq!(claims["exp"].as_u64().unwrap(), short.exp);
    }

    #[test]
    fn the_cache_is_bounded() {
        let (a, _) = asserter("cache_size = 2\n");
        let id = identity(now_secs() + 1800);
        for t in ["a", "b", "c", "d", "e"] {
            a.for_request(0, Some(t), &id).unwrap();
            assert!(a.cache[0].len() <= 2);
        }
        let (a, _) = asserter("cache_size = 0\n");
        a.for_request(0, Some("a"), &id).unwrap();
        assert_eq!(a.cache[0].len(), 0);
    }
}
