//! Cookie sessions in a real browser (headless Chromium; Turnstile replaced by the local stand-in script):
//! a navigation without a session goes to the login page and, after signing in, back to where it was going;
//! the upstream gets the identity and never the gateway's cookie; another origin's form POST and WebSocket
//! with the cookie are refused; logout sends the next navigation to the login page and kills a saved copy of
//! the cookie; an expired session signs in again and comes back to the page it was going to; a `return_to`
//! pointing elsewhere leaves the browser on the gateway.

mod support;

use std::time::{Duration, Instant};
use support::browser::{Browser, TurnstileStandIn};
use support::fixtures::argon2_cached;
use support::turnstile::FakeTurnstile;
use support::upstream::Upstream;
use support::{route, user, TestGateway, UsersFile};

/// Password of the test user. TEST FIXTURE.
const PASSWORD: &str = "correct horse battery staple";
const COOKIE: &str = "__Host-gateway-session";
/// The single-use captcha token the stand-in hands out and the fake siteverify accepts once. TEST FIXTURE.
const CAPTCHA: &str = "0.browser-cookie-captcha";

/// Fills in and submits the login page the browser is on, once the stand-in widget has solved itself.
async fn sign_in(browser: &Browser) {
    browser.find("#gateway-login").await;
    browser
        .until(
            "the stand-in widget solved",
            "return document.querySelector(\"input[name='cf-turnstile-response']\").value",
        )
        .await;
    browser
        .eval(&format!(
            "document.getElementById('user_name').value = 'jdoe';\n\
             document.getElementById('password').value = {PASSWORD:?};\n\
             document.querySelector('#gateway-login button').click(); return true;"
        ))
        .await;
}

#[tokio::test]
async fn page_login_navigation_cross_site_refusals_and_logout() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let users = UsersFile::new(&user("jdoe", argon2_cached(PASSWORD), true));
    let fake = FakeTurnstile::start().await;
    fake.add_valid_token(CAPTCHA);
    let stand_in = TurnstileStandIn::with_token(CAPTCHA).await;
    let up = Upstream::echo().await;
    let page = format!(
        "[auth.cookie]\n[login.turnstile]\nsite_key = \"1x00000000000000000000AA\"\n\
         [login.page]\nturnstile_script_url = \"{}\"\n{}",
        stand_in.script_url(),
        route("/", &up.url(), ""),
    );
    let gw = TestGateway::start(&[&users.login_toml(&fake.url()), &page]).await;
    let url = |p: &str| gw.url(p);

    // 1. No session: the navigation lands on the login page, which remembers where it was going.
    browser.open(&url("/orders?id=5")).await;
    browser.find("#gateway-login").await;
    let here = browser.page.current_url().await.unwrap();
    assert_eq!(here.path(), "/login");
    sign_in(&browser).await;

    // 2. Signed in and back on the page it asked for; the upstream saw who, not the cookie.
    let shown = browser.text("pre").await;
    assert!(shown.contains("\"/orders\""), "{shown}");
    let here = browser.page.current_url().await.unwrap();
    assert_eq!((here.path(), here.query()), ("/orders", Some("id=5")));
    let seen = up.last();
    assert_eq!(seen.all("x-auth-user"), ["jdoe"]);
    assert!(
        !seen.all("cookie").iter().any(|c| c.contains(COOKIE)),
        "{:?}",
        seen.all("cookie")
    );
    // The cookie is invisible to the page's scripts.
    let visible = browser.eval("return document.cookie").await;
    assert!(
        !visible.as_str().unwrap_or("").contains(COOKIE),
        "{visible}"
    );

    // 3. Same origin, the WebSocket opens with the cookie.
    let ws = format!("ws://{}/ws", gw.addr);
    let open = |from: &str| {
        format!(
            "return await new Promise(r => {{ const ws = new WebSocket({from:?});\n\
             ws.onopen = () => {{ ws.close(); r('open'); }}; ws.onerror = () => r('refused'); }});"
        )
    };
    assert_eq!(browser.eval_async(&open(&ws)).await, "open");

    // 4. Another origin (same site: the cookie goes along): its form POST and its WebSocket are refused.
    browser.open(&stand_in.page_url()).await;
    let before = up.seen().len();
    browser
        .eval_async(&format!(
            "const frame = document.createElement('iframe'); frame.name = 'target';\n\
             document.body.appendChild(frame);\n\
             const form = document.createElement('form'); form.method = 'POST'; form.target = 'target';\n\
             form.action = {:?};\n\
             const field = document.createElement('input'); field.name = 'amount'; field.value = '1000';\n\
             form.appendChild(field); document.body.appendChild(form);\n\
             await new Promise(r => {{ frame.onload = r; form.submit(); }}); return true;",
            url("/transfer")
        ))
        .await;
    assert_eq!(browser.eval_async(&open(&ws)).await, "refused");
    let after: Vec<_> = up.seen().into_iter().skip(before).collect();
    assert!(
        after
            .iter()
            .all(|s| s.path != "/transfer" && s.path != "/ws"),
        "a cross-origin request reached the upstream: {after:?}"
    );

    // 5. Logout through a form on a gateway page: back to the login page, and so is the next navigation;
    // a copy of the cookie saved before (a second tab, a stolen value) is refused too.
    browser.open(&url("/orders")).await;
    browser.find("pre").await;
    let saved = browser
        .page
        .get_named_cookie(COOKIE)
        .await
        .expect("the session cookie is set")
        .value()
        .to_string();
    assert_eq!(with_cookie(&url("/orders"), &saved).await, 200);
    browser
        .eval(
            "const form = document.createElement('form'); form.method = 'POST';\n\
             form.action = '/login/logout'; document.body.appendChild(form); form.submit(); return true;",
        )
        .await;
    browser.find("#gateway-login").await;
    browser.open(&url("/orders")).await;
    browser.find("#gateway-login").await;
    assert_eq!(browser.page.current_url().await.unwrap().path(), "/login");
    assert_eq!(with_cookie(&url("/orders"), &saved).await, 401);
    browser.close().await;
}

/// The status of a non-browser GET carrying only the gateway's cookie with `value`.
async fn with_cookie(url: &str, value: &str) -> u16 {
    support::client()
        .get(url)
        .header("cookie", format!("{COOKIE}={value}"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A browser and a gateway with the login page and cookie sessions in front of an echo upstream, answering
/// Cloudflare's always-pass test secret itself (any number of sign-ins with the stand-in's dummy token);
/// `auth` is extra `[auth]` keys. None when there is no browser.
struct PageScene {
    browser: Browser,
    gw: TestGateway,
    up: Upstream,
    stand_in: TurnstileStandIn,
    _users: UsersFile,
}

async fn page_scene(auth: &str) -> Option<PageScene> {
    let browser = Browser::start().await?;
    let users = UsersFile::new(&user("jdoe", argon2_cached(PASSWORD), true));
    let stand_in = TurnstileStandIn::start().await;
    let up = Upstream::echo().await;
    let config = format!(
        "[auth]\n{auth}[auth.cookie]\n\
         [login]\nenabled = true\n[login.turnstile]\nsecret = \"{}\"\nsite_key = \"1x00000000000000000000AA\"\n\
         [login.page]\nturnstile_script_url = \"{}\"\n[users]\nfile = {:?}\n{}",
        support::turnstile::PASS_SECRET,
        stand_in.script_url(),
        users.path.display().to_string(),
        route("/", &up.url(), ""),
    );
    let gw = TestGateway::start(&[&config]).await;
    Some(PageScene {
        browser,
        gw,
        up,
        stand_in,
        _users: users,
    })
}

#[tokio::test]
async fn an_expired_session_signs_in_again_and_returns_to_the_page() {
    let ttl = Duration::from_secs(3);
    let auth = format!("token_ttl = \"{}s\"\nleeway = \"0s\"\n", ttl.as_secs());
    // The whole scene stays bound: a dropped stand-in or users file would end the sign-ins.
    let Some(scene) = page_scene(&auth).await else {
        return;
    };
    let (browser, gw, up) = (&scene.browser, &scene.gw, &scene.up);

    browser.open(&gw.url("/reports")).await;
    sign_in(browser).await;
    let signed_in = Instant::now();
    assert!(browser.text("pre").await.contains("\"/reports\""));
    assert_eq!(up.last().all("x-auth-user"), ["jdoe"]);

    // The session runs out while the user is away; the next navigation asks for a sign-in and, after it,
    // lands where the user was going, not on a default page.
    tokio::time::sleep(
        (signed_in + ttl + Duration::from_millis(500)).saturating_duration_since(Instant::now()),
    )
    .await;
    let before = up.seen().len();
    browser.open(&gw.url("/orders?id=7")).await;
    browser.find("#gateway-login").await;
    assert_eq!(browser.page.current_url().await.unwrap().path(), "/login");
    assert_eq!(
        up.seen().len(),
        before,
        "an expired session reached the upstream"
    );
    sign_in(browser).await;
    let shown = browser.text("pre").await;
    assert!(shown.contains("\"/orders\""), "{shown}");
    let here = browser.page.current_url().await.unwrap();
    assert_eq!((here.path(), here.query()), ("/orders", Some("id=7")));
    assert_eq!(up.last().all("x-auth-user"), ["jdoe"]);
    scene.browser.close().await;
}

#[tokio::test]
async fn after_sign_in_a_return_to_elsewhere_stays_on_the_gateway() {
    let Some(scene) = page_scene("").await else {
        return;
    };
    let (browser, gw, stand_in) = (&scene.browser, &scene.gw, &scene.stand_in);
    // "Elsewhere" is a real, reachable origin (the stand-in's), so a redirect there would visibly land.
    let evil = format!("{}/blank.html", stand_in.addr);
    let attempts = [
        format!("//{evil}"),
        format!("http://{evil}"),
        format!("/\\{evil}"),
        format!("/%5C{evil}"),
        format!("%2F%2F{evil}"),
        format!("javascript:alert(1)//{evil}"),
    ];
    for attempt in attempts {
        browser.page.delete_all_cookies().await.unwrap();
        let query: String = form_urlencoded::byte_serialize(attempt.as_bytes()).collect();
        browser
            .open(&gw.url(&format!("/login?return_to={query}")))
            .await;
        sign_in(browser).await;
        // Signed in (the upstream's page is shown) and still on the gateway's own origin.
        browser.find("pre").await;
        let here = browser.page.current_url().await.unwrap();
        assert_eq!(
            here.port(),
            Some(gw.addr.port()),
            "return_to {attempt:?} led to {here}"
        );
        assert_eq!(here.host_str(), Some("127.0.0.1"), "{attempt:?}: {here}");
    }
    assert!(stand_in.loads() > 0, "the page loaded the stand-in widget");
    scene.browser.close().await;
}
