//! The signed identity assertion (issue 18), checked by upstreams that verify it with an independent JWT
//! library: PyJWT + cryptography (`tests/support/verify_assertion.py`) against the gateway's published
//! assertion JWKS — signature, `typ`, `aud`, `iss`, `exp`. Also: the assertion is refused as a Bearer token,
//! an assertion for one route is refused by another route's verifier, and client copies of the header never
//! reach an upstream.

mod support;

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::http::{get_auth, get_status};
use support::tokens::{bearer, valid_with};
use support::upstream::Upstream;
use support::{client, route, TestGateway};

const HEADER: &str = "X-Auth-Assertion";
const ISSUER: &str = "https://gateway.test";

/// A PyJWT verifier running as an upstream; killed on drop.
struct PyVerifier {
    child: Child,
    port: u16,
}

impl Drop for PyVerifier {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl PyVerifier {
    /// Starts the verifier for `audience`; it learns the JWKS URL from `serve_jwks`.
    fn start(audience: &str) -> PyVerifier {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/support/verify_assertion.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args([ISSUER, audience, HEADER])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs (with pyjwt and cryptography installed: see .ci/run)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().unwrap_or_else(|_| {
            panic!("the verifier did not start (is PyJWT installed? `pip install pyjwt cryptography`): {line:?}")
        });
        PyVerifier { child, port }
    }

    fn serve_jwks(&mut self, url: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{url}").unwrap();
        stdin.flush().unwrap();
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Presents `assertion` to this verifier directly (not through the gateway): its status and JSON answer.
    async fn check(&self, assertion: &str) -> (u16, Value) {
        let res = client()
            .get(format!("{}/direct", self.url()))
            .header(HEADER, assertion)
            .send()
            .await
            .unwrap();
        json_of(res).await
    }
}

/// Asserts that a verifier refused with 401 and an error naming `reason`.
fn assert_refused((status, answer): &(u16, Value), reason: &str) {
    assert_eq!(*status, 401, "{answer}");
    let error = answer["error"].as_str().unwrap_or("");
    assert!(error.contains(reason), "{reason} not in {answer}");
}

/// A PKCS#8 private key PEM file of `alg` in `dir`; returns its path.
fn key_file(dir: &std::path::Path, name: &str, alg: &'static rcgen::SignatureAlgorithm) -> String {
    let kp = rcgen::KeyPair::generate_for(alg).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, kp.serialize_pem()).unwrap();
    std::fs::write(dir.join(format!("{name}.pub")), kp.public_key_pem()).unwrap();
    path.display().to_string()
}

/// A gateway with two protected routes (`/orders`, `/billing`) to PyJWT verifiers of their own audiences
/// and one public route (`/pub`) to an echo upstream.
struct Setup {
    gw: TestGateway,
    orders: PyVerifier,
    billing: PyVerifier,
    echo: Upstream,
    _dir: tempfile::TempDir,
}

async fn setup(
    algorithm: &str,
    rcgen_alg: &'static rcgen::SignatureAlgorithm,
    extra: &str,
) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), "assertion.pem", rcgen_alg);
    let mut orders = PyVerifier::start("orders");
    let mut billing = PyVerifier::start("urn:billing");
    let echo = Upstream::echo().await;
    let assertion = format!(
        "[identity.claims]\nrole = \"X-Auth-Role\"\n[identity.assertion]\nheader = \"{HEADER}\"\nalgorithm = \"{algorithm}\"\nkey_file = {key:?}\nissuer = \"{ISSUER}\"\n{extra}\n"
    );
    let routes = [
        route("/orders", &orders.url(), "name = \"orders\""),
        route(
            "/billing",
            &billing.url(),
            "name = \"billing\"\nassertion_audience = \"urn:billing\"",
        ),
        route("/pub", &echo.url(), "public = true"),
        route("/plain", &echo.url(), "name = \"plain\"\nassertion = false"),
    ]
    .concat();
    let gw = TestGateway::start(&[&assertion, &routes]).await;
    let jwks = gw.url("/.well-known/gateway/assertion-jwks.json");
    orders.serve_jwks(&jwks);
    billing.serve_jwks(&jwks);
    Setup {
        gw,
        orders,
        billing,
        echo,
        _dir: dir,
    }
}

async fn json_of(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

/// The whole contract for one algorithm.
async fn upstreams_verify_with_an_independent_library(
    algorithm: &str,
    rcgen_alg: &'static rcgen::SignatureAlgorithm,
) {
    let s = setup(algorithm, rcgen_alg, "").await;
    let c = client();
    let token = valid_with("alice", &json!({"jti": "session-42", "role": "admin"}));

    // The JWKS is public and holds only public keys.
    let res = c
        .get(s.gw.url("/.well-known/gateway/assertion-jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let jwks: Value = res.json().await.unwrap();
    let published = &jwks["keys"][0];
    assert_eq!(published["alg"], algorithm);
    assert_eq!(published["use"], "sig");
    assert!(published.get("d").is_none(), "never the private part");

    // Each route's upstream verifies its own assertion.
    let (status, orders) =
        json_of(get_auth(&c, s.gw.url("/orders/1"), &bearer(&token)).await).await;
    assert_eq!(status, 200, "{orders}");
    let claims = &orders["claims"];
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["name"], "alice");
    assert_eq!(claims["role"], "admin");
    assert_eq!(claims["aud"], "orders");
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["jti"], "session-42", "the user's token's jti");
    let (iat, exp) = (
        claims["iat"].as_u64().unwrap(),
        claims["exp"].as_u64().unwrap(),
    );
    assert_eq!(exp - iat, 60, "default ttl");
    assert_eq!(orders["header"]["typ"], "assertion+jwt");
    assert_eq!(orders["header"]["kid"], published["kid"]);
    let (status, billing) =
        json_of(get_auth(&c, s.gw.url("/billing/1"), &bearer(&token)).await).await;
    assert_eq!(status, 200, "{billing}");
    assert_eq!(billing["claims"]["aud"], "urn:billing");

    // Route A's assertion presented to route B's verifier: refused for its audience.
    let stolen = orders["assertion"].as_str().unwrap().to_string();
    assert_refused(&s.billing.check(&stolen).await, "InvalidAudience");
    // ... while the verifier of its own audience accepts it directly (the refusal above was the audience).
    assert_eq!(s.orders.check(&stolen).await.0, 200);

    // The assertion is not a credential for the gateway.
    assert_eq!(
        get_status(&c, s.gw.url("/orders/1"), Some(&stolen)).await,
        401
    );
    assert_eq!(get_status(&c, s.gw.url("/plain"), Some(&stolen)).await, 401);

    // A client-sent assertion header never reaches an upstream, in any spelling, on any route.
    let forged = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.";
    let res = c
        .get(s.gw.url("/orders/1"))
        .header("authorization", bearer(&token))
        .header(HEADER, forged)
        .header("x_auth_assertion", forged)
        .send()
        .await
        .unwrap();
    let (status, seen) = json_of(res).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["assertion_values"].as_array().unwrap().len(), 1);
    assert_ne!(seen["assertion"], forged);
    for path in ["/pub/x", "/plain/x"] {
        let res = c
            .get(s.gw.url(path))
            .header("authorization", bearer(&token))
            .header(HEADER, forged)
            .header("X_Auth_Assertion", forged)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let last = s.echo.last();
        assert!(
            last.all("x-auth-assertion").is_empty() && last.all("x_auth_assertion").is_empty(),
            "{path}: {:?}",
            last.headers
        );
    }

    // Without a token there is no assertion to be had: the route answers 401 before any upstream.
    assert_eq!(get_status(&c, s.gw.url("/orders/1"), None).await, 401);
    s.gw.stop().await;
}

#[tokio::test]
async fn eddsa_assertions_are_verified_by_pyjwt_per_route() {
    upstreams_verify_with_an_independent_library("EdDSA", &rcgen::PKCS_ED25519).await;
}

#[tokio::test]
async fn es256_assertions_are_verified_by_pyjwt_per_route() {
    upstreams_verify_with_an_independent_library("ES256", &rcgen::PKCS_ECDSA_P256_SHA256).await;
}

#[tokio::test]
async fn an_expired_assertion_is_refused_by_the_upstream() {
    let s = setup("EdDSA", &rcgen::PKCS_ED25519, "ttl = \"2s\"\n").await;
    let c = client();
    let token = valid_with("bob", &json!({"jti": "j"}));
    let (status, seen) = json_of(get_auth(&c, s.gw.url("/orders/1"), &bearer(&token)).await).await;
    assert_eq!(status, 200, "{seen}");
    let assertion = seen["assertion"].as_str().unwrap().to_string();
    // Past `exp` (2 s) with a margin for the verifier's whole-second clock.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    assert_refused(&s.orders.check(&assertion).await, "ExpiredSignature");
    // The gateway does not hand out the expired one again: a fresh request gets a fresh assertion.
    let (status, again) = json_of(get_auth(&c, s.gw.url("/orders/1"), &bearer(&token)).await).await;
    assert_eq!(status, 200, "{again}");
    assert_ne!(again["assertion"], assertion);
    s.gw.stop().await;
}

#[tokio::test]
async fn a_cookie_session_gets_the_same_verified_assertion_as_its_bearer_token_reused_on_repeats() {
    let s = setup("EdDSA", &rcgen::PKCS_ED25519, "[auth.cookie]\n").await;
    let c = client();
    let token = valid_with("carol", &json!({"jti": "cookie-session"}));
    let by_cookie = || async {
        let res = c
            .get(s.gw.url("/orders/1"))
            .header(
                "cookie",
                format!("theme=dark; __Host-gateway-session={token}"),
            )
            .send()
            .await
            .unwrap();
        json_of(res).await
    };
    let (status, first) = by_cookie().await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["claims"]["sub"], "carol");
    assert_eq!(first["claims"]["jti"], "cookie-session");
    // A second later (so a fresh signature would carry another `iat`) the same session gets the same
    // assertion: it was remembered, not signed again; and the Bearer form of the token shares it.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, again) = by_cookie().await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["assertion"], first["assertion"]);
    let (status, bearer_seen) =
        json_of(get_auth(&c, s.gw.url("/orders/1"), &bearer(&token)).await).await;
    assert_eq!(status, 200, "{bearer_seen}");
    assert_eq!(bearer_seen["assertion"], first["assertion"]);
    s.gw.stop().await;
}

#[tokio::test]
async fn rotation_publishes_the_previous_key_so_assertions_in_flight_still_verify() {
    let dir = tempfile::tempdir().unwrap();
    let old = key_file(dir.path(), "old.pem", &rcgen::PKCS_ED25519);
    let new = key_file(dir.path(), "new.pem", &rcgen::PKCS_ED25519);
    let mut verifier = PyVerifier::start("orders");
    let c = client();
    let token = valid_with("carol", &json!({"jti": "j"}));
    let routes = route("/orders", &verifier.url(), "name = \"orders\"");

    let before = format!(
        "[identity.assertion]\nheader = \"{HEADER}\"\nkey_file = {old:?}\nkid = \"as-old\"\nissuer = \"{ISSUER}\"\n"
    );
    let gw_old = TestGateway::start(&[&before, &routes]).await;
    let after = format!(
        "[identity.assertion]\nheader = \"{HEADER}\"\nkey_file = {new:?}\nkid = \"as-new\"\nissuer = \"{ISSUER}\"\n[[identity.assertion.previous_keys]]\nkid = \"as-old\"\npublic_key_file = \"{old}.pub\"\n"
    );
    let gw_new = TestGateway::start(&[&after, &routes]).await;
    // The verifier follows the rotated gateway's key set.
    verifier.serve_jwks(&gw_new.url("/.well-known/gateway/assertion-jwks.json"));
    let kids: Vec<String> = c
        .get(gw_new.url("/.well-known/gateway/assertion-jwks.json"))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kids, ["as-new", "as-old"]);

    // An assertion the not-yet-rotated instance signed with the old key still verifies.
    let (status, seen) =
        json_of(get_auth(&c, gw_old.url("/orders/1"), &bearer(&token)).await).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["header"]["kid"], "as-old");
    let (status, seen) =
        json_of(get_auth(&c, gw_new.url("/orders/1"), &bearer(&token)).await).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["header"]["kid"], "as-new");
    gw_old.stop().await;
    gw_new.stop().await;
}

#[tokio::test]
async fn without_a_key_file_an_ephemeral_key_works_on_loopback_and_counts_as_a_development_setting()
{
    let fragment = format!("[identity.assertion]\nheader = \"{HEADER}\"\n");
    let cfg = support::config(&[&fragment]).unwrap();
    let lasting = gateway::state::Lasting::new(&cfg).unwrap();
    let state = gateway::state::State::new(&cfg, &lasting, None).unwrap();
    let found = gateway::exposure::development_settings(&cfg, &state);
    assert!(
        found
            .iter()
            .any(|f| f.contains("identity.assertion.key_file")),
        "{found:?}"
    );
    // The same key across a reload of the same process (upstreams keep verifying).
    let again = gateway::state::State::new(&cfg, &lasting, Some(&state)).unwrap();
    assert_eq!(
        state.asserter.as_ref().unwrap().jwks(),
        again.asserter.as_ref().unwrap().jwks()
    );

    let mut verifier = PyVerifier::start("orders");
    let routes = route("/orders", &verifier.url(), "name = \"orders\"");
    let gw = TestGateway::start(&[&format!("{fragment}issuer = \"{ISSUER}\"\n"), &routes]).await;
    verifier.serve_jwks(&gw.url("/.well-known/gateway/assertion-jwks.json"));
    let token = valid_with("dave", &json!({}));
    let (status, seen) =
        json_of(get_auth(&client(), gw.url("/orders/1"), &bearer(&token)).await).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["claims"]["sub"], "dave");
    assert!(
        seen["claims"].get("jti").is_none(),
        "no jti in the token, none in the assertion"
    );
    gw.stop().await;
}
