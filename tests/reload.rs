//! A reload never forgets the login defences: throttles and spent captchas live outside the state a reload
//! rebuilds (docs/architecture.md, "State across reloads").

mod support;

use serde_json::json;
use std::time::Duration;
use support::fixtures::captcha;
use support::turnstile::FakeTurnstile;
use support::upstream::Upstream;
use support::{client, route, user, TestGateway, UsersFile};

/// Password of the test users. TEST FIXTURE.
const PASSWORD: &str = "correct horse battery staple";

async fn login(gw: &TestGateway, fake: &FakeTurnstile, name: &str, password: &str) -> u16 {
    client()
        .post(gw.url("/api/Auth"))
        .json(&json!({"UserName": name, "Password": password, "CaptchaToken": captcha(fake)}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Writes the gateway's config file (atomically): login against `users` with a per-user limit of 3
/// failures an hour, and one public route at `prefix`.
fn write_config(
    dir: &std::path::Path,
    users: &UsersFile,
    fake: &FakeTurnstile,
    prefix: &str,
    up: &Upstream,
) {
    let text = format!(
        "[metrics]\nlisten = \"127.0.0.1:0\"\n[server]\nlisten = \"127.0.0.1:0\"\n[auth]\nsecret = \"{}\"\n{}\n[login.throttle]\nuser_max_failures = 3\nuser_window = \"1h\"\nip_max_failures = 1000\n{}",
        support::SECRET,
        users.login_toml(&fake.url()).replace("[login.throttle]\nuser_max_failures = 1000\nip_max_failures = 1000\n", ""),
        route(prefix, &up.url(), "public = true"),
    );
    let tmp = dir.join("gateway.toml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join("gateway.toml")).unwrap();
}

/// Waits (bounded) until `path` answers 200: the reloaded configuration is live.
async fn wait_until_served(gw: &TestGateway, path: &str) {
    for _ in 0..100 {
        let status = client().get(gw.url(path)).send().await.unwrap().status();
        if status == 200 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{path} was never served: the configuration was not reloaded");
}

#[tokio::test]
async fn a_throttled_user_stays_throttled_across_file_reloads_and_sighup() {
    // Install the process's SIGHUP handler before anything sends one (the default action ends the process).
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).unwrap();
    let fake = FakeTurnstile::start().await;
    let up = Upstream::echo().await;
    let hash = gateway::credentials::hash_password(PASSWORD, &Default::default()).unwrap();
    let users = UsersFile::new(&(user("victim", &hash, true) + &user("bystander", &hash, true)));
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &users, &fake, "/one", &up);
    let config = gateway::config::Config::load(&dir.path().join("gateway.toml")).unwrap();
    let gw = TestGateway::start_config(config).await;

    for _ in 0..3 {
        assert_eq!(login(&gw, &fake, "victim", "wrong").await, 401);
    }
    assert_eq!(
        login(&gw, &fake, "victim", PASSWORD).await,
        401,
        "the right password is refused while the user is throttled"
    );

    // A reload triggered by the config file changing.
    write_config(dir.path(), &users, &fake, "/two", &up);
    wait_until_served(&gw, "/two/x").await;
    assert_eq!(
        login(&gw, &fake, "victim", PASSWORD).await,
        401,
        "still throttled after the file-triggered reload"
    );

    // A reload triggered by SIGHUP.
    write_config(dir.path(), &users, &fake, "/three", &up);
    std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    hup.recv().await;
    wait_until_served(&gw, "/three/x").await;
    assert_eq!(
        login(&gw, &fake, "victim", PASSWORD).await,
        401,
        "still throttled after SIGHUP"
    );

    // The logins themselves work after both reloads: the 401s above are the throttle's.
    assert_eq!(login(&gw, &fake, "bystander", PASSWORD).await, 200);
    gw.stop().await;
}

#[tokio::test]
async fn a_spent_captcha_stays_spent_across_a_reload() {
    let fake = FakeTurnstile::start().await;
    let up = Upstream::echo().await;
    let hash = gateway::credentials::hash_password(PASSWORD, &Default::default()).unwrap();
    let users = UsersFile::new(&user("alice", &hash, true));
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &users, &fake, "/one", &up);
    let config = gateway::config::Config::load(&dir.path().join("gateway.toml")).unwrap();
    let gw = TestGateway::start_config(config).await;
    let token = captcha(&fake);
    let send = || {
        client()
            .post(gw.url("/api/Auth"))
            .json(&json!({"UserName": "alice", "Password": PASSWORD, "CaptchaToken": token}))
            .send()
    };
    assert_eq!(send().await.unwrap().status(), 200);
    gw.running.reload().unwrap();
    let calls = fake.calls();
    assert_eq!(
        send().await.unwrap().status(),
        401,
        "a replayed captcha is refused"
    );
    assert_eq!(
        fake.calls(),
        calls,
        "the replay is refused from the gateway's own memory, without asking siteverify again"
    );
    gw.stop().await;
}
