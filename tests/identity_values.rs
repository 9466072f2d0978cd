//! Identity headers fail closed (issue 12 item 4): a correctly signed token whose `sub`, `name` or a claim
//! mapped by `[identity.claims]` cannot be an HTTP header value is refused like any invalid token, and the
//! upstream hears nothing; before, it was forwarded without `X-Auth-User`, as if anonymous.

mod support;

use serde_json::json;
use support::tokens;
use support::upstream::Upstream;
use support::{client, route, TestGateway};

const INVALID_TOKEN: &str = "Bearer realm=\"gateway\", error=\"invalid_token\"";

/// An echo upstream behind a protected catch-all route that also passes `role` and `groups` upstream.
async fn gateway() -> (Upstream, TestGateway) {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&[
        &route("/", &up.url(), ""),
        "[identity.claims]\nrole = \"X-Auth-Role\"\ngroups = \"X-Auth-Groups\"\n",
    ])
    .await;
    (up, gw)
}

async fn get(gw: &TestGateway, token: &str) -> reqwest::Response {
    client()
        .get(gw.url("/resource"))
        .header("authorization", tokens::bearer(token))
        .send()
        .await
        .expect("gateway answers")
}

#[tokio::test]
async fn identity_claims_that_cannot_be_header_values_get_401_and_reach_nobody() {
    let (up, gw) = gateway().await;
    let cases = [
        ("sub with \\x01", json!({"sub": "bob\u{1}"})),
        ("sub with \\n", json!({"sub": "bob\n"})),
        ("sub with \\x7f", json!({"sub": "bob\u{7f}"})),
        (
            "sub with CRLF + header",
            json!({"sub": "bob\r\nX-Admin: 1"}),
        ),
        ("sub with NUL", json!({"sub": "bob\u{0}"})),
        ("sub with trailing space", json!({"sub": "bob "})),
        ("name with \\x01", json!({"name": "Bob\u{1}"})),
        ("name with \\n", json!({"name": "Bob\nSmith"})),
        ("mapped claim with \\x7f", json!({"role": "admin\u{7f}"})),
        (
            "mapped array item with \\n",
            json!({"groups": ["ops", "x\ny"]}),
        ),
    ];
    for (case, claims) in &cases {
        let sub = claims["sub"].as_str().unwrap_or("bob");
        let token = tokens::valid_with(sub, claims);
        // Twice: a refused token must not be remembered as verified either.
        for attempt in 1..=2 {
            let res = get(&gw, &token).await;
            assert_eq!(res.status(), 401, "{case} (attempt {attempt})");
            assert_eq!(
                res.headers()["www-authenticate"],
                INVALID_TOKEN,
                "{case} (attempt {attempt})"
            );
        }
    }
    assert_eq!(up.count(), 0, "the upstream must never be contacted");

    // Control: the same claims with clean values are forwarded, so the 401s were about the values.
    let ok = tokens::valid_with(
        "bob",
        &json!({"name": "Bob Smith", "role": "admin", "groups": ["ops", "xy"]}),
    );
    assert_eq!(get(&gw, &ok).await.status(), 200);
    let seen = up.last();
    assert_eq!(seen.one("x-auth-user").as_deref(), Some("bob"));
    assert_eq!(seen.one("x-auth-name").as_deref(), Some("Bob Smith"));
    assert_eq!(seen.one("x-auth-role").as_deref(), Some("admin"));
    assert_eq!(seen.one("x-auth-groups").as_deref(), Some("ops,xy"));
    gw.stop().await;
}

#[tokio::test]
async fn non_ascii_identities_and_unmapped_claims_keep_working() {
    let (up, gw) = gateway().await;
    // Non-ASCII UTF-8 is sent as its raw bytes (obs-text), as before; a claim that is not mapped to a header
    // may hold anything, it never reaches a header.
    let token = tokens::valid_with(
        "josé",
        &json!({"name": "José Müller", "role": "café", "note": "line one\nline two\u{1}"}),
    );
    for _ in 0..2 {
        let res = get(&gw, &token).await;
        assert_eq!(res.status(), 200);
    }
    assert_eq!(up.count(), 2);
    let seen = up.last();
    let raw = |name: &str| seen.headers.get(name).map(|v| v.as_bytes().to_vec());
    assert_eq!(raw("x-auth-user"), Some("josé".as_bytes().to_vec()));
    assert_eq!(raw("x-auth-name"), Some("José Müller".as_bytes().to_vec()));
    assert_eq!(raw("x-auth-role"), Some("café".as_bytes().to_vec()));
    gw.stop().await;
}
