//! Operations: metrics after known traffic, health and readiness, hot reload, and logs free of secrets.

mod support;

use serde_json::json;
use std::time::Duration;
use support::fixtures::{argon2, captcha};
use support::http::{get_status, login_body, token_of};
use support::metrics::{sample, scrape, MetricsScene};
use support::process::{write_config as config_file, GatewayProcess};
use support::turnstile::FakeTurnstile;
use support::upstream::Upstream;
use support::wait::{eventually, holds_for};
use support::{client, in_flight, route, tokens, user, TestGateway, UsersFile};

const PASSWORD: &str = "ops-test-password-FIXTURE";

/// The status of a GET without a token.
async fn status(c: &reqwest::Client, url: impl reqwest::IntoUrl) -> u16 {
    get_status(c, url, None).await
}

/// The status of a POST of `body` as JSON.
async fn post_status(c: &reqwest::Client, url: String, body: &serde_json::Value) -> u16 {
    c.post(url)
        .json(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn metrics_count_known_traffic() {
    // Bound, not `..`: the upstream and the users file must live as long as the gateway.
    let MetricsScene {
        gw,
        fake,
        up: _up,
        users: _users,
    } = MetricsScene::start(PASSWORD).await;
    let c = client();
    let token = tokens::valid("alice");
    for _ in 0..3 {
        assert_eq!(get_status(&c, gw.url("/a"), Some(&token)).await, 200);
    }
    assert_eq!(status(&c, gw.url("/a")).await, 401);
    let post = c.post(gw.url("/a")).bearer_auth(&token).send().await;
    assert_eq!(post.unwrap().status(), 200);
    assert_eq!(get_status(&c, gw.url("/dead/x"), Some(&token)).await, 502);
    let login = gw.url("/api/Auth");
    let ok = login_body("jdoe", PASSWORD, &captcha(&fake));
    assert_eq!(post_status(&c, login.clone(), &ok).await, 200);
    let bad = login_body("jdoe", "nope", &captcha(&fake));
    assert_eq!(post_status(&c, login.clone(), &bad).await, 401);
    let nocaptcha = json!({"UserName": "jdoe", "Password": PASSWORD});
    assert_eq!(post_status(&c, login, &nocaptcha).await, 401);

    let m = scrape(&gw).await;
    for (series, want) in [
        (
            r#"gateway_requests_total{route="app",method="GET",status="2xx"}"#,
            3.0,
        ),
        (
            r#"gateway_requests_total{route="app",method="GET",status="4xx"}"#,
            1.0,
        ),
        (
            r#"gateway_requests_total{route="app",method="POST",status="2xx"}"#,
            1.0,
        ),
        (
            r#"gateway_requests_total{route="dead",method="GET",status="5xx"}"#,
            1.0,
        ),
        (
            r#"gateway_requests_total{route="login",method="POST",status="4xx"}"#,
            2.0,
        ),
        (
            r#"gateway_request_duration_seconds_count{route="app"}"#,
            5.0,
        ),
        (
            r#"gateway_upstream_duration_seconds_count{route="app"}"#,
            4.0,
        ),
        (r#"gateway_upstream_errors_total{kind="connect"}"#, 1.0),
        (r#"gateway_logins_total{outcome="success"}"#, 1.0),
        (r#"gateway_logins_total{outcome="bad_credentials"}"#, 1.0),
        (r#"gateway_logins_total{outcome="captcha_failed"}"#, 1.0),
        ("gateway_siteverify_duration_seconds_count", 2.0),
    ] {
        assert_eq!(sample(&m, series), want, "{series}");
    }
    assert!(sample(&m, "gateway_open_connections") >= 0.0);
    assert_eq!(sample(&m, "gateway_hash_pool_queue"), 0.0);
}

#[tokio::test]
async fn healthz_and_readyz_report_the_user_store() {
    let users = UsersFile::new(&user("jdoe", &argon2(PASSWORD), true));
    let fake = FakeTurnstile::start().await;
    let gw = TestGateway::start(&[
        &users.login_toml(&fake.url()),
        "[metrics]\nhealth_on_main_listener = true\n",
    ])
    .await;
    let ops = gw.running.metrics_addr.unwrap();
    let c = client();
    assert_eq!(status(&c, format!("http://{ops}/healthz")).await, 200);
    assert_eq!(status(&c, format!("http://{ops}/readyz")).await, 200);
    // The same answers on the main listener, without a token.
    assert_eq!(status(&c, gw.url("/healthz")).await, 200);
    // Users file gone and the reload failing: the store keeps its last good copy, still ready.
    // Checked throughout several reload intervals (100 ms), not once after a guessed delay.
    std::fs::remove_file(&users.path).unwrap();
    let readyz = format!("http://{ops}/readyz");
    let ready = holds_for(
        Duration::from_millis(500),
        Duration::from_millis(50),
        || async { status(&c, &readyz).await == 200 },
    )
    .await;
    assert!(
        ready.is_ok(),
        "not ready after the users file went away (check {ready:?})"
    );

    // A gateway whose users file never loaded is alive but not ready.
    let missing = UsersFile::new("");
    std::fs::remove_file(&missing.path).unwrap();
    let gw2 = TestGateway::start(&[&missing.login_toml(&fake.url())]).await;
    let ops2 = gw2.running.metrics_addr.unwrap();
    assert_eq!(status(&c, format!("http://{ops2}/healthz")).await, 200);
    assert_eq!(status(&c, format!("http://{ops2}/readyz")).await, 503);
    // Health is not on gw2's main listener (off by default): it needs a token like any path.
    assert_eq!(status(&c, gw2.url("/healthz")).await, 401);
}

const NO_LOGIN: &str = "[login]\nenabled = false\n[users]\nreload_interval = \"100ms\"\n";

/// Writes the config file in `dir`: `head`, then one route from `/` to `up`.
fn config_routing_to(
    dir: &std::path::Path,
    head: &str,
    up: &Upstream,
    extra: &str,
) -> std::path::PathBuf {
    config_file(dir, &format!("{head}{}", route("/", &up.url(), extra)))
}

#[tokio::test]
async fn config_reload_switches_routes_while_in_flight_requests_finish() {
    let a = Upstream::echo().await;
    let b = Upstream::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let path = config_routing_to(dir.path(), NO_LOGIN, &a, "");
    let cfg = gateway::config::Config::load(&path).unwrap();
    let gw = TestGateway::start_config(cfg).await;
    let token = tokens::valid("alice");
    // Swapped only once the slow request has reached the old upstream, so it is truly in flight.
    let slow = in_flight(gw.url("/slow/1500"), &a).await;
    config_routing_to(dir.path(), NO_LOGIN, &b, "");
    // The file poller picks the change up (100 ms interval).
    let c = client();
    let switched = eventually(
        Duration::from_secs(4),
        Duration::from_millis(100),
        || async {
            let before = b.count();
            get_status(&c, gw.url("/new"), Some(&token)).await;
            b.count() > before
        },
    )
    .await;
    assert!(switched, "new requests reach the new upstream");
    let (status, body) = slow
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(
        status, 200,
        "the in-flight request finished on the old config"
    );
    assert!(body.contains("/slow/1500"), "{body}");
    assert!(a.seen().iter().any(|s| s.path == "/slow/1500"));

    // A broken config is refused; the running one keeps serving.
    config_file(
        dir.path(),
        "[login]\nenabled = false\n[[routes]]\nprefix = \"/\"\nupstream = \"not a url\"\n",
    );
    assert!(gw.running.reload().is_err());
    let before = b.count();
    assert_eq!(get_status(&c, gw.url("/still"), Some(&token)).await, 200);
    assert_eq!(b.count(), before + 1);
    let m = scrape(&gw).await;
    assert!(sample(&m, r#"gateway_config_reloads_total{outcome="refused"}"#) >= 1.0);
}

/// Installs `cert`'s certificate and key as `dir`/gw.crt and `dir`/gw.key, each replaced atomically (write +
/// rename, as certificate tools do), so a poller never reads a half-written file.
fn install_cert(cert: &support::tls::TestCert, dir: &std::path::Path) {
    for (from, name) in [(&cert.cert_path, "gw.crt"), (&cert.key_path, "gw.key")] {
        let tmp = dir.join(format!("{name}.tmp"));
        std::fs::copy(from, &tmp).unwrap();
        std::fs::rename(&tmp, dir.join(name)).unwrap();
    }
}

/// A TLS gateway started from a config file in `dir` that names `dir`/gw.crt and `dir`/gw.key, serving
/// `first` and polling its files every 100 ms. Returns the gateway, an https URL on it, and its upstream.
async fn tls_gateway(
    dir: &std::path::Path,
    first: &support::tls::TestCert,
) -> (TestGateway, String, Upstream) {
    install_cert(first, dir);
    let up = Upstream::echo().await;
    let tls = format!(
        "[server.tls]\ncert = {:?}\nkey = {:?}\n",
        dir.join("gw.crt").display().to_string(),
        dir.join("gw.key").display().to_string()
    );
    let path = config_routing_to(dir, &format!("{NO_LOGIN}{tls}"), &up, "public = true");
    let gw = TestGateway::start_config(gateway::config::Config::load(&path).unwrap()).await;
    let url = format!("https://localhost:{}/x", gw.addr.port());
    (gw, url, up)
}

/// True if a client trusting only `cert` completes a request on `url` (so the gateway serves `cert`).
async fn served_with(cert: &support::tls::TestCert, url: &str) -> bool {
    cert.client(false)
        .get(url)
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
}

/// Renews the gateway's certificate files and checks new connections get the new certificate and not the
/// old one. `reload` = call `Running::reload` (what SIGHUP does) at once; otherwise only the 100 ms file
/// poller can pick the change up.
async fn renewed_certificate_is_served(reload: bool) {
    let first = support::tls::self_signed();
    let dir = tempfile::tempdir().unwrap();
    let (gw, url, _up) = tls_gateway(dir.path(), &first).await;
    assert!(served_with(&first, &url).await);

    let second = support::tls::self_signed();
    install_cert(&second, dir.path());
    if reload {
        gw.running.reload().unwrap();
        assert!(
            served_with(&second, &url).await,
            "the new certificate is served"
        );
    } else {
        let renewed = eventually(Duration::from_secs(5), Duration::from_millis(50), || {
            served_with(&second, &url)
        })
        .await;
        assert!(
            renewed,
            "the poller (100 ms) did not pick the renewed certificate up"
        );
    }
    assert!(
        first.client(false).get(&url).send().await.is_err(),
        "the old certificate is no longer served"
    );
    let m = scrape(&gw).await;
    assert!(sample(&m, r#"gateway_config_reloads_total{outcome="ok"}"#) >= 1.0);
}

#[tokio::test]
async fn renewed_certificate_is_served_to_new_tls_connections() {
    renewed_certificate_is_served(true).await;
}

/// The certificate poller alone (no reload call, no SIGHUP) picks a renewed certificate up.
#[tokio::test]
async fn renewed_certificate_files_are_picked_up_by_the_poller() {
    renewed_certificate_is_served(false).await;
}

#[tokio::test]
async fn logs_have_one_access_line_per_request_and_never_a_secret() {
    let up = Upstream::echo().await;
    let fake = FakeTurnstile::start().await;
    let users = UsersFile::new(&user("jdoe", &argon2(PASSWORD), true));
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        "{}{}",
        users.login_toml(&fake.url()),
        route("/", &up.url(), "")
    );
    let path = config_file(dir.path(), &body);
    let mut gw = GatewayProcess::serve(
        &path,
        &[("GATEWAY_LOG", "debug"), ("GATEWAY_LOG_FORMAT", "json")],
    );
    let addr = gw.wait_listening();
    let c = client();
    let captcha_token = captcha(&fake);
    let login = format!("http://{addr}/api/Auth");
    let res = c
        .post(&login)
        .json(&login_body("jdoe", PASSWORD, &captcha_token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let token = token_of(res).await;
    let bad_captcha = "0.this-captcha-token-is-secret-too";
    let bad = login_body("jdoe", "wrong-password-secret", bad_captcha);
    assert_eq!(post_status(&c, login, &bad).await, 401);
    let res = c
        .get(format!("http://{addr}/orders?card=4111"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(
        up.last().one("x-request-id").as_deref(),
        Some(request_id.as_str())
    );

    gw.signal("TERM");
    let status = gw.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "graceful exit 0");
    gw.drain_lines(Duration::from_secs(2));
    let lines = gw.seen.clone();
    let all = lines.join("\n");
    for secret in [
        PASSWORD,
        "wrong-password-secret",
        &token,
        &captcha_token,
        bad_captcha,
        support::SECRET,
        "4111",
    ] {
        assert!(!all.contains(secret), "a secret reached the logs: {secret}");
    }
    // The token's signature part alone must not appear either.
    assert!(!all.contains(token.rsplit('.').next().unwrap()));
    let access: Vec<serde_json::Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "access")
        .collect();
    assert_eq!(access.len(), 3, "one access line per request:\n{all}");
    let last = &access[2]["fields"];
    assert_eq!(last["method"], "GET");
    assert_eq!(last["path"], "/orders");
    assert_eq!(last["status"], 200);
    assert_eq!(last["user"], "jdoe");
    assert_eq!(last["request_id"], request_id.as_str());
    assert_eq!(last["client"], "127.0.0.1");
    assert!(last["duration_ms"].as_f64().is_some() && last["upstream_ms"].as_f64().is_some());
    assert!(access[1]["fields"]["route"] == "login" && access[1]["fields"]["status"] == 401);
}

/// The config body of a binary test: login off, files polled only every hour, so nothing but a signal can
/// make the process reload within the test.
const HOURLY_POLL: &str = "[login]\nenabled = false\n[users]\nreload_interval = \"1h\"\n";

#[tokio::test]
async fn sighup_makes_the_running_binary_serve_the_changed_config() {
    let a = Upstream::echo().await;
    let b = Upstream::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let path = config_routing_to(dir.path(), HOURLY_POLL, &a, "public = true");
    let mut gw = GatewayProcess::serve(&path, &[]);
    let url = format!("http://{}/x", gw.wait_listening());
    let c = client();
    assert_eq!(status(&c, &url).await, 200);
    assert_eq!(a.count(), 1);

    config_routing_to(dir.path(), HOURLY_POLL, &b, "public = true");
    // Not applied yet: the poller is an hour away, so what follows is the signal's doing.
    assert_eq!(status(&c, &url).await, 200);
    assert_eq!((a.count(), b.count()), (2, 0));

    gw.signal("HUP");
    let switched = eventually(
        Duration::from_secs(5),
        Duration::from_millis(50),
        || async { status(&c, &url).await == 200 && b.count() > 0 },
    )
    .await;
    assert!(
        switched,
        "the new route is not served after SIGHUP:\n{}",
        gw.log()
    );
    assert!(
        gw.wait_for_line("configuration reloaded", Duration::from_secs(5))
            .is_some(),
        "no reload logged:\n{}",
        gw.log()
    );
    let a_before = a.count();
    assert_eq!(status(&c, &url).await, 200);
    assert_eq!(
        a.count(),
        a_before,
        "the old upstream gets nothing any more"
    );

    // SIGHUP reloads; it does not stop the process.
    assert!(!gw.has_exited(), "the gateway exited after SIGHUP");
    gw.signal("TERM");
    let exit = gw.wait_exit(Duration::from_secs(10));
    assert_eq!(exit.code(), Some(0), "{exit:?}\n{}", gw.log());
}

#[tokio::test]
async fn sigterm_lets_the_in_flight_request_finish_then_exits_0() {
    let up = Upstream::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let path = config_routing_to(dir.path(), HOURLY_POLL, &up, "");
    let mut gw = GatewayProcess::serve(&path, &[]);
    let addr = gw.wait_listening();
    let request = in_flight(format!("http://{addr}/slow/1500"), &up).await;
    gw.signal("TERM");
    // The request still has most of its 1.5 s to go (it only just reached the upstream).
    assert!(
        !gw.has_exited(),
        "the gateway exited with a request in flight"
    );
    let (status, body) = tokio::time::timeout(Duration::from_secs(10), request)
        .await
        .expect("the in-flight request ends")
        .unwrap()
        .expect("the in-flight request completes, not cut");
    assert_eq!(status, 200);
    assert!(body.contains("/slow/1500"), "{body}");
    let exit = gw.wait_exit(Duration::from_secs(10));
    assert_eq!(exit.code(), Some(0), "{exit:?}\n{}", gw.log());
    // New connections are refused once the process is gone.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
