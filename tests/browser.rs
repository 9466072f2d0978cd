//! The browser flows in a real browser: headless Chromium (Debian's, over WebDriver; see
//! `tests/support/browser.rs`) opens the example app the gateway serves, signs in through the login dialog
//! with a local stand-in for Cloudflare's Turnstile script, and the client's 401 interceptor handles expiry.
//! The gateway answers Cloudflare's always-pass test secret locally, as the default configuration does.
//!
//! Without `chromium` and `chromedriver` each test prints `SKIPPED (GATEWAY_TEST_BROWSER: …)` and passes;
//! `.ci/run` installs them and fails on that line.

mod support;

use serde_json::Value;
use std::time::Duration;
use support::browser::{Browser, TurnstileStandIn, DUMMY_TOKEN};
use support::metrics::{sample, scrape};
use support::upstream::Upstream;
use support::{route, TestGateway, UsersFile};

/// A gateway set up like the default configuration (example app at `/`, echo at `/api`, Cloudflare's test
/// keys, the demo user), plus `/backend` to a test upstream, with the Turnstile script from a stand-in.
struct Scene {
    gw: TestGateway,
    browser: Browser,
    stand_in: TurnstileStandIn,
    _up: Upstream,
    _users: UsersFile,
}

async fn scene(extra: &str) -> Option<Scene> {
    let browser = Browser::start().await?;
    let stand_in = TurnstileStandIn::start().await;
    let up = Upstream::echo().await;
    let users = UsersFile::new(&support::user(
        "demo",
        support::fixtures::argon2_cached("demo-password"),
        true,
    ));
    let login = format!(
        "[login]\nenabled = true\n[login.throttle]\nuser_max_failures = 1000\nip_max_failures = 1000\n\
         [login.turnstile]\nsecret = \"{}\"\nsite_key = \"1x00000000000000000000AA\"\nscript_url = \"{}\"\n\
         [users]\nfile = {:?}\n",
        support::turnstile::PASS_SECRET,
        stand_in.script_url(),
        users.path.display().to_string()
    );
    let routes = [
        route("/", "example-spa:", "name = \"app\"\npublic = true"),
        route("/api", "echo:", "name = \"api\""),
        route(
            "/backend",
            &up.url(),
            "name = \"backend\"\nstrip_prefix = true",
        ),
    ]
    .concat();
    let gw = TestGateway::start(&[&login, &routes, extra]).await;
    Some(Scene {
        gw,
        browser,
        stand_in,
        _up: up,
        _users: users,
    })
}

const SECTIONS: [&str; 3] = ["items", "profile", "settings"];

impl Scene {
    /// Waits for the app's login dialog, types the credentials once the captcha is solved, submits.
    async fn sign_in(&self, user: &str, password: &str) {
        let b = &self.browser;
        b.until(
            "the login dialog opens",
            "return document.getElementById('login-dialog').open",
        )
        .await;
        b.until(
            "the Turnstile widget is solved",
            "return !document.getElementById('login-submit').disabled",
        )
        .await;
        let name = b.find("#user").await;
        name.clear().await.unwrap();
        name.send_keys(user).await.unwrap();
        b.find("#password").await.send_keys(password).await.unwrap();
        b.find("#login-submit").await.click().await.unwrap();
    }

    /// How many times the app asked for a login.
    async fn prompts(&self) -> Value {
        self.browser
            .eval("return document.body.dataset.loginPrompts || '0'")
            .await
    }

    /// Waits until the app finished `n` rounds of its three requests and returns each section's state
    /// and text.
    async fn after_loads(&self, n: u32) -> Vec<(String, String)> {
        self.browser
            .until(
                &format!("round {n} of the three requests ends"),
                &format!("return document.body.dataset.loads === '{n}'"),
            )
            .await;
        let mut out = Vec::new();
        for s in SECTIONS {
            let state = self
                .browser
                .eval(&format!(
                    "return document.getElementById('{s}').dataset.state"
                ))
                .await;
            out.push((
                state.as_str().unwrap_or_default().to_string(),
                self.browser.text(&format!("#{s} .result")).await,
            ));
        }
        out
    }

    async fn metric(&self, series: &str) -> f64 {
        sample(&scrape(&self.gw).await, series)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spa_login_shows_the_protected_data() {
    let Some(s) = scene("").await else { return };
    s.browser.open(&s.gw.url("/")).await;
    s.sign_in("demo", "demo-password").await;
    let sections = s.after_loads(1).await;
    for ((state, text), path) in
        sections
            .iter()
            .zip(["/api/items", "/api/profile", "/api/settings"])
    {
        assert_eq!(state, "ok", "{text}");
        assert!(text.contains(&format!("GET {path}")), "{text}");
        assert!(text.contains("x-auth-user: demo"), "{text}");
    }
    assert_eq!(s.prompts().await, "1");
    assert_eq!(
        s.stand_in.loads(),
        1,
        "the page loaded the stand-in, not Cloudflare's script"
    );
    assert_eq!(
        s.metric("gateway_logins_total{outcome=\"success\"}").await,
        1.0
    );
    s.browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_expiry_during_use_costs_one_login_for_three_requests() {
    let Some(s) = scene("[auth]\ntoken_ttl = \"3s\"\nleeway = \"0s\"\n").await else {
        return;
    };
    s.browser.open(&s.gw.url("/")).await;
    s.sign_in("demo", "demo-password").await;
    assert!(s
        .after_loads(1)
        .await
        .iter()
        .all(|(state, _)| state == "ok"));
    // Let the token expire (exp is in whole seconds), then use the app again.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    s.browser.find("#refresh").await.click().await.unwrap();
    s.sign_in("demo", "demo-password").await;
    let sections = s.after_loads(2).await;
    for (state, text) in &sections {
        assert_eq!(state, "ok", "{text}");
        assert!(text.contains("x-auth-user: demo"), "{text}");
    }
    assert_eq!(
        s.prompts().await,
        "2",
        "one prompt at start, exactly one after expiry"
    );
    assert_eq!(
        s.metric("gateway_logins_total{outcome=\"success\"}").await,
        2.0
    );
    // Each round: three 401s from the gateway, then the three retries succeed.
    let api = |class: &str| {
        format!("gateway_requests_total{{route=\"api\",method=\"GET\",status=\"{class}\"}}")
    };
    assert_eq!(s.metric(&api("4xx")).await, 6.0, "the gateway's 401s");
    assert_eq!(s.metric(&api("2xx")).await, 6.0, "the retries");
    s.browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_login_fails_every_waiting_request_in_the_app() {
    let Some(s) = scene("").await else { return };
    s.browser.open(&s.gw.url("/")).await;
    s.browser
        .until(
            "the login dialog opens",
            "return document.getElementById('login-dialog').open",
        )
        .await;
    s.browser.find("#login-cancel").await.click().await.unwrap();
    let sections = s.after_loads(1).await;
    for (state, text) in &sections {
        assert_eq!(state, "error", "{text}");
        assert!(text.contains("cancelled"), "{text}");
    }
    assert_eq!(s.prompts().await, "1");
    s.browser.close().await;
}

/// Imports the client the gateway serves at `module` into the page and runs `body` with `m` (the module)
/// and `creds(password)` (the demo user's login with the stand-in's dummy token) in scope.
fn with_client(module: &str, body: &str) -> String {
    format!(
        "const m = await import('{module}');\n\
         const creds = (password) => ({{ userName: 'demo', password, captchaToken: '{DUMMY_TOKEN}' }});\n\
         {body}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_401_is_the_apps_business_and_its_marker_never_reaches_the_page() {
    let Some(s) = scene("").await else { return };
    // The example app's page: the client is imported from the same origin, as an app would.
    s.browser.open(&s.gw.url("/")).await;
    let got = s
        .browser
        .eval_async(&with_client(
            "/.gateway/client.js",
            "let prompts = 0;\n\
             const c = m.createGatewayClient({ onLoginRequired: async () => { prompts++; } });\n\
             await c.login(creds('demo-password'));\n\
             const own = await c.authFetch('/backend/gateway-auth/401');\n\
             const fine = await c.authFetch('/backend/gateway-auth/200');\n\
             return { own: own.status, ownMarker: own.headers.get('Gateway-Auth'),\n\
                      ownChallenge: own.headers.get('WWW-Authenticate'), ownBody: await own.text(),\n\
                      fine: fine.status, fineMarker: fine.headers.get('Gateway-Auth'),\n\
                      prompts, loggedIn: c.isLoggedIn() };",
        ))
        .await;
    assert_eq!(got["own"], 401, "{got}");
    assert_eq!(got["ownMarker"], Value::Null, "{got}");
    assert_eq!(
        got["ownChallenge"], "Bearer error=\"invalid_token\"",
        "{got}"
    );
    assert_eq!(got["ownBody"], "{\"from\":\"upstream\"}", "{got}");
    assert_eq!(got["fine"], 200, "{got}");
    assert_eq!(got["fineMarker"], Value::Null, "{got}");
    assert_eq!(
        got["prompts"], 0,
        "no re-login for an upstream's 401: {got}"
    );
    assert_eq!(got["loggedIn"], true, "{got}");
    s.browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_origin_the_marker_is_readable_and_one_failed_login_rejects_all_waiters() {
    let Some(s) = scene("[cors]\nallowed_origins = [\"*\"]\n").await else {
        return;
    };
    // A page of another origin (the stand-in's) loads the client from the gateway and talks to it.
    s.browser.open(&s.stand_in.page_url()).await;
    let base = s.gw.url("");
    let got = s
        .browser
        .eval_async(&with_client(
            &format!("{base}/.gateway/client.js"),
            &format!(
            "let prompts = 0;\n\
             let password = 'wrong-password';\n\
             const c = m.createGatewayClient({{ baseUrl: '{base}',\n\
               onLoginRequired: async () => {{ prompts++; await c.login(creds(password)); }} }});\n\
             const failed = await Promise.allSettled(['/api/a', '/api/b', '/api/c'].map(p => c.authFetch(p)));\n\
             const afterFailure = prompts;\n\
             password = 'demo-password';\n\
             const ok = await Promise.all(['/api/a', '/api/b', '/api/c'].map(p => c.authFetch(p)));\n\
             const bodies = await Promise.all(ok.map(r => r.json()));\n\
             const raw = await fetch('{base}/api/x');\n\
             return {{ failed: failed.map(r => [r.status, r.reason && r.reason.name, r.reason && r.reason.cause && r.reason.cause.status]),\n\
                      afterFailure, prompts, statuses: ok.map(r => r.status),\n\
                      users: bodies.map(b => b.identity['x-auth-user'][0]),\n\
                      rawMarker: raw.headers.get('Gateway-Auth'), rawStatus: raw.status }};"
        ),
        ))
        .await;
    assert_eq!(
        got["failed"],
        serde_json::json!([
            ["rejected", "LoginRequiredError", 401],
            ["rejected", "LoginRequiredError", 401],
            ["rejected", "LoginRequiredError", 401]
        ]),
        "{got}"
    );
    assert_eq!(got["afterFailure"], 1, "one re-login for the three: {got}");
    assert_eq!(got["prompts"], 2, "{got}");
    assert_eq!(got["statuses"], serde_json::json!([200, 200, 200]), "{got}");
    assert_eq!(
        got["users"],
        serde_json::json!(["demo", "demo", "demo"]),
        "{got}"
    );
    assert_eq!(got["rawStatus"], 401, "{got}");
    assert_eq!(
        got["rawMarker"], "required",
        "a cross-origin script can read the marker (Access-Control-Expose-Headers): {got}"
    );
    s.browser.close().await;
}
