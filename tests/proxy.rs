//! The proxy path end to end: routing, forwarding, identity headers, hop-by-hop removal, streaming.

mod support;

use support::tokens;
use support::upstream::Upstream;
use support::{client, route, TestGateway};

#[tokio::test]
async fn valid_token_is_forwarded_with_identity_headers() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&[&route("/", &up.url(), "")]).await;
    let res = client()
        .get(gw.url("/api/users?x=1&y=%2F"))
        .header("authorization", tokens::bearer(&tokens::valid("alice")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let seen = up.last();
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.path, "/api/users");
    assert_eq!(seen.query.as_deref(), Some("x=1&y=%2F"));
    assert_eq!(seen.one("x-auth-user").as_deref(), Some("alice"));
    assert_eq!(seen.one("x-auth-name").as_deref(), Some("alice"));
    assert_eq!(seen.one("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert_eq!(seen.one("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(seen.one("host"), Some(gw.addr.to_string()));
    assert!(seen.one("authorization").unwrap().starts_with("Bearer "));
    gw.stop().await;
}
