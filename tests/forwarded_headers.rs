//! What reaches an upstream besides the gateway's own identity headers (issue 12 items 2 and 3): headers
//! that override the target or name a user never pass, client-address claims pass only from trusted
//! proxies, and a caller's token reaches only the protected routes' backends.

mod support;

use support::tokens;
use support::upstream::{Seen, Upstream};
use support::{client, route, TestGateway};

/// Every header the gateway removes from every request, whoever sent it.
const ALWAYS: [&str; 8] = [
    "X-Original-URL",
    "X-Rewrite-URL",
    "Remote-User",
    "X-Remote-User",
    "X-Forwarded-User",
    "X-Forwarded-Email",
    "X-Forwarded-Preferred-Username",
    "X-Forwarded-Groups",
];
/// Every header the gateway removes unless a trusted proxy sent it.
const UNTRUSTED: [&str; 7] = [
    "True-Client-IP",
    "CF-Connecting-IP",
    "X-Client-IP",
    "X-Cluster-Client-IP",
    "X-Forwarded-Prefix",
    "X-Forwarded-Port",
    "X-Forwarded-Server",
];

/// GET `path` with every header of both lists (plus `extra`), and what the upstream saw.
async fn send(gw: &TestGateway, up: &Upstream, path: &str, extra: &[(&str, &str)]) -> Seen {
    let mut req = client().get(gw.url(path));
    for name in ALWAYS.iter().chain(UNTRUSTED.iter()) {
        req = req.header(*name, "/admin/delete");
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    assert_eq!(req.send().await.unwrap().status(), 200);
    up.last()
}

fn present(seen: &Seen, names: &[&str]) -> Vec<String> {
    names
        .iter()
        .filter(|n| seen.one(n).is_some())
        .map(|n| n.to_string())
        .collect()
}

#[tokio::test]
async fn target_and_user_headers_never_reach_a_public_route_and_address_claims_only_from_trusted_proxies(
) {
    let up = Upstream::echo().await;
    let public = route("/", &up.url(), "public = true");
    let untrusted = TestGateway::start(&[&public]).await;
    let seen = send(&untrusted, &up, "/page", &[]).await;
    assert_eq!(present(&seen, &ALWAYS), Vec::<String>::new());
    assert_eq!(present(&seen, &UNTRUSTED), Vec::<String>::new());
    untrusted.stop().await;

    // Behind a trusted load balancer: address claims are its own and pass; the others still never do.
    let trusted =
        TestGateway::start(&[&public, "[server]\ntrusted_proxies = [\"127.0.0.1\"]\n"]).await;
    let seen = send(&trusted, &up, "/page", &[]).await;
    assert_eq!(present(&seen, &ALWAYS), Vec::<String>::new());
    assert_eq!(present(&seen, &UNTRUSTED).len(), UNTRUSTED.len());
    trusted.stop().await;
}

#[tokio::test]
async fn both_lists_can_be_extended() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&[
        &route("/", &up.url(), "public = true"),
        "[identity]\nstrip_headers = [\"X-Legacy-Auth\"]\nstrip_untrusted_headers = [\"X-Origin-Site\"]\n",
    ])
    .await;
    let seen = send(
        &gw,
        &up,
        "/",
        &[
            ("x-legacy-auth", "admin"),
            ("x_origin_site", "hq"),
            ("x-kept", "1"),
        ],
    )
    .await;
    assert_eq!(seen.one("x-legacy-auth"), None);
    assert_eq!(seen.one("x_origin_site"), None, "stripped in any spelling");
    assert_eq!(seen.one("x-kept").as_deref(), Some("1"));
    gw.stop().await;
}

#[tokio::test]
async fn the_callers_token_reaches_protected_routes_only_unless_a_route_says_otherwise() {
    let up = Upstream::echo().await;
    // One fragment: later fragments replace earlier route arrays.
    let routes = route("/public", &up.url(), "public = true")
        + &route(
            "/shared",
            &up.url(),
            "public = true\nforward_authorization = true",
        )
        + &route("/quiet", &up.url(), "forward_authorization = false")
        + &route("/", &up.url(), "");
    let gw = TestGateway::start(&[&routes]).await;
    let bearer = tokens::bearer(&tokens::valid("alice"));
    for (path, forwarded) in [
        ("/public/x", false),
        ("/shared/x", true),
        ("/quiet/x", false),
        ("/app/x", true),
    ] {
        let res = client()
            .get(gw.url(path))
            .header("authorization", &bearer)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(
            up.last().one("authorization").is_some(),
            forwarded,
            "{path}: Authorization forwarded"
        );
    }
    gw.stop().await;
}
