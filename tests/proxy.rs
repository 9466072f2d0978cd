//! The proxy path end to end: routing, forwarding, identity headers, hop-by-hop removal, streaming,
//! upstream failures and the listener's protocol limits.

mod support;

use std::time::{Duration, Instant};
use support::http::get_auth;
use support::tokens;
use support::upstream::{Seen, Upstream};
use support::{
    client, closed_within, raw_exchange, raw_get, read_head, read_response, route, TestGateway,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn alice() -> String {
    tokens::bearer(&tokens::valid("alice"))
}

/// The header names the upstream saw that spell `name` up to case and `_`/`-`.
fn spellings_of(seen: &Seen, name: &str) -> Vec<(String, String)> {
    seen.headers
        .iter()
        .filter(|(k, _)| k.as_str().replace('_', "-").eq_ignore_ascii_case(name))
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

// === forwarding basics ===

#[tokio::test]
async fn valid_token_is_forwarded_with_identity_headers() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&[&route("/", &up.url(), "")]).await;
    let res = get_auth(&client(), gw.url("/api/users?x=1&y=%2F"), &alice()).await;
    assert_eq!(res.status(), 200);
    let seen = up.last();
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.path, "/api/users");
    assert_eq!(seen.query.as_deref(), Some("x=1&y=%2F"));
    assert_eq!(seen.version, http::Version::HTTP_11);
    assert_eq!(seen.one("x-auth-user").as_deref(), Some("alice"));
    assert_eq!(seen.one("x-auth-name").as_deref(), Some("alice"));
    assert_eq!(seen.one("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert_eq!(seen.one("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(seen.one("host"), Some(gw.addr.to_string()));
    assert!(seen.one("authorization").unwrap().starts_with("Bearer "));
    gw.stop().await;
}

// === identity headers ===

/// A raw request carrying forged identity headers in several spellings (HTTP clients would merge them).
fn forged_identity_request(path: &str, authorization: Option<&str>) -> Vec<u8> {
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    format!(
        "GET {path} HTTP/1.1\r\nHost: gateway.test\r\n{auth}X-Auth-User: mallory\r\nx-auth-user: mallory2\r\n\
         X_Auth_User: mallory3\r\nX-AUTH-NAME: Mallory\r\nx_auth_name: Mallory2\r\nConnection: close\r\n\r\n"
    )
    .into_bytes()
}

#[tokio::test]
async fn client_sent_identity_headers_are_replaced_on_protected_routes() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&[&route("/", &up.url(), "")]).await;
    let (status, _, _) =
        raw_exchange(gw.addr, &forged_identity_request("/whoami", Some(&alice()))).await;
    assert_eq!(status, 200);
    let seen = up.last();
    assert_eq!(
        spellings_of(&seen, "x-auth-user"),
        [("x-auth-user".to_string(), "alice".to_string())]
    );
    assert_eq!(
        spellings_of(&seen, "x-auth-name"),
        [("x-auth-name".to_string(), "alice".to_string())]
    );
    gw.stop().await;
}

#[tokio::test]
async fn client_sent_identity_headers_are_stripped_on_public_routes() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&[&route("/", &up.url(), "public = true")]).await;
    for auth in [None, Some(alice())] {
        let (status, _, _) =
            raw_exchange(gw.addr, &forged_identity_request("/page", auth.as_deref())).await;
        assert_eq!(status, 200);
        let seen = up.last();
        assert_eq!(
            spellings_of(&seen, "x-auth-user"),
            [],
            "token sent: {}",
            auth.is_some()
        );
        assert_eq!(
            spellings_of(&seen, "x-auth-name"),
            [],
            "token sent: {}",
            auth.is_some()
        );
    }
    gw.stop().await;
}

#[tokio::test]
async fn authorization_is_not_forwarded_when_disabled() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&[
        &route("/", &up.url(), ""),
        "[identity]\nforward_authorization = false\n",
    ])
    .await;
    let res = get_auth(&client(), gw.url("/x"), &alice()).await;
    assert_eq!(res.status(), 200);
    let seen = up.last();
    assert!(seen.one("authorization").is_none(), "{:?}", seen.headers);
    assert_eq!(seen.one("x-auth-user").as_deref(), Some("alice"));
    gw.stop().await;
}

#[tokio::test]
async fn configured_claim_is_passed_as_header() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&[
        &route("/", &up.url(), ""),
        "[identity.claims]\nrole = \"X-Auth-Role\"\ngroups = \"X-Auth-Groups\"\n",
    ])
    .await;
    let token = tokens::valid_with(
        "alice",
        &serde_json::json!({"role": "auditor", "groups": ["a", "b"]}),
    );
    let res = client()
        .get(gw.url("/x"))
        .header("authorization", tokens::bearer(&token))
        .header("x-auth-role", "admin")
        .header("x_auth_role", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let seen = up.last();
    assert_eq!(
        spellings_of(&seen, "x-auth-role"),
        [("x-auth-role".to_string(), "auditor".to_string())]
    );
    assert_eq!(seen.one("x-auth-groups").as_deref(), Some("a,b"));
    // A token without the claim: the header is absent, and the forged one is still stripped.
    let res = client()
        .get(gw.url("/x"))
        .header("authorization", alice())
        .header("X-Auth-Role", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(spellings_of(&up.last(), "x-auth-role"), []);
    gw.stop().await;
}

// === hop-by-hop and forwarding headers ===

#[tokio::test]
async fn hop_by_hop_request_headers_never_reach_the_upstream() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&[&route("/", &up.url(), "")]).await;
    let req = format!(
        "GET /hop HTTP/1.1\r\nHost: gateway.test\r\nAuthorization: {}\r\nConnection: X-Custom, keep-alive\r\n\
         X-Custom: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\n\
         Proxy-Connection: keep-alive\r\nUpgrade: foo/1\r\nX-Kept: yes\r\n\r\n",
        alice()
    );
    let (status, _, _) = raw_exchange(gw.addr, req.as_bytes()).await;
    assert_eq!(status, 200);
    let seen = up.last();
    for name in [
        "x-custom",
        "keep-alive",
        "te",
        "proxy-authorization",
        "proxy-connection",
        "upgrade",
    ] {
        assert!(
            !seen.headers.contains_key(name),
            "{name} reached the upstream: {:?}",
            seen.headers
        );
    }
    // The only Connection value the upstream may see is the one its own client hop chose.
    for v in seen.all("connection") {
        assert!(!v.to_ascii_lowercase().contains("x-custom"), "{v}");
    }
    assert_eq!(seen.one("x-kept").as_deref(), Some("yes"));
    gw.stop().await;
}

#[tokio::test]
async fn h2c_upgrade_request_is_not_forwarded_as_an_upgrade() {
    // Relaying `Upgrade: h2c` would give the client a raw HTTP/2 connection to the upstream after one
    // checked request ("h2c smuggling"), on a public route without any token at all.
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&[&route("/", &up.url(), "public = true")]).await;
    let req = "GET /page HTTP/1.1\r\nHost: gateway.test\r\nConnection: Upgrade, HTTP2-Settings\r\n\
               Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n";
    let (status, _, _) = raw_exchange(gw.addr, req.as_bytes()).await;
    assert_eq!(status, 200);
    let seen = up.last();
    assert!(!seen.headers.contains_key("upgrade"), "{:?}", seen.headers);
    assert!(
        !seen.headers.contains_key("http2-settings"),
        "{:?}",
        seen.headers
    );
    gw.stop().await;
}

#[tokio::test]
async fn hop_by_hop_response_headers_never_reach_the_client() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&[&route("/", &up.url(), "")]).await;
    let res = get_auth(&client(), gw.url("/x"), &alice()).await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers().get("x-upstream-private").is_none(),
        "{:?}",
        res.headers()
    );
    assert!(
        res.headers().get("keep-alive").is_none(),
        "{:?}",
        res.headers()
    );
    for v in res.headers().get_all("connection") {
        assert!(!v.to_str().unwrap().contains("x-upstream-private"), "{v:?}");
    }
    assert_eq!(res.headers()["content-type"], "application/json");
    gw.stop().await;
}

#[tokio::test]
async fn forwarded_for_is_replaced_for_untrusted_peer_and_via_is_added() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&[&route("/", &up.url(), "")]).await;
    let res = client()
        .get(gw.url("/x"))
        .header("authorization", alice())
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-host", "evil.test")
        .header("x-forwarded-proto", "https")
        .header("x-real-ip", "6.6.6.6")
        .header("forwarded", "for=6.6.6.6")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let seen = up.last();
    assert_eq!(seen.all("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(seen.all("x-forwarded-host"), [gw.addr.to_string()]);
    assert_eq!(seen.all("x-forwarded-proto"), ["http"]);
    assert!(seen.one("x-real-ip").is_none());
    assert!(seen.one("forwarded").is_none());
    assert_eq!(seen.all("via"), ["1.1 gateway"]);
    gw.stop().await;
}

#[tokio::test]
async fn forwarded_for_is_appended_for_trusted_proxy() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&[
        &route("/", &up.url(), ""),
        "[server]\ntrusted_proxies = [\"127.0.0.1/32\"]\n",
    ])
    .await;
    let res = client()
        .get(gw.url("/x"))
        .header("authorization", alice())
        .header("x-forwarded-for", "6.6.6.6")
        .header("via", "1.1 edge")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let seen = up.last();
    assert_eq!(seen.all("x-forwarded-for"), ["6.6.6.6, 127.0.0.1"]);
    assert_eq!(seen.all("via").join(", "), "1.1 edge, 1.1 gateway");
    gw.stop().await;
}

// === routing ===

#[tokio::test]
async fn longest_prefix_wins_across_upstreams() {
    let (root, api, v2) = (
        Upstream::echo().await,
        Upstream::echo().await,
        Upstream::echo().await,
    );
    let gw = TestGateway::start_routes(&[
        route("/", &root.url(), ""),
        route("/api", &api.url(), ""),
        route("/api/v2", &v2.url(), ""),
    ])
    .await;
    let cases: [(&str, &Upstream, &str); 6] = [
        ("/api/v2/users", &v2, "/api/v2/users"),
        ("/API/V2/users", &v2, "/API/V2/users"),
        ("/api/v2", &v2, "/api/v2"),
        ("/api/v3", &api, "/api/v3"),
        ("/api", &api, "/api"),
        ("/apix", &root, "/apix"),
    ];
    for (i, (path, upstream, expected)) in cases.iter().enumerate() {
        let before = (root.count(), api.count(), v2.count());
        let res = get_auth(&client(), gw.url(path), &alice()).await;
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(upstream.last().path, *expected, "case {i}: {path}");
        let after = (root.count(), api.count(), v2.count());
        assert_eq!(
            after.0 + after.1 + after.2,
            before.0 + before.1 + before.2 + 1,
            "{path}: one upstream hit"
        );
    }
    gw.stop().await;
}

#[tokio::test]
async fn host_specific_route_beats_the_any_host_route() {
    let (any, admin) = (Upstream::echo().await, Upstream::echo().await);
    let gw = TestGateway::start_routes(&[
        route("/", &any.url(), ""),
        route("/", &admin.url(), "host = \"admin.example\""),
    ])
    .await;
    for host in ["admin.example", "ADMIN.Example:8443"] {
        let req = format!(
            "GET /h HTTP/1.1\r\nHost: {host}\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
            alice()
        );
        assert_eq!(raw_exchange(gw.addr, req.as_bytes()).await.0, 200, "{host}");
        assert_eq!(
            admin.last().one("host").as_deref(),
            Some(host),
            "{host}: Host is preserved"
        );
    }
    assert_eq!((admin.count(), any.count()), (2, 0));
    let req = format!(
        "GET /h HTTP/1.1\r\nHost: other.example\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
        alice()
    );
    assert_eq!(raw_exchange(gw.addr, req.as_bytes()).await.0, 200);
    assert_eq!((admin.count(), any.count()), (2, 1));
    gw.stop().await;
}

#[tokio::test]
async fn strip_prefix_and_rewrite_prefix_change_the_upstream_path() {
    let (stat, api) = (Upstream::echo().await, Upstream::echo().await);
    let gw = TestGateway::start_routes(&[
        route("/static", &stat.url(), "strip_prefix = true"),
        route("/api/v2", &api.url(), "rewrite_prefix = \"/internal\""),
    ])
    .await;
    let get = |path: &'static str| {
        client()
            .get(gw.url(path))
            .header("authorization", alice())
            .send()
    };
    assert_eq!(get("/static/js/app.js").await.unwrap().status(), 200);
    assert_eq!(stat.last().path, "/js/app.js");
    assert_eq!(get("/static").await.unwrap().status(), 200);
    assert_eq!(stat.last().path, "/");
    assert_eq!(get("/api/v2/users?page=2").await.unwrap().status(), 200);
    assert_eq!(api.last().path, "/internal/users");
    assert_eq!(api.last().query.as_deref(), Some("page=2"));
    assert_eq!(get("/api/v2").await.unwrap().status(), 200);
    assert_eq!(api.last().path, "/internal");
    gw.stop().await;
}

#[tokio::test]
async fn upstream_base_path_is_prepended() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start_routes(&[
        route("/", &format!("{}/legacy/", up.url()), ""),
        route("/v2", &format!("{}/base", up.url()), "strip_prefix = true"),
    ])
    .await;
    let res = get_auth(&client(), gw.url("/orders/7"), &alice()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(up.last().path, "/legacy/orders/7");
    let res = get_auth(&client(), gw.url("/v2/orders"), &alice()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(up.last().path, "/base/orders");
    gw.stop().await;
}

#[tokio::test]
async fn preserve_host_false_sends_the_upstream_authority() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&[&route("/", &up.url(), "preserve_host = false")]).await;
    let res = get_auth(&client(), gw.url("/x"), &alice()).await;
    assert_eq!(res.status(), 200);
    let seen = up.last();
    assert_eq!(seen.one("host"), Some(up.addr.to_string()));
    assert_eq!(seen.one("x-forwarded-host"), Some(gw.addr.to_string()));
    gw.stop().await;
}

/// Request targets that a backend would resolve to `/admin`, sent byte for byte.
const ADMIN_IN_DISGUISE: [(&str, &str); 8] = [
    ("/public/../admin", "/admin"),
    ("/public/%2e%2e/admin", "/admin"),
    ("/public/%2E%2E%2Fadmin", "/admin"),
    ("/public%2f..%2fadmin", "/admin"),
    ("//admin", "/admin"),
    ("/ADMIN", "/ADMIN"),
    ("/%61dmin", "/admin"),
    // Tomcat/Jetty cut `;` parameters before resolving dot segments.
    ("/public/..;/admin", "/admin"),
];

/// A public route and a protected one, on different upstreams.
async fn public_and_admin() -> (Upstream, Upstream, TestGateway) {
    let (public, admin) = (Upstream::echo().await, Upstream::echo().await);
    let gw = TestGateway::start_routes(&[
        route("/public", &public.url(), "public = true"),
        route("/admin", &admin.url(), ""),
    ])
    .await;
    (public, admin, gw)
}

#[tokio::test]
async fn disguised_admin_paths_without_token_are_401() {
    let (public, admin, gw) = public_and_admin().await;
    for (target, _) in ADMIN_IN_DISGUISE {
        let (status, answer) = raw_get(gw.addr, target, "").await;
        assert_eq!(status, 401, "{target}: {answer}");
        assert!(
            answer.contains("WWW-Authenticate") || answer.contains("www-authenticate"),
            "{target}"
        );
        assert_eq!(admin.count(), 0, "{target} reached the admin upstream");
        assert_eq!(
            public.count(),
            0,
            "{target} was served by the public upstream"
        );
    }
    // Control: the public route itself is open.
    assert_eq!(raw_get(gw.addr, "/public/page", "").await.0, 200);
    gw.stop().await;
}

#[tokio::test]
async fn disguised_admin_paths_with_token_reach_admin_with_the_normalised_path() {
    let (public, admin, gw) = public_and_admin().await;
    let auth = format!("Authorization: {}\r\n", alice());
    for (target, normalised) in ADMIN_IN_DISGUISE {
        let (status, answer) = raw_get(gw.addr, target, &auth).await;
        assert_eq!(status, 200, "{target}: {answer}");
        assert_eq!(admin.last().path, normalised, "{target}");
    }
    assert_eq!(admin.count(), ADMIN_IN_DISGUISE.len());
    assert_eq!(public.count(), 0);
    gw.stop().await;
}

#[tokio::test]
async fn malformed_percent_escape_is_400() {
    let (public, admin, gw) = public_and_admin().await;
    for target in ["/public/a%zz", "/public/a%2", "/public/a%00b", "/admin%zz"] {
        let (status, answer) = raw_get(gw.addr, target, "").await;
        assert_eq!(status, 400, "{target}: {answer}");
    }
    assert_eq!((public.count(), admin.count()), (0, 0));
    gw.stop().await;
}

// === streaming ===

#[tokio::test]
async fn fifty_megabyte_response_streams_through_completely() {
    const SIZE: usize = 50 * 1024 * 1024;
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&[&route("/", &up.url(), "")]).await;
    let mut res = get_auth(&client(), gw.url(&format!("/big/{SIZE}")), &alice()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.content_length(), Some(SIZE as u64));
    let (mut total, mut chunks) = (0usize, 0usize);
    while let Some(chunk) = res.chunk().await.expect("body streams without error") {
        assert!(chunk.iter().all(|&b| b == b'x'), "chunk {chunks} corrupted");
        total += chunk.len();
        chunks += 1;
        assert!(chunks <= SIZE, "bounded");
    }
    assert_eq!(total, SIZE);
    gw.stop().await;
}

#[tokio::test]
async fn twenty_megabyte_upload_arrives_whole() {
    const SIZE: usize = 20 * 1024 * 1024;
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&[&route("/", &up.url(), "")]).await;
    let body: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    let sum: u64 = body.iter().map(|&b| b as u64).sum();
    let res = client()
        .post(gw.url("/upload"))
        .header("authorization", alice())
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let got: serde_json::Value = res.json().await.unwrap();
    assert_eq!(got["bytes"], SIZE as u64);
    assert_eq!(got["sum"], sum);
    gw.stop().await;
}

// === upstream failures ===

/// A gateway with `/` on the given upstream and `/ok` on a healthy echo upstream.
async fn with_broken_upstream(broken: &str, extra: &str) -> (Upstream, TestGateway) {
    let ok = Upstream::echo().await;
    let gw =
        TestGateway::start_routes(&[route("/", broken, extra), route("/ok", &ok.url(), "")]).await;
    (ok, gw)
}

async fn assert_still_serving(gw: &TestGateway, ok: &Upstream) {
    let before = ok.count();
    let res = get_auth(&client(), gw.url("/ok/after"), &alice()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(ok.count(), before + 1);
}

/// Asserts a short fixed error body that leaks nothing about the upstream.
async fn assert_short_error(res: reqwest::Response, status: u16) {
    assert_eq!(res.status(), status);
    let body = res.text().await.unwrap();
    assert!(body.len() < 64, "{body:?}");
    assert!(
        !body.contains("127.0.0.1") && !body.to_lowercase().contains("refused"),
        "{body:?}"
    );
}

/// A request to the `broken` upstream gets `status` with a short body, and the gateway keeps serving.
async fn broken_upstream_gives_a_short_error(broken: &str, extra: &str, status: u16) {
    let (ok, gw) = with_broken_upstream(broken, extra).await;
    let res = get_auth(&client(), gw.url("/x"), &alice()).await;
    assert_short_error(res, status).await;
    assert_still_serving(&gw, &ok).await;
    gw.stop().await;
}

#[tokio::test]
async fn refused_upstream_is_502_with_a_short_body() {
    let refusing = Upstream::refusing().await;
    broken_upstream_gives_a_short_error(&refusing, "", 502).await;
}

#[tokio::test]
async fn hanging_upstream_is_504_after_the_route_timeout() {
    let hanging = Upstream::hanging().await;
    let (ok, gw) = with_broken_upstream(&hanging.url(), "timeout = \"500ms\"").await;
    let start = Instant::now();
    let res = get_auth(&client(), gw.url("/x"), &alice()).await;
    let took = start.elapsed();
    assert_short_error(res, 504).await;
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_still_serving(&gw, &ok).await;
    gw.stop().await;
}

#[tokio::test]
async fn garbage_from_upstream_is_502() {
    let garbage = Upstream::garbage().await;
    broken_upstream_gives_a_short_error(&garbage.url(), "timeout = \"2s\"", 502).await;
}

#[tokio::test]
async fn upstream_reset_mid_body_breaks_the_client_stream_and_gateway_keeps_serving() {
    let reset = Upstream::reset_mid_body().await;
    let (ok, gw) = with_broken_upstream(&reset.url(), "timeout = \"2s\"").await;
    let mut res = get_auth(&client(), gw.url("/x"), &alice()).await;
    assert_eq!(res.status(), 200, "the head arrived before the break");
    let mut total = 0usize;
    let mut broke = false;
    for _ in 0..10_000 {
        match res.chunk().await {
            Ok(Some(c)) => total += c.len(),
            Ok(None) => break,
            Err(_) => {
                broke = true;
                break;
            }
        }
    }
    assert!(
        broke || total < 1_048_576,
        "the client must see the stream break, got {total} bytes cleanly"
    );
    assert!(total <= 10 * 1024, "{total}");
    assert_still_serving(&gw, &ok).await;
    gw.stop().await;
}

// === protocol limits ===

#[tokio::test]
async fn http11_request_without_host_is_400() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&[&route("/", &up.url(), "public = true")]).await;
    let (status, head, _) =
        raw_exchange(gw.addr, b"GET /x HTTP/1.1\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status, 400, "{head}");
    assert_eq!(up.count(), 0);
    gw.stop().await;
}

#[tokio::test]
async fn two_host_headers_are_400() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&[&route("/", &up.url(), "public = true")]).await;
    let req = b"GET /x HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nConnection: close\r\n\r\n";
    let (status, head, _) = raw_exchange(gw.addr, req).await;
    assert_eq!(status, 400, "{head}");
    // Control: one Host header is fine.
    let (status, _, _) = raw_exchange(
        gw.addr,
        b"GET /x HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(up.count(), 1);
    gw.stop().await;
}

#[tokio::test]
async fn oversized_request_head_is_431_or_closed() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&[
        &route("/", &up.url(), "public = true"),
        "[server]\nmax_header_bytes = 8192\n",
    ])
    .await;
    let req = format!(
        "GET /x HTTP/1.1\r\nHost: gateway.test\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(12 * 1024)
    );
    let answer = support::raw_request(gw.addr, req.as_bytes(), Duration::from_secs(3)).await;
    let status = support::raw_status(&answer);
    assert!(
        status == 431 || status == 0,
        "expected 431 or a closed connection, got {answer:?}"
    );
    assert_eq!(up.count(), 0);
    // Control: a head under the limit passes.
    let req = format!(
        "GET /x HTTP/1.1\r\nHost: gateway.test\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(4096)
    );
    assert_eq!(raw_exchange(gw.addr, req.as_bytes()).await.0, 200);
    gw.stop().await;
}

/// A gateway with a 500 ms header read timeout (and a long idle timeout, so only the header timer can fire)
/// in front of a public route.
async fn header_timeout_gateway() -> (Upstream, TestGateway) {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&[
        &route("/", &up.url(), "public = true"),
        "[server]\nheader_read_timeout = \"500ms\"\nidle_timeout = \"30s\"\n",
    ])
    .await;
    (up, gw)
}

/// A keep-alive request answered 204 by the echo upstream.
const STATUS_204: &[u8] = b"GET /status/204 HTTP/1.1\r\nHost: gateway.test\r\n\r\n";

/// Sends `STATUS_204` on `s` and reads its answer's head, which must be the 204.
async fn served_204(s: &mut TcpStream) {
    s.write_all(STATUS_204).await.unwrap();
    let head = read_head(s, Duration::from_secs(5))
        .await
        .expect("first response");
    assert!(head.starts_with("HTTP/1.1 204"), "{head}");
}

/// Asserts the gateway closes `s` about when the 500 ms header read timeout says, without a 2xx.
async fn closed_after_header_timeout(s: &mut TcpStream, what: &str) {
    let mut got = Vec::new();
    let took = closed_within(s, Duration::from_secs(3), &mut got).await;
    let took = took.expect(what);
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_millis(2500),
        "{took:?}"
    );
    let answer = String::from_utf8_lossy(&got);
    assert!(!answer.starts_with("HTTP/1.1 2"), "{answer}");
}

#[tokio::test]
async fn stalled_request_head_is_closed_after_header_read_timeout() {
    let (up, gw) = header_timeout_gateway().await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"GET /x HTTP/1.1\r\nHost: gateway.test\r\nX-Slow: ")
        .await
        .unwrap();
    closed_after_header_timeout(&mut s, "the gateway closes a stalled request head").await;
    assert_eq!(up.count(), 0);
    gw.stop().await;
}

/// The next request on a kept-alive connection is bounded by `header_read_timeout` too, whether the client
/// stalls inside its head or sends none at all (the first request is also bounded by the connection's own
/// first-request timer, so only a later one shows hyper's header timer at work).
#[tokio::test]
async fn a_stalled_later_request_head_is_closed_after_header_read_timeout() {
    let (up, gw) = header_timeout_gateway().await;
    for next in [
        &b"GET /x HTTP/1.1\r\nHost: gateway.test\r\nX-Slow: "[..],
        b"",
    ] {
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        served_204(&mut s).await;
        s.write_all(next).await.unwrap();
        closed_after_header_timeout(
            &mut s,
            "the gateway closes a connection whose next head does not come",
        )
        .await;
    }
    assert_eq!(
        up.count(),
        2,
        "only the two first requests reached the upstream"
    );
    gw.stop().await;
}

/// A gateway with a 500 ms idle timeout (and a long header timeout, so only the idle timer can fire) in
/// front of a public route.
async fn idle_timeout_gateway() -> (Upstream, TestGateway) {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&[
        &route("/", &up.url(), "public = true"),
        "[server]\nidle_timeout = \"500ms\"\nheader_read_timeout = \"30s\"\n",
    ])
    .await;
    (up, gw)
}

/// Asserts the gateway closes `s` about when the 500 ms idle timeout says.
async fn closed_after_idle_timeout(s: &mut TcpStream, what: &str) {
    let took = closed_within(s, Duration::from_secs(3), &mut Vec::new()).await;
    let took = took.expect(what);
    assert!(
        took >= Duration::from_millis(350) && took < Duration::from_millis(2000),
        "{took:?}"
    );
}

#[tokio::test]
async fn idle_keep_alive_connection_is_closed_after_idle_timeout() {
    let (_up, gw) = idle_timeout_gateway().await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    served_204(&mut s).await;
    closed_after_idle_timeout(&mut s, "the idle connection is closed").await;
    gw.stop().await;
}

#[tokio::test]
async fn silent_connection_is_closed_after_idle_timeout() {
    // Before the first byte hyper-util's protocol detection has no header timer; the idle timeout covers it.
    let (_up, gw) = idle_timeout_gateway().await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    closed_after_idle_timeout(&mut s, "a connection that never speaks is closed").await;
    gw.stop().await;
}

#[tokio::test]
async fn connection_beyond_max_connections_waits_for_a_free_slot() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&[
        &route("/", &up.url(), "public = true"),
        "[server]\nmax_connections = 2\n",
    ])
    .await;
    // Two keep-alive connections, each served once and then left idle.
    let mut first = TcpStream::connect(gw.addr).await.unwrap();
    let mut second = TcpStream::connect(gw.addr).await.unwrap();
    for s in [&mut first, &mut second] {
        served_204(s).await;
    }
    // The third connects (kernel backlog) but is not served while both slots are held.
    let mut third = TcpStream::connect(gw.addr).await.unwrap();
    third.write_all(STATUS_204).await.unwrap();
    assert!(
        read_head(&mut third, Duration::from_millis(700))
            .await
            .is_none(),
        "a third connection was served beyond max_connections = 2"
    );
    assert_eq!(up.count(), 2);
    // Freeing one slot lets it in.
    drop(first);
    let head = read_head(&mut third, Duration::from_secs(5))
        .await
        .expect("served once a slot is free");
    assert!(head.starts_with("HTTP/1.1 204"), "{head}");
    assert_eq!(up.count(), 3);
    // The second connection is still usable.
    second.write_all(STATUS_204).await.unwrap();
    assert!(read_response(&mut second, Duration::from_secs(5))
        .await
        .is_some());
    gw.stop().await;
}

/// Sends `n` GETs of `path` at once, each from its own client (and so on its own connection), and checks
/// every one is answered 200.
async fn all_answered_at_once(gw: &TestGateway, n: usize, path: &str) {
    let all = (0..n).map(|i| {
        let c = client();
        let url = gw.url(&format!("{path}?n={i}"));
        async move { fetch_all(&c, url).await }
    });
    for status in futures_util::future::join_all(all).await {
        assert_eq!(status, 200);
    }
}

/// GETs `path` with alice's token, reads the whole answer and returns its status.
async fn fetch_all(c: &reqwest::Client, url: String) -> u16 {
    let res = get_auth(c, url, &alice()).await;
    let status = res.status().as_u16();
    res.bytes().await.expect("the whole body");
    status
}

#[tokio::test]
async fn upstream_connections_are_reused_up_to_max_idle_connections() {
    // Default: sequential requests (each on its own client connection) share kept-alive upstream connections.
    let up = Upstream::echo().await;
    let gw = TestGateway::start_routes(&[route("/", &up.url(), "")]).await;
    let c = client();
    for _ in 0..10 {
        assert_eq!(fetch_all(&c, gw.url("/a")).await, 200);
    }
    assert!(
        up.connections() <= 2,
        "{} upstream connections for 10 sequential requests",
        up.connections()
    );
    gw.stop().await;

    // 16 requests in flight need 16 upstream connections; with 4 kept idle, the next wave of 16 reuses those
    // 4 and opens 12 more.
    let up = Upstream::echo().await;
    let gw = TestGateway::start_routes(&[route("/", &up.url(), "max_idle_connections = 4")]).await;
    let wave = || async {
        all_answered_at_once(&gw, 16, "/slow/200").await;
        // Connections go back to the pool just after their answers: give that a moment.
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    wave().await;
    assert_eq!(up.connections(), 16);
    wave().await;
    assert_eq!(
        up.connections(),
        16 + 12,
        "the second wave reused the 4 idle connections"
    );
    gw.stop().await;

    // `0` keeps none: a connection per request.
    let up = Upstream::echo().await;
    let gw = TestGateway::start_routes(&[route("/", &up.url(), "max_idle_connections = 0")]).await;
    for _ in 0..5 {
        assert_eq!(fetch_all(&c, gw.url("/a")).await, 200);
    }
    assert_eq!(up.connections(), 5);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_target_gets_at_most_256_requests_at_once_by_default() {
    // 300 clients at once on a route with the default limit: the backend sees at most 256 of them at a time
    // (and so at most 256 connections); the rest wait for a slot and are answered, not refused. Each answer
    // takes 1.5 s so that all 300 are surely in flight together, hence a queue timeout longer than that.
    let up = Upstream::echo().await;
    let gw = TestGateway::start_routes(&[route("/", &up.url(), "queue_timeout = \"20s\"")]).await;
    all_answered_at_once(&gw, 300, "/slow/1500").await;
    assert_eq!(up.count(), 300);
    // Exactly 256: all 300 were in flight together, so a smaller limit would show too.
    assert_eq!(
        up.connections(),
        256,
        "upstream connections for 300 concurrent requests"
    );
    gw.stop().await;
}

#[tokio::test]
async fn an_upstream_closing_idle_connections_costs_no_request() {
    // A backend with a short keep-alive timeout closes connections the gateway keeps: the next request
    // must go out on a new connection, not fail on the closed one.
    let up = Upstream::closing_idle_after(Duration::from_secs(1)).await;
    let gw = TestGateway::start_routes(&[route("/", &up.url(), "")]).await;
    let c = client();
    for _ in 0..2 {
        assert_eq!(fetch_all(&c, gw.url("/a")).await, 200);
    }
    assert_eq!(
        up.connections(),
        1,
        "back-to-back requests share a connection"
    );
    for round in 2..=4 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(
            fetch_all(&c, gw.url("/a")).await,
            200,
            "after idle close {round}"
        );
        assert_eq!(up.connections(), round);
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_response_the_client_abandons_does_not_leave_its_connection_for_the_next() {
    // The client reads the start of a large answer and goes away: the rest of that body is still on the
    // upstream connection, so it must be closed, not handed to the next request.
    let up = Upstream::echo().await;
    let gw = TestGateway::start_routes(&[route("/", &up.url(), "")]).await;
    let c = client();
    let mut res = get_auth(&c, gw.url("/big/20000000"), &alice()).await;
    assert_eq!(res.status(), 200);
    let first = res
        .chunk()
        .await
        .expect("a first chunk")
        .expect("some body");
    assert!(!first.is_empty());
    drop(res);
    for _ in 0..3 {
        let res = get_auth(&c, gw.url("/after"), &alice()).await;
        assert_eq!(res.status(), 200);
        let body: serde_json::Value = res.json().await.expect("the echo's JSON");
        assert_eq!(body["path"], "/after");
    }
    assert_eq!(
        up.connections(),
        2,
        "the abandoned connection was closed and one new connection served the rest"
    );
    gw.stop().await;
}

#[tokio::test]
async fn health_checks_keep_their_connection() {
    // A health page read to its end leaves its connection open for the next check (and for traffic),
    // instead of one new connection per check.
    let up = Upstream::echo().await;
    let extra = "[routes.health]\npath = \"/health\"\ninterval = \"250ms\"\ntimeout = \"250ms\"\n";
    let gw = TestGateway::start_routes(&[route("/", &up.url(), extra)]).await;
    let checks = || up.seen().iter().filter(|s| s.path == "/health").count();
    let seen_six = support::wait::eventually(
        Duration::from_secs(15),
        Duration::from_millis(50),
        || async { checks() >= 6 },
    )
    .await;
    assert!(seen_six, "only {} health checks", checks());
    // A check that ran out of time on a loaded machine may cost one more; one per check would be six.
    assert!(
        up.connections() <= 3,
        "{} connections for {} health checks",
        up.connections(),
        checks()
    );
    assert_eq!(fetch_all(&client(), gw.url("/a")).await, 200);
    gw.stop().await;
}
