//! Cookie sessions and the login page at the HTTP level: the cookie's attributes, Bearer-or-cookie, the
//! CSRF matrix, the cookie never reaching the upstream, navigations sent to the login page, `return_to`
//! attacks, logout, WebSocket origins, transport rules and the `*` CORS refusal.

mod support;

use std::time::Duration;
use support::fixtures::{argon2_cached, captcha};
use support::turnstile::FakeTurnstile;
use support::upstream::Upstream;
use support::{client, route, tokens, user, TestGateway, UsersFile};

/// Password of the test user. TEST FIXTURE.
const PASSWORD: &str = "correct horse battery staple";
const COOKIE: &str = "__Host-gateway-session";
/// Cloudflare's always-pass test site key. TEST FIXTURE.
const SITE_KEY: &str = "1x00000000000000000000AA";
const ALLOWED: &str = "https://partner.example";

struct Env {
    fake: FakeTurnstile,
    _users: UsersFile,
    up: Upstream,
    gw: TestGateway,
}

/// A gateway with cookie mode and the login page, `/` protected and `/public` public; `extra` is merged last.
async fn env_with(extra: &str) -> Env {
    let users = UsersFile::new(&user("jdoe", argon2_cached(PASSWORD), true));
    let fake = FakeTurnstile::start().await;
    let up = Upstream::echo().await;
    let page = format!(
        "[auth.cookie]\nallowed_origins = [\"{ALLOWED}\"]\n[login.turnstile]\nsite_key = \"{SITE_KEY}\"\n\
         [login.page]\nturnstile_script_url = \"http://{}/api.js\"\n{}{}",
        fake.addr(),
        route("/", &up.url(), ""),
        route("/public", &up.url(), "public = true"),
    );
    let gw = TestGateway::start(&[&users.login_toml(&fake.url()), &page, extra]).await;
    Env {
        fake,
        _users: users,
        up,
        gw,
    }
}

async fn env() -> Env {
    env_with("").await
}

impl Env {
    fn origin(&self) -> String {
        format!("http://{}", self.gw.addr)
    }

    /// Posts the login page's form (with the gateway's own Origin) and returns the answer.
    async fn page_login(&self, user: &str, password: &str, return_to: &str) -> reqwest::Response {
        client()
            .post(self.gw.url("/login"))
            .header("origin", self.origin())
            .form(&[
                ("user_name", user),
                ("password", password),
                ("cf-turnstile-response", &captcha(&self.fake)),
                ("return_to", return_to),
            ])
            .send()
            .await
            .unwrap()
    }

    /// A session token from a successful page login.
    async fn session(&self) -> String {
        let res = self.page_login("jdoe", PASSWORD, "/").await;
        assert_eq!(res.status(), 303);
        cookie_value(&res).expect("the login set the session cookie")
    }
}

/// The session cookie's value in a response's `Set-Cookie`, if it sets it.
fn cookie_value(res: &reqwest::Response) -> Option<String> {
    set_cookie(res).and_then(|c| {
        c.split(';')
            .next()
            .and_then(|p| p.strip_prefix(&format!("{COOKIE}=")))
            .map(str::to_string)
    })
}

fn set_cookie(res: &reqwest::Response) -> Option<String> {
    let all: Vec<_> = res.headers().get_all("set-cookie").iter().collect();
    assert!(all.len() <= 1, "one Set-Cookie at most: {all:?}");
    all.first().map(|v| v.to_str().unwrap().to_string())
}

fn location(res: &reqwest::Response) -> String {
    res.headers()["location"].to_str().unwrap().to_string()
}

/// The attributes of a `Set-Cookie` value, lower-cased, without the name=value pair.
fn attributes(set_cookie: &str) -> Vec<String> {
    set_cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect()
}

fn assert_session_cookie(set_cookie: &str, ttl: u64) {
    let attrs = attributes(set_cookie);
    for a in ["httponly", "secure", "samesite=lax", "path=/"] {
        assert!(attrs.iter().any(|x| x == a), "{a} missing: {set_cookie}");
    }
    assert!(
        !attrs.iter().any(|a| a.starts_with("domain")),
        "{set_cookie}"
    );
    let max_age: u64 = attrs
        .iter()
        .find_map(|a| a.strip_prefix("max-age="))
        .expect("Max-Age")
        .parse()
        .unwrap();
    assert!(max_age <= ttl && max_age + 5 >= ttl, "{set_cookie}");
}

#[tokio::test]
async fn page_login_sets_a_host_cookie_for_the_tokens_life_and_returns_to_the_page() {
    let e = env().await;
    let res = e.page_login("jdoe", PASSWORD, "/orders?id=5").await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/orders?id=5");
    assert_eq!(res.headers()["cache-control"], "no-store");
    let sc = set_cookie(&res).unwrap();
    assert!(sc.starts_with("__Host-gateway-session="), "{sc}");
    assert_session_cookie(&sc, 1800);
    let token = cookie_value(&res).unwrap();
    let claims = support::http::unverified_claims(&token);
    assert_eq!(claims["sub"], "jdoe");
    assert!(
        claims["exp"].as_u64().unwrap() >= tokens::now() + 1795,
        "Max-Age and exp agree"
    );
}

#[tokio::test]
async fn api_login_sets_the_cookie_only_when_asked_and_keeps_the_seeds_body() {
    let e = env().await;
    let body = |c: &str| support::http::login_body("jdoe", PASSWORD, c);
    let res = client()
        .post(e.gw.url("/api/Auth"))
        .header("gateway-session", "cookie")
        .json(&body(&captcha(&e.fake)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let sc = set_cookie(&res).expect("Set-Cookie");
    assert_session_cookie(&sc, 1800);
    let from_cookie = cookie_value(&res).unwrap();
    let json: serde_json::Value = res.json().await.unwrap();
    assert_eq!(json.as_object().unwrap().len(), 1, "{json}");
    assert_eq!(json["token"], from_cookie.as_str());

    let res = support::http::post_login(&e.gw, &body(&captcha(&e.fake))).await;
    assert_eq!(res.status(), 200);
    assert!(set_cookie(&res).is_none(), "no cookie without the header");
}

#[tokio::test]
async fn the_cookie_opens_protected_routes_and_never_reaches_the_upstream() {
    let e = env().await;
    let token = e.session().await;
    let res = client()
        .get(e.gw.url("/orders"))
        .header(
            "cookie",
            format!("a=1;  {COOKIE}={token} ;b={COOKIE}=not-ours"),
        )
        .header("cookie", "c=3")
        .header("cookie", format!("{COOKIE}={token}"))
        .send()
        .await
        .unwrap();
    // Two copies of the cookie are refused, whatever their values.
    assert_eq!(res.status(), 401);
    let before = e.up.count();
    let res = client()
        .get(e.gw.url("/orders"))
        .header(
            "cookie",
            format!("a=1;  {COOKIE}={token} ;b={COOKIE}=not-ours"),
        )
        .header("cookie", "c=3")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(e.up.count(), before + 1);
    let seen = e.up.last();
    assert_eq!(seen.all("x-auth-user"), ["jdoe"]);
    assert_eq!(
        seen.all("cookie"),
        ["a=1; b=__Host-gateway-session=not-ours", "c=3"]
    );
    assert!(seen.one("authorization").is_none());

    // Public routes do not read it, and do not forward it either.
    let res = client()
        .get(e.gw.url("/public/x"))
        .header("cookie", format!("{COOKIE}={token}; keep=me"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(e.up.last().all("cookie"), ["keep=me"]);
}

#[tokio::test]
async fn bearer_wins_over_the_cookie() {
    let e = env().await;
    let cookie = format!("{COOKIE}={}", tokens::valid("alice"));
    let res = client()
        .get(e.gw.url("/x"))
        .header("cookie", &cookie)
        .bearer_auth(tokens::valid("bob"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(e.up.last().all("x-auth-user"), ["bob"]);
    // A bad Bearer is not rescued by a good cookie.
    let res = client()
        .get(e.gw.url("/x"))
        .header("cookie", &cookie)
        .bearer_auth(tokens::expired("bob"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

/// What the CSRF rule expects for one combination.
fn csrf_allows(
    method: &str,
    origin: Option<&str>,
    site: Option<&str>,
    by_cookie: bool,
    own: &str,
) -> bool {
    if !by_cookie || matches!(method, "GET" | "HEAD" | "OPTIONS") {
        return true;
    }
    origin.is_some_and(|o| o == own || o == ALLOWED) || site == Some("same-origin")
}

#[tokio::test]
async fn csrf_matrix_method_origin_fetch_site_and_credential() {
    let e = env().await;
    let own = e.origin();
    let token = tokens::valid("alice");
    let c = client();
    let methods = ["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"];
    let origins = [
        None,
        Some(own.as_str()),
        Some(ALLOWED),
        Some("https://evil.example"),
        Some("null"),
        Some("http://127.0.0.1"),
    ];
    let sites = [
        None,
        Some("same-origin"),
        Some("same-site"),
        Some("cross-site"),
        Some("none"),
    ];
    let mut checked = 0;
    for method in methods {
        for origin in origins {
            for site in sites {
                for by_cookie in [false, true] {
                    let mut req = c.request(method.parse().unwrap(), e.gw.url("/api/things"));
                    req = if by_cookie {
                        req.header("cookie", format!("{COOKIE}={token}"))
                    } else {
                        req.bearer_auth(&token)
                    };
                    if let Some(o) = origin {
                        req = req.header("origin", o);
                    }
                    if let Some(s) = site {
                        req = req.header("sec-fetch-site", s);
                    }
                    let before = e.up.count();
                    let status = req.send().await.unwrap().status().as_u16();
                    let allowed = csrf_allows(method, origin, site, by_cookie, &own);
                    let case =
                        format!("{method} origin={origin:?} site={site:?} cookie={by_cookie}");
                    if allowed {
                        assert_eq!(status, 200, "{case}");
                        assert_eq!(e.up.count(), before + 1, "{case}");
                    } else {
                        assert_eq!(status, 403, "{case}");
                        assert_eq!(e.up.count(), before, "refused before the upstream: {case}");
                    }
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 7 * 6 * 5 * 2);
}

#[tokio::test]
async fn navigations_without_a_session_go_to_the_login_page_and_other_requests_get_the_bare_401() {
    let e = env().await;
    let html = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let nav = |path: &str, cookie: Option<String>| {
        let mut req = client().get(e.gw.url(path)).header("accept", html);
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        req.send()
    };
    let res = nav("/orders/7?tab=a%20b&x=1", None).await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(
        location(&res),
        "/login?return_to=%2Forders%2F7%3Ftab%3Da%2520b%26x%3D1"
    );
    let expired = Some(format!("{COOKIE}={}", tokens::expired("jdoe")));
    let res = nav("/orders", expired).await.unwrap();
    assert_eq!(
        (res.status().as_u16(), location(&res)),
        (303, "/login?return_to=%2Forders".to_string())
    );
    // Unknown paths too: authentication comes before "not found".
    assert_eq!(nav("/", None).await.unwrap().status(), 303);

    for (accept, method) in [
        ("application/json", "GET"),
        ("*/*", "GET"),
        (html, "POST"),
        (html, "PUT"),
    ] {
        let res = client()
            .request(method.parse().unwrap(), e.gw.url("/orders"))
            .header("accept", accept)
            .header("origin", e.origin())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{method} {accept}");
        assert!(res.headers().contains_key("www-authenticate"));
        assert!(!res.headers().contains_key("location"));
    }
    // An API client with a bad token is told so, not redirected.
    let res = client()
        .get(e.gw.url("/orders"))
        .header("accept", html)
        .bearer_auth(tokens::expired("jdoe"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    // Back to the page after login, with the cookie the protected page then accepts.
    let res = e.page_login("jdoe", PASSWORD, "/orders?id=5").await;
    assert_eq!(location(&res), "/orders?id=5");
    let cookie = format!("{COOKIE}={}", cookie_value(&res).unwrap());
    let res = nav("/orders?id=5", Some(cookie)).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(e.up.last().query.as_deref(), Some("id=5"));
}

#[tokio::test]
async fn return_to_open_redirects_are_refused() {
    let e = env().await;
    let attacks = [
        "//evil",
        "https://evil",
        "/\\evil",
        "%2F%2Fevil",
        "/%5Cevil",
        "/%2F%2Fevil",
        "/%252F%252Fevil",
        "\\\\evil",
        "/\tevil",
        "//evil/%2e%2e",
        "javascript:alert(1)",
        "http:/evil",
    ];
    for attack in attacks {
        let res = e.page_login("jdoe", PASSWORD, attack).await;
        assert_eq!(res.status(), 303, "{attack:?}");
        assert_eq!(location(&res), "/", "{attack:?}");
        // The page shows it as "/" too.
        let page = client()
            .get(e.gw.url("/login"))
            .query(&[("return_to", attack)])
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            page.contains("name=\"return_to\" value=\"/\""),
            "{attack:?}: {page}"
        );
    }
}

#[tokio::test]
async fn the_login_page_is_strict_html_with_embedded_assets() {
    let e = env_with("[login.page]\ntitle = \"Acme <Portal>\"\n").await;
    let res = client()
        .get(e.gw.url("/login?return_to=%2Fa"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert_eq!(h["x-frame-options"], "DENY");
    let csp = h["content-security-policy"].to_str().unwrap();
    let ts = format!("http://{}", e.fake.addr());
    assert!(csp.contains(&format!("script-src 'self' {ts};")), "{csp}");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let html = res.text().await.unwrap();
    assert!(html.contains("Acme &lt;Portal&gt;"), "{html}");
    assert!(html.contains(&format!("data-sitekey=\"{SITE_KEY}\"")));
    assert!(html.contains("name=\"return_to\" value=\"/a\""));
    assert!(html.contains(&format!(
        "<script src=\"{ts}/api.js?render=explicit&amp;onload=gatewayLoginTurnstile\""
    )));
    assert_eq!(
        html.matches("<script").count(),
        html.matches("<script src=").count()
    );
    for (path, ty) in [
        ("/login/assets/login.js", "text/javascript"),
        ("/login/assets/login.css", "text/css"),
    ] {
        let res = client().get(e.gw.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert!(res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with(ty));
        assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    }
    assert_eq!(
        client()
            .get(e.gw.url("/login/assets/logo"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let res = client().delete(e.gw.url("/login")).send().await.unwrap();
    assert_eq!(res.status(), 405);
}

#[tokio::test]
async fn every_page_login_failure_shows_the_same_page() {
    let e = env().await;
    let mut answers = Vec::new();
    for (user, password, good_captcha) in [
        ("jdoe", "wrong", true),
        ("nobody", PASSWORD, true),
        ("jdoe", PASSWORD, false),
        ("", "", true),
    ] {
        let token = if good_captcha {
            captcha(&e.fake)
        } else {
            "junk".to_string()
        };
        let res = client()
            .post(e.gw.url("/login"))
            .header("origin", e.origin())
            .form(&[
                ("user_name", user),
                ("password", password),
                ("cf-turnstile-response", token.as_str()),
                ("return_to", "/x"),
            ])
            .send()
            .await
            .unwrap();
        assert!(set_cookie(&res).is_none());
        let status = res.status().as_u16();
        let body = res.text().await.unwrap();
        assert!(body.contains("Could not sign you in."), "{body}");
        assert!(body.contains("value=\"/x\""));
        answers.push((status, body));
    }
    assert!(answers.iter().all(|a| *a == answers[0]), "failures differ");
    assert_eq!(answers[0].0, 401);
    // A login from another site is refused before any credential is looked at.
    let calls = e.fake.calls();
    let res = client()
        .post(e.gw.url("/login"))
        .header("origin", "https://evil.example")
        .form(&[
            ("user_name", "jdoe"),
            ("password", PASSWORD),
            ("cf-turnstile-response", &captcha(&e.fake)),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(e.fake.calls(), calls);
}

#[tokio::test]
async fn logout_clears_the_cookie_and_is_csrf_checked() {
    let e = env().await;
    let token = e.session().await;
    let cookie = format!("{COOKIE}={token}");
    let res = client()
        .post(e.gw.url("/login/logout"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "no Origin, no Sec-Fetch-Site");
    let res = client()
        .post(e.gw.url("/login/logout"))
        .header("cookie", &cookie)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/login");
    let sc = set_cookie(&res).unwrap();
    assert!(sc.starts_with(&format!("{COOKIE}=;")), "{sc}");
    assert!(attributes(&sc).contains(&"max-age=0".to_string()), "{sc}");
    // The session itself ended, not only this browser's copy: a saved copy of the cookie is dead.
    let saved = client()
        .get(e.gw.url("/orders"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(saved.status(), 401, "a saved copy of the logged-out cookie");
    assert_eq!(
        client()
            .get(e.gw.url("/login/logout"))
            .send()
            .await
            .unwrap()
            .status(),
        405
    );
}

#[tokio::test]
async fn api_logout_with_the_cookie_is_csrf_checked_revokes_and_clears_it() {
    let e = env().await;
    let token = e.session().await;
    let cookie = format!("{COOKIE}={token}");
    let logout = |fetch_site: Option<&'static str>| {
        let mut req = client()
            .post(e.gw.url("/api/Auth/logout"))
            .header("cookie", &cookie);
        if let Some(site) = fetch_site {
            req = req.header("sec-fetch-site", site);
        }
        req.send()
    };
    assert_eq!(logout(Some("cross-site")).await.unwrap().status(), 403);
    let ok = |c: &str| {
        client()
            .get(e.gw.url("/orders"))
            .header("cookie", c.to_string())
            .send()
    };
    assert_eq!(
        ok(&cookie).await.unwrap().status(),
        200,
        "a refused logout changed nothing"
    );
    let res = logout(Some("same-origin")).await.unwrap();
    assert_eq!(res.status(), 204);
    let sc = set_cookie(&res).unwrap();
    assert!(sc.starts_with(&format!("{COOKIE}=;")), "{sc}");
    assert_eq!(
        ok(&cookie).await.unwrap().status(),
        401,
        "the token behind the cookie is revoked"
    );
    assert_eq!(
        logout(Some("same-origin")).await.unwrap().status(),
        401,
        "nothing left to log out"
    );
}

#[tokio::test]
async fn cookie_websocket_upgrades_need_the_gateways_own_origin() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let e = env().await;
    let cookie = format!("{COOKIE}={}", tokens::valid("alice"));
    let attempt = |origin: Option<String>| {
        let mut req = format!("ws://{}/ws", e.gw.addr)
            .into_client_request()
            .unwrap();
        req.headers_mut().insert("cookie", cookie.parse().unwrap());
        if let Some(o) = origin {
            req.headers_mut().insert("origin", o.parse().unwrap());
        }
        tokio::time::timeout(
            Duration::from_secs(5),
            tokio_tungstenite::connect_async(req),
        )
    };
    let refused = |r: Result<_, tokio_tungstenite::tungstenite::Error>| match r {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => res.status().as_u16(),
        Ok(_) => 101,
        Err(other) => panic!("{other}"),
    };
    let before = e.up.count();
    assert_eq!(
        refused(attempt(Some("https://evil.example".into())).await.unwrap()),
        403
    );
    assert_eq!(refused(attempt(None).await.unwrap()), 403);
    assert_eq!(
        e.up.count(),
        before,
        "refused handshakes never reach the upstream"
    );
    let (_ws, res) = attempt(Some(e.origin()))
        .await
        .unwrap()
        .expect("same-origin handshake");
    assert_eq!(res.status(), 101);
    let seen = e.up.last();
    assert_eq!(seen.all("x-auth-user"), ["alice"]);
    assert!(seen.one("cookie").is_none());
}

#[tokio::test]
async fn behind_a_trusted_proxy_only_https_carries_the_cookie() {
    let e = env_with("[server]\ntrusted_proxies = [\"127.0.0.1\"]\n").await;
    let cookie = format!("{COOKIE}={}", tokens::valid("alice"));
    let get = |proto: &'static str| {
        client()
            .delete(e.gw.url("/x"))
            .header("cookie", &cookie)
            .header("x-forwarded-proto", proto)
            .header("x-forwarded-host", "portal.example")
            .header("origin", "https://portal.example")
            .send()
    };
    // The public origin comes from the proxy's headers.
    assert_eq!(get("https").await.unwrap().status(), 200);
    // The client reached the proxy over plain HTTP: the cookie is not accepted.
    assert_eq!(get("http").await.unwrap().status(), 401);
    let res = client()
        .post(e.gw.url("/login"))
        .header("x-forwarded-proto", "http")
        .header("origin", e.origin())
        .form(&[
            ("user_name", "jdoe"),
            ("password", PASSWORD),
            ("cf-turnstile-response", &captcha(&e.fake)),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(set_cookie(&res).is_none());
}

#[test]
fn cookie_mode_with_any_cors_origin_is_refused() {
    let e = support::config(&["[auth.cookie]\n[cors]\nallowed_origins = [\"*\"]\n"])
        .err()
        .expect("refused")
        .to_string();
    assert!(e.starts_with("auth.cookie:") && e.contains('*'), "{e}");
    let e = support::config(&["[auth.cookie]\n[server]\nlisten = \"0.0.0.0:0\"\n"])
        .err()
        .expect("refused")
        .to_string();
    assert!(e.starts_with("auth.cookie:") && e.contains("HTTPS"), "{e}");
}
