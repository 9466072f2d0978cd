//! Login defences under load and attack (issue 11): overload is never a 401, throttles reserve before the
//! work so parallel guesses cannot bypass them, the per-user budget belongs to the account rather than to a
//! spelling of its name, and names no store could hold never reach it.

mod support;

use serde_json::json;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;
use support::fixtures::{captcha, ASPNET_PASSWORD, ASPNET_V2};
use support::http::snapshot;
use support::metrics::sample;
use support::sql::{Kind, TestDb, User};
use support::turnstile::{FakeTurnstile, Mode};
use support::upstream::Upstream;
use support::{route, user, TestGateway, UsersFile};

/// The ASP.NET V2 fixture's password: V2 is cheap to verify, so hundreds of logins stay quick.
const PASSWORD: &str = ASPNET_PASSWORD;

/// A client whose connections leave from `127.0.0.<n>`, so per-IP limits see distinct clients.
fn client_from(n: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, n)))
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

/// The `[login]` fragment: the fake siteverify, generous IP and user limits.
fn login_toml(fake: &FakeTurnstile, users: &UsersFile) -> String {
    users
        .login_toml(&fake.url())
        .replace("timeout = \"500ms\"", "timeout = \"10s\"")
}

/// What one login answered: status and whether it carried `Retry-After`.
async fn post_login(
    c: &reqwest::Client,
    gw: &TestGateway,
    name: &str,
    password: &str,
    captcha: String,
) -> (u16, bool) {
    let res = c
        .post(gw.url("/api/Auth"))
        .json(&json!({"UserName": name, "Password": password, "CaptchaToken": captcha}))
        .send()
        .await
        .expect("the gateway answers every login");
    (
        res.status().as_u16(),
        res.headers().contains_key("retry-after"),
    )
}

/// `gateway_password_verifications_total` now.
fn verifications(gw: &TestGateway) -> u64 {
    let text = gw
        .running
        .metrics()
        .encode(gateway::metrics::Format::PrometheusText);
    sample(&text, "gateway_password_verifications_total") as u64
}

#[tokio::test]
async fn valid_logins_under_load_are_never_answered_401() {
    let fake = FakeTurnstile::start().await;
    // A slow siteverify with few slots: most of the burst has to wait, and much of it cannot be served.
    fake.set_mode(Mode::Slow(Duration::from_millis(100)));
    let users = UsersFile::new(&user("jdoe", ASPNET_V2, true));
    let up = Upstream::echo().await;
    let login = login_toml(&fake, &users);
    let limits = "[login.turnstile]\nmax_concurrent = 8\nqueue_timeout = \"300ms\"\n";
    let gw = TestGateway::start(&[&login, limits, &route("/", &up.url(), "")]).await;

    let clients: Vec<reqwest::Client> = (2..=250).map(client_from).collect();
    let tasks: Vec<_> = (0..600)
        .map(|i| {
            let c = clients[i % clients.len()].clone();
            let token = captcha(&fake);
            let url = gw.url("/api/Auth");
            tokio::spawn(async move {
                let res = c
                    .post(url)
                    .json(&json!({"UserName": "jdoe", "Password": PASSWORD, "CaptchaToken": token}))
                    .send()
                    .await
                    .expect("answered");
                (
                    res.status().as_u16(),
                    res.headers().contains_key("retry-after"),
                )
            })
        })
        .collect();
    let mut by_status = std::collections::BTreeMap::<u16, usize>::new();
    for t in tasks {
        let (status, retry_after) = t.await.unwrap();
        *by_status.entry(status).or_default() += 1;
        if status != 200 {
            assert!(
                matches!(status, 503 | 429) && retry_after,
                "a valid login got {status} (Retry-After: {retry_after}); overload must be 503/429 with Retry-After: {by_status:?}"
            );
        }
    }
    assert!(
        by_status.get(&200).copied().unwrap_or(0) > 0,
        "{by_status:?}"
    );
    assert!(
        by_status.get(&503).copied().unwrap_or(0) > 0,
        "the burst overloaded siteverify: {by_status:?}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_junk_captcha_flood_from_one_address_gets_429_and_others_still_log_in() {
    let fake = FakeTurnstile::start().await;
    fake.set_mode(Mode::Slow(Duration::from_millis(300)));
    let users = UsersFile::new(&user("jdoe", ASPNET_V2, true));
    let up = Upstream::echo().await;
    let login = login_toml(&fake, &users);
    let limits = "[login.turnstile]\nmax_concurrent = 8\nmax_per_ip = 4\nqueue_timeout = \"5s\"\n";
    let gw = TestGateway::start(&[&login, limits, &route("/", &up.url(), "")]).await;

    let attacker = client_from(9);
    let flood: Vec<_> = (0..30)
        .map(|i| {
            let (c, url) = (attacker.clone(), gw.url("/api/Auth"));
            tokio::spawn(async move {
                let res = c
                    .post(url)
                    .json(&json!({"UserName": "jdoe", "Password": "x", "CaptchaToken": format!("junk-{i}")}))
                    .send()
                    .await
                    .expect("answered");
                (res.status().as_u16(), res.headers().contains_key("retry-after"))
            })
        })
        .collect();
    // Real users on other addresses log in while the flood holds its siteverify places.
    for _ in 0..200 {
        if fake.calls() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(fake.calls() >= 4, "the flood reached siteverify");
    let mut users_ok = Vec::new();
    for n in 10..14 {
        users_ok.push(
            post_login(&client_from(n), &gw, "jdoe", PASSWORD, captcha(&fake))
                .await
                .0,
        );
    }
    let mut throttled = 0;
    for t in flood {
        let (status, retry_after) = t.await.unwrap();
        match status {
            429 => {
                assert!(retry_after, "429 carries Retry-After");
                throttled += 1;
            }
            401 => {}
            other => panic!("junk captcha answered {other}"),
        }
    }
    assert_eq!(users_ok, [200, 200, 200, 200]);
    assert!(
        throttled >= 20,
        "at most 4 of the flood's siteverify calls were pending at once; {throttled} got 429"
    );
    gw.stop().await;
}

#[tokio::test]
async fn parallel_wrong_passwords_are_verified_at_most_the_user_limit() {
    let fake = FakeTurnstile::start().await;
    let users = UsersFile::new(&user("jdoe", ASPNET_V2, true));
    let up = Upstream::echo().await;
    let login = login_toml(&fake, &users).replace(
        "user_max_failures = 1000",
        "user_max_failures = 5\nuser_window = \"1h\"",
    );
    let gw = TestGateway::start(&[&login, &route("/", &up.url(), "")]).await;
    let before = verifications(&gw);
    let c = client_from(1);
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(32));
    // From 32 addresses, so only the per-user limit is in play.
    let tasks: Vec<_> = (0..32u8)
        .map(|i| {
            let (c, url, token, barrier) = (
                client_from(100 + i),
                gw.url("/api/Auth"),
                captcha(&fake),
                barrier.clone(),
            );
            tokio::spawn(async move {
                barrier.wait().await;
                c.post(url)
                    .json(&json!({"UserName": "jdoe", "Password": "wrong", "CaptchaToken": token}))
                    .send()
                    .await
                    .expect("answered")
                    .status()
                    .as_u16()
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 401);
    }
    assert_eq!(
        verifications(&gw) - before,
        5,
        "only the user's 5 reserved attempts were verified; the rest were refused without hashing"
    );
    assert_eq!(
        post_login(&c, &gw, "jdoe", PASSWORD, captcha(&fake))
            .await
            .0,
        401,
        "the right password is refused once the budget is spent"
    );
    gw.stop().await;
}

#[tokio::test]
async fn names_no_store_could_hold_are_unknown_users() {
    let fake = FakeTurnstile::start().await;
    let long = "a".repeat(300);
    let users = UsersFile::new(
        &(user("bell\\u0007", ASPNET_V2, true)
            + &user(&long, ASPNET_V2, true)
            + &user("jdoe", ASPNET_V2, true)),
    );
    let up = Upstream::echo().await;
    let login = login_toml(&fake, &users);
    let gw = TestGateway::start(&[&login, &route("/", &up.url(), "")]).await;
    let c = client_from(1);
    let before = verifications(&gw);
    for name in ["bell\u{7}", long.as_str()] {
        assert_eq!(
            post_login(&c, &gw, name, PASSWORD, captcha(&fake)).await.0,
            401,
            "the right password for a name with a control character or over 256 characters gets no token"
        );
    }
    assert_eq!(
        verifications(&gw) - before,
        2,
        "each still cost one (dummy) verification, like any unknown user"
    );
    assert_eq!(
        post_login(&c, &gw, "jdoe", PASSWORD, captcha(&fake))
            .await
            .0,
        200
    );
    gw.stop().await;
}

#[tokio::test]
async fn every_spelling_a_mariadb_collation_matches_shares_one_budget() {
    let Some(db) = TestDb::create(Kind::MySql, "defence_collation").await else {
        return;
    };
    db.insert(&[User::new("carol", ASPNET_V2)]).await;
    let fake = FakeTurnstile::start().await;
    let up = Upstream::echo().await;
    let login = format!(
        "[login]\nenabled = true\n[login.throttle]\nuser_max_failures = 3\nuser_window = \"1h\"\nip_max_failures = 100000\n[login.turnstile]\nsecret = \"{}\"\nsiteverify_url = \"{}\"\ntimeout = \"5s\"\n",
        support::turnstile::PASS_SECRET,
        fake.url()
    );
    let gw = TestGateway::start(&[&login, &db.users_toml(""), &route("/", &up.url(), "")]).await;
    let c = client_from(1);
    // The collation really does match these spellings to carol's row.
    assert_eq!(
        post_login(&c, &gw, "CÁROL", PASSWORD, captcha(&fake))
            .await
            .0,
        200
    );
    let before = verifications(&gw);
    for name in ["CÁROL", "cárol", "carol ", "Carol", "CAROL "] {
        for _ in 0..2 {
            assert_eq!(
                post_login(&c, &gw, name, "wrong", captcha(&fake)).await.0,
                401
            );
        }
    }
    assert_eq!(
        verifications(&gw) - before,
        3,
        "ten guesses through five spellings: only the account's 3 were verified"
    );
    assert_eq!(
        post_login(&c, &gw, "carol", PASSWORD, captcha(&fake))
            .await
            .0,
        401,
        "the account is throttled under its own name too"
    );
    gw.stop().await;
    drop(db);
}

#[test]
fn check_config_warns_when_the_users_file_mixes_hash_kinds() {
    let argon2 = gateway::credentials::hash_password(PASSWORD, &Default::default()).unwrap();
    let run = |users: &str| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("users.toml"), users).unwrap();
        std::fs::write(
            dir.path().join("gateway.toml"),
            format!(
                "[auth]\nsecret = \"{}\"\n[users]\nfile = \"users.toml\"\n",
                support::SECRET
            ),
        )
        .unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_gateway"))
            .args(["check-config", "--config"])
            .arg(dir.path().join("gateway.toml"))
            .env_clear()
            .output()
            .expect("the binary runs");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mixed = run(&(user("old", ASPNET_V2, true) + &user("new", &argon2, true)));
    assert!(
        mixed.contains("mixes password hash kinds") && mixed.contains("AspNetV2"),
        "{mixed}"
    );
    let uniform = run(&(user("a", ASPNET_V2, true) + &user("b", ASPNET_V2, true)));
    assert!(!uniform.contains("mixes"), "{uniform}");
}

#[tokio::test]
async fn every_captcha_failure_is_the_same_bare_401_as_a_wrong_password() {
    let fake = FakeTurnstile::start().await;
    let users = UsersFile::new(&user("jdoe", ASPNET_V2, true));
    let up = Upstream::echo().await;
    let login = login_toml(&fake, &users);
    let upstream = route("/", &up.url(), "");
    let send = |gw: &TestGateway, password: &str, token: String| {
        client_from(1)
            .post(gw.url("/api/Auth"))
            .json(&json!({"UserName": "jdoe", "Password": password, "CaptchaToken": token}))
            .send()
    };
    let gw = TestGateway::start(&[&login, &upstream]).await;
    let baseline = snapshot(send(&gw, "wrong", captcha(&fake)).await.unwrap()).await;
    assert_eq!(baseline.0, 401);
    gw.stop().await;

    let spent = format!(
        "[login.turnstile]\nsecret = \"{}\"\n",
        support::turnstile::SPENT_SECRET
    );
    let no_secret = format!(
        "[login]\nenabled = true\n[login.turnstile]\nsiteverify_url = \"{}\"\n[users]\nfile = {:?}\n",
        fake.url(),
        users.path.display().to_string()
    );
    let hostname = "[login.turnstile]\nexpected_hostname = \"app.example\"\n";
    let action = "[login.turnstile]\nexpected_action = \"checkout\"\n";
    let cases: [(&str, Vec<&str>); 4] = [
        ("timeout-or-duplicate", vec![&login, &spent, &upstream]),
        ("hostname mismatch", vec![&login, hostname, &upstream]),
        ("action mismatch", vec![&login, action, &upstream]),
        ("no Turnstile secret", vec![&no_secret, &upstream]),
    ];
    for (case, fragments) in cases {
        let gw = TestGateway::start(&fragments).await;
        let got = snapshot(send(&gw, PASSWORD, captcha(&fake)).await.unwrap()).await;
        assert_eq!(
            got, baseline,
            "{case}: the right password, a refused captcha"
        );
        gw.stop().await;
    }
}

#[tokio::test]
async fn a_failed_captcha_never_touches_the_user_store() {
    let Some(db) = TestDb::create(Kind::Postgres, "defence_captcha_first").await else {
        return;
    };
    db.insert(&[User::new("jdoe", ASPNET_V2)]).await;
    let fake = FakeTurnstile::start().await;
    let up = Upstream::echo().await;
    let login = format!(
        "[login]\nenabled = true\n[login.throttle]\nip_max_failures = 100000\n[login.turnstile]\nsecret = \"{}\"\nsiteverify_url = \"{}\"\ntimeout = \"300ms\"\n",
        support::turnstile::PASS_SECRET,
        fake.url()
    );
    let gw = TestGateway::start(&[&login, &db.users_toml(""), &route("/", &up.url(), "")]).await;
    let c = client_from(1);
    let replayed = captcha(&fake);
    // The first use of `replayed` is refused for another reason (no such user), so its replay is the only
    // thing wrong with the last request; that first use does reach the store.
    fake.set_mode(Mode::Cloudflare);
    assert_eq!(
        post_login(&c, &gw, "", PASSWORD, replayed.clone()).await.0,
        401
    );
    let connections = db.fwd().total();

    assert_eq!(
        post_login(&c, &gw, "jdoe", PASSWORD, "forged".into())
            .await
            .0,
        401
    );
    assert_eq!(
        post_login(&c, &gw, "jdoe", PASSWORD, String::new()).await.0,
        401
    );
    assert_eq!(post_login(&c, &gw, "jdoe", PASSWORD, replayed).await.0, 401);
    fake.set_mode(Mode::Slow(Duration::from_secs(2)));
    assert_eq!(
        post_login(&c, &gw, "jdoe", PASSWORD, captcha(&fake))
            .await
            .0,
        401
    );
    assert_eq!(
        db.fwd().total(),
        connections,
        "forged, missing, replayed and timed-out captchas opened no database connection"
    );

    fake.set_mode(Mode::Cloudflare);
    assert_eq!(
        post_login(&c, &gw, "jdoe", PASSWORD, captcha(&fake))
            .await
            .0,
        200
    );
    assert!(
        db.fwd().total() > connections,
        "a passing captcha does reach the store"
    );
    gw.stop().await;
    drop(db);
}

#[tokio::test]
async fn a_failed_captcha_never_looks_up_a_user_in_the_users_file() {
    let fake = FakeTurnstile::start().await;
    let users = UsersFile::new(&user("jdoe", ASPNET_V2, true));
    let up = Upstream::echo().await;
    let login = login_toml(&fake, &users).replace("timeout = \"10s\"", "timeout = \"300ms\"");
    let gw = TestGateway::start(&[&login, &route("/", &up.url(), "")]).await;
    let lookups = || {
        let text = gw
            .running
            .metrics()
            .encode(gateway::metrics::Format::PrometheusText);
        sample(&text, "gateway_user_store_lookups_total") as u64
    };
    let c = client_from(1);
    let replayed = captcha(&fake);
    assert_eq!(
        post_login(&c, &gw, "jdoe", PASSWORD, replayed.clone())
            .await
            .0,
        200
    );
    let before = lookups();
    assert_eq!(
        post_login(&c, &gw, "jdoe", PASSWORD, "forged".into())
            .await
            .0,
        401
    );
    assert_eq!(
        post_login(&c, &gw, "jdoe", PASSWORD, String::new()).await.0,
        401
    );
    assert_eq!(post_login(&c, &gw, "jdoe", PASSWORD, replayed).await.0, 401);
    fake.set_mode(Mode::Slow(Duration::from_secs(2)));
    assert_eq!(
        post_login(&c, &gw, "jdoe", PASSWORD, captcha(&fake))
            .await
            .0,
        401
    );
    assert_eq!(
        lookups(),
        before,
        "forged, missing, replayed and timed-out captchas looked nobody up"
    );
    fake.set_mode(Mode::Cloudflare);
    assert_eq!(
        post_login(&c, &gw, "jdoe", PASSWORD, captcha(&fake))
            .await
            .0,
        200
    );
    assert_eq!(lookups(), before + 1);
    gw.stop().await;
}
