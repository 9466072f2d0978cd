//! Login defences under load and attack (issue 11): overload is never a 401, throttles reserve before the
//! work so parallel guesses cannot bypass them, the per-user budget belongs to the account rather than to a
//! spelling of its name, and names no store could hold never reach it.

mod support;

use serde_json::json;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support::sql::{Kind, TestDb, User};
use support::turnstile::{FakeTurnstile, Mode};
use support::upstream::Upstream;
use support::{route, user, TestGateway, UsersFile};

/// ASP.NET Identity V2 known-answer vector for "my password" (../shared/specs.md): cheap to verify, so
/// hundreds of logins stay quick. TEST FIXTURE.
const ASPNET_V2: &str = "AAABAgMEBQYHCAkKCwwNDg+ukCEMDf0yyQ29NYubggHIVY0sdEUfdyeM+E1LtH1uJg==";
const PASSWORD: &str = "my password";

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A fresh single-use captcha token the fake accepts.
fn captcha(fake: &FakeTurnstile) -> String {
    let t = format!(
        "0.defence-test-token-{}",
        NEXT.fetch_add(1, Ordering::SeqCst)
    );
    fake.add_valid_token(t.clone());
    t
}

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
    let text = gw.running.metrics().encode();
    text.lines()
        .find_map(|l| l.strip_prefix("gateway_password_verifications_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no verification counter in:\n{text}")) as u64
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
