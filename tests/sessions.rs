//! Ending sessions on one instance: logout, the operator's revoke endpoint and `gateway revoke`,
//! `auth.recheck_active`, and WebSockets closed when their token is revoked.

mod support;

use futures_util::StreamExt;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support::fixtures::ASPNET_V2;
use support::http::get_status;
use support::process::{gateway_command, BIN};
use support::tokens::{self, now};
use support::upstream::Upstream;
use support::wait::eventually;
use support::{client, route, user, TestGateway, UsersFile};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// An operator token long enough to be accepted. TEST FIXTURE ONLY.
const ADMIN_TOKEN: &str = "test-operator-token-NOT-REAL-0123456789abcdef";

/// A token for `user` with a `jti` no other test uses.
fn token(user: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let jti = format!(
        "sessions-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    );
    tokens::valid_with(user, &json!({ "jti": jti }))
}

async fn logout(gw: &TestGateway, authorization: Option<&str>) -> reqwest::Response {
    let mut req = client().post(gw.url("/api/Auth/logout"));
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    req.send().await.unwrap()
}

/// A gateway with logout on (login itself off: tokens are minted by the tests) in front of `up`.
async fn gateway(up: &Upstream, extra: &str) -> TestGateway {
    TestGateway::start(&[&format!(
        "[login]\nlogout_enabled = true\n{extra}\n{}",
        route("/", &up.url(), "")
    )])
    .await
}

#[tokio::test]
async fn logout_is_204_then_that_token_is_401_and_others_still_work() {
    let up = Upstream::echo().await;
    let gw = gateway(&up, "").await;
    let c = client();
    let (mine, other) = (token("alice"), token("alice"));
    assert_eq!(get_status(&c, gw.url("/"), Some(&mine)).await, 200);
    let res = logout(&gw, Some(&tokens::bearer(&mine))).await;
    assert_eq!(res.status(), 204);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let res = c.get(gw.url("/")).bearer_auth(&mine).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert!(res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("invalid_token"));
    // A second logout of the same token has nothing left to end.
    assert_eq!(
        logout(&gw, Some(&tokens::bearer(&mine))).await.status(),
        401
    );
    // The same user's other session, and other users, are untouched.
    assert_eq!(get_status(&c, gw.url("/"), Some(&other)).await, 200);
    assert_eq!(get_status(&c, gw.url("/"), Some(&token("bob"))).await, 200);
    let upstream_saw = up.count();
    assert_eq!(
        logout(&gw, Some(&tokens::bearer(&other))).await.status(),
        204
    );
    assert_eq!(
        up.count(),
        upstream_saw,
        "the gateway answers logout itself"
    );
    gw.stop().await;
}

#[tokio::test]
async fn logout_without_a_valid_token_is_the_bare_401() {
    let up = Upstream::echo().await;
    let gw = gateway(&up, "").await;
    for auth in [
        None,
        Some("Basic YWxpY2U6cHc=".to_string()),
        Some(tokens::bearer(&tokens::expired("alice"))),
        Some(tokens::bearer(&tokens::tampered("alice", "root"))),
        Some("Bearer not-a-token".to_string()),
    ] {
        let res = logout(&gw, auth.as_deref()).await;
        assert_eq!(res.status(), 401, "{auth:?}");
        assert_eq!(
            res.headers()["www-authenticate"],
            "Bearer realm=\"gateway\""
        );
    }
    let res = client()
        .get(gw.url("/api/Auth/logout"))
        .bearer_auth(token("alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    gw.stop().await;
}

#[tokio::test]
async fn logout_of_a_token_without_jti_ends_that_users_older_tokens() {
    let up = Upstream::echo().await;
    let gw = gateway(&up, "").await;
    let c = client();
    let n = now();
    let old = tokens::sign(&json!({"sub": "carol", "iat": n - 20, "exp": n + 600}));
    let older = tokens::sign(&json!({"sub": "carol", "iat": n - 40, "exp": n + 600}));
    let no_iat = tokens::sign(&json!({"sub": "carol", "exp": n + 600}));
    let newer = tokens::sign(&json!({"sub": "carol", "iat": n + 5, "exp": n + 600}));
    assert_eq!(logout(&gw, Some(&tokens::bearer(&old))).await.status(), 204);
    for t in [&old, &older, &no_iat] {
        assert_eq!(get_status(&c, gw.url("/"), Some(t)).await, 401);
    }
    assert_eq!(get_status(&c, gw.url("/"), Some(&newer)).await, 200);
    gw.stop().await;
}

#[tokio::test]
async fn logout_path_is_configurable_and_can_be_left_to_the_backend() {
    let up = Upstream::echo().await;
    let gw = gateway(&up, "logout_path = \"/signout\"").await;
    let t = token("alice");
    let res = client()
        .post(gw.url("/SignOut"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(get_status(&client(), gw.url("/"), Some(&t)).await, 401);
    gw.stop().await;
    // Off: the path is an ordinary route, and the token stays valid.
    let gw = TestGateway::start(&[&format!(
        "[login]\nlogout_enabled = false\n{}",
        route("/", &up.url(), "")
    )])
    .await;
    let t = token("alice");
    assert_eq!(logout(&gw, Some(&tokens::bearer(&t))).await.status(), 200);
    assert_eq!(up.last().path, "/api/Auth/logout");
    assert_eq!(get_status(&client(), gw.url("/"), Some(&t)).await, 200);
    gw.stop().await;
}

/// Writes a gateway config file with `[metrics] admin_token_file` (when `admin` is set) and a route to `up`.
fn config_file(dir: &std::path::Path, up: &Upstream, admin: bool) -> std::path::PathBuf {
    let token_file = dir.join("admin-token");
    std::fs::write(&token_file, format!("{ADMIN_TOKEN}\n")).unwrap();
    let admin_line = if admin {
        format!(
            "admin_token_file = {:?}\n",
            token_file.display().to_string()
        )
    } else {
        String::new()
    };
    let path = dir.join("gateway.toml");
    std::fs::write(
        &path,
        format!(
            "[metrics]\nlisten = \"127.0.0.1:0\"\n{admin_line}[server]\nlisten = \"127.0.0.1:0\"\n[auth]\nsecret = \"{}\"\n[login]\nenabled = false\n{}",
            support::SECRET,
            route("/", &up.url(), "")
        ),
    )
    .unwrap();
    path
}

async fn start_file(path: &std::path::Path) -> TestGateway {
    TestGateway::start_config(gateway::config::Config::load(path).unwrap()).await
}

async fn ops_revoke(gw: &TestGateway, auth: Option<&str>, body: &str) -> u16 {
    let url = format!("http://{}/revoke", gw.running.metrics_addr.unwrap());
    let mut req = client().post(url).body(body.to_string());
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn operations_revoke_endpoint_needs_the_operator_token() {
    let up = Upstream::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let body = json!({"user": "alice"}).to_string();
    let right = format!("Bearer {ADMIN_TOKEN}");
    // Without an admin token configured the endpoint does not exist, whatever is sent.
    let gw = start_file(&config_file(dir.path(), &up, false)).await;
    assert_eq!(ops_revoke(&gw, Some(&right), &body).await, 404);
    assert_eq!(ops_revoke(&gw, None, &body).await, 404);
    gw.stop().await;

    let gw = start_file(&config_file(dir.path(), &up, true)).await;
    let c = client();
    let (alice, bob) = (token("alice"), token("bob"));
    assert_eq!(ops_revoke(&gw, None, &body).await, 401);
    assert_eq!(ops_revoke(&gw, Some("Bearer wrong"), &body).await, 401);
    let almost = format!("Bearer {}", &ADMIN_TOKEN[..ADMIN_TOKEN.len() - 1]);
    assert_eq!(ops_revoke(&gw, Some(&almost), &body).await, 401);
    assert_eq!(
        get_status(&c, gw.url("/"), Some(&alice)).await,
        200,
        "refused requests revoke nothing"
    );
    assert_eq!(ops_revoke(&gw, Some(&right), "{\"user\": 1}").await, 400);
    let get = client()
        .get(format!(
            "http://{}/revoke",
            gw.running.metrics_addr.unwrap()
        ))
        .header("authorization", &right)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 405);
    assert_eq!(ops_revoke(&gw, Some(&right), &body).await, 204);
    assert_eq!(get_status(&c, gw.url("/"), Some(&alice)).await, 401);
    assert_eq!(get_status(&c, gw.url("/"), Some(&bob)).await, 200);
    gw.stop().await;
}

/// Runs the real `gateway revoke` binary with `args` against the config at `path`.
fn run_revoke(path: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut cmd = gateway_command();
    cmd.arg("revoke").arg("--config").arg(path).args(args);
    let out = cmd.output().expect("the binary runs");
    assert!(!BIN.is_empty());
    out
}

// Multi-threaded: the test thread blocks on the child process while the in-process gateway answers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_revoke_user_and_jti_through_the_operations_listener() {
    let up = Upstream::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let path = config_file(dir.path(), &up, true);
    let gw = start_file(&path).await;
    let admin_url = format!("http://{}", gw.running.metrics_addr.unwrap());
    let c = client();
    let (alice1, alice2, bob) = (token("alice"), token("alice"), token("bob"));
    for t in [&alice1, &alice2, &bob] {
        assert_eq!(get_status(&c, gw.url("/"), Some(t)).await, 200);
    }
    let out = run_revoke(&path, &["--user", "alice", "--admin-url", &admin_url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(get_status(&c, gw.url("/"), Some(&alice1)).await, 401);
    assert_eq!(get_status(&c, gw.url("/"), Some(&alice2)).await, 401);
    assert_eq!(get_status(&c, gw.url("/"), Some(&bob)).await, 200);

    // One token by id: bob's other token keeps working.
    let n = now();
    let bob_one = tokens::valid_with("bob", &json!({"jti": "bob-one-cli", "exp": n + 600}));
    let bob_two = token("bob");
    let exp = (n + 600).to_string();
    let out = run_revoke(
        &path,
        &[
            "--jti",
            "bob-one-cli",
            "--exp",
            &exp,
            "--admin-url",
            &admin_url,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(get_status(&c, gw.url("/"), Some(&bob_one)).await, 401);
    assert_eq!(get_status(&c, gw.url("/"), Some(&bob_two)).await, 200);

    // A reload keeps the revocations (they live outside the state a reload rebuilds).
    std::fs::write(
        &path,
        std::fs::read_to_string(&path).unwrap() + "\n[log]\naccess = false\n",
    )
    .unwrap();
    gw.running.reload().unwrap();
    assert_eq!(get_status(&c, gw.url("/"), Some(&alice1)).await, 401);
    assert_eq!(get_status(&c, gw.url("/"), Some(&bob_one)).await, 401);

    // A wrong operator token is reported, not mistaken for success.
    let other = tempfile::tempdir().unwrap();
    let wrong = config_file(other.path(), &up, true);
    let text = std::fs::read_to_string(&wrong).unwrap();
    std::fs::write(
        other.path().join("admin-token"),
        "another-operator-token-0123456789abcdef\n",
    )
    .unwrap();
    std::fs::write(&wrong, text).unwrap();
    let out = run_revoke(&wrong, &["--user", "bob", "--admin-url", &admin_url]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
    assert_eq!(get_status(&c, gw.url("/"), Some(&bob_two)).await, 200);
    gw.stop().await;

    // Without an admin token in the config, the command says why it cannot work.
    let none = config_file(other.path(), &up, false);
    let out = run_revoke(&none, &["--user", "bob"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("metrics.admin_token_file"));
}

#[tokio::test]
async fn recheck_active_ends_tokens_of_users_made_inactive_or_removed() {
    let up = Upstream::echo().await;
    let users = UsersFile::new(&format!(
        "{}{}{}",
        user("alice", ASPNET_V2, true),
        user("bob", ASPNET_V2, true),
        user("carol", ASPNET_V2, true)
    ));
    let gw = TestGateway::start(&[&format!(
        "{}\n[auth]\nsecret = \"{}\"\nrecheck_active = \"1s\"\n{}",
        users.login_toml("http://127.0.0.1:9/siteverify"),
        support::SECRET,
        route("/", &up.url(), "")
    )])
    .await;
    let c = client();
    let (alice, bob, carol) = (token("alice"), token("bob"), token("carol"));
    for t in [&alice, &bob, &carol] {
        assert_eq!(get_status(&c, gw.url("/"), Some(t)).await, 200);
    }
    users.rewrite(&format!(
        "{}{}",
        user("alice", ASPNET_V2, false),
        user("bob", ASPNET_V2, true)
    ));
    // Within the period (1 s) plus a tick, the file's reload interval (100 ms) and some slack.
    let ended = eventually(
        Duration::from_secs(3),
        Duration::from_millis(100),
        || async {
            get_status(&c, gw.url("/"), Some(&alice)).await == 401
                && get_status(&c, gw.url("/"), Some(&carol)).await == 401
        },
    )
    .await;
    assert!(ended, "tokens of an inactive and a removed user still work");
    assert_eq!(get_status(&c, gw.url("/"), Some(&bob)).await, 200);
    gw.stop().await;
}

#[tokio::test]
async fn a_websocket_is_closed_when_its_token_is_revoked() {
    let up = Upstream::echo().await;
    let gw = gateway(&up, "").await;
    let t = token("alice");
    let mut req = format!("ws://{}/ws", gw.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("authorization", tokens::bearer(&t).parse().unwrap());
    let (mut ws, res) = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::connect_async(req),
    )
    .await
    .expect("handshake in time")
    .expect("handshake succeeds");
    assert_eq!(res.status(), 101);
    // Another user's socket stays open.
    let mut other = format!("ws://{}/ws", gw.addr)
        .into_client_request()
        .unwrap();
    other.headers_mut().insert(
        "authorization",
        tokens::bearer(&token("bob")).parse().unwrap(),
    );
    let (mut bob_ws, _) = tokio_tungstenite::connect_async(other).await.unwrap();
    assert_eq!(logout(&gw, Some(&tokens::bearer(&t))).await.status(), 204);
    let closed = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) => return,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the revoked token's WebSocket stayed open");
    use futures_util::SinkExt;
    bob_ws
        .send(tokio_tungstenite::tungstenite::Message::text("still here"))
        .await
        .unwrap();
    let echoed = tokio::time::timeout(Duration::from_secs(5), bob_ws.next())
        .await
        .expect("echo in time")
        .expect("open")
        .expect("no error");
    assert_eq!(echoed.into_text().unwrap().as_str(), "still here");
    gw.stop().await;
}
