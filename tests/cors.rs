//! CORS: preflights from allowed origins are answered by the gateway without a token, every response to an
//! allowed origin (401 included) carries the CORS headers, and other origins get none.

mod support;

use support::tokens;
use support::upstream::Upstream;
use support::{client, route, TestGateway};

const ALLOWED: &str = "http://app.example";
const CORS_CONFIG: &str = "[cors]\nallowed_origins = [\"http://app.example\"]\n";

async fn protected_with_cors() -> (Upstream, TestGateway) {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&[&route("/", &up.url(), ""), CORS_CONFIG]).await;
    (up, gw)
}

fn preflight(gw: &TestGateway, origin: &str) -> reqwest::RequestBuilder {
    client()
        .request(reqwest::Method::OPTIONS, gw.url("/api/orders"))
        .header("origin", origin)
        .header("access-control-request-method", "DELETE")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
}

#[tokio::test]
async fn preflight_from_allowed_origin_is_204_without_token_and_upstream_untouched() {
    let (up, gw) = protected_with_cors().await;
    let res = preflight(&gw, ALLOWED).send().await.unwrap();
    assert_eq!(res.status(), 204);
    let h = res.headers();
    assert_eq!(h["access-control-allow-origin"], ALLOWED);
    let methods = h["access-control-allow-methods"].to_str().unwrap();
    for m in ["GET", "POST", "DELETE", "OPTIONS"] {
        assert!(methods.contains(m), "{m} missing from {methods}");
    }
    let headers = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        headers.contains("authorization") && headers.contains("content-type"),
        "{headers}"
    );
    assert!(h.get("access-control-max-age").is_some());
    assert!(h.get("www-authenticate").is_none());
    assert_eq!(up.count(), 0);
    gw.stop().await;
}

#[tokio::test]
async fn unauthorized_response_to_allowed_origin_carries_cors_headers() {
    let (up, gw) = protected_with_cors().await;
    let res = client()
        .get(gw.url("/api/orders"))
        .header("origin", ALLOWED)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["access-control-allow-origin"], ALLOWED);
    assert!(res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    let vary: Vec<_> = res
        .headers()
        .get_all("vary")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert!(vary.iter().any(|v| v.contains("Origin")), "{vary:?}");
    assert_eq!(up.count(), 0);
    // And a successful, proxied response carries them too.
    let res = client()
        .get(gw.url("/api/orders"))
        .header("origin", ALLOWED)
        .header("authorization", tokens::bearer(&tokens::valid("alice")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["access-control-allow-origin"], ALLOWED);
    gw.stop().await;
}

#[tokio::test]
async fn disallowed_origin_gets_no_cors_headers_and_its_preflight_is_a_normal_request() {
    let (up, gw) = protected_with_cors().await;
    for origin in [
        "http://evil.example",
        "http://app.example.evil.test",
        "https://app.example",
    ] {
        let res = preflight(&gw, origin).send().await.unwrap();
        assert_eq!(res.status(), 401, "{origin}");
        assert!(
            !res.headers()
                .keys()
                .any(|k| k.as_str().starts_with("access-control-")),
            "{origin}: {:?}",
            res.headers()
        );
        let res = client()
            .get(gw.url("/api/orders"))
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
        assert!(
            res.headers().get("access-control-allow-origin").is_none(),
            "{origin}"
        );
    }
    assert_eq!(up.count(), 0);
    gw.stop().await;
}

#[tokio::test]
async fn without_cors_config_a_preflight_is_a_normal_request() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&[&route("/", &up.url(), "")]).await;
    let res = preflight(&gw, ALLOWED).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert!(res.headers().get("access-control-allow-origin").is_none());
    assert_eq!(up.count(), 0);
    gw.stop().await;
}
