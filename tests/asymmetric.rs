//! Asymmetric signing (ES256, EdDSA): logins issue tokens the proxy accepts, the public key is published as a
//! JWKS with its `kid`, and a token HMAC-signed with the public key (algorithm confusion) is refused.

mod support;

use serde_json::{json, Value};
use support::http::{get_status, login_body, post_login, token_of};
use support::turnstile::FakeTurnstile;
use support::upstream::Upstream;
use support::{client, route, user, TestGateway, UsersFile};

struct Keys {
    _dir: tempfile::TempDir,
    toml: String,
    public_pem: String,
}

fn keys(alg: &'static rcgen::SignatureAlgorithm, name: &str) -> Keys {
    let kp = rcgen::KeyPair::generate_for(alg).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("jwt-private.pem");
    let public = dir.path().join("jwt-public.pem");
    std::fs::write(&private, kp.serialize_pem()).unwrap();
    std::fs::write(&public, kp.public_key_pem()).unwrap();
    let toml = format!(
        "[auth]\nalgorithm = \"{name}\"\nsecret = \"\"\nprivate_key_file = {:?}\npublic_key_file = {:?}\nkey_id = \"k1\"\n",
        private.display().to_string(),
        public.display().to_string()
    );
    Keys {
        _dir: dir,
        toml,
        public_pem: kp.public_key_pem(),
    }
}

async fn scenario(alg: &'static rcgen::SignatureAlgorithm, name: &str, kty: &str) {
    let k = keys(alg, name);
    let password = "asymmetric-test-password-FIXTURE";
    let hash = support::fixtures::argon2(password);
    let users = UsersFile::new(&user("jdoe", &hash, true));
    let fake = FakeTurnstile::start().await;
    fake.add_valid_token("0.asym");
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&[
        &users.login_toml(&fake.url()),
        &k.toml,
        &route("/", &up.url(), ""),
    ])
    .await;
    let c = client();

    let res = post_login(&gw, &login_body("jdoe", password, "0.asym")).await;
    assert_eq!(res.status(), 200);
    let token = token_of(res).await;
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(format!("{:?}", header.alg), name);
    assert_eq!(header.kid.as_deref(), Some("k1"));

    assert_eq!(get_status(&c, gw.url("/orders"), Some(&token)).await, 200);
    assert_eq!(up.last().one("x-auth-user").as_deref(), Some("jdoe"));

    // The JWKS is public (no token) and verifies the token.
    let jwks: jsonwebtoken::jwk::JwkSet = c
        .get(gw.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks.keys.len(), 1);
    let jwk = &jwks.keys[0];
    assert_eq!(jwk.common.key_id.as_deref(), Some("k1"));
    let raw: Value = serde_json::to_value(jwk).unwrap();
    assert_eq!(raw["kty"], kty);
    assert!(raw.get("d").is_none(), "never the private part");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut v = jsonwebtoken::Validation::new(header.alg);
    v.validate_aud = false;
    assert!(jsonwebtoken::decode::<Value>(&token, &key, &v).is_ok());

    // Algorithm confusion: an HS256 token keyed with the public key PEM is refused.
    let n = support::tokens::now();
    let forged = support::tokens::sign_with(
        &json!({"sub": "admin", "exp": n + 600}),
        jsonwebtoken::Algorithm::HS256,
        k.public_pem.as_bytes(),
    );
    let before = up.count();
    assert_eq!(get_status(&c, gw.url("/orders"), Some(&forged)).await, 401);
    assert_eq!(up.count(), before);
}

#[tokio::test]
async fn es256_tokens_and_jwks() {
    scenario(&rcgen::PKCS_ECDSA_P256_SHA256, "ES256", "EC").await;
}

#[tokio::test]
async fn eddsa_tokens_and_jwks() {
    scenario(&rcgen::PKCS_ED25519, "EdDSA", "OKP").await;
}

#[tokio::test]
async fn hmac_configs_publish_no_jwks() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&[&route("/", &up.url(), "")]).await;
    let res = client()
        .get(gw.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        401,
        "no JWKS route: the path is an ordinary protected path"
    );
}
