//! Token forgery corpus: every token below was made without the gateway's key (or breaks a validity rule),
//! and each must be answered 401 without the upstream seeing the request.
//!
//! Four gateways: HS256 (the usual test secret), HS256 with issuer and audience, RS256 with a public key
//! generated at test time, ES256 with a P-256 key generated at test time. Each also gets a properly signed
//! control token (200), so a 401 proves the attack failed rather than the gateway being misconfigured.
//! `jku`/`x5u`/`jwk`/`x5c` headers point at a local "attacker" server that counts hits: it must stay at 0.

mod support;

use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Value};
use support::recorder::Recorder;
use support::tokens::{self, b64, now};
use support::{client, route, TestGateway, SECRET};

/// A signing key another party holds. TEST FIXTURE ONLY.
const ATTACKER_SECRET: &str = "attacker-controlled-secret-0123456789abcdef";
const ISSUER: &str = "https://gw.test";
const AUDIENCE: &str = "legacy";

/// Compact JWS from raw header and payload JSON text, signed over exactly those bytes (so duplicated keys
/// and odd spellings survive), with `alg` choosing the algorithm used to sign.
fn jws(header: &str, payload: &str, alg: Algorithm, key: &EncodingKey) -> String {
    let msg = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let sig = jsonwebtoken::crypto::sign(msg.as_bytes(), key, alg).expect("sign");
    format!("{msg}.{sig}")
}

/// Same, with a signature made of arbitrary bytes.
fn with_sig(header: &str, payload: &str, sig: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.as_bytes()),
        b64(payload.as_bytes()),
        b64(sig)
    )
}

fn hmac(secret: &[u8]) -> EncodingKey {
    EncodingKey::from_secret(secret)
}

/// Claims of a token that would open the door if its signature were accepted.
fn claims(sub: &str) -> String {
    let n = now();
    json!({"sub": sub, "name": sub, "iat": n, "nbf": n, "exp": n + 1800}).to_string()
}

fn claims_iss_aud(sub: &str, iss: Option<&str>, aud: Option<Value>) -> String {
    let n = now();
    let mut c = json!({"sub": sub, "name": sub, "iat": n, "exp": n + 1800});
    if let Some(i) = iss {
        c["iss"] = json!(i);
    }
    if let Some(a) = aud {
        c["aud"] = a;
    }
    c.to_string()
}

fn hs256_header(extra: Value) -> String {
    let mut h = json!({"alg": "HS256", "typ": "JWT"});
    if let (Some(h), Some(e)) = (h.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            h.insert(k.clone(), v.clone());
        }
    }
    h.to_string()
}

/// A gateway on `fragments` in front of its own recording upstream.
struct Target {
    name: &'static str,
    gw: TestGateway,
    up: Recorder,
}

async fn target(name: &'static str, fragments: &[&str]) -> Target {
    let up = Recorder::start().await;
    let r = route("/", &up.url(), "");
    let mut all: Vec<&str> = vec![&r, "[server]\nmax_header_bytes = 262144\n"];
    all.extend_from_slice(fragments);
    let gw = TestGateway::start(&all).await;
    Target { name, gw, up }
}

/// Same for an asymmetric algorithm. The shared base config carries an HMAC secret, which the gateway
/// (rightly) refuses next to key files, so the `[auth]` section is validated on its own and swapped into
/// an otherwise ordinary test config.
async fn asym_target(name: &'static str, auth: &str) -> Target {
    let up = Recorder::start().await;
    let mut cfg = support::config(&[
        &route("/", &up.url(), ""),
        "[server]\nmax_header_bytes = 262144\n",
    ])
    .expect("test config is valid");
    cfg.auth = gateway::config::Config::from_toml(auth)
        .expect("asymmetric [auth] is valid")
        .auth;
    let gw = TestGateway::start_config(cfg).await;
    Target { name, gw, up }
}

/// Sends `token` to `path` and returns the status.
async fn send(t: &Target, path: &str, token: &str) -> u16 {
    let value = format!("Bearer {token}");
    client()
        .get(t.gw.url(path))
        .header("authorization", value)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// Runs every attack: expects 401 and no upstream request. Returns (tried, accepted descriptions).
async fn run_corpus(t: &Target, cases: &[(String, String)], offset: usize) -> (usize, Vec<String>) {
    let mut accepted = Vec::new();
    for (i, (name, token)) in cases.iter().enumerate() {
        let path = format!("/attack/{}", offset + i);
        let before = t.up.count();
        let status = send(t, &path, token).await;
        let reached = t.up.count() != before || t.up.targets().contains(&path);
        if status != 401 || reached {
            accepted.push(format!(
                "[{}] {name}: status {status}, reached upstream: {reached}",
                t.name
            ));
        }
    }
    (cases.len(), accepted)
}

/// Positive control: a correctly made token is accepted, so 401s above are not a misconfiguration.
async fn control(t: &Target, token: &str) {
    let status = send(t, "/control", token).await;
    assert_eq!(status, 200, "[{}] control token must be accepted", t.name);
    assert_eq!(
        t.up.requests().last().unwrap().all("x-auth-user"),
        ["alice"]
    );
}

fn hs256_cases(attacker_url: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = Vec::new();
    let good = claims("admin");
    let mut add = |name: &str, token: String| v.push((name.to_string(), token));

    // alg none, every casing, with an empty signature, without the signature segment, and with a
    // signature (HMAC with the real key over the "none" header: still not the configured algorithm).
    for alg in ["none", "None", "NONE", "nOnE"] {
        let h = json!({"alg": alg, "typ": "JWT"}).to_string();
        let hp = format!("{}.{}", b64(h.as_bytes()), b64(good.as_bytes()));
        add(&format!("alg {alg}, empty signature"), format!("{hp}."));
        add(&format!("alg {alg}, no signature segment"), hp.clone());
        add(
            &format!("alg {alg}, garbage signature"),
            format!("{hp}.{}", b64(b"garbage")),
        );
        let sig =
            jsonwebtoken::crypto::sign(hp.as_bytes(), &hmac(SECRET.as_bytes()), Algorithm::HS256)
                .unwrap();
        add(
            &format!("alg {alg}, HMAC of the real key"),
            format!("{hp}.{sig}"),
        );
    }
    add(
        "duplicated alg keys (HS256 then none), empty signature",
        format!(
            "{}.{}.",
            b64(br#"{"alg":"HS256","alg":"none"}"#),
            b64(good.as_bytes())
        ),
    );
    add(
        "alg missing, empty signature",
        format!("{}.{}.", b64(br#"{"typ":"JWT"}"#), b64(good.as_bytes())),
    );

    // Wrong keys and algorithm switches.
    let h = hs256_header(json!({}));
    add(
        "HS256 with another key",
        jws(
            &h,
            &good,
            Algorithm::HS256,
            &hmac(ATTACKER_SECRET.as_bytes()),
        ),
    );
    add(
        "HS256 with an empty key",
        jws(&h, &good, Algorithm::HS256, &hmac(b"")),
    );
    add(
        "HS256 with the key minus its last byte",
        jws(
            &h,
            &good,
            Algorithm::HS256,
            &hmac(&SECRET.as_bytes()[..SECRET.len() - 1]),
        ),
    );
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        let h = json!({"alg": format!("{alg:?}"), "typ": "JWT"}).to_string();
        add(
            &format!("{alg:?} with the real key (algorithm switch)"),
            jws(&h, &good, alg, &hmac(SECRET.as_bytes())),
        );
    }

    // Stripped or mangled signatures of an otherwise valid token.
    let valid = tokens::valid("admin");
    let (hp, sig) = valid.rsplit_once('.').unwrap();
    add("stripped signature: header.payload.", format!("{hp}."));
    add("stripped signature: header.payload", hp.to_string());
    let mut flipped = sig.as_bytes().to_vec();
    flipped[10] = if flipped[10] == b'A' { b'B' } else { b'A' };
    add(
        "one signature character changed",
        format!("{hp}.{}", String::from_utf8(flipped).unwrap()),
    );
    add(
        "signature truncated by 4 characters",
        format!("{hp}.{}", &sig[..sig.len() - 4]),
    );
    add("signature of zero bytes", with_sig(&h, &good, &[0u8; 32]));
    let other = tokens::valid("alice");
    let other_sig = other.rsplit_once('.').unwrap().1;
    add(
        "signature transplanted from another valid token",
        format!("{hp}.{other_sig}"),
    );

    // kid tricks: a key file path or SQL that a naive key lookup would follow, signed with what it would find.
    for (kid, key) in [
        ("../../dev/null", &b""[..]),
        ("/dev/null", b""),
        ("../../../../../../etc/hostname", b"localhost"),
        ("' OR 1=1 --", b"1"),
        (
            "x' UNION SELECT 'attacker-controlled-secret-0123456789abcdef' --",
            ATTACKER_SECRET.as_bytes(),
        ),
        ("|| cat /etc/passwd", b""),
    ] {
        let h = hs256_header(json!({"kid": kid}));
        add(
            &format!("kid {kid:?}"),
            jws(&h, &good, Algorithm::HS256, &hmac(key)),
        );
    }

    // Key-location headers pointing at the attacker's server, signed with the attacker's key.
    let attacker = hmac(ATTACKER_SECRET.as_bytes());
    for (name, extra) in [
        ("jku", json!({"jku": format!("{attacker_url}/jwks.json")})),
        ("x5u", json!({"x5u": format!("{attacker_url}/cert.pem")})),
        (
            "jwk (embedded attacker key)",
            json!({"jwk": {"kty": "oct", "k": b64(ATTACKER_SECRET.as_bytes())}}),
        ),
        (
            "x5c (garbage chain)",
            json!({"x5c": [base64_std(b"not a certificate")]}),
        ),
        (
            "jku + kid",
            json!({"jku": format!("{attacker_url}/jwks.json"), "kid": "attacker"}),
        ),
    ] {
        let h = hs256_header(extra);
        add(name, jws(&h, &good, Algorithm::HS256, &attacker));
    }

    // Claims changed after signing; header changed after signing.
    add(
        "payload replaced after signing",
        tokens::tampered("alice", "admin"),
    );
    let (_, rest) = valid.split_once('.').unwrap();
    add(
        "header replaced after signing (kid added)",
        format!(
            "{}.{rest}",
            b64(hs256_header(json!({"kid": "x"})).as_bytes())
        ),
    );

    // Properly signed, but invalid: expired, not yet valid, issued in the future, missing claims.
    let n = now();
    let real = hmac(SECRET.as_bytes());
    let signed = |c: Value| jws(&h, &c.to_string(), Algorithm::HS256, &real);
    add("expired", tokens::expired("admin"));
    add(
        "not yet valid (nbf + 10 min)",
        tokens::not_yet_valid("admin"),
    );
    add(
        "expired 1 s after the leeway",
        signed(json!({"sub": "admin", "exp": n - 32})),
    );
    add(
        "issued in the future (iat + 10 min)",
        signed(json!({"sub": "admin", "iat": n + 600, "exp": n + 1800})),
    );
    add("exp missing", signed(json!({"sub": "admin"})));
    add("exp null", signed(json!({"sub": "admin", "exp": null})));
    add("sub missing", signed(json!({"exp": n + 1800})));
    add("sub empty", signed(json!({"sub": "", "exp": n + 1800})));
    add("sub null", signed(json!({"sub": null, "exp": n + 1800})));
    add("sub a number", signed(json!({"sub": 1, "exp": n + 1800})));
    add(
        "sub an array",
        signed(json!({"sub": ["admin"], "exp": n + 1800})),
    );

    // Non-JSON and non-base64url segments.
    add(
        "header not JSON (signed)",
        jws("not json", &good, Algorithm::HS256, &real),
    );
    add(
        "payload not JSON (signed)",
        jws(&h, "not json", Algorithm::HS256, &real),
    );
    add(
        "payload a JSON array (signed)",
        jws(&h, "[\"admin\"]", Algorithm::HS256, &real),
    );
    add(
        "payload a JSON string (signed)",
        jws(&h, "\"admin\"", Algorithm::HS256, &real),
    );
    let std_msg = format!(
        "{}.{}",
        base64_std(h.as_bytes()),
        base64_std(claims("admin?>>>").as_bytes())
    );
    let std_sig = jsonwebtoken::crypto::sign(std_msg.as_bytes(), &real, Algorithm::HS256).unwrap();
    add(
        "standard base64 with + / = (signed over those bytes)",
        format!("{std_msg}.{std_sig}"),
    );
    let padded = format!(
        "{}=.{}==",
        b64(h.as_bytes()),
        b64(claims("admin").as_bytes())
    );
    let padded_sig =
        jsonwebtoken::crypto::sign(padded.as_bytes(), &real, Algorithm::HS256).unwrap();
    add(
        "base64url with padding (signed over those bytes)",
        format!("{padded}.{padded_sig}"),
    );
    add(
        "segments with characters outside base64url",
        format!("{}.{}.{}", "eyJ!@#", "$%^&*", "()"),
    );

    // Wrong segment counts.
    add("one segment", b64(good.as_bytes()));
    add(
        "two segments (header.payload)",
        format!("{}.{}", b64(h.as_bytes()), b64(good.as_bytes())),
    );
    add("four segments (valid token + '.x')", format!("{valid}.x"));
    add("four segments (valid token + '.')", format!("{valid}."));
    add("leading dot", format!(".{valid}"));
    add(
        "five segments (JWE shape, dir)",
        format!(
            "{}.{}.{}.{}.{}",
            b64(br#"{"alg":"dir","enc":"A128GCM"}"#),
            "",
            b64(b"iv"),
            b64(good.as_bytes()),
            b64(b"tag")
        ),
    );
    add("empty segments", "..".to_string());
    add("only dots", "....".to_string());
    add(
        "JWS JSON serialization",
        base64_std(
            json!({"payload": b64(good.as_bytes()), "signatures": []})
                .to_string()
                .as_bytes(),
        ),
    );

    // Size.
    add("100 KB of token characters", "a".repeat(100 * 1024));
    let big = json!({"sub": "admin", "exp": n + 1800, "pad": "x".repeat(100 * 1024)}).to_string();
    add(
        "100 KB token, structurally valid, attacker key",
        jws(&h, &big, Algorithm::HS256, &attacker),
    );
    v
}

fn base64_std(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn forged_tokens_are_all_refused_and_never_reach_an_upstream() {
    let attacker = Recorder::start().await;
    let attacker_url = attacker.url();
    let mut tried = 0;
    let mut accepted: Vec<String> = Vec::new();

    // 1. HS256, plain, and HS256 passing extra claims upstream (the verifier then decodes every claim).
    let hs = target("HS256", &[]).await;
    control(&hs, &tokens::valid("alice")).await;
    let hs_claims = target(
        "HS256+claims",
        &["[identity.claims]\nrole = \"X-Auth-Role\"\n"],
    )
    .await;
    control(&hs_claims, &tokens::valid("alice")).await;
    let cases = hs256_cases(&attacker_url);
    for t in [&hs, &hs_claims] {
        let (n, acc) = run_corpus(t, &cases, 0).await;
        tried += n;
        accepted.extend(acc);
    }

    // 2. HS256 with issuer and audience configured.
    let iss_aud = format!("[auth]\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\n");
    let ia = target("HS256+iss/aud", &[&iss_aud]).await;
    let real = hmac(SECRET.as_bytes());
    let h = hs256_header(json!({}));
    let sign = |c: String| jws(&h, &c, Algorithm::HS256, &real);
    control(
        &ia,
        &sign(claims_iss_aud("alice", Some(ISSUER), Some(json!(AUDIENCE)))),
    )
    .await;
    let ia_cases: Vec<(String, String)> = vec![
        (
            "iss missing",
            sign(claims_iss_aud("admin", None, Some(json!(AUDIENCE)))),
        ),
        (
            "aud missing",
            sign(claims_iss_aud("admin", Some(ISSUER), None)),
        ),
        (
            "iss and aud missing",
            sign(claims_iss_aud("admin", None, None)),
        ),
        (
            "wrong iss",
            sign(claims_iss_aud(
                "admin",
                Some("https://evil.test"),
                Some(json!(AUDIENCE)),
            )),
        ),
        (
            "iss with a trailing slash",
            sign(claims_iss_aud(
                "admin",
                Some("https://gw.test/"),
                Some(json!(AUDIENCE)),
            )),
        ),
        (
            "iss in upper case",
            sign(claims_iss_aud(
                "admin",
                Some("HTTPS://GW.TEST"),
                Some(json!(AUDIENCE)),
            )),
        ),
        (
            "wrong aud",
            sign(claims_iss_aud("admin", Some(ISSUER), Some(json!("other")))),
        ),
        (
            "aud list without ours",
            sign(claims_iss_aud(
                "admin",
                Some(ISSUER),
                Some(json!(["a", "b"])),
            )),
        ),
        (
            "aud empty list",
            sign(claims_iss_aud("admin", Some(ISSUER), Some(json!([])))),
        ),
        (
            "aud a number",
            sign(claims_iss_aud("admin", Some(ISSUER), Some(json!(1)))),
        ),
        (
            "aud prefix of ours",
            sign(claims_iss_aud("admin", Some(ISSUER), Some(json!("leg")))),
        ),
        (
            "right iss/aud, wrong key",
            jws(
                &h,
                &claims_iss_aud("admin", Some(ISSUER), Some(json!(AUDIENCE))),
                Algorithm::HS256,
                &hmac(ATTACKER_SECRET.as_bytes()),
            ),
        ),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b))
    .collect();
    let (n, acc) = run_corpus(&ia, &ia_cases, 1000).await;
    tried += n;
    accepted.extend(acc);

    // 3. RS256 with only a public key: HS256 signed with that public key is the classic confusion.
    let (rs, rs_cases) = rs256_target(&attacker_url).await;
    let (n, acc) = run_corpus(&rs, &rs_cases, 2000).await;
    tried += n;
    accepted.extend(acc);

    // 4. ES256: the "psychic signature" (r = s = 0) and friends.
    let (es, es_cases) = es256_target(&attacker_url).await;
    let (n, acc) = run_corpus(&es, &es_cases, 3000).await;
    tried += n;
    accepted.extend(acc);

    println!(
        "forgery corpus: {tried} attacks tried, {} accepted",
        accepted.len()
    );
    for a in &accepted {
        println!("  ACCEPTED {a}");
    }
    assert_eq!(
        attacker.count() + attacker.connections(),
        0,
        "the gateway contacted the attacker's key server"
    );
    for t in [&hs, &hs_claims, &ia, &rs, &es] {
        for target in t.up.targets() {
            assert_eq!(target, "/control", "[{}] upstream saw {target}", t.name);
        }
    }
    assert!(accepted.is_empty(), "{accepted:#?}");
}

/// RS256 gateway with a key pair generated now, and the attacks against it.
async fn rs256_target(attacker_url: &str) -> (Target, Vec<(String, String)>) {
    use rsa::pkcs1::EncodeRsaPublicKey;
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).expect("RSA key");
    let public = key.to_public_key();
    let pub_pem = public.to_public_key_pem(LineEnding::LF).unwrap();
    let pub_pkcs1 = public.to_pkcs1_pem(LineEnding::LF).unwrap();
    let pub_der = public.to_public_key_der().unwrap();
    let priv_pem = key.to_pkcs8_pem(LineEnding::LF).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pub_path = dir.path().join("jwt.pub.pem");
    std::fs::write(&pub_path, &pub_pem).unwrap();
    let cfg = format!(
        "[auth]\nalgorithm = \"RS256\"\npublic_key_file = {:?}\n",
        pub_path.display().to_string()
    );
    let t = asym_target("RS256", &cfg).await;
    let real = EncodingKey::from_rsa_pem(priv_pem.as_bytes()).unwrap();
    let rs_header = json!({"alg": "RS256", "typ": "JWT"}).to_string();
    control(
        &t,
        &jws(&rs_header, &claims("alice"), Algorithm::RS256, &real),
    )
    .await;
    // The key was read at start-up; the temporary directory goes when `dir` drops at the end.

    let attacker_key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 1024).expect("RSA key");
    let attacker_pem = attacker_key.to_pkcs8_pem(LineEnding::LF).unwrap();
    let attacker_enc = EncodingKey::from_rsa_pem(attacker_pem.as_bytes()).unwrap();
    let attacker_pub = attacker_key.to_public_key();
    let good = claims("admin");
    let mut v: Vec<(String, String)> = Vec::new();
    let mut add = |name: &str, token: String| v.push((name.to_string(), token));
    for (alg, a) in [
        ("HS256", Algorithm::HS256),
        ("HS384", Algorithm::HS384),
        ("HS512", Algorithm::HS512),
    ] {
        let h = json!({"alg": alg, "typ": "JWT"}).to_string();
        add(
            &format!("{alg} signed with the RSA public key PEM (SPKI)"),
            jws(&h, &good, a, &hmac(pub_pem.as_bytes())),
        );
    }
    let h = json!({"alg": "HS256", "typ": "JWT"}).to_string();
    add(
        "HS256 signed with the public key PEM without its final newline",
        jws(
            &h,
            &good,
            Algorithm::HS256,
            &hmac(pub_pem.trim_end().as_bytes()),
        ),
    );
    add(
        "HS256 signed with the PKCS#1 public key PEM",
        jws(&h, &good, Algorithm::HS256, &hmac(pub_pkcs1.as_bytes())),
    );
    add(
        "HS256 signed with the public key DER",
        jws(&h, &good, Algorithm::HS256, &hmac(pub_der.as_bytes())),
    );
    for alg in ["none", "None", "NONE", "nOnE"] {
        let h = json!({"alg": alg}).to_string();
        add(
            &format!("alg {alg}"),
            format!("{}.{}.", b64(h.as_bytes()), b64(good.as_bytes())),
        );
    }
    add(
        "RS256 signed with another RSA key",
        jws(&rs_header, &good, Algorithm::RS256, &attacker_enc),
    );
    let ps_header = json!({"alg": "PS256", "typ": "JWT"}).to_string();
    add(
        "PS256 signed with another RSA key",
        jws(&ps_header, &good, Algorithm::PS256, &attacker_enc),
    );
    use rsa::traits::PublicKeyParts;
    let n_b64 = b64(&attacker_pub.n().to_bytes_be());
    let e_b64 = b64(&attacker_pub.e().to_bytes_be());
    for (name, extra) in [
        (
            "RS256 with embedded jwk of the attacker key",
            json!({"jwk": {"kty": "RSA", "n": n_b64, "e": e_b64}}),
        ),
        (
            "RS256 with jku at the attacker",
            json!({"jku": format!("{attacker_url}/jwks.json"), "kid": "attacker"}),
        ),
        (
            "RS256 with x5u at the attacker",
            json!({"x5u": format!("{attacker_url}/cert.pem")}),
        ),
    ] {
        let mut h = json!({"alg": "RS256", "typ": "JWT"});
        for (k, val) in extra.as_object().unwrap() {
            h[k] = val.clone();
        }
        add(
            name,
            jws(&h.to_string(), &good, Algorithm::RS256, &attacker_enc),
        );
    }
    add(
        "RS256 signature of 256 zero bytes",
        with_sig(&rs_header, &good, &[0u8; 256]),
    );
    add(
        "RS256 empty signature",
        format!("{}.{}.", b64(rs_header.as_bytes()), b64(good.as_bytes())),
    );
    let valid = jws(&rs_header, &claims("alice"), Algorithm::RS256, &real);
    let (_, sig) = valid.rsplit_once('.').unwrap();
    add(
        "RS256 payload replaced after signing",
        format!(
            "{}.{}.{sig}",
            b64(rs_header.as_bytes()),
            b64(good.as_bytes())
        ),
    );
    (t, v)
}

/// ES256 gateway with a P-256 key pair generated now, and the attacks against it.
async fn es256_target(attacker_url: &str) -> (Target, Vec<(String, String)>) {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pub_path = dir.path().join("jwt.pub.pem");
    std::fs::write(&pub_path, kp.public_key_pem()).unwrap();
    let cfg = format!(
        "[auth]\nalgorithm = \"ES256\"\npublic_key_file = {:?}\n",
        pub_path.display().to_string()
    );
    let t = asym_target("ES256", &cfg).await;
    drop(dir);
    let real = EncodingKey::from_ec_pem(kp.serialize_pem().as_bytes()).unwrap();
    let es_header = json!({"alg": "ES256", "typ": "JWT"}).to_string();
    control(
        &t,
        &jws(&es_header, &claims("alice"), Algorithm::ES256, &real),
    )
    .await;

    let attacker_kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let attacker = EncodingKey::from_ec_pem(attacker_kp.serialize_pem().as_bytes()).unwrap();
    let attacker384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let attacker384 = EncodingKey::from_ec_pem(attacker384.serialize_pem().as_bytes()).unwrap();
    let good = claims("admin");
    let mut v: Vec<(String, String)> = Vec::new();
    let mut add = |name: &str, token: String| v.push((name.to_string(), token));
    add(
        "psychic signature: r = s = 0 (64 zero bytes)",
        with_sig(&es_header, &good, &[0u8; 64]),
    );
    add(
        "psychic signature in DER form (30 06 02 01 00 02 01 00)",
        with_sig(
            &es_header,
            &good,
            &[0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00],
        ),
    );
    // r = s = n (the curve order), which reduces to 0 mod n.
    let order = hex("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");
    let mut rn = order.clone();
    rn.extend_from_slice(&order);
    add("r = s = n (curve order)", with_sig(&es_header, &good, &rn));
    add(
        "signature of 63 bytes",
        with_sig(&es_header, &good, &[1u8; 63]),
    );
    add(
        "ES256 signed with another P-256 key",
        jws(&es_header, &good, Algorithm::ES256, &attacker),
    );
    let h384 = json!({"alg": "ES384", "typ": "JWT"}).to_string();
    add(
        "ES384 signed with a P-384 key",
        jws(&h384, &good, Algorithm::ES384, &attacker384),
    );
    let hs = json!({"alg": "HS256", "typ": "JWT"}).to_string();
    add(
        "HS256 signed with the EC public key PEM",
        jws(
            &hs,
            &good,
            Algorithm::HS256,
            &hmac(kp.public_key_pem().as_bytes()),
        ),
    );
    add(
        "alg none",
        format!("{}.{}.", b64(br#"{"alg":"none"}"#), b64(good.as_bytes())),
    );
    let mut jku = json!({"alg": "ES256", "jku": format!("{attacker_url}/jwks.json")});
    jku["kid"] = json!("attacker");
    add(
        "ES256 with jku at the attacker",
        jws(&jku.to_string(), &good, Algorithm::ES256, &attacker),
    );
    (t, v)
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// `{"sub":"alice","sub":"admin"}` signed with the real key: JSON with a repeated member is ambiguous
/// (RFC 8259 §4: "names SHOULD be unique"; RFC 7519 §4 says such a JWT MUST be rejected or the last
/// value used). Whatever the gateway does, the upstream must never see `admin` unless it is the value
/// serde picked; it must also see one consistent identity.
#[tokio::test]
async fn duplicated_claim_names_never_smuggle_a_second_identity() {
    let real = hmac(SECRET.as_bytes());
    let h = hs256_header(json!({}));
    let n = now();
    let cases = [
        (
            "sub twice",
            format!(r#"{{"sub":"alice","sub":"admin","exp":{}}}"#, n + 1800),
        ),
        (
            "sub twice, admin first",
            format!(r#"{{"sub":"admin","sub":"alice","exp":{}}}"#, n + 1800),
        ),
        (
            "name twice",
            format!(
                r#"{{"sub":"alice","name":"alice","name":"admin","exp":{}}}"#,
                n + 1800
            ),
        ),
        (
            "exp twice (expired first)",
            format!(r#"{{"sub":"alice","exp":{},"exp":{}}}"#, n - 3600, n + 1800),
        ),
        (
            "role twice",
            format!(
                r#"{{"sub":"alice","role":"user","role":"admin","exp":{}}}"#,
                n + 1800
            ),
        ),
    ];
    let plain = target("HS256", &[]).await;
    let with_claims = target(
        "HS256+claims",
        &["[identity.claims]\nrole = \"X-Auth-Role\"\n"],
    )
    .await;
    let mut outcomes = Vec::new();
    for t in [&plain, &with_claims] {
        for (i, (name, payload)) in cases.iter().enumerate() {
            let token = jws(&h, payload, Algorithm::HS256, &real);
            let path = format!("/dup/{i}");
            let status = send(t, &path, &token).await;
            let seen = t.up.requests().into_iter().find(|r| r.target == path);
            let (user, name_h, role) = match &seen {
                Some(r) => (
                    r.all("x-auth-user"),
                    r.all("x-auth-name"),
                    r.all("x-auth-role"),
                ),
                None => (vec![], vec![], vec![]),
            };
            outcomes.push(format!(
                "[{}] {name}: {status}, upstream X-Auth-User {user:?} X-Auth-Name {name_h:?} X-Auth-Role {role:?}",
                t.name
            ));
            // Never two identities, and never `admin` as the user.
            assert!(
                user.len() <= 1 && name_h.len() <= 1 && role.len() <= 1,
                "{outcomes:#?}"
            );
            assert!(!user.contains(&"admin".to_string()), "{outcomes:#?}");
            assert!(!name_h.contains(&"admin".to_string()), "{outcomes:#?}");
            if name.starts_with("role") {
                // `role` is not a claim the verifier reads itself: a plain gateway ignores it (200, no
                // role header); with `[identity.claims] role` every claim lands in a JSON map, where
                // serde_json keeps the lexically last member (RFC 7519 §4 allows exactly that).
                assert_eq!(status, 200, "{outcomes:#?}");
                let want: Vec<String> = if t.name == "HS256+claims" {
                    vec!["admin".into()]
                } else {
                    vec![]
                };
                assert_eq!(
                    seen.map(|r| r.all("x-auth-role")),
                    Some(want),
                    "{outcomes:#?}"
                );
            } else {
                assert_eq!(status, 401, "duplicated members are refused: {outcomes:#?}");
            }
        }
    }
    for o in &outcomes {
        println!("{o}");
    }
}
