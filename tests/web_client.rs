//! What the browser client stands on, over real HTTP: the gateway's 401 marker (`Gateway-Auth: required`,
//! exposed through CORS, stripped from upstream responses), the built-in echo upstream, the embedded files
//! under `/.gateway/` and the example app, Cloudflare's test keys answered offline, and the client's own
//! unit tests under node.

mod support;

use support::upstream::Upstream;
use support::{client, route, tokens, TestGateway, UsersFile};

const ORIGIN: &str = "http://app.example";

fn cors(extra: &str) -> String {
    format!("[cors]\nallowed_origins = [\"{ORIGIN}\"]\n{extra}")
}

#[tokio::test]
async fn gateway_401s_carry_the_marker_and_cors_exposes_it() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&[
        &cors("expose_headers = [\"X-Total-Count\", \"gateway-auth\"]\n"),
        &route("/", &up.url(), ""),
    ])
    .await;
    for token in [None, Some(tokens::expired("alice")), Some("garbage".into())] {
        let mut req = client().get(gw.url("/items")).header("origin", ORIGIN);
        if let Some(t) = &token {
            req = req.header("authorization", tokens::bearer(t));
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 401, "{token:?}");
        assert_eq!(res.headers()["gateway-auth"], "required", "{token:?}");
        assert_eq!(
            res.headers()["access-control-expose-headers"],
            "Gateway-Auth, x-total-count",
            "the marker first, once, then the configured ones"
        );
    }
    assert_eq!(up.count(), 0);
    // A success carries the exposure too (the browser decides per response what a script may read).
    let res = client()
        .get(gw.url("/items"))
        .header("origin", ORIGIN)
        .header("authorization", tokens::bearer(&tokens::valid("alice")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("gateway-auth").is_none());
    assert_eq!(
        res.headers()["access-control-expose-headers"],
        "Gateway-Auth, x-total-count"
    );
    // Without configured expose_headers, the marker alone.
    let plain = TestGateway::start(&[&cors(""), &route("/", &up.url(), "")]).await;
    let res = client()
        .get(plain.url("/items"))
        .header("origin", ORIGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["access-control-expose-headers"],
        "Gateway-Auth"
    );
    // A malformed request (two Authorization headers) is a 400 and not a request to log in again.
    let res = client()
        .get(plain.url("/items"))
        .header("authorization", "Bearer a")
        .header("authorization", "Bearer b")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.headers().get("gateway-auth").is_none());
}

#[tokio::test]
async fn login_failures_carry_the_marker_too() {
    let fake = support::turnstile::FakeTurnstile::start().await;
    let users = UsersFile::new(&support::user(
        "demo",
        support::fixtures::argon2_cached("demo-password"),
        true,
    ));
    let gw = TestGateway::start(&[&users.login_toml(&fake.url())]).await;
    let body = support::http::login_body("demo", "wrong", &support::fixtures::captcha(&fake));
    let res = support::http::post_login(&gw, &body).await;
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["gateway-auth"], "required");
}

#[tokio::test]
async fn a_marker_sent_by_the_upstream_never_reaches_the_client() {
    let up = Upstream::echo().await;
    let gw = TestGateway::start(&[&cors(""), &route("/", &up.url(), "")]).await;
    let bearer = tokens::bearer(&tokens::valid("alice"));
    for code in [401, 200] {
        let res = client()
            .get(gw.url(&format!("/gateway-auth/{code}")))
            .header("origin", ORIGIN)
            .header("authorization", &bearer)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), code);
        assert!(
            res.headers().get("gateway-auth").is_none(),
            "{code}: {:?}",
            res.headers()
        );
        // The upstream's own challenge is passed through: only the gateway's marker is removed.
        assert_eq!(
            res.headers()["www-authenticate"],
            "Bearer error=\"invalid_token\""
        );
        assert_eq!(res.text().await.unwrap(), "{\"from\":\"upstream\"}");
    }
}

fn echo_routes() -> String {
    [
        route("/api", "echo:", "name = \"api\""),
        route("/open", "echo:", "name = \"open\"\npublic = true"),
    ]
    .concat()
}

#[tokio::test]
async fn echo_upstream_shows_what_an_upstream_receives_as_json() {
    let gw = TestGateway::start(&[
        &echo_routes(),
        "[identity.claims]\nrole = \"X-Auth-Role\"\n",
    ])
    .await;
    let token = tokens::valid_with("alice", &serde_json::json!({"role": "admin"}));
    let res = client()
        .post(gw.url("/api/things/../items?q=%3Cscript%3E&n=1"))
        .header("authorization", tokens::bearer(&token))
        .header("x-auth-user", "mallory")
        .header("X_Auth_Role", "root")
        .header("x-original-url", "/admin")
        .header("accept", "text/html")
        .header("x-custom", "kept")
        .body("ignored")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"],
        "application/json; charset=utf-8",
        "JSON even when the client asks for HTML"
    );
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    let doc: serde_json::Value = res.json().await.unwrap();
    assert_eq!(doc["method"], "POST");
    assert_eq!(doc["path"], "/api/items", "the normalised path");
    assert_eq!(doc["query"], "q=%3Cscript%3E&n=1");
    assert_eq!(
        doc["identity"],
        serde_json::json!({
            "x-auth-user": ["alice"],
            "x-auth-name": ["alice"],
            "x-auth-role": ["admin"],
        }),
        "only what the gateway set"
    );
    let headers = doc["headers"].as_object().unwrap();
    for gone in ["x-auth-user", "x_auth_role", "x-original-url"] {
        assert!(!headers.contains_key(gone), "{gone} was stripped: {doc}");
    }
    assert_eq!(headers["x-custom"][0], "kept");
    assert_eq!(headers["via"][0], "1.1 gateway");
    assert_eq!(headers["x-forwarded-for"][0], "127.0.0.1");
    // The token is forwarded to protected routes, but the echo shows only its length.
    let auth = headers["authorization"][0].as_str().unwrap();
    assert!(
        auth.starts_with("Bearer <") && !auth.contains(&token),
        "{auth}"
    );

    // A public echo route answers without a token and shows no identity.
    let res = client()
        .get(gw.url("/open/x"))
        .header("x-auth-user", "mallory")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let doc: serde_json::Value = res.json().await.unwrap();
    assert_eq!(doc["identity"], serde_json::json!({}));
    // A protected echo route still needs the token, like any upstream.
    let res = client().get(gw.url("/api/x")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["gateway-auth"], "required");
}

async fn get(gw: &TestGateway, path: &str) -> reqwest::Response {
    client().get(gw.url(path)).send().await.unwrap()
}

#[tokio::test]
async fn the_client_is_served_under_the_reserved_prefix_with_its_type_and_validators() {
    let up = Upstream::echo().await;
    // A public catch-all route: /.gateway/ is answered by the gateway all the same.
    let gw = TestGateway::start(&[&route("/", &up.url(), "public = true")]).await;
    let res = get(&gw, "/.gateway/client.js").await;
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    assert_eq!(h["content-type"], "text/javascript; charset=utf-8");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["cache-control"], "no-cache");
    let etag = h["etag"].to_str().unwrap().to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    let body = res.text().await.unwrap();
    let on_disk =
        std::fs::read_to_string(support::process::repo().join("web/gateway-client.js")).unwrap();
    assert_eq!(body, on_disk, "the embedded client is the file in web/");
    let res = client()
        .get(gw.url("/.gateway/client.js"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 304);
    assert_eq!(res.headers()["etag"], etag.as_str());
    assert!(res.bytes().await.unwrap().is_empty());

    let res = get(&gw, "/.gateway/client.d.ts").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert!(res.text().await.unwrap().contains("createGatewayClient"));

    let res = client()
        .post(gw.url("/.gateway/client.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["allow"], "GET, HEAD");
    assert_eq!(get(&gw, "/.gateway/nothing.js").await.status(), 404);
    assert_eq!(get(&gw, "/.GATEWAY/../.gateway/x").await.status(), 404);
    assert_eq!(
        up.count(),
        0,
        "nothing below /.gateway/ reaches the upstream"
    );
}

#[tokio::test]
async fn config_json_tells_pages_the_login_path_and_turnstile_settings_but_no_secret() {
    let users = UsersFile::new("");
    let gw = TestGateway::start(&[
        &users.login_toml("http://127.0.0.1:9/siteverify"),
        "[login.turnstile]\nsite_key = \"0x4AAAAAAAexample\"\nscript_url = \"http://127.0.0.1:4321/turnstile/v0/api.js\"\n",
    ])
    .await;
    let res = get(&gw, "/.gateway/config.json").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    let text = res.text().await.unwrap();
    assert!(!text.contains(support::turnstile::PASS_SECRET), "{text}");
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        doc,
        serde_json::json!({
            "loginPath": "/api/Auth",
            "turnstile": {
                "siteKey": "0x4AAAAAAAexample",
                "scriptUrl": "http://127.0.0.1:4321/turnstile/v0/api.js",
            },
        })
    );
    let refused = |toml: &str| match support::config(&[toml]) {
        Ok(_) => panic!("accepted: {toml}"),
        Err(e) => e.to_string(),
    };
    let bad = refused("[login.turnstile]\nsite_key = \"https://x\"\n");
    assert!(bad.starts_with("login.turnstile.site_key:"), "{bad}");
    let bad = refused("[login.turnstile]\nscript_url = \"javascript:alert(1)\"\n");
    assert!(bad.starts_with("login.turnstile.script_url:"), "{bad}");
}

#[tokio::test]
async fn the_example_app_is_served_with_a_policy_that_allows_only_the_turnstile_origin() {
    let gw = TestGateway::start(&[
        &[
            route("/", "example-spa:", "public = true"),
            route("/api", "echo:", ""),
        ]
        .concat(),
        "[login.turnstile]\nscript_url = \"http://127.0.0.1:4321/turnstile/v0/api.js\"\n",
    ])
    .await;
    let res = get(&gw, "/").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self' http://127.0.0.1:4321;")
            && csp.contains("frame-src http://127.0.0.1:4321;")
            && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let html = res.text().await.unwrap();
    assert!(html.contains("src=\"app.js\""));
    assert!(
        !html.contains("<script>") && !html.contains(" style="),
        "no inline script or style"
    );
    let res = get(&gw, "/index.html").await;
    assert_eq!(res.status(), 200);
    let res = get(&gw, "/app.js").await;
    assert_eq!(
        res.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert!(res.text().await.unwrap().contains("/.gateway/client.js"));
    let res = get(&gw, "/style.css").await;
    assert_eq!(res.headers()["content-type"], "text/css; charset=utf-8");
    assert_eq!(get(&gw, "/missing.html").await.status(), 404);
    let res = client().delete(gw.url("/")).send().await.unwrap();
    assert_eq!(res.status(), 405);
}

#[tokio::test]
async fn cloudflares_test_keys_log_in_offline_and_the_dummy_token_is_not_spent() {
    let users = UsersFile::new(&support::user(
        "demo",
        support::fixtures::argon2_cached("demo-password"),
        true,
    ));
    // Cloudflare's siteverify URL (the default) with its always-pass test secret: answered locally.
    let login = format!(
        "[login]\nenabled = true\n[login.turnstile]\nsecret = \"{}\"\n[users]\nfile = {:?}\n",
        support::turnstile::PASS_SECRET,
        users.path.display().to_string()
    );
    let gw = TestGateway::start(&[&login]).await;
    for _ in 0..3 {
        let status = support::http::login_status(
            &gw,
            "demo",
            "demo-password",
            support::turnstile::DUMMY_TOKEN,
        )
        .await;
        assert_eq!(status, 200, "the test keys' one token passes every time");
    }
    let status = support::http::login_status(&gw, "demo", "demo-password", "0.real-token").await;
    assert_eq!(status, 401, "a test secret refuses real tokens");

    // The always-fail test secret fails, offline too.
    let failing = login.replace(
        support::turnstile::PASS_SECRET,
        support::turnstile::FAIL_SECRET,
    );
    let gw = TestGateway::start(&[&failing]).await;
    let status = support::http::login_status(
        &gw,
        "demo",
        "demo-password",
        support::turnstile::DUMMY_TOKEN,
    )
    .await;
    assert_eq!(status, 401);
}

#[test]
fn client_unit_tests_pass_under_node() {
    let test_file = support::process::repo().join("web/gateway-client.test.mjs");
    let out = std::process::Command::new("node")
        .arg("--test")
        .arg(&test_file)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "node is needed for the browser client's unit tests (apt-get install nodejs): {e}"
            )
        });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "node --test failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("# fail 0") && !stdout.contains("# pass 0"),
        "{stdout}"
    );
}

#[test]
fn the_image_build_copies_every_directory_the_binary_embeds() {
    let src = std::fs::read_to_string(support::process::repo().join("src/assets.rs")).unwrap();
    let dockerfile = std::fs::read_to_string(support::process::repo().join("Dockerfile")).unwrap();
    let embedded: std::collections::BTreeSet<&str> = src
        .split("include_bytes!(\"../")
        .skip(1)
        .filter_map(|rest| rest.split('/').next())
        .collect();
    assert!(
        embedded.contains("web") && embedded.contains("examples"),
        "{embedded:?}"
    );
    for dir in embedded {
        assert!(
            dockerfile.contains(&format!("COPY {dir} ./{dir}")),
            "the Dockerfile's build stage must copy {dir}/"
        );
    }
}
