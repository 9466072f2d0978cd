//! Bearer authentication on protected routes: every way a request can lack a valid token is a bare 401 with
//! a Bearer challenge, and the upstream never hears of it.

mod support;

use jsonwebtoken::Algorithm;
use serde_json::json;
use support::tokens;
use support::upstream::Upstream;
use support::{client, route, TestGateway};

const CHALLENGE: &str = "Bearer realm=\"gateway\"";
const INVALID_TOKEN: &str = "Bearer realm=\"gateway\", error=\"invalid_token\"";

/// An echo upstream behind one protected catch-all route, plus any extra config fragments.
async fn protected(extra: &[&str]) -> (Upstream, TestGateway) {
    let up = Upstream::echo().await;
    let routes = route("/", &up.url(), "");
    let mut fragments: Vec<&str> = vec![&routes];
    fragments.extend_from_slice(extra);
    let gw = TestGateway::start(&fragments).await;
    (up, gw)
}

async fn get(gw: &TestGateway, path: &str, authorization: Option<&str>) -> reqwest::Response {
    let mut req = client().get(gw.url(path));
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    req.send().await.expect("gateway answers")
}

/// Asserts the gateway's own 401: the exact challenge, an empty body, nothing cacheable.
async fn assert_401(res: reqwest::Response, challenge: &str, case: &str) {
    assert_eq!(res.status(), 401, "{case}");
    let www: Vec<_> = res.headers().get_all("www-authenticate").iter().collect();
    assert_eq!(www.len(), 1, "{case}: one challenge");
    assert_eq!(www[0], challenge, "{case}");
    assert_eq!(res.headers()["cache-control"], "no-store", "{case}");
    assert_eq!(res.bytes().await.unwrap().len(), 0, "{case}: empty body");
}

/// Sends every (case, token) with `Bearer`, expects the invalid-token 401 for each, and an untouched upstream.
async fn assert_tokens_refused(up: &Upstream, gw: &TestGateway, cases: &[(&str, String)]) {
    for (case, token) in cases {
        let res = get(gw, "/resource", Some(&tokens::bearer(token))).await;
        assert_401(res, INVALID_TOKEN, case).await;
    }
    assert_eq!(up.count(), 0, "the upstream must never be contacted");
}

#[tokio::test]
async fn missing_token_is_401_with_bearer_challenge() {
    let (up, gw) = protected(&[]).await;
    assert_401(
        get(&gw, "/resource", None).await,
        CHALLENGE,
        "no Authorization",
    )
    .await;
    assert_eq!(up.count(), 0);
    // Control: the same request with a token is forwarded, so the 401 above was about the token.
    assert_eq!(
        get(
            &gw,
            "/resource",
            Some(&tokens::bearer(&tokens::valid("alice")))
        )
        .await
        .status(),
        200
    );
    assert_eq!(up.count(), 1);
    gw.stop().await;
}

#[tokio::test]
async fn basic_scheme_is_401_with_bearer_challenge() {
    let (up, gw) = protected(&[]).await;
    assert_401(
        get(&gw, "/resource", Some("Basic YWxpY2U6c2VjcmV0")).await,
        CHALLENGE,
        "Basic",
    )
    .await;
    // A valid JWT under another scheme is still not a Bearer credential.
    let jwt_as_basic = format!("Basic {}", tokens::valid("alice"));
    assert_401(
        get(&gw, "/resource", Some(&jwt_as_basic)).await,
        CHALLENGE,
        "JWT as Basic",
    )
    .await;
    assert_eq!(up.count(), 0);
    gw.stop().await;
}

#[tokio::test]
async fn malformed_token_is_401_invalid_token() {
    let (up, gw) = protected(&[]).await;
    let cases = [
        ("one segment", "abcdef".to_string()),
        ("three junk segments", "a.b.c".to_string()),
        ("not base64", "@@@.###.$$$".to_string()),
        (
            "header only",
            tokens::valid("alice")
                .split('.')
                .next()
                .unwrap()
                .to_string(),
        ),
        (
            "two tokens",
            format!("{} {}", tokens::valid("alice"), tokens::valid("bob")),
        ),
    ];
    assert_tokens_refused(&up, &gw, &cases).await;
    gw.stop().await;
}

#[tokio::test]
async fn token_signed_with_another_key_is_401_invalid_token() {
    let (up, gw) = protected(&[]).await;
    let n = tokens::now();
    let forged = tokens::sign_with(
        &json!({"sub": "alice", "exp": n + 600}),
        Algorithm::HS256,
        b"attacker-chosen-secret-0123456789abcdef",
    );
    assert_tokens_refused(&up, &gw, &[("wrong key", forged)]).await;
    gw.stop().await;
}

#[tokio::test]
async fn alg_none_token_is_401_in_every_casing() {
    let (up, gw) = protected(&[]).await;
    let claims = json!({"sub": "admin", "name": "admin", "exp": tokens::now() + 600});
    let mut cases = Vec::new();
    for alg in ["none", "None", "NONE", "nOnE"] {
        let with_dot = tokens::unsigned(&json!({"alg": alg, "typ": "JWT"}), &claims);
        let without_dot = with_dot.trim_end_matches('.').to_string();
        cases.push((alg, with_dot));
        cases.push((alg, without_dot));
    }
    // `none` with a stolen valid signature appended must not pass either.
    let sig = tokens::valid("alice")
        .rsplit('.')
        .next()
        .unwrap()
        .to_string();
    cases.push((
        "none + signature",
        format!(
            "{}{sig}",
            tokens::unsigned(&json!({"alg": "none"}), &claims)
        ),
    ));
    assert_tokens_refused(&up, &gw, &cases).await;
    gw.stop().await;
}

#[tokio::test]
async fn hs512_token_is_401_when_hs256_is_configured() {
    let (up, gw) = protected(&[]).await;
    let claims = json!({"sub": "alice", "exp": tokens::now() + 600});
    let cases = [
        (
            "HS512",
            tokens::sign_with(&claims, Algorithm::HS512, support::SECRET.as_bytes()),
        ),
        (
            "HS384",
            tokens::sign_with(&claims, Algorithm::HS384, support::SECRET.as_bytes()),
        ),
    ];
    assert_tokens_refused(&up, &gw, &cases).await;
    gw.stop().await;
}

#[tokio::test]
async fn expired_token_is_401_with_www_authenticate() {
    let (up, gw) = protected(&[]).await;
    assert_tokens_refused(&up, &gw, &[("expired", tokens::expired("alice"))]).await;
    gw.stop().await;
}

#[tokio::test]
async fn not_yet_valid_token_is_401() {
    let (up, gw) = protected(&[]).await;
    assert_tokens_refused(
        &up,
        &gw,
        &[("nbf in 10 min", tokens::not_yet_valid("alice"))],
    )
    .await;
    gw.stop().await;
}

#[tokio::test]
async fn wrong_issuer_or_audience_is_401() {
    let (up, gw) =
        protected(&["[auth]\nissuer = \"https://issuer.test\"\naudience = \"legacy-app\"\n"]).await;
    let exp = tokens::now() + 600;
    let token = |iss: Option<&str>, aud: Option<&str>| {
        let mut c = json!({"sub": "alice", "exp": exp});
        if let Some(i) = iss {
            c["iss"] = json!(i);
        }
        if let Some(a) = aud {
            c["aud"] = json!(a);
        }
        tokens::sign(&c)
    };
    let cases = [
        (
            "wrong issuer",
            token(Some("https://evil.test"), Some("legacy-app")),
        ),
        (
            "wrong audience",
            token(Some("https://issuer.test"), Some("other-app")),
        ),
        ("no issuer", token(None, Some("legacy-app"))),
        ("no audience", token(Some("https://issuer.test"), None)),
    ];
    assert_tokens_refused(&up, &gw, &cases).await;
    // Control: the right issuer and audience pass.
    let good = token(Some("https://issuer.test"), Some("legacy-app"));
    assert_eq!(
        get(&gw, "/resource", Some(&tokens::bearer(&good)))
            .await
            .status(),
        200
    );
    gw.stop().await;
}

#[tokio::test]
async fn tampered_payload_is_401() {
    let (up, gw) = protected(&[]).await;
    assert_tokens_refused(
        &up,
        &gw,
        &[("payload swapped", tokens::tampered("alice", "admin"))],
    )
    .await;
    gw.stop().await;
}

#[tokio::test]
async fn token_over_max_token_bytes_is_401() {
    let (up, gw) = protected(&["[auth]\nmax_token_bytes = 256\n"]).await;
    // Correctly signed, so only its size can be the reason.
    let big = tokens::valid_with("alice", &json!({"padding": "p".repeat(300)}));
    assert!(big.len() > 256);
    assert_tokens_refused(&up, &gw, &[("too long", big)]).await;
    // Control: a small valid token is accepted under the same limit.
    let small = tokens::valid("alice");
    assert!(small.len() <= 256);
    assert_eq!(
        get(&gw, "/resource", Some(&tokens::bearer(&small)))
            .await
            .status(),
        200
    );
    gw.stop().await;
}

#[tokio::test]
async fn two_authorization_headers_are_refused() {
    let (up, gw) = protected(&[]).await;
    let res = client()
        .get(gw.url("/resource"))
        .header("authorization", tokens::bearer(&tokens::valid("alice")))
        .header("authorization", tokens::bearer(&tokens::valid("admin")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(up.count(), 0);
    gw.stop().await;
}

#[tokio::test]
async fn bearer_scheme_is_case_insensitive() {
    let (up, gw) = protected(&[]).await;
    let token = tokens::valid("alice");
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let res = get(&gw, "/resource", Some(&format!("{scheme} {token}"))).await;
        assert_eq!(res.status(), 200, "{scheme}");
        assert_eq!(
            up.last().one("x-auth-user").as_deref(),
            Some("alice"),
            "{scheme}"
        );
    }
    assert_eq!(up.count(), 4);
    gw.stop().await;
}

#[tokio::test]
async fn public_route_needs_no_token() {
    let public = Upstream::echo().await;
    let private = Upstream::echo().await;
    let gw = TestGateway::start_routes(&[
        route("/public", &public.url(), "public = true"),
        route("/", &private.url(), ""),
    ])
    .await;
    assert_eq!(get(&gw, "/public/page", None).await.status(), 200);
    assert_eq!(public.last().path, "/public/page");
    assert!(public.last().one("x-auth-user").is_none());
    // The neighbouring protected route is still protected.
    assert_401(
        get(&gw, "/private", None).await,
        CHALLENGE,
        "protected neighbour",
    )
    .await;
    assert_eq!(private.count(), 0);
    gw.stop().await;
}

#[tokio::test]
async fn unknown_path_without_token_is_401_not_404() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&[&route("/app", &up.url(), "")]).await;
    assert_401(
        get(&gw, "/no-such-route", None).await,
        CHALLENGE,
        "unknown path",
    )
    .await;
    assert_401(get(&gw, "/", None).await, CHALLENGE, "root").await;
    assert_eq!(up.count(), 0);
    gw.stop().await;
}

#[tokio::test]
async fn unknown_path_with_valid_token_is_404() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&[&route("/app", &up.url(), "")]).await;
    let auth = tokens::bearer(&tokens::valid("alice"));
    let res = get(&gw, "/no-such-route", Some(&auth)).await;
    assert_eq!(res.status(), 404);
    assert!(res.headers().get("www-authenticate").is_none());
    // `/application` is not under the `/app` prefix either.
    assert_eq!(get(&gw, "/application", Some(&auth)).await.status(), 404);
    assert_eq!(up.count(), 0);
    assert_eq!(get(&gw, "/app/x", Some(&auth)).await.status(), 200);
    gw.stop().await;
}
