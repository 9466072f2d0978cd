//! Operations: metrics after known traffic, health and readiness, hot reload, and logs free of secrets.

mod support;

use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support::turnstile::FakeTurnstile;
use support::upstream::Upstream;
use support::{client, route, tokens, user, TestGateway, UsersFile};

const PASSWORD: &str = "ops-test-password-FIXTURE";

fn argon2(p: &str) -> String {
    gateway::credentials::hash_password(p, &Default::default()).unwrap()
}

static NEXT: AtomicUsize = AtomicUsize::new(0);
fn captcha(fake: &FakeTurnstile) -> String {
    let t = format!("0.ops-captcha-{}", NEXT.fetch_add(1, Ordering::SeqCst));
    fake.add_valid_token(t.clone());
    t
}

async fn scrape(gw: &TestGateway) -> String {
    let addr = gw.running.metrics_addr.expect("metrics listener on");
    client()
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The status of a GET.
async fn status(c: &reqwest::Client, url: impl reqwest::IntoUrl) -> u16 {
    c.get(url).send().await.unwrap().status().as_u16()
}

/// The value of the sample whose line starts with `series` (name and labels exactly as exported).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.trim().parse().ok())
        })
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
}

#[tokio::test]
async fn metrics_count_known_traffic() {
    let up = Upstream::echo().await;
    let dead = Upstream::refusing().await;
    let users = UsersFile::new(&user("jdoe", &argon2(PASSWORD), true));
    let fake = FakeTurnstile::start().await;
    let routes = format!(
        "{}{}",
        route("/", &up.url(), "name = \"app\""),
        route("/dead", &dead, "name = \"dead\"")
    );
    let gw = TestGateway::start(&[&users.login_toml(&fake.url()), &routes]).await;
    let c = client();
    let token = tokens::valid("alice");
    for _ in 0..3 {
        assert_eq!(
            c.get(gw.url("/a"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    assert_eq!(status(&c, gw.url("/a")).await, 401);
    assert_eq!(
        c.post(gw.url("/a"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        c.get(gw.url("/dead/x"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        502
    );
    let ok = json!({"UserName": "jdoe", "Password": PASSWORD, "CaptchaToken": captcha(&fake)});
    assert_eq!(
        c.post(gw.url("/api/Auth"))
            .json(&ok)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let bad = json!({"UserName": "jdoe", "Password": "nope", "CaptchaToken": captcha(&fake)});
    assert_eq!(
        c.post(gw.url("/api/Auth"))
            .json(&bad)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let nocaptcha = json!({"UserName": "jdoe", "Password": PASSWORD});
    assert_eq!(
        c.post(gw.url("/api/Auth"))
            .json(&nocaptcha)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

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
    std::fs::remove_file(&users.path).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(status(&c, format!("http://{ops}/readyz")).await, 200);

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

fn config_file(dir: &std::path::Path, body: &str) -> std::path::PathBuf {
    let path = dir.join("gateway.toml");
    let tmp = dir.join("gateway.toml.tmp");
    let text = format!(
        "[metrics]\nlisten = \"127.0.0.1:0\"\n[server]\nlisten = \"127.0.0.1:0\"\n[auth]\nsecret = \"{}\"\n{body}",
        support::SECRET
    );
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    path
}

#[tokio::test]
async fn config_reload_switches_routes_while_in_flight_requests_finish() {
    let a = Upstream::echo().await;
    let b = Upstream::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let path = config_file(
        dir.path(),
        &(NO_LOGIN.to_string() + &route("/", &a.url(), "")),
    );
    let cfg = gateway::config::Config::load(&path).unwrap();
    let gw = TestGateway::start_config(cfg).await;
    let token = tokens::valid("alice");
    let slow = {
        let url = gw.url("/slow/1500");
        let token = token.clone();
        tokio::spawn(async move {
            client()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    config_file(
        dir.path(),
        &(NO_LOGIN.to_string() + &route("/", &b.url(), "")),
    );
    // The file poller picks the change up (100 ms interval).
    let mut switched = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let before = b.count();
        client()
            .get(gw.url("/new"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        if b.count() > before {
            switched = true;
            break;
        }
    }
    assert!(switched, "new requests reach the new upstream");
    assert_eq!(
        slow.await.unwrap(),
        200,
        "the in-flight request finished on the old config"
    );
    assert!(a.seen().iter().any(|s| s.path == "/slow/1500"));

    // A broken config is refused; the running one keeps serving.
    config_file(
        dir.path(),
        "[login]\nenabled = false\n[[routes]]\nprefix = \"/\"\nupstream = \"not a url\"\n",
    );
    assert!(gw.running.reload().is_err());
    let before = b.count();
    assert_eq!(
        client()
            .get(gw.url("/still"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(b.count(), before + 1);
    let m = scrape(&gw).await;
    assert!(sample(&m, r#"gateway_config_reloads_total{outcome="refused"}"#) >= 1.0);
}

#[tokio::test]
async fn renewed_certificate_is_served_to_new_tls_connections() {
    let first = support::tls::self_signed();
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("gw.crt");
    let key = dir.path().join("gw.key");
    std::fs::copy(&first.cert_path, &cert).unwrap();
    std::fs::copy(&first.key_path, &key).unwrap();
    let up = Upstream::echo().await;
    let tls = format!(
        "[server.tls]\ncert = {:?}\nkey = {:?}\n",
        cert.display().to_string(),
        key.display().to_string()
    );
    let path = config_file(
        dir.path(),
        &format!("{NO_LOGIN}{tls}{}", route("/", &up.url(), "public = true")),
    );
    let gw = TestGateway::start_config(gateway::config::Config::load(&path).unwrap()).await;
    let url = format!("https://localhost:{}/x", gw.addr.port());
    assert_eq!(
        first.client(false).get(&url).send().await.unwrap().status(),
        200
    );

    let second = support::tls::self_signed();
    std::fs::copy(&second.cert_path, &cert).unwrap();
    std::fs::copy(&second.key_path, &key).unwrap();
    gw.running.reload().unwrap();
    assert_eq!(
        second
            .client(false)
            .get(&url)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(
        first.client(false).get(&url).send().await.is_err(),
        "the old certificate is no longer served"
    );
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
    let mut child = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["serve", "--config"])
        .arg(&path)
        .env("GATEWAY_LOG", "debug")
        .env("GATEWAY_LOG_FORMAT", "json")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let addr = loop {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(20)) else {
            panic!("gateway did not start:\n{}", lines.join("\n"));
        };
        lines.push(line.clone());
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if v["fields"]["message"] == "gateway listening" {
            break v["fields"]["addr"].as_str().unwrap().to_string();
        }
    };
    let c = client();
    let captcha_token = captcha(&fake);
    let res = c
        .post(format!("http://{addr}/api/Auth"))
        .json(&json!({"UserName": "jdoe", "Password": PASSWORD, "CaptchaToken": captcha_token}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let token = res.json::<serde_json::Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let bad_captcha = "0.this-captcha-token-is-secret-too";
    c.post(format!("http://{addr}/api/Auth"))
        .json(&json!({"UserName": "jdoe", "Password": "wrong-password-secret", "CaptchaToken": bad_captcha}))
        .send()
        .await
        .unwrap();
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

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "graceful exit 0");
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(2)) {
        lines.push(line);
    }
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
